# shellcheck shell=bash
# Shared helpers of the deploy/k3d scripts. Source it; it defines functions and defaults only.
#
# Every setting is an environment variable with a default, so a caller can override any of them:
#   CLUSTER           k3d cluster name                          (peat)
#   RELEASE           Helm release name                         (peat-mesh)
#   NAMESPACE         Kubernetes namespace                      (default)
#   IMAGE             image reference, repository[:tag]         (peat-mesh-node:latest)
#   REPLICAS          StatefulSet replicas                      (3)
#   FORMATION_SECRET  formation secret (base64); generated once and kept in SECRET_FILE when unset
#   SECRET_FILE       where the generated secret is kept, mode 0600
#                     (${XDG_STATE_HOME:-~/.local/state}/peat-mesh/k3d/<cluster>-<namespace>-<release>.secret)
#   EXISTING_SECRET   use this existing Kubernetes Secret instead (chart value existingSecret)
#   BROKER_TOKEN_SECRET  an existing Secret with key broker-token (chart value brokerToken.existingSecret);
#                     unset: the chart generates the broker token and keeps it across upgrades
#   CHART             Helm chart directory                      (<repo>/deploy/helm/peat-mesh)
#   KUBE_CONTEXT      kubectl/helm context                      (k3d-$CLUSTER)
#   TIMEOUT           rollout/wait timeout                      (300s)

K3D_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$K3D_DIR/../.." && pwd)"

: "${CLUSTER:=peat}"
: "${RELEASE:=peat-mesh}"
: "${NAMESPACE:=default}"
: "${IMAGE:=peat-mesh-node:latest}"
: "${REPLICAS:=3}"
: "${CHART:=$REPO_ROOT/deploy/helm/peat-mesh}"
: "${TIMEOUT:=300s}"

# The kube context follows CLUSTER unless set explicitly; call after changing CLUSTER.
kube_context() {
  printf '%s\n' "${KUBE_CONTEXT:-k3d-$CLUSTER}"
}

# --- logging --------------------------------------------------------------------------------------

_log_prefix() { printf '[%s %s]' "$(date -u +%H:%M:%S)" "${LOG_TAG:-$(basename "$0" .sh)}"; }
log()  { printf '%s %s\n' "$(_log_prefix)" "$*" >&2; }
warn() { printf '%s WARNING: %s\n' "$(_log_prefix)" "$*" >&2; }
die()  { printf '%s ERROR: %s\n' "$(_log_prefix)" "$*" >&2; exit 1; }

# Logs a command, then runs it.
run() {
  log "+ $*"
  "$@"
}

