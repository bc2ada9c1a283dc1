#!/usr/bin/env bash
# Writes the `probe smoke` config (TOML) for a deployment from its outputs, with the checks
# that must hold in the deployed lockdown mode:
#   none              both apps answer; the front end reaches the back end (reachability only)
#   service-endpoint  + the back end sees the front end's calls coming from the integration
#                     subnet, the internet is denied, the name resolves publicly (no stale
#                     privatelink CNAME, which would mean a private endpoint is in the way)
#   private-endpoint  + the front end resolves the back end to a private address through
#                     the privatelink zone, callers come from the integration subnet, the
#                     internet is denied
# Behind Front Door (FRONT=frontDoor, FRONT_DOOR_ENDPOINT set), the front end is checked through
# its endpoint (200 with X-Azure-Ref), and its own address must deny the internet, also with our
# profile's X-Azure-FDID forged; its SCM site must deny the internet.
# Behind Application Gateway (FRONT=appGateway, APP_GATEWAY_URL set), the front end must answer
# through the gateway's URL (200) and deny the internet at its own address and SCM site. The
# suite reaches the front end (its /diag, with a token) at https://<gateway host> only, never over
# plain HTTP: with the reference deployment's HTTP listener alone, those checks fail to connect
# until the production HTTPS listener is added (docs/app-gateway.md); the config says so.
# With a staging slot (BACKEND_STAGING_SLOT=true), the same lockdown is checked on the slot
# (`slot = "staging"`): the internet is denied, every front-end instance gets through.
# With the Entra credential (BACKEND_AUTH_MODE=entra), in every mode also: the back end refuses
# a call without a token (from the front end, through its /diag), and it let the front end in
# with its Entra token (the front end's /api/path, from here).
# In every mode, both apps' Key Vault references resolved (their /diag/env names no setting
# still holding @Microsoft.KeyVault(...)).
# With the back end on PostgreSQL (DATABASE_HOST), in every mode also, from inside the back end:
# the database's name resolves to a private address through its privatelink zone, every
# back-end instance connects on 5432 and the server answers as PostgreSQL over verified TLS
# (dependency = ...); from here, the database does not answer privately or at all. Once locked down the back end has no public entry, so its
# checks run through the front end's /diag/backend/ ([apps.backend] via = "frontend").
#
# Usage: smoke-config.sh [--from-file FILE] [--mode MODE] [--auth AUTH] [--output FILE]
#   (default)          read the outputs from the environment, as azd hooks get them
#   --from-file FILE   read KEY="value" lines, as `azd env get-values` prints them
#   --mode MODE        override LOCKDOWN_MODE: none, service-endpoint (serviceEndpoint),
#                      private-endpoint (privateEndpoint)
#   --auth AUTH        override BACKEND_AUTH_MODE: api-key (apiKey) or entra
#   --output FILE      write FILE (folders created) instead of printing
# Outputs read: FRONTEND_URL, BACKEND_URL, BACKEND_HOSTNAME (else taken from BACKEND_URL),
#   INTEGRATION_SUBNET_CIDR (required unless mode is none), LOCKDOWN_MODE, BACKEND_AUTH_MODE
#   (default api-key), DATABASE_HOST (empty: the embedded store, no data-tier checks), FRONT,
#   FRONT_DOOR_ENDPOINT, FRONT_DOOR_ID, APP_GATEWAY_URL (default: no front), BACKEND_STAGING_SLOT
#   (default false).
# Tokens are never written: the config names FRONTEND_DIAG_TOKEN and BACKEND_DIAG_TOKEN.

set -euo pipefail

die() {
  echo "smoke-config.sh: $*" >&2
  exit 2
}

from_file=""
mode_override=""
auth_override=""
output=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --from-file) from_file="${2:-}"; shift 2 || die "--from-file needs a file" ;;
    --mode) mode_override="${2:-}"; shift 2 || die "--mode needs a value" ;;
    --auth) auth_override="${2:-}"; shift 2 || die "--auth needs a value" ;;
    --output) output="${2:-}"; shift 2 || die "--output needs a file" ;;
    -h|--help) awk 'NR > 1 && /^$/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
    *) die "unknown argument: $1" ;;
  esac
done

