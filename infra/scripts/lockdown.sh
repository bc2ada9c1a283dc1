#!/usr/bin/env bash
# Locks the back end down so that only the front end can call it, with the az CLI, on what
# create.sh made. Safe to run again.
#
# Usage: lockdown.sh --mode service-endpoint|private-endpoint [--dry-run]
#                    [--resource-group RG] [--location LOC] [--prefix PREFIX]
#   service-endpoint  Microsoft.Web service endpoint on the integration subnet, an access
#                     restriction on the back end allowing only that subnet, default action
#                     Deny, the SCM site following the same rules. Refused while the back
#                     end has a private endpoint (App Service does not support both).
#   private-endpoint  removes the service-endpoint rule, adds a private endpoint (group
#                     `sites`) in the private-endpoint subnet, the privatelink.azurewebsites.net
#                     zone linked to the VNet with a zone group, and sets public network
#                     access to Disabled (a private endpoint alone does not block it).
#   --dry-run         print every az command, one per line, and run nothing
# Both modes set ALLOWED_CALLERS on the back end to the integration subnet.
# Next: smoke.sh --mode MODE (a service endpoint can take minutes, rarely hours, to apply:
# smoke.sh waits).

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
  service-endpoint|private-endpoint) ;;
  "") die_usage "--mode is required: service-endpoint or private-endpoint" ;;
  *) die_usage "unknown mode '$mode': service-endpoint or private-endpoint" ;;
esac

require_login

lock_service_endpoint() {
  if az_present network private-endpoint show --resource-group "$RESOURCE_GROUP" --name "$PE_NAME" \
     && [[ "$DRY_RUN" -eq 0 ]]; then
    die "${BACKEND_NAME} has a private endpoint (${PE_NAME}); service-endpoint rules are not supported next to it. Run undo.sh first."
  fi

  # Public access must be on for a service endpoint (undo of private-endpoint mode).
  az_do resource update --resource-group "$RESOURCE_GROUP" --name "$BACKEND_NAME" \
    --resource-type Microsoft.Web/sites --set properties.publicNetworkAccess=Enabled

  local endpoints
  endpoints="$(az_value 0 network vnet subnet show --resource-group "$RESOURCE_GROUP" --vnet-name "$VNET_NAME" \
    --name "$INTEGRATION_SUBNET" --query "serviceEndpoints[?service=='Microsoft.Web'] | length(@)" --output tsv)"
  if [[ "$endpoints" == "0" ]]; then
    az_do network vnet subnet update --resource-group "$RESOURCE_GROUP" --vnet-name "$VNET_NAME" \
      --name "$INTEGRATION_SUBNET" --service-endpoints Microsoft.Web
  fi

  local rules subnet_id
  subnet_id="$(integration_subnet_id)"
  rules="$(az_value 0 webapp config access-restriction show --resource-group "$RESOURCE_GROUP" --name "$BACKEND_NAME" \
    --query "ipSecurityRestrictions[?name=='${RULE_NAME}'] | length(@)" --output tsv)"
  if [[ "$rules" == "0" ]]; then
    # --subnet takes the resource ID read from Azure: rules match IDs case-sensitively.
    az_do webapp config access-restriction add --resource-group "$RESOURCE_GROUP" --name "$BACKEND_NAME" \
      --rule-name "$RULE_NAME" --action Allow --priority 100 --subnet "$subnet_id" \
      --description "front end through its VNet integration"
  fi
  az_do webapp config access-restriction set --resource-group "$RESOURCE_GROUP" --name "$BACKEND_NAME" \
    --default-action Deny --use-same-restrictions-for-scm-site true
}

lock_private_endpoint() {
  local rules
  rules="$(az_value 1 webapp config access-restriction show --resource-group "$RESOURCE_GROUP" --name "$BACKEND_NAME" \
    --query "ipSecurityRestrictions[?name=='${RULE_NAME}'] | length(@)" --output tsv)"
  if [[ "$rules" != "0" ]]; then
    az_do webapp config access-restriction remove --resource-group "$RESOURCE_GROUP" --name "$BACKEND_NAME" \
      --rule-name "$RULE_NAME"
  fi
  # Access restrictions do not apply to private-endpoint traffic; Deny only matters if
  # public access is turned back on.
  az_do webapp config access-restriction set --resource-group "$RESOURCE_GROUP" --name "$BACKEND_NAME" \
    --default-action Deny --use-same-restrictions-for-scm-site true

  local backend_id
  backend_id="$(az_value "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/${RESOURCE_GROUP}/providers/Microsoft.Web/sites/${BACKEND_NAME}" \
    webapp show --resource-group "$RESOURCE_GROUP" --name "$BACKEND_NAME" --query id --output tsv)"
  private_endpoint_in_zone "$PE_NAME" "$backend_id" sites "$DNS_ZONE" privatelink-azurewebsites-net
  # A private endpoint alone no longer blocks the public endpoint: disable it explicitly.
  az_do resource update --resource-group "$RESOURCE_GROUP" --name "$BACKEND_NAME" \
    --resource-type Microsoft.Web/sites --set properties.publicNetworkAccess=Disabled
}

case "$mode" in
  service-endpoint) lock_service_endpoint ;;
  private-endpoint) lock_private_endpoint ;;
esac

# Defence in depth in the app: it checks the caller's address itself.
az_do webapp config appsettings set --resource-group "$RESOURCE_GROUP" --name "$BACKEND_NAME" \
  --settings "ALLOWED_CALLERS=${INTEGRATION_CIDR}"

log "locked down (${mode}); next: smoke.sh --mode ${mode}"
