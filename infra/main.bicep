// lockdown on Azure App Service: a front end (BFF) and a back-end API, where the back end
// answers only the front end. `lockdownMode` picks how:
//   none             both apps public (the starting point; the back end relies on its API key)
//   serviceEndpoint  Microsoft.Web service endpoint on the integration subnet + back-end
//                    access restriction allowing only that subnet (default Deny)
//   privateEndpoint  back-end private endpoint + privatelink.azurewebsites.net zone,
//                    public network access Disabled
// The back end is a per-mode module so that each mode's security properties are literals
// (checkov cannot evaluate conditionals). Switching away from privateEndpoint leaves the
// private endpoint behind (deployments are incremental): delete it first, see docs/deploy.md.
// `backendAuth` picks the credential behind the network wall:
//   apiKey  the front end sends a key from Key Vault (X-Api-Key)
//   entra   the front end sends a token of its managed identity; the back end has an app
//           registration with an app role assigned to that identity (modules/entra-app.bicep,
//           Microsoft Graph extension) and App Service Authentication on top of its own check
//           (modules/backend-auth.bicep)
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('azd environment name; also names the resource group and seeds resource names')
param environmentName string

@minLength(1)
@description('Azure region for every resource')
param location string

@description('How the back end is locked down')
@allowed([
  'none'
  'serviceEndpoint'
  'privateEndpoint'
])
param lockdownMode string = 'serviceEndpoint'

@description('How the front end proves itself to the back end')
@allowed([
  'apiKey'
  'entra'
])
param backendAuth string = 'apiKey'

@description('Object ID of the person or pipeline deploying (azd sets AZURE_PRINCIPAL_ID); may read the diag token for the smoke test')
param principalId string = ''

@description('Principal type of principalId')
@allowed([
  'User'
  'ServicePrincipal'
  'Group'
])
param principalType string = 'User'

@description('Virtual network address space')
param vnetAddressPrefix string = '10.20.0.0/16'

@description('Integration subnet: the front end\'s outbound traffic leaves from here')
param integrationSubnetPrefix string = '10.20.1.0/24'

@description('Subnet for the back end\'s private endpoint')
param privateEndpointSubnetPrefix string = '10.20.2.0/24'

@description('App Service plan SKU (B1 or higher: VNet integration and private endpoints)')
param planSku string = 'P0v3'

@minValue(1)
@description('App Service plan instances: the front end runs on each, the back end on one (per-app scaling; above 1 needs Standard or higher)')
param planCapacity int = 1

@description('Front-end image; empty until azd deploy pushed one (azd sets SERVICE_FRONTEND_IMAGE_NAME)')
param frontendImage string = ''

@description('Back-end image; empty until azd deploy pushed one (azd sets SERVICE_BACKEND_IMAGE_NAME)')
param backendImage string = ''

@secure()
@metadata({
  azd: {
    type: 'generate'
    config: {
      length: 40
      noSpecial: true
    }
  }
})
@description('Back-end API key, stored in Key Vault; azd generates it once and keeps it in the environment')
param backendApiKey string

@secure()
@metadata({
  azd: {
    type: 'generate'
    config: {
      length: 40
      noSpecial: true
    }
  }
})
@description('Token enabling /diag on both apps, stored in Key Vault; azd generates it once')
param diagToken string

var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = {
  'azd-env-name': environmentName
  app: 'lockdown'
  'lockdown-mode': lockdownMode
}
// Shown until azd deploy replaces it with the image it built and pushed.
var placeholderImage = 'mcr.microsoft.com/appsvc/staticsite:latest'
var frontendName = 'app-fe-${resourceToken}'
var backendName = 'app-be-${resourceToken}'
// App Service names resolve as <name>.azurewebsites.net; in privateEndpoint mode the same
// name CNAMEs to <name>.privatelink.azurewebsites.net and resolves privately in the VNet.
var backendHostName = '${backendName}.azurewebsites.net'
var locksDown = (lockdownMode != 'none')

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: 'rg-${environmentName}'
  location: location
  tags: tags
}

module network 'modules/network.bicep' = {
  name: 'network'
  scope: rg
  params: {
    location: location
    tags: tags
    vnetName: 'vnet-${resourceToken}'
    vnetAddressPrefix: vnetAddressPrefix
    integrationSubnetPrefix: integrationSubnetPrefix
    privateEndpointSubnetPrefix: privateEndpointSubnetPrefix
    enableWebServiceEndpoint: (lockdownMode == 'serviceEndpoint')
  }
}

module identities 'modules/identities.bicep' = {
  name: 'identities'
  scope: rg
  params: {
    location: location
    tags: tags
    frontendIdentityName: 'id-fe-${resourceToken}'
    backendIdentityName: 'id-be-${resourceToken}'
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    location: location
    tags: tags
    workspaceName: 'log-${resourceToken}'
  }
}

