// Key Vault in RBAC mode holding the two secrets the apps read through Key Vault references:
// the back-end API key (the front end sends it, the back end accepts it) and the /diag token.

@description('Azure region')
param location string

@description('Tags for every resource')
param tags object

@description('Vault name (3-24 characters)')
param keyVaultName string

@secure()
@description('Back-end API key')
param backendApiKey string

@secure()
@description('Token that enables /diag on both apps')
param diagToken string

@description('Principal IDs of the apps\' identities: Key Vault Secrets User')
param readerPrincipalIds array

@description('Principal ID of the person or pipeline running the deployment (reads the diag token for the smoke test); empty to skip')
param deployerPrincipalId string = ''

@description('Principal type of deployerPrincipalId')
@allowed([
  'User'
  'ServicePrincipal'
  'Group'
])
param deployerPrincipalType string = 'User'

var secretsUserRoleId = subscriptionResourceId('Microsoft.Authorization/roleDefinitions', '4633458b-17de-408a-b874-0445c86b69e6')

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: keyVaultName
  location: location
  tags: tags
  properties: {
    // checkov:skip=CKV_AZURE_109: App Service resolves Key Vault references over the platform's path unless the app routes them through the VNet, and the back end is VNet-integrated only on PostgreSQL, so the vault must accept public traffic. Access is RBAC-only, to the apps' identities.
    // checkov:skip=CKV_AZURE_189: same reason as CKV_AZURE_109; put the vault behind a private endpoint and integrate both apps to close it.
    // checkov:skip=CKV_AZURE_110: purge protection would keep the vault name reserved after `azd down --purge` and block the next `azd up` of the same environment; turn it on for production.
    // checkov:skip=CKV_AZURE_42: soft delete is on (7 days); purge protection is off for the reason given for CKV_AZURE_110.
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 7
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

resource backendApiKeySecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: 'backend-api-key'
  properties: {
    // checkov:skip=CKV_AZURE_41: an expired secret silently breaks the Key Vault reference and the app with it; rotate by setting a new value (API_KEYS takes a comma list for overlap).
    value: backendApiKey
    contentType: 'text/plain'
  }
}

resource diagTokenSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: 'diag-token'
  properties: {
    // checkov:skip=CKV_AZURE_41: same reason as backend-api-key: expiry would break the Key Vault reference.
    value: diagToken
    contentType: 'text/plain'
  }
}

resource readers 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for principalId in readerPrincipalIds: {
  name: guid(vault.id, principalId, secretsUserRoleId)
  scope: vault
  properties: {
    roleDefinitionId: secretsUserRoleId
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}]

resource deployerReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(deployerPrincipalId)) {
  name: guid(vault.id, deployerPrincipalId, secretsUserRoleId)
  scope: vault
  properties: {
    roleDefinitionId: secretsUserRoleId
    principalId: deployerPrincipalId
    principalType: deployerPrincipalType
  }
}

output keyVaultName string = vault.name
output backendApiKeySecretUri string = backendApiKeySecret.properties.secretUri
output diagTokenSecretUri string = diagTokenSecret.properties.secretUri
output diagTokenSecretName string = diagTokenSecret.name
