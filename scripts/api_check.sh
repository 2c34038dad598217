#!/usr/bin/env bash
# make api-check: the broker against its own OpenAPI document, with schemathesis (PyPI, in
# ./.venv-api) driving a live debug node that has a bearer token. Bounded: the node is stopped on exit.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
binary="${1:?usage: api_check.sh PATH-TO-peat-mesh-node}"
venv="$root/.venv-api"
[ -x "$venv/bin/st" ] || { python3 -m venv "$venv" && "$venv/bin/pip" install -q --disable-pip-version-check 'schemathesis==4.32.5'; }
work="$(mktemp -d)"
token="api-check-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
port=$((20000 + RANDOM % 20000))
cleanup() { [ -n "${node:-}" ] && kill "$node" 2>/dev/null && wait "$node" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
PEAT_BROKER_TOKEN="$token" PEAT_FORMATION_SECRET="$("$binary" generate-secret)" PEAT_DATA_DIR="$work/data" \
  PEAT_DISCOVERY=static PEAT_BIND_HOST=127.0.0.1 PEAT_BROKER_PORT="$port" PEAT_SYNC_PORT=0 HOSTNAME=api-check \
  "$binary" >"$work/node.log" 2>&1 &
node=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/api/v1/health" >/dev/null 2>&1 && break; sleep 0.1; done
cd "$work"
"$venv/bin/st" --config-file "$root/scripts/schemathesis.toml" run "$root/Sources/PeatBroker/openapi.json" \
  --url "http://127.0.0.1:$port" -H "Authorization: Bearer $token" --max-examples 60 --seed 15
if grep -E ' (ERROR|CRITICAL) ' "$work/node.log"; then echo "api-check: the node logged errors"; exit 1; fi
if grep -F "$token" "$work/node.log"; then echo "api-check: the token appeared in the node's log"; exit 1; fi
echo "api-check: the node logged no error and never the token"
