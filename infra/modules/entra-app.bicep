// The back end's identity in Entra ID, for backendAuth = 'entra' (Microsoft Graph Bicep
// extension): an app registration with an application ID URI (the resource the front end asks
// its managed identity for a token for) and one app role, its service principal with role
// assignment required (only assigned callers can even get a token for the back end), and that
// role assigned to the front end's managed identity.
// The deploying user or pipeline needs Application.ReadWrite.All and
// AppRoleAssignment.ReadWrite.All in Microsoft Graph (e.g. the Application Administrator role).
// The az CLI path does the same in infra/scripts/auth.sh.
extension 'br:mcr.microsoft.com/bicep/extensions/microsoftgraph/v1.0:1.0.0'

@description('Unique name (the idempotency key in the tenant) and display name of the back end\'s app registration')
param appName string

@description('Object (principal) ID of the front end\'s managed identity: it gets the app role')
param frontendPrincipalId string

// The role callers must hold (the back end's ENTRA_REQUIRED_ROLE). Its id only has to be unique
// within this app, so it is fixed: the same in the Bicep and in auth.sh.
var roleValue = 'Backend.Call'
var roleId = '5f0c8a2e-3b7d-4e19-9c6a-1d2e3f4a5b6c'

resource backendApp 'Microsoft.Graph/applications@v1.0' = {
  uniqueName: appName
  displayName: appName
  signInAudience: 'AzureADMyOrg'
  // api://{tenant}/{name} is accepted by Entra's default identifier-URI policy and known before
  // the app exists (api://{appId} is not).
  identifierUris: [
    'api://${tenant().tenantId}/${appName}'
  ]
  appRoles: [
    {
      id: roleId
      value: roleValue
      displayName: 'Call the lockdown back end'
      description: 'Applications holding this role may call the lockdown back end\'s API.'
      allowedMemberTypes: [
        'Application'
      ]
      isEnabled: true
    }
  ]
}

resource backendServicePrincipal 'Microsoft.Graph/servicePrincipals@v1.0' = {
  appId: backendApp.appId
  // Entra then refuses tokens for the back end to anyone without an assignment (AADSTS501051).
  appRoleAssignmentRequired: true
}

resource frontendRoleAssignment 'Microsoft.Graph/appRoleAssignedTo@v1.0' = {
  appRoleId: roleId
  principalId: frontendPrincipalId
  resourceId: backendServicePrincipal.id
}

output clientId string = backendApp.appId
output identifierUri string = 'api://${tenant().tenantId}/${appName}'
output roleValue string = roleValue
