#!/usr/bin/env bash
# Creates the open starting point with the az CLI: resource group, virtual network with the
# integration and private-endpoint subnets, a container registry with the lockdown image
# (built by ACR Tasks from this repository), a Linux plan, the front end and the back end
# (pulling with their managed identities), and the front end's VNet integration with all
# outbound traffic routed into the VNet. Safe to run again: what exists is kept, settings
# are re-applied, secrets are generated once.
#
# Usage: create.sh [--dry-run] [--resource-group RG] [--location LOC] [--prefix PREFIX]
#                  [--rebuild]
#   --dry-run          print every az command, one per line, and run nothing
#   --resource-group   default $LOCKDOWN_RESOURCE_GROUP or rg-lockdown
#   --location         default $LOCKDOWN_LOCATION or westeurope
#   --prefix           names everything: PREFIX-fe, PREFIX-be, vnet-PREFIX, ... (app names
#                      are global: pick your own); default $LOCKDOWN_PREFIX or lockdown
#   --rebuild          build and push the image even if the tag exists
# Environment: LOCKDOWN_VNET_CIDR (10.20.0.0/16), LOCKDOWN_INTEGRATION_CIDR (10.20.1.0/24),
#   LOCKDOWN_PE_CIDR (10.20.2.0/24), LOCKDOWN_PLAN_SKU (P0V3), LOCKDOWN_IMAGE_TAG (latest).
# Next: lockdown.sh --mode service-endpoint|private-endpoint, then smoke.sh.

set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

rebuild=0
parse_common "$@"
for arg in "${REST_ARGS[@]}"; do
  case "$arg" in
    --rebuild) rebuild=1 ;;
    *) die_usage "unknown argument: $arg" ;;
  esac
done

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
require_login

# Resource group.
if az_missing group show --name "$RESOURCE_GROUP"; then
  az_do group create --name "$RESOURCE_GROUP" --location "$LOCATION" --tags app=lockdown
fi

# Virtual network: the integration subnet is delegated to App Service plans; the other one
# holds private endpoints.
if az_missing network vnet show --resource-group "$RESOURCE_GROUP" --name "$VNET_NAME"; then
  az_do network vnet create --resource-group "$RESOURCE_GROUP" --name "$VNET_NAME" \
    --location "$LOCATION" --address-prefixes "$VNET_CIDR"
fi
if az_missing network vnet subnet show --resource-group "$RESOURCE_GROUP" --vnet-name "$VNET_NAME" --name "$INTEGRATION_SUBNET"; then
  az_do network vnet subnet create --resource-group "$RESOURCE_GROUP" --vnet-name "$VNET_NAME" \
    --name "$INTEGRATION_SUBNET" --address-prefixes "$INTEGRATION_CIDR" --delegations Microsoft.Web/serverFarms
fi
if az_missing network vnet subnet show --resource-group "$RESOURCE_GROUP" --vnet-name "$VNET_NAME" --name "$PE_SUBNET"; then
  az_do network vnet subnet create --resource-group "$RESOURCE_GROUP" --vnet-name "$VNET_NAME" \
    --name "$PE_SUBNET" --address-prefixes "$PE_CIDR" --private-endpoint-network-policies Disabled
fi

# Registry and image. ACR Tasks builds the Dockerfile in Azure: no local Docker needed.
if az_missing acr show --resource-group "$RESOURCE_GROUP" --name "$ACR_NAME"; then
  az_do acr create --resource-group "$RESOURCE_GROUP" --name "$ACR_NAME" --location "$LOCATION" \
    --sku Basic --admin-enabled false
fi
if [[ "$rebuild" -eq 1 ]] || az_missing acr repository show --name "$ACR_NAME" --image "${IMAGE_REPOSITORY}:${IMAGE_TAG}"; then
  if [[ "$DRY_RUN" -eq 0 ]]; then
    cd "$repo_root"
  fi
  az_do acr build --registry "$ACR_NAME" --image "${IMAGE_REPOSITORY}:${IMAGE_TAG}" --file Dockerfile .
fi
acr_id="$(az_value "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/${RESOURCE_GROUP}/providers/Microsoft.ContainerRegistry/registries/${ACR_NAME}" \
  acr show --resource-group "$RESOURCE_GROUP" --name "$ACR_NAME" --query id --output tsv)"

# Plan.
if az_missing appservice plan show --resource-group "$RESOURCE_GROUP" --name "$PLAN_NAME"; then
  az_do appservice plan create --resource-group "$RESOURCE_GROUP" --name "$PLAN_NAME" \
    --location "$LOCATION" --is-linux --sku "$PLAN_SKU" --number-of-workers 1
fi

