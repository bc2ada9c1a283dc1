#!/usr/bin/env bash
# Takes the back end back to open (the state create.sh leaves), whichever lockdown was
# applied: public network access on, private endpoint and privatelink zone removed, the
# service-endpoint rule removed, default action Allow, ALLOWED_CALLERS removed, the
# Microsoft.Web service endpoint removed from the integration subnet. The front end keeps
# its VNet integration. Safe to run again.
#
# Usage: undo.sh [--dry-run] [--resource-group RG] [--location LOC] [--prefix PREFIX]
#   --dry-run   print every az command, one per line, and run nothing
# Next: smoke.sh --mode none.

set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

parse_common "$@"
if [[ ${#REST_ARGS[@]} -gt 0 ]]; then
  die_usage "unknown argument: ${REST_ARGS[0]}"
fi

require_login

az_do resource update --resource-group "$RESOURCE_GROUP" --name "$BACKEND_NAME" \
    --resource-type Microsoft.Web/sites --set properties.publicNetworkAccess=Enabled

# Deleting the private endpoint deletes its zone group; the zone and its link go next.
if az_present network private-endpoint show --resource-group "$RESOURCE_GROUP" --name "$PE_NAME"; then
  az_do network private-endpoint delete --resource-group "$RESOURCE_GROUP" --name "$PE_NAME"
fi
if az_present network private-dns link vnet show --resource-group "$RESOURCE_GROUP" --zone-name "$DNS_ZONE" --name "$DNS_LINK_NAME"; then
  az_do network private-dns link vnet delete --resource-group "$RESOURCE_GROUP" --zone-name "$DNS_ZONE" \
    --name "$DNS_LINK_NAME" --yes
fi
if az_present network private-dns zone show --resource-group "$RESOURCE_GROUP" --name "$DNS_ZONE"; then
  az_do network private-dns zone delete --resource-group "$RESOURCE_GROUP" --name "$DNS_ZONE" --yes
fi

rules="$(az_value 1 webapp config access-restriction show --resource-group "$RESOURCE_GROUP" --name "$BACKEND_NAME" \
  --query "ipSecurityRestrictions[?name=='${RULE_NAME}'] | length(@)" --output tsv)"
if [[ "$rules" != "0" ]]; then
  az_do webapp config access-restriction remove --resource-group "$RESOURCE_GROUP" --name "$BACKEND_NAME" \
    --rule-name "$RULE_NAME"
fi
az_do webapp config access-restriction set --resource-group "$RESOURCE_GROUP" --name "$BACKEND_NAME" \
  --default-action Allow --use-same-restrictions-for-scm-site true

az_do webapp config appsettings delete --resource-group "$RESOURCE_GROUP" --name "$BACKEND_NAME" \
  --setting-names ALLOWED_CALLERS

# Last: with the rule gone, nothing depends on the service endpoint any more.
endpoints="$(az_value 1 network vnet subnet show --resource-group "$RESOURCE_GROUP" --vnet-name "$VNET_NAME" \
  --name "$INTEGRATION_SUBNET" --query "serviceEndpoints[?service=='Microsoft.Web'] | length(@)" --output tsv)"
if [[ "$endpoints" != "0" ]]; then
  az_do network vnet subnet update --resource-group "$RESOURCE_GROUP" --vnet-name "$VNET_NAME" \
    --name "$INTEGRATION_SUBNET" --remove serviceEndpoints
fi

log "back end open again; next: smoke.sh --mode none"
