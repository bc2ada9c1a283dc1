#!/usr/bin/env bash
# Builds the runtime stage of the Dockerfile from static binaries made on this machine,
# runs every role on a loopback port and checks GET /healthz, then cleans up.
#
#   bash infra/checks/image.sh                 # cargo build --release (static) first
#   bash infra/checks/image.sh --bin-dir DIR   # DIR holds frontend, backend, probe
#   LOCKDOWN_BIN_DIR=DIR bash infra/checks/image.sh
#   CARGO_TARGET_DIR=DIR bash infra/checks/image.sh   # build into another target folder
#
# No base image can be pulled here, so the `build` stage is fed from a folder with
# --build-context build=DIR laid out like the real build stage (/out/bin, /out/data,
# /etc/ssl/certs/ca-certificates.crt) and only `--target runtime` is built.
# Podman runs with its own throwaway storage under a temp dir, removed on exit.
# Everything listens on and is called at 127.0.0.1 only.
set -euo pipefail

readonly TARGET_TRIPLE="x86_64-unknown-linux-gnu"
readonly ROLES=("default" "frontend" "backend" "probe serve")
readonly HEALTH_TIMEOUT_S=20
readonly EXPECTED_USER="10001:10001"
readonly STOP_TIMEOUT_S=5

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
bin_dir="${LOCKDOWN_BIN_DIR:-}"
keep_image=0

usage() {
  awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "${BASH_SOURCE[0]}"
}

while [[ $# -gt 0 ]]; do
  case "$1" in
    --bin-dir) bin_dir="${2:?--bin-dir needs a folder}"; shift 2 ;;
    --keep) keep_image=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "image.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
  esac
done

fail() {
  echo "image.sh: FAIL: $*" >&2
  exit 1
}

log() {
  echo "image.sh: $*"
}

for tool in podman curl python3; do
  command -v "$tool" >/dev/null 2>&1 || fail "$tool is not installed (apt-get install -y podman buildah runc curl)"
done
command -v runc >/dev/null 2>&1 || fail "runc is not installed (apt-get install -y runc); crun does not work here"

work="$(mktemp -d -t lockdown-image.XXXXXX)"
tag="localhost/lockdown-check:$$"
containers=()

podman_cmd() {
  podman --root "$work/storage" --runroot "$work/run" --storage-driver vfs "$@"
}

cleanup() {
  local rc=$?
  local c
  for c in "${containers[@]}"; do
    podman_cmd rm --force --time 2 "$c" >/dev/null 2>&1 || true
  done
  if [[ "$keep_image" -eq 0 ]]; then
    podman_cmd rmi --force "$tag" >/dev/null 2>&1 || true
    rm -rf "$work" || true
  else
    log "kept storage and image under $work (tag $tag)"
  fi
  exit "$rc"
}
trap cleanup EXIT

# 1. The binaries.
if [[ -z "$bin_dir" ]]; then
  log "building static release binaries (cargo build --release --locked --target $TARGET_TRIPLE)"
  (
    cd "$repo_root"
    RUSTFLAGS="-C target-feature=+crt-static" \
      cargo build --release --locked --target "$TARGET_TRIPLE" -p frontend -p backend -p probe
  ) || fail "cargo build failed"
  bin_dir="${CARGO_TARGET_DIR:-$repo_root/target}/$TARGET_TRIPLE/release"
fi

for bin in frontend backend probe; do
  [[ -x "$bin_dir/$bin" ]] || fail "$bin_dir/$bin is missing or not executable"
  if command -v readelf >/dev/null 2>&1 \
     && readelf -l "$bin_dir/$bin" 2>/dev/null | grep -q 'program interpreter'; then
    fail "$bin_dir/$bin is dynamically linked: a scratch image has no libc (build with RUSTFLAGS='-C target-feature=+crt-static')"
  fi
done

