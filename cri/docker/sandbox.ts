/**
 * Pod sandboxes on Docker, as cri-dockerd builds them (core/sandbox_helpers.go,
 * core/sandbox_run.go): a pause container that owns the pod's network namespace (created with
 * network "none" and wired by CNI through /proc/<pid>/ns/net; host network for hostNetwork pods,
 * which skip CNI) and a shareable IPC namespace that the pod's containers join.
 *
 * RunPodSandbox is all-or-nothing: when any step after the create fails (start, CNI ADD, a
 * garbage plugin result), the network is torn down, the container and the pod files removed,
 * and the error says which pod it concerns.
 */
import { hostname as nodeHostname } from 'node:os';
import { join } from 'node:path';
import type Docker from 'dockerode';
import { ensureLocalImage, pauseImage, pauseSpec } from '../local-images.js';
import { resultIPs, type Attachment } from '../../lib/cni/types.js';
import { CriError, matchesLabels, type PodSandbox, type PodSandboxConfig, type PodSandboxFilter, type PodSandboxStatus, type PortMapping } from '../runtime.js';
import { labelFilters, type RuntimeContext } from './context.js';
import { criError, isNotFound } from './errors.js';
import { decodeRecord, dockerLabels, encodeRecord, fromDockerLabels, isoToNs, parseName, podIdentityLabels, sandboxContainerName, sandboxName, sandboxType, toDockerLabels, type SandboxRecord } from './naming.js';
import { PodFiles, podFileTargets } from './pod-files.js';
import { processStartTime } from '../../cni/ipam-store.js';

function podRef(config: PodSandboxConfig): string {
  return `${config.metadata?.namespace}/${config.metadata?.name}`;
}

function isHostNetwork(config: PodSandboxConfig): boolean {
  return config.linux?.securityContext?.namespaceOptions?.network === 'NODE';
}

/** CNI "portMappings" capability entries (CONVENTIONS.md); only ports with a hostPort. */
export function cniPortMappings(mappings: PortMapping[] | undefined): Array<Record<string, string | number>> {
  return (mappings ?? [])
    .filter((mapping) => (mapping.hostPort ?? 0) > 0)
    .map((mapping) => ({
      hostPort: mapping.hostPort ?? 0,
      containerPort: mapping.containerPort,
      protocol: mapping.protocol.toLowerCase(),
      ...(mapping.hostIp ? { hostIP: mapping.hostIp } : {}),
    }));
}

/** CNI_ARGS the kubelet's network plugins pass (IgnoreUnknown plus the K8S_POD_* keys). */
function attachmentOf(context: RuntimeContext, id: string, netns: string, labels: Record<string, string>, config?: PodSandboxConfig): Attachment {
  const identity = podIdentityLabels(
    { name: labels['io.kubernetes.pod.name'] ?? '', namespace: labels['io.kubernetes.pod.namespace'] ?? '', uid: labels['io.kubernetes.pod.uid'] ?? '', attempt: 0 },
    sandboxContainerName,
  );
  return {
    containerId: id,
    netns,
    ifName: context.ifName,
    args: [
      ['IgnoreUnknown', '1'],
      ['K8S_POD_NAMESPACE', identity['io.kubernetes.pod.namespace'] ?? ''],
      ['K8S_POD_NAME', identity['io.kubernetes.pod.name'] ?? ''],
      ['K8S_POD_INFRA_CONTAINER_ID', id],
      ['K8S_POD_UID', identity['io.kubernetes.pod.uid'] ?? ''],
    ],
    capabilityArgs: config ? { portMappings: cniPortMappings(config.portMappings) } : {},
  };
}

/** Sandboxes whose pause process is remembered for netnsPath (more are forgotten at once). */
const maxRememberedPauseProcesses = 1024;

export class SandboxManager {
  private infraImage?: Promise<string>;
  /**
   * Sandboxes seen with their network attached, with their IPs: once attached it stays so until
   * teardown (list is hot: PLEG relists), and a sandbox's status needs no CNI cache read (as
   * containerd keeps a sandbox's IP in its sandbox store). After a restart the CNI result cache
   * on disk answers, once per sandbox.
   */
  private readonly attached = new Map<string, string[]>();
  /** Sandbox id → its pause process, for netnsPath. */
  private readonly pauseProcesses = new Map<string, { pid: number; started: string }>();

