#!/usr/bin/env bash
# Installs Debian's Prometheus (the `prometheus` package, no root: apt-get download +
# dpkg-deb -x) into the per-user tools cache and starts it on loopback for the metrics
# agent's tests and benchmark. Idempotent: a cached binary is reused; a Prometheus already
# answering on the port is left alone.
#
# The scenarios' `metrics` steps are written into it through the remote-write receiver
# (--web.enable-remote-write-receiver) with an out-of-order window, so series may start
# in the past (t < 0) — see docs/metrics.md for why this and not promtool/scraping. The
# window is 4 days (retention 5, so compaction never drops what was backfilled): forecasts'
# daily seasonality needs two days of history. A running server takes a new window on reload;
# the retention is a flag and needs a restart.
# When the local cluster has its real node (hack/realnode/), it also scrapes that kubelet's
# cAdvisor endpoint every 5 s with the cluster admin's client certificate: the real node's
# containers' CPU, throttling and memory, real series with no backfill.
#
# Usage: hack/prometheus.sh install | start | stop | url
#   AISRE_PROMETHEUS_BINARY=PATH   use this prometheus binary instead of Debian's
#   AISRE_PROMETHEUS_PORT=9095     loopback port (default 9095)
#   AISRE_PROMETHEUS_DIR=DIR       data, config, pid and log (default .cluster/prometheus)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${AISRE_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/aisre/tools}"
PORT="${AISRE_PROMETHEUS_PORT:-9095}"
DIR="${AISRE_PROMETHEUS_DIR:-$ROOT/.cluster/prometheus}"
PKG_VERSION="${AISRE_PROMETHEUS_DEB_VERSION:-2.42.0+ds-5+deb12u1}"

log() { printf '[prometheus] %s\n' "$*" >&2; }

binary() {
  if [[ -n "${AISRE_PROMETHEUS_BINARY:-}" ]]; then echo "$AISRE_PROMETHEUS_BINARY"; return; fi
  echo "$CACHE/prometheus-${PKG_VERSION}/usr/bin/prometheus"
}

install() {
  local bin; bin="$(binary)"
  [[ -x "$bin" ]] && return 0
  local dest="$CACHE/prometheus-${PKG_VERSION}" work
  work="$(mktemp -d)"
  log "downloading Debian's prometheus=$PKG_VERSION"
  fetch() { (cd "$work" && { apt-get download -q "prometheus=$PKG_VERSION" >&2 || apt-get download -q prometheus >&2; }); }
  if ! fetch; then
    command -v apt-get >/dev/null || { log "no apt-get: set AISRE_PROMETHEUS_BINARY to a prometheus binary"; exit 1; }
    # A fresh container has no package lists yet; only root may fetch them.
    [[ "$(id -u)" == 0 ]] || { log "apt-get download failed; run 'apt-get update' (as root) or set AISRE_PROMETHEUS_BINARY"; exit 1; }
    apt-get update -q >&2
    fetch
  fi
  rm -rf "$dest.tmp" && mkdir -p "$dest.tmp"
  dpkg-deb -x "$work"/prometheus_*.deb "$dest.tmp"
  rm -rf "$dest" && mv "$dest.tmp" "$dest"
  rm -rf "$work"
  log "installed $(binary)"
}

url() { echo "http://127.0.0.1:$PORT"; }

ready() { curl -fsS -m 2 "$(url)/-/ready" >/dev/null 2>&1; }

CLUSTER_DIR="$(realpath -m "${AISRE_CLUSTER_DIR:-$ROOT/.cluster}")"
PKI="$CLUSTER_DIR/kwok/clusters/aisre/pki"
KUBELET_ADDRESS=127.0.0.1:10250  # the real node's kubelet (hack/realnode/lib.sh KUBELET_PORT)

config() {
  cat <<CFG
# Written by hack/prometheus.sh. Series of scenarios arrive by remote write; the real node's
# kubelet, when the cluster has one, is scraped.
global: {scrape_interval: 15s, evaluation_interval: 15s}
storage:
  tsdb:
    out_of_order_time_window: 4d
CFG
  if [[ -d "$CLUSTER_DIR/realnode" && -f "$PKI/admin.crt" ]]; then
    cat <<CFG
scrape_configs:
  - job_name: kubelet-cadvisor
    scheme: https
    metrics_path: /metrics/cadvisor
    scrape_interval: 5s
    tls_config: {cert_file: $PKI/admin.crt, key_file: $PKI/admin.key, insecure_skip_verify: true}
    static_configs: [{targets: ['$KUBELET_ADDRESS'], labels: {node: aisre-real-0}}]
CFG
  fi
}

start() {
  mkdir -p "$DIR/data"
  config > "$DIR/prometheus.yml.new"
  if ready; then
    # Running already: take the current config (the real node may have come up since).
    if ! cmp -s "$DIR/prometheus.yml.new" "$DIR/prometheus.yml" && [[ -f "$DIR/pid" ]]; then
      mv "$DIR/prometheus.yml.new" "$DIR/prometheus.yml"
      kill -HUP "$(cat "$DIR/pid")" 2>/dev/null && log "reloaded its configuration"
    fi
    rm -f "$DIR/prometheus.yml.new"
    log "already running at $(url)"; url; return 0
  fi
  install
  mv "$DIR/prometheus.yml.new" "$DIR/prometheus.yml"
  log "starting $(binary) on $(url) (data in $DIR/data)"
  # setsid: the server outlives this script (it is stopped with `stop`, by its pid).
  setsid "$(binary)" --config.file="$DIR/prometheus.yml" --storage.tsdb.path="$DIR/data" \
    --web.listen-address="127.0.0.1:$PORT" --web.enable-remote-write-receiver --web.enable-admin-api \
    --storage.tsdb.retention.time=5d --log.level=warn >"$DIR/prometheus.log" 2>&1 < /dev/null &
  echo $! > "$DIR/pid"
  for _ in $(seq 1 100); do
    if ready; then log "ready"; url; return 0; fi
    kill -0 "$(cat "$DIR/pid")" 2>/dev/null || { tail -20 "$DIR/prometheus.log" >&2; exit 1; }
    sleep 0.2
  done
  log "not ready after 20 s"; tail -20 "$DIR/prometheus.log" >&2; exit 1
}

stop() {
  [[ -f "$DIR/pid" ]] || return 0
  local pid; pid="$(cat "$DIR/pid")"
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  rm -f "$DIR/pid"
}

case "${1:-start}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  url) url ;;
  *) echo "usage: $0 install|start|stop|url" >&2; exit 2 ;;
esac
