/**
 * Node registration, status and heartbeat (pkg/kubelet/kubelet_node_status.go,
 * pkg/kubelet/nodelease): the Node is created (or, when it exists, its labels and taints are
 * reconciled); its status is patched every nodeStatusUpdateFrequency when something changed, or
 * every nodeStatusReportFrequency regardless; the Lease kube-node-lease/<node> is renewed every
 * nodeLeaseDurationSeconds/4 (KEP-589). API failures are logged and retried on the next tick.
 * The kubelet's Node events: Starting ("Starting kubelet."), a condition event (NodeReady,
 * NodeHasSufficientMemory, …) when a condition's status changes, NodeSchedulable/NodeNotSchedulable
 * when spec.unschedulable does (kubelet_node_status.go recordNodeStatusEvent).
 */
import { readFile, statfs } from 'node:fs/promises';
import { hostname as osHostname, networkInterfaces } from 'node:os';
import type { V1Lease, V1Node, V1NodeStatus } from '@kubernetes/client-node';
import { CoordinationV1Api, CoreV1Api, PatchStrategy, setHeaderOptions, V1MicroTime } from '../../lib/kube-client.js';
import si from 'systeminformation';
import type { RuntimeService } from '../../cri/runtime.js';
import type { Logger } from '../../lib/log.js';
import { describeError, errnoCode } from '../../lib/errors.js';
import { systemClock, type Clock } from '../../lib/clock.js';
import { buildNode, buildNodeStatus, conditionEvents, goArch, readiness, type NodeConfigInput, type NodeFactsInput, type PressureInput } from './status.js';
import { apiErrorCode } from '../status/manager.js';
import { stableJson } from '../sources/static-pod.js';
import type { KubeletConfiguration } from '../../lib/config/kubelet.js';
import type { NodeFacts } from '../pods/worker-deps.js';
import { knodeGitVersion } from '../../lib/version.js';

/** The kubelet version reported in node status (lib/version.ts). */
export const kubeletVersion = knodeGitVersion;

/** The parts of node conditions both sides must agree on (heartbeat and transition times aside). */
function conditionsKey(conditions: V1NodeStatus['conditions']): string {
  return stableJson([...(conditions ?? [])].map((c) => ({ type: c.type, status: c.status, reason: c.reason ?? '', message: c.message ?? '' })).sort((a, b) => (a.type < b.type ? -1 : a.type > b.type ? 1 : 0)));
}

async function readTrimmed(path: string, log?: Logger): Promise<string> {
  try {
    return (await readFile(path, 'utf8')).trim();
  } catch (error) {
    // Optional machine facts (machine-id, boot_id): absent on some hosts; the field stays empty.
    if (errnoCode(error) !== 'ENOENT') log?.warn({ err: error, path }, 'cannot read a machine fact; the field stays empty');
    return '';
  }
}

/** The first non-internal IPv4 address, as the kubelet's default node IP choice. */
export function defaultNodeIP(): string | undefined {
  for (const list of Object.values(networkInterfaces())) {
    for (const address of list ?? []) if (address.family === 'IPv4' && !address.internal) return address.address;
  }
  return undefined;
}

export async function gatherNodeFacts(options: { nodeName: string; nodeIP?: string; rootDir: string; maxPods: number; kubeletPort: number; runtime: RuntimeService; log?: Logger }): Promise<NodeFactsInput> {
  const { log } = options;
  const [mem, cpu, osInfo, fs, machineID, bootID, version] = await Promise.all([
    si.mem(),
    si.cpu(),
    si.osInfo(),
    statfs(options.rootDir).catch((error: unknown) => log?.warn({ err: error, rootDir: options.rootDir }, 'cannot measure the root directory\'s filesystem: ephemeral-storage capacity 0')),
    readTrimmed('/etc/machine-id', log),
    readTrimmed('/proc/sys/kernel/random/boot_id', log),
    options.runtime.version().catch((error: unknown) => log?.warn({ err: error }, 'container runtime version unknown')),
  ]);
  const internalIP = options.nodeIP ?? defaultNodeIP();
  return {
    nodeName: options.nodeName,
    hostname: osHostname(),
    ...(internalIP ? { internalIP } : {}),
    os: 'linux',
    arch: goArch(process.arch),
    cpuCores: cpu.cores || 1,
    memoryBytes: mem.total,
    ephemeralStorageBytes: fs ? fs.blocks * fs.bsize : 0,
    maxPods: options.maxPods,
    kernelVersion: osInfo.kernel,
    osImage: [osInfo.distro, osInfo.release, osInfo.codename ? `(${osInfo.codename})` : ''].filter(Boolean).join(' '),
    containerRuntimeVersion: version ? `${version.runtimeName}://${version.runtimeVersion}` : 'unknown',
    kubeletVersion,
    machineID,
    systemUUID: machineID,
    bootID,
    kubeletPort: options.kubeletPort,
  };
}

