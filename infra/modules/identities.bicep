// One user-assigned identity per app. They exist before the apps, so their role
// assignments (AcrPull, Key Vault Secrets User) are in place when an app first pulls its
// image and resolves its Key Vault references: no race with a system-assigned identity.

@description('Azure region')
param location string

@description('Tags for every resource')
param tags object

@description('Front-end identity name')
param frontendIdentityName string

@description('Back-end identity name')
param backendIdentityName string

resource frontendIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: frontendIdentityName
  location: location
  tags: tags
}

resource backendIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: backendIdentityName
  location: location
  tags: tags
}

output frontendId string = frontendIdentity.id
output frontendClientId string = frontendIdentity.properties.clientId
output frontendPrincipalId string = frontendIdentity.properties.principalId
output backendId string = backendIdentity.id
output backendClientId string = backendIdentity.properties.clientId
output backendPrincipalId string = backendIdentity.properties.principalId