declare -A outputs=()
readonly KNOWN_KEYS="FRONTEND_URL BACKEND_URL BACKEND_HOSTNAME INTEGRATION_SUBNET_CIDR LOCKDOWN_MODE BACKEND_AUTH_MODE DATABASE_HOST FRONT FRONT_DOOR_ENDPOINT FRONT_DOOR_ID APP_GATEWAY_URL BACKEND_STAGING_SLOT"

if [[ -n "$from_file" ]]; then
  [[ -r "$from_file" ]] || die "cannot read $from_file"
  line_no=0
  while IFS= read -r line || [[ -n "$line" ]]; do
    line_no=$((line_no + 1))
    line="${line%$'\r'}"
    [[ -z "${line//[[:space:]]/}" || "$line" =~ ^[[:space:]]*# ]] && continue
    [[ "$line" =~ ^(export[[:space:]]+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$ ]] \
      || die "$from_file:$line_no: not a KEY=\"value\" line"
    key="${BASH_REMATCH[2]}"
    value="${BASH_REMATCH[3]}"
    if [[ "$value" =~ ^\"(.*)\"$ ]]; then
      value="${BASH_REMATCH[1]}"
      value="${value//\\\"/\"}"
      value="${value//\\\\/\\}"
    elif [[ "$value" =~ ^\'(.*)\'$ ]]; then
      value="${BASH_REMATCH[1]}"
    fi
    outputs["$key"]="$value"
  done <"$from_file"
else
  for key in $KNOWN_KEYS; do
    if [[ -n "${!key:-}" ]]; then
      outputs["$key"]="${!key}"
    fi
  done
fi

mode="${mode_override:-${outputs[LOCKDOWN_MODE]:-}}"
case "$mode" in
  none|open) mode="none" ;;
  serviceEndpoint|service-endpoint) mode="service-endpoint" ;;
  privateEndpoint|private-endpoint) mode="private-endpoint" ;;
  "") die "LOCKDOWN_MODE is not set (pass --mode)" ;;
  *) die "unknown lockdown mode '$mode': none, service-endpoint or private-endpoint" ;;
esac

auth="${auth_override:-${outputs[BACKEND_AUTH_MODE]:-api-key}}"
case "$auth" in
  api-key|apiKey) auth="api-key" ;;
  entra) ;;
  *) die "unknown credential mode '$auth': api-key or entra" ;;
esac

# normalize_url NAME : https://host[:port] without a trailing slash, or fail.
normalize_url() {
  local name="$1" url="${outputs[$1]:-}"
  [[ -n "$url" ]] || die "$name is not set"
  url="${url%/}"
  [[ "$url" =~ ^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?$ ]] || die "$name is not a base URL: '$url'"
  printf '%s' "$url"
}

frontend_url="$(normalize_url FRONTEND_URL)"
# Behind Front Door the suite reaches the front end (its /diag, its path report) through the
# endpoint; its own address is what must be denied.
front="${outputs[FRONT]:-none}"
direct_url="$frontend_url"
front_door_id=""
gateway_url=""
case "$front" in
  none|"") front="none" ;;
  frontDoor|front-door)
    front="front-door"
    endpoint="${outputs[FRONT_DOOR_ENDPOINT]:-}"
    [[ "$endpoint" =~ ^[A-Za-z0-9.-]+$ ]] || die "FRONT_DOOR_ENDPOINT is not a host name: '$endpoint'"
    front_door_id="${outputs[FRONT_DOOR_ID]:-}"
    [[ "$front_door_id" =~ ^[0-9A-Fa-f-]{36}$ ]] || die "FRONT_DOOR_ID is not a profile id (a GUID): '$front_door_id'"
    frontend_url="https://$endpoint"
    ;;
  appGateway|app-gateway)
    front="app-gateway"
    gateway_url="$(normalize_url APP_GATEWAY_URL)"
    # The token-carrying suite goes to the gateway's HTTPS listener, whatever the URL's scheme.
    frontend_url="https://${gateway_url#*://}"
    ;;
  *) die "unknown front '$front': none, frontDoor or appGateway" ;;
esac
backend_url="$(normalize_url BACKEND_URL)"
backend_host="${outputs[BACKEND_HOSTNAME]:-}"
if [[ -z "$backend_host" ]]; then
  backend_host="${backend_url#*://}"
  backend_host="${backend_host%%:*}"
