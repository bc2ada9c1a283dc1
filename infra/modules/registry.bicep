// The container registry. Apps pull with their managed identities (AcrPull); the admin
// user stays off.

@description('Azure region')
param location string

@description('Tags for every resource')
param tags object

@description('Registry name (alphanumeric)')
param registryName string

@description('Principal IDs that may pull images')
param pullPrincipalIds array

var acrPullRoleId = subscriptionResourceId('Microsoft.Authorization/roleDefinitions', '7f951dda-4ed3-4680-a7ca-43fe172d538d')

resource registry 'Microsoft.ContainerRegistry/registries@2025-04-01' = {
  name: registryName
  location: location
  tags: tags
  sku: {
    name: 'Basic'
  }
  properties: {
    // checkov:skip=CKV_AZURE_139: azd pushes from the developer machine and App Service pulls over the public endpoint; a private registry needs Premium and a private endpoint, out of scope for this reference.
    // checkov:skip=CKV_AZURE_163: vulnerability scanning comes from Defender for Containers, enabled per subscription, not from the registry resource.
    // checkov:skip=CKV_AZURE_166: quarantine needs a scanning pipeline in front of the registry, out of scope.
    // checkov:skip=CKV_AZURE_233: zone redundancy needs Premium.
    adminUserEnabled: false
    anonymousPullEnabled: false
    publicNetworkAccess: 'Enabled'
  }
}

resource acrPull 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for principalId in pullPrincipalIds: {
  name: guid(registry.id, principalId, acrPullRoleId)
  scope: registry
  properties: {
    roleDefinitionId: acrPullRoleId
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}]

output registryName string = registry.name
output loginServer string = registry.properties.loginServer
