#!/usr/bin/env bash
# Runs a real Apache Kafka broker (KRaft combined mode: one process is broker and controller)
# on loopback for aisre's fleet tests, demo and benchmark. It comes from published artifacts
# only: the broker jars (org.apache.kafka:kafka_2.13 and its runtime dependencies) resolved
# from Maven Central by hack/kafka/pom.xml and kept in the per-user tools cache. No Docker,
# no tarball from kafka.apache.org. Idempotent: a cached install is reused; a broker already
# answering on the port is left alone.
#
# PLAINTEXT on 127.0.0.1; with --secure (or AISRE_KAFKA_SECURE=1) also SASL_SSL: TLS with a
# certificate for 127.0.0.1/localhost signed by a CA made here with the JDK's keytool, and
# SASL SCRAM-SHA-512 for the user "aisre" (a random password, kept with the certificates in
# $AISRE_KAFKA_DIR/tls). `secure-env` prints the AISRE_KAFKA_* settings that reach it.
# The log (topics) is kept in $AISRE_KAFKA_DIR/data across restarts; `stop` then `rm -rf`
# that directory for an empty broker.
#
# Usage: hack/kafka.sh install | start [--secure] | stop | url | status | secure-env
#   AISRE_KAFKA_PORT=19092              loopback broker port (default 19092)
#   AISRE_KAFKA_SECURE_PORT=19094       loopback SASL_SSL port, with --secure (default 19094)
#   AISRE_KAFKA_CONTROLLER_PORT=19093   loopback KRaft controller port (default 19093)
#   AISRE_KAFKA_DIR=DIR                 data, config, log, pid (default .cluster/kafka)
#   AISRE_KAFKA_JAVA=java               a Java 17+ runtime
#   AISRE_KAFKA_JAVA_OPTS=...           heap and such (default -Xms128m -Xmx512m)
#   AISRE_KAFKA_MAVEN_REPO=DIR          Maven local repository for install (default: a throwaway
#                                       one, so only the cache keeps the jars)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${AISRE_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/aisre/tools}"
PORT="${AISRE_KAFKA_PORT:-19092}"
CONTROLLER_PORT="${AISRE_KAFKA_CONTROLLER_PORT:-19093}"
SECURE_PORT="${AISRE_KAFKA_SECURE_PORT:-19094}"
SECURE="${AISRE_KAFKA_SECURE:-}"
DIR="$(realpath -m "${AISRE_KAFKA_DIR:-$ROOT/.cluster/kafka}")"  # absolute: pid_alive matches it
TLS="$DIR/tls"
JAVA="${AISRE_KAFKA_JAVA:-java}"
JAVA_OPTS="${AISRE_KAFKA_JAVA_OPTS:--Xms128m -Xmx512m}"
SRC="$ROOT/hack/kafka"
# The pom is the one place the version is pinned.
VERSION="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$SRC/pom.xml")"
HOME_DIR="$CACHE/kafka-$VERSION"

log() { printf '[kafka] %s\n' "$*" >&2; }

installed() { [[ -f "$HOME_DIR/lib/kafka_2.13-$VERSION.jar" ]]; }

build() {
  installed && return 0
  command -v mvn >/dev/null || { log "no mvn: install Maven (it fetches kafka_2.13 from Maven Central)"; exit 1; }
  local work; work="$(mktemp -d)"
  log "fetching org.apache.kafka:kafka_2.13:$VERSION and its runtime jars from Maven Central"
  rm -rf "$HOME_DIR.tmp" && mkdir -p "$HOME_DIR.tmp"
  if ! mvn -q -B -f "$SRC/pom.xml" -Dmaven.repo.local="${AISRE_KAFKA_MAVEN_REPO:-$work/m2}" \
      dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$HOME_DIR.tmp/lib" \
      >"$work/mvn.log" 2>&1; then
    cat "$work/mvn.log" >&2; log "mvn failed (above)"; exit 1
  fi
  rm -rf "$HOME_DIR" && mv "$HOME_DIR.tmp" "$HOME_DIR"
  rm -rf "$work"
  log "installed $HOME_DIR ($(find "$HOME_DIR/lib" -name '*.jar' | wc -l) jars, $(du -sh "$HOME_DIR" | cut -f1))"
}

# Two test runs may install at once: the second waits and then finds the cache filled.
install() {
  mkdir -p "$CACHE"
  local fd; exec {fd}>"$CACHE/kafka-$VERSION.lock"
  flock "$fd"
  build
  exec {fd}>&-
}

url() { echo "127.0.0.1:$PORT"; }

