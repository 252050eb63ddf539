#!/usr/bin/env bash
# Install gVisor's runsc from Debian's packages and register it with the local Docker engine as
#   "runsc": {"path": <runsc>, "runtimeArgs": ["--network=none", "--oci-seccomp"]}
# --network=none: this machine's engine needs it (no netstack setup).
# --oci-seccomp: without it runsc ignores the container's seccomp profile, so cellblock's
#   allow-list would not apply inside gVisor (io_uring, unshare, mknod, syslog ... reach its kernel).
# Idempotent and migrating: an existing registration that lacks either argument is rewritten.
# Merges into /etc/docker/daemon.json (keeps every other setting and runtime argument) and reloads
# the daemon with SIGHUP, which re-reads runtimes without restarting running containers.
# `--merge-only` writes the registration into $CELLBLOCK_DOCKER_CONFIG (default
# /etc/docker/daemon.json) and stops: no install, no engine, no reload (the tests use it).
set -euo pipefail
conf=${CELLBLOCK_DOCKER_CONFIG:-/etc/docker/daemon.json}
required_args=(--network=none --oci-seccomp)

merge_registration() {  # $1: runsc's path
  mkdir -p "$(dirname "$conf")"
  [ -f "$conf" ] || echo '{}' > "$conf"
  python3 - "$conf" "$1" "${required_args[@]}" <<'PY'
import json, os, sys
path, runsc, required = sys.argv[1], sys.argv[2], sys.argv[3:]
with open(path) as f:
    conf = json.load(f)
entry = conf.setdefault("runtimes", {}).get("runsc") or {}
args = [a for a in entry.get("runtimeArgs") or [] if a not in required]
# keep any other argument an administrator added; ours come first
conf["runtimes"]["runsc"] = {**entry, "path": entry.get("path") or runsc, "runtimeArgs": required + args}
tmp = path + ".cellblock-tmp"
with open(tmp, "w") as f:
    json.dump(conf, f, indent=2)
    f.write("\n")
os.replace(tmp, path)
PY
}

if [ "${1:-}" = --merge-only ]; then
  merge_registration "${2:-/usr/bin/runsc}"
  exit 0
fi
if ! command -v runsc >/dev/null 2>&1; then
  echo "[gvisor] installing runsc from Debian's packages"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q runsc >/dev/null 2>&1 || {
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q runsc >/dev/null
  }
fi
runsc_path=$(command -v runsc)

# Prints "ok" when the engine's runsc registration carries every required argument,
# "missing" when runsc is not registered, "outdated" when it lacks an argument.
registration_state() {
  docker info --format '{{json .Runtimes}}' | python3 -c '
import json, sys
runtimes = json.load(sys.stdin) or {}
entry = runtimes.get("runsc")
if entry is None:
    print("missing")
else:
    args = entry.get("runtimeArgs") or entry.get("RuntimeArgs") or []
    print("ok" if all(a in args for a in sys.argv[1:]) else "outdated")
' "${required_args[@]}"
}

state=$(registration_state)
if [ "$state" = ok ]; then
  echo "[gvisor] runsc already registered with ${required_args[*]}"
  exit 0
fi
if [ "$state" = outdated ]; then
  echo "[gvisor] runsc is registered without one of ${required_args[*]}; re-registering"
else
  echo "[gvisor] registering $runsc_path in $conf"
fi
merge_registration "$runsc_path"
pid=$(pidof dockerd || true)
if [ -z "$pid" ]; then echo "[gvisor] dockerd is not running" >&2; exit 1; fi
kill -HUP $pid
for _ in $(seq 1 50); do
  if [ "$(registration_state)" = ok ]; then
    echo "[gvisor] runsc registered with ${required_args[*]}"; exit 0
  fi
  sleep 0.2
done
echo "[gvisor] the engine did not pick up the runsc registration after a reload; see its log" \
  "(a runtime named runsc given on dockerd's command line overrides $conf)" >&2
exit 1
