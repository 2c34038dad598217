#!/usr/bin/env bash
# Two k3d clusters, one formation: cluster A and cluster B on a shared docker network, each running
# the chart with a NodePort for the sync port, and a one-pod gateway release in cluster B whose
# static peer is cluster A's NodePort. A document written in A must appear in B, and back.
#
# Identities: a pod's node ID is its pod name. Cluster B's releases (its mesh and the gateway) set
# identityContext, so their keys derive from "<identityContext>-<pod name>" and never equal a
# cluster-A key even when both clusters use the same release name. Both releases in B set it: a
# pod whose key derives from its own name checks that peers found through Kubernetes do the same.
# RELEASE_B defaults to a name different from RELEASE_A so that node IDs differ as well.
#
# Each release has its own broker token (its chart-managed Secret); the test reads each from the
# cluster and reaches the pods with kubectl port-forward + curl (lib.sh: pod_broker).
#
# NETWORK_POLICY=1 also enables the chart's NetworkPolicy in every release: cluster A's NodePort
# keeps the client address (nodePort.externalTrafficPolicy=Local) and admits cluster B's server
# address (networkPolicy.federationCIDRs); in B the gateway is part of the mesh (same namespace,
# app=peat-mesh). Local answers only on nodes that run a mesh pod: the gateway dials A's server
# node, where every pod runs while the clusters have no agents (the default).
#
# RELAY=1 federates through a relay instead (no sync NodePort, no gateway): RELEASE_A also runs the
# chart's relay (relay.enabled), exposed on the NodePort RELAY_NODE_PORT; cluster A's nodes use it
# through its Service, cluster B's through https://<cluster A server IP>:RELAY_NODE_PORT (relayUrls).
# Neither cluster can dial the other's pods, so each lists the other's pods as static peers
# "<pod name>@relay": peers reached only through the relay, which forwards by device ID. The dialling
# node derives that device ID from the node ID, so in this mode every pod's identity context is its
# pod name (no identityContext in B): RELEASE_A and RELEASE_B must name different StatefulSets,
# which keeps the node IDs, and so the device IDs, of the two clusters apart.
# The relay access key is RELAY_ACCESS_KEY, or else computed from the formation secret with
# `peat-mesh-node relay-key` in $IMAGE (docker run --network none; the secret reaches the container
# through docker's environment, never a command line). It reaches Helm in a 0600 values file.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

: "${CLUSTER_A:=peat-a}"
: "${CLUSTER_B:=peat-b}"
: "${RELEASE_A:=peat-mesh}"
: "${RELEASE_B:=peat-mesh-b}"
: "${GATEWAY_RELEASE:=peat-gateway}"
: "${FED_NETWORK:=peat-federation}"
: "${SYNC_NODE_PORT:=31204}"
# Whether IDENTITY_CONTEXT_B was given (RELAY=1 refuses one).
IDENTITY_CONTEXT_B_GIVEN="${IDENTITY_CONTEXT_B:+1}"
: "${IDENTITY_CONTEXT_B:=$CLUSTER_B}"
: "${BROKER_PORT:=8081}"
: "${SYNC_TIMEOUT:=60}"
: "${PEER_TIMEOUT:=180}"
: "${COLLECTION:=federation}"
: "${NETWORK_POLICY:=0}"
: "${RELAY:=0}"
: "${RELAY_NODE_PORT:=31340}"
: "${FED_SECRET_FILE:=${XDG_STATE_HOME:-$HOME/.local/state}/peat-mesh/k3d/federation-$CLUSTER_A-$CLUSTER_B-$NAMESPACE.secret}"

LOG_TAG=federation
PASSED=0
FAILED=0

