#!/usr/bin/env bash
# Starts the real node `aisre-real-0` of the local cluster beside the KWOK nodes: containerd
# (Debian's, with runc and the CNI bridge), the kubelet and kube-proxy (built by
# hack/tools.sh), all in a mount namespace of their own (hack/realnode/ns-holder.sh). The
# node is labelled aisre.dev/kubelet=real and tainted aisre.dev/real-node=true:NoSchedule, so
# only pods that ask for it land there. The control plane must be up (hack/cluster-up.sh
# calls this after it).
#
# Pod network: the bridge aisre0 (10.244.0.0/24, no masquerade, no default route in pods);
# forwarding is enabled on that bridge alone, and iptables chains AISRE-REALNODE-* drop
# whatever would leave it for another interface or reach the machine from it. Every server
# of the node listens on loopback; connections of this machine to the node address's kubelet
# port (the API server's, for logs and exec) are redirected to loopback.
#
# Idempotent: a node already running is left alone. Exit status 1 with the reason on stderr
# when the node cannot start; hack/realnode/down.sh then removes what was started.
# Usage: hack/realnode/up.sh
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
HERE="$ROOT/hack/realnode"

SECONDS=0
die() { log "ERROR: $*"; log "logs: $NODE_DIR/logs/"; exit 1; }

source "$ROOT/hack/retry.sh"  # retry SECONDS DESCRIPTION CMD...

node_ready() {
  [[ "$(kc get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" == True ]]
}

running() {
  local p
  for p in "${PROCESSES[@]}"; do alive "$p" || return 1; done
  node_ready
}

# --- 0. one real node per machine; already up? --------------------------------------------
[[ -s "$KUBECONFIG" && -f "$STATE/pki/ca.crt" ]] || die "the control plane is not up (run hack/cluster-up.sh)"
if [[ -s "$OWNER_FILE" && "$(cat "$OWNER_FILE")" != "$NODE_DIR" ]]; then
  other="$(cat "$OWNER_FILE")"
  if [[ -n "$(ls "$other/pids/"*.pid 2>/dev/null)" ]] && pgrep -F "$other/pids/kubelet.pid" >/dev/null 2>&1; then
    die "the machine's real node belongs to another checkout ($other); only one kubelet may run"
  fi
  log "taking over $OWNER_FILE from $other (its node is not running)"
fi
if running; then
  log "node $NODE_NAME already running"
  exit 0
fi
if [[ -d "$NODE_DIR" ]]; then
  log "removing the stale state of a previous node"
  bash "$HERE/down.sh"
fi

# --- 1. what it needs ----------------------------------------------------------------------
bash "$HERE/deps.sh" install
tools_log="$(mktemp)"
bash "$ROOT/hack/tools.sh" kubelet kube-proxy >"$tools_log" 2>&1 \
  || { cat "$tools_log" >&2; rm -f "$tools_log"; die "hack/tools.sh kubelet kube-proxy failed"; }
rm -f "$tools_log"
bash "$ROOT/hack/images/build.sh" pause busybox

mkdir -p "$NODE_DIR"/{logs,pids,cni/net.d,cni/ipam,containerd/certs.d,kubelet/pki,pod-logs}
echo "$NODE_DIR" >"$OWNER_FILE"

# The service range the API server allocates from, and the cluster DNS address in it.
service_cidr="$(grep -oE -- "--service-cluster-ip-range=[0-9./]+" "$STATE/kwok.yaml" | head -n1 | cut -d= -f2 || true)"
service_cidr="${service_cidr:-10.0.0.0/24}"  # kube-apiserver's default
dns_ip="$(python3 -c 'import ipaddress,sys; print(ipaddress.ip_network(sys.argv[1])[10])' "$service_cidr")"

render() {  # render TEMPLATE OUTPUT
  sed -e "s#@NODE_DIR@#$NODE_DIR#g" -e "s#@NODE_NAME@#$NODE_NAME#g" -e "s#@NODE_IP@#$NODE_IP#g" \
      -e "s#@BRIDGE@#$BRIDGE#g" -e "s#@POD_CIDR@#$POD_CIDR#g" -e "s#@SERVICE_CIDR@#$service_cidr#g" \
      -e "s#@DNS_IP@#$dns_ip#g" -e "s#@CA_FILE@#$STATE/pki/ca.crt#g" \
      -e "s#@KUBELET_PORT@#$KUBELET_PORT#g" -e "s#@KUBELET_HEALTHZ_PORT@#$KUBELET_HEALTHZ_PORT#g" \
      -e "s#@PROXY_HEALTHZ_PORT@#$PROXY_HEALTHZ_PORT#g" -e "s#@PROXY_METRICS_PORT@#$PROXY_METRICS_PORT#g" \
      "$1" >"$2"
}
render "$HERE/containerd.toml.in" "$NODE_DIR/containerd/config.toml"
render "$HERE/cni.conflist.in" "$NODE_DIR/cni/net.d/10-aisre.conflist"
render "$HERE/kubelet.yaml.in" "$NODE_DIR/kubelet.yaml"
render "$HERE/kube-proxy.yaml.in" "$NODE_DIR/kube-proxy.yaml"

# Client certificates signed by the cluster CA: the node's own identity (Node authorizer,
# NodeRestriction) and kube-proxy's (bound to system:node-proxier by default).
(umask 077
 kwokctl --name aisre get kubeconfig --user "system:node:$NODE_NAME" --group system:nodes >"$NODE_DIR/kubelet.kubeconfig"
 kwokctl --name aisre get kubeconfig --user system:kube-proxy >"$NODE_DIR/kube-proxy.kubeconfig")

# --- 2. host side: cgroup subtree, bridge, firewall ----------------------------------------
while read -r _ dir fs opts _; do
  case "$fs" in
    cgroup) mkdir -p "$dir/$NODE_NAME"
            if [[ ",$opts," == *,cpuset,* ]]; then  # a v1 cpuset child starts empty
              cat "$dir/cpuset.cpus" >"$dir/$NODE_NAME/cpuset.cpus"
              cat "$dir/cpuset.mems" >"$dir/$NODE_NAME/cpuset.mems"
            fi ;;
    cgroup2) [[ "$dir" == /sys/fs/cgroup ]] && mkdir -p "$dir/$NODE_NAME" ;;
  esac
done </proc/self/mounts

ip link show "$BRIDGE" >/dev/null 2>&1 || ip link add name "$BRIDGE" type bridge
ip addr replace "$NODE_IP/${POD_CIDR#*/}" dev "$BRIDGE"
ip link set "$BRIDGE" up
# Routing for pod -> Service -> pod (after kube-proxy's DNAT) happens on the bridge alone.
sysctl -q -w "net.ipv4.conf.$BRIDGE.forwarding=1"

ipt() { iptables -w 5 "$@"; }
chain() {  # chain TABLE CHAIN PARENT: an emptied chain of ours, jumped to first from PARENT
  ipt -t "$1" -N "$2" 2>/dev/null || ipt -t "$1" -F "$2"
  ipt -t "$1" -C "$3" -j "$2" 2>/dev/null || ipt -t "$1" -I "$3" 1 -j "$2"
}
chain filter AISRE-REALNODE-FWD FORWARD
ipt -A AISRE-REALNODE-FWD -i "$BRIDGE" -o "$BRIDGE" -j ACCEPT
ipt -A AISRE-REALNODE-FWD -i "$BRIDGE" -j DROP   # nothing leaves the pod network
ipt -A AISRE-REALNODE-FWD -o "$BRIDGE" -j DROP   # nothing from elsewhere enters it
chain filter AISRE-REALNODE-IN INPUT
ipt -A AISRE-REALNODE-IN -i "$BRIDGE" -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
ipt -A AISRE-REALNODE-IN -i "$BRIDGE" -j DROP    # pods open no connection to the machine
chain nat AISRE-REALNODE-OUT OUTPUT
ipt -t nat -A AISRE-REALNODE-OUT -d "$NODE_IP" -p tcp --dport "$KUBELET_PORT" -j REDIRECT --to-ports "$KUBELET_PORT"

# --- 3. the node's processes ---------------------------------------------------------------
start() {  # start NAME CMD...: detached, logging to logs/NAME.log, pid in pids/NAME.pid
  local name=$1; shift
  setsid "$@" >"$NODE_DIR/logs/$name.log" 2>&1 </dev/null &
  echo $! >"$NODE_DIR/pids/$name.pid"
}
in_node() {  # the command, in the node's mount namespace
  echo nsenter --mount="/proc/$(cat "$NODE_DIR/pids/ns-holder.pid")/ns/mnt" --
}

start ns-holder unshare --mount --propagation private bash "$HERE/ns-holder.sh" "$NODE_DIR"
retry 10 "the node's mount namespace" test -f "$NODE_DIR/ns-files/ready"
alive ns-holder || die "the mount namespace holder exited: $(cat "$NODE_DIR/logs/ns-holder.log")"
readlink "/proc/$(cat "$NODE_DIR/pids/ns-holder.pid")/ns/mnt" >"$NODE_DIR/mntns"  # down.sh finds its members by it

start containerd $(in_node) containerd --config "$NODE_DIR/containerd/config.toml"
retry 30 "containerd ($SOCK)" ctr --address "$SOCK" version
alive containerd || die "containerd exited"
for image in pause busybox; do
  ctr --address "$SOCK" -n k8s.io images import "$ROOT/.tools/images/$image/image.tar" >/dev/null \
    || die "importing the $image image into containerd failed"
done

start kubelet $(in_node) kubelet --config="$NODE_DIR/kubelet.yaml" \
  --kubeconfig="$NODE_DIR/kubelet.kubeconfig" --root-dir="$NODE_DIR/kubelet" \
  --cert-dir="$NODE_DIR/kubelet/pki" --hostname-override="$NODE_NAME" --node-ip="$NODE_IP" \
  --node-labels=aisre.dev/kubelet=real --v=2
retry 90 "node $NODE_NAME Ready (kubelet log: $NODE_DIR/logs/kubelet.log)" node_ready
alive kubelet || die "the kubelet exited"

start kube-proxy $(in_node) kube-proxy --config="$NODE_DIR/kube-proxy.yaml" --v=2
retry 30 "kube-proxy healthz" curl -fsS -m 2 "http://127.0.0.1:$PROXY_HEALTHZ_PORT/healthz"

log "node $NODE_NAME Ready in ${SECONDS}s (containerd $(ctr --address "$SOCK" version 2>/dev/null | awk '/Version:/ {print $2; exit}'), state in $NODE_DIR)"
