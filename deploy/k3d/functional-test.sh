#!/usr/bin/env bash
# Functional test of a running peat-mesh formation.
#
# Checks, each printed as OK/FAIL (SKIP when its input is missing):
#   health    every pod's GET /api/v1/health says "healthy" (and, in Kubernetes, node_id = pod name)
#   auth      the broker's bearer token: a protected route without it, or with a wrong one, answers
#             401 with "WWW-Authenticate: Bearer"; a PUT without it writes nothing; health, ready
#             and /metrics answer 200 without it
#   peers     every pod's GET /api/v1/peers lists every other pod, by node ID, as connected
#   document  a document PUT on pod 0 is readable with the same content on every other pod
#   restart   pod 0's device_id is the same before and after a restart, and equals the device_id of
#             its last "Mesh started" log line; it reconnects and still has the document
#   logs      no log line at level ERROR or CRITICAL on any pod (restarted ones included)
#
# Two ways to reach the pods, one set of checks (the checks only call the pod_* functions):
#   Kubernetes (default): the pods of the release's StatefulSet, each through `kubectl port-forward`
#     and curl with the release's broker token (read from the Secret the StatefulSet mounts; the
#     API server's pod proxy cannot carry it, see lib.sh), logs with kubectl logs, restart with
#     kubectl delete pod. Needs kubectl (context k3d-$CLUSTER unless KUBE_CONTEXT) and curl.
#   Plain HTTP: BROKER_URLS="http://10.0.0.2:8081 http://10.0.0.3:8081 ..." (pod i = i-th URL),
#     BROKER_TOKEN_FILE (a file holding the token, re-read on every request) or BROKER_TOKEN
#     (without either, requests carry no token and the auth check SKIPs),
#     LOG_FILES="/path/node-0.log ..." (same order; without it the log checks SKIP), RESTART_CMD
#     (a shell command that restarts pod $PEAT_TEST_POD_INDEX keeping its data directory and
#     returns; $PEAT_TEST_POD_NAME and $PEAT_TEST_BROKER_URL are set too; without it the
#     restart check SKIPs). Needs curl.
# JSON is read with jq, or python3 when jq is missing.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

: "${BROKER_URLS:=}"
: "${BROKER_TOKEN:=}"
: "${BROKER_TOKEN_FILE:=}"
: "${LOG_FILES:=}"
: "${RESTART_CMD:=}"
: "${BROKER_PORT:=8081}"
: "${CHECKS:=health auth peers document restart logs}"
: "${HEALTH_TIMEOUT:=30}"
: "${PEER_TIMEOUT:=120}"
: "${SYNC_TIMEOUT:=30}"
: "${RESTART_TIMEOUT:=300}"
: "${COLLECTION:=functional}"

usage() {
  cat <<EOF
Usage: $(basename "$0") [--help]

Runs the functional checks ($CHECKS) against a running formation and exits non-zero if
any fails.

Kubernetes mode (default): CLUSTER=$CLUSTER RELEASE=$RELEASE NAMESPACE=$NAMESPACE
  KUBE_CONTEXT=$(kube_context) BROKER_PORT=$BROKER_PORT
HTTP mode: BROKER_URLS="http://HOST:PORT ..." [BROKER_TOKEN_FILE=FILE | BROKER_TOKEN=...]
  [LOG_FILES="FILE ..."] [RESTART_CMD="..."]
  RESTART_CMD runs with PEAT_TEST_POD_INDEX, PEAT_TEST_POD_NAME, PEAT_TEST_BROKER_URL set and
  must restart that node with the same data directory (it may return before the node is up).

Other settings: CHECKS="$CHECKS" (a subset, in this order)
  HEALTH_TIMEOUT=$HEALTH_TIMEOUT PEER_TIMEOUT=$PEER_TIMEOUT SYNC_TIMEOUT=$SYNC_TIMEOUT RESTART_TIMEOUT=$RESTART_TIMEOUT (seconds)
  COLLECTION=$COLLECTION (where the test document goes; it is deleted afterwards)
EOF
}

WORK_DIR=""
POD_COUNT=0
POD_LABELS=()   # pod names (Kubernetes) or URLs (HTTP), for messages
NODE_IDS=()     # node_id each pod reports (Kubernetes: the pod name)
URLS=()
LOGS=()
PASSED=0
FAILED=0
SKIPPED=0
TEST_DOC_ID=""
TEST_DOC_FILE=""