usage() {
  cat <<EOF
Usage: $(basename "$0") up | test | down | --help

  up    create the docker network $FED_NETWORK and clusters $CLUSTER_A and $CLUSTER_B on it, build
        (unless SKIP_BUILD=1) and import \$IMAGE, install $RELEASE_A in $CLUSTER_A and $RELEASE_B in
        $CLUSTER_B (both with a sync NodePort $SYNC_NODE_PORT), then the gateway $GATEWAY_RELEASE
        (1 replica) in $CLUSTER_B with staticPeers=<$CLUSTER_A server IP>:$SYNC_NODE_PORT
        RELAY=1: no sync NodePort, no gateway: $RELEASE_A runs the relay on NodePort $RELAY_NODE_PORT;
        $CLUSTER_B's nodes get relayUrls=https://<$CLUSTER_A server IP>:$RELAY_NODE_PORT; each cluster
        lists the other's pods as staticPeers=<pod>@relay
  test  the gateway is connected to cluster A; every pod has a distinct device_id; a document
        written in A is readable on every pod of B (and the gateway), and one written in B on
        every pod of A
        RELAY=1: instead of the gateway check, the relay is ready (health port, no formation secret in
        its pod) and every pod lists every pod of the other cluster as connected with "path": "relay"
  down  delete both clusters and the network (PURGE=1 also removes the saved formation secret)

Environment (current value):
  CLUSTER_A=$CLUSTER_A CLUSTER_B=$CLUSTER_B NAMESPACE=$NAMESPACE FED_NETWORK=$FED_NETWORK
  RELEASE_A=$RELEASE_A RELEASE_B=$RELEASE_B GATEWAY_RELEASE=$GATEWAY_RELEASE
  IMAGE=$IMAGE REPLICAS=$REPLICAS SYNC_NODE_PORT=$SYNC_NODE_PORT IDENTITY_CONTEXT_B=$IDENTITY_CONTEXT_B
  FORMATION_SECRET (shared by both clusters; unset: generated once into $FED_SECRET_FILE, mode 0600)
  SYNC_TIMEOUT=$SYNC_TIMEOUT PEER_TIMEOUT=$PEER_TIMEOUT (seconds) COLLECTION=$COLLECTION
  NETWORK_POLICY=$NETWORK_POLICY (1: every release with its NetworkPolicy; A admits B's server address)
  RELAY=$RELAY (1: federate through the chart's relay in $CLUSTER_A instead of a NodePort + gateway)
  RELAY_NODE_PORT=$RELAY_NODE_PORT (the relay's NodePort, RELAY=1)
  RELAY_ACCESS_KEY (RELAY=1; unset: \`peat-mesh-node relay-key\` of the formation secret, run in \$IMAGE)
  IDENTITY_CONTEXT_B applies without RELAY only: a pod reached through the relay is dialled by the
  device ID its node ID derives, so with RELAY=1 every identity context is the pod name
EOF
}

ok()   { printf 'OK    %s\n' "$*"; PASSED=$((PASSED + 1)); }
fail() { printf 'FAIL  %s\n' "$*"; FAILED=$((FAILED + 1)); }

# cluster_sh CLUSTER RELEASE REPLICAS COMMAND [ARGS...]: runs cluster.sh for one cluster/release.
cluster_sh() {
  local cluster="$1" release="$2" replicas="$3"
  shift 3
  CLUSTER="$cluster" RELEASE="$release" REPLICAS="$replicas" KUBE_CONTEXT="k3d-$cluster" \
    K3D_NETWORK="$FED_NETWORK" FORMATION_SECRET="${FORMATION_SECRET:-}" \
    "$K3D_DIR/cluster.sh" "$@"
}

# The IPv4 address of cluster CLUSTER's first server container on the federation network.
server_ip() {
  local ip
  ip="$(docker inspect --format "{{with index .NetworkSettings.Networks \"$FED_NETWORK\"}}{{.IPAddress}}{{end}}" \
    "k3d-$1-server-0" 2>/dev/null || true)"
  [[ -n $ip ]] || die "no address for k3d-$1-server-0 on network $FED_NETWORK (is the cluster up?)"
  printf '%s\n' "$ip"
}

# The shared formation secret: FORMATION_SECRET, else the saved one, else a new one (saved 0600).
federation_secret() {
  if [[ -n ${FORMATION_SECRET:-} ]]; then
    printf '%s\n' "$FORMATION_SECRET"
  elif [[ -s $FED_SECRET_FILE ]]; then
    printf '%s\n' "$(<"$FED_SECRET_FILE")"
  else
    require openssl
    mkdir -p "$(dirname "$FED_SECRET_FILE")"
    (umask 077 && openssl rand -base64 32 >"$FED_SECRET_FILE.tmp" && mv "$FED_SECRET_FILE.tmp" "$FED_SECRET_FILE")
    chmod 600 "$FED_SECRET_FILE"
    log "generated the federation's formation secret into $FED_SECRET_FILE (mode 0600)"
    printf '%s\n' "$(<"$FED_SECRET_FILE")"
  fi
}

cmd_up() {
  require k3d docker helm kubectl
  FORMATION_SECRET="$(federation_secret)"
  if docker network inspect "$FED_NETWORK" >/dev/null 2>&1; then
    log "docker network $FED_NETWORK exists"
  else
    run docker network create "$FED_NETWORK"
  fi
  cluster_sh "$CLUSTER_A" "$RELEASE_A" "$REPLICAS" create
  cluster_sh "$CLUSTER_B" "$RELEASE_B" "$REPLICAS" create
  if [[ ${SKIP_BUILD:-0} != 1 ]]; then
    cluster_sh "$CLUSTER_A" "$RELEASE_A" "$REPLICAS" build
  fi
  cluster_sh "$CLUSTER_A" "$RELEASE_A" "$REPLICAS" import
  cluster_sh "$CLUSTER_B" "$RELEASE_B" "$REPLICAS" import

  if [[ $RELAY == 1 ]]; then
    up_relay
    return
  fi
  local a_ip policy_a=() policy=()
  a_ip="$(server_ip "$CLUSTER_A")"
  if [[ $NETWORK_POLICY == 1 ]]; then
    policy=(--set networkPolicy.enabled=true)
    policy_a=("${policy[@]}" --set nodePort.externalTrafficPolicy=Local
      --set-string "networkPolicy.federationCIDRs[0]=$(server_ip "$CLUSTER_B")/32")
  fi
  cluster_sh "$CLUSTER_A" "$RELEASE_A" "$REPLICAS" install -- \
    --set nodePort.enabled=true --set "nodePort.syncNodePort=$SYNC_NODE_PORT" "${policy_a[@]}"
  cluster_sh "$CLUSTER_B" "$RELEASE_B" "$REPLICAS" install -- \
    --set nodePort.enabled=true --set "nodePort.syncNodePort=$SYNC_NODE_PORT" \
    --set-string "identityContext=$IDENTITY_CONTEXT_B" "${policy[@]}"

  log "cluster $CLUSTER_A sync NodePort: $a_ip:$SYNC_NODE_PORT"
  # The gateway finds cluster B's pods through Kubernetes discovery (same namespace, app=peat-mesh)
  # and cluster A through the static peer; it relays documents between the two.
  cluster_sh "$CLUSTER_B" "$GATEWAY_RELEASE" 1 install -- \
    --set-string "staticPeers=$a_ip:$SYNC_NODE_PORT" \
    --set-string "identityContext=$IDENTITY_CONTEXT_B" \
    --set podDisruptionBudget.enabled=false "${policy[@]}"
  log "federation up: run '$(basename "$0") test'"
}

# --- federation through the relay (RELAY=1) ---------------------------------------------------------

# The chart's relay Deployment and Service of RELEASE: <fullname, at most 57 characters>-relay.
relay_name() {
  local fullname
  fullname="$(statefulset_name "$1")"
  fullname="${fullname:0:57}"
  printf '%s-relay\n' "${fullname%-}"
}

# "<pod>@relay,..." for every pod of RELEASE's StatefulSet (REPLICAS of them).
relay_peers() {
  local sts i peers=()
  sts="$(statefulset_name "$1")"
  for ((i = 0; i < REPLICAS; i++)); do
    peers+=("$sts-$i@relay")
  done
  (IFS=,; printf '%s\n' "${peers[*]}")
}

# The relay access key of FORMATION_SECRET: RELAY_ACCESS_KEY, else what `peat-mesh-node relay-key`
# prints in $IMAGE. The secret reaches the container as docker's own environment (-e NAME without
# a value), so it is on no command line; the container has no network.
relay_access_key() {
  local key
  if [[ -n ${RELAY_ACCESS_KEY:-} ]]; then
    key="$RELAY_ACCESS_KEY"
  else
    require docker
    docker image inspect "$IMAGE" >/dev/null 2>&1 || die "image $IMAGE not found locally (build it, or set RELAY_ACCESS_KEY)"
    log "computing the relay access key: docker run --rm --network none -e PEAT_FORMATION_SECRET $IMAGE relay-key"
    key="$(PEAT_FORMATION_SECRET="$FORMATION_SECRET" docker run --rm --network none -e PEAT_FORMATION_SECRET \
      "$IMAGE" relay-key | tail -n 1)" || die "peat-mesh-node relay-key failed in $IMAGE"
  fi
  key="${key//[[:space:]]/}"
  [[ $key =~ ^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$ ]] ||
    die "the relay access key is not standard padded base64 of 32 bytes (what peat-mesh-node relay-key prints)"
  printf '%s\n' "$key"
}

# Removed when the script exits: the values files holding the relay access key.
RELAY_TMP=""
relay_tmp_cleanup() {
  if [[ -n $RELAY_TMP ]]; then rm -rf -- "$RELAY_TMP"; fi
}

up_relay() {
  local a_ip key policy=() relay
  a_ip="$(server_ip "$CLUSTER_A")"
  key="$(relay_access_key)"
  if [[ $NETWORK_POLICY == 1 ]]; then
    # The relay's own policy opens its port to everyone; the nodes receive no cross-cluster connection.
    policy=(--set networkPolicy.enabled=true)
  fi
  RELAY_TMP="$(mktemp -d "${TMPDIR:-/tmp}/peat-relay.XXXXXX")"
  chmod 700 "$RELAY_TMP"
  trap relay_tmp_cleanup EXIT
  # Values files, not --set: the key stays off command lines, and --set would split the peer lists at commas.
  (umask 077 && printf 'relay:\n  enabled: true\n  accessKey: "%s"\n  service:\n    type: NodePort\n    nodePort: %s\nstaticPeers: "%s"\n' \
    "$key" "$RELAY_NODE_PORT" "$(relay_peers "$RELEASE_B")" >"$RELAY_TMP/a.yaml")
  (umask 077 && printf 'relayUrls: "https://%s:%s"\nstaticPeers: "%s"\n' \
    "$a_ip" "$RELAY_NODE_PORT" "$(relay_peers "$RELEASE_A")" >"$RELAY_TMP/b.yaml")

  cluster_sh "$CLUSTER_A" "$RELEASE_A" "$REPLICAS" install -- --values "$RELAY_TMP/a.yaml" "${policy[@]}"
  relay="$(relay_name "$RELEASE_A")"
  run kubectl --context "k3d-$CLUSTER_A" --namespace "$NAMESPACE" rollout status "deployment/$relay" --timeout "$TIMEOUT"
  log "cluster $CLUSTER_A relay: https://$a_ip:$RELAY_NODE_PORT (in the cluster: https://$relay.$NAMESPACE.svc:3340)"
  cluster_sh "$CLUSTER_B" "$RELEASE_B" "$REPLICAS" install -- --values "$RELAY_TMP/b.yaml" "${policy[@]}"
  relay_tmp_cleanup
  if helm --kube-context "k3d-$CLUSTER_B" --namespace "$NAMESPACE" status "$GATEWAY_RELEASE" >/dev/null 2>&1; then
    warn "release $GATEWAY_RELEASE (the gateway of a run without RELAY=1) is still installed in $CLUSTER_B; it connects the clusters without the relay: helm --kube-context k3d-$CLUSTER_B --namespace $NAMESPACE uninstall $GATEWAY_RELEASE"
  fi
  log "federation through the relay up: run 'RELAY=1 $(basename "$0") test'"
}

cmd_down() {
  require k3d docker
  CLUSTER="$CLUSTER_A" "$K3D_DIR/cluster.sh" delete
  CLUSTER="$CLUSTER_B" "$K3D_DIR/cluster.sh" delete
  if docker network inspect "$FED_NETWORK" >/dev/null 2>&1; then
    run docker network rm "$FED_NETWORK"
  fi
  if [[ ${PURGE:-0} == 1 ]]; then
    rm -f "$FED_SECRET_FILE"
    log "removed $FED_SECRET_FILE"
  fi
}

# --- test -----------------------------------------------------------------------------------------

# Pods as "CONTEXT POD" lines.
PODS_A=()
PODS_B=()

list_pods() {
  local context="$1" release="$2" sts replicas i
  sts="$(statefulset_name "$release")"
  replicas="$(statefulset_replicas "$context" "$NAMESPACE" "$sts")" ||
    die "statefulset/$sts not found in $context (run: $(basename "$0") up)"
  require_uint "statefulset/$sts replicas" "$replicas"
  for ((i = 0; i < replicas; i++)); do
    printf '%s %s\n' "$context" "$sts-$i"
  done
}

# fetch "CONTEXT POD" METHOD PATH [BODY_FILE]: with the token of the pod's release.
fetch() {
  local context pod
  read -r context pod <<<"$1"
  pod_broker "$context" "$NAMESPACE" "$pod" "$BROKER_PORT" "$2" "$3" "${4:-}"
}

pod_of() { printf '%s\n' "${1#* }"; }

# wait_document "CONTEXT POD" ID FILE: true once the pod serves document COLLECTION/ID as in FILE.
wait_document() {
  local deadline=$((SECONDS + SYNC_TIMEOUT)) body want
  want="$(json_canonical <"$3")"
  while :; do
    if body="$(fetch "$1" GET "/api/v1/documents/$COLLECTION/$2" 2>/dev/null)" &&
      [[ $(json_canonical document <<<"$body") == "$want" ]]; then
      return 0
    fi
    ((SECONDS < deadline)) || return 1
    sleep 1
  done
}

# write_and_read FROM_POD ID LABEL TO_PODS...: PUT on FROM_POD, then read on every TO_POD.
write_and_read() {
  local from="$1" id="$2" label="$3" file target start
  shift 3
  file="$(mktemp "${TMPDIR:-/tmp}/peat-fed.XXXXXX")"
  printf '{"check":"federation","id":"%s","from":"%s","nonce":"%s","position":{"lat":48.1,"lon":11.6}}\n' \
    "$id" "$(pod_of "$from")" "$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')" >"$file"
  if fetch "$from" PUT "/api/v1/documents/$COLLECTION/$id" "$file" >/dev/null; then
    ok "$label: PUT $COLLECTION/$id on $(pod_of "$from")"
  else
    fail "$label: PUT $COLLECTION/$id on $(pod_of "$from") failed"
    rm -f "$file"
    return
  fi
  for target in "$@"; do
    start=$SECONDS
    if wait_document "$target" "$id" "$file"; then
      ok "$label: readable on ${target% *}/$(pod_of "$target") (within $((SECONDS - start + 1))s)"
    else
      fail "$label: not on ${target% *}/$(pod_of "$target") within ${SYNC_TIMEOUT}s"
    fi
  done
  fetch "$from" DELETE "/api/v1/documents/$COLLECTION/$id" >/dev/null 2>&1 || true
  rm -f "$file"
}

# wait_relayed "CONTEXT POD" PEER...: true once the pod lists every PEER as connected through the
# relay ("path": "relay" in /api/v1/peers); prints the peers still missing otherwise.
wait_relayed() {
  local target="$1" deadline=$((SECONDS + PEER_TIMEOUT)) body relayed peer missing
  shift
  while :; do
    missing=()
    relayed="$(fetch "$target" GET /api/v1/peers 2>/dev/null | json_relayed_peers 2>/dev/null || true)"
    for peer in "$@"; do
      grep -qxF -- "$peer" <<<"$relayed" || missing+=("$peer")
    done
    ((${#missing[@]} == 0)) && return 0
    if ((SECONDS >= deadline)); then
      printf '%s\n' "${missing[*]}"
      return 1
    fi
    sleep 2
  done
}

# test_relay: the relay in cluster A is ready, holds no formation secret, and every pod reaches
# every pod of the other cluster through it.
test_relay() {
  local ctx_a="k3d-$CLUSTER_A" relay relay_pod env_names health_port url status="" pod missing
  local names_a=() names_b=()
  relay="$(relay_name "$RELEASE_A")"
  relay_pod="$(kubectl --context "$ctx_a" --namespace "$NAMESPACE" get pods \
    --selector "app.kubernetes.io/instance=$RELEASE_A,app.kubernetes.io/component=relay" \
    --field-selector status.phase=Running --output 'jsonpath={.items[0].metadata.name}' 2>/dev/null || true)"
  if [[ -z $relay_pod ]]; then
    fail "relay: no running pod of deployment/$relay in $ctx_a (run: RELAY=1 $(basename "$0") up)"
  else
    env_names="$(kubectl --context "$ctx_a" --namespace "$NAMESPACE" get pod "$relay_pod" \
      --output 'jsonpath={.spec.containers[*].env[*].name} {.spec.volumes[*].secret.secretName}')"
    if grep -qE 'PEAT_FORMATION_SECRET|PEAT_BROKER_TOKEN' <<<"$env_names"; then
      fail "relay: pod $relay_pod holds the formation secret or a broker token ($env_names)"
    else
      ok "relay: pod $relay_pod holds neither the formation secret nor a broker token"
    fi
    health_port="$(kubectl --context "$ctx_a" --namespace "$NAMESPACE" get pod "$relay_pod" \
      --output 'jsonpath={.spec.containers[0].ports[?(@.name=="http")].containerPort}')"
    if url="$(broker_url "$ctx_a" "$NAMESPACE" "$relay_pod" "${health_port:-8081}")" &&
      status="$(broker_status "$url" "" GET /api/v1/ready)" && [[ $status == 200* ]]; then
      ok "relay: $relay_pod /api/v1/ready 200 on its health port without a token"
    else
      fail "relay: $relay_pod /api/v1/ready on its health port: ${status:-no answer}"
    fi
  fi

  for pod in "${PODS_A[@]}"; do names_a+=("$(pod_of "$pod")"); done
  for pod in "${PODS_B[@]}"; do names_b+=("$(pod_of "$pod")"); done
  for pod in "${PODS_A[@]}"; do
    if missing="$(wait_relayed "$pod" "${names_b[@]}")"; then
      ok "relay: $(pod_of "$pod") ($CLUSTER_A) has every $CLUSTER_B pod connected with path relay"
    else
      fail "relay: $(pod_of "$pod") ($CLUSTER_A) lacks relayed peer(s) $missing after ${PEER_TIMEOUT}s"
    fi
  done
  for pod in "${PODS_B[@]}"; do
    if missing="$(wait_relayed "$pod" "${names_a[@]}")"; then
      ok "relay: $(pod_of "$pod") ($CLUSTER_B) has every $CLUSTER_A pod connected with path relay"
    else
      fail "relay: $(pod_of "$pod") ($CLUSTER_B) lacks relayed peer(s) $missing after ${PEER_TIMEOUT}s"
    fi
  done
}

cmd_test() {
  require kubectl curl
  require_json_tool
  broker_begin
  trap broker_end EXIT
  local ctx_a="k3d-$CLUSTER_A" ctx_b="k3d-$CLUSTER_B" gateway pod device id extra=()
  mapfile -t PODS_A < <(list_pods "$ctx_a" "$RELEASE_A")
  mapfile -t PODS_B < <(list_pods "$ctx_b" "$RELEASE_B")
  ((${#PODS_A[@]} > 0 && ${#PODS_B[@]} > 0)) || die "no pods in one of the clusters"
  if [[ $RELAY == 1 ]]; then
    log "cluster A: ${#PODS_A[@]} pods + relay; cluster B: ${#PODS_B[@]} pods"
    test_relay
  else
    gateway="$ctx_b $(pod_name 0 "$GATEWAY_RELEASE")"
    extra=("$gateway")
    log "cluster A: ${#PODS_A[@]} pods; cluster B: ${#PODS_B[@]} pods + gateway $(pod_of "$gateway")"
    test_gateway "$gateway"
  fi

  # Identities differ across the clusters.
  local -A seen=()
  local distinct=1
  for pod in "${PODS_A[@]}" "${PODS_B[@]}" "${extra[@]}"; do
    device="$(fetch "$pod" GET /api/v1/node 2>/dev/null | json_field device_id || true)"
    if [[ -z $device ]]; then
      fail "identity: no device_id from $pod"
      distinct=0
    elif [[ -n ${seen[$device]:-} ]]; then
      fail "identity: $pod has the device_id of ${seen[$device]} ($device)"
      distinct=0
    else
      seen[$device]="$pod"
    fi
  done
  if ((distinct == 1)); then
    ok "identity: ${#seen[@]} pods, ${#seen[@]} distinct device IDs"
  fi

  id="fed-a-$(date -u +%Y%m%d%H%M%S)-$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')"
  write_and_read "${PODS_A[0]}" "$id" "A->B" "${PODS_B[@]}" "${extra[@]}"
  id="fed-b-$(date -u +%Y%m%d%H%M%S)-$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')"
  write_and_read "${PODS_B[0]}" "$id" "B->A" "${PODS_A[@]}"

  printf '\n%d passed, %d failed\n' "$PASSED" "$FAILED"
  ((FAILED == 0))
}

# test_gateway "CONTEXT POD": the gateway reaches cluster A (through the NodePort: whichever A pod
# the Service picked).
test_gateway() {
  local gateway="$1" sts_a deadline connected="" body
  sts_a="$(statefulset_name "$RELEASE_A")"
  deadline=$((SECONDS + PEER_TIMEOUT))
  while :; do
    body="$(fetch "$gateway" GET /api/v1/peers 2>/dev/null)" &&
      connected="$(json_connected_peers <<<"$body" | grep -E "^$sts_a-[0-9]+$" || true)"
    [[ -n $connected ]] && break
    ((SECONDS < deadline)) || break
    sleep 2
  done
  if [[ -n $connected ]]; then
    ok "gateway $(pod_of "$gateway") connected to cluster A: $(tr '\n' ' ' <<<"$connected")"
  else
    fail "gateway $(pod_of "$gateway") not connected to any $sts_a pod within ${PEER_TIMEOUT}s"
  fi
}

validate_federation() {
  require_dns_label CLUSTER_A "$CLUSTER_A"
  require_dns_label CLUSTER_B "$CLUSTER_B"
  [[ $CLUSTER_A != "$CLUSTER_B" ]] || die "CLUSTER_A and CLUSTER_B must differ"
  require_dns_label RELEASE_A "$RELEASE_A"
  require_dns_label RELEASE_B "$RELEASE_B"
  require_dns_label GATEWAY_RELEASE "$GATEWAY_RELEASE"
  [[ $(statefulset_name "$GATEWAY_RELEASE") != "$(statefulset_name "$RELEASE_B")" ]] ||
    die "GATEWAY_RELEASE and RELEASE_B must name different StatefulSets"
  require_dns_label NAMESPACE "$NAMESPACE"
  require_uint REPLICAS "$REPLICAS"
  require_uint SYNC_NODE_PORT "$SYNC_NODE_PORT"
  [[ $NETWORK_POLICY == 0 || $NETWORK_POLICY == 1 ]] || die "NETWORK_POLICY must be 0 or 1, got '$NETWORK_POLICY'"
  ((SYNC_NODE_PORT >= 30000 && SYNC_NODE_PORT <= 32767)) || die "SYNC_NODE_PORT must be in 30000-32767"
  [[ $RELAY == 0 || $RELAY == 1 ]] || die "RELAY must be 0 or 1, got '$RELAY'"
  if [[ $RELAY == 1 ]]; then
    require_uint RELAY_NODE_PORT "$RELAY_NODE_PORT"
    ((RELAY_NODE_PORT >= 30000 && RELAY_NODE_PORT <= 32767)) || die "RELAY_NODE_PORT must be in 30000-32767"
    [[ $(statefulset_name "$RELEASE_A") != "$(statefulset_name "$RELEASE_B")" ]] ||
      die "RELAY=1: RELEASE_A and RELEASE_B must name different StatefulSets (pod names are the node IDs the relay's peers are derived from)"
    [[ -z $IDENTITY_CONTEXT_B_GIVEN ]] ||
      die "RELAY=1 does not use IDENTITY_CONTEXT_B: a peer reached only through the relay is dialled by the device ID its node ID (pod name) derives, so its identity context must be its pod name; unset IDENTITY_CONTEXT_B"
  fi
}

main() {
  case ${1:-} in
    -h | --help | help) usage ;;
    up) validate_federation; cmd_up ;;
    test) validate_federation; cmd_test ;;
    down) cmd_down ;;
    "") usage >&2; exit 2 ;;
    *) usage >&2; die "unknown command: $1" ;;
  esac
}

main "$@"
