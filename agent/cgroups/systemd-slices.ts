/**
 * The systemd cgroup driver's side of pod cgroups (kubelet cgroupDriver: systemd;
 * pkg/kubelet/cm/cgroup_manager_linux.go with runc's libcontainer/cgroups/systemd): each pod
 * cgroup, and the QoS tiers above it, is a transient slice unit started over D-Bus
 * (org.freedesktop.systemd1.Manager.StartTransientUnit) with the pod's limits as unit
 * properties, so that systemd owns the cgroup and keeps those limits on a daemon-reload; the
 * runtime (Docker with its systemd driver) then puts each container's scope inside the slice.
 * As runc's systemd manager does, the cgroup files are written directly too (cgroups/pod-cgroups.ts):
 * on cgroup v1, systemd applies a slice's properties only to the controllers it manages.
 * A slice is stopped (StopUnit) when its pod is gone.
 */
import type dbus from 'dbus-next';
import type { Logger } from '../../lib/log.js';
import { dbusErrorName, systemBusAddress, systemBusObject } from '../../lib/dbus.js';
import type { PodResourceConfig } from './pod-resources.js';
import { sharesToWeight } from './pod-resources.js';

const systemd1 = 'org.freedesktop.systemd1';
const unlimited = 18_446_744_073_709_551_615n; // UINT64_MAX: systemd's "infinity"

/** The unit properties (D-Bus signature a(sv)) of a slice with these limits. */
export function sliceProperties(resources: PodResourceConfig | undefined, version: 1 | 2, Variant: typeof dbus.Variant): [string, dbus.Variant][] {
  const props: [string, dbus.Variant][] = [
    ['CPUAccounting', new Variant('b', true)],
    ['MemoryAccounting', new Variant('b', true)],
    ['TasksAccounting', new Variant('b', true)],
  ];
  if (!resources) return props;
  // systemd names (systemd.resource-control(5)): v1 CPUShares/MemoryLimit, v2 CPUWeight/MemoryMax
  if (version === 1) props.push(['CPUShares', new Variant('t', BigInt(resources.cpuShares))]);
  else props.push(['CPUWeight', new Variant('t', BigInt(sharesToWeight(resources.cpuShares)))]);
  const memory = resources.memoryLimitBytes === undefined ? unlimited : BigInt(resources.memoryLimitBytes);
  props.push([version === 1 ? 'MemoryLimit' : 'MemoryMax', new Variant('t', memory)]);
  // CPUQuotaPerSecUSec: the quota per second of wall time (runc: quota · 1e6 / period)
  const quota = resources.cpuQuotaUs !== undefined && resources.cpuQuotaUs > 0 ? BigInt(Math.ceil((resources.cpuQuotaUs * 1_000_000) / (resources.cpuPeriodUs ?? 100_000))) : unlimited;
  props.push(['CPUQuotaPerSecUSec', new Variant('t', quota)]);
  props.push(['TasksMax', new Variant('t', resources.pidsLimit !== undefined ? BigInt(resources.pidsLimit) : unlimited)]);
  return props;
}

export class SystemdSlices {
  private connecting?: Promise<{ bus: dbus.MessageBus; manager: dbus.ClientInterface; Variant: typeof dbus.Variant }>;

  constructor(
    private readonly log: Logger,
    private readonly busAddress?: string,
  ) {}

  private connect() {
    this.connecting ??= (async () => {
      const { Variant } = (await import('dbus-next')).default;
      const { bus, object } = await systemBusObject(systemBusAddress(this.busAddress), systemd1, '/org/freedesktop/systemd1', this.log);
      return { bus, manager: object.getInterface(`${systemd1}.Manager`), Variant };
    })();
    // a failed connection is tried again by the next call
    this.connecting.catch(() => (this.connecting = undefined));
    return this.connecting;
  }

  /** Starts the slice with these limits, or sets them on the slice that runs (idempotent). */
  async ensure(name: string, description: string, resources: PodResourceConfig | undefined, version: 1 | 2): Promise<void> {
    const { manager, Variant } = await this.connect();
    const props = sliceProperties(resources, version, Variant);
    try {
      await manager.StartTransientUnit(name, 'replace', [['Description', new Variant('s', description)], ['DefaultDependencies', new Variant('b', false)], ...props], []);
    } catch (error) {
      if (dbusErrorName(error) !== `${systemd1}.UnitExists`) throw new Error(`systemd cannot start slice ${name}`, { cause: error });
      try {
        await manager.SetUnitProperties(name, true, props);
      } catch (cause) {
        throw new Error(`systemd cannot set the limits of slice ${name}`, { cause });
      }
    }
  }

  /** Stops the slice; a slice systemd does not know is already stopped. */
  async stop(name: string): Promise<void> {
    const { manager } = await this.connect();
    try {
      await manager.StopUnit(name, 'replace');
    } catch (error) {
      if (dbusErrorName(error) !== `${systemd1}.NoSuchUnit`) throw new Error(`systemd cannot stop slice ${name}`, { cause: error });
    }
  }

  close(): void {
    // a connection that failed has nothing to close (its error went to the call that made it)
    void this.connecting?.then(({ bus }) => bus.disconnect(), () => undefined);
    this.connecting = undefined;
  }
}
