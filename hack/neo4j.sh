#!/usr/bin/env bash
# Runs a real Neo4j (Community 5.26 LTS, the last line on Java 17) on loopback for aisre's
# tests, demo and benchmark. It comes from published artifacts only: Neo4j's test harness
# (org.neo4j.test:neo4j-harness) resolved from Maven Central by hack/neo4j/pom.xml, and the
# small launcher hack/neo4j/Launcher.java, both kept in the per-user tools cache. No Docker,
# no tarball from neo4j.com. Idempotent: a cached install is reused; a server already
# answering Bolt on the port is left alone.
#
# Bolt only (no HTTP), on 127.0.0.1 only; user neo4j with AISRE_NEO4J_PASSWORD. The data is
# kept in $AISRE_NEO4J_DIR/data across restarts; `stop` then `rm -rf` that directory for an
# empty database.
#
# Usage: hack/neo4j.sh install | start | stop | url | status
#   AISRE_NEO4J_PORT=7688            loopback Bolt port (default 7688)
#   AISRE_NEO4J_DIR=DIR              data, logs, pid (default .cluster/neo4j)
#   AISRE_NEO4J_PASSWORD=password    password of user neo4j (default "password"; empty: no auth)
#   AISRE_NEO4J_JAVA=java            a Java 17 or 21 runtime (javac beside it, for install)
#   AISRE_NEO4J_JAVA_OPTS=...        heap and such (default -Xms128m -Xmx512m)
#   AISRE_NEO4J_MAVEN_REPO=DIR       Maven local repository for install (default: a throwaway
#                                    one, so only the cache keeps the jars)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${AISRE_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/aisre/tools}"
PORT="${AISRE_NEO4J_PORT:-7688}"
DIR="$(realpath -m "${AISRE_NEO4J_DIR:-$ROOT/.cluster/neo4j}")"  # absolute: pid_alive matches it
PASSWORD="${AISRE_NEO4J_PASSWORD-password}"
JAVA="${AISRE_NEO4J_JAVA:-java}"
JAVA_OPTS="${AISRE_NEO4J_JAVA_OPTS:--Xms128m -Xmx512m}"
SRC="$ROOT/hack/neo4j"
# The pom is the one place the version is pinned.
VERSION="$(sed -n 's:.*<neo4j.version>\(.*\)</neo4j.version>.*:\1:p' "$SRC/pom.xml")"
HOME_DIR="$CACHE/neo4j-harness-$VERSION"

log() { printf '[neo4j] %s\n' "$*" >&2; }

javac_bin() { echo "$(dirname "$(readlink -f "$(command -v "$JAVA")")")/javac"; }

# Launcher.class is rebuilt (without fetching again) when Launcher.java changes.
launcher_stamp() { sha256sum "$SRC/Launcher.java" | cut -d' ' -f1; }

installed() {
  [[ -f "$HOME_DIR/lib/neo4j-harness-$VERSION.jar" && -f "$HOME_DIR/Launcher.class" ]] &&
    [[ "$(cat "$HOME_DIR/Launcher.sha256" 2>/dev/null)" == "$(launcher_stamp)" ]]
}

compile_launcher() {  # compile_launcher DEST: Launcher.class and its stamp into DEST
  local out; out="$(mktemp -d)"
  "$(javac_bin)" --release 17 -nowarn -d "$out" -cp "$1/lib/*" "$SRC/Launcher.java"
  launcher_stamp > "$out/Launcher.sha256"
  mv -f "$out/Launcher.class" "$out/Launcher.sha256" "$1/"
  rm -rf "$out"
}

build() {
  installed && return 0
  if [[ -f "$HOME_DIR/lib/neo4j-harness-$VERSION.jar" ]]; then
    log "Launcher.java changed: recompiling it"
    compile_launcher "$HOME_DIR"
    return 0
  fi
  command -v mvn >/dev/null || { log "no mvn: install Maven (it fetches neo4j-harness from Maven Central)"; exit 1; }
  local work; work="$(mktemp -d)"
  log "fetching org.neo4j.test:neo4j-harness:$VERSION and its runtime jars from Maven Central"
  rm -rf "$HOME_DIR.tmp" && mkdir -p "$HOME_DIR.tmp"
  # Maven's output is shown only when it fails (quiet, it still prints colour resets).
  if ! mvn -q -B -f "$SRC/pom.xml" -Dmaven.repo.local="${AISRE_NEO4J_MAVEN_REPO:-$work/m2}" \
      dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$HOME_DIR.tmp/lib" \
      >"$work/mvn.log" 2>&1; then
    cat "$work/mvn.log" >&2; log "mvn failed (above)"; exit 1
  fi
  compile_launcher "$HOME_DIR.tmp"
  rm -rf "$HOME_DIR" && mv "$HOME_DIR.tmp" "$HOME_DIR"
  rm -rf "$work"
  log "installed $HOME_DIR ($(find "$HOME_DIR/lib" -name '*.jar' | wc -l) jars, $(du -sh "$HOME_DIR" | cut -f1))"
}

