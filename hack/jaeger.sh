#!/usr/bin/env bash
# Runs a real trace collector on loopback for aisre's tracing tests: Jaeger v2 all-in-one
# (an OpenTelemetry Collector distribution: OTLP receiver, in-memory storage, its query
# HTTP API), built by hack/tools.sh from its published Go module into the per-user tools
# cache. Idempotent: a cached binary is reused; a Jaeger already answering on the query
# port is left alone.
#
# Everything listens on 127.0.0.1 only: OTLP/HTTP (send spans to `url otlp`), the query API
# (`url query`: /api/traces/<id>, /api/services) and the health check.
#
# Usage: hack/jaeger.sh install | start | stop | url [otlp|query] | status
#   AISRE_JAEGER_BINARY=PATH        use this jaeger binary instead of building one
#   AISRE_JAEGER_OTLP_PORT=4328     OTLP/HTTP port (default 4328, beside the usual 4318)
#   AISRE_JAEGER_QUERY_PORT=16696   query HTTP port (default 16696)
#   AISRE_JAEGER_DIR=DIR            config, pid and log (default .cluster/jaeger)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OTLP_PORT="${AISRE_JAEGER_OTLP_PORT:-4328}"
QUERY_PORT="${AISRE_JAEGER_QUERY_PORT:-16696}"
HEALTH_PORT="${AISRE_JAEGER_HEALTH_PORT:-13143}"
DIR="$(realpath -m "${AISRE_JAEGER_DIR:-$ROOT/.cluster/jaeger}")"

log() { printf '[jaeger] %s\n' "$*" >&2; }

binary() {
  if [[ -n "${AISRE_JAEGER_BINARY:-}" ]]; then echo "$AISRE_JAEGER_BINARY"; return; fi
  bash "$ROOT/hack/tools.sh" jaeger >&2
  readlink -f "$ROOT/.tools/bin/jaeger"
}

url() {
  case "${1:-query}" in
    otlp) echo "http://127.0.0.1:$OTLP_PORT" ;;
    query) echo "http://127.0.0.1:$QUERY_PORT" ;;
    *) echo "url: otlp or query" >&2; return 2 ;;
  esac
}

ready() { curl -fsS -m 2 "http://127.0.0.1:$HEALTH_PORT/status" >/dev/null 2>&1 && curl -fsS -m 2 "$(url query)/api/services" >/dev/null 2>&1; }

config() {
  cat <<CFG
# Written by hack/jaeger.sh: Jaeger v2 all-in-one, loopback only, traces kept in memory.
service:
  extensions: [jaeger_storage, jaeger_query, healthcheckv2]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics: {level: none}
    logs: {level: warn}
extensions:
  healthcheckv2:
    use_v2: true
    http: {endpoint: "127.0.0.1:$HEALTH_PORT"}
  jaeger_storage:
    backends:
      memstore: {memory: {max_traces: 20000}}
  jaeger_query:
    storage: {traces: memstore}
    http: {endpoint: "127.0.0.1:$QUERY_PORT"}
    grpc: {endpoint: "127.0.0.1:$((QUERY_PORT - 1))"}
receivers:
  otlp:
    protocols:
      http: {endpoint: "127.0.0.1:$OTLP_PORT"}
processors:
  batch: {timeout: 200ms}
exporters:
  jaeger_storage_exporter: {trace_storage: memstore}
CFG
}

start() {
  if ready; then log "already running at $(url query)"; url query; return 0; fi
  local bin; bin="$(binary)"
  mkdir -p "$DIR"
  config > "$DIR/config.yaml"
  log "starting $bin: OTLP $(url otlp), query $(url query)"
  # setsid: the server outlives this script (it is stopped with `stop`, by its pid).
  setsid "$bin" --config "file:$DIR/config.yaml" >"$DIR/jaeger.log" 2>&1 < /dev/null &
  echo $! > "$DIR/pid"
  for _ in $(seq 1 150); do
    if ready; then log "ready"; url query; return 0; fi
    kill -0 "$(cat "$DIR/pid")" 2>/dev/null || { tail -20 "$DIR/jaeger.log" >&2; exit 1; }
    sleep 0.2
  done
  log "not ready after 30 s"; tail -20 "$DIR/jaeger.log" >&2; exit 1
}

stop() {
  [[ -f "$DIR/pid" ]] || return 0
  local pid; pid="$(cat "$DIR/pid")"
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  rm -f "$DIR/pid"
}

status() {
  if ready; then log "running at $(url query)"; return 0; fi
  log "not running"; return 1
}

case "${1:-start}" in
  install) binary >/dev/null ;;
  start) start ;;
  stop) stop ;;
  url) url "${2:-query}" ;;
  status) status ;;
  *) echo "usage: $0 install|start|stop|url [otlp|query]|status" >&2; exit 2 ;;
esac
