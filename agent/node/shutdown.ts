/**
 * Graceful node shutdown (KEP-2000, KEP-2712; kubelet pkg/kubelet/nodeshutdown
 * nodeshutdown_manager_linux.go and systemd/inhibit_linux.go) over systemd-logind's D-Bus API:
 * - start: when logind's InhibitDelayMaxUSec is shorter than the time asked (the sum of the
 *   groups' periods), write /etc/systemd/logind.conf.d/99-kubelet.conf and make logind reload it
 *   (systemd Manager.KillUnit("systemd-logind.service", "main", SIGHUP)), then check again; take a
 *   "delay" inhibitor for "shutdown"; subscribe to PrepareForShutdown.
 * - PrepareForShutdown(true): the node turns NotReady ("node is shutting down"), new pods are
 *   rejected (NodeShutdown), running pods are terminated group by group, lowest priority first,
 *   each group within its grace period (shutdown-policy.ts), their statuses are sent, and the
 *   inhibitor is released so the shutdown goes on. PrepareForShutdown(false) (cancelled): the
 *   inhibitor is taken again and pods are admitted again.
 * A failure to start is logged and the agent runs on, as the kubelet ("Failed to start node
 * shutdown manager").
 *
 * The inhibitor is a file descriptor logind passes back over the bus (Inhibit returns type h).
 * Node's sockets cannot receive descriptors (SCM_RIGHTS) without a native module (dbus-next's
 * optional `usocket`, not installed), so the lock is held by `systemd-inhibit` run as a child
 * whose command (`cat`) reads a pipe from the agent: it holds the descriptor for exactly as long
 * as the agent lives or until released, and is checked with ListInhibitors.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type dbus from 'dbus-next';
import type { V1Pod, V1PodStatus } from '@kubernetes/client-node';
import type { Logger } from '../../lib/log.js';
import { systemBusAddress, systemBusObject } from '../../lib/dbus.js';
import type { KubeletConfiguration } from '../../lib/config/kubelet.js';
import type { EventSink } from '../../lib/events.js';
import {
  groupPods,
  nodeShutdownNotAdmittedMessage,
  nodeShutdownNotAdmittedReason,
  nodeShuttingDownMessage,
  shutdownGroups,
  podGracePeriodSeconds,
  requestedPeriodSeconds,
  shutdownPodStatus,
  type ShutdownGroup,
} from './shutdown-policy.js';

const login1 = 'org.freedesktop.login1';
const inhibitWho = 'kubelet';
const inhibitWhy = 'Kubelet needs time to handle node shutdown';
const logindConfigDirectory = '/etc/systemd/logind.conf.d';
const kubeletLogindConf = '99-kubelet.conf';

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms).unref());

interface ShutdownPods {
  /** Pods that run (admitted, not terminated). */
  active(): V1Pod[];
  /** Kills in place with the grace period and status amendment; undefined when no worker has it. */
  kill(uid: string, graceSeconds: number, amend: (status: V1PodStatus) => V1PodStatus): Promise<void> | undefined;
}

interface ShutdownManagerOptions {
  groups: ShutdownGroup[];
  pods: ShutdownPods;
  /** Records a rejected pod's status (the status manager). */
  setStatus: (pod: V1Pod, status: V1PodStatus) => void;
  /** The node's status changed (NotReady while shutting down): send it now. */
  onShuttingDown: (active: boolean) => Promise<void>;
  /** Sends the pod statuses not yet sent (before the inhibitor is released). */
  flushStatuses: () => Promise<void>;
  events: EventSink;
  node: () => { name: string; uid?: string };
  log: Logger;
  /** The system bus address; default DBUS_SYSTEM_BUS_ADDRESS or /run/dbus/system_bus_socket. */
  busAddress?: string;
  logindConfDir?: string;
  /** How long to wait for logind to take the new InhibitDelayMaxSec (ms); default 10 s. */
  reloadWaitMs?: number;
}

export class ShutdownManager {
  private bus?: dbus.MessageBus;
  private logind?: dbus.ClientInterface;
  private properties?: dbus.ClientInterface;
  private holder?: ChildProcess;
  private shuttingDown = false;
  private processing?: Promise<void>;
  private readonly rejected = new Set<string>();
  private stopped = false;

  constructor(private readonly options: ShutdownManagerOptions) {}

  get isShuttingDown(): boolean {
    return this.shuttingDown;
  }

  /** For the Ready condition (ShutdownStatus). */
  notReadyMessage(): string | undefined {
    return this.shuttingDown ? nodeShuttingDownMessage : undefined;
  }

  /** Whether the inhibitor is held (a child holds logind's descriptor). */
  get inhibitorHeld(): boolean {
    return this.holder !== undefined;
  }

  async start(): Promise<void> {
    const { groups, log } = this.options;
    if (groups.length === 0) return;
    const { bus, object } = await systemBusObject(this.busAddress(), login1, '/org/freedesktop/login1', log);
    this.bus = bus;
    this.logind = object.getInterface(`${login1}.Manager`);
    this.properties = object.getInterface('org.freedesktop.DBus.Properties');
    await this.ensureInhibitDelay(requestedPeriodSeconds(groups));
    await this.takeInhibitor();
    this.logind.on('PrepareForShutdown', (active: boolean) => this.onPrepareForShutdown(active));
    log.info({ groups }, 'node shutdown manager started: holding a delay inhibitor on shutdown');
  }

