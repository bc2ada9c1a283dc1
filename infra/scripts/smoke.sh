#!/usr/bin/env bash
# Runs the smoke test against a deployment: gathers its outputs, writes the `probe smoke`
# config for its lockdown mode (smoke-config.sh), fetches the /diag token, and runs
# `probe smoke`, which retries failing checks until --wait runs out. Run it from the
# repository root after every lockdown change. Exit code: probe smoke's (0 all passed,
# 1 some check failed, 2 usage or config error).
#
# Usage: smoke.sh --azd                      [options]   after azd up / azd provision
#        smoke.sh --from-file FILE           [options]   outputs as KEY="value" lines
#        smoke.sh --mode MODE [--resource-group RG] [--prefix PREFIX] [options]
#                                                        after create.sh / lockdown.sh / undo.sh
#   MODE               none, service-endpoint or private-endpoint: what you expect to hold
#   --auth AUTH        api-key or entra: the credential you expect (az CLI path; azd and
#                      --from-file read BACKEND_AUTH_MODE from the outputs)
#   --config FILE      where to write the config; default .azure/ENV/smoke.toml (azd) or
#                      .azure/smoke-PREFIX.toml
#   --wait DURATION    retry failing checks this long (default 10m: a new service endpoint
#                      can take minutes to apply)
#   --format FORMAT    text (default), json, junit or html;  --output FILE  report to a file
#   --baseline FILE    compare with an earlier run's JSON report (what changed since)
#   --evidence DIR     write the evidence bundle (every format, each app's /diag/env, SHA-256s)
#   --dry-run          print every command (az, azd, the writer, probe), run nothing
# The token comes from FRONTEND_DIAG_TOKEN / BACKEND_DIAG_TOKEN or DIAG_TOKEN when set, else
# from Key Vault (azd path) or the front end's app settings (az CLI path).
# The probe binary: $PROBE, else `probe` on PATH, else target/release/probe, else cargo run.

set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

script_dir="$(dirname "${BASH_SOURCE[0]}")"
repo_root="$(cd "$script_dir/../.." && pwd)"
source_kind="cli"
from_file=""
mode=""
auth=""
config=""
wait_for="10m"
format="text"
report=""
baseline=""
evidence=""

parse_common "$@"
set -- "${REST_ARGS[@]}"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --azd) source_kind="azd"; shift ;;
    --from-file) source_kind="file"; from_file="${2:-}"; shift 2 || die_usage "--from-file needs a file" ;;
    --mode) mode="${2:-}"; shift 2 || die_usage "--mode needs a value" ;;
    --auth) auth="${2:-}"; shift 2 || die_usage "--auth needs a value" ;;
    --config) config="${2:-}"; shift 2 || die_usage "--config needs a file" ;;
    --wait) wait_for="${2:-}"; shift 2 || die_usage "--wait needs a duration" ;;
    --format) format="${2:-}"; shift 2 || die_usage "--format needs a value" ;;
    --output) report="${2:-}"; shift 2 || die_usage "--output needs a file" ;;
    --baseline) baseline="${2:-}"; shift 2 || die_usage "--baseline needs a file" ;;
    --evidence) evidence="${2:-}"; shift 2 || die_usage "--evidence needs a directory" ;;
    *) die_usage "unknown argument: $1" ;;
  esac
done
case "$format" in
  text|json|junit|html) ;;
  *) die_usage "--format must be text, json, junit or html" ;;
esac
if [[ "$source_kind" == "cli" && -z "$mode" ]]; then
  die_usage "--mode is required on the az CLI path (none, service-endpoint or private-endpoint); or use --azd / --from-file"
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
outputs_file="$work/outputs.env"

# read_output KEY FILE : the value of KEY="value" in FILE (empty when absent).
read_output() {
  local key="$1" file="$2" line value=""
  while IFS= read -r line || [[ -n "$line" ]]; do
    if [[ "$line" =~ ^${key}=(.*)$ ]]; then
      value="${BASH_REMATCH[1]}"
      value="${value#\"}"
      value="${value%\"}"
    fi
  done <"$file"
  printf '%s' "$value"
}

