#!/usr/bin/env bash
# Builds the local control-plane binaries from their published Go modules (pinned
# versions below) into a per-user cache keyed by version, and links them into
# .tools/bin of this checkout. Idempotent: a binary already in the cache is reused, so
# a fresh clone (CI's, for one) costs only the links.
#
# Bring your own binaries instead of building:
#   KUBEBUILDER_ASSETS=DIR              kube-apiserver, etcd, kubectl taken from DIR
#   AISRE_BIN_<NAME>=PATH               one binary, NAME upper-cased with '-' → '_'
#                                       (AISRE_BIN_KUBE_APISERVER, AISRE_BIN_KWOKCTL, ...)
# Usage: hack/tools.sh [name ...]      (default: every tool)
set -euo pipefail

K8S_VERSION="${AISRE_K8S_VERSION:-v1.34.4}"
ETCD_VERSION="${AISRE_ETCD_VERSION:-v3.6.16}"
KWOK_VERSION="${AISRE_KWOK_VERSION:-v0.8.0}"
HELM_VERSION="${AISRE_HELM_VERSION:-v3.19.5}"
# the real node's cluster DNS and image registry (hack/realnode/)
COREDNS_VERSION="${AISRE_COREDNS_VERSION:-v1.14.7}"
REGISTRY_VERSION="${AISRE_REGISTRY_VERSION:-v3.1.2}"
# the trace collector of the tracing tests (hack/jaeger.sh): Jaeger v2, all-in-one
JAEGER_VERSION="${AISRE_JAEGER_VERSION:-v1.75.0}"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${AISRE_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/aisre/tools}"
BIN="$ROOT/.tools/bin"
mkdir -p "$CACHE" "$BIN"
export CGO_ENABLED=0 GOFLAGS="-buildvcs=false -trimpath" GOTOOLCHAIN="${GOTOOLCHAIN:-local}"

log() { printf '[tools] %s\n' "$*" >&2; }

env_override() {  # prints the user's binary for $1, if they named one
  local var="AISRE_BIN_$(echo "$1" | tr 'a-z-' 'A-Z_')"
  if [[ -n "${!var:-}" ]]; then echo "${!var}"; return; fi
  if [[ -n "${KUBEBUILDER_ASSETS:-}" && -x "$KUBEBUILDER_ASSETS/$1" ]]; then
    echo "$KUBEBUILDER_ASSETS/$1"
  fi
}

# locked NAME CMD...: CMD while holding $CACHE/NAME.lock, so two checkouts (or two test runs)
# never build the same tool into the same directory at once; the second one waits and then
# finds the binary there.
locked() {
  local name=$1 fd; shift
  exec {fd}>"$CACHE/$name.lock"
  flock "$fd"
  "$@"
  exec {fd}>&-
}

link() {  # link NAME TARGET
  ln -sfn "$2" "$BIN/$1"
  log "$1 -> $2"
}

