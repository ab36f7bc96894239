#!/usr/bin/env bash
# The real node's mount namespace: hack/realnode/up.sh runs this under
# `unshare --mount --propagation private`; containerd, the kubelet and kube-proxy then join
# the namespace (nsenter --mount), and so do the CNI plugins and shims they start.
#
# Why a namespace of their own:
# - every mount they make (container root filesystems, volumes, pod network namespaces) lives
#   and dies with it: when the node's last process exits, nothing stays mounted on the machine;
# - the kubelet sets six kernel tunables machine-wide at start (vm.overcommit_memory=1,
#   kernel.panic=10, kernel.panic_on_oops=1, ...) and the CNI bridge plugin turns on
#   net.ipv4.ip_forward for every interface. Here those files are covered by plain files that
#   already hold the wanted values, so nothing is written to the kernel; up.sh enables
#   forwarding on the pod bridge alone;
# - paths the kubelet and containerd hard-code (/var/log/containers, /run/containerd) are
#   private tmpfs mounts; /run/containerd/containerd.sock leads to the node's own socket;
# - /etc/resolv.conf is empty: nothing of the node resolves names outside the cluster.
# Then it sleeps, holding the namespace, until down.sh stops it.
# Usage: ns-holder.sh NODE_DIR
set -euo pipefail
NODE_DIR=$1
fake="$NODE_DIR/ns-files"
mkdir -p "$fake"

cover() {  # cover /proc/sys/PATH VALUE
  local file="$fake/$(echo "${1#/proc/sys/}" | tr / .)"
  echo "$2" >"$file"
  mount --bind "$file" "$1"
}
cover /proc/sys/vm/overcommit_memory 1
cover /proc/sys/vm/panic_on_oom 0
cover /proc/sys/kernel/panic 10
cover /proc/sys/kernel/panic_on_oops 1
cover /proc/sys/kernel/keys/root_maxkeys 1000000
cover /proc/sys/kernel/keys/root_maxbytes 25000000
cover /proc/sys/net/ipv4/ip_forward 1

# No resolver: a pod whose image names an outside registry fails to resolve it here, instead of
# containerd looking the name up through the machine's resolver and connecting off the machine.
# (The cluster's own names are CoreDNS's; the registries are found through hosts.toml.)
: >"$fake/resolv.conf"
mount --bind "$fake/resolv.conf" /etc/resolv.conf

for dir in /var/log/containers /run/containerd; do
  # a mount point is needed on the machine's file system; down.sh removes the ones made here
  [[ -d "$dir" ]] || { mkdir -p "$dir"; echo "$dir" >>"$fake/created-dirs"; }
  mount -t tmpfs -o mode=0755,size=64m tmpfs "$dir"
done
# The kubelet's cAdvisor finds containerd at its default address only; without it the
# container metrics carry no container/pod labels.
ln -s "$NODE_DIR/containerd/containerd.sock" /run/containerd/containerd.sock
echo ready >"$NODE_DIR/ns-files/ready"
exec sleep infinity