# 1. The deployment's outputs.
case "$source_kind" in
  azd)
    if [[ "$DRY_RUN" -eq 1 ]]; then
      print_cmd azd env get-values
      printf 'AZURE_ENV_NAME="<env>"\nKEY_VAULT_NAME="<KEY_VAULT_NAME>"\nDIAG_TOKEN_SECRET_NAME="diag-token"\n' >"$outputs_file"
    else
      command -v azd >/dev/null 2>&1 || die "the Azure Developer CLI (azd) is not installed"
      azd env get-values >"$outputs_file" || die "azd env get-values failed: run azd up first"
    fi
    writer_input="<outputs>"
    ;;
  file)
    [[ -r "$from_file" ]] || die_usage "cannot read $from_file"
    cp "$from_file" "$outputs_file"
    writer_input="$from_file"
    ;;
  cli)
    require_login
    frontend_host="$(az_value "${FRONTEND_NAME}.azurewebsites.net" webapp show --resource-group "$RESOURCE_GROUP" \
      --name "$FRONTEND_NAME" --query defaultHostName --output tsv)"
    backend_host="$(az_value "${BACKEND_NAME}.azurewebsites.net" webapp show --resource-group "$RESOURCE_GROUP" \
      --name "$BACKEND_NAME" --query defaultHostName --output tsv)"
    subnet_cidr="$(az_value "$INTEGRATION_CIDR" network vnet subnet show --resource-group "$RESOURCE_GROUP" \
      --vnet-name "$VNET_NAME" --name "$INTEGRATION_SUBNET" --query addressPrefix --output tsv)"
    printf 'FRONTEND_URL="https://%s"\nBACKEND_URL="https://%s"\nBACKEND_HOSTNAME="%s"\nINTEGRATION_SUBNET_CIDR="%s"\nLOCKDOWN_MODE="%s"\n' \
      "$frontend_host" "$backend_host" "$backend_host" "$subnet_cidr" "$mode" >"$outputs_file"
    # database.sh's server (its public name), for the data-tier checks.
    if [[ -n "${DATABASE_HOST:-}" ]]; then
      printf 'DATABASE_HOST="%s"\n' "$DATABASE_HOST" >>"$outputs_file"
    fi
    writer_input="<outputs>"
    ;;
esac

env_name="$(read_output AZURE_ENV_NAME "$outputs_file")"
if [[ -z "$config" ]]; then
  if [[ -n "$env_name" ]]; then
    config=".azure/${env_name}/smoke.toml"
  else
    config=".azure/smoke-${PREFIX}.toml"
  fi
fi

# 2. The config for the deployed mode.
writer=(bash infra/scripts/smoke-config.sh --from-file "$writer_input")
if [[ -n "$mode" ]]; then
  writer+=(--mode "$mode")
fi
if [[ -n "$auth" ]]; then
  writer+=(--auth "$auth")
fi
writer+=(--output "$config")
if [[ "$DRY_RUN" -eq 1 ]]; then
  print_cmd "${writer[@]}"
else
  bash "$script_dir/smoke-config.sh" --from-file "$outputs_file" ${mode:+--mode "$mode"} ${auth:+--auth "$auth"} \
    --output "$config"
fi

# 3. The /diag token: both apps share one.
token="${DIAG_TOKEN:-}"
if [[ -z "${FRONTEND_DIAG_TOKEN:-}" || -z "${BACKEND_DIAG_TOKEN:-}" ]] && [[ -z "$token" ]]; then
  vault="$(read_output KEY_VAULT_NAME "$outputs_file")"
  if [[ -n "$vault" ]]; then
    secret_name="$(read_output DIAG_TOKEN_SECRET_NAME "$outputs_file")"
    token="$(az_value "<token>" keyvault secret show --vault-name "$vault" --name "${secret_name:-diag-token}" \
      --query value --output tsv)" || die "cannot read the diag token from Key Vault ${vault} (you need Key Vault Secrets User on it)"
  else
    token="$(az_value "<token>" webapp config appsettings list --resource-group "$RESOURCE_GROUP" --name "$FRONTEND_NAME" \
      --query "[?name=='DIAG_TOKEN'].value | [0]" --output tsv)" || die "cannot read DIAG_TOKEN from ${FRONTEND_NAME}'s app settings"
  fi
  [[ -n "$token" ]] || die "no diag token found: set DIAG_TOKEN"
fi
export FRONTEND_DIAG_TOKEN="${FRONTEND_DIAG_TOKEN:-$token}"
export BACKEND_DIAG_TOKEN="${BACKEND_DIAG_TOKEN:-$token}"

# 4. The smoke test.
probe_args=(smoke --config "$config" --wait "$wait_for" --format "$format")
if [[ -n "$report" ]]; then
  probe_args+=(--output "$report")
fi
if [[ -n "$baseline" ]]; then
  probe_args+=(--baseline "$baseline")
fi
if [[ -n "$evidence" ]]; then
  probe_args+=(--evidence "$evidence")
fi
if [[ "$DRY_RUN" -eq 1 ]]; then
  print_cmd probe "${probe_args[@]}"
  exit 0
fi

if [[ -n "${PROBE:-}" ]]; then
  probe_cmd=("$PROBE")
elif command -v probe >/dev/null 2>&1; then
  probe_cmd=(probe)
elif [[ -x "$repo_root/target/release/probe" ]]; then
  probe_cmd=("$repo_root/target/release/probe")
else
  probe_cmd=(cargo run --quiet --release --manifest-path "$repo_root/Cargo.toml" -p probe --)
fi
log "running: $(format_cmd probe "${probe_args[@]}")"
rc=0
"${probe_cmd[@]}" "${probe_args[@]}" || rc=$?
exit "$rc"
