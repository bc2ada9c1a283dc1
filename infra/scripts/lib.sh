# shellcheck shell=bash disable=SC2034
# (SC2034: the settings and names below are used by the scripts that source this file.)
# Shared by the az CLI scripts (create.sh, lockdown.sh, undo.sh, smoke.sh): settings,
# argument parsing, and the `az` wrappers that make --dry-run and idempotence work.
#
# Dry run: every az command, the read-only checks included, is printed on stdout, one per
# line, in a stable form, and nothing runs. Checks then take the answer that makes the
# script print the change it would make, so a dry run shows the whole path.
# Real run: each change is echoed on stderr as "+ az ..." before it runs.

# Dry-run lines go to the script's original stdout, even from inside $(...).
exec 3>&1

DRY_RUN=0

# Settings: flags override the environment, the environment overrides the defaults.
RESOURCE_GROUP="${LOCKDOWN_RESOURCE_GROUP:-rg-lockdown}"
LOCATION="${LOCKDOWN_LOCATION:-westeurope}"
PREFIX="${LOCKDOWN_PREFIX:-lockdown}"
VNET_CIDR="${LOCKDOWN_VNET_CIDR:-10.20.0.0/16}"
INTEGRATION_CIDR="${LOCKDOWN_INTEGRATION_CIDR:-10.20.1.0/24}"
PE_CIDR="${LOCKDOWN_PE_CIDR:-10.20.2.0/24}"
PLAN_SKU="${LOCKDOWN_PLAN_SKU:-P0V3}"
IMAGE_TAG="${LOCKDOWN_IMAGE_TAG:-latest}"

readonly INTEGRATION_SUBNET="snet-integration"
readonly PE_SUBNET="snet-private-endpoints"
readonly RULE_NAME="allow-integration-subnet"
readonly DNS_ZONE="privatelink.azurewebsites.net"
readonly ZONE_GROUP="default"
readonly IMAGE_REPOSITORY="lockdown"

# Usage text of the calling script: its header comment, from line 2 to the first blank line.
usage() {
  awk 'NR > 1 && /^$/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"
}

die() {
  echo "$(basename "$0"): $*" >&2
  exit 1
}

die_usage() {
  echo "$(basename "$0"): $*" >&2
  echo "Run $(basename "$0") --help for usage." >&2
  exit 2
}

log() {
  echo "$(basename "$0"): $*" >&2
}

# parse_common ARGS... : takes the options every script shares and leaves the others in
# REST_ARGS for the script to handle.
REST_ARGS=()
parse_common() {
  REST_ARGS=()
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --dry-run) DRY_RUN=1; shift ;;
      --resource-group|-g) RESOURCE_GROUP="${2:?$1 needs a value}"; shift 2 ;;
      --location|-l) LOCATION="${2:?$1 needs a value}"; shift 2 ;;
      --prefix) PREFIX="${2:?$1 needs a value}"; shift 2 ;;
      -h|--help) usage; exit 0 ;;
      *) REST_ARGS+=("$1"); shift ;;
    esac
  done
  derive_names
}

# Resource names follow from the prefix, so every script finds what create.sh made.
derive_names() {
  [[ "$PREFIX" =~ ^[a-z][a-z0-9-]{1,38}[a-z0-9]$ ]] \
    || die_usage "--prefix must be 3-40 lowercase letters, digits or hyphens, starting with a letter: '$PREFIX'"
  [[ "$RESOURCE_GROUP" =~ ^[A-Za-z0-9._()-]{1,90}$ ]] || die_usage "invalid resource group name: '$RESOURCE_GROUP'"
  [[ "$LOCATION" =~ ^[a-z0-9]+$ ]] || die_usage "invalid location: '$LOCATION' (e.g. westeurope)"
  VNET_NAME="vnet-${PREFIX}"
  PLAN_NAME="plan-${PREFIX}"
  FRONTEND_NAME="${PREFIX}-fe"
  BACKEND_NAME="${PREFIX}-be"
  ACR_NAME="${PREFIX//-/}acr"
  PE_NAME="pe-${BACKEND_NAME}"
  DNS_LINK_NAME="link-${VNET_NAME}"
  IMAGE="${ACR_NAME}.azurecr.io/${IMAGE_REPOSITORY}:${IMAGE_TAG}"
}