# A real Kafka request, not just an open port: ApiVersions v0 (api key 18, correlation id 1,
# client id "aisre"); the broker's reply starts with its length, our correlation id and
# error code 0.
broker_ready() {
  local reply
  # shellcheck disable=SC2016  # $1 is the inner shell's
  reply="$(timeout 3 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
    printf "\x00\x00\x00\x0f\x00\x12\x00\x00\x00\x00\x00\x01\x00\x05aisre" >&3
    head -c 10 <&3 | od -An -tx1' _ "$PORT" 2>/dev/null | tr -d ' \n')" || return 1
  [[ "${reply:8:12}" == 000000010000 ]]
}

# Our broker, by its pid file: not a zombie awaiting its reaper, nor another process that got
# the pid after a reboot.
pid_alive() {
  local pid args
  pid="$(cat "$DIR/kafka.pid" 2>/dev/null)" || return 1
  # /proc, not ps: ps cuts its output at $COLUMNS, which a caller (pytest) may set narrow.
  args="$(tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null)" || return 1
  [[ "$args" == *" kafka.Kafka $DIR/server.properties "* ]] && [[ "$(cut -d' ' -f3 "/proc/$pid/stat" 2>/dev/null)" != Z ]]
}

secure_ready() {  # the TLS listener accepts connections (a TCP connect: the handshake needs a client)
  timeout 3 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' _ "$SECURE_PORT" 2>/dev/null
}

