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
