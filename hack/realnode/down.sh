#!/usr/bin/env bash
# Stops the real node started by hack/realnode/up.sh and removes everything it made: its
# processes (kubelet, kube-proxy, containerd, the shims, every container), its mount
# namespace (and with it every mount the kubelet and containerd made), its cgroup subtree,
# the bridge, its iptables chains and kube-proxy's, and its state directory. It verifies
# that nothing is left: no process, no mount, no network namespace, no link.
# Idempotent: fine when no node runs. Deletes the Node object when the API server answers.
# Usage: hack/realnode/down.sh
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd /  # out of the directory we delete

# Another checkout's node runs here: its cgroups, bridge and chains are not ours. Only our own
# (never started) state directory goes.
if other="$(other_owner)"; then
  log "the machine's real node belongs to $other; leaving it alone"
  rm -rf "$NODE_DIR"
  exit 0
fi

# Processes of the node: the recorded ones, the shims of its containerd, everything in its
# mount namespace and its cgroup subtree. Never ourselves.
node_pids() {
  local ns pid f
  ns="$(cat "$NODE_DIR/mntns" 2>/dev/null || true)"
  {
    for f in "$NODE_DIR"/pids/*.pid; do [[ -f "$f" ]] && cat "$f"; done
    for d in /proc/[0-9]*; do
      pid="${d#/proc/}"
      if [[ -n "$ns" && "$(readlink "$d/ns/mnt" 2>/dev/null)" == "$ns" ]]; then echo "$pid"; continue; fi
      tr '\0' ' ' 2>/dev/null <"$d/cmdline" | grep -qF -- "$SOCK" && echo "$pid"
    done
    for f in $(cgroup_dirs); do find "$f" -name cgroup.procs -exec cat {} + 2>/dev/null; done
  } | sort -un | while read -r pid; do
    [[ -n "$pid" && "$pid" != "$$" && -e "/proc/$pid" ]] || continue
    [[ "$(sed -E 's/.*\) ([A-Za-z]).*/\1/' "/proc/$pid/stat" 2>/dev/null)" == Z ]] && continue
    echo "$pid"
  done
  return 0
}

stop() {  # stop SIGNAL PIDS...: signal, then wait up to 10 s for them to go
  local sig=$1; shift
  (($#)) || return 0
  kill "-$sig" "$@" 2>/dev/null || true
  for _ in $(seq 20); do
    local left=0 p
    for p in "$@"; do [[ -e "/proc/$p" && "$(sed -E 's/.*\) ([A-Za-z]).*/\1/' "/proc/$p/stat" 2>/dev/null)" != Z ]] && left=1; done
    ((left)) || return 0
    sleep 0.5
  done
}

if [[ -d "$NODE_DIR" ]]; then
  log "stopping node $NODE_NAME"
  # The kubelet and kube-proxy first (no restarts of what we kill next), then the containers,
  # then containerd and the rest.
  for p in kubelet kube-proxy; do
    alive "$p" && stop TERM "$(cat "$NODE_DIR/pids/$p.pid")"
  done
  mapfile -t containers < <(for f in $(cgroup_dirs); do find "$f" -name cgroup.procs -exec cat {} + 2>/dev/null; done | sort -un)
  stop KILL "${containers[@]}"
  mapfile -t rest < <(node_pids)
  stop TERM "${rest[@]}"
  mapfile -t rest < <(node_pids)
  stop KILL "${rest[@]}"
  mapfile -t rest < <(node_pids)
  if ((${#rest[@]})); then
    log "ERROR: still running: $(ps -o pid=,args= -p "$(IFS=,; echo "${rest[*]}")")"
    exit 1
  fi
fi

# A Node object left NotReady would read as a node failure to anything watching the cluster.
if [[ -s "$KUBECONFIG" ]]; then
  kubectl --kubeconfig "$KUBECONFIG" --request-timeout=5s delete node "$NODE_NAME" --ignore-not-found \
    --wait=false >/dev/null 2>&1 || true
fi

# The mount namespace is gone with its last process; a mount of the node's directory on the
# machine would mean something mounted outside it.
if grep -qF " $NODE_DIR" /proc/self/mountinfo; then
  log "unmounting what is mounted under $NODE_DIR"
  grep -F " $NODE_DIR" /proc/self/mountinfo | awk '{print $5}' | sort -r | xargs -r -n1 umount -l
fi

# cgroups: innermost first; a cgroup empties a moment after its last process is reaped.
for _ in $(seq 20); do
  for d in $(cgroup_dirs); do find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || true; done
  [[ -z "$(cgroup_dirs)" ]] && break
  sleep 0.5
done
[[ -z "$(cgroup_dirs)" ]] || log "WARNING: cgroups left: $(cgroup_dirs | tr '\n' ' ')"

# iptables: our chains, and kube-proxy's (KUBE-*: the machine's only kube-proxy is the real
# node's). `kube-proxy --cleanup` leaves KUBE-FIREWALL behind, so remove them all by name:
# the jumps to them first, then their rules, then the chains.
unchain_all() {  # unchain_all iptables|ip6tables
  command -v "$1" >/dev/null || return 0
  local table chain rules i
  local ours='(AISRE-REALNODE|KUBE-)[^ ]*'
  for table in filter nat mangle; do
    # the jumps to them from the built-in chains, by rule number, last first
    for chain in $("$1-save" -t "$table" 2>/dev/null | grep -oE '^:[A-Z]+ ' | tr -d ': '); do
      [[ "$chain" =~ ^(AISRE-REALNODE|KUBE-) ]] && continue
      mapfile -t rules < <("$1" -w 5 -t "$table" -S "$chain" 2>/dev/null | grep -v '^-P ')
      for ((i = ${#rules[@]}; i >= 1; i--)); do
        [[ "${rules[i-1]}" =~ -j\ $ours ]] && "$1" -w 5 -t "$table" -D "$chain" "$i"
      done
    done
    # then every rule of theirs, then the chains
    for chain in $("$1-save" -t "$table" 2>/dev/null | grep -oE "^:$ours" | tr -d :); do
      "$1" -w 5 -t "$table" -F "$chain" 2>/dev/null || true
    done
    for chain in $("$1-save" -t "$table" 2>/dev/null | grep -oE "^:$ours" | tr -d :); do
      "$1" -w 5 -t "$table" -X "$chain" 2>/dev/null || true
    done
  done
  if "$1-save" 2>/dev/null | grep -qE "^:$ours"; then
    log "WARNING: $1 chains are left: $("$1-save" | grep -oE "^:$ours" | tr '\n' ' ')"
  fi
}
unchain_all iptables
unchain_all ip6tables

ip link show "$BRIDGE" >/dev/null 2>&1 && ip link del "$BRIDGE"
if ip -o link show 2>/dev/null | grep -qE '^[0-9]+: veth[^:]*@.*master '"$BRIDGE"; then
  log "WARNING: veth links of the node are left"
fi

if [[ -d "$NODE_DIR" ]]; then
  if [[ -f "$NODE_DIR/ns-files/created-dirs" ]]; then
    while read -r dir; do rmdir "$dir" 2>/dev/null || true; done <"$NODE_DIR/ns-files/created-dirs"
  fi
  grep -qF " $NODE_DIR" /proc/self/mountinfo && { log "ERROR: still mounted under $NODE_DIR; not deleting it"; exit 1; }
  rm -rf "$NODE_DIR"
fi
[[ "$(cat "$OWNER_FILE" 2>/dev/null)" == "$NODE_DIR" ]] && rm -f "$OWNER_FILE"
log "node $NODE_NAME is down"