# --- result reporting -----------------------------------------------------------------------------

# The reason of the last failed step. Kept in a file: most steps run in command substitutions
# (subshells), where a variable would not survive.
set_error() { printf '%s' "$*" >"$WORK_DIR/last_error"; }
clear_error() { : >"$WORK_DIR/last_error"; }
last_error() { cat "$WORK_DIR/last_error" 2>/dev/null || true; }

ok()   { printf 'OK    %s\n' "$*"; PASSED=$((PASSED + 1)); }
fail() { printf 'FAIL  %s\n' "$*"; FAILED=$((FAILED + 1)); }
skip() { printf 'SKIP  %s\n' "$*"; SKIPPED=$((SKIPPED + 1)); }

# --- pod access: Kubernetes -----------------------------------------------------------------------

k8s_setup() {
  require kubectl curl
  local sts replicas i
  sts="$(statefulset_name)"
  replicas="$(statefulset_replicas "$(kube_context)" "$NAMESPACE" "$sts" 2>"$WORK_DIR/err")" ||
    die "cannot read statefulset/$sts in namespace $NAMESPACE of $(kube_context): $(<"$WORK_DIR/err")"
  require_uint "statefulset/$sts .spec.replicas" "$replicas"
  POD_COUNT=$replicas
  for ((i = 0; i < POD_COUNT; i++)); do
    POD_LABELS+=("$sts-$i")
  done
  broker_begin
}

# k8s_fetch INDEX METHOD PATH [BODY_FILE]
k8s_fetch() {
  pod_broker "$(kube_context)" "$NAMESPACE" "${POD_LABELS[$1]}" "$BROKER_PORT" "$2" "$3" "${4:-}"
}

# k8s_status INDEX AUTH METHOD PATH [CURL_ARGS...]
k8s_status() {
  local url header
  url="$(broker_url "$(kube_context)" "$NAMESPACE" "${POD_LABELS[$1]}" "$BROKER_PORT")" || return 1
  header="$(auth_header "$2")" || return 1
  broker_status "$url" "$header" "$3" "$4" "${@:5}"
}

k8s_token_header() {
  broker_header "$(kube_context)" "$NAMESPACE" "$(statefulset_name)"
}

k8s_has_token() { true; }

k8s_logs() {
  kc logs "${POD_LABELS[$1]}" --all-containers=true --tail=-1
}

pod_uid() {
  kc get pod "${POD_LABELS[$1]}" --output 'jsonpath={.metadata.uid}' 2>/dev/null || true
}

pod_ready() {
  [[ $(kc get pod "${POD_LABELS[$1]}" --output 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null || true) == True ]]
}

# Deletes the pod and waits until the StatefulSet has recreated it (a new uid) and it is Ready.
k8s_restart() {
  local pod="${POD_LABELS[$1]}" old_uid uid deadline
  old_uid="$(pod_uid "$1")"
  [[ -n $old_uid ]] || { set_error "pod $pod not found"; return 1; }
  kc delete pod "$pod" --wait=false >/dev/null || { set_error "kubectl delete pod $pod failed"; return 1; }
  broker_close "$(kube_context)" "$NAMESPACE" "$pod" "$BROKER_PORT"
  deadline=$((SECONDS + RESTART_TIMEOUT))
  while ((SECONDS < deadline)); do
    uid="$(pod_uid "$1")"
    if [[ -n $uid && $uid != "$old_uid" ]] && pod_ready "$1"; then
      return 0
    fi
    sleep 2
  done
  set_error "pod $pod not recreated and Ready within ${RESTART_TIMEOUT}s"
  return 1
}

# --- pod access: plain HTTP -----------------------------------------------------------------------

