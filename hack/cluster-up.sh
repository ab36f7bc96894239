#!/usr/bin/env bash
# Starts the local Kubernetes control plane `aisre` with kwokctl (binary runtime: real etcd,
# kube-apiserver, kube-controller-manager, kube-scheduler; kwok simulates the kubelets of
# two nodes). Only locally built binaries are used (hack/tools.sh); kwokctl downloads nothing.
#
# Idempotent: if the cluster is already up and healthy it only prints where it is. A broken
# or half-started cluster is deleted (hack/cluster-down.sh) and created again.
#
# State lives in <cluster dir> = ${AISRE_CLUSTER_DIR:-<repo>/.cluster}:
#   kubeconfig        admin (system:masters) kubeconfig, certificates embedded
#   kubeconfig-user   user aisre-dev, group aisre-devs, no RBAC bindings (gets Forbidden)
#   kwok/             KWOK_WORKDIR; component logs in kwok/clusters/aisre/logs/
#   realnode/         the real node aisre-real-0 (hack/realnode/up.sh): containerd, kubelet,
#                     kube-proxy, their state and logs/
#   realnode-status   `ready`, or `unavailable: <why>` when the real node could not start
# Nothing outside it is written: ~/.kube/config and ~/.kwok are never touched (the real node's
# few machine-wide objects -- a bridge, iptables chains, a cgroup subtree -- are listed in
# hack/realnode/lib.sh and removed by cluster-down).
#
# The real node: AISRE_REAL_NODE=auto (default) starts it when the machine allows and otherwise
# says why and goes on with the KWOK nodes alone; =1 fails when it cannot start; =0 skips it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NAME=aisre
CLUSTER_DIR="${AISRE_CLUSTER_DIR:-$ROOT/.cluster}"
# absolute and symlink-free: kwokctl records paths, cluster-down.sh compares them with /proc
CLUSTER_DIR="$(realpath -m "$CLUSTER_DIR")"
mkdir -p "$CLUSTER_DIR"
export KWOK_WORKDIR="$CLUSTER_DIR/kwok"
STATE="$KWOK_WORKDIR/clusters/$NAME"
ADMIN_KC="$CLUSTER_DIR/kubeconfig"
USER_KC="$CLUSTER_DIR/kubeconfig-user"
BIN="$ROOT/.tools/bin"
# Our binaries first: kwokctl runs `kubectl` from PATH, and a system kubectl must not be used.
export PATH="$BIN:$PATH"
export KWOK_KUBECTL_BINARY="$BIN/kubectl"
# Our own kubectl calls must never fall back to ~/.kube/config.
export KUBECONFIG="$ADMIN_KC"
# kubectl's discovery cache would otherwise go to ~/.kube/cache (and go stale across clusters
# that reuse a port); keep it with the cluster.
export KUBECACHEDIR="$CLUSTER_DIR/kube-cache"
NODES=(kwok-node-0 kwok-node-1)
COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok-controller)
CRDS=(Stage Logs ClusterLogs ResourceUsage ClusterResourceUsage Metric)  # = hack/kwok/kwokctl.yaml

REAL_NODE="${AISRE_REAL_NODE:-auto}"
REAL_NODE_STATUS="$CLUSTER_DIR/realnode-status"