module registry 'modules/registry.bicep' = {
  name: 'registry'
  scope: rg
  params: {
    location: location
    tags: tags
    registryName: 'cr${resourceToken}'
    pullPrincipalIds: [
      identities.outputs.frontendPrincipalId
      identities.outputs.backendPrincipalId
    ]
  }
}

module keyVault 'modules/keyvault.bicep' = {
  name: 'keyvault'
  scope: rg
  params: {
    location: location
    tags: tags
    keyVaultName: 'kv-${resourceToken}'
    backendApiKey: backendApiKey
    diagToken: diagToken
    readerPrincipalIds: [
      identities.outputs.frontendPrincipalId
      identities.outputs.backendPrincipalId
    ]
    deployerPrincipalId: principalId
    deployerPrincipalType: principalType
  }
}

module plan 'modules/plan.bicep' = {
  name: 'plan'
  scope: rg
  params: {
    location: location
    tags: tags
    planName: 'plan-${resourceToken}'
    sku: planSku
    capacity: planCapacity
  }
}

var backendApiKeyRef = '@Microsoft.KeyVault(SecretUri=${keyVault.outputs.backendApiKeySecretUri})'
var diagTokenRef = '@Microsoft.KeyVault(SecretUri=${keyVault.outputs.diagTokenSecretUri})'
var usesEntra = (backendAuth == 'entra')

// The back end's app registration, its app role and the role's assignment to the front end's
// managed identity (entra only: it needs Microsoft Graph permissions, see the module).
module entraApp 'modules/entra-app.bicep' = if (backendAuth == 'entra') {
  name: 'entra-app'
  scope: rg
  params: {
    appName: 'lockdown-backend-${resourceToken}'
    frontendPrincipalId: identities.outputs.frontendPrincipalId
  }
}

var backendAppIdUri = entraApp.?outputs.identifierUri ?? ''
var backendAppClientId = entraApp.?outputs.clientId ?? ''
var requiredRole = entraApp.?outputs.roleValue ?? ''

var frontendApiKeySettings = [
  {
    name: 'BACKEND_AUTH'
    value: 'api-key'
  }
  {
    name: 'BACKEND_API_KEY'
    value: backendApiKeyRef
  }
]

var frontendEntraSettings = [
  {
    name: 'BACKEND_AUTH'
    value: 'entra'
  }
  {
    name: 'BACKEND_TOKEN_RESOURCE'
    value: backendAppIdUri
  }
  {
    name: 'AZURE_CLIENT_ID'
    value: identities.outputs.frontendClientId
  }
]

var backendApiKeySettings = [
  {
    name: 'AUTH_MODE'
    value: 'api-key'
  }
  {
    name: 'API_KEYS'
    value: backendApiKeyRef
  }
]

var backendEntraSettings = [
  {
    name: 'AUTH_MODE'
    value: 'entra'
  }
  {
    name: 'ENTRA_TENANT_ID'
    value: tenant().tenantId
  }
  {
    name: 'ENTRA_AUDIENCES'
    value: '${backendAppIdUri},${backendAppClientId}'
  }
  {
    name: 'ENTRA_ALLOWED_APPS'
    value: identities.outputs.frontendClientId
  }
  {
    name: 'ENTRA_ALLOWED_OBJECTS'
    value: identities.outputs.frontendPrincipalId
  }
  {
    name: 'ENTRA_REQUIRED_ROLE'
    value: requiredRole
  }
]

var frontendBaseSettings = [
  {
    name: 'BACKEND_URL'
    value: 'https://${backendHostName}'
  }
  {
    name: 'INTEGRATION_SUBNET'
    value: integrationSubnetPrefix
  }
  {
    name: 'DIAG_TOKEN'
    value: diagTokenRef
  }
  {
    name: 'WEBSITES_PORT'
    value: '8080'
  }
  {
    name: 'WEBSITES_ENABLE_APP_SERVICE_STORAGE'
    value: 'false'
  }
]

var backendBaseSettings = [
  {
    name: 'ALLOWED_CALLERS'
    value: locksDown ? integrationSubnetPrefix : ''
  }
  {
    name: 'CLIENT_IP_SOURCE'
    value: 'x-client-ip'
  }
  {
    name: 'DATA_DIR'
    value: '/home/data'
  }
  {
    name: 'WEBSITES_ENABLE_APP_SERVICE_STORAGE'
    value: 'true'
  }
  {
    name: 'DIAG_TOKEN'
    value: diagTokenRef
  }
  {
    name: 'WEBSITES_PORT'
    value: '8080'
  }
]