http_setup() {
  require curl
  local url file
  if [[ -n $BROKER_TOKEN && -n $BROKER_TOKEN_FILE ]]; then
    die "set BROKER_TOKEN or BROKER_TOKEN_FILE, not both"
  fi
  for url in ${BROKER_URLS//,/ }; do
    URLS+=("${url%/}")
    POD_LABELS+=("${url%/}")
  done
  POD_COUNT=${#URLS[@]}
  for file in ${LOG_FILES//,/ }; do
    LOGS+=("$file")
  done
  if ((${#LOGS[@]} > 0 && ${#LOGS[@]} != POD_COUNT)); then
    die "LOG_FILES has ${#LOGS[@]} entries for $POD_COUNT BROKER_URLS"
  fi
}

# The header file with the token: BROKER_TOKEN, or BROKER_TOKEN_FILE read again on every request
# (so a rotated file is followed); empty when neither is set.
http_token_header() {
  local token file="$WORK_DIR/token.header"
  if [[ -n $BROKER_TOKEN_FILE ]]; then
    token="$(<"$BROKER_TOKEN_FILE")" || return 1
  elif [[ -n $BROKER_TOKEN ]]; then
    token="$BROKER_TOKEN"
  else
    return 0
  fi
  token="${token#"${token%%[![:space:]]*}"}"
  token="${token%"${token##*[![:space:]]}"}"
  write_bearer_header "$file" "$token"
  printf '%s\n' "$file"
}

http_has_token() { [[ -n $BROKER_TOKEN || -n $BROKER_TOKEN_FILE ]]; }

# http_fetch INDEX METHOD PATH [BODY_FILE]
http_fetch() {
  local header
  header="$(http_token_header)" || return 1
  broker_curl "${URLS[$1]}" "$header" "$2" "$3" "${4:-}"
}

# http_status INDEX AUTH METHOD PATH [CURL_ARGS...]
http_status() {
  local header
  header="$(auth_header "$2")" || return 1
  broker_status "${URLS[$1]}" "$header" "$3" "$4" "${@:5}"
}

http_logs() {
  cat -- "${LOGS[$1]}"
}

http_restart() {
  PEAT_TEST_POD_INDEX="$1" PEAT_TEST_POD_NAME="${NODE_IDS[$1]:-}" PEAT_TEST_BROKER_URL="${URLS[$1]}" \
    bash -c "$RESTART_CMD" || { set_error "RESTART_CMD failed (exit $?)"; return 1; }
}

# --- the seam the checks use ----------------------------------------------------------------------

MODE=k8s
[[ -n $BROKER_URLS ]] && MODE=http

# pod_fetch INDEX METHOD PATH [BODY_FILE]: the response body on stdout; non-zero (and the reason
# in last_error) when the request fails or the answer is not 2xx.
pod_fetch() {
  local status=0 err
  err="$(mktemp "$WORK_DIR/fetch.XXXXXX")"
  "${MODE}_fetch" "$@" 2>"$err" || status=$?
  if ((status != 0)); then
    set_error "$2 $3 on ${POD_LABELS[$1]}: $(tr '\n' ' ' <"$err")"
  fi
  rm -f "$err"
  return "$status"
}

# pod_status INDEX AUTH METHOD PATH [CURL_ARGS...]: "<HTTP status> <WWW-Authenticate>" of one
# request sent with the token (AUTH token), without one (none) or with a wrong one (wrong).
pod_status() { "${MODE}_status" "$@"; }

# Whether requests carry a token (always in Kubernetes: the chart always configures one).
pod_has_token() { "${MODE}_has_token"; }

# auth_header token|none|wrong: the header file to send (empty: none).
auth_header() {
  case $1 in
    token) "${MODE}_token_header" ;;
    none) printf '\n' ;;
    wrong)
      [[ -s $WORK_DIR/wrong.header ]] || write_bearer_header "$WORK_DIR/wrong.header" "wrong-$(random_hex 16)"
      printf '%s\n' "$WORK_DIR/wrong.header"
      ;;
    *) die "auth_header: unknown mode $1" ;;
  esac
}

pod_logs_available() {
  [[ $MODE == k8s ]] || ((${#LOGS[@]} > 0))
}

pod_logs() { "${MODE}_logs" "$@"; }

pod_restart_available() {
  [[ $MODE == k8s || -n $RESTART_CMD ]]
}

pod_restart() { "${MODE}_restart" "$@"; }

# --- helpers --------------------------------------------------------------------------------------

# wait_healthy INDEX TIMEOUT: true once GET /api/v1/health answers "healthy".
wait_healthy() {
  local deadline=$((SECONDS + $2)) body
  clear_error
  while :; do
    if body="$(pod_fetch "$1" GET /api/v1/health)" && [[ $(json_field status <<<"$body") == healthy ]]; then
      return 0
    fi
    ((SECONDS < deadline)) || return 1
    sleep 1
  done
}

# missing_peers INDEX: prints the node IDs of the other pods that pod INDEX does not list as
# connected (nothing when all are); non-zero when /api/v1/peers cannot be read.
missing_peers() {
  local body connected j missing=()
  body="$(pod_fetch "$1" GET /api/v1/peers)" || return 1
  connected="$(json_connected_peers <<<"$body")"
  for ((j = 0; j < POD_COUNT; j++)); do
    ((j == $1)) && continue
    grep -qxF -- "${NODE_IDS[$j]}" <<<"$connected" || missing+=("${NODE_IDS[$j]}")
  done
  printf '%s\n' "${missing[@]}"
}

# wait_peers INDEX TIMEOUT: true once pod INDEX lists every other pod as connected; the reason
# of the last attempt is in last_error otherwise.
wait_peers() {
  local deadline=$((SECONDS + $2)) missing
  clear_error
  while :; do
    if missing="$(missing_peers "$1")"; then
      if [[ -z $missing ]]; then
        return 0
      fi
      set_error "not connected to: $(echo "$missing" | tr '\n' ' ')"
    fi
    ((SECONDS < deadline)) || return 1
    sleep 2
  done
}

# wait_document INDEX TIMEOUT: true once pod INDEX serves the test document with the content
# that was written.
wait_document() {
  local deadline=$((SECONDS + $2)) body got want
  want="$(json_canonical <"$TEST_DOC_FILE")"
  clear_error
  while :; do
    if body="$(pod_fetch "$1" GET "/api/v1/documents/$COLLECTION/$TEST_DOC_ID" 2>/dev/null)"; then
      got="$(json_canonical document <<<"$body")"
      [[ $got == "$want" ]] && return 0
      set_error "content differs: got $got, want $want"
    fi
    ((SECONDS < deadline)) || return 1
    sleep 0.5
  done
}

# wait_restarted INDEX STARTED TIMEOUT: true once pod INDEX is healthy and its /api/v1/node
# uptime_secs shows a process started after SECONDS was STARTED.
wait_restarted() {
  local deadline=$((SECONDS + $3)) body uptime
  while :; do
    if wait_healthy "$1" 1 && body="$(pod_fetch "$1" GET /api/v1/node)"; then
      uptime="$(json_field uptime_secs <<<"$body")"
      if [[ $uptime =~ ^[0-9]+$ ]] && ((uptime <= SECONDS - $2 + 1)); then
        return 0
      fi
      set_error "the node answering has been up ${uptime}s: not restarted"
    fi
    ((SECONDS < deadline)) || return 1
    sleep 1
  done
}

random_hex() {
  od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'
}

# The device_id of the last "Mesh started node_id=NODE device_id=..." line of a log on stdin.
mesh_started_device_id() {
  grep -F "Mesh started node_id=$1 " | tail -n 1 | grep -oE 'device_id=[0-9a-f]+' | head -n 1 | cut -d= -f2 || true
}

# --- checks ---------------------------------------------------------------------------------------

check_health() {
  local i body node_id
  for ((i = 0; i < POD_COUNT; i++)); do
    if ! wait_healthy "$i" "$HEALTH_TIMEOUT"; then
      fail "health ${POD_LABELS[$i]}: not healthy within ${HEALTH_TIMEOUT}s ($(last_error))"
      continue
    fi
    ok "health ${POD_LABELS[$i]}: healthy"
    if [[ $MODE == k8s ]]; then
      body="$(pod_fetch "$i" GET /api/v1/node)" || body='{}'
      node_id="$(json_field node_id <<<"$body")"
      if [[ $node_id == "${POD_LABELS[$i]}" ]]; then
        ok "health ${POD_LABELS[$i]}: node_id is the pod name"
      else
        fail "health ${POD_LABELS[$i]}: node_id '$node_id' is not the pod name"
      fi
    fi
  done
}

# expect_status INDEX AUTH METHOD PATH WANT LABEL [CURL_ARGS...]: OK when the answer's status is
# WANT (and, for 401, WWW-Authenticate names the Bearer scheme).
expect_status() {
  local got code auth
  if ! got="$(pod_status "$1" "$2" "$3" "$4" "${@:7}" 2>"$WORK_DIR/status.err")"; then
    fail "auth ${POD_LABELS[$1]}: $6: no answer ($(tr '\n' ' ' <"$WORK_DIR/status.err"))"
    return
  fi
  code="${got%% *}"
  auth="${got#* }"
  if [[ $code != "$5" ]]; then
    fail "auth ${POD_LABELS[$1]}: $6: HTTP $code, want $5"
  elif [[ $5 == 401 && ! $auth =~ ^[Bb]earer($|[[:space:]]) ]]; then
    fail "auth ${POD_LABELS[$1]}: $6: 401 without 'WWW-Authenticate: Bearer' (got '${auth}')"
  else
    ok "auth ${POD_LABELS[$1]}: $6: $code${auth:+ (WWW-Authenticate: $auth)}"
  fi
}

check_auth() {
  local i id body
  if ! pod_has_token; then
    skip "auth: no broker token given (BROKER_TOKEN_FILE or BROKER_TOKEN)"
    return
  fi
  if ! auth_header token >/dev/null 2>"$WORK_DIR/token.err"; then
    fail "auth: cannot read the broker token: $(tr '\n' ' ' <"$WORK_DIR/token.err")"
    return
  fi
  for ((i = 0; i < POD_COUNT; i++)); do
    expect_status "$i" none GET /api/v1/peers 401 "GET /api/v1/peers without the token"
    expect_status "$i" wrong GET /api/v1/peers 401 "GET /api/v1/peers with a wrong token"
    expect_status "$i" token GET /api/v1/peers 200 "GET /api/v1/peers with the token"
    expect_status "$i" none GET /api/v1/ws 401 "WebSocket upgrade /api/v1/ws without the token" \
      --http1.1 --header 'Connection: Upgrade' --header 'Upgrade: websocket' --header 'Sec-WebSocket-Version: 13' \
      --header "Sec-WebSocket-Key: $(random_hex 16 | head -c 22)==" --max-time 5
    expect_status "$i" none GET /api/v1/health 200 "GET /api/v1/health without a token"
    expect_status "$i" none GET /api/v1/ready 200 "GET /api/v1/ready without a token"
    expect_status "$i" none GET /metrics 200 "GET /metrics without a token"
  done
  # A write without the token is refused and leaves nothing behind.
  id="auth-$(random_hex 6)"
  printf '{"check":"auth"}\n' >"$WORK_DIR/auth.json"
  expect_status 0 none PUT "/api/v1/documents/$COLLECTION/$id" 401 "PUT a document without the token" \
    --header 'Content-Type: application/json' --data-binary "@$WORK_DIR/auth.json"
  clear_error
  if body="$(pod_fetch 0 GET "/api/v1/documents/$COLLECTION/$id")"; then
    fail "auth ${POD_LABELS[0]}: the PUT without the token stored $COLLECTION/$id: $body"
    pod_fetch 0 DELETE "/api/v1/documents/$COLLECTION/$id" >/dev/null 2>&1 || true
  elif [[ $(last_error) == *"HTTP 404"* ]]; then
    ok "auth ${POD_LABELS[0]}: the refused PUT stored nothing (GET with the token: 404)"
  else
    fail "auth ${POD_LABELS[0]}: cannot tell whether the refused PUT stored anything: $(last_error)"
  fi
}

check_peers() {
  local i
  if ((POD_COUNT < 2)); then
    skip "peers: a single pod has no peers"
    return
  fi
  for ((i = 0; i < POD_COUNT; i++)); do
    if wait_peers "$i" "$PEER_TIMEOUT"; then
      ok "peers ${POD_LABELS[$i]}: connected to all $((POD_COUNT - 1)) other pods"
    else
      fail "peers ${POD_LABELS[$i]}: after ${PEER_TIMEOUT}s: $(last_error)"
    fi
  done
}

check_document() {
  local i body start status=0
  TEST_DOC_ID="ft-$(date -u +%Y%m%d%H%M%S)-$(random_hex 6)"
  TEST_DOC_FILE="$WORK_DIR/document.json"
  cat >"$TEST_DOC_FILE" <<EOF
{"check":"functional-test","id":"$TEST_DOC_ID","nonce":"$(random_hex 16)","count":42,"ratio":0.5,"ok":true,"none":null,"tags":["alpha","beta"],"nested":{"callsign":"ALPHA-1","lat":48.1,"lon":11.6}}
EOF
  body="$(pod_fetch 0 PUT "/api/v1/documents/$COLLECTION/$TEST_DOC_ID" "$TEST_DOC_FILE")" || status=$?
  if ((status != 0)); then
    fail "document PUT $COLLECTION/$TEST_DOC_ID on ${POD_LABELS[0]}: $(last_error)"
    TEST_DOC_ID=""
    return
  fi
  if [[ $(json_canonical document <<<"$body") != "$(json_canonical <"$TEST_DOC_FILE")" ]]; then
    fail "document PUT on ${POD_LABELS[0]}: the answer does not echo the document: $body"
  else
    ok "document PUT $COLLECTION/$TEST_DOC_ID on ${POD_LABELS[0]}"
  fi
  for ((i = 1; i < POD_COUNT; i++)); do
    start=$SECONDS
    if wait_document "$i" "$SYNC_TIMEOUT"; then
      ok "document readable on ${POD_LABELS[$i]} with the same content (within $((SECONDS - start + 1))s)"
    else
      fail "document on ${POD_LABELS[$i]}: not readable within ${SYNC_TIMEOUT}s ($(last_error))"
    fi
  done
}

SAVED_LOGS=()   # logs of pods replaced by the restart check, for the log check

check_restart() {
  local before after logged body saved name started
  if ! pod_restart_available; then
    skip "restart: set RESTART_CMD to restart a node in HTTP mode"
    return
  fi
  name="${NODE_IDS[0]}"
  body="$(pod_fetch 0 GET /api/v1/node)" || { fail "restart: $(last_error)"; return; }
  before="$(json_field device_id <<<"$body")"
  if [[ ! $before =~ ^[0-9a-f]{32}$ ]]; then
    fail "restart ${POD_LABELS[0]}: device_id before the restart is not 32 hex characters: '$before'"
    return
  fi
  if [[ $MODE == k8s ]]; then
    # The log check also reads the pod being replaced: its logs go with it.
    saved="$WORK_DIR/restart-0-before.log"
    pod_logs 0 >"$saved" 2>&1 || true
    SAVED_LOGS+=("$saved")
  fi
  log "restarting ${POD_LABELS[0]} (device_id $before)"
  started=$SECONDS
  if ! pod_restart 0; then
    fail "restart ${POD_LABELS[0]}: $(last_error)"
    return
  fi
  # The new process: healthy, and up for no longer than the restart has taken (a RESTART_CMD that
  # returns before the old process is gone must not let the old one answer).
  if ! wait_restarted 0 "$started" "$RESTART_TIMEOUT"; then
    fail "restart ${POD_LABELS[0]}: no new healthy node within ${RESTART_TIMEOUT}s ($(last_error))"
    return
  fi
  body="$(pod_fetch 0 GET /api/v1/node)" || { fail "restart: $(last_error)"; return; }
  after="$(json_field device_id <<<"$body")"
  if [[ $after == "$before" ]]; then
    ok "restart ${POD_LABELS[0]}: /api/v1/node device_id unchanged ($after)"
  else
    fail "restart ${POD_LABELS[0]}: device_id changed: $before -> $after"
  fi
  if pod_logs_available; then
    logged="$(pod_logs 0 2>/dev/null | mesh_started_device_id "$name")"
    if [[ $logged == "$before" ]]; then
      ok "restart ${POD_LABELS[0]}: log line 'Mesh started node_id=$name device_id=$logged' matches"
    else
      fail "restart ${POD_LABELS[0]}: last 'Mesh started node_id=$name' log line has device_id '${logged:-<none>}', want $before"
    fi
  else
    skip "restart: no logs (LOG_FILES) to read the 'Mesh started' line from"
  fi
  if ((POD_COUNT > 1)); then
    if wait_peers 0 "$PEER_TIMEOUT"; then
      ok "restart ${POD_LABELS[0]}: reconnected to all $((POD_COUNT - 1)) other pods"
    else
      fail "restart ${POD_LABELS[0]}: after ${PEER_TIMEOUT}s: $(last_error)"
    fi
  fi
  if [[ -n $TEST_DOC_ID ]]; then
    if wait_document 0 "$SYNC_TIMEOUT"; then
      ok "restart ${POD_LABELS[0]}: still serves document $COLLECTION/$TEST_DOC_ID"
    else
      fail "restart ${POD_LABELS[0]}: document $COLLECTION/$TEST_DOC_ID lost ($(last_error))"
    fi
  fi
}

# Lines at level ERROR/CRITICAL: text format "<time> ERROR <label>: ..." or JSON "level":"error".
BAD_LEVEL_RE=' (ERROR|CRITICAL) |"level" *: *"(error|critical|ERROR|CRITICAL)"'

check_logs() {
  local i file label
  if ! pod_logs_available; then
    skip "logs: set LOG_FILES to check the node logs in HTTP mode"
    return
  fi
  for ((i = 0; i < POD_COUNT; i++)); do
    file="$WORK_DIR/logs-$i.txt"
    if ! pod_logs "$i" >"$file" 2>"$WORK_DIR/logs.err"; then
      fail "logs ${POD_LABELS[$i]}: cannot read them: $(tr '\n' ' ' <"$WORK_DIR/logs.err")"
      continue
    fi
    scan_log "${POD_LABELS[$i]}" "$file"
  done
  for file in "${SAVED_LOGS[@]}"; do
    label="${POD_LABELS[0]} (before its restart)"
    scan_log "$label" "$file"
  done
}

scan_log() {
  local bad count
  bad="$(grep -E -- "$BAD_LEVEL_RE" "$2" || true)"
  if [[ -z $bad ]]; then
    ok "logs $1: no ERROR/CRITICAL line ($(wc -l <"$2" | tr -d ' ') lines)"
  else
    count="$(wc -l <<<"$bad" | tr -d ' ')"
    fail "logs $1: $count ERROR/CRITICAL line(s), first: $(head -n 3 <<<"$bad" | tr '\n' '|')"
  fi
}

# --- main -----------------------------------------------------------------------------------------

cleanup() {
  if [[ -n $TEST_DOC_ID && -n $WORK_DIR ]]; then
    pod_fetch 0 DELETE "/api/v1/documents/$COLLECTION/$TEST_DOC_ID" >/dev/null 2>&1 || true
  fi
  broker_end
  [[ -n $WORK_DIR ]] && rm -rf -- "$WORK_DIR"
  return 0
}

main() {
  case ${1:-} in
    -h | --help) usage; return 0 ;;
    "") ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
  require_json_tool
  WORK_DIR="$(mktemp -d "${TMPDIR:-/tmp}/peat-ft.XXXXXX")"
  trap cleanup EXIT
  if [[ $MODE == k8s ]]; then
    validate_common
    k8s_setup
    log "Kubernetes mode: $POD_COUNT pods of statefulset/$(statefulset_name) in $NAMESPACE ($(kube_context))"
  else
    http_setup
    log "HTTP mode: $POD_COUNT nodes"
  fi
  ((POD_COUNT > 0)) || die "no pods to test"

  # Node IDs as the pods report them (peers are listed by node ID).
  local i body check
  for ((i = 0; i < POD_COUNT; i++)); do
    NODE_IDS+=("")
    if wait_healthy "$i" "$HEALTH_TIMEOUT" && body="$(pod_fetch "$i" GET /api/v1/node)"; then
      NODE_IDS[i]="$(json_field node_id <<<"$body")"
    fi
    [[ -n ${NODE_IDS[$i]} ]] || NODE_IDS[i]="${POD_LABELS[$i]}"
    if [[ $MODE == http && ${NODE_IDS[$i]} != "${POD_LABELS[$i]}" ]]; then
      POD_LABELS[i]="${NODE_IDS[$i]} (${URLS[$i]})"
    fi
  done

  for check in $CHECKS; do
    case $check in
      health | auth | peers | document | restart | logs) "check_$check" ;;
      *) die "unknown check '$check' in CHECKS" ;;
    esac
  done

  printf '\n%d passed, %d failed, %d skipped\n' "$PASSED" "$FAILED" "$SKIPPED"
  ((FAILED == 0))
}

main "$@"