# Prints one argument so that a shell reads it back as the same word.
shell_quote() {
  local arg="$1"
  if [[ "$arg" =~ ^[A-Za-z0-9_./:=@%+,-]+$ ]]; then
    printf '%s' "$arg"
  elif [[ "$arg" == *"'"* && "$arg" != *[\"\$\`\\!]* ]]; then
    printf '"%s"' "$arg"
  else
    printf "'%s'" "${arg//\'/\'\\\'\'}"
  fi
}

# Prints a command line in the stable form used by dry runs and the expected lists.
format_cmd() {
  local out="" arg
  for arg in "$@"; do
    out+="${out:+ }$(shell_quote "$arg")"
  done
  printf '%s\n' "$out"
}

print_cmd() {
  format_cmd "$@" >&3
}

require_az() {
  if [[ "$DRY_RUN" -eq 0 ]]; then
    command -v az >/dev/null 2>&1 || die "the Azure CLI (az) is not installed"
  fi
}

# az_do ARGS... : a change. Printed in a dry run, echoed and run otherwise.
az_do() {
  if [[ "$DRY_RUN" -eq 1 ]]; then
    print_cmd az "$@"
    return 0
  fi
  echo "+ $(format_cmd az "$@")" >&2
  az "$@" --only-show-errors --output none
}

# az_missing ARGS... : true when `az ARGS` fails (the resource is not there).
# A dry run prints the check and answers true, so the creation that follows is printed.
az_missing() {
  if [[ "$DRY_RUN" -eq 1 ]]; then
    print_cmd az "$@"
    return 0
  fi
  ! az "$@" --only-show-errors --output none >/dev/null 2>&1
}

# az_present ARGS... : true when `az ARGS` succeeds (the resource is there).
# A dry run prints the check and answers true, so the removal that follows is printed.
az_present() {
  if [[ "$DRY_RUN" -eq 1 ]]; then
    print_cmd az "$@"
    return 0
  fi
  az "$@" --only-show-errors --output none >/dev/null 2>&1
}

# az_value DRY_RUN_ANSWER ARGS... : prints the output of `az ARGS` (use --query and
# --output tsv). A dry run prints the command and answers DRY_RUN_ANSWER instead.
az_value() {
  local answer="$1"
  shift
  if [[ "$DRY_RUN" -eq 1 ]]; then
    print_cmd az "$@"
    printf '%s\n' "$answer"
    return 0
  fi
  az "$@" --only-show-errors
}

# Fails early with a clear message when nobody is signed in.
require_login() {
  require_az
  local subscription
  subscription="$(az_value "00000000-0000-0000-0000-000000000000" account show --query id --output tsv)" \
    || die "not signed in to Azure: run az login"
  [[ -n "$subscription" ]] || die "no Azure subscription selected: run az account set --subscription ID"
  log "subscription ${subscription}, resource group ${RESOURCE_GROUP}, prefix ${PREFIX}"
}

# The subnet resource ID as App Service stores it. Access rules compare resource IDs
# case-sensitively, so it is always taken from Azure, never typed by hand.
integration_subnet_id() {
  az_value "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/${RESOURCE_GROUP}/providers/Microsoft.Network/virtualNetworks/${VNET_NAME}/subnets/${INTEGRATION_SUBNET}" \
    network vnet subnet show --resource-group "$RESOURCE_GROUP" --vnet-name "$VNET_NAME" --name "$INTEGRATION_SUBNET" --query id --output tsv
}

# Generates a secret of 40 letters and digits.
new_secret() {
  python3 -c 'import secrets, string; a = string.ascii_letters + string.digits; print("".join(secrets.choice(a) for _ in range(40)))'
}

# private_endpoint_in_zone ENDPOINT RESOURCE_ID GROUP ZONE ZONE_CONFIG : a private endpoint named
# ENDPOINT for RESOURCE_ID (sub-resource GROUP) in the private-endpoint subnet, the privatelink
# ZONE linked to the VNet, and the zone group that writes the endpoint's A record into ZONE (its
# config named ZONE_CONFIG). Each step only when it is missing.
private_endpoint_in_zone() {
  local endpoint="$1" resource_id="$2" group="$3" zone="$4" zone_config="$5"
  if az_missing network private-endpoint show --resource-group "$RESOURCE_GROUP" --name "$endpoint"; then
    az_do network private-endpoint create --resource-group "$RESOURCE_GROUP" --name "$endpoint" \
      --location "$LOCATION" --vnet-name "$VNET_NAME" --subnet "$PE_SUBNET" \
      --private-connection-resource-id "$resource_id" --group-id "$group" --connection-name "$endpoint"
  fi
  if az_missing network private-dns zone show --resource-group "$RESOURCE_GROUP" --name "$zone"; then
    az_do network private-dns zone create --resource-group "$RESOURCE_GROUP" --name "$zone"
  fi
  if az_missing network private-dns link vnet show --resource-group "$RESOURCE_GROUP" --zone-name "$zone" --name "$DNS_LINK_NAME"; then
    az_do network private-dns link vnet create --resource-group "$RESOURCE_GROUP" --zone-name "$zone" \
      --name "$DNS_LINK_NAME" --virtual-network "$VNET_NAME" --registration-enabled false
  fi
  if az_missing network private-endpoint dns-zone-group show --resource-group "$RESOURCE_GROUP" --endpoint-name "$endpoint" --name "$ZONE_GROUP"; then
    az_do network private-endpoint dns-zone-group create --resource-group "$RESOURCE_GROUP" --endpoint-name "$endpoint" \
      --name "$ZONE_GROUP" --private-dns-zone "$zone" --zone-name "$zone_config"
  fi
}