# configure_app NAME ROLE : the app with its startup command (the role), managed-identity
# pull, and the platform settings both apps share.
configure_app() {
  local app="$1" role="$2" principal_id count
  if az_missing webapp show --resource-group "$RESOURCE_GROUP" --name "$app"; then
    az_do webapp create --resource-group "$RESOURCE_GROUP" --name "$app" --plan "$PLAN_NAME" \
      --container-image-name "$IMAGE" --startup-file "$role" --assign-identity '[system]'
  fi
  principal_id="$(az_value "<${app}-principal-id>" webapp identity assign --resource-group "$RESOURCE_GROUP" --name "$app" \
    --query principalId --output tsv)"
  count="$(az_value 0 role assignment list --assignee-object-id "$principal_id" --role AcrPull --scope "$acr_id" \
    --query 'length(@)' --output tsv)"
  if [[ "$count" == "0" ]]; then
    az_do role assignment create --assignee-object-id "$principal_id" --assignee-principal-type ServicePrincipal \
      --role AcrPull --scope "$acr_id"
  fi
  az_do webapp config set --resource-group "$RESOURCE_GROUP" --name "$app" \
    --startup-file "$role" --acr-use-identity true --acr-identity '[system]' --always-on true \
    --ftps-state Disabled --http20-enabled true --min-tls-version 1.2 --remote-debugging-enabled false \
    --generic-configurations healthCheckPath=/healthz
  az_do webapp update --resource-group "$RESOURCE_GROUP" --name "$app" \
    --https-only true --basic-auth Disabled --client-affinity-enabled true
}

configure_app "$FRONTEND_NAME" frontend
configure_app "$BACKEND_NAME" backend

backend_url="https://${BACKEND_NAME}.azurewebsites.net"
az_do webapp config appsettings set --resource-group "$RESOURCE_GROUP" --name "$FRONTEND_NAME" \
  --settings "BACKEND_URL=${backend_url}" "INTEGRATION_SUBNET=${INTEGRATION_CIDR}" WEBSITES_PORT=8080 \
  WEBSITES_ENABLE_APP_SERVICE_STORAGE=false
az_do webapp config appsettings set --resource-group "$RESOURCE_GROUP" --name "$BACKEND_NAME" \
  --settings CLIENT_IP_SOURCE=x-client-ip DATA_DIR=/home/data WEBSITES_ENABLE_APP_SERVICE_STORAGE=true \
  WEBSITES_PORT=8080

# Secrets: the back-end key (API_KEYS on the back end, BACKEND_API_KEY on the front end) and
# the /diag token, generated once. They go through a file, never on a command line.
# (The azd path keeps them in Key Vault and uses Key Vault references instead.)
secret_count="$(az_value 0 webapp config appsettings list --resource-group "$RESOURCE_GROUP" --name "$BACKEND_NAME" \
  --query "[?name=='API_KEYS'] | length(@)" --output tsv)"
if [[ "$secret_count" == "0" ]]; then
  if [[ "$DRY_RUN" -eq 1 ]]; then
    print_cmd az webapp config appsettings set --resource-group "$RESOURCE_GROUP" --name "$BACKEND_NAME" --settings '@<backend-secrets.json>'
    print_cmd az webapp config appsettings set --resource-group "$RESOURCE_GROUP" --name "$FRONTEND_NAME" --settings '@<frontend-secrets.json>'
  else
    secrets_dir="$(mktemp -d)"
    trap 'rm -rf "$secrets_dir"' EXIT
    api_key="$(new_secret)"
    diag_token="$(new_secret)"
    (
      umask 077
      printf '[{"name": "API_KEYS", "value": "%s", "slotSetting": false}, {"name": "DIAG_TOKEN", "value": "%s", "slotSetting": false}]\n' \
        "$api_key" "$diag_token" >"$secrets_dir/backend.json"
      # BACKEND_DIAG_TOKEN: the back end's DIAG_TOKEN, for /diag/backend/... (checks run in the
      # back end through the front end once the back end has no public entry).
      printf '[{"name": "BACKEND_API_KEY", "value": "%s", "slotSetting": false}, {"name": "DIAG_TOKEN", "value": "%s", "slotSetting": false}, {"name": "BACKEND_DIAG_TOKEN", "value": "%s", "slotSetting": false}]\n' \
        "$api_key" "$diag_token" "$diag_token" >"$secrets_dir/frontend.json"
    )
    az_do webapp config appsettings set --resource-group "$RESOURCE_GROUP" --name "$BACKEND_NAME" --settings "@$secrets_dir/backend.json"
    az_do webapp config appsettings set --resource-group "$RESOURCE_GROUP" --name "$FRONTEND_NAME" --settings "@$secrets_dir/frontend.json"
  fi
else
  log "secrets already set on ${BACKEND_NAME}: kept"
fi

# Regional VNet integration of the front end, all outbound traffic into the VNet.
subnet_id="$(integration_subnet_id)"
current_subnet="$(az_value "" webapp show --resource-group "$RESOURCE_GROUP" --name "$FRONTEND_NAME" \
  --query virtualNetworkSubnetId --output tsv)"
if [[ "${current_subnet,,}" != "${subnet_id,,}" ]]; then
  az_do webapp vnet-integration add --resource-group "$RESOURCE_GROUP" --name "$FRONTEND_NAME" \
    --vnet "$VNET_NAME" --subnet "$INTEGRATION_SUBNET"
fi
az_do webapp config set --resource-group "$RESOURCE_GROUP" --name "$FRONTEND_NAME" --vnet-route-all-enabled true

az_do webapp restart --resource-group "$RESOURCE_GROUP" --name "$FRONTEND_NAME"
az_do webapp restart --resource-group "$RESOURCE_GROUP" --name "$BACKEND_NAME"

log "created: https://${FRONTEND_NAME}.azurewebsites.net (front end), ${backend_url} (back end, open)"
log "next: smoke.sh --mode none, then lockdown.sh --mode service-endpoint or --mode private-endpoint"
