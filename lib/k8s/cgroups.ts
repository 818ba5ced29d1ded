/**
 * Pod cgroup naming under the QoS hierarchy (pkg/kubelet/cm/qos_container_manager_linux.go,
 * pod_container_manager_linux.go, cgroup_manager_linux.go): with the cgroupfs driver
 * `<root>/kubepods[/burstable|/besteffort]/pod<uid>`; with the systemd driver the slices
 * `kubepods[-burstable|-besteffort]-pod<uid with _>.slice`.
 */
import type { QosClass } from './qos.js';

type CgroupDriver = 'cgroupfs' | 'systemd';

function qosTier(qos: QosClass): '' | 'burstable' | 'besteffort' {
  if (qos === 'Guaranteed') return '';
  return qos === 'Burstable' ? 'burstable' : 'besteffort';
}

/** The pod's cgroup parent (cgroupfs path or systemd slice name). */
export function podCgroupParent(qos: QosClass, podUid: string, driver: CgroupDriver, root = ''): string {
  const tier = qosTier(qos);
  if (driver === 'systemd') {
    const uid = podUid.replace(/-/g, '_');
    return tier ? `kubepods-${tier}-pod${uid}.slice` : `kubepods-pod${uid}.slice`;
  }
  const base = `${root.replace(/\/$/, '')}/kubepods`;
  return tier ? `${base}/${tier}/pod${podUid}` : `${base}/pod${podUid}`;
}

/**
 * Where the pod's cgroup is in the cgroup tree (the directory whose files hold its limits): the
 * cgroupfs path, or with the systemd driver the slice's place (expandSlice).
 */
export function podCgroupPath(qos: QosClass, podUid: string, driver: CgroupDriver, root = ''): string {
  const parent = podCgroupParent(qos, podUid, driver, root);
  return driver === 'systemd' ? `/${expandSlice(parent)}` : parent;
}

/**
 * Where systemd puts a slice in the cgroup tree: a dash in a slice name means nesting
 * (systemd.slice(5)), so "kubepods-burstable-pod<uid>.slice" lives at
 * kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid>.slice, as the kubelet's
 * systemd cgroup driver expects (cgroup_manager_linux.go ExpandSlice).
 */
export function expandSlice(slice: string): string {
  if (!slice.endsWith('.slice') || slice.includes('/')) throw new Error(`"${slice}" is not a systemd slice name`);
  const parts = slice.slice(0, -'.slice'.length).split('-');
  if (parts.some((part) => part === '')) throw new Error(`"${slice}" is not a valid slice name (empty part)`);
  return parts.map((_, index) => `${parts.slice(0, index + 1).join('-')}.slice`).join('/');
}
