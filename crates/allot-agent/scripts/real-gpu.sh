#!/usr/bin/env bash
# On a machine with an NVIDIA GPU and driver: a server and an agent without
# emulation; prints the GPUs the agent discovered (NVML) and runs a 1-GPU job that
# lists the GPUs it can see (`nvidia-smi -L` honours CUDA_VISIBLE_DEVICES through
# the UUIDs it prints; the job also prints the variable). Usage, from the repo root:
#   crates/allot-agent/scripts/real-gpu.sh [path/to/allot]
set -euo pipefail
ALLOT=${1:-target/release/allot}
[ -x "$ALLOT" ] || cargo build --release --bin allot
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$tmp"' EXIT
n=$(nvidia-smi -L | wc -l)
host=$(hostname)
cat > "$tmp/cluster.toml" <<TOML
version = 1
flavors = [{ name = "GPU" }]
[[nodes]]
name = "$host"
at = "site/block/leaf"
flavor = "GPU"
gpus = $n
cpus = $(nproc)
memory_gib = 16
[[tenants]]
path = "t"
quota = [{ flavor = "GPU", nominal = $n }]
TOML
"$ALLOT" server --cluster "$tmp/cluster.toml" --data-dir "$tmp/data" --listen 127.0.0.1:7391 --agents-required > "$tmp/server.log" 2>&1 &
for _ in $(seq 100); do grep -q "admin token" "$tmp/server.log" && break; sleep 0.1; done
TOKEN=$(sed -n 's/^admin token (shown once, stored hashed): //p' "$tmp/server.log")
H="Authorization: Bearer $TOKEN"
NODE_TOKEN=$(curl -s -H "$H" -H 'content-type: application/json' 127.0.0.1:7391/v1/tokens \
  -d '{"name": "agent", "role": "node"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
"$ALLOT" agent --server http://127.0.0.1:7391 --token "$NODE_TOKEN" --name "$host" --state-dir "$tmp/agent" > "$tmp/agent.log" 2>&1 &
sleep 2
echo "== agent"; head -3 "$tmp/agent.log"
echo "== GPUs the server knows"
curl -s -H "$H" "127.0.0.1:7391/v1/nodes/$host" | python3 -c 'import json,sys; [print(g) for g in json.load(sys.stdin)["agent"]["gpus"]]'
id=$(curl -s -H "$H" -H 'content-type: application/json' 127.0.0.1:7391/v1/jobs -d \
  '{"tenant": "t", "gpus": 1, "command": ["sh", "-c", "echo CUDA_VISIBLE_DEVICES=$CUDA_VISIBLE_DEVICES; nvidia-smi -L; nvidia-smi --query-gpu=index,uuid --format=csv,noheader"]}' \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
for _ in $(seq 100); do
  st=$(curl -s -H "$H" 127.0.0.1:7391/v1/jobs/$id | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])')
  [ "$st" = completed ] || [ "$st" = failed ] && break; sleep 0.2
done
echo "== job $id: $st"; curl -s -H "$H" "127.0.0.1:7391/v1/jobs/$id/logs"