var frontendSettings = concat(frontendBaseSettings, usesEntra ? frontendEntraSettings : frontendApiKeySettings)
var backendSettings = concat(backendBaseSettings, usesEntra ? backendEntraSettings : backendApiKeySettings)

module frontend 'modules/frontend.bicep' = {
  name: 'frontend'
  scope: rg
  params: {
    location: location
    tags: tags
    name: frontendName
    planId: plan.outputs.planId
    integrationSubnetId: network.outputs.integrationSubnetId
    identityId: identities.outputs.frontendId
    identityClientId: identities.outputs.frontendClientId
    image: empty(frontendImage) ? placeholderImage : frontendImage
    appSettings: frontendSettings
    workspaceId: monitoring.outputs.workspaceId
  }
  dependsOn: [
    registry
    keyVault
  ]
}

module backendOpen 'modules/backend-open.bicep' = if (lockdownMode == 'none') {
  name: 'backend-open'
  scope: rg
  params: {
    location: location
    tags: tags
    name: backendName
    planId: plan.outputs.planId
    identityId: identities.outputs.backendId
    identityClientId: identities.outputs.backendClientId
    image: empty(backendImage) ? placeholderImage : backendImage
    appSettings: backendSettings
    workspaceId: monitoring.outputs.workspaceId
  }
  dependsOn: [
    registry
    keyVault
  ]
}

module backendServiceEndpoint 'modules/backend-service-endpoint.bicep' = if (lockdownMode == 'serviceEndpoint') {
  name: 'backend-service-endpoint'
  scope: rg
  params: {
    location: location
    tags: tags
    name: backendName
    planId: plan.outputs.planId
    identityId: identities.outputs.backendId
    identityClientId: identities.outputs.backendClientId
    image: empty(backendImage) ? placeholderImage : backendImage
    appSettings: backendSettings
    workspaceId: monitoring.outputs.workspaceId
    integrationSubnetId: network.outputs.integrationSubnetId
  }
  dependsOn: [
    registry
    keyVault
  ]
}

module backendPrivateEndpoint 'modules/backend-private-endpoint.bicep' = if (lockdownMode == 'privateEndpoint') {
  name: 'backend-private-endpoint'
  scope: rg
  params: {
    location: location
    tags: tags
    name: backendName
    planId: plan.outputs.planId
    identityId: identities.outputs.backendId
    identityClientId: identities.outputs.backendClientId
    image: empty(backendImage) ? placeholderImage : backendImage
    appSettings: backendSettings
    workspaceId: monitoring.outputs.workspaceId
    privateEndpointSubnetId: network.outputs.privateEndpointSubnetId
    vnetId: network.outputs.vnetId
  }
  dependsOn: [
    registry
    keyVault
  ]
}

// App Service Authentication on the back end: the platform's gate in front of the app's own
// token check (entra only).
module backendAuthSettings 'modules/backend-auth.bicep' = if (backendAuth == 'entra') {
  name: 'backend-auth'
  scope: rg
  params: {
    siteName: backendName
    tenantId: tenant().tenantId
    clientId: backendAppClientId
    allowedAudiences: [
      backendAppIdUri
      backendAppClientId
    ]
    allowedApplications: [
      identities.outputs.frontendClientId
    ]
    allowedPrincipalIds: [
      identities.outputs.frontendPrincipalId
    ]
  }
  dependsOn: [
    backendOpen
    backendServiceEndpoint
    backendPrivateEndpoint
  ]
}

// azd writes every output into the environment (azd env get-values); the postprovision
// hook turns them into the smoke-test config (infra/scripts/smoke-config.sh).
output AZURE_LOCATION string = location
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_CONTAINER_REGISTRY_ENDPOINT string = registry.outputs.loginServer
output AZURE_CONTAINER_REGISTRY_NAME string = registry.outputs.registryName
output LOCKDOWN_MODE string = lockdownMode
output FRONTEND_NAME string = frontendName
output FRONTEND_URL string = 'https://${frontend.outputs.defaultHostName}'
output BACKEND_NAME string = backendName
output BACKEND_HOSTNAME string = backendHostName
output BACKEND_URL string = 'https://${backendHostName}'
output VNET_NAME string = network.outputs.vnetName
output INTEGRATION_SUBNET_CIDR string = integrationSubnetPrefix
output PRIVATE_ENDPOINT_SUBNET_CIDR string = privateEndpointSubnetPrefix
output KEY_VAULT_NAME string = keyVault.outputs.keyVaultName
output DIAG_TOKEN_SECRET_NAME string = keyVault.outputs.diagTokenSecretName
output BACKEND_AUTH_MODE string = usesEntra ? 'entra' : 'api-key'
output BACKEND_APP_ID_URI string = backendAppIdUri
