#!/usr/bin/env bash
# Installs knode on a node and joins it to an existing cluster (a real kube-apiserver or a
# knode control plane) given a kubeconfig: the built project under /opt/knode, `knode` on the
# PATH, the CNI plugin, config files in /etc/knode (existing ones are kept), and the systemd
# units, which are enabled and started when systemd runs.
#
#   systemd/install.sh --kubeconfig FILE [--node-name NAME] [--with-controlplane] [--link] [--root DIR]
#
# --root DIR installs into a staging root instead of / (nothing is started); --link hard-links
# the files of this checkout into /opt/knode instead of copying them (same filesystem only).
set -euo pipefail

usage() { sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }

root=""; kubeconfig=""; node_name=""; with_controlplane=0; link=0
while [ $# -gt 0 ]; do
  case "$1" in
    --root) root=${2:?}; shift 2 ;;
    --kubeconfig) kubeconfig=${2:?}; shift 2 ;;
    --node-name) node_name=${2:?}; shift 2 ;;
    --with-controlplane) with_controlplane=1; shift ;;
    --link) link=1; shift ;;
    -h|--help) usage ;;
    *) echo "install.sh: unknown argument $1" >&2; usage ;;
  esac
done
[ -n "$kubeconfig" ] || [ "$with_controlplane" = 1 ] || { echo "install.sh: --kubeconfig is required to join a cluster" >&2; exit 2; }
[ -z "$kubeconfig" ] || [ -r "$kubeconfig" ] || { echo "install.sh: cannot read kubeconfig $kubeconfig" >&2; exit 2; }

src=$(cd "$(dirname "$0")/.." && pwd)
[ -f "$src/dist/bin/knode.js" ] || { echo "install.sh: build first (npm run build in $src)" >&2; exit 1; }

opt="$root/opt/knode"; etc="$root/etc/knode"; units="$root/etc/systemd/system"
mkdir -p "$root/opt" "$root/usr/local/bin" "$etc" "$units" "$root/etc/default" "$root/etc/kubernetes/manifests"

echo "installing knode from $src into ${root:-/}"
copy=(cp -a); [ "$link" = 1 ] && copy=(cp -al)
rm -rf "$opt.new" && mkdir -p "$opt.new"
"${copy[@]}" "$src/package.json" "$src/package-lock.json" "$src/bin" "$src/dist" "$src/node_modules" "$src/systemd" "$src/README.md" "$opt.new/"
rm -rf "$opt" && mv "$opt.new" "$opt"
# Relative, so that it resolves the same under a staging root.
ln -sfn ../../../opt/knode/bin/knode "$root/usr/local/bin/knode"

# Config files: written once, never overwritten (an operator's edits survive a re-install).
write_once() { [ -e "$1" ] || cat > "$1"; }
if [ -n "$kubeconfig" ]; then
  for name in kubelet proxy overlay dns; do [ -e "$etc/$name.kubeconfig" ] || install -m 0600 "$kubeconfig" "$etc/$name.kubeconfig"; done
fi
# The kubelet's cgroup driver must be Docker's (the agent refuses to start otherwise): on this
# machine, ask Docker, as kubeadm asks the runtime; staged installs (--root) get the kubelet default.
cgroup_driver=cgroupfs
if [ -z "$root" ] && command -v docker >/dev/null; then
  case "$(docker info --format '{{.CgroupDriver}}' 2>/dev/null || true)" in systemd) cgroup_driver=systemd ;; esac
fi
write_once "$etc/kubelet-config.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
staticPodPath: /etc/kubernetes/manifests
containerRuntimeEndpoint: unix:///var/run/docker.sock
cgroupDriver: $cgroup_driver
clusterDomain: cluster.local
clusterDNS: [10.96.0.10]
YAML
write_once "$etc/kube-proxy-config.yaml" <<YAML
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clusterCIDR: 10.244.0.0/16
YAML
write_once "$etc/net-conf.json" <<JSON
{"Network": "10.244.0.0/16", "Backend": {"Type": "vxlan", "VNI": 1, "Port": 8472}}
JSON
if [ -n "$node_name" ]; then
  for unit in agent proxy overlay dns; do
    write_once "$root/etc/default/knode-$unit" <<< "KNODE_$(echo "$unit" | tr a-z A-Z)_ARGS=--hostname-override=$node_name"
  done
fi

services=(knode-overlay knode-agent knode-proxy knode-dns)
[ "$with_controlplane" = 1 ] && services=(knode-controlplane "${services[@]}")
for service in "${services[@]}"; do install -m 0644 "$src/systemd/$service.service" "$units/$service.service"; done

if [ -z "$root" ]; then
  "$root/usr/local/bin/knode" install-cni --bin-dir /opt/cni/bin --conf-dir /etc/cni/net.d
  if [ -d /run/systemd/system ]; then
    systemctl daemon-reload
    systemctl enable --now "${services[@]/%/.service}"
    echo "started: ${services[*]}"
  else
    echo "systemd is not running here: start the services by hand (${services[*]})"
  fi
else
  echo "staged into $root (nothing started)"
fi