# Two test runs may install at once: the second waits and then finds the cache filled.
install() {
  mkdir -p "$CACHE"
  local fd; exec {fd}>"$CACHE/neo4j-harness-$VERSION.lock"
  flock "$fd"
  build
  exec {fd}>&-
}

url() { echo "bolt://127.0.0.1:$PORT"; }

# A real Bolt handshake (magic 0x6060B017, offering 5.0-5.8 and 4.4), not just an open port:
# the server answers with the version it picked, 00000000 meaning none.
bolt_ready() {
  local reply
  # shellcheck disable=SC2016  # $1 is the inner shell's
  reply="$(timeout 3 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
    printf "\x60\x60\xb0\x17\x00\x08\x08\x05\x00\x00\x04\x04\x00\x00\x00\x00\x00\x00\x00\x00" >&3
    head -c 4 <&3 | od -An -tx1' _ "$PORT" 2>/dev/null | tr -d ' \n')" || return 1
  [[ -n "$reply" && "$reply" != 00000000 ]]
}

# Our launcher, by its pid file: not a zombie awaiting its reaper (kill -0 would say alive), nor
# another process that got the pid after a reboot.
pid_alive() {
  local pid args
  pid="$(cat "$DIR/neo4j.pid" 2>/dev/null)" || return 1
  # /proc, not ps: ps cuts its output at $COLUMNS, which a caller (pytest) may set narrow.
  args="$(tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null)" || return 1
  [[ "$args" == *" Launcher $DIR $PORT " ]] && [[ "$(cut -d' ' -f3 "/proc/$pid/stat" 2>/dev/null)" != Z ]]
}

start() {
  if bolt_ready; then log "already running at $(url)"; url; return 0; fi
  install
  mkdir -p "$DIR"
  if pid_alive; then
    log "pid $(cat "$DIR/neo4j.pid") is still starting; waiting for it"
  else
    # The harness's scratch folder of a killed run is never reused; drop it.
    rm -rf "$DIR/run"
    log "starting Neo4j $VERSION on $(url) (data in $DIR/data, log $DIR/neo4j.log)"
    # setsid + nohup: the server outlives this script (it is stopped with `stop`, by its pid).
    # The --add-opens are those Neo4j's own launcher passes: without them the page cache and
    # the transaction logs fall back to slower paths (debug.log warns).
    # shellcheck disable=SC2086  # JAVA_OPTS is a list of options
    AISRE_NEO4J_PASSWORD="$PASSWORD" setsid nohup "$JAVA" $JAVA_OPTS \
      -XX:+UseG1GC -XX:-OmitStackTraceInFastThrow -XX:+DisableExplicitGC \
      -Djdk.nio.maxCachedBufferSize=1024 -Dio.netty.tryReflectionSetAccessible=true \
      -Dlog4j2.disable.jmx=true \
      --add-opens=java.base/java.nio=ALL-UNNAMED --add-opens=java.base/java.io=ALL-UNNAMED \
      --add-opens=java.base/sun.nio.ch=ALL-UNNAMED \
      -cp "$HOME_DIR/lib/*:$HOME_DIR" Launcher "$DIR" "$PORT" \
      >"$DIR/neo4j.log" 2>&1 </dev/null &
    echo $! > "$DIR/neo4j.pid"
  fi
  for _ in $(seq 1 240); do
    if grep -q '^neo4j ready' "$DIR/neo4j.log" 2>/dev/null && bolt_ready; then
      log "ready (pid $(cat "$DIR/neo4j.pid"))"; url; return 0
    fi
    pid_alive || { log "exited during start:"; tail -20 "$DIR/neo4j.log" >&2; rm -f "$DIR/neo4j.pid"; exit 1; }
    sleep 0.5
  done
  log "not ready after 120 s (left running: hack/neo4j.sh stop)"; tail -20 "$DIR/neo4j.log" >&2; exit 1
}

stop() {
  if pid_alive; then
    local pid; pid="$(cat "$DIR/neo4j.pid")"
    kill "$pid" 2>/dev/null || true
    # A clean shutdown checkpoints the store (a few seconds); KILL only a hung one.
    for _ in $(seq 1 300); do pid_alive || break; sleep 0.1; done
    if pid_alive; then log "pid $pid ignored TERM for 30 s: killing it"; kill -KILL "$pid" 2>/dev/null || true; fi
  fi
  rm -f "$DIR/neo4j.pid"
}

status() {
  if bolt_ready; then
    echo "running at $(url)$(pid_alive && echo " (pid $(cat "$DIR/neo4j.pid"))")"
  else
    echo "not running"; return 1
  fi
}

case "${1:-start}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  url) url ;;
  status) status ;;
  *) echo "usage: $0 install|start|stop|url|status" >&2; exit 2 ;;
esac
