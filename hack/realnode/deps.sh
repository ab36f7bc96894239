#!/usr/bin/env bash
# Checks that this machine can run the real node and installs what it needs from Debian:
# containerd, runc, the CNI plugins, busybox-static (for the busybox image), iptables and
# conntrack (kube-proxy). Versions are pinned; when the archive no longer has a pinned
# version (a point release replaced it), the current one is installed and said so.
# Nothing is started: the packages' services need systemd, which these machines do not run.
#
# Usage: hack/realnode/deps.sh check     exit 0, or 1 with the reason on stderr
#        hack/realnode/deps.sh install   check, then install what is missing
set -euo pipefail

PACKAGES=(
  "containerd=1.6.20~ds1-1+deb12u3"
  "runc=1.1.5+ds1-1+deb12u1"
  "containernetworking-plugins=1.1.1+ds1-3+b5"
  "busybox-static=1:1.35.0-4+deb12u1+b1"
  "iptables=1.8.9-2"
  "conntrack=1:1.4.7-1+b2"
)
# what each package must provide
declare -A PROVIDES=(
  [containerd]=/usr/bin/containerd [runc]=/usr/sbin/runc
  [containernetworking-plugins]=/usr/lib/cni/bridge [busybox-static]=/bin/busybox
  [iptables]=/usr/sbin/iptables [conntrack]=/usr/sbin/conntrack
)

log() { printf '[realnode-deps] %s\n' "$*" >&2; }
unable() { log "the real node cannot run on this machine: $*"; exit 1; }

check_machine() {
  [[ "$(uname -s)" == Linux ]] || unable "not Linux"
  [[ "$(id -u)" == 0 ]] || unable "not root (containerd, runc and the kubelet need root)"
  local c
  if [[ -f /sys/fs/cgroup/cgroup.controllers ]]; then
    for c in cpu memory pids; do
      grep -qw "$c" /sys/fs/cgroup/cgroup.controllers || unable "cgroup v2 controller $c not available"
    done
  else
    for c in cpu cpuacct cpuset memory pids devices freezer; do
      grep -qE "^$c\s.*\s1$" /proc/cgroups && [[ -d "/sys/fs/cgroup/$c" ]] \
        || unable "cgroup v1 controller $c not mounted under /sys/fs/cgroup"
    done
  fi
  grep -qw overlay /proc/filesystems || unable "no overlay filesystem in the kernel"
  command -v ip >/dev/null || unable "no ip command (iproute2)"
  command -v unshare >/dev/null && command -v nsenter >/dev/null || unable "no unshare/nsenter (util-linux)"
  # a bridge and a network namespace are what a pod network needs
  ip link add name aisre-probe0 type bridge 2>/dev/null || unable "cannot create a Linux bridge"
  ip link del aisre-probe0
  unshare --net true 2>/dev/null || unable "cannot create a network namespace"
}

missing_packages() {
  local spec name
  for spec in "${PACKAGES[@]}"; do
    name="${spec%%=*}"
    [[ -x "${PROVIDES[$name]}" ]] || echo "$spec"
  done
}

install_packages() {
  local want=("$@") names=() spec
  command -v apt-get >/dev/null || unable "no apt-get; install ${want[*]%%=*} by hand"
  for spec in "${want[@]}"; do names+=("${spec%%=*}"); done
  log "installing ${want[*]}"
  apt_install() { DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >&2; }
  if apt_install "${want[@]}"; then return 0; fi
  log "the pinned versions did not install; refreshing the package lists"
  apt-get update -q >&2 || true
  apt_install "${want[@]}" && return 0
  log "WARNING: pinned versions unavailable; installing the archive's current ${names[*]}"
  apt_install "${names[@]}" || unable "apt-get install ${names[*]} failed"
}

case "${1:-install}" in
  check)
    check_machine
    mapfile -t missing < <(missing_packages)
    ((${#missing[@]} == 0)) || unable "packages missing: ${missing[*]%%=*} (hack/realnode/deps.sh install)"
    ;;
  install)
    check_machine
    mapfile -t missing < <(missing_packages)
    ((${#missing[@]} == 0)) || install_packages "${missing[@]}"
    mapfile -t missing < <(missing_packages)
    ((${#missing[@]} == 0)) || unable "still missing after install: ${missing[*]%%=*}"
    ;;
  *) log "usage: $0 check|install"; exit 2 ;;
esac
