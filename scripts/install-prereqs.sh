#!/usr/bin/env bash
# Installs what knode and its tests need on a Debian machine, only where something is missing,
# so that a warm machine pays nothing. Run as root.
set -euo pipefail

need_node_major=20
node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$node_major" -lt "$need_node_major" ]; then
  echo "knode needs Node.js >= $need_node_major on the PATH (found: $(node --version 2>/dev/null || echo none))" >&2
  exit 1
fi

# command → Debian package that provides it
declare -A pkg_of=(
  [dockerd]=docker.io
  [iptables]=iptables
  [iptables-legacy]=iptables
  [ipset]=ipset
  [conntrack]=conntrack
  [ip]=iproute2
  [busybox]=busybox-static
  [etcd]=etcd-server
  [openssl]=openssl
  [modprobe]=kmod
  [ping]=iputils-ping
  [curl]=curl
  [iperf3]=iperf3
  [ethtool]=ethtool
  [systemd-analyze]=systemd
  [docker-registry]=docker-registry
  [htpasswd]=apache2-utils
  [nsenter]=util-linux
  [socat]=socat
  [ipvsadm]=ipvsadm
  [qemu-system-x86_64]=qemu-system-x86
  [cpio]=cpio
  [dpkg-deb]=dpkg
  [dig]=dnsutils
  [dnsperf]=dnsperf
  [dnsmasq]=dnsmasq-base
  [nft]=nftables
  [debootstrap]=debootstrap
  [systemd-nspawn]=systemd-container
  [systemd-notify]=systemd
  [flock]=util-linux
)
missing=()
for cmd in "${!pkg_of[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${pkg_of[$cmd]}")
done
# The official Python client is a test peer of the control plane (a client no one here wrote).
/usr/bin/python3 -c 'import kubernetes' >/dev/null 2>&1 || missing+=(python3-kubernetes)
# The reference CNI plugins are test peers (bridge, host-local, portmap, loopback).
[ -x /usr/lib/cni/bridge ] || missing+=(containernetworking-plugins)
# busybox must be the static build: it is copied into container images.
if command -v busybox >/dev/null 2>&1 && ldd "$(command -v busybox)" >/dev/null 2>&1; then
  missing+=(busybox-static)
fi

if [ ${#missing[@]} -gt 0 ]; then
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  echo "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