interface NodeManagerOptions {
  core: CoreV1Api;
  coordination: CoordinationV1Api;
  runtime: RuntimeService;
  facts: NodeFactsInput;
  config: NodeConfigInput;
  statusUpdateMs: number;
  statusReportMs: number;
  leaseDurationSeconds: number;
  log: Logger;
  clock?: Clock;
  pressure?: () => PressureInput;
  /** Records a Normal event about this Node (the agent's one recorder, lib/events.ts). */
  recordEvent?(reason: string, message: string): void;
  /** A reason the node is not ready besides the runtime's (graceful shutdown: "node is shutting down"). */
  notReady?: () => string | undefined;
}

interface NodeSetup {
  nodeName: string;
  /** The node's InternalIP; default: the first non-loopback IPv4 address. */
  nodeIP?: string;
  rootDir: string;
  config: KubeletConfiguration;
  /** The port the kubelet API actually serves (port 0 picks one): the Node's daemonEndpoints. */
  kubeletPort: number;
  runtime: RuntimeService;
  core: CoreV1Api;
  coordination: CoordinationV1Api;
  log: Logger;
  clock: Clock;
  pressure?: () => PressureInput;
  /** Normal events about this Node (the agent's one recorder). */
  recordEvent?(reason: string, message: string): void;
  notReady?: () => string | undefined;
}

/** Gathers the machine's facts and builds the node manager the configuration asks for. */
export async function createNodeManager(setup: NodeSetup): Promise<NodeManager> {
  const { config } = setup;
  const facts = await gatherNodeFacts({ nodeName: setup.nodeName, ...(setup.nodeIP ? { nodeIP: setup.nodeIP } : {}), rootDir: setup.rootDir, maxPods: config.maxPods, kubeletPort: setup.kubeletPort, runtime: setup.runtime, log: setup.log });
  return new NodeManager({
    core: setup.core,
    coordination: setup.coordination,
    runtime: setup.runtime,
    facts,
    config: { nodeLabels: config.nodeLabels, registerWithTaints: config.registerWithTaints, kubeReserved: config.kubeReserved, systemReserved: config.systemReserved, evictionHard: config.evictionHard, registerNode: config.registerNode, providerID: config.providerID },
    statusUpdateMs: config.nodeStatusUpdateFrequency,
    statusReportMs: config.nodeStatusReportFrequency,
    leaseDurationSeconds: config.nodeLeaseDurationSeconds,
    log: setup.log,
    clock: setup.clock,
    ...(setup.pressure ? { pressure: setup.pressure } : {}),
    ...(setup.recordEvent ? { recordEvent: setup.recordEvent } : {}),
    ...(setup.notReady ? { notReady: setup.notReady } : {}),
  });
}

export class NodeManager {
  private node?: V1Node;
  private lastStatus?: V1NodeStatus;
  private lastSentKey?: string;
  private lastSentAt = 0;
  private statusTimer?: NodeJS.Timeout;
  private leaseTimer?: NodeJS.Timeout;
  private leaseRenewal?: Promise<void>;
  private readonly clock: Clock;
  private lastUnschedulable = false;
  ready = false;

  constructor(private readonly options: NodeManagerOptions) {
    this.clock = options.clock ?? systemClock;
  }

  /** The registered node's name and UID (owner of mirror pods and the lease). */
  get identity(): { name: string; uid: string } | undefined {
    return this.node?.metadata?.uid ? { name: this.node.metadata.name!, uid: this.node.metadata.uid } : undefined;
  }

  get status(): V1NodeStatus | undefined {
    return this.lastStatus;
  }