  constructor(private readonly context: RuntimeContext) {}

  /** The pause image: built locally (once per runtime) when it is knode's own. */
  private ensureInfraImage(): Promise<string> {
    const { docker, podInfraImage } = this.context;
    this.infraImage ??= (podInfraImage === pauseImage ? ensureLocalImage(docker, pauseSpec) : docker.getImage(podInfraImage).inspect().then(() => podInfraImage)).catch((error: unknown) => {
      this.infraImage = undefined;
      throw criError(`pod infra image "${podInfraImage}" is not available`, error, { code: 'FailedPrecondition', image: podInfraImage });
    });
    return this.infraImage;
  }

  private createOptions(config: PodSandboxConfig, name: string, record: SandboxRecord, files: PodFiles): Docker.ContainerCreateOptions {
    const ns = config.linux?.securityContext?.namespaceOptions;
    const sc = config.linux?.securityContext;
    const mounts: Docker.MountSettings[] = Object.entries({
      [podFileTargets.resolvConf]: files.path('resolvConf'),
      [podFileTargets.hostname]: files.path('hostname'),
      [podFileTargets.hosts]: files.path('hosts'),
    }).map(([target, source]) => ({ Type: 'bind', Source: source, Target: target, ReadOnly: false }));
    return {
      name,
      Image: this.context.podInfraImage,
      ...(record.hostNetwork ? {} : { Hostname: record.hostname }),
      Labels: {
        ...toDockerLabels(config.labels, config.annotations),
        ...podIdentityLabels(config.metadata, sandboxContainerName),
        ...this.context.scopeLabels,
        [dockerLabels.type]: sandboxType,
        [dockerLabels.sandboxRecord]: encodeRecord(record),
      },
      HostConfig: {
        NetworkMode: record.hostNetwork ? 'host' : 'none',
        IpcMode: ns?.ipc === 'NODE' ? 'host' : 'shareable',
        PidMode: ns?.pid === 'NODE' ? 'host' : '',
        Mounts: mounts,
        RestartPolicy: { Name: 'no' },
        LogConfig: { Type: 'json-file', Config: { 'max-size': '1m', 'max-file': '1' } },
        ...(config.linux?.cgroupParent ? { CgroupParent: config.linux.cgroupParent } : {}),
        ...(config.linux?.sysctls && Object.keys(config.linux.sysctls).length ? { Sysctls: config.linux.sysctls } : {}),
        ...(sc?.privileged ? { Privileged: true } : {}),
      },
    };
  }

  async run(config: PodSandboxConfig): Promise<string> {
    const pod = podRef(config);
    let name: string;
    try {
      name = sandboxName(config.metadata);
    } catch (error) {
      throw new CriError(`invalid sandbox config of pod ${pod}: ${(error as Error).message}`, { code: 'InvalidArgument', pod });
    }
    const hostNetwork = isHostNetwork(config);
    const network = this.context.network;
    if (!hostNetwork && !network) throw new CriError(`cannot run pod ${pod}: no pod network (CNI) configured`, { code: 'FailedPrecondition', pod });
    await this.ensureInfraImage();
    const record: SandboxRecord = {
      hostNetwork,
      hostname: config.hostname || (hostNetwork ? nodeHostname() : config.metadata.name),
      logDirectory: config.logDirectory ?? '',
      filesDir: join(this.context.sandboxRoot, name.replace(/^k8s_POD_/, '')),
    };
    const files = new PodFiles(record.filesDir);
    let id: string | undefined;
    try {
      await files.write(record.hostname, config.dnsConfig, []);
      id = (await this.createContainer(this.createOptions(config, name, record, files))).id;
      const container = this.context.docker.getContainer(id);
      await container.start();
      if (!hostNetwork && network) {
        const info = await container.inspect();
        if (!info.State.Running || !info.State.Pid) throw new Error(`pause container exited right after start: ${info.State.Error || `exit code ${info.State.ExitCode}`}`);
        const result = await network.setUp(attachmentOf(this.context, id, `/proc/${info.State.Pid}/ns/net`, podIdentityLabels(config.metadata, 'POD'), config));
        const ips = resultIPs(result);
        if (ips.length === 0) throw new Error('the CNI result has no IP address');
        await files.setPodIPs(record.hostname, ips);
        this.attached.set(id, ips);
      }
      this.context.log.info({ pod, sandbox: id.slice(0, 12) }, 'pod sandbox running');
      return id;
    } catch (error) {
      await this.rollback(id, files);
      throw criError(`failed to run sandbox of pod ${pod}`, error, { pod, podSandboxId: id });
    }
  }

