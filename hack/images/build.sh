#!/usr/bin/env bash
# Builds the real node's images from what is on this machine (no outside registry is
# reachable) into OCI image layouts under .tools/images/<name>/ (layout/ and image.tar):
#   pause           registry.local/pause:1           the sandbox container (hack/images/pause)
#   busybox         registry.local/busybox:1         Debian's busybox-static, a link per applet
#   faultapp        registry.local/faultapp:1        the test workload (hack/images/faultapp)
#   faultapp-arm64  registry.local/faultapp:1-arm64  the same for arm64: "exec format error" here
# Idempotent: an image whose inputs (sources, binaries, this script) did not change is not
# rebuilt; the output is reproducible, so its digest is stable across machines.
# Usage: hack/images/build.sh [name ...]     (default: every image)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
SRC="$ROOT/hack/images"
OUT="$ROOT/.tools/images"
BUSYBOX="${AISRE_BUSYBOX_STATIC:-/bin/busybox}"
export CGO_ENABLED=0 GOFLAGS="-buildvcs=false -trimpath" GOTOOLCHAIN="${GOTOOLCHAIN:-local}"

log() { printf '[images] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# up_to_date NAME FILE...: true when the recorded hash of the inputs matches; else records
# the new hash for finish().
up_to_date() {
  local name=$1; shift
  local sum; sum="$(cat "$@" "${BASH_SOURCE[0]}" "$SRC/oci.py" | sha256sum | cut -d' ' -f1)"
  [[ -f "$OUT/$name/image.tar" && "$(cat "$OUT/$name/inputs.sha256" 2>/dev/null)" == "$sum" ]] && return 0
  echo "$sum" >"$OUT/$name/inputs.sha256.new"
  return 1
}

finish() {  # finish NAME: the new layout replaces the old one
  mv "$OUT/$1/inputs.sha256.new" "$OUT/$1/inputs.sha256"
  log "$(cat "$OUT/$1/ref")"
}

go_binary() {  # go_binary PACKAGE ARCH OUTPUT
  (cd "$SRC" && GOARCH="$2" go build -ldflags "-s -w" -o "$3" "./$1")
}

# go_image NAME PACKAGE ARCH REF [oci.py options]: a one-binary image of a Go program
go_image() {
  local name=$1 pkg=$2 arch=$3 ref=$4; shift 4
  mkdir -p "$OUT/$name"
  local bin="$OUT/$name/$pkg-$arch"
  go_binary "$pkg" "$arch" "$bin"
  up_to_date "$name" "$bin" && return 0
  python3 "$SRC/oci.py" --out "$OUT/$name/layout" --tar "$OUT/$name/image.tar" \
    --ref "$ref" --arch "$arch" --file "/$pkg=$bin:0755" --entrypoint "/$pkg" "$@" >"$OUT/$name/ref"
  finish "$name"
}

build_busybox() {
  [[ -x "$BUSYBOX" ]] && "$BUSYBOX" --list-full >/dev/null 2>&1 \
    || die "$BUSYBOX is not a busybox binary (Debian package busybox-static; hack/realnode/deps.sh installs it)"
  mkdir -p "$OUT/busybox"
  local etc="$OUT/busybox/etc"
  mkdir -p "$etc"
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$etc/group"
  up_to_date busybox "$BUSYBOX" "$etc/passwd" "$etc/group" && return 0
  local args=(--file "/bin/busybox=$BUSYBOX:0755" --file "/etc/passwd=$etc/passwd"
              --file "/etc/group=$etc/group" --dir /tmp:1777 --dir /root:0700)
  local applet
  while read -r applet; do
    [[ "$applet" == bin/busybox ]] && continue
    args+=(--link "/$applet=/bin/busybox")
  done < <("$BUSYBOX" --list-full)
  python3 "$SRC/oci.py" --out "$OUT/busybox/layout" --tar "$OUT/busybox/image.tar" \
    --ref registry.local/busybox:1 --arch amd64 "${args[@]}" --cmd sh >"$OUT/busybox/ref"
  finish busybox
}

command -v go >/dev/null || die "no go toolchain on PATH"
names=("$@")
((${#names[@]})) || names=(pause busybox faultapp faultapp-arm64)
for name in "${names[@]}"; do
  case "$name" in
    pause) go_image pause pause amd64 registry.local/pause:1 --user 65535:65535 ;;
    busybox) build_busybox ;;
    faultapp) go_image faultapp faultapp amd64 registry.local/faultapp:1 ;;
    faultapp-arm64) go_image faultapp-arm64 faultapp arm64 registry.local/faultapp:1-arm64 ;;
    *) die "unknown image $name" ;;
  esac
done
