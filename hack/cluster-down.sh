#!/usr/bin/env bash
# Stops and deletes the local `aisre` cluster started by hack/cluster-up.sh, removes its state
# from <cluster dir> (${AISRE_CLUSTER_DIR:-<repo>/.cluster}) and makes sure none of its
# processes survive (etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
# kwok-controller): a leftover would keep holding its ports and its data directory.
# The real node goes first (hack/realnode/down.sh: its processes, mounts, cgroups, bridge and
# iptables chains).
# Idempotent: fine when nothing is up.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NAME=aisre
CLUSTER_DIR="${AISRE_CLUSTER_DIR:-$ROOT/.cluster}"
CLUSTER_DIR="$(realpath -m "$CLUSTER_DIR")"  # absolute, as cluster-up.sh recorded it
export KWOK_WORKDIR="$CLUSTER_DIR/kwok"
STATE="$KWOK_WORKDIR/clusters/$NAME"
BIN="$ROOT/.tools/bin"
# Out of the directories we scan and delete (a shell of ours sitting in $STATE would look like
# a cluster process).
cd /
export PATH="$BIN:$PATH"
export KWOK_KUBECTL_BINARY="$BIN/kubectl"

log() { printf '[cluster-down] %s\n' "$*" >&2; }

# Processes of this cluster: the recorded pids, plus anything running from the cluster's
# directory (kwokctl starts every component with its cwd there and argv[0] in bin/), in case
# the pid files are gone. Never ourselves or our ancestors.
cluster_pids() {
  local ancestors=" " p=$$ pid cwd arg0 state
  while [[ "$p" -gt 1 ]]; do
    ancestors+="$p "
    p="$(sed -E 's/.*\) [A-Za-z] ([0-9]+).*/\1/' "/proc/$p/stat" 2>/dev/null)" || break  # ppid
  done
  {
    cat "$STATE"/pids/*.pid 2>/dev/null || true
    for d in /proc/[0-9]*; do
      pid="${d#/proc/}"
      cwd="$(readlink "$d/cwd" 2>/dev/null)" || continue
      cwd="${cwd% (deleted)}"  # the directory may already be removed
      arg0=""; IFS= read -r -d '' arg0 <"$d/cmdline" 2>/dev/null || true  # up to the first NUL
      if [[ "$cwd" == "$STATE" || "$cwd" == "$STATE"/* || "$arg0" == "$STATE"/* ]]; then
        echo "$pid"
      fi
    done
  } | sort -un | while read -r pid; do
    [[ -n "$pid" && "$ancestors" != *" $pid "* ]] || continue
    # gone, or a zombie (exited; waits for PID 1 to reap it, holds no ports) -> not running
    state="$(sed -E 's/.*\) ([A-Za-z]).*/\1/' "/proc/$pid/stat" 2>/dev/null)" || continue
    [[ "$state" != Z ]] && echo "$pid"
  done
  return 0
}

bash "$ROOT/hack/realnode/down.sh"

if [[ -f "$STATE/kwok.yaml" ]]; then
  log "deleting cluster $NAME ($KWOK_WORKDIR)"
  if [[ -x "$BIN/kwokctl" ]]; then
    # --kubeconfig defaults to ~/.kube/config (kwokctl removes its context there); we never
    # added one, so point it at a throwaway path (delete rejects "" with "empty path").
    kwokctl --name "$NAME" delete cluster --kubeconfig "$CLUSTER_DIR/kwokctl-delete.kubeconfig" \
      >"$CLUSTER_DIR/kwokctl-delete.log" 2>&1 \
      || { cat "$CLUSTER_DIR/kwokctl-delete.log" >&2; log "kwokctl delete cluster failed; cleaning up by hand"; }
  else
    log "no kwokctl in $BIN; cleaning up by hand"
  fi
fi

# kwokctl signals the recorded pids; catch what it missed or what is still shutting down.
mapfile -t left < <(cluster_pids)
if ((${#left[@]})); then
  log "stopping leftover processes: ${left[*]}"
  kill -TERM "${left[@]}" 2>/dev/null || true
  for _ in $(seq 20); do
    mapfile -t left < <(cluster_pids)
    ((${#left[@]})) || break
    sleep 0.5
  done
  if ((${#left[@]})); then
    log "killing: ${left[*]}"
    kill -KILL "${left[@]}" 2>/dev/null || true
    sleep 0.5
  fi
fi
mapfile -t left < <(cluster_pids)
if ((${#left[@]})); then
  log "ERROR: still running: $(ps -o pid=,args= -p "$(IFS=,; echo "${left[*]}")")"
  exit 1
fi

# Only what cluster-up.sh creates: the directory may also hold other tools' files.
rm -rf "$KWOK_WORKDIR" "$CLUSTER_DIR/kubeconfig" "$CLUSTER_DIR/kubeconfig-user" \
  "$CLUSTER_DIR"/kubeconfig.tmp "$CLUSTER_DIR"/kubeconfig-user.tmp "$CLUSTER_DIR/kube-cache" \
  "$CLUSTER_DIR"/kwokctl-{create,delete}.log "$CLUSTER_DIR/kwokctl-delete.kubeconfig" \
  "$CLUSTER_DIR/realnode-status" "$CLUSTER_DIR/realnode-up.log"
rmdir "$CLUSTER_DIR" 2>/dev/null || true
log "cluster $NAME is down"
