#!/usr/bin/env bash
# Puts Azure Front Door (Standard) in front of the front end, as modules/front-door*.bicep do:
# a profile, an endpoint, an origin group whose health probe asks GET /healthz, the front end
# as origin (its own host name as the origin host header), a route for /* over HTTPS without
# caching; then the front end allows only this profile (the AzureFrontDoor.Backend service tag
# with an X-Azure-FDID header filter of its frontDoorId, default Deny), trusts it
# (FRONT_DOOR_ID), and its SCM site gets rules of its own (default Deny, the deploy runners
# allowed). Safe to run again.
#
# Usage: front-door.sh [--dry-run] [--resource-group RG] [--location LOC] [--prefix PREFIX]
#                      [--deploy-runner CIDR]...
#   --dry-run         print every az command, one per line, and run nothing
#   --deploy-runner   a CIDR allowed to the front end's SCM (Kudu) site (repeatable); none: nobody
# Next: smoke-config.sh with FRONT=frontDoor, FRONT_DOOR_ENDPOINT and FRONT_DOOR_ID.

set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

parse_common "$@"
runners=()
set -- "${REST_ARGS[@]+"${REST_ARGS[@]}"}"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --deploy-runner)
      [[ "${2:-}" =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}(/[0-9]{1,2})?$ ]] || die_usage "--deploy-runner needs an IPv4 CIDR: '${2:-}'"
      runners+=("$2"); shift 2 ;;
    *) die_usage "unknown argument: $1" ;;
  esac
done

readonly PROFILE_NAME="afd-${PREFIX}"
readonly ENDPOINT_NAME="${PREFIX}-fe"
readonly ORIGIN_GROUP="frontend"
readonly FRONT_DOOR_RULE="allow-our-front-door"

require_login

if az_missing afd profile show --resource-group "$RESOURCE_GROUP" --profile-name "$PROFILE_NAME"; then
  az_do afd profile create --resource-group "$RESOURCE_GROUP" --profile-name "$PROFILE_NAME" \
    --sku Standard_AzureFrontDoor
fi
if az_missing afd endpoint show --resource-group "$RESOURCE_GROUP" --profile-name "$PROFILE_NAME" --endpoint-name "$ENDPOINT_NAME"; then
  az_do afd endpoint create --resource-group "$RESOURCE_GROUP" --profile-name "$PROFILE_NAME" \
    --endpoint-name "$ENDPOINT_NAME" --enabled-state Enabled
fi
if az_missing afd origin-group show --resource-group "$RESOURCE_GROUP" --profile-name "$PROFILE_NAME" --origin-group-name "$ORIGIN_GROUP"; then
  # GET, not HEAD: /healthz answers GET only.
  az_do afd origin-group create --resource-group "$RESOURCE_GROUP" --profile-name "$PROFILE_NAME" \
    --origin-group-name "$ORIGIN_GROUP" --probe-path /healthz --probe-request-type GET --probe-protocol Https \
    --probe-interval-in-seconds 30 --sample-size 4 --successful-samples-required 3 \
    --additional-latency-in-milliseconds 50
fi
frontend_host="$(az_value "${FRONTEND_NAME}.azurewebsites.net" webapp show --resource-group "$RESOURCE_GROUP" \
  --name "$FRONTEND_NAME" --query defaultHostName --output tsv)"
if az_missing afd origin show --resource-group "$RESOURCE_GROUP" --profile-name "$PROFILE_NAME" --origin-group-name "$ORIGIN_GROUP" --origin-name frontend; then
  az_do afd origin create --resource-group "$RESOURCE_GROUP" --profile-name "$PROFILE_NAME" \
    --origin-group-name "$ORIGIN_GROUP" --origin-name frontend --host-name "$frontend_host" \
    --origin-host-header "$frontend_host" --priority 1 --weight 1000 --enabled-state Enabled \
    --http-port 80 --https-port 443 --enforce-certificate-name-check true
fi
if az_missing afd route show --resource-group "$RESOURCE_GROUP" --profile-name "$PROFILE_NAME" --endpoint-name "$ENDPOINT_NAME" --route-name frontend; then
  # No caching: the BFF's pages and JSON are per user.
  az_do afd route create --resource-group "$RESOURCE_GROUP" --profile-name "$PROFILE_NAME" \
    --endpoint-name "$ENDPOINT_NAME" --route-name frontend --origin-group "$ORIGIN_GROUP" \
    --supported-protocols Https --patterns-to-match '/*' --forwarding-protocol HttpsOnly \
    --link-to-default-domain Enabled --https-redirect Disabled --enable-caching false
fi

front_door_id="$(az_value "6a1b2c3d-4e5f-4a1b-9c8d-00000000f00d" afd profile show --resource-group "$RESOURCE_GROUP" \
  --profile-name "$PROFILE_NAME" --query frontDoorId --output tsv)"
[[ "$front_door_id" =~ ^[0-9A-Fa-f-]{36}$ ]] || die "the profile has no frontDoorId yet: '$front_door_id'"

# The service tag alone admits every customer's Front Door: the header filter makes it ours.
rules="$(az_value 0 webapp config access-restriction show --resource-group "$RESOURCE_GROUP" --name "$FRONTEND_NAME" \
  --query "ipSecurityRestrictions[?name=='${FRONT_DOOR_RULE}'] | length(@)" --output tsv)"
if [[ "$rules" == "0" ]]; then
  az_do webapp config access-restriction add --resource-group "$RESOURCE_GROUP" --name "$FRONTEND_NAME" \
    --rule-name "$FRONT_DOOR_RULE" --action Allow --priority 100 --service-tag AzureFrontDoor.Backend \
    --http-header "x-azure-fdid=${front_door_id}"
fi
az_do webapp config access-restriction set --resource-group "$RESOURCE_GROUP" --name "$FRONTEND_NAME" \
  --default-action Deny --use-same-restrictions-for-scm-site false --scm-default-action Deny
i=0
for cidr in "${runners[@]+"${runners[@]}"}"; do
  rules="$(az_value 0 webapp config access-restriction show --resource-group "$RESOURCE_GROUP" --name "$FRONTEND_NAME" \
    --query "scmIpSecurityRestrictions[?name=='allow-deploy-runner-${i}'] | length(@)" --output tsv)"
  if [[ "$rules" == "0" ]]; then
    az_do webapp config access-restriction add --resource-group "$RESOURCE_GROUP" --name "$FRONTEND_NAME" \
      --scm-site true --rule-name "allow-deploy-runner-${i}" --action Allow --priority "$((100 + i))" --ip-address "$cidr"
  fi
  i=$((i + 1))
done
az_do webapp config appsettings set --resource-group "$RESOURCE_GROUP" --name "$FRONTEND_NAME" \
  --settings "FRONT_DOOR_ID=${front_door_id}"

endpoint="$(az_value "${ENDPOINT_NAME}-b3c4d5e6f7a8b9c0.z01.azurefd.net" afd endpoint show --resource-group "$RESOURCE_GROUP" \
  --profile-name "$PROFILE_NAME" --endpoint-name "$ENDPOINT_NAME" --query hostName --output tsv)"
log "Front Door endpoint https://${endpoint} (profile ${front_door_id}); the front end answers only through it"
log "smoke config: FRONT=frontDoor FRONT_DOOR_ENDPOINT=${endpoint} FRONT_DOOR_ID=${front_door_id}"