# 2. The build-context folder standing in for the `build` stage.
ctx="$work/build-context"
mkdir -p "$ctx/out/bin" "$ctx/out/data" "$ctx/etc/ssl/certs"
cp "$bin_dir/frontend" "$bin_dir/backend" "$bin_dir/probe" "$ctx/out/bin/"
[[ -s /etc/ssl/certs/ca-certificates.crt ]] || fail "/etc/ssl/certs/ca-certificates.crt is missing (apt-get install -y ca-certificates)"
cp /etc/ssl/certs/ca-certificates.crt "$ctx/etc/ssl/certs/ca-certificates.crt"

# 3. The runtime image.
log "building the runtime stage as $tag"
podman_cmd build --pull=never --isolation chroot --build-context "build=$ctx" --target runtime \
  --file "$repo_root/Dockerfile" --tag "$tag" "$repo_root" \
  || fail "podman build failed"

user="$(podman_cmd image inspect --format '{{.Config.User}}' "$tag")"
[[ "$user" == "$EXPECTED_USER" ]] || fail "image user is '$user', expected $EXPECTED_USER"
size_bytes="$(podman_cmd image inspect --format '{{.Size}}' "$tag")"

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

check_role() {
  local role="$1"
  local port name body status deadline exit_code
  local -a cmd=()
  port="$(free_port)"
  name="lockdown-check-${role// /-}-$$"
  if [[ "$role" != "default" ]]; then
    read -r -a cmd <<<"$role"
  fi
  podman_cmd run --detach --name "$name" --runtime runc --network host \
    --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 \
    --env "LISTEN_ADDR=127.0.0.1:$port" \
    --env "BACKEND_URL=http://127.0.0.1:9" \
    --env "LOG_FORMAT=text" \
    --pull=never "$tag" "${cmd[@]}" >/dev/null \
    || fail "role '$role': podman run failed"
  containers+=("$name")

  deadline=$((SECONDS + HEALTH_TIMEOUT_S))
  status=""
  while (( SECONDS < deadline )); do
    if body="$(curl --silent --show-error --max-time 2 --output - --write-out '\n%{http_code}' \
                "http://127.0.0.1:$port/healthz" 2>/dev/null)"; then
      status="${body##*$'\n'}"
      body="${body%$'\n'*}"
      break
    fi
    if [[ "$(podman_cmd inspect --format '{{.State.Running}}' "$name")" != "true" ]]; then
      podman_cmd logs "$name" >&2 || true
      fail "role '$role': the container exited before answering /healthz"
    fi
    sleep 0.5
  done
  if [[ -z "$status" ]]; then
    podman_cmd logs "$name" >&2 || true
    fail "role '$role': no answer from http://127.0.0.1:$port/healthz within ${HEALTH_TIMEOUT_S}s"
  fi
  if [[ "$status" != "200" ]]; then
    podman_cmd logs "$name" >&2 || true
    fail "role '$role': GET /healthz answered $status, expected 200 (body: $body)"
  fi
  if ! printf '%s' "$body" | python3 -c 'import json, sys; sys.exit(0 if json.load(sys.stdin).get("status") == "ok" else 1)' 2>/dev/null; then
    fail "role '$role': GET /healthz body is not {\"status\":\"ok\"}: $body"
  fi
  log "ok   role '$role' on 127.0.0.1:$port: GET /healthz -> 200 $body"

  # App Service sends SIGTERM, then SIGKILL after WEBSITES_CONTAINER_STOP_TIME_LIMIT (5 s).
  podman_cmd stop --time "$STOP_TIMEOUT_S" "$name" >/dev/null 2>&1 || fail "role '$role': podman stop failed"
  exit_code="$(podman_cmd inspect --format '{{.State.ExitCode}}' "$name")"
  if [[ "$exit_code" == "137" ]]; then
    podman_cmd logs "$name" >&2 || true
    fail "role '$role': ignored SIGTERM and was killed after ${STOP_TIMEOUT_S}s (exit 137)"
  fi
  log "ok   role '$role' stopped on SIGTERM (exit $exit_code)"
}

for role in "${ROLES[@]}"; do
  check_role "$role"
done

size_mb="$(python3 -c "import sys; print(f'{int(sys.argv[1]) / 1e6:.1f}')" "$size_bytes")"
log "image size: ${size_mb} MB (${size_bytes} bytes), user ${user}"
log "all roles answered /healthz"