  /** Creates; a leftover of the same name (failed earlier attempt) that is not running is replaced. */
  private async createContainer(options: Docker.ContainerCreateOptions): Promise<Docker.Container> {
    const { docker } = this.context;
    try {
      return await docker.createContainer(options);
    } catch (error) {
      if ((error as { statusCode?: number }).statusCode !== 409 || !options.name) throw error;
      const stale = await docker.getContainer(options.name).inspect();
      if (stale.State.Running) throw error;
      await docker.getContainer(stale.Id).remove({ force: true });
      return docker.createContainer(options);
    }
  }

  private async rollback(id: string | undefined, files: PodFiles): Promise<void> {
    if (id) {
      const running = await this.context.docker.getContainer(id).inspect().catch((error: unknown) => this.ignoreNotFound(error, id, 'inspect during rollback failed'));
      const pid = running?.State.Running ? running.State.Pid : 0;
      await this.context.network?.tearDown(attachmentOf(this.context, id, pid ? `/proc/${pid}/ns/net` : '', running?.Config.Labels ?? {})).catch((error: unknown) => {
        this.context.log.warn({ err: error, sandbox: id.slice(0, 12) }, 'network teardown during rollback failed');
      });
      await this.context.docker.getContainer(id).remove({ force: true, v: true }).catch((error: unknown) => this.ignoreNotFound(error, id, 'removal during rollback failed'));
    }
    await files.remove().catch((error: unknown) => this.context.log.warn({ err: error }, 'pod files not removed during rollback'));
  }

  /** "No such container" is what a rollback or stop wants anyway; anything else is logged. */
  private ignoreNotFound(error: unknown, id: string, what: string): undefined {
    if (!isNotFound(error)) this.context.log.warn({ err: error, sandbox: id.slice(0, 12) }, `sandbox ${what}`);
    return undefined;
  }

  private async inspect(id: string): Promise<Docker.ContainerInspectInfo | undefined> {
    try {
      const info = await this.context.docker.getContainer(id).inspect();
      return info.Config.Labels?.[dockerLabels.type] === sandboxType ? info : undefined;
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw criError(`failed to inspect sandbox ${id}`, error, { podSandboxId: id });
    }
  }

  private async tearDownNetwork(info: Docker.ContainerInspectInfo): Promise<void> {
    const record = decodeRecord(info.Config.Labels?.[dockerLabels.sandboxRecord]);
    if (!this.context.network || record?.hostNetwork) return;
    const netns = info.State.Running && info.State.Pid ? `/proc/${info.State.Pid}/ns/net` : '';
    await this.context.network.tearDown(attachmentOf(this.context, info.Id, netns, info.Config.Labels ?? {}));
  }

  /** Lists containers of a sandbox (any state), in scope. */
  async containersOf(id: string): Promise<Docker.ContainerInfo[]> {
    return this.context.docker.listContainers({ all: true, filters: { label: labelFilters(this.context, 'container', { [dockerLabels.sandboxId]: id }) } });
  }

