#!/usr/bin/env bash
# Runs schemathesis (from PyPI) against a fresh `allot server` on loopback: every
# operation of /v1/openapi.json, a bounded number of examples, and the checks that
# matter here: no 5xx, responses match the schema (status codes, content types,
# bodies). Usage: crates/allot-server/scripts/schemathesis.sh [MAX_EXAMPLES]
# Needs `schemathesis` on PATH (pip install schemathesis) and a built allot.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../../.."
examples=${1:-25}
allot=${ALLOT:-target/release/allot}
port=${PORT:-7391}
dir=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$dir"' EXIT
"$allot" server --cluster examples/small-cluster.toml --data-dir "$dir/data" --listen "127.0.0.1:$port" >"$dir/out" 2>"$dir/err" &
pid=$!
for _ in $(seq 1 100); do
    grep -q "listening on" "$dir/out" 2>/dev/null && break
    sleep 0.1
done
token=$(sed -n 's/.*stored hashed): //p' "$dir/out")
[ -n "$token" ] || { echo "server did not start:"; cat "$dir/err"; exit 1; }
schemathesis run "http://127.0.0.1:$port/v1/openapi.json" --url "http://127.0.0.1:$port" \
    -H "Authorization: Bearer $token" --max-examples "$examples" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance
