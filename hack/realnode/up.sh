#!/usr/bin/env bash
# Starts the real node `aisre-real-0` of the local cluster beside the KWOK nodes: containerd
# (Debian's, with runc and the CNI bridge), the kubelet and kube-proxy (built by
# hack/tools.sh), all in a mount namespace of their own (hack/realnode/ns-holder.sh); CoreDNS
# for names of the cluster; and two image registries on loopback (distribution): open
# registry.local and private.registry.local, which asks for credentials. The node is labelled
# aisre.dev/kubelet=real and tainted aisre.dev/real-node=true:NoSchedule, so only pods that
# ask for it land there. The control plane must be up (hack/cluster-up.sh calls this after it).
#
# Pod network: the bridge aisre0 (10.244.0.0/24, no masquerade, no default route in pods);
# forwarding is enabled on that bridge alone, and iptables chains AISRE-REALNODE-* drop
# whatever would leave it for another interface or reach the machine from it, except two
# translations for pods: the cluster DNS address to CoreDNS and the `kubernetes` Service to
# the API server, both on loopback. Every server listens on loopback; connections of this
# machine to the node address's kubelet port (the API server's, for logs and exec) are
# redirected to loopback.
#
# Idempotent: a node already running is left alone. Exit status 1 with the reason on stderr
# when the node cannot start; hack/realnode/down.sh then removes what was started.
# Usage: hack/realnode/up.sh
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
HERE="$ROOT/hack/realnode"

SECONDS=0
die() { log "ERROR: $*"; [[ -d "$NODE_DIR/logs" ]] && log "logs: $NODE_DIR/logs/"; exit 1; }

source "$ROOT/hack/retry.sh"  # retry SECONDS DESCRIPTION CMD...

running() {
  local p
  for p in "${PROCESSES[@]}"; do alive "$p" || return 1; done
  node_ready
}

# --- 0. one real node per machine; already up? --------------------------------------------
[[ -s "$KUBECONFIG" && -f "$STATE/pki/ca.crt" ]] || die "the control plane is not up (run hack/cluster-up.sh)"
if other="$(other_owner)"; then
  die "the machine's real node belongs to another checkout ($other); only one kubelet may run"
fi
if [[ -s "$OWNER_FILE" && "$(cat "$OWNER_FILE")" != "$NODE_DIR" ]]; then
  log "taking over $OWNER_FILE from $(cat "$OWNER_FILE") (its node is not running)"
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
log "starting node $NODE_NAME: packages, binaries, images"
bash "$HERE/deps.sh" install
tools_log="$(mktemp)"
bash "$ROOT/hack/tools.sh" kubelet kube-proxy coredns registry >"$tools_log" 2>&1 \
  || { cat "$tools_log" >&2; rm -f "$tools_log"; die "hack/tools.sh failed"; }
rm -f "$tools_log"
bash "$ROOT/hack/images/build.sh"

mkdir -p "$NODE_DIR"/{logs,pids,cni/net.d,cni/ipam,containerd/certs.d,kubelet/pki,pod-logs,registry}
ln -sf "$HERE/kubelet.sh" "$NODE_DIR/kubelet.sh"  # for the bench: stop and start the kubelet alone
echo "$NODE_DIR" >"$OWNER_FILE"

# The service range the API server allocates from, and the cluster DNS address in it.
service_cidr="$(grep -oE -- "--service-cluster-ip-range=[0-9./]+" "$STATE/kwok.yaml" | head -n1 | cut -d= -f2 || true)"
service_cidr="${service_cidr:-10.0.0.0/24}"  # kube-apiserver's default
dns_ip="$(python3 -c 'import ipaddress,sys; print(ipaddress.ip_network(sys.argv[1])[10])' "$service_cidr")"
api_ip="$(kc get service kubernetes -o jsonpath='{.spec.clusterIP}')"
api_port="$(kubectl config view --kubeconfig "$KUBECONFIG" -o jsonpath='{.clusters[0].cluster.server}' | sed -E 's#.*:([0-9]+)/?$#\1#')"
[[ -n "$api_ip" && "$api_port" =~ ^[0-9]+$ ]] || die "cannot read the API server's Service address or port"

render() {  # render TEMPLATE OUTPUT
  sed -e "s#@NODE_DIR@#$NODE_DIR#g" -e "s#@NODE_NAME@#$NODE_NAME#g" -e "s#@NODE_IP@#$NODE_IP#g" \
      -e "s#@BRIDGE@#$BRIDGE#g" -e "s#@POD_CIDR@#$POD_CIDR#g" -e "s#@SERVICE_CIDR@#$service_cidr#g" \
      -e "s#@DNS_IP@#$dns_ip#g" -e "s#@CA_FILE@#$STATE/pki/ca.crt#g" \
      -e "s#@KUBELET_PORT@#$KUBELET_PORT#g" -e "s#@KUBELET_HEALTHZ_PORT@#$KUBELET_HEALTHZ_PORT#g" \
      -e "s#@PROXY_HEALTHZ_PORT@#$PROXY_HEALTHZ_PORT#g" -e "s#@PROXY_METRICS_PORT@#$PROXY_METRICS_PORT#g" \
      -e "s#@DNS_PORT@#$DNS_PORT#g" "$1" >"$2"
}
render "$HERE/containerd.toml.in" "$NODE_DIR/containerd/config.toml"
render "$HERE/cni.conflist.in" "$NODE_DIR/cni/net.d/10-aisre.conflist"
render "$HERE/kubelet.yaml.in" "$NODE_DIR/kubelet.yaml"
render "$HERE/kube-proxy.yaml.in" "$NODE_DIR/kube-proxy.yaml"
render "$HERE/Corefile.in" "$NODE_DIR/Corefile"
# The two registries, and where containerd finds them (plain HTTP on loopback).
registry_config() {  # registry_config NAME PORT AUTH
  sed -e "s#@DATA@#$NODE_DIR/registry/$1#g" -e "s#@PORT@#$2#g" "$HERE/registry.yaml.in" \
    | awk -v auth="$3" '{ if ($0 == "@AUTH@") { if (auth != "") print auth } else print }' >"$NODE_DIR/registry/$1.yaml"
}
registry_config registry "$REGISTRY_PORT" ""
registry_config private-registry "$PRIVATE_REGISTRY_PORT" \
  "$(printf 'auth:\n  htpasswd: {realm: private.registry.local, path: %s}' "$HERE/registry.htpasswd")"
for host in registry.local:$REGISTRY_PORT private.registry.local:$PRIVATE_REGISTRY_PORT; do
  mkdir -p "$NODE_DIR/containerd/certs.d/${host%%:*}"
  printf 'server = "http://127.0.0.1:%s"\n\n[host."http://127.0.0.1:%s"]\n  capabilities = ["pull", "resolve"]\n' \
    "${host##*:}" "${host##*:}" >"$NODE_DIR/containerd/certs.d/${host%%:*}/hosts.toml"
done

# Client certificates signed by the cluster CA: the node's own identity (Node authorizer,
# NodeRestriction), kube-proxy's (bound to system:node-proxier by default) and CoreDNS's
# (hack/realnode/coredns-rbac.yaml).
(umask 077
 kwokctl --name aisre get kubeconfig --user "system:node:$NODE_NAME" --group system:nodes >"$NODE_DIR/kubelet.kubeconfig"
 kwokctl --name aisre get kubeconfig --user system:kube-proxy >"$NODE_DIR/kube-proxy.kubeconfig"
 kwokctl --name aisre get kubeconfig --user aisre:realnode:coredns >"$NODE_DIR/coredns.kubeconfig")

# --- 2. host side: cgroup subtree, bridge, firewall ----------------------------------------
log "host side: cgroup subtree /$NODE_NAME, bridge $BRIDGE ($NODE_IP), iptables chains AISRE-REALNODE-*"
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
# Routing for pod -> Service -> pod (after kube-proxy's DNAT) happens on the bridge alone, and
# so does the translation of two Service addresses to loopback (see AISRE-REALNODE-PRE).
sysctl -q -w "net.ipv4.conf.$BRIDGE.forwarding=1" "net.ipv4.conf.$BRIDGE.route_localnet=1"

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
for svc in "$dns_ip" "$api_ip"; do  # the two translations of AISRE-REALNODE-PRE, nothing else
  ipt -A AISRE-REALNODE-IN -i "$BRIDGE" -d 127.0.0.1 -m conntrack --ctstate DNAT --ctorigdst "$svc" -j ACCEPT
done
ipt -A AISRE-REALNODE-IN -i "$BRIDGE" -j DROP    # pods open no other connection to the machine
chain nat AISRE-REALNODE-OUT OUTPUT
ipt -t nat -A AISRE-REALNODE-OUT -d "$NODE_IP" -p tcp --dport "$KUBELET_PORT" -j REDIRECT --to-ports "$KUBELET_PORT"

# --- 3. the node's processes ---------------------------------------------------------------
log "registries on 127.0.0.1:$REGISTRY_PORT and :$PRIVATE_REGISTRY_PORT, pushing the images"
for name in registry private-registry; do
  start "$name" registry serve "$NODE_DIR/registry/$name.yaml"
done
retry 20 "registry.local (127.0.0.1:$REGISTRY_PORT)" curl -fsS -m 2 "http://127.0.0.1:$REGISTRY_PORT/v2/"
retry 20 "private.registry.local (127.0.0.1:$PRIVATE_REGISTRY_PORT)" \
  curl -fsS -m 2 -u "$REGISTRY_USER:$REGISTRY_PASSWORD" "http://127.0.0.1:$PRIVATE_REGISTRY_PORT/v2/"
push() {  # push IMAGE PORT TARGET [--user U --password P]
  python3 "$ROOT/hack/images/push.py" "$ROOT/.tools/images/$1/layout" "http://127.0.0.1:$2" "${@:3}" >/dev/null \
    || die "pushing $1 to 127.0.0.1:$2 failed"
}
push pause "$REGISTRY_PORT" pause:1
push busybox "$REGISTRY_PORT" busybox:1
push faultapp "$REGISTRY_PORT" faultapp:1
push faultapp-arm64 "$REGISTRY_PORT" faultapp:1-arm64
push faultapp "$PRIVATE_REGISTRY_PORT" faultapp:1 --user "$REGISTRY_USER" --password "$REGISTRY_PASSWORD"