fi
[[ "$backend_host" =~ ^[A-Za-z0-9.-]+$ ]] || die "BACKEND_HOSTNAME is not a host name: '$backend_host'"

database_host="${outputs[DATABASE_HOST]:-}"
if [[ -n "$database_host" ]]; then
  [[ "$database_host" =~ ^[A-Za-z0-9-]+\.postgres\.database\.azure\.com$ ]] \
    || die "DATABASE_HOST must be the server's public name (NAME.postgres.database.azure.com): '$database_host'"
fi

subnet="${outputs[INTEGRATION_SUBNET_CIDR]:-}"
if [[ "$mode" != "none" ]]; then
  [[ -n "$subnet" ]] || die "INTEGRATION_SUBNET_CIDR is not set (needed in mode $mode)"
  [[ "$subnet" =~ ^([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})/([0-9]{1,2})$ ]] \
    || die "INTEGRATION_SUBNET_CIDR is not an IPv4 CIDR: '$subnet'"
  for octet in "${BASH_REMATCH[@]:1:4}"; do
    (( 10#$octet <= 255 )) || die "INTEGRATION_SUBNET_CIDR is not an IPv4 CIDR: '$subnet'"
  done
  (( 10#${BASH_REMATCH[5]} <= 32 )) || die "INTEGRATION_SUBNET_CIDR is not an IPv4 CIDR: '$subnet'"
fi

check() {
  # check NAME FROM ACTION TARGET EXPECT [INSTANCES]
  printf '\n[[check]]\nname = "%s"\nfrom = "%s"\n' "$1" "$2"
  if [[ -n "${6:-}" ]]; then
    printf 'instances = "%s"\n' "$6"
  fi
  printf '%s = "%s"\nexpect = { %s }\n' "$3" "$4" "$5"
}

render() {
  # What the back end must say let the front end in (checked with caller_in, or alone).
  local caller_auth="" credential=""
  if [[ "$auth" == "entra" ]]; then
    caller_auth=', caller_auth = "entra"'
    credential=", Entra credential"
  fi
  printf '# Expectations for a lockdown deployment, mode %s%s.\n' "$mode" "$credential"
  printf '# Written by infra/scripts/smoke-config.sh from the deployment outputs: write it again after a change.\n'
  printf '# Tokens never live here: token_env names the variable.\n'
  printf '\n[apps.frontend]\nurl = "%s"\ntoken_env = "FRONTEND_DIAG_TOKEN"\n' "$frontend_url"
  if [[ "$mode" == "none" ]]; then
    printf '\n[apps.backend]\nurl = "%s"\ntoken_env = "BACKEND_DIAG_TOKEN"\n' "$backend_url"
  else
    # Locked down, the back end has no public entry: its /diag is reached through the front end.
    printf '\n[apps.backend]\nurl = "%s"\nvia = "frontend"\n' "$backend_url"
  fi

  if [[ "$front" == "front-door" ]]; then
    local direct_host="${direct_url#*://}"
    check "the front end answers through Front Door" here http "${frontend_url}/healthz" \
      'status = 200, header = "x-azure-ref"'
    check "the front end cannot be reached without Front Door" here http "${direct_url}/healthz" "denied = true"
    printf '\n[[check]]\nname = "%s"\nfrom = "here"\nhttp = "%s"\nheaders = { "X-Azure-FDID" = "%s" }\nexpect = { denied = true }\n' \
      "a forged X-Azure-FDID does not get around Front Door" "${direct_url}/healthz" "$front_door_id"
    check "the internet cannot reach the front end's SCM site" here http \
      "https://${direct_host%%.*}.scm.${direct_host#*.}/" "denied = true"
  elif [[ "$front" == "app-gateway" ]]; then
    local direct_host="${direct_url#*://}"
    if [[ "$gateway_url" == http://* ]]; then
      printf '\n# The gateway has no HTTPS listener yet (APP_GATEWAY_URL is %s): the checks that run\n' "$gateway_url"
      printf '# in the front end go to %s and fail to connect until one is added (docs/app-gateway.md).\n' "$frontend_url"
    fi
    check "the front end answers through Application Gateway" here http "${gateway_url}/healthz" "status = 200"
    check "the front end cannot be reached without Application Gateway" here http "${direct_url}/healthz" "denied = true"
    check "the internet cannot reach the front end's SCM site" here http \
      "https://${direct_host%%.*}.scm.${direct_host#*.}/" "denied = true"
  else
    check "the front end answers from here" here http "${frontend_url}/healthz" "status = 200"
  fi

  case "$mode" in
    none)
      check "front end reaches the back end" frontend http "https://${backend_host}/healthz" \
        "status = 200" all
      check "the back end is still open to the internet (not locked down yet)" here http \
        "https://${backend_host}/healthz" "status = 200"
      ;;
    service-endpoint)
      check "front end resolves the back end to its public address (service endpoint, no private endpoint)" \
        frontend resolve "$backend_host" "private = false, privatelink = false"
      check "front end reaches the back end through the lockdown" frontend http \
        "https://${backend_host}/healthz" "status = 200" all
      # /diag never returns bodies, so what the back end saw comes through the front end's path report.
      check "back end sees the front end inside the integration subnet" here http \
        "${frontend_url}/api/path" "status = 200, caller_in = \"${subnet}\"${caller_auth}"
      check "the internet cannot reach the back end" here http "https://${backend_host}/healthz" "denied = true"
      ;;
    private-endpoint)
      check "front end resolves the back end to a private address" frontend resolve "$backend_host" \
        "private = true, privatelink = true"
      check "front end reaches the back end through the lockdown" frontend http \
        "https://${backend_host}/healthz" "status = 200" all
      # /diag never returns bodies, so what the back end saw comes through the front end's path report.
      check "back end sees the front end inside the integration subnet" here http \
        "${frontend_url}/api/path" "status = 200, caller_in = \"${subnet}\"${caller_auth}"
      check "the internet cannot reach the back end" here http "https://${backend_host}/healthz" "denied = true"
      ;;
  esac

  check "front end connects to the back end on 443" frontend tcpping "${backend_host}:443" "reachable = true"

  # Both apps' Key Vault references (the secrets in the app settings) must have resolved: App
  # Service leaves the literal @Microsoft.KeyVault(...) in a setting when it cannot reach the vault.
  printf '\n[[check]]\nname = "%s"\nfrom = "%s"\nenv = true\nexpect = { keyvault_resolved = true }\n' \
    "the front end's Key Vault references are resolved" frontend
  printf '\n[[check]]\nname = "%s"\nfrom = "%s"\nenv = true\nexpect = { keyvault_resolved = true }\n' \
    "the back end's Key Vault references are resolved" backend

  if [[ -n "$database_host" ]]; then
    # The short form: resolves through privatelink.postgres.database.azure.com to a private
    # address, connects on 5432, and the server answers as PostgreSQL over verified TLS.
    check "every back-end instance reaches its database privately" backend dependency \
      "${database_host}:5432" "reachable = true" all
    check "the internet does not reach the database" here dependency "${database_host}:5432" "denied = true"
  fi

  if [[ "${outputs[BACKEND_STAGING_SLOT]:-false}" == "true" && "$mode" == "service-endpoint" ]]; then
    # A slot is a site of its own: its lockdown is checked as production's (run again after a swap).
    printf '\n[[check]]\nname = "%s"\nfrom = "here"\nslot = "staging"\nhttp = "%s"\nexpect = { denied = true }\n' \
      "the internet cannot reach the back end's staging slot" "https://${backend_host}/healthz"
    printf '\n[[check]]\nname = "%s"\nfrom = "frontend"\ninstances = "all"\nslot = "staging"\nhttp = "%s"\nexpect = { status = 200 }\n' \
      "front end reaches the back end's staging slot" "https://${backend_host}/healthz"
  fi

  if [[ "$auth" == "entra" ]]; then
    if [[ "$mode" == "none" ]]; then
      check "the back end let the front end in with its Entra token" here http \
        "${frontend_url}/api/path" "status = 200${caller_auth}"
    fi
    # App Service Authentication answers 401 (without a body) before the app; with it off, the
    # app's own gate answers, and error_code = "missing_token" proves which gate it was.
    check "the back end refuses a call without a token" frontend http \
      "https://${backend_host}/api/items" "status = 401"
  fi
}

if [[ -n "$output" ]]; then
  mkdir -p "$(dirname "$output")"
  render >"$output.tmp.$$"
  mv "$output.tmp.$$" "$output"
  echo "smoke-config.sh: wrote $output (mode $mode)" >&2
else
  render
fi