  private busAddress(): string {
    return systemBusAddress(this.options.busAddress);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.processing;
    await this.releaseInhibitor();
    this.bus?.disconnect();
    this.bus = undefined;
  }

  /** logind's InhibitDelayMaxUSec, in seconds. */
  async inhibitDelayMaxSeconds(): Promise<number> {
    const variant = (await this.properties!.Get(`${login1}.Manager`, 'InhibitDelayMaxUSec')) as dbus.Variant;
    return Number(variant.value) / 1_000_000;
  }

  private async ensureInhibitDelay(requested: number): Promise<void> {
    const current = await this.inhibitDelayMaxSeconds();
    if (requested <= current) return;
    const dir = this.options.logindConfDir ?? logindConfigDirectory;
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, kubeletLogindConf), `# Kubelet logind override\n[Login]\nInhibitDelayMaxSec=${requested}\n`, { mode: 0o644 });
    const systemd = (await this.bus!.getProxyObject('org.freedesktop.systemd1', '/org/freedesktop/systemd1')).getInterface('org.freedesktop.systemd1.Manager');
    // SIGHUP: logind reloads its configuration. The kubelet sends it to "all"; logind is one
    // process, and "all" fails here when systemd cannot signal some process of the unit's cgroup
    // ("Failed to send signal SIGHUP to auxiliary processes"), so to its main process.
    await systemd.KillUnit('systemd-logind.service', 'main', 1);
    let updated = current;
    for (const end = Date.now() + (this.options.reloadWaitMs ?? 10_000); Date.now() < end; await sleep(200)) {
      updated = await this.inhibitDelayMaxSeconds();
      if (updated >= requested) {
        this.options.log.info({ inhibitDelayMaxSec: updated }, 'logind InhibitDelayMaxSec raised to the shutdown grace period');
        return;
      }
    }
    throw new Error(`node shutdown manager was unable to update logind InhibitDelayMaxSec to ${requested}s (ShutdownGracePeriod), current value of InhibitDelayMaxSec (${updated}s) is less than requested ShutdownGracePeriod`);
  }

  /** Takes the delay inhibitor (see the header) and waits until logind lists it. */
  private async takeInhibitor(): Promise<void> {
    if (this.holder) return;
    const child = spawn('systemd-inhibit', ['--what=shutdown', `--who=${inhibitWho}`, `--why=${inhibitWhy}`, '--mode=delay', 'cat'], {
      stdio: ['pipe', 'ignore', 'pipe'],
      env: { ...process.env, DBUS_SYSTEM_BUS_ADDRESS: this.busAddress() },
    });
    let stderr = '';
    child.stderr?.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-2000)));
    const failed = new Promise<Error>((resolve) => {
      child.once('error', (error) => resolve(new Error('cannot run systemd-inhibit', { cause: error })));
      child.once('exit', (code) => resolve(new Error(`systemd-inhibit exited (${code}): ${stderr.trim()}`)));
    });
    this.holder = child;
    child.once('exit', () => {
      if (this.holder === child) this.holder = undefined;
    });
    for (let attempt = 0; attempt < 50; attempt++) {
      const outcome = await Promise.race([failed, this.listsInhibitor(child.pid), sleep(100).then(() => false)]);
      if (outcome instanceof Error) throw outcome;
      if (outcome) return;
    }
    child.kill('SIGKILL');
    throw new Error('logind does not list the shutdown delay inhibitor');
  }

  private async listsInhibitor(pid: number | undefined): Promise<boolean> {
    const list = (await this.logind!.ListInhibitors()) as [string, string, string, string, number, number][];
    return list.some(([what, who, , mode, , holder]) => what.split(':').includes('shutdown') && who === inhibitWho && mode === 'delay' && holder === pid);
  }

  private async releaseInhibitor(): Promise<void> {
    const child = this.holder;
    if (!child) return;
    this.holder = undefined;
    const exited = new Promise<void>((resolve) => (child.exitCode !== null || child.signalCode !== null ? resolve() : child.once('exit', () => resolve())));
    child.stdin?.end(); // cat ends, systemd-inhibit closes the descriptor
    if (!(await Promise.race([exited.then(() => true), sleep(5_000).then(() => false)]))) {
      child.kill('SIGKILL');
      await exited;
    }
    this.options.log.info('released the shutdown delay inhibitor');
  }

  private onPrepareForShutdown(active: boolean): void {
    if (this.stopped) return;
    const previous = this.processing ?? Promise.resolve();
    this.processing = previous.then(() => (active ? this.shutdown() : this.cancelled())).catch((error: unknown) => this.options.log.error({ err: error }, 'node shutdown handling failed'));
  }

  private async shutdown(): Promise<void> {
    if (this.shuttingDown) return;
    const { log, events, node } = this.options;
    this.shuttingDown = true;
    log.info('shutdown manager detected new shutdown event, isNodeShuttingDownNow: true');
    const ref = node();
    events.record({ involvedObject: { apiVersion: 'v1', kind: 'Node', name: ref.name, ...(ref.uid ? { uid: ref.uid } : {}) }, type: 'Normal', reason: 'Shutdown', message: 'Shutdown manager detected shutdown event' });
    await this.options.onShuttingDown(true).catch((error: unknown) => log.warn({ err: error }, 'cannot report the node as shutting down'));
    await this.terminatePods();
    await Promise.race([this.options.flushStatuses().catch((error: unknown) => log.warn({ err: error }, 'pod statuses not sent before shutdown')), sleep(5_000)]);
    await this.releaseInhibitor();
  }

  private async cancelled(): Promise<void> {
    if (!this.shuttingDown) return;
    this.options.log.info('shutdown cancelled: pods are admitted again');
    this.shuttingDown = false;
    this.rejected.clear();
    await this.takeInhibitor();
    await this.options.onShuttingDown(false).catch((error: unknown) => this.options.log.warn({ err: error }, 'cannot report the node as ready again'));
  }

  /** Each group in turn, lowest priority first, within its grace period (processShutdownEvent). */
  private async terminatePods(): Promise<void> {
    const { log, pods } = this.options;
    for (const { group, pods: members } of groupPods(this.options.groups, pods.active())) {
      if (members.length === 0) continue;
      log.info({ priority: group.priority, gracePeriodSeconds: group.shutdownGracePeriodSeconds, pods: members.map((p) => `${p.metadata?.namespace}/${p.metadata?.name}`) }, 'shutdown manager killing pods of a priority group');
      const kills = members.map((pod) => {
        const grace = podGracePeriodSeconds(pod, group.shutdownGracePeriodSeconds);
        log.info({ pod: `${pod.metadata?.namespace}/${pod.metadata?.name}`, gracePeriodSeconds: grace }, 'shutdown manager killing pod');
        return pods.kill(pod.metadata?.uid ?? '', grace, (status) => shutdownPodStatus(status, new Date())) ?? Promise.resolve();
      });
      const done = await Promise.race([Promise.all(kills).then(() => true), sleep(group.shutdownGracePeriodSeconds * 1000).then(() => false)]);
      if (!done) log.warn({ priority: group.priority }, 'shutdown manager pod killing time out');
      else log.info({ priority: group.priority }, 'shutdown manager finished killing pods of a priority group');
    }
  }

  /**
   * Admission while shutting down (Admit): new pods are rejected (phase Failed, reason
   * NodeShutdown) and stay rejected; pods already known pass. `known(uid)`: it has a worker.
   */
  admit(desired: ReadonlyMap<string, V1Pod>, known: (uid: string) => boolean): Map<string, V1Pod> {
    const result = new Map<string, V1Pod>();
    for (const [uid, pod] of desired) {
      if (this.rejected.has(uid)) continue;
      if (this.shuttingDown && !known(uid)) {
        this.rejected.add(uid);
        this.options.log.warn({ pod: `${pod.metadata?.namespace}/${pod.metadata?.name}` }, nodeShutdownNotAdmittedMessage);
        this.options.setStatus(pod, { phase: 'Failed', reason: nodeShutdownNotAdmittedReason, message: `Pod was rejected: ${nodeShutdownNotAdmittedMessage}` });
        continue;
      }
      result.set(uid, pod);
    }
    for (const uid of this.rejected) if (!desired.has(uid)) this.rejected.delete(uid);
    return result;
  }
}

