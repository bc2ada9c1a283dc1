#!/usr/bin/env bash
# Switches how the front end proves itself to the back end, with the az CLI, on what create.sh
# made. Safe to run again. The network lockdown (lockdown.sh) is independent of this.
#
# Usage: auth.sh --mode entra|api-key [--dry-run] [--resource-group RG] [--location LOC]
#                [--prefix PREFIX]
#   entra    the front end calls with a token of its managed identity, and the back end accepts
#            only that caller: an app registration PREFIX-backend-api with the application ID
#            URI api://TENANT/PREFIX-backend-api and the app role Backend.Call (for
#            applications), its service principal with role assignment required, the role
#            assigned to the front end's system-assigned identity (Microsoft Graph), App
#            Service Authentication on the back end (required, 401, /healthz excluded, no
#            token store, allowed audiences, applications and principals), and the settings:
#            back end AUTH_MODE=entra, ENTRA_TENANT_ID, ENTRA_AUDIENCES, ENTRA_ALLOWED_APPS,
#            ENTRA_ALLOWED_OBJECTS, ENTRA_REQUIRED_ROLE; front end BACKEND_AUTH=entra,
#            BACKEND_TOKEN_RESOURCE.
#   api-key  back to the API key create.sh set up: App Service Authentication off, the Entra
#            settings removed, AUTH_MODE=api-key and BACKEND_AUTH=api-key. The app
#            registration is kept (delete it with az ad app delete --id APP_ID).
#   --dry-run  print every az command, one per line, and run nothing
# Needs Application.ReadWrite.All and AppRoleAssignment.ReadWrite.All in Microsoft Graph (e.g.
# the Application Administrator role) for entra.
# Next: smoke.sh --mode MODE --auth entra. A new role assignment shows in the front end's tokens
# only once its managed-identity token is renewed (the platform caches them up to 24 h).

set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

mode=""
parse_common "$@"
set -- "${REST_ARGS[@]}"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --mode) mode="${2:-}"; shift 2 || die_usage "--mode needs a value" ;;
    *) die_usage "unknown argument: $1" ;;
  esac
done
case "$mode" in
  entra|api-key) ;;
  "") die_usage "--mode is required: entra or api-key" ;;
  *) die_usage "unknown mode '$mode': entra or api-key" ;;
esac

# The app role: the same value and id as infra/modules/entra-app.bicep.
readonly ROLE_VALUE="Backend.Call"
readonly ROLE_ID="5f0c8a2e-3b7d-4e19-9c6a-1d2e3f4a5b6c"
readonly AUTH_API_VERSION="2024-04-01"
readonly GRAPH="https://graph.microsoft.com/v1.0"
app_name="${PREFIX}-backend-api"

require_login

backend_id="$(az_value "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/${RESOURCE_GROUP}/providers/Microsoft.Web/sites/${BACKEND_NAME}" \
  webapp show --resource-group "$RESOURCE_GROUP" --name "$BACKEND_NAME" --query id --output tsv)"
auth_settings_uri="${backend_id}/config/authsettingsV2?api-version=${AUTH_API_VERSION}"

# guid NAME VALUE : dies unless VALUE looks like a GUID (a dry run's placeholders pass).
guid() {
  [[ "$DRY_RUN" -eq 1 || "$2" =~ ^[0-9a-fA-F-]{36}$ ]] || die "$1 is not a GUID: '$2'"
}

