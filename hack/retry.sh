# Sourced by hack/ scripts (not run). retry SECONDS DESCRIPTION CMD...: polls CMD every 0.5 s
# until it succeeds; after SECONDS (of the caller's $SECONDS clock) it calls the caller's
# die() with "timed out after ...".
retry() {
  local limit=$1 what=$2; shift 2
  local end=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < end)) || die "timed out after ${limit}s waiting for $what"
    sleep 0.5
  done
}
