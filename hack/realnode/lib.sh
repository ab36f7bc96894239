# Shared by hack/realnode/up.sh and down.sh (sourced, not run): where the real node keeps
# its state, its fixed names and addresses, and small helpers.
#
# <cluster dir>/realnode/ (NODE_DIR) holds everything of the node: containerd's root and state,
# the kubelet's root, pod logs, CNI state, configs, kubeconfigs, logs/ and pids/. Outside it
# the node owns: the bridge $BRIDGE, the iptables chains AISRE-REALNODE-* (and kube-proxy's
# KUBE-*), the cgroup subtree /$NODE_NAME of every hierarchy, and $OWNER_FILE.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CLUSTER_DIR="$(realpath -m "${AISRE_CLUSTER_DIR:-$ROOT/.cluster}")"
export KWOK_WORKDIR="$CLUSTER_DIR/kwok"
STATE="$KWOK_WORKDIR/clusters/aisre"
NODE_DIR="$CLUSTER_DIR/realnode"
BIN="$ROOT/.tools/bin"
export PATH="$BIN:$PATH"
export KUBECONFIG="$CLUSTER_DIR/kubeconfig"
export KUBECACHEDIR="$CLUSTER_DIR/kube-cache"

NODE_NAME=aisre-real-0
BRIDGE=aisre0
POD_CIDR=10.244.0.0/24
NODE_IP=10.244.0.1          # the bridge's address: a node address that is not loopback
KUBELET_PORT=10250
KUBELET_HEALTHZ_PORT=10248
PROXY_HEALTHZ_PORT=10256
PROXY_METRICS_PORT=10249
DNS_PORT=10053              # CoreDNS on loopback; pods reach it at the cluster DNS address
REGISTRY_PORT=5100          # registry.local
PRIVATE_REGISTRY_PORT=5101  # private.registry.local (htpasswd: user aisre, hack/realnode/registry.htpasswd)
REGISTRY_USER=aisre
REGISTRY_PASSWORD=aisre-pull-secret
SOCK="$NODE_DIR/containerd/containerd.sock"
# One real node per machine (one kubelet owns the cgroup subtree, the bridge and the ports):
# the checkout that started it is recorded here.
OWNER_FILE=/run/aisre-realnode.owner
# The node's processes, in the order they are stopped.
PROCESSES=(coredns kube-proxy kubelet containerd ns-holder registry private-registry)

log() { printf '[realnode] %s\n' "$*" >&2; }

kc() { kubectl --kubeconfig "$KUBECONFIG" --request-timeout=10s "$@"; }

# alive NAME: the recorded process runs (and is not a zombie)
alive() {
  local pid state
  pid="$(cat "$NODE_DIR/pids/$1.pid" 2>/dev/null)" || return 1
  state="$(sed -E 's/.*\) ([A-Za-z]).*/\1/' "/proc/$pid/stat" 2>/dev/null)" || return 1
  [[ -n "$pid" && "$state" != Z ]]
}

# other_owner: prints the node directory of another checkout whose real node runs on this
# machine (its kubelet or containerd alive); fails when there is none. The machine-wide
# objects (cgroup subtree, bridge, iptables chains) are then that node's, not ours to touch.
other_owner() {
  local other p
  other="$(cat "$OWNER_FILE" 2>/dev/null)" || return 1
  [[ -n "$other" && "$other" != "$NODE_DIR" ]] || return 1
  for p in kubelet containerd ns-holder; do
    if pgrep -F "$other/pids/$p.pid" >/dev/null 2>&1; then echo "$other"; return 0; fi
  done
  return 1
}

# cgroup_dirs: the node's cgroup subtree in every mounted hierarchy
cgroup_dirs() {
  local fs dir
  while read -r _ dir fs _; do
    [[ "$fs" == cgroup || "$fs" == cgroup2 ]] || continue
    [[ -d "$dir/$NODE_NAME" ]] && echo "$dir/$NODE_NAME"
  done </proc/self/mounts
  return 0
}

# start NAME CMD...: detached, logging to logs/NAME.log (appended), pid in pids/NAME.pid
start() {
  local name=$1; shift
  setsid "$@" >>"$NODE_DIR/logs/$name.log" 2>&1 </dev/null &
  echo $! >"$NODE_DIR/pids/$name.pid"
}

# in_node: the command prefix that runs a command in the node's mount namespace
in_node() {
  echo nsenter --mount="/proc/$(cat "$NODE_DIR/pids/ns-holder.pid")/ns/mnt" --
}

node_ready() {
  [[ "$(kc get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" == True ]]
}

# start_kubelet: the kubelet of the node (up.sh, and kubelet.sh after a scenario stopped it)
start_kubelet() {
  start kubelet $(in_node) kubelet --config="$NODE_DIR/kubelet.yaml" \
    --kubeconfig="$NODE_DIR/kubelet.kubeconfig" --root-dir="$NODE_DIR/kubelet" \
    --cert-dir="$NODE_DIR/kubelet/pki" --hostname-override="$NODE_NAME" --node-ip="$NODE_IP" \
    --node-labels=aisre.dev/kubelet=real --v=2
}