# require CMD...: fails naming every missing command.
require() {
  local missing=() cmd
  for cmd in "$@"; do
    command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd")
  done
  ((${#missing[@]} == 0)) || die "missing required command(s): ${missing[*]}"
}

# --- validation -----------------------------------------------------------------------------------

# require_uint NAME VALUE: VALUE must be a non-negative integer.
require_uint() {
  [[ $2 =~ ^[0-9]+$ ]] || die "$1 must be a non-negative integer, got '$2'"
}

# A Kubernetes object name (DNS-1123 label).
require_dns_label() {
  if [[ ! $2 =~ ^[a-z0-9]([-a-z0-9]*[a-z0-9])?$ ]] || ((${#2} > 63)); then
    die "$1 must be a DNS-1123 label (lowercase letters, digits, '-'), got '$2'"
  fi
}

validate_common() {
  require_dns_label CLUSTER "$CLUSTER"
  require_dns_label RELEASE "$RELEASE"
  require_dns_label NAMESPACE "$NAMESPACE"
  require_uint REPLICAS "$REPLICAS"
}

# --- kubectl / helm / k3d wrappers ----------------------------------------------------------------

kc() {
  kubectl --context "$(kube_context)" --namespace "$NAMESPACE" "$@"
}

hc() {
  helm --kube-context "$(kube_context)" --namespace "$NAMESPACE" "$@"
}

cluster_exists() {
  k3d cluster get "$CLUSTER" >/dev/null 2>&1
}

release_exists() {
  hc status "$RELEASE" >/dev/null 2>&1
}

# The chart's StatefulSet name: the release name when it contains "peat-mesh", else
# "<release>-peat-mesh" (the chart's fullname rule).
statefulset_name() {
  local release="${1:-$RELEASE}"
  if [[ $release == *peat-mesh* ]]; then
    printf '%s\n' "$release"
  else
    printf '%s\n' "$release-peat-mesh"
  fi
}

# pod_name INDEX [RELEASE]
pod_name() {
  printf '%s-%s\n' "$(statefulset_name "${2:-$RELEASE}")" "$1"
}

# Splits IMAGE into repository and tag (a registry port is not a tag: host:5000/repo stays whole).
image_repository() {
  local last="${IMAGE##*/}"
  if [[ $last == *:* ]]; then printf '%s\n' "${IMAGE%:*}"; else printf '%s\n' "$IMAGE"; fi
}
image_tag() {
  local last="${IMAGE##*/}"
  if [[ $last == *:* ]]; then printf '%s\n' "${last##*:}"; else printf 'latest\n'; fi
}

# --- formation secret -----------------------------------------------------------------------------

secret_file() {
  printf '%s\n' "${SECRET_FILE:-${XDG_STATE_HOME:-$HOME/.local/state}/peat-mesh/k3d/$CLUSTER-$NAMESPACE-$RELEASE.secret}"
}

# Prints the formation secret: FORMATION_SECRET if set, else the one kept in the secret file, else
# (when the release already exists) the one the release was installed with, else a new one
# (`openssl rand -base64 32`), which is saved to the secret file (mode 0600) so that `upgrade` and
# later runs reuse it: a new secret would give every pod a new identity and split the formation.
formation_secret() {
  local file secret=""
  file="$(secret_file)"
  if [[ -n ${FORMATION_SECRET:-} ]]; then
    printf '%s\n' "$FORMATION_SECRET"
    return
  fi
  if [[ -s $file ]]; then
    secret="$(<"$file")"
  elif release_exists; then
    secret="$(hc get values "$RELEASE" --output json 2>/dev/null | json_field formationSecret || true)"
    [[ -n $secret ]] && log "reusing the formation secret of release $RELEASE"
  fi
  if [[ -z $secret ]]; then
    require openssl
    secret="$(openssl rand -base64 32)"
    log "generated a new formation secret"
  fi
  if [[ ! -s $file ]]; then
    mkdir -p "$(dirname "$file")"
    (umask 077 && printf '%s\n' "$secret" >"$file.tmp" && mv "$file.tmp" "$file")
    chmod 600 "$file"
    log "formation secret saved in $file (mode 0600)"
  fi
  printf '%s\n' "$secret"
}

# --- JSON -----------------------------------------------------------------------------------------

# json_field KEY: prints the top-level string/number KEY of the JSON object on stdin (empty if absent).
json_field() {
  if command -v jq >/dev/null 2>&1; then
    jq -r --arg k "$1" '.[$k] // empty | tostring'
  else
    python3 -c 'import json,sys
v = json.load(sys.stdin).get(sys.argv[1])
if v is not None: print(v if isinstance(v, str) else json.dumps(v))' "$1"
  fi
}

# Canonical compact JSON of stdin (keys sorted), or of its .document when the argument is "document".
json_canonical() {
  if command -v jq >/dev/null 2>&1; then
    if [[ ${1:-} == document ]]; then jq -cS '.document'; else jq -cS '.'; fi
  else
    python3 -c 'import json,sys
v = json.load(sys.stdin)
if len(sys.argv) > 1 and sys.argv[1] == "document": v = v.get("document")
print(json.dumps(v, sort_keys=True, separators=(",", ":"), ensure_ascii=False))' "$@"
  fi
}

# The ids of the peers with "connected": true in a /api/v1/peers answer on stdin, one a line.
json_connected_peers() {
  if command -v jq >/dev/null 2>&1; then
    jq -r '.peers[]? | select(.connected == true) | .id'
  else
    python3 -c 'import json,sys
for p in json.load(sys.stdin).get("peers") or []:
    if p.get("connected") is True: print(p.get("id"))'
  fi
}

# The ids of the connected peers reached through a relay ("path": "relay") in a /api/v1/peers
# answer on stdin, one a line.
json_relayed_peers() {
  if command -v jq >/dev/null 2>&1; then
    jq -r '.peers[]? | select(.connected == true and .path == "relay") | .id'
  else
    python3 -c 'import json,sys
for p in json.load(sys.stdin).get("peers") or []:
    if p.get("connected") is True and p.get("path") == "relay": print(p.get("id"))'
  fi
}

require_json_tool() {
  command -v jq >/dev/null 2>&1 || command -v python3 >/dev/null 2>&1 ||
    die "neither jq nor python3 is available to read JSON"
}

# --- a pod's broker: kubectl port-forward + curl with the bearer token ------------------------------
#
# Every broker route but /api/v1/health, /api/v1/ready and /metrics needs "Authorization: Bearer
# <token>". The API server's pod proxy (kubectl get --raw .../pods/POD:PORT/proxy/...) cannot carry
# it: the API server authenticates the proxy request itself with the kubeconfig's credentials and
# removes the Authorization header before proxying, and kubectl --raw sends no other. So the
# scripts reach a pod's broker through `kubectl port-forward` (which connects on the pod's
# loopback: no NetworkPolicy applies) and send the token with curl from this host. The token comes
# from the Secret the StatefulSet mounts (volume broker-token, key broker-token) and goes to curl
# as a mode-0600 header file (-H @file): it never appears on a command line.
#
# State lives in files under BROKER_DIR, so calls made in command substitutions (subshells) share
# the port-forwards: broker_begin creates it, broker_end stops the port-forwards and removes it.

BROKER_DIR=""

broker_begin() {
  BROKER_DIR="$(mktemp -d "${TMPDIR:-/tmp}/peat-broker.XXXXXX")"
  chmod 700 "$BROKER_DIR"
}

broker_end() {
  local pid_file
  [[ -n $BROKER_DIR && -d $BROKER_DIR ]] || return 0
  for pid_file in "$BROKER_DIR"/*.pid; do
    [[ -e $pid_file ]] && _broker_stop "$pid_file"
  done
  rm -rf -- "$BROKER_DIR"
  BROKER_DIR=""
}

# Stops the port-forward whose pid is in the file (only that process, by its pid).
_broker_stop() {
  local pid
  pid="$(cat -- "$1" 2>/dev/null || true)"
  if [[ $pid =~ ^[0-9]+$ ]]; then kill "$pid" 2>/dev/null || true; fi
  rm -f -- "$1"
}

_broker_key() {
  printf '%s' "$*" | tr -c 'A-Za-z0-9.-' '_'
}

# broker_token_secret CONTEXT NAMESPACE STATEFULSET: the Secret the StatefulSet mounts as its token.
broker_token_secret() {
  kubectl --context "$1" --namespace "$2" get statefulset "$3" \
    --output 'jsonpath={.spec.template.spec.volumes[?(@.name=="broker-token")].secret.secretName}'
}

# broker_token CONTEXT NAMESPACE STATEFULSET: the broker token (stdout, no newline), trimmed of
# surrounding whitespace as the node trims it.
broker_token() {
  local secret token
  secret="$(broker_token_secret "$@")" || return 1
  if [[ -z $secret ]]; then
    printf 'statefulset/%s mounts no broker-token Secret (a chart without broker tokens?)\n' "$3" >&2
    return 1
  fi
  token="$(kubectl --context "$1" --namespace "$2" get secret "$secret" \
    --output 'jsonpath={.data.broker-token}' | base64 -d)" || return 1
  token="${token#"${token%%[![:space:]]*}"}"
  token="${token%"${token##*[![:space:]]}"}"
  if [[ -z $token ]]; then
    printf 'Secret %s has no key broker-token (or an empty one)\n' "$secret" >&2
    return 1
  fi
  printf '%s' "$token"
}

# write_bearer_header FILE TOKEN: FILE (mode 0600) holds "Authorization: Bearer TOKEN" for curl -H @FILE.
write_bearer_header() {
  (umask 077 && printf 'Authorization: Bearer %s\n' "$2" >"$1")
}

# broker_header CONTEXT NAMESPACE STATEFULSET: the path of the header file with the release's
# token, read from the cluster on first use (and again after broker_forget_token).
broker_header() {
  local file token
  file="$BROKER_DIR/$(_broker_key "$1" "$2" "$3").header"
  if [[ ! -s $file ]]; then
    token="$(broker_token "$@")" || return 1
    write_bearer_header "$file" "$token"
  fi
  printf '%s\n' "$file"
}

# broker_forget_token CONTEXT NAMESPACE STATEFULSET: the next call reads the token again (after a
# 401: the Secret may have been rotated).
broker_forget_token() {
  rm -f -- "$BROKER_DIR/$(_broker_key "$1" "$2" "$3").header"
}

# broker_url CONTEXT NAMESPACE POD PORT: http://127.0.0.1:<local port> forwarded to POD's PORT,
# starting `kubectl port-forward` on first use (or when the last one has exited).
broker_url() {
  local key pid port log deadline
  [[ -n $BROKER_DIR ]] || die "broker_begin was not called"
  key="$(_broker_key "$1" "$2" "$3" "$4")"
  if [[ -s $BROKER_DIR/$key.port && -s $BROKER_DIR/$key.pid ]] && kill -0 "$(<"$BROKER_DIR/$key.pid")" 2>/dev/null; then
    printf 'http://127.0.0.1:%s\n' "$(<"$BROKER_DIR/$key.port")"
    return 0
  fi
  broker_close "$@"
  log="$BROKER_DIR/$key.log"
  # Output to a file, not to the caller: a command substitution must not wait for this process.
  kubectl --context "$1" --namespace "$2" port-forward --address 127.0.0.1 "pod/$3" ":$4" </dev/null >"$log" 2>&1 &
  pid=$!
  printf '%s\n' "$pid" >"$BROKER_DIR/$key.pid"
  deadline=$((SECONDS + 20))
  while :; do
    port="$(sed -n 's/^Forwarding from 127\.0\.0\.1:\([0-9][0-9]*\) -> .*/\1/p' "$log" | head -n 1)"
    if [[ -n $port ]]; then
      printf '%s\n' "$port" >"$BROKER_DIR/$key.port"
      printf 'http://127.0.0.1:%s\n' "$port"
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null || ((SECONDS >= deadline)); then
      printf 'kubectl port-forward pod/%s :%s failed: %s\n' "$3" "$4" "$(tr '\n' ' ' <"$log")" >&2
      broker_close "$@"
      return 1
    fi
    sleep 0.2
  done
}

# broker_close CONTEXT NAMESPACE POD PORT: stops that pod's port-forward (e.g. after deleting the pod).
broker_close() {
  local key
  key="$(_broker_key "$1" "$2" "$3" "$4")"
  if [[ -e $BROKER_DIR/$key.pid ]]; then _broker_stop "$BROKER_DIR/$key.pid"; fi
  rm -f -- "$BROKER_DIR/$key.port" "$BROKER_DIR/$key.log"
}

# broker_curl URL HEADER_FILE METHOD PATH [BODY_FILE]: like curl --fail: the body on stdout,
# non-zero on a transport failure (curl's status) or a non-2xx answer (22; status and body on
# stderr). HEADER_FILE empty: no Authorization header.
broker_curl() {
  local out code status=0
  local args=(--silent --show-error --max-time 10 --request "$3" --write-out '%{http_code}')
  out="$(mktemp "${TMPDIR:-/tmp}/peat-body.XXXXXX")"
  args+=(--output "$out")
  if [[ -n $2 ]]; then args+=(--header "@$2"); fi
  if [[ -n ${5:-} ]]; then args+=(--header 'Content-Type: application/json' --data-binary "@$5"); fi
  code="$(curl "${args[@]}" "$1$4")" || status=$?
  if ((status != 0)); then
    rm -f -- "$out"
    return "$status"
  fi
  if [[ $code != 2[0-9][0-9] ]]; then
    printf 'HTTP %s: %s\n' "$code" "$(head -c 300 -- "$out" | tr '\n' ' ')" >&2
    rm -f -- "$out"
    [[ $code == 401 ]] && return 41
    return 22
  fi
  cat -- "$out"
  rm -f -- "$out"
}

# broker_status URL HEADER_FILE METHOD PATH [CURL_ARGS...]: "<HTTP status> <WWW-Authenticate>"
# of one request, whatever the status (for the authentication checks); non-zero on a transport failure.
broker_status() {
  local url="$1" header="$2" method="$3" path="$4" headers code auth
  shift 4
  headers="$(mktemp "${TMPDIR:-/tmp}/peat-headers.XXXXXX")"
  local args=(--silent --show-error --max-time 10 --request "$method" --output /dev/null
    --dump-header "$headers" --write-out '%{http_code}' "$@")
  if [[ -n $header ]]; then args+=(--header "@$header"); fi
  code="$(curl "${args[@]}" "$url$path")" || { rm -f -- "$headers"; return 1; }
  auth="$(grep -i '^www-authenticate:' "$headers" | head -n 1 | cut -d: -f2- | tr -d '\r' | sed 's/^ *//')"
  rm -f -- "$headers"
  printf '%s %s\n' "$code" "$auth"
}

# pod_broker CONTEXT NAMESPACE POD PORT METHOD PATH [BODY_FILE]: one request to a pod's broker with
# its release's token (pod <statefulset>-<ordinal>); the body on stdout, non-zero on failure or a
# non-2xx answer. A failed connection drops the port-forward (the pod may be gone) and a 401 the
# cached token (it may have been rotated): the next call starts over.
pod_broker() {
  local sts="${3%-*}" url header status=0
  url="$(broker_url "$1" "$2" "$3" "$4")" || return 1
  header="$(broker_header "$1" "$2" "$sts")" || return 1
  broker_curl "$url" "$header" "$5" "$6" "${7:-}" || status=$?
  case $status in
    0) ;;
    41) broker_forget_token "$1" "$2" "$sts" ;;
    22) ;;
    *) broker_close "$1" "$2" "$3" "$4" ;;
  esac
  return "$status"
}

# statefulset_replicas CONTEXT NAMESPACE STATEFULSET: .spec.replicas.
statefulset_replicas() {
  kubectl --context "$1" --namespace "$2" get statefulset "$3" --output 'jsonpath={.spec.replicas}'
}

# --- Helm -----------------------------------------------------------------------------------------

# helm_install_release EXTRA_HELM_ARGS...: `helm upgrade --install` of the chart as RELEASE with
# the formation secret, image and replica count, then waits for the StatefulSet rollout. The secret
# goes through a mode-0600 values file, not the command line, so it never shows in `ps`.
helm_install_release() {
  local secret values status=0
  [[ -d $CHART ]] || die "chart not found: $CHART"
  values="$(mktemp "${TMPDIR:-/tmp}/peat-values.XXXXXX")"
  chmod 600 "$values"
  if [[ -n ${EXISTING_SECRET:-} ]]; then
    # The operator manages the Kubernetes Secret; the chart only references it.
    printf 'existingSecret: "%s"\n' "$EXISTING_SECRET" >"$values"
  else
    secret="$(formation_secret)" || { rm -f "$values"; die "no formation secret"; }
    printf 'formationSecret: "%s"\n' "$secret" >"$values"
  fi
  if [[ -n ${BROKER_TOKEN_SECRET:-} ]]; then
    printf 'brokerToken:\n  existingSecret: "%s"\n' "$BROKER_TOKEN_SECRET" >>"$values"
  fi
  run helm --kube-context "$(kube_context)" --namespace "$NAMESPACE" \
    upgrade --install "$RELEASE" "$CHART" \
    --create-namespace \
    --values "$values" \
    --set-string "image.repository=$(image_repository)" \
    --set-string "image.tag=$(image_tag)" \
    --set image.pullPolicy=Never \
    --set "replicaCount=$REPLICAS" \
    "$@" || status=$?
  rm -f "$values"
  ((status == 0)) || die "helm upgrade --install $RELEASE failed (exit $status)"
  wait_rollout
}

wait_rollout() {
  local sts
  sts="$(statefulset_name)"
  run kc rollout status "statefulset/$sts" --timeout "$TIMEOUT"
}
