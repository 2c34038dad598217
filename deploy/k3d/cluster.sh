#!/usr/bin/env bash
# A single k3d cluster running the peat-mesh chart: create it, build and import the image,
# install/upgrade/uninstall the release, delete it, show its state.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

: "${AGENTS:=0}"
: "${K3D_NETWORK:=}"
: "${K3S_IMAGE:=}"
: "${SWIFT_IMAGE:=}"

usage() {
  cat <<EOF
Usage: $(basename "$0") COMMAND [-- EXTRA_HELM_ARGS...]

Commands:
  create     create the k3d cluster (1 server, \$AGENTS agents; joins \$K3D_NETWORK when set)
  build      docker build \$IMAGE from deploy/Dockerfile (context: the repository root)
  import     k3d image import \$IMAGE into the cluster (pods use image.pullPolicy=Never)
  install    helm upgrade --install the chart, then wait for the StatefulSet rollout
  upgrade    like install, for an existing release (reuses its formation secret)
  uninstall  helm uninstall the release (PURGE=1 also deletes its PVCs and the saved secret)
  delete     delete the k3d cluster
  status     show the cluster, the release and its pods
  token      print the release's broker token (the key broker-token of the Secret its pods mount),
             e.g. curl -H "Authorization: Bearer \$($(basename "$0") token)" ...
  rotate-token  write a new random token into that Secret; the pods' mounted file follows within
             about a minute (kubelet sync) and the node re-reads it, no restart; helm upgrade keeps it
  up         create + build + import + install (SKIP_BUILD=1 skips build)

Arguments after "--" go to helm (install/upgrade), e.g.
  $(basename "$0") install -- --set logLevel=debug --set persistence.enabled=false

Environment (current value):
  CLUSTER=$CLUSTER  RELEASE=$RELEASE  NAMESPACE=$NAMESPACE
  IMAGE=$IMAGE  REPLICAS=$REPLICAS  CHART=$CHART
  FORMATION_SECRET  (unset: generated with 'openssl rand -base64 32' once, kept in
                     $(secret_file), mode 0600)
  EXISTING_SECRET   name of an existing Kubernetes Secret to use instead
  BROKER_TOKEN_SECRET  an existing Secret with key broker-token (unset: the chart's own, generated
                     at install and kept on upgrades)
  AGENTS=$AGENTS  K3D_NETWORK=${K3D_NETWORK:-<k3d default>}  K3S_IMAGE=${K3S_IMAGE:-<k3d default>}
  SWIFT_IMAGE=${SWIFT_IMAGE:-<Dockerfile default>}  TIMEOUT=$TIMEOUT  KUBE_CONTEXT=$(kube_context)
EOF
}

cmd_create() {
  require k3d docker
  if cluster_exists; then
    log "cluster $CLUSTER exists"
    return
  fi
  local args=(cluster create "$CLUSTER" --servers 1 --agents "$AGENTS" --wait --timeout 180s
    --k3s-arg "--disable=traefik@server:*")
  if [[ -n $K3D_NETWORK ]]; then args+=(--network "$K3D_NETWORK"); fi
  if [[ -n $K3S_IMAGE ]]; then args+=(--image "$K3S_IMAGE"); fi
  run k3d "${args[@]}"
  run kubectl --context "$(kube_context)" wait --for=condition=Ready nodes --all --timeout "$TIMEOUT"
}

cmd_build() {
  require docker
  local revision args=()
  revision="$(git -C "$REPO_ROOT" rev-parse HEAD 2>/dev/null || echo unknown)"
  if [[ -n $SWIFT_IMAGE ]]; then args+=(--build-arg "SWIFT_IMAGE=$SWIFT_IMAGE"); fi
  run docker build \
    --file "$REPO_ROOT/deploy/Dockerfile" \
    --tag "$IMAGE" \
    --build-arg "REVISION=$revision" \
    --build-arg "CREATED=$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
    "${args[@]}" \
    "$REPO_ROOT"
}

cmd_import() {
  require k3d docker
  cluster_exists || die "cluster $CLUSTER does not exist (run: $(basename "$0") create)"
  docker image inspect "$IMAGE" >/dev/null 2>&1 || die "image $IMAGE not found locally (run: $(basename "$0") build)"
  run k3d image import "$IMAGE" --cluster "$CLUSTER"
}