# The CA, the broker's certificate (signed by it, for IP 127.0.0.1 and localhost) in a
# PKCS12 keystore, and the SCRAM password of the user "aisre": made once, kept in $TLS.
certificates() {
  [[ -f "$TLS/broker.p12" && -f "$TLS/ca.pem" && -f "$TLS/aisre.password" ]] && return 0
  command -v keytool >/dev/null || { log "no keytool: a JDK makes the certificates for --secure"; exit 1; }
  rm -rf "$TLS" && mkdir -p "$TLS" && chmod 700 "$TLS"
  local pass; pass="$(head -c 18 /dev/urandom | base64 | tr -d '/+=')"
  local kt=(keytool -storetype PKCS12 -storepass "$pass" -keyalg RSA -keysize 2048 -validity 3650)
  log "making a CA and the broker's certificate in $TLS (keytool)"
  "${kt[@]}" -genkeypair -alias ca -dname CN=aisre-kafka-test-ca -ext bc:c -keystore "$TLS/ca.p12" 2>/dev/null
  keytool -exportcert -rfc -alias ca -keystore "$TLS/ca.p12" -storepass "$pass" > "$TLS/ca.pem"
  "${kt[@]}" -genkeypair -alias broker -dname CN=localhost -keystore "$TLS/broker.p12" 2>/dev/null
  keytool -certreq -alias broker -keystore "$TLS/broker.p12" -storepass "$pass" |
    keytool -gencert -rfc -alias ca -keystore "$TLS/ca.p12" -storepass "$pass" -validity 3650 \
      -ext SAN=ip:127.0.0.1,dns:localhost > "$TLS/broker.pem"
  keytool -importcert -noprompt -alias ca -file "$TLS/ca.pem" -keystore "$TLS/broker.p12" -storepass "$pass" 2>/dev/null
  keytool -importcert -noprompt -alias broker -file "$TLS/broker.pem" -keystore "$TLS/broker.p12" -storepass "$pass" 2>/dev/null
  printf '%s' "$pass" > "$TLS/keystore.password"
  head -c 18 /dev/urandom | base64 | tr -d '/+=' | tr -d '\n' > "$TLS/aisre.password"
  chmod 600 "$TLS"/*
}

write_config() {
  local listeners="PLAINTEXT://127.0.0.1:$PORT" map="CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"
  [[ -n "$SECURE" ]] && listeners+=",SASL_SSL://127.0.0.1:$SECURE_PORT" && map+=",SASL_SSL:SASL_SSL"
  cat > "$DIR/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$CONTROLLER_PORT
listeners=$listeners,CONTROLLER://127.0.0.1:$CONTROLLER_PORT
advertised.listeners=$listeners
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=$map
log.dirs=$DIR/data
num.partitions=3
# One broker: every internal topic has one replica.
offsets.topic.replication.factor=1
offsets.topic.num.partitions=3
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
# aisre creates its topics itself (aisre.fleet.topics); a typo must not create one.
auto.create.topics.enable=false
PROPS
  [[ -z "$SECURE" ]] && return 0
  cat >> "$DIR/server.properties" <<PROPS
# --secure: TLS and SASL SCRAM-SHA-512 (users are SCRAM credentials in the cluster's metadata)
sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
ssl.keystore.type=PKCS12
ssl.keystore.location=$TLS/broker.p12
ssl.keystore.password=$(cat "$TLS/keystore.password")
ssl.key.password=$(cat "$TLS/keystore.password")
PROPS
}

# The SCRAM credential of "aisre" (idempotent: set again on each start), through the
# PLAINTEXT listener on loopback.
scram_user() {
  (java_cmd kafka.admin.ConfigCommand --bootstrap-server "$(url)" --alter --entity-type users --entity-name aisre \
    --add-config "SCRAM-SHA-512=[iterations=4096,password=$(cat "$TLS/aisre.password")]") >"$DIR/scram.log" 2>&1 ||
    { cat "$DIR/scram.log" >&2; log "could not set the SCRAM credential of aisre"; exit 1; }
}

secure_env() {
  grep -q '^listeners=.*SASL_SSL' "$DIR/server.properties" 2>/dev/null && secure_ready ||
    { log "no SASL_SSL listener at 127.0.0.1:$SECURE_PORT: hack/kafka.sh stop, then start --secure"; exit 1; }
  cat <<ENV
AISRE_KAFKA_BOOTSTRAP=127.0.0.1:$SECURE_PORT
AISRE_KAFKA_SECURITY_PROTOCOL=SASL_SSL
AISRE_KAFKA_SASL_MECHANISM=SCRAM-SHA-512
AISRE_KAFKA_SASL_USERNAME=aisre
AISRE_KAFKA_SASL_PASSWORD_FILE=$TLS/aisre.password
AISRE_KAFKA_CA_FILE=$TLS/ca.pem
ENV
}

java_cmd() {  # java_cmd MAIN ARGS...: the broker's classpath and logging (exec: keeps the pid)
  # shellcheck disable=SC2086  # JAVA_OPTS is a list of options
  exec ${SETSID:-} "$JAVA" $JAVA_OPTS -XX:+UseG1GC -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$SRC/log4j2.properties" -Dlog4j2.disable.jmx=true \
    -cp "$HOME_DIR/lib/*" "$@"
}

start() {
  if broker_ready; then
    if [[ -n "$SECURE" ]] && ! secure_ready; then
      log "already running at $(url) without the SASL_SSL listener: hack/kafka.sh stop, then start --secure"; exit 1
    fi
    log "already running at $(url)"; url; return 0
  fi
  install
  mkdir -p "$DIR"
  if pid_alive; then
    log "pid $(cat "$DIR/kafka.pid") is still starting; waiting for it"
  else
    [[ -n "$SECURE" ]] && certificates
    write_config
    if [[ ! -f "$DIR/data/meta.properties" ]]; then
      local id; id="$( (java_cmd kafka.tools.StorageTool random-uuid) | tail -1)"
      log "formatting $DIR/data (cluster id $id)"
      (java_cmd kafka.tools.StorageTool format -t "$id" -c "$DIR/server.properties") >"$DIR/format.log" 2>&1 ||
        { cat "$DIR/format.log" >&2; exit 1; }
    fi
    log "starting Kafka $VERSION on $(url) (data in $DIR/data, log $DIR/kafka.log)"
    # setsid + nohup: the broker outlives this script (it is stopped with `stop`, by its pid).
    # The subshell execs them and they exec java, so $! is the broker's own pid.
    (SETSID="setsid nohup" java_cmd kafka.Kafka "$DIR/server.properties") </dev/null >"$DIR/kafka.log" 2>&1 &
    echo $! > "$DIR/kafka.pid"
    disown
  fi
  for _ in $(seq 1 240); do
    if grep -q 'Kafka Server started' "$DIR/kafka.log" 2>/dev/null && broker_ready; then
      if [[ -n "$SECURE" ]]; then scram_user; log "SASL_SSL (SCRAM-SHA-512) on 127.0.0.1:$SECURE_PORT"; fi
      log "ready (pid $(cat "$DIR/kafka.pid"))"; url; return 0
    fi
    pid_alive || { log "exited during start:"; tail -20 "$DIR/kafka.log" >&2; rm -f "$DIR/kafka.pid"; exit 1; }
    sleep 0.25
  done
  log "not ready after 60 s (left running: hack/kafka.sh stop)"; tail -20 "$DIR/kafka.log" >&2; exit 1
}

stop() {
  if pid_alive; then
    local pid; pid="$(cat "$DIR/kafka.pid")"
    kill "$pid" 2>/dev/null || true
    # A controlled shutdown flushes the log (a few seconds); KILL only a hung one.
    for _ in $(seq 1 300); do pid_alive || break; sleep 0.1; done
    if pid_alive; then log "pid $pid ignored TERM for 30 s: killing it"; kill -KILL "$pid" 2>/dev/null || true; fi
  fi
  rm -f "$DIR/kafka.pid"
}

status() {
  if broker_ready; then
    echo "running at $(url)$(pid_alive && echo " (pid $(cat "$DIR/kafka.pid"))")"
  else
    echo "not running"; return 1
  fi
}

[[ "${2:-}" == --secure ]] && SECURE=1
case "${1:-start}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  url) url ;;
  status) status ;;
  secure-env) secure_env ;;
  *) echo "usage: $0 install|start [--secure]|stop|url|status|secure-env" >&2; exit 2 ;;
esac