SECONDS=0  # coarse clock for the retry timeouts
START_NS="$(date +%s%N)"
log() { printf '[cluster-up] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; log "component logs: $STATE/logs/"; exit 1; }
kc() { kubectl --kubeconfig "$ADMIN_KC" --request-timeout=10s "$@"; }

source "$ROOT/hack/retry.sh"  # retry SECONDS DESCRIPTION CMD...

# Every component's recorded process exists and is not a zombie (kwokctl detaches them, so an
# exited one lingers as a zombie until PID 1 reaps it, and `kill -0` still succeeds on it).
components_alive() {
  local c pid state
  for c in "${COMPONENTS[@]}"; do
    pid="$(cat "$STATE/pids/$c.pid" 2>/dev/null)" || return 1
    state="$(sed -E 's/.*\) ([A-Za-z]).*/\1/' "/proc/$pid/stat" 2>/dev/null)" || return 1
    [[ -n "$pid" && "$state" != Z ]] || return 1
  done
}

nodes_ready() {
  local n s
  for n in "${NODES[@]}"; do
    s="$(kc get node "$n" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" || return 1
    [[ "$s" == True ]] || return 1
  done
}

nodes_exist() {
  kc get node "${NODES[@]}" >/dev/null 2>&1
}

# A running cluster is healthy when its processes and API server are; a node that a test or
# a bench scenario holds NotReady on purpose is not a reason to recreate the cluster.
healthy() {
  [[ -f "$STATE/kwok.yaml" && -s "$ADMIN_KC" && -s "$USER_KC" ]] || return 1
  components_alive || return 1
  [[ "$(kc get --raw /readyz 2>/dev/null)" == ok ]] || return 1
  nodes_exist
}

where() {
  local server
  server="$(kubectl --kubeconfig "$ADMIN_KC" config view -o jsonpath='{.clusters[0].cluster.server}')"
  cat <<EOF
cluster $NAME: $server
  export KUBECONFIG=$ADMIN_KC       # admin
  export KUBECONFIG=$USER_KC  # aisre-dev (group aisre-devs, no RBAC)
  KWOK_WORKDIR=$KWOK_WORKDIR   (component logs: $STATE/logs/)
EOF
}

# Every TCP listener of the given processes (default: the control plane's) must be on a
# loopback address.
check_loopback() {
  local pids=("$@") c
  if ((${#pids[@]} == 0)); then
    for c in "${COMPONENTS[@]}"; do pids+=("$(cat "$STATE/pids/$c.pid")"); done
  fi
  python3 - "${pids[@]}" <<'PY'
import ipaddress, os, struct, sys
inodes = {}
for pid in sys.argv[1:]:
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            t = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if t.startswith("socket:["):
            inodes[t[8:-1]] = pid
def addr(hexaddr):
    ip, port = hexaddr.split(":")
    raw = bytes.fromhex(ip)
    if len(raw) == 4:
        a = ipaddress.IPv4Address(struct.pack("<I", struct.unpack(">I", raw)[0]))
    else:  # /proc shows IPv6 as four host-order 32-bit words
        a = ipaddress.IPv6Address(b"".join(struct.pack("<I", struct.unpack(">I", raw[i:i+4])[0]) for i in range(0, 16, 4)))
        a = a.ipv4_mapped or a
    return a, int(port, 16)
bad, seen = [], 0
for table in ("/proc/net/tcp", "/proc/net/tcp6"):
    with open(table) as f:
        next(f)
        for line in f:
            cols = line.split()
            if cols[3] != "0A" or cols[9] not in inodes:  # 0A = LISTEN
                continue
            a, port = addr(cols[1])
            seen += 1
            if not a.is_loopback:
                bad.append(f"pid {inodes[cols[9]]} listens on {a}:{port}")
if bad or not seen:
    print("\n".join(bad) or "no listening sockets found", file=sys.stderr)
    sys.exit(1)
print(f"{seen} listening sockets, all on loopback")
PY
}

# The real node beside the KWOK nodes (hack/realnode/), as AISRE_REAL_NODE asks; its outcome
# goes to $REAL_NODE_STATUS, where the tests read why it is missing.
real_node() {
  case "$REAL_NODE" in
    0|off|false) echo "unavailable: AISRE_REAL_NODE=$REAL_NODE" >"$REAL_NODE_STATUS"; return 0 ;;
    1|on|true|auto) ;;
    *) die "AISRE_REAL_NODE must be auto, 1 or 0 (got $REAL_NODE)" ;;
  esac
  local out="$CLUSTER_DIR/realnode-up.log"
  if bash "$ROOT/hack/realnode/up.sh" 2>&1 | tee "$out" >&2; then
    if check_loopback $(cat "$CLUSTER_DIR"/realnode/pids/*.pid) >&2; then
      echo ready >"$REAL_NODE_STATUS"
      return 0
    fi
    echo "ERROR: a process of the real node listens on a non-loopback address" >>"$out"
  fi
  local why
  why="$(grep -E 'ERROR:|cannot run' "$out" | tail -n1 | sed -E 's/^\[[a-z-]+\] (ERROR: )?//')"
  echo "unavailable: ${why:-see $out}" >"$REAL_NODE_STATUS"
  bash "$ROOT/hack/realnode/down.sh" || true
  [[ "$REAL_NODE" == auto ]] || die "the real node did not start: ${why:-see $out}"
  log "WARNING: no real node (${why:-see $out}); going on with the KWOK nodes alone"
}

# --- 0. binaries (cheap when cached) --------------------------------------------------------
tools_log="$(mktemp)"
if ! bash "$ROOT/hack/tools.sh" etcd kwok kwokctl kube-apiserver kube-controller-manager \
    kube-scheduler kubectl >"$tools_log" 2>&1; then
  cat "$tools_log" >&2; rm -f "$tools_log"; die "hack/tools.sh failed"
fi
rm -f "$tools_log"
[[ "$(command -v kubectl)" == "$BIN/kubectl" ]] || die "kubectl resolves to $(command -v kubectl), not $BIN/kubectl"

# --- 1. already up? -------------------------------------------------------------------------
if healthy; then
  log "already up and healthy"
  real_node
  where
  exit 0
fi
if [[ -e "$KWOK_WORKDIR" || -e "$ADMIN_KC" ]]; then
  log "found stale or unhealthy state in $CLUSTER_DIR; recreating the cluster"
  bash "$ROOT/hack/cluster-down.sh"
  mkdir -p "$CLUSTER_DIR"
fi

# --- 2. create ------------------------------------------------------------------------------
# Binaries are given as local paths: kwokctl would download anything given as an http(s) URL
# (its defaults are URLs). --kubeconfig "" keeps ~/.kube/config untouched. The API server
# presents the admin certificate to kubelets (the real node's kubelet authenticates its
# clients; kwok's ignores it) and reaches them by address first (the real node's name is in no
# DNS: a lookup would go to the machine's resolver; kwok's nodes have only Hostname=localhost).
# Everything else (loopback bind address, RBAC, CRDs) is in
# hack/kwok/kwokctl.yaml.
log "creating cluster $NAME in $KWOK_WORKDIR"
create_log="$CLUSTER_DIR/kwokctl-create.log"
if ! kwokctl --name "$NAME" --config "$ROOT/hack/kwok/kwokctl.yaml" create cluster \
    --runtime binary \
    --kubeconfig "" \
    --kube-authorization=true \
    --etcd-binary "$BIN/etcd" \
    --kube-apiserver-binary "$BIN/kube-apiserver" \
    --kube-controller-manager-binary "$BIN/kube-controller-manager" \
    --kube-scheduler-binary "$BIN/kube-scheduler" \
    --kwok-controller-binary "$BIN/kwok" \
    --extra-args "kube-apiserver=kubelet-client-certificate=$STATE/pki/admin.crt" \
    --extra-args "kube-apiserver=kubelet-client-key=$STATE/pki/admin.key" \
    --extra-args "kube-apiserver=kubelet-preferred-address-types=InternalIP,Hostname" \
    >"$create_log" 2>&1; then
  tail -n 20 "$create_log" >&2
  die "kwokctl create cluster failed (full output: $create_log)"
fi

# Kubeconfigs with the certificates embedded, readable only by us (they hold private keys).
(umask 077
 kwokctl --name "$NAME" get kubeconfig >"$ADMIN_KC.tmp" && mv "$ADMIN_KC.tmp" "$ADMIN_KC"
 # A client certificate for aisre-dev signed by the cluster CA; RBAC grants it nothing.
 kwokctl --name "$NAME" get kubeconfig --user aisre-dev --group aisre-devs >"$USER_KC.tmp" \
   && mv "$USER_KC.tmp" "$USER_KC")

retry 60 "the API server (/readyz)" bash -c '[[ "$(kubectl --kubeconfig "$0" --request-timeout=5s get --raw /readyz)" == ok ]]' "$ADMIN_KC"
components_alive || die "a component exited; see $STATE/logs/"

# --- 3. kwok stages and nodes ---------------------------------------------------------------
# kwokctl installed the CRDs; with the Stage CRD on it installs no stages, so apply the
# default ones (node Ready + heartbeat, pod Running/Complete/Delete) ourselves.
crd_names=()
for k in "${CRDS[@]}"; do
  case "$k" in
    Logs) crd_names+=(crd/logs.kwok.x-k8s.io) ;;
    ClusterLogs) crd_names+=(crd/clusterlogs.kwok.x-k8s.io) ;;
    *) crd_names+=("crd/$(tr 'A-Z' 'a-z' <<<"$k")s.kwok.x-k8s.io") ;;
  esac
done
retry 30 "kwok CRDs" kc get "${crd_names[@]}"
kc wait --for=condition=Established --timeout=30s "${crd_names[@]}" >/dev/null
kc apply -f "$ROOT/hack/kwok/stages-default.yaml" >/dev/null
kc apply -f "$ROOT/hack/kwok/nodes.yaml" >/dev/null

# --- 4. wait until usable -------------------------------------------------------------------
retry 60 "nodes ${NODES[*]} Ready" nodes_ready
# Pods cannot be created in a namespace before its `default` ServiceAccount exists.
retry 60 "ServiceAccount default/default" kc -n default get serviceaccount default
# The scheduler and controller-manager hold their leader leases once they are working.
retry 60 "kube-scheduler and kube-controller-manager leader leases" \
  kc -n kube-system get lease kube-scheduler kube-controller-manager

# --- 5. prove it: a Deployment gets a ReplicaSet (controller-manager), its pods get bound to
# kwok nodes (scheduler) and become Running/Ready (kwok stages). Throwaway namespace.
probe_ns=aisre-cluster-check
kc delete namespace "$probe_ns" --ignore-not-found --wait=true >/dev/null
kc create namespace "$probe_ns" >/dev/null
retry 30 "ServiceAccount $probe_ns/default" kc -n "$probe_ns" get serviceaccount default
kc -n "$probe_ns" create deployment probe --image=registry.k8s.io/pause:3.10 --replicas=2 >/dev/null
kc -n "$probe_ns" rollout status deployment/probe --timeout=60s >/dev/null \
  || die "probe Deployment did not become available: $(kc -n "$probe_ns" get rs,pods -o wide 2>&1)"
probe_pods="$(kc -n "$probe_ns" get pods -l app=probe \
  -o jsonpath='{range .items[*]}{.spec.nodeName}/{.status.phase}{"\n"}{end}')"
while read -r line; do
  [[ "$line" =~ ^kwok-node-[0-9]+/Running$ ]] || die "probe pod not Running on a kwok node: $line"
done <<<"$probe_pods"
kc delete namespace "$probe_ns" --wait=false >/dev/null

# --- 6. security properties -----------------------------------------------------------------
[[ "$(kubectl --kubeconfig "$USER_KC" auth whoami -o jsonpath='{.status.userInfo.username}')" == aisre-dev ]] \
  || die "kubeconfig-user does not authenticate as aisre-dev"
if out="$(kubectl --kubeconfig "$USER_KC" --request-timeout=10s -n default get pods 2>&1)"; then
  die "aisre-dev can list pods; RBAC is not enforced"
fi
[[ "$out" == *Forbidden* || "$out" == *forbidden* ]] || die "aisre-dev: expected Forbidden, got: $out"
grep -q -- '--authorization-mode=Node,RBAC' "$STATE/kwok.yaml" || die "RBAC authorization not configured"
check_loopback >&2 || die "a component listens on a non-loopback address"

# --- 7. the real node -----------------------------------------------------------------------
real_node

where
log "cluster up in $(awk -v ns="$(($(date +%s%N) - START_NS))" 'BEGIN { printf "%.1f", ns / 1e9 }') s"