log "containerd, kubelet and kube-proxy in the node's mount namespace"
start ns-holder unshare --mount --propagation private bash "$HERE/ns-holder.sh" "$NODE_DIR"
retry 10 "the node's mount namespace" test -f "$NODE_DIR/ns-files/ready"
alive ns-holder || die "the mount namespace holder exited: $(cat "$NODE_DIR/logs/ns-holder.log")"
readlink "/proc/$(cat "$NODE_DIR/pids/ns-holder.pid")/ns/mnt" >"$NODE_DIR/mntns"  # down.sh finds its members by it

start containerd $(in_node) containerd --config "$NODE_DIR/containerd/config.toml"
retry 30 "containerd ($SOCK)" ctr --address "$SOCK" version
alive containerd || die "containerd exited"

start_kubelet
retry 90 "node $NODE_NAME Ready (kubelet log: $NODE_DIR/logs/kubelet.log)" node_ready
alive kubelet || die "the kubelet exited"

start kube-proxy $(in_node) kube-proxy --config="$NODE_DIR/kube-proxy.yaml" --v=2
retry 30 "kube-proxy healthz" curl -fsS -m 2 "http://127.0.0.1:$PROXY_HEALTHZ_PORT/healthz"
# Two Service addresses lead to loopback servers for pods (the machine-wide route_localnet
# stays off; the bridge's is on): the cluster DNS to CoreDNS, the `kubernetes` Service to the
# API server (whose advertised endpoint is an address it does not listen on). Inserted ahead
# of kube-proxy's jump, which it only adds when missing.
chain nat AISRE-REALNODE-PRE PREROUTING
for proto in udp tcp; do
  ipt -t nat -A AISRE-REALNODE-PRE -i "$BRIDGE" -d "$dns_ip" -p "$proto" --dport 53 -j DNAT --to-destination "127.0.0.1:$DNS_PORT"
done
ipt -t nat -A AISRE-REALNODE-PRE -i "$BRIDGE" -d "$api_ip" -p tcp --dport 443 -j DNAT --to-destination "127.0.0.1:$api_port"

log "CoreDNS on 127.0.0.1:$DNS_PORT for $dns_ip"
kc apply -f "$HERE/coredns-rbac.yaml" >/dev/null
# The cluster DNS address belongs to a Service, so the API server never gives it to another.
kc apply -f - >/dev/null <<SVC
apiVersion: v1
kind: Service
metadata: {name: kube-dns, namespace: kube-system, labels: {k8s-app: kube-dns}}
spec:
  clusterIP: $dns_ip
  ports: [{name: dns, port: 53, protocol: UDP}, {name: dns-tcp, port: 53, protocol: TCP}]
SVC
start coredns coredns -conf "$NODE_DIR/Corefile"
retry 20 "CoreDNS on 127.0.0.1:$DNS_PORT" bash -c "exec 3<>/dev/tcp/127.0.0.1/$DNS_PORT"

# Proof that pods run: one pulled from the registry, run by runc, on the pod network.
log "a first pod on the node"
smoke="aisre-realnode-smoke-$(date +%s)"  # a new name each time: an old one may still be going
kc -n kube-system delete pod -l aisre.dev/realnode-smoke --ignore-not-found --wait=false >/dev/null
kc -n kube-system create -f - >/dev/null <<POD
apiVersion: v1
kind: Pod
metadata: {name: $smoke, labels: {aisre.dev/realnode-smoke: "true"}}
spec:
  nodeSelector: {aisre.dev/kubelet: real}
  tolerations: [{key: aisre.dev/real-node, operator: Exists}]
  restartPolicy: Never
  containers: [{name: smoke, image: registry.local/busybox:1, command: ["true"]}]
POD
smoke_phase() { kc -n kube-system get pod "$smoke" -o jsonpath='{.status.phase}' 2>/dev/null; }
smoke_finished() { [[ "$(smoke_phase)" =~ ^(Succeeded|Failed)$ ]]; }
end=$((SECONDS + 60))
until smoke_finished || ((SECONDS > end)); do sleep 0.5; done
if [[ "$(smoke_phase)" != Succeeded ]]; then
  why="$(kc -n kube-system get events --field-selector "involvedObject.name=$smoke" \
    -o jsonpath='{range .items[?(@.type=="Warning")]}{.reason}: {.message}{"\n"}{end}' | tail -n 3)"
  die "the first pod did not run on the node (phase $(smoke_phase)): ${why:-no warning event}"
fi
kc -n kube-system delete pod "$smoke" --wait=false >/dev/null

log "node $NODE_NAME Ready in ${SECONDS}s (containerd $(ctr --address "$SOCK" version 2>/dev/null | awk '/Version:/ {print $2; exit}'), state in $NODE_DIR)"
