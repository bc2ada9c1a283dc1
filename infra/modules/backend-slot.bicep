// The back end's staging slot (service-endpoint mode): a site of its own, so the lockdown is
// written out again (a slot never inherits the production slot's access restrictions; a swap
// moves content, not them), its SCM site following its main rules, basic publishing off.

@description('Azure region')
param location string

@description('Tags for every resource')
param tags object

@description('The production site\'s name')
param siteName string

@description('App Service plan resource ID')
param planId string

@description('User-assigned identity resource ID (image pull, Key Vault references)')
param identityId string

@description('Client ID of that identity')
param identityClientId string

@description('Container image (registry/repository:tag)')
param image string

@description('App settings as [{name, value}]')
param appSettings array

@minValue(1)
@description('Instances of the slot: the production slot\'s count')
param instanceCount int

@description('Integration subnet resource ID: the only caller allowed')
param integrationSubnetId string

@description('Subnet the slot\'s outbound calls leave through, as production\'s (VNet integration is per slot: a slot without it cannot reach the database behind its private endpoint); empty: not VNet-integrated')
param egressSubnetId string

resource site 'Microsoft.Web/sites@2025-03-01' existing = {
  name: siteName
}

resource slot 'Microsoft.Web/sites/slots@2025-03-01' = {
  parent: site
  name: 'staging'
  location: location
  tags: tags
  kind: 'app,linux,container'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    // checkov:skip=CKV_AZURE_222: like the production slot: the public endpoint is on, the access restriction below closes it.
    // checkov:skip=CKV_AZURE_212: the instance count is the production slot's (instanceCount): one on the embedded store.
    serverFarmId: planId
    httpsOnly: true
    clientAffinityEnabled: true
    publicNetworkAccess: 'Enabled'
    keyVaultReferenceIdentity: identityId
    virtualNetworkSubnetId: empty(egressSubnetId) ? null : egressSubnetId
    outboundVnetRouting: {
      applicationTraffic: !empty(egressSubnetId)
      imagePullTraffic: false
      contentShareTraffic: false
    }
    siteConfig: {
      linuxFxVersion: 'DOCKER|${image}'
      appCommandLine: 'backend'
      acrUseManagedIdentityCreds: true
      acrUserManagedIdentityID: identityClientId
      alwaysOn: true
      http20Enabled: true
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      ftpsState: 'Disabled'
      healthCheckPath: '/healthz'
      numberOfWorkers: instanceCount
      remoteDebuggingEnabled: false
      ipSecurityRestrictionsDefaultAction: 'Deny'
      ipSecurityRestrictions: [
        {
          name: 'allow-integration-subnet'
          description: 'The front end, through its VNet integration and the Microsoft.Web service endpoint'
          action: 'Allow'
          priority: 100
          vnetSubnetResourceId: integrationSubnetId
        }
      ]
      scmIpSecurityRestrictionsUseMain: true
      scmIpSecurityRestrictionsDefaultAction: 'Deny'
      appSettings: appSettings
    }
  }
}

resource slotFtpPolicy 'Microsoft.Web/sites/slots/basicPublishingCredentialsPolicies@2025-03-01' = {
  parent: slot
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource slotScmPolicy 'Microsoft.Web/sites/slots/basicPublishingCredentialsPolicies@2025-03-01' = {
  parent: slot
  name: 'scm'
  properties: {
    allow: false
  }
}

output name string = slot.name