build_kubernetes() {  # builds every k8s command we need in one module graph
  local dir="$CACHE/kubernetes-$K8S_VERSION"
  local cmds=(kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy)
  local missing=()
  for c in "${cmds[@]}"; do [[ -x "$dir/$c" ]] || missing+=("$c"); done
  [[ ${#missing[@]} -eq 0 ]] && return 0
  log "building ${missing[*]} $K8S_VERSION (first time: large download, long build)"
  local work; work="$(mktemp -d)"
  local gomod
  gomod="$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')"
  local minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
  local staging="v0.${K8S_VERSION#v1.}"
  {
    echo "module aisre.local/k8s-build"
    echo
    grep -E '^go ' "$gomod"
    grep -E '^godebug ' "$gomod" || true
    echo
    echo "require k8s.io/kubernetes $K8S_VERSION"
    echo
    echo "replace ("
    # every `k8s.io/X => ./staging/src/k8s.io/X` becomes the published staging module
    sed -nE 's#^[[:space:]]*(k8s\.io/[^[:space:]]+)[[:space:]]+=>[[:space:]]+\./staging/src/.*#\t\1 => \1 '"$staging"'#p' "$gomod"
    echo ")"
  } > "$work/go.mod"
  ( cd "$work"
    for c in "${missing[@]}"; do go get "k8s.io/kubernetes/cmd/$c@$K8S_VERSION" >/dev/null; done
    local date; date="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    local ld="-s -w"
    for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
      ld+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
      ld+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$date"
    done
    mkdir -p "$dir.partial"
    for c in "${missing[@]}"; do
      log "go build $c"
      go build -ldflags "$ld" -o "$dir.partial/$c" "k8s.io/kubernetes/cmd/$c"
    done
  )
  mkdir -p "$dir"; mv "$dir.partial"/* "$dir/"; rmdir "$dir.partial"; rm -rf "$work"
}

# build_in_wrapper NAME VERSION PACKAGE: a wrapper module requires PACKAGE@VERSION and builds
# it. For commands whose go.mod has replace directives (etcd's server, Jaeger), which
# `go install pkg@version` refuses; their replaces do not apply, and the build proves the
# published requirements suffice.
build_in_wrapper() {
  local dir="$CACHE/$1-$2"
  [[ -x "$dir/$1" ]] && return 0
  log "building $1 $2"
  local work; work="$(mktemp -d)"
  ( cd "$work"
    printf 'module aisre.local/%s-build\n\ngo 1.24\n' "$1" > go.mod
    go get "$3@$2" >/dev/null
    mkdir -p "$dir.partial"
    go build -ldflags "-s -w" -o "$dir.partial/$1" "$3"
  )
  mkdir -p "$dir"; mv "$dir.partial/$1" "$dir/"; rmdir "$dir.partial"; rm -rf "$work"
}

# CoreDNS with the plugins of hack/tools/coredns.go only, in a wrapper module; the cache
# directory is keyed by that file too.
coredns_dir() { echo "$CACHE/coredns-$COREDNS_VERSION-$(sha256sum "$ROOT/hack/tools/coredns.go" | cut -c1-12)"; }
build_coredns() {
  local dir; dir="$(coredns_dir)"
  [[ -x "$dir/coredns" ]] && return 0
  log "building coredns $COREDNS_VERSION (the plugins of hack/tools/coredns.go)"
  local work; work="$(mktemp -d)"
  ( cd "$work"
    printf 'module aisre.local/coredns-build\n\ngo 1.24\n' > go.mod
    cp "$ROOT/hack/tools/coredns.go" main.go
    go get "github.com/coredns/coredns@$COREDNS_VERSION" >/dev/null
    mkdir -p "$dir.partial"
    go build -ldflags "-s -w" -o "$dir.partial/coredns" .
  )
  mkdir -p "$dir"; mv "$dir.partial/coredns" "$dir/"; rmdir "$dir.partial"; rm -rf "$work"
}

install_module_cmd() {  # install_module_cmd NAME VERSION PACKAGE [LDFLAGS]
  [[ -x "$CACHE/$1-$2/$1" ]] || locked "$1-$2" install_module_cmd_unlocked "$@"
}

install_module_cmd_unlocked() {
  local dir="$CACHE/$1-$2"
  [[ -x "$dir/$1" ]] && return 0
  log "go install $3@$2"
  GOBIN="$dir.partial" go install -ldflags "${4:-}" "$3@$2"
  mkdir -p "$dir"; mv "$dir.partial/$1" "$dir/"; rmdir "$dir.partial"
}

tool_path() {  # prints the cached path of NAME, building it when absent
  case "$1" in
    kube-apiserver|kube-controller-manager|kube-scheduler|kubectl|kubelet|kube-proxy)
      locked "kubernetes-$K8S_VERSION" build_kubernetes; echo "$CACHE/kubernetes-$K8S_VERSION/$1" ;;
    etcd) locked "etcd-$ETCD_VERSION" build_in_wrapper etcd "$ETCD_VERSION" go.etcd.io/etcd/server/v3
      echo "$CACHE/etcd-$ETCD_VERSION/etcd" ;;
    kwok|kwokctl)
      install_module_cmd "$1" "$KWOK_VERSION" "sigs.k8s.io/kwok/cmd/$1" \
        "-X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION"
      echo "$CACHE/$1-$KWOK_VERSION/$1" ;;
    helm)
      local minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
      install_module_cmd helm "$HELM_VERSION" helm.sh/helm/v3/cmd/helm \
        "-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$minor"
      echo "$CACHE/helm-$HELM_VERSION/helm" ;;
    coredns)
      locked "coredns-$COREDNS_VERSION" build_coredns; echo "$(coredns_dir)/coredns" ;;
    registry)
      install_module_cmd registry "$REGISTRY_VERSION" github.com/distribution/distribution/v3/cmd/registry \
        "-X github.com/distribution/distribution/v3/version.version=$REGISTRY_VERSION"
      echo "$CACHE/registry-$REGISTRY_VERSION/registry" ;;
    jaeger)  # first build: about 4 minutes on two cores
      locked "jaeger-$JAEGER_VERSION" build_in_wrapper jaeger "$JAEGER_VERSION" github.com/jaegertracing/jaeger/cmd/jaeger
      echo "$CACHE/jaeger-$JAEGER_VERSION/jaeger" ;;
    *) log "unknown tool $1"; return 2 ;;
  esac
}

ALL=(etcd kwok kwokctl helm kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy
     coredns registry)
for name in "${@:-${ALL[@]}}"; do
  override="$(env_override "$name")"
  if [[ -n "$override" ]]; then link "$name" "$override"; continue; fi
  link "$name" "$(tool_path "$name")"
done
cat > "$ROOT/.tools/versions.env" <<VERS
K8S_VERSION=$K8S_VERSION
ETCD_VERSION=$ETCD_VERSION
KWOK_VERSION=$KWOK_VERSION
HELM_VERSION=$HELM_VERSION
COREDNS_VERSION=$COREDNS_VERSION
REGISTRY_VERSION=$REGISTRY_VERSION
JAEGER_VERSION=$JAEGER_VERSION
VERS
