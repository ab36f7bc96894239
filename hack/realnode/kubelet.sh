#!/usr/bin/env bash
# Stops or starts the real node's kubelet alone, for `kubelet: real` scenarios whose fault is
# a node that stops reporting (SCENARIOS.md: `node` steps stop the real kubelet). containerd,
# the containers and kube-proxy keep running, as on a node whose kubelet died; the node
# lifecycle controller then marks the node NotReady. `start` brings the kubelet back and waits
# until the node is Ready again. The bench finds this script through the cluster directory
# (up.sh links it there), so an installed package needs no checkout path.
# Usage: hack/realnode/kubelet.sh stop|start|status
set -euo pipefail
source "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/lib.sh"
die() { log "ERROR: $*"; exit 1; }
source "$ROOT/hack/retry.sh"

[[ -d "$NODE_DIR/pids" ]] || die "no real node in $NODE_DIR (make cluster-up)"
case "${1:-}" in
  stop)
    if alive kubelet; then
      kill -TERM "$(cat "$NODE_DIR/pids/kubelet.pid")"
      retry 30 "the kubelet to exit" bash -c "! pgrep -F '$NODE_DIR/pids/kubelet.pid' >/dev/null"
      log "kubelet stopped"
    else
      log "kubelet not running"
    fi ;;
  start)
    alive ns-holder && alive containerd || die "the node's containerd is not running (make cluster-up)"
    if ! alive kubelet; then
      start_kubelet
      log "kubelet started"
    fi
    retry 120 "node $NODE_NAME Ready (kubelet log: $NODE_DIR/logs/kubelet.log)" node_ready
    alive kubelet || die "the kubelet exited" ;;
  status)
    alive kubelet && echo running || echo stopped ;;
  *)
    die "usage: $0 stop|start|status" ;;
esac