  /** What pods see of the node: hostIP, memory capacity (OOM scores), allocatable (downward API). */
  podFacts(): NodeFacts {
    const { internalIP, memoryBytes } = this.options.facts;
    const alloc = this.lastStatus?.allocatable;
    return {
      ...(internalIP ? { hostIP: internalIP } : {}),
      memoryCapacityBytes: memoryBytes,
      ...(alloc ? { allocatable: { cpu: alloc.cpu, memory: alloc.memory, 'ephemeral-storage': alloc['ephemeral-storage'] } } : {}),
    };
  }

  async start(): Promise<void> {
    this.options.recordEvent?.('Starting', 'Starting kubelet.');
    await this.tick();
    this.statusTimer = setInterval(() => void this.tick(), this.options.statusUpdateMs);
    this.statusTimer.unref();
    const leaseMs = Math.max(1000, (this.options.leaseDurationSeconds * 1000) / 4);
    this.leaseTimer = setInterval(() => void this.renewLease(), leaseMs);
    this.leaseTimer.unref();
  }

  stop(): void {
    clearInterval(this.statusTimer);
    clearInterval(this.leaseTimer);
  }

  private async computeStatus(): Promise<V1NodeStatus> {
    let conditions;
    let error: string | undefined;
    try {
      conditions = (await this.options.runtime.status()).conditions;
    } catch (caught) {
      error = describeError(caught);
    }
    let ready = readiness(conditions, error);
    // kubelet ReadyCondition: the shutdown manager's ShutdownStatus joins the errors.
    const extra = this.options.notReady?.();
    if (extra) ready = { ready: false, message: ready.ready ? extra : `${ready.message}, ${extra}` };
    this.ready = ready.ready;
    return buildNodeStatus(this.options.facts, this.options.config, ready, this.options.pressure?.() ?? {}, this.lastStatus, this.clock.now());
  }

  /**
   * One round (every nodeStatusUpdateFrequency): read the server's Node; register it when it is
   * gone; send the status when it differs from the server's view (conditions) or from what was
   * last sent, or when nodeStatusReportFrequency is due; renew the lease. As the kubelet's
   * tryUpdateNodeStatus (pkg/kubelet/kubelet_node_status.go), which builds the new status on the
   * Node it just read and compares with that: a Ready=Unknown set by the node lifecycle
   * controller, or a deleted Node, is corrected within one round (issue 25 item 6).
   */
  async tick(): Promise<void> {
    try {
      const status = await this.computeStatus();
      this.lastStatus = status;
      if (this.node) this.node = await this.readServerNode();
      // Registration compares with no conditions (the kubelet's setters run on its initial Node).
      const before = this.node?.status?.conditions;
      if (!this.node && this.options.config.registerNode === false) await this.adopt(status);
      else if (!this.node) await this.register(status);
      else await this.updateStatus(status, conditionsKey(this.node.status?.conditions) !== conditionsKey(status.conditions));
      this.recordStatusEvents(before, status);
      await this.renewLease();
    } catch (error) {
      this.options.log.warn({ err: error }, 'node status update failed');
    }
  }

  /** Events of a status update that reached the server (kubelet recordNodeStatusEvent). */
  private recordStatusEvents(before: V1NodeStatus['conditions'], status: V1NodeStatus): void {
    const record = this.options.recordEvent;
    if (!record) return;
    const name = this.options.facts.nodeName;
    const reasons = conditionEvents(before, status.conditions);
    const unschedulable = this.node?.spec?.unschedulable === true;
    if (unschedulable !== this.lastUnschedulable) reasons.push(unschedulable ? 'NodeNotSchedulable' : 'NodeSchedulable');
    this.lastUnschedulable = unschedulable;
    for (const reason of reasons) record(reason, `Node ${name} status is now: ${reason}`);
  }

  /** The Node as the server has it; undefined when it was deleted. */
  private async readServerNode(warnGone = true): Promise<V1Node | undefined> {
    try {
      return await this.options.core.readNode({ name: this.options.facts.nodeName });
    } catch (error) {
      if (apiErrorCode(error) !== 404) throw error;
      if (warnGone && this.options.config.registerNode !== false) this.options.log.warn({ node: this.options.facts.nodeName }, 'the Node was deleted on the server; registering it again');
      return undefined;
    }
  }

