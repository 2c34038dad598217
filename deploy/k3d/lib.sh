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

require_json_tool() {
  command -v jq >/dev/null 2>&1 || command -v python3 >/dev/null 2>&1 ||
    die "neither jq nor python3 is available to read JSON"
}

# --- pods through the API server's pod proxy -------------------------------------------------------

# pod_proxy CONTEXT NAMESPACE POD PORT METHOD PATH [BODY_FILE]: an HTTP request to a pod's port
# through the API server (no port-forward, no curl in the image); the body on stdout, non-zero on
# failure or a non-2xx answer. kubectl sends PUT/POST bodies as given (JSON here).
pod_proxy() {
  local uri="/api/v1/namespaces/$2/pods/$3:$4/proxy$6"
  case $5 in
    GET) kubectl --context "$1" get --raw "$uri" ;;
    PUT) kubectl --context "$1" replace --raw "$uri" --filename "$7" ;;
    POST) kubectl --context "$1" create --raw "$uri" --filename "$7" ;;
    DELETE) kubectl --context "$1" delete --raw "$uri" ;;
    *) die "unsupported method $5" ;;
  esac
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