/** The parts of the agent the shutdown manager works through (agent/agent.ts). */
interface ShutdownAgent {
  podConfig: { desiredPods(): ReadonlyMap<string, V1Pod> };
  workers: { get(uid: string): { isTerminated: boolean; kill(grace: number, amend: (status: V1PodStatus) => V1PodStatus): Promise<void> } | undefined };
  statusManager: { set(pod: V1Pod, status: V1PodStatus): void; flush(): Promise<void> };
  node?: { tick(): Promise<void>; identity?: { name: string; uid: string } };
  events: EventSink;
}

/** The agent's shutdown manager; undefined when graceful shutdown is off (no grace period). */
export function createShutdownManager(agent: ShutdownAgent, config: KubeletConfiguration, nodeName: string, busAddress: string | undefined, log: Logger): ShutdownManager | undefined {
  const groups = shutdownGroups(config);
  if (groups.length === 0) return undefined;
  return new ShutdownManager({
    groups,
    pods: {
      active: () => [...agent.podConfig.desiredPods().values()].filter((pod) => agent.workers.get(pod.metadata?.uid ?? '')?.isTerminated === false),
      kill: (uid, grace, amend) => agent.workers.get(uid)?.kill(grace, amend),
    },
    setStatus: (pod, status) => agent.statusManager.set(pod, status),
    onShuttingDown: async () => agent.node?.tick(),
    flushStatuses: () => agent.statusManager.flush(),
    events: agent.events,
    node: () => agent.node?.identity ?? { name: nodeName },
    log: log.child({ part: 'shutdown' }),
    ...(busAddress ? { busAddress } : {}),
  });
}