  /**
   * registerNode false (kubelet --register-node=false): the Node is created by someone else; the
   * agent only reports the status of one that exists, and says once that it waits for it.
   */
  private async adopt(status: V1NodeStatus): Promise<void> {
    this.node = await this.readServerNode(false);
    if (!this.node) {
      if (!this.waitingLogged) this.options.log.warn({ node: this.options.facts.nodeName }, 'registerNode is false and the Node does not exist: waiting for it to be created');
      this.waitingLogged = true;
      return;
    }
    await this.updateStatus(status, true);
  }

  private waitingLogged = false;

  private async register(status: V1NodeStatus): Promise<void> {
    const { core, facts, config } = this.options;
    const wanted = buildNode(facts, config, status);
    try {
      this.node = await core.createNode({ body: wanted });
      this.options.log.info({ node: facts.nodeName }, 'registered node');
    } catch (error) {
      if (apiErrorCode(error) !== 409) throw error;
      // Already registered (agent restart): reconcile labels and taints, keep the rest.
      this.node = await core.patchNode({ name: facts.nodeName, body: { metadata: { labels: wanted.metadata!.labels }, spec: wanted.spec } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
    }
    await this.updateStatus(status, true);
  }

  private async updateStatus(status: V1NodeStatus, force = false): Promise<void> {
    const key = stableJson({ ...status, conditions: status.conditions?.map((c) => ({ ...c, lastHeartbeatTime: undefined })) });
    const now = this.clock.now();
    if (!force && key === this.lastSentKey && now - this.lastSentAt < this.options.statusReportMs) return;
    try {
      this.node = await this.options.core.patchNodeStatus({ name: this.options.facts.nodeName, body: { status } }, setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch));
    } catch (error) {
      if (apiErrorCode(error) === 404) this.node = undefined; // deleted: register again next tick
      throw error;
    }
    this.lastSentKey = key;
    this.lastSentAt = now;
  }

  /**
   * Creates or renews kube-node-lease/<node>. The timer and a sync round may both ask at once;
   * one renewal at a time, else the second read-then-replace conflicts (409) with the first.
   */
  renewLease(): Promise<void> {
    this.leaseRenewal ??= this.renewLeaseOnce().finally(() => {
      this.leaseRenewal = undefined;
    });
    return this.leaseRenewal;
  }

  /** The Lease as the last create or replace returned it (the next renewal starts from it). */
  private lease?: V1Lease;

  /**
   * As the kubelet's lease controller (k8s.io/component-helpers/apimachinery/lease, sync): the
   * lease is renewed from the copy the last update returned, without reading it first; only when
   * that fails (a conflict: someone else changed it; gone) is it read again, or created.
   */
  private async renewLeaseOnce(): Promise<void> {
    const identity = this.identity;
    if (!identity) return;
    const { coordination, leaseDurationSeconds } = this.options;
    const namespace = 'kube-node-lease';
    // A MicroTime: RFC 3339 with exactly six fractional digits, which kube-apiserver and kubectl
    // require (metav1.MicroTime, RFC3339Micro); a plain Date would serialize three.
    const renewTime = new V1MicroTime(this.clock.now());
    const renewed = (lease: V1Lease): V1Lease => ({ ...lease, spec: { ...lease.spec, holderIdentity: identity.name, leaseDurationSeconds, renewTime } });
    try {
      const latest = this.lease;
      if (latest) {
        try {
          this.lease = await coordination.replaceNamespacedLease({ name: identity.name, namespace, body: renewed(latest) });
          return;
        } catch (error) {
          this.lease = undefined;
          this.options.log.info({ err: error }, 'failed to update lease using latest lease, fallback to ensure lease');
        }
      }
      let lease: V1Lease | undefined;
      try {
        lease = await coordination.readNamespacedLease({ name: identity.name, namespace });
      } catch (error) {
        if (apiErrorCode(error) !== 404) throw error;
      }
      if (!lease) {
        this.lease = await coordination.createNamespacedLease({
          namespace,
          body: {
            metadata: { name: identity.name, namespace, ownerReferences: [{ apiVersion: 'v1', kind: 'Node', name: identity.name, uid: identity.uid }] },
            spec: { holderIdentity: identity.name, leaseDurationSeconds, renewTime },
          },
        });
        return;
      }
      this.lease = await coordination.replaceNamespacedLease({ name: identity.name, namespace, body: renewed(lease) });
    } catch (error) {
      this.options.log.warn({ err: error }, 'node lease renewal failed');
    }
  }
}