use_entra() {
  local tenant_id app_id sp_id uri fe_principal fe_client count roles body
  tenant_id="$(az_value "00000000-0000-0000-0000-0000000000aa" account show --query tenantId --output tsv)"
  guid "tenant ID" "$tenant_id"
  uri="api://${tenant_id}/${app_name}"

  # The back end's app registration, its application ID URI and its app role.
  app_id="$(az_value "" ad app list --display-name "$app_name" --query "[0].appId" --output tsv)"
  if [[ -z "$app_id" ]]; then
    app_id="$(az_value "<backend-app-id>" ad app create --display-name "$app_name" \
      --sign-in-audience AzureADMyOrg --query appId --output tsv)"
  fi
  guid "the back end's application ID" "$app_id"
  roles="[{\"allowedMemberTypes\":[\"Application\"],\"description\":\"Applications holding this role may call the lockdown back end's API.\",\"displayName\":\"Call the lockdown back end\",\"id\":\"${ROLE_ID}\",\"isEnabled\":true,\"value\":\"${ROLE_VALUE}\"}]"
  az_do ad app update --id "$app_id" --identifier-uris "$uri" --app-roles "$roles"

  # Its service principal: only callers with an assignment can get a token for the back end.
  sp_id="$(az_value "" ad sp list --filter "appId eq '${app_id}'" --query "[0].id" --output tsv)"
  if [[ -z "$sp_id" ]]; then
    sp_id="$(az_value "<backend-sp-id>" ad sp create --id "$app_id" --query id --output tsv)"
  fi
  guid "the back end's service principal" "$sp_id"
  az_do ad sp update --id "$sp_id" --set appRoleAssignmentRequired=true

  # The front end's system-assigned identity: its object ID and its client ID.
  fe_principal="$(az_value "<frontend-principal-id>" webapp identity show --resource-group "$RESOURCE_GROUP" \
    --name "$FRONTEND_NAME" --query principalId --output tsv)"
  [[ -n "$fe_principal" ]] || die "${FRONTEND_NAME} has no system-assigned identity: run create.sh"
  guid "the front end's principal ID" "$fe_principal"
  fe_client="$(az_value "<frontend-client-id>" ad sp show --id "$fe_principal" --query appId --output tsv)"
  guid "the front end's client ID" "$fe_client"

  # The app role, assigned to the front end's identity.
  count="$(az_value 0 rest --method get --uri "${GRAPH}/servicePrincipals/${sp_id}/appRoleAssignedTo" \
    --query "length(value[?principalId=='${fe_principal}' && appRoleId=='${ROLE_ID}'])" --output tsv)"
  if [[ "$count" == "0" ]]; then
    az_do rest --method post --uri "${GRAPH}/servicePrincipals/${sp_id}/appRoleAssignedTo" \
      --body "{\"principalId\":\"${fe_principal}\",\"resourceId\":\"${sp_id}\",\"appRoleId\":\"${ROLE_ID}\"}"
  fi

  # App Service Authentication on the back end, the same settings as modules/backend-auth.bicep.
  # Every allowed list names the front end: an empty one would mean nobody.
  body="{\"properties\":{\"platform\":{\"enabled\":true,\"runtimeVersion\":\"~1\"},\"globalValidation\":{\"requireAuthentication\":true,\"unauthenticatedClientAction\":\"Return401\",\"excludedPaths\":[\"/healthz\"]},\"httpSettings\":{\"requireHttps\":true,\"forwardProxy\":{\"convention\":\"NoProxy\"}},\"identityProviders\":{\"azureActiveDirectory\":{\"enabled\":true,\"isAutoProvisioned\":false,\"registration\":{\"clientId\":\"${app_id}\",\"openIdIssuer\":\"https://sts.windows.net/${tenant_id}/\"},\"validation\":{\"allowedAudiences\":[\"${uri}\",\"${app_id}\"],\"defaultAuthorizationPolicy\":{\"allowedApplications\":[\"${fe_client}\"],\"allowedPrincipals\":{\"identities\":[\"${fe_principal}\"]}}}}},\"login\":{\"tokenStore\":{\"enabled\":false}}}}"
  az_do rest --method put --uri "$auth_settings_uri" --body "$body"

  az_do webapp config appsettings set --resource-group "$RESOURCE_GROUP" --name "$BACKEND_NAME" \
    --settings AUTH_MODE=entra "ENTRA_TENANT_ID=${tenant_id}" "ENTRA_AUDIENCES=${uri},${app_id}" \
    "ENTRA_ALLOWED_APPS=${fe_client}" "ENTRA_ALLOWED_OBJECTS=${fe_principal}" "ENTRA_REQUIRED_ROLE=${ROLE_VALUE}"
  az_do webapp config appsettings set --resource-group "$RESOURCE_GROUP" --name "$FRONTEND_NAME" \
    --settings BACKEND_AUTH=entra "BACKEND_TOKEN_RESOURCE=${uri}"
}

use_api_key() {
  az_do rest --method put --uri "$auth_settings_uri" \
    --body '{"properties":{"platform":{"enabled":false},"globalValidation":{"requireAuthentication":false}}}'
  az_do webapp config appsettings delete --resource-group "$RESOURCE_GROUP" --name "$BACKEND_NAME" \
    --setting-names ENTRA_TENANT_ID ENTRA_AUDIENCES ENTRA_ALLOWED_APPS ENTRA_ALLOWED_OBJECTS ENTRA_REQUIRED_ROLE
  az_do webapp config appsettings set --resource-group "$RESOURCE_GROUP" --name "$BACKEND_NAME" \
    --settings AUTH_MODE=api-key
  az_do webapp config appsettings delete --resource-group "$RESOURCE_GROUP" --name "$FRONTEND_NAME" \
    --setting-names BACKEND_TOKEN_RESOURCE
  az_do webapp config appsettings set --resource-group "$RESOURCE_GROUP" --name "$FRONTEND_NAME" \
    --settings BACKEND_AUTH=api-key
}

case "$mode" in
  entra) use_entra ;;
  api-key) use_api_key ;;
esac

# Settings apply on restart.
az_do webapp restart --resource-group "$RESOURCE_GROUP" --name "$BACKEND_NAME"
az_do webapp restart --resource-group "$RESOURCE_GROUP" --name "$FRONTEND_NAME"

log "credential mode ${mode}; next: smoke.sh --mode MODE --auth ${mode}"
