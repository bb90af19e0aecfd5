#!/usr/bin/env bash
# Fuzzes allot's HTTP API with schemathesis (from PyPI) against the server's own
# OpenAPI document (/v1/openapi.json): no answer may be a 5xx, every answer must
# match the document (status code, content type, body schema), and input that breaks
# the document must be refused.
#
#   bash .ci/schemathesis.sh            # from the project root
#
# It installs a pinned schemathesis in a virtual environment under the cargo target
# dir (kept between runs), builds `allot`, starts `allot server` on a fresh SQLite
# dir with the example cluster, and runs a bounded number of examples per operation
# as the admin. Knobs: ALLOT_SCHEMATHESIS_EXAMPLES (examples per operation, default
# 100), ALLOT_SCHEMATHESIS_SEED (default 1: the same cases every run),
# ALLOT_SCHEMATHESIS_CHECKS (schemathesis --checks; not `all`: its
# positive_data_acceptance expects every schema-valid body to be accepted, and one
# naming a tenant or flavor that does not exist is rightly refused).
# Without network or Python, CI=true fails; elsewhere it says so and skips.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

VERSION=4.32.5
EXAMPLES="${ALLOT_SCHEMATHESIS_EXAMPLES:-100}"
SEED="${ALLOT_SCHEMATHESIS_SEED:-1}"
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
mkdir -p "$TARGET_DIR"
TARGET_DIR=$(cd "$TARGET_DIR" && pwd)
VENV="$TARGET_DIR/schemathesis-$VERSION"

unavailable() {
    if [[ "${CI:-}" == "true" ]]; then
        echo "error: $1 (CI needs schemathesis)" >&2
        exit 1
    fi
    echo "skipping the schemathesis run: $1"
    exit 0
}

if [[ ! -x "$VENV/bin/schemathesis" ]]; then
    command -v python3 >/dev/null 2>&1 || unavailable "python3 not found"
    echo "+ python3 -m venv $VENV && pip install schemathesis==$VERSION"
    rm -rf "$VENV"
    python3 -m venv "$VENV" || unavailable "cannot create a virtual environment (python3 -m venv)"
    if ! "$VENV/bin/pip" install --quiet "schemathesis==$VERSION"; then
        rm -rf "$VENV"
        unavailable "cannot install schemathesis==$VERSION from PyPI"
    fi
fi
"$VENV/bin/schemathesis" --version

echo "+ cargo build -p allot --bin allot"
cargo build -q -p allot --bin allot
ALLOT="$TARGET_DIR/debug/allot"

work=$(mktemp -d)
server_pid=""
cleanup() {
    if [[ -n "$server_pid" ]]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

"$ALLOT" server --cluster examples/small-cluster.toml --data-dir "$work/data" --listen 127.0.0.1:0 >"$work/server.out" 2>"$work/server.err" &
server_pid=$!

# The server prints its address and, on a fresh store, the admin token.
base="" token=""
for _ in $(seq 1 300); do
    base=$(sed -n 's/^allot server listening on \(http:\/\/[^ ]*\).*/\1/p' "$work/server.out" | head -n 1)
    token=$(sed -n 's/^admin token ([^)]*): \(.*\)$/\1/p' "$work/server.out" | head -n 1)
    [[ -n "$base" && -n "$token" ]] && break
    if ! kill -0 "$server_pid" 2>/dev/null; then
        echo "error: allot server exited:" >&2
        cat "$work/server.out" "$work/server.err" >&2
        exit 1
    fi
    sleep 0.1
done
if [[ -z "$base" || -z "$token" ]]; then
    echo "error: allot server printed no address or admin token in 30 s" >&2
    cat "$work/server.out" "$work/server.err" >&2
    exit 1
fi
echo "server at $base"

# schemathesis keeps the failing cases it found (for `st replay ID`) in .schemathesis/
# of the folder it runs in: that is one under the target dir, not the work tree.
runs="$TARGET_DIR/schemathesis-runs"
mkdir -p "$runs"
# /v1/events is a stream that never ends by itself: nothing to check in one answer.
status=0
(cd "$runs" && "$VENV/bin/schemathesis" run "$base/v1/openapi.json" \
    --header "Authorization: Bearer $token" \
    --checks "${ALLOT_SCHEMATHESIS_CHECKS:-not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,negative_data_rejection}" \
    --exclude-path /v1/events \
    --max-examples "$EXAMPLES" \
    --seed "$SEED" \
    --generation-database none \
    --request-timeout 10 \
    --workers 2 \
    --no-color \
    --report junit --report-dir "$work/report") || status=$?

if ((status != 0)); then
    echo
    echo "schemathesis found failures (exit $status; replay them with \`st replay ID\` from $runs); the server's log:"
    tail -n 50 "$work/server.err"
    exit "$status"
fi
