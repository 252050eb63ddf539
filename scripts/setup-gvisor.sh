#!/usr/bin/env bash
# Install gVisor's runsc from Debian's packages and register it with the local Docker engine.
# Merges into the existing /etc/docker/daemon.json (keeps every other setting) and reloads the
# daemon with SIGHUP, which re-reads runtimes without restarting running containers.
# This machine's engine needs the runtime argument --network=none (no netstack setup).
set -euo pipefail
conf=/etc/docker/daemon.json
if ! command -v runsc >/dev/null 2>&1; then
  echo "[gvisor] installing runsc from Debian's packages"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q runsc >/dev/null 2>&1 || {
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q runsc >/dev/null
  }
fi
runsc_path=$(command -v runsc)
if docker info --format '{{json .Runtimes}}' | grep -q '"runsc"'; then
  echo "[gvisor] runsc already registered with the engine"
  exit 0
fi
echo "[gvisor] registering $runsc_path in $conf"
mkdir -p /etc/docker
[ -f "$conf" ] || echo '{}' > "$conf"
python3 - "$conf" "$runsc_path" <<'PY'
import json, sys
path, runsc = sys.argv[1], sys.argv[2]
with open(path) as f:
    conf = json.load(f)
conf.setdefault("runtimes", {})["runsc"] = {"path": runsc, "runtimeArgs": ["--network=none"]}
tmp = path + ".cellblock-tmp"
with open(tmp, "w") as f:
    json.dump(conf, f, indent=2)
import os
os.replace(tmp, path)
PY
pid=$(pidof dockerd || true)
if [ -z "$pid" ]; then echo "[gvisor] dockerd is not running" >&2; exit 1; fi
kill -HUP $pid
for _ in $(seq 1 50); do
  if docker info --format '{{json .Runtimes}}' | grep -q '"runsc"'; then
    echo "[gvisor] runsc registered"; exit 0
  fi
  sleep 0.2
done
echo "[gvisor] the engine did not pick up runsc after a reload" >&2
exit 1