cmd_install() {
  require helm kubectl
  helm_install_release "$@"
  cmd_status
}

cmd_upgrade() {
  require helm kubectl
  release_exists || die "release $RELEASE not found in namespace $NAMESPACE of $(kube_context) (run: $(basename "$0") install)"
  helm_install_release "$@"
  cmd_status
}

cmd_uninstall() {
  require helm kubectl
  local sts pvc
  if release_exists; then
    run hc uninstall "$RELEASE" --wait --timeout "$TIMEOUT"
  else
    log "release $RELEASE not installed"
  fi
  if [[ ${PURGE:-0} == 1 ]]; then
    # StatefulSet PVCs outlive the release: data-<statefulset>-<ordinal> (the chart's claim template).
    sts="$(statefulset_name)"
    while read -r pvc; do
      if [[ -n $pvc ]]; then run kc delete "$pvc" --wait=false; fi
    done < <(kc get pvc --output name | grep -E -- "^persistentvolumeclaim/data-$sts-[0-9]+$" || true)
    rm -f "$(secret_file)"
    log "removed $(secret_file)"
  fi
}

cmd_delete() {
  require k3d
  if cluster_exists; then
    run k3d cluster delete "$CLUSTER"
  else
    log "cluster $CLUSTER does not exist"
  fi
}

cmd_status() {
  require kubectl
  local sts
  sts="$(statefulset_name)"
  if command -v k3d >/dev/null 2>&1; then
    k3d cluster list "$CLUSTER" || true
  fi
  if command -v helm >/dev/null 2>&1; then
    hc status "$RELEASE" 2>/dev/null | sed -n '1,6p' || true
  fi
  kc get statefulset "$sts" --output wide || true
  kc get pods --output wide | awk -v re="^$sts-[0-9]+$" 'NR == 1 || $1 ~ re' || true
  kc get service,pvc --output wide 2>/dev/null | grep -E -- "NAME|$sts" || true
  local secret
  secret="$(broker_token_secret "$(kube_context)" "$NAMESPACE" "$sts" 2>/dev/null || true)"
  if [[ -n $secret ]]; then
    log "broker token: Secret $secret, key broker-token ($(basename "$0") token prints it)"
  fi
}

cmd_token() {
  require kubectl
  broker_token "$(kube_context)" "$NAMESPACE" "$(statefulset_name)" || die "cannot read the broker token"
  [[ -t 1 ]] && echo
  return 0
}

cmd_rotate_token() {
  require kubectl openssl
  local sts secret patch status=0
  sts="$(statefulset_name)"
  secret="$(broker_token_secret "$(kube_context)" "$NAMESPACE" "$sts")" || die "statefulset/$sts not found"
  [[ -n $secret ]] || die "statefulset/$sts mounts no broker-token Secret"
  # The new token goes through a 0600 file, never the command line.
  patch="$(mktemp "${TMPDIR:-/tmp}/peat-token.XXXXXX")"
  chmod 600 "$patch"
  printf '{"stringData":{"broker-token":"%s"}}\n' "$(openssl rand -hex 20)" >"$patch"
  run kc patch secret "$secret" --type merge --patch-file "$patch" || status=$?
  rm -f "$patch"
  ((status == 0)) || die "kubectl patch secret $secret failed (exit $status)"
  log "Secret $secret has a new broker token; the pods follow within about a minute, without restarting"
}

main() {
  local command="${1:-}"
  [[ -n $command ]] || { usage >&2; exit 2; }
  shift
  [[ ${1:-} == -- ]] && shift
  case $command in
    -h | --help | help) usage; return ;;
  esac
  validate_common
  case $command in
    create) cmd_create ;;
    build) cmd_build ;;
    import) cmd_import ;;
    install) cmd_install "$@" ;;
    upgrade) cmd_upgrade "$@" ;;
    uninstall) cmd_uninstall ;;
    delete) cmd_delete ;;
    status) cmd_status ;;
    token) cmd_token ;;
    rotate-token) cmd_rotate_token ;;
    up)
      cmd_create
      [[ ${SKIP_BUILD:-0} == 1 ]] || cmd_build
      cmd_import
      cmd_install "$@"
      ;;
    *) usage >&2; die "unknown command: $command" ;;
  esac
}

main "$@"
