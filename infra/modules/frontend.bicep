// The front end (BFF): public, VNet-integrated, every outbound call routed into the VNet,
// so its calls to the back end leave through the integration subnet.

@description('Azure region')
param location string

@description('Tags for every resource')
param tags object

@description('App name')
param name string

@description('App Service plan resource ID')
param planId string

@description('Integration subnet resource ID')
param integrationSubnetId string

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

resource site 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  tags: union(tags, {
    'azd-service-name': 'frontend'
  })
  kind: 'app,linux,container'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    // checkov:skip=CKV_AZURE_222: the front end is the public entry point of the application; only the back end is locked down.
    // checkov:skip=CKV_AZURE_212: the instance count is the plan's (planCapacity); a per-app numberOfWorkers would override it.
    // checkov:skip=CKV_AZURE_17: browsers call the front end; client certificates are not part of this design.
    serverFarmId: planId
    httpsOnly: true
    clientAffinityEnabled: true
    publicNetworkAccess: 'Enabled'
    virtualNetworkSubnetId: integrationSubnetId
    outboundVnetRouting: {
      applicationTraffic: true
    }
    keyVaultReferenceIdentity: identityId
    siteConfig: {
      linuxFxVersion: 'DOCKER|${image}'
      appCommandLine: 'frontend'
      acrUseManagedIdentityCreds: true
      acrUserManagedIdentityID: identityClientId
      alwaysOn: true
      http20Enabled: true
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      ftpsState: 'Disabled'
      healthCheckPath: '/healthz'
      vnetRouteAllEnabled: true
      remoteDebuggingEnabled: false
      httpLoggingEnabled: true
      detailedErrorLoggingEnabled: true
      requestTracingEnabled: true
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
    ]
  }
}

output name string = site.name
output defaultHostName string = site.properties.defaultHostName
