// App Service Authentication on the back end (authsettingsV2). On (`enabled`) for
// backendAuth = 'entra': the platform's gate in front of the app's own token check. Deployed off
// for apiKey, so that switching back from entra really turns the gate off (deployments are
// incremental: a config left out of the template keeps its last value). Every request needs a valid Entra token
// (401 otherwise, never a login redirect), for one of the allowed audiences, from the front
// end's managed identity only; no token store; /healthz stays open for the platform's health
// check. The app still validates every token itself (AUTH_MODE=entra).
// Empty allowed lists would mean "nobody" to App Service: every list needs at least one entry.

@description('App Service Authentication on (backendAuth = entra) or off (apiKey)')
param enabled bool

@description('The back end\'s app name')
param siteName string

@description('The tenant ID: the issuer of the tokens')
param tenantId string

@description('Client ID of the back end\'s app registration')
param clientId string

@minLength(1)
@description('Accepted token audiences: the back end\'s application ID URI and client ID')
param allowedAudiences array

@minLength(1)
@description('Client IDs of the applications allowed to call: the front end\'s managed identity')
param allowedApplications array

@minLength(1)
@description('Object IDs of the identities allowed to call: the front end\'s managed identity')
param allowedPrincipalIds array

resource site 'Microsoft.Web/sites@2025-03-01' existing = {
  name: siteName
}

resource authSettings 'Microsoft.Web/sites/config@2025-03-01' = {
  parent: site
  name: 'authsettingsV2'
  properties: {
    // checkov:skip=CKV_AZURE_13: the check reads v1 authsettings (properties.enabled); this is authsettingsV2, on through platform.enabled, which test_security_props.py pins.
    // checkov:skip=CKV_AZURE_63: HTTP logging is a setting of the site's web config, set in the back-end module; this resource holds authentication only.
    // checkov:skip=CKV_AZURE_65: detailed error logging is a setting of the site's web config, set in the back-end module; this resource holds authentication only.
    // checkov:skip=CKV_AZURE_66: request tracing is a setting of the site's web config, set in the back-end module; this resource holds authentication only.
    // checkov:skip=CKV_AZURE_80: the .NET version is a setting of the site's web config (a Linux container here); this resource holds authentication only.
    // checkov:skip=CKV_AZURE_88: storage mounts are a setting of the site, not of its authentication settings.
    // checkov:skip=CKV_AZURE_222: public network access is a property of the site, decided per lockdown mode in the back-end modules.
    platform: {
      enabled: enabled
      runtimeVersion: '~1'
    }
    globalValidation: {
      requireAuthentication: true
      unauthenticatedClientAction: 'Return401'
      // /healthz for the platform's health check; /diag/* carry the diag token in Authorization
      // (the app's own constant-time gate, rate and policy), which the platform would take for
      // a missing Entra token: the front end's /diag/backend/... reaches them (smoke checks from
      // the back end, which has no public entry).
      excludedPaths: [
        '/healthz'
        '/diag/resolve'
        '/diag/tcpping'
        '/diag/http'
        '/diag/env'
        '/diag/tls'
      ]
    }
    httpSettings: {
      requireHttps: true
      forwardProxy: {
        convention: 'NoProxy'
      }
    }
    identityProviders: {
      azureActiveDirectory: {
        enabled: enabled
        isAutoProvisioned: false
        registration: {
          clientId: clientId
          // Managed-identity tokens are v1 tokens (issuer sts.windows.net) unless the app
          // registration asks for v2.
          openIdIssuer: 'https://sts.windows.net/${tenantId}/'
        }
        validation: {
          allowedAudiences: allowedAudiences
          defaultAuthorizationPolicy: {
            allowedApplications: allowedApplications
            allowedPrincipals: {
              identities: allowedPrincipalIds
            }
          }
        }
      }
    }
    login: {
      tokenStore: {
        enabled: false
      }
    }
  }
}