  async stop(id: string): Promise<void> {
    this.attached.delete(id);
    const info = await this.inspect(id);
    if (!info) {
      // The sandbox container is gone: release what the CNI cache still holds (stop is idempotent).
      await this.context.network?.tearDown(attachmentOf(this.context, id, '', {})).catch((error: unknown) => this.context.log.warn({ err: error, sandbox: id.slice(0, 12) }, 'network teardown of a removed sandbox failed'));
      return;
    }
    const pod = `${info.Config.Labels?.['io.kubernetes.pod.namespace']}/${info.Config.Labels?.['io.kubernetes.pod.name']}`;
    try {
      const running = (await this.containersOf(id)).filter((container) => container.State === 'running');
      await Promise.all(running.map((container) => stopIgnoringGone(this.context.docker.getContainer(container.Id), this.context.sandboxStopTimeoutSeconds)));
      await this.tearDownNetwork(info);
      await stopIgnoringGone(this.context.docker.getContainer(id), this.context.sandboxStopTimeoutSeconds);
    } catch (error) {
      throw criError(`failed to stop sandbox of pod ${pod}`, error, { pod, podSandboxId: id });
    }
  }

  async remove(id: string): Promise<void> {
    this.attached.delete(id);
    this.pauseProcesses.delete(id);
    const info = await this.inspect(id);
    const pod = info ? `${info.Config.Labels?.['io.kubernetes.pod.namespace']}/${info.Config.Labels?.['io.kubernetes.pod.name']}` : id;
    try {
      for (const container of await this.containersOf(id)) await this.onRemoveContainer(container.Id);
      if (!info) return;
      await this.tearDownNetwork(info);
      await this.context.docker.getContainer(id).remove({ force: true, v: true }).catch((error: unknown) => {
        if (!isNotFound(error)) throw error;
      });
      const record = decodeRecord(info.Config.Labels?.[dockerLabels.sandboxRecord]);
      if (record?.filesDir) await new PodFiles(record.filesDir).remove();
    } catch (error) {
      throw criError(`failed to remove sandbox of pod ${pod}`, error, { pod, podSandboxId: id });
    }
  }

  /** Set by the runtime: removes a container including its log link. */
  onRemoveContainer: (id: string) => Promise<void> = async (id) => {
    await this.context.docker.getContainer(id).remove({ force: true, v: true });
  };

  /**
   * /proc/<pause pid>/ns/net of a running sandbox (what port-forward enters). The pause process
   * is remembered by pid and start time (/proc/<pid>/stat), which name one process for good: while
   * it still runs the answer stands without asking Docker again (one inspect per port-forward
   * connection otherwise); once it is gone Docker is asked, and a stopped sandbox is refused.
   */
  async netnsPath(id: string): Promise<string> {
    const known = this.pauseProcesses.get(id);
    if (known && processStartTime(known.pid) === known.started) return `/proc/${known.pid}/ns/net`;
    const info = await this.inspect(id);
    if (!info) throw new CriError(`pod sandbox "${id}" not found`, { code: 'NotFound', podSandboxId: id });
    if (!info.State.Running || !info.State.Pid) throw new CriError(`pod sandbox ${id.slice(0, 12)} is not running`, { code: 'FailedPrecondition', podSandboxId: id });
    const started = processStartTime(info.State.Pid);
    if (started !== undefined) {
      if (this.pauseProcesses.size >= maxRememberedPauseProcesses) this.pauseProcesses.clear();
      this.pauseProcesses.set(id, { pid: info.State.Pid, started });
    }
    return `/proc/${info.State.Pid}/ns/net`;
  }

  /**
   * A running pause container is a ready sandbox only once its network is attached (the CNI
   * result is cached after a whole successful ADD, as libcni does). A sandbox whose RunPodSandbox
   * never finished — the agent killed between starting the pause container and the end of CNI
   * ADD — is NotReady, so the pod's sync replaces it instead of adopting a pod without a network
   * (containerd reports such a sandbox NotReady the same way).
   */
  private async networkAttached(id: string, labels: Record<string, string> | undefined): Promise<boolean> {
    const network = this.context.network;
    if (!network || this.attached.has(id) || decodeRecord(labels?.[dockerLabels.sandboxRecord])?.hostNetwork) return true;
    return (await this.attachedIPs(id)).length > 0;
  }

  /** The IPs of the sandbox's network attachment (none: not attached). */
  private async attachedIPs(id: string): Promise<string[]> {
    const known = this.attached.get(id);
    if (known || !this.context.network) return known ?? [];
    const ips = resultIPs(await this.context.network.result(id, this.context.ifName).catch((error: unknown) => this.unreadableResult(error, id)));
    if (ips.length > 0) this.attached.set(id, ips);
    return ips;
  }

