// Log Analytics for the apps' diagnostic logs. AppServiceIPSecAuditLogs records every
// request an access restriction allowed or denied: the first place to look after a 403.

@description('Azure region')
param location string

@description('Tags for every resource')
param tags object

@description('Workspace name')
param workspaceName string

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: workspaceName
  location: location
  tags: tags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: 30
  }
}

output workspaceId string = workspace.id
