// The back end, mode none: open to the internet, protected by its API key only.
// The starting point of the tutorials and the state undo.sh returns to; the smoke test for
// this mode checks reachability only. Access rules are cleared explicitly so that switching
// back from a locked-down mode really opens the app.

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
    // checkov:skip=CKV_AZURE_222: mode none is the open baseline before lockdown; pick serviceEndpoint or privateEndpoint to close the back end.
    // checkov:skip=CKV_AZURE_212: one instance by design: the items store (redb) is a file on the shared /home that one process at a time can open.
    // checkov:skip=CKV_AZURE_17: the back end authenticates its one caller with an API key or an Entra token, not client certificates.
    serverFarmId: planId
    httpsOnly: true
    clientAffinityEnabled: true
    publicNetworkAccess: 'Enabled'
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
      ipSecurityRestrictionsDefaultAction: 'Allow'
      ipSecurityRestrictions: []
      scmIpSecurityRestrictionsUseMain: true
      scmIpSecurityRestrictionsDefaultAction: 'Allow'
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

output name string = site.name
output defaultHostName string = site.properties.defaultHostName