  /** A cached CNI result that cannot be read counts as none (the sandbox is then NotReady and replaced). */
  private unreadableResult(error: unknown, id: string): undefined {
    this.context.log.warn({ err: error, sandbox: id.slice(0, 12) }, 'cannot read the cached CNI result of a sandbox');
    return undefined;
  }

  async status(id: string): Promise<PodSandboxStatus> {
    const info = await this.inspect(id);
    if (!info) throw new CriError(`pod sandbox "${id}" not found`, { code: 'NotFound', podSandboxId: id });
    const labels = info.Config.Labels ?? {};
    const record = decodeRecord(labels[dockerLabels.sandboxRecord]);
    const metadata = parseName(info.Name)?.pod ?? { name: '', namespace: '', uid: '', attempt: 0 };
    let ips: string[] = [];
    if (info.State.Running && !record?.hostNetwork && this.context.network) ips = await this.attachedIPs(info.Id);
    const ready = info.State.Running && (record?.hostNetwork === true || !this.context.network || ips.length > 0);
    const hostConfig = info.HostConfig;
    return {
      id: info.Id,
      metadata,
      state: ready ? 'SANDBOX_READY' : 'SANDBOX_NOTREADY',
      createdAt: isoToNs(info.Created),
      network: { ip: ips[0] ?? '', additionalIps: ips.slice(1).map((ip) => ({ ip })) },
      linux: {
        namespaces: {
          options: { network: record?.hostNetwork ? 'NODE' : 'POD', pid: hostConfig.PidMode === 'host' ? 'NODE' : 'CONTAINER', ipc: hostConfig.IpcMode === 'host' ? 'NODE' : 'POD' },
        },
      },
      ...fromDockerLabels(labels, this.context.scopeLabels),
      runtimeHandler: '',
    };
  }

  async list(filter: PodSandboxFilter = {}): Promise<PodSandbox[]> {
    // The label selector goes to Docker too (as cri-dockerd does): a pod's sync lists only its
    // own sandboxes instead of every sandbox on the node.
    const filters: Record<string, string[]> = { label: labelFilters(this.context, sandboxType, filter.labelSelector) };
    if (filter.id) filters.id = [filter.id];
    let infos: Docker.ContainerInfo[];
    try {
      infos = await this.context.docker.listContainers({ all: true, filters });
    } catch (error) {
      throw criError('failed to list pod sandboxes', error);
    }
    return this.fromInfos(infos, filter);
  }

  /** The sandboxes among Docker's list entries (others are skipped) that match the filter. */
  async fromInfos(infos: readonly Docker.ContainerInfo[], filter: PodSandboxFilter = {}): Promise<PodSandbox[]> {
    const sandboxes: PodSandbox[] = [];
    for (const info of infos) {
      if (info.Labels[dockerLabels.type] !== sandboxType) continue;
      const parsed = parseName(info.Names[0] ?? '');
      if (!parsed) continue;
      const { labels, annotations } = fromDockerLabels(info.Labels, this.context.scopeLabels);
      const state = info.State === 'running' && (await this.networkAttached(info.Id, info.Labels)) ? 'SANDBOX_READY' : 'SANDBOX_NOTREADY';
      if (filter.state && filter.state !== state) continue;
      if (!matchesLabels(labels, filter.labelSelector)) continue;
      sandboxes.push({ id: info.Id, metadata: parsed.pod, state, createdAt: info.Created * 1e9, labels, annotations, runtimeHandler: '' });
    }
    return sandboxes;
  }
}

/** docker stop; "already stopped" (304) and "no such container" (404) are success. */
async function stopIgnoringGone(container: Docker.Container, timeoutSeconds: number): Promise<void> {
  try {
    await container.stop({ t: Math.max(0, Math.round(timeoutSeconds)) });
  } catch (error) {
    const status = (error as { statusCode?: number }).statusCode;
    if (status !== 304 && status !== 404) throw error;
  }
}
