// The back end, private-endpoint mode: public network access Disabled (a private endpoint
// alone no longer blocks the public endpoint), a private endpoint (group `sites`) in the
// private-endpoint subnet, and the privatelink.azurewebsites.net zone linked to the VNet so
// the front end resolves the back end's usual name to the private address.
// No service-endpoint rule here: App Service does not support them next to a private
// endpoint. Access restrictions do not apply to private-endpoint traffic, so the default
// Deny below only matters if someone turns public access back on.
// Mode-specific values are literals here so checkov can judge them; see main.bicep.

@description('Azure region')
param location string

@description('Tags for every resource')
param tags object

@description('App name')
param name string

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

@description('Log Analytics workspace resource ID')
param workspaceId string

@description('Private-endpoint subnet resource ID')
param privateEndpointSubnetId string

@description('Virtual network resource ID (linked to the privatelink zone)')
param vnetId string

resource site 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  tags: union(tags, {
    'azd-service-name': 'backend'
  })
  kind: 'app,linux,container'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    // checkov:skip=CKV_AZURE_212: one instance by design: the items store (redb) is a file on the shared /home that one process at a time can open.
    // checkov:skip=CKV_AZURE_17: the back end authenticates its one caller with an API key or an Entra token, not client certificates.
    serverFarmId: planId
    httpsOnly: true
    clientAffinityEnabled: true
    publicNetworkAccess: 'Disabled'
    keyVaultReferenceIdentity: identityId
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
      // One instance whatever the plan's size (per-app scaling): see the skip above.
      numberOfWorkers: 1
      remoteDebuggingEnabled: false
      httpLoggingEnabled: true
      detailedErrorLoggingEnabled: true
      requestTracingEnabled: true
      ipSecurityRestrictionsDefaultAction: 'Deny'
      ipSecurityRestrictions: []
      scmIpSecurityRestrictionsUseMain: true
      scmIpSecurityRestrictionsDefaultAction: 'Deny'
      appSettings: appSettings
    }
  }
}

resource ftpPolicy 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmPolicy 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'scm'
  properties: {
    allow: false
  }
}

resource diagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: site
  properties: {
    workspaceId: workspaceId
    logs: [
      {
        category: 'AppServiceHTTPLogs'
        enabled: true
      }
      {
        category: 'AppServiceConsoleLogs'
        enabled: true
      }
      {
        category: 'AppServiceAppLogs'
        enabled: true
      }
      {
        category: 'AppServicePlatformLogs'
        enabled: true
      }
      {
        category: 'AppServiceIPSecAuditLogs'
        enabled: true
      }
    ]
  }
}

resource privateEndpoint 'Microsoft.Network/privateEndpoints@2024-05-01' = {
  name: 'pe-${name}'
  location: location
  tags: tags
  properties: {
    subnet: {
      id: privateEndpointSubnetId
    }
    privateLinkServiceConnections: [
      {
        name: 'pe-${name}'
        properties: {
          privateLinkServiceId: site.id
          groupIds: [
            'sites'
          ]
        }
      }
    ]
  }
}

resource privateDnsZone 'Microsoft.Network/privateDnsZones@2024-06-01' = {
  name: 'privatelink.azurewebsites.net'
  location: 'global'
  tags: tags
}

resource privateDnsZoneLink 'Microsoft.Network/privateDnsZones/virtualNetworkLinks@2024-06-01' = {
  parent: privateDnsZone
  name: 'link-${last(split(vnetId, '/'))}'
  location: 'global'
  tags: tags
  properties: {
    registrationEnabled: false
    virtualNetwork: {
      id: vnetId
    }
  }
}

resource privateDnsZoneGroup 'Microsoft.Network/privateEndpoints/privateDnsZoneGroups@2024-05-01' = {
  parent: privateEndpoint
  name: 'default'
  properties: {
    privateDnsZoneConfigs: [
      {
        name: 'privatelink-azurewebsites-net'
        properties: {
          privateDnsZoneId: privateDnsZone.id
        }
      }
    ]
  }
}

output name string = site.name
output defaultHostName string = site.properties.defaultHostName
