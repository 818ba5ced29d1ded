/**
 * An in-memory ContainerRuntime for unit tests of the agent, probes and eviction. It keeps the
 * same rules as the Docker runtime where callers can observe them (ids, states, timestamps,
 * idempotent stop/remove, NotFound errors, createContainer needs the image and a sandbox) and
 * lets a test drive what a real runtime would do on its own: a container exits with a code,
 * a pull fails, an exec answers, stats change, any call fails once.
 */
import { randomBytes } from 'node:crypto';
import { PassThrough, type Duplex } from 'node:stream';
import {
  CriError,
  matchesLabels,
  nowNs,
  type AttachRequest,
  type AuthConfig,
  type Container,
  type ContainerConfig,
  type ContainerFilter,
  type ContainerRuntime,
  type ContainerStats,
  type ContainerStatsFilter,
  type ContainerStatus,
  type ExecRequest,
  type ExecSyncResponse,
  type FilesystemUsage,
  type Image,
  type ImageFilter,
  type ImageSpec,
  type LinuxContainerResources,
  type PodSandbox,
  type PodSandboxConfig,
  type PodSandboxFilter,
  type PodSandboxStatus,
  type RuntimeStatus,
  type StreamSession,
  type VersionResponse,
} from '../../cri/runtime.js';

export interface FakeSandbox {
  id: string;
  config: PodSandboxConfig;
  state: PodSandbox['state'];
  createdAt: number;
  ip: string;
  runtimeHandler: string;
}

export interface FakeContainer {
  id: string;
  podSandboxId: string;
  config: ContainerConfig;
  status: ContainerStatus;
  resources?: LinuxContainerResources;
}

export type ExecHandler = (containerId: string, cmd: string[], timeoutSeconds: number) => ExecSyncResponse | Promise<ExecSyncResponse>;
/** Serves one forwarded connection: what a server on localhost:<port> in the pod would do. */
export type PortForwardHandler = (podSandboxId: string, port: number, stream: Duplex) => Promise<void>;

export interface FakeCall {
  method: string;
  args: unknown[];
}

export interface FakeRuntimeOptions {
  /** Clock in nanoseconds; defaults to the wall clock. */
  now?: () => number;
  /** Images present from the start. */
  images?: string[];
  /** First three octets for pod IPs (default "10.88.0"). */
  podIpPrefix?: string;
}

function newId(): string {
  return randomBytes(32).toString('hex');
}

export class FakeRuntime implements ContainerRuntime {
  readonly sandboxes = new Map<string, FakeSandbox>();
  readonly containers = new Map<string, FakeContainer>();
  readonly images = new Map<string, Image>();
  /** Every call, in order (method name and arguments). */
  readonly calls: FakeCall[] = [];
  private readonly now: () => number;
  private readonly podIpPrefix: string;
  private nextIp = 2;
  private readonly pullFailures = new Map<string, CriError>();
  private readonly failures = new Map<string, Error[]>();
  private execHandler: ExecHandler = () => ({ stdout: '', stderr: '', exitCode: 0 });
  private portForwardHandler: PortForwardHandler = async (_id, port) => {
    throw new CriError(`connect to localhost:${port}: Connection refused`);
  };
  private readonly stats = new Map<string, { cpuNs: number; memory: number; rootfs: number }>();
  networkReady = true;

  constructor(options: FakeRuntimeOptions = {}) {
    this.now = options.now ?? nowNs;
    this.podIpPrefix = options.podIpPrefix ?? '10.88.0';
    for (const ref of options.images ?? []) this.addImage(ref);
  }

  // ----- test controls -----------------------------------------------------------------------

  addImage(ref: string, size = 1_000_000): Image {
    const image: Image = { id: `sha256:${newId()}`, repoTags: [ref], repoDigests: [], size, username: '', pinned: false };
    this.images.set(ref, image);
    return image;
  }

  /** The next pulls of `image` fail with ErrImagePull (until cleared with `clearPullFailure`). */
  failPull(image: string, message = 'manifest unknown'): void {
    this.pullFailures.set(image, new CriError(`failed to pull image "${image}": ${message}`, { code: 'Unknown', image, reason: 'ErrImagePull' }));
  }

  clearPullFailure(image: string): void {
    this.pullFailures.delete(image);
  }

  /** The next call of `method` (e.g. "runPodSandbox") throws `error`; queued per method. */
  failNext(method: keyof ContainerRuntime, error: Error = new CriError(`injected failure of ${method}`)): void {
    const queue = this.failures.get(method) ?? [];
    queue.push(error);
    this.failures.set(method, queue);
  }

  /** Makes a running (or created) container exit, as if its process ended. */
  exitContainer(containerId: string, exitCode: number, reason?: string, message = ''): void {
    const container = this.mustContainer(containerId);
    container.status.state = 'CONTAINER_EXITED';
    container.status.exitCode = exitCode;
    container.status.finishedAt = this.now();
    container.status.reason = reason ?? (exitCode === 0 ? 'Completed' : 'Error');
    container.status.message = message;
  }

  /** Answers execSync/exec; the default answers exit code 0 with empty output. */
  setExecHandler(handler: ExecHandler): void {
    this.execHandler = handler;
  }

  setStats(containerId: string, stats: { cpuNs?: number; memoryWorkingSetBytes?: number; rootfsBytes?: number }): void {
    const current = this.stats.get(containerId) ?? { cpuNs: 0, memory: 0, rootfs: 0 };
    this.stats.set(containerId, {
      cpuNs: stats.cpuNs ?? current.cpuNs,
      memory: stats.memoryWorkingSetBytes ?? current.memory,
      rootfs: stats.rootfsBytes ?? current.rootfs,
    });
  }

  private record(method: string, args: unknown[]): void {
    this.calls.push({ method, args });
    const error = this.failures.get(method)?.shift();
    if (error) throw error;
  }

  private mustSandbox(id: string): FakeSandbox {
    const sandbox = this.sandboxes.get(id);
    if (!sandbox) throw new CriError(`pod sandbox "${id}" not found`, { code: 'NotFound', podSandboxId: id });
    return sandbox;
  }

  private mustContainer(id: string): FakeContainer {
    const container = this.containers.get(id);
    if (!container) throw new CriError(`container "${id}" not found`, { code: 'NotFound', containerId: id });
    return container;
  }

  // ----- RuntimeService ----------------------------------------------------------------------

  async version(): Promise<VersionResponse> {
    this.record('version', []);
    return { version: '0.1.0', runtimeName: 'fake', runtimeVersion: '0.0.1', runtimeApiVersion: 'v1' };
  }

  async status(): Promise<RuntimeStatus> {
    this.record('status', []);
    return {
      conditions: [
        { type: 'RuntimeReady', status: true, reason: '', message: '' },
        { type: 'NetworkReady', status: this.networkReady, reason: this.networkReady ? '' : 'NetworkPluginNotReady', message: '' },
      ],
    };
  }

  async runPodSandbox(config: PodSandboxConfig, runtimeHandler = ''): Promise<string> {
    this.record('runPodSandbox', [config, runtimeHandler]);
    const id = newId();
    const hostNetwork = config.linux?.securityContext?.namespaceOptions?.network === 'NODE';
    const ip = hostNetwork ? '' : `${this.podIpPrefix}.${this.nextIp++}`;
    this.sandboxes.set(id, { id, config: structuredClone(config), state: 'SANDBOX_READY', createdAt: this.now(), ip, runtimeHandler });
    return id;
  }

  async stopPodSandbox(podSandboxId: string): Promise<void> {
    this.record('stopPodSandbox', [podSandboxId]);
    const sandbox = this.sandboxes.get(podSandboxId);
    if (!sandbox) return;
    for (const container of this.containers.values()) {
      if (container.podSandboxId === podSandboxId && container.status.state === 'CONTAINER_RUNNING') {
        this.exitContainer(container.id, 137, 'Error');
      }
    }
    sandbox.state = 'SANDBOX_NOTREADY';
  }

  async removePodSandbox(podSandboxId: string): Promise<void> {
    this.record('removePodSandbox', [podSandboxId]);
    for (const container of [...this.containers.values()]) {
      if (container.podSandboxId === podSandboxId) this.containers.delete(container.id);
    }
    this.sandboxes.delete(podSandboxId);
  }

  async podSandboxStatus(podSandboxId: string): Promise<PodSandboxStatus> {
    this.record('podSandboxStatus', [podSandboxId]);
    const sandbox = this.mustSandbox(podSandboxId);
    const config = sandbox.config;
    return {
      id: sandbox.id,
      metadata: { ...config.metadata },
      state: sandbox.state,
      createdAt: sandbox.createdAt,
      network: { ip: sandbox.state === 'SANDBOX_READY' ? sandbox.ip : '', additionalIps: [] },
      linux: { namespaces: { options: { network: 'POD', pid: 'CONTAINER', ipc: 'POD', ...config.linux?.securityContext?.namespaceOptions } } },
      labels: { ...config.labels },
      annotations: { ...config.annotations },
      runtimeHandler: sandbox.runtimeHandler,
    };
  }

  async listPodSandbox(filter: PodSandboxFilter = {}): Promise<PodSandbox[]> {
    this.record('listPodSandbox', [filter]);
    return [...this.sandboxes.values()]
      .filter((s) => (!filter.id || s.id === filter.id) && (!filter.state || s.state === filter.state))
      .filter((s) => matchesLabels(s.config.labels ?? {}, filter.labelSelector))
      .map((s) => ({
        id: s.id,
        metadata: { ...s.config.metadata },
        state: s.state,
        createdAt: s.createdAt,
        labels: { ...s.config.labels },
        annotations: { ...s.config.annotations },
        runtimeHandler: s.runtimeHandler,
      }));
  }

  async createContainer(podSandboxId: string, config: ContainerConfig, sandboxConfig: PodSandboxConfig): Promise<string> {
    this.record('createContainer', [podSandboxId, config, sandboxConfig]);
    const sandbox = this.mustSandbox(podSandboxId);
    const name = config.metadata.name;
    const image = this.images.get(config.image.image);
    if (!image) {
      throw new CriError(`image "${config.image.image}" not present for container "${name}"`, { code: 'NotFound', podSandboxId, container: name, image: config.image.image });
    }
    const id = newId();
    const logPath = config.logPath && sandboxConfig.logDirectory ? `${sandboxConfig.logDirectory}/${config.logPath}` : '';
    const status: ContainerStatus = {
      id,
      podSandboxId: sandbox.id,
      metadata: { ...config.metadata },
      state: 'CONTAINER_CREATED',
      createdAt: this.now(),
      startedAt: 0,
      finishedAt: 0,
      exitCode: 0,
      image: { ...config.image },
      imageRef: image.id,
      reason: '',
      message: '',
      labels: { ...config.labels },
      annotations: { ...config.annotations },
      mounts: (config.mounts ?? []).map((m) => ({ ...m })),
      logPath,
    };
    this.containers.set(id, { id, podSandboxId, config: structuredClone(config), status, resources: config.linux?.resources });
    return id;
  }

  async startContainer(containerId: string): Promise<void> {
    this.record('startContainer', [containerId]);
    const container = this.mustContainer(containerId);
    if (container.status.state !== 'CONTAINER_CREATED') {
      throw new CriError(`container "${containerId}" is ${container.status.state}, cannot start`, { code: 'FailedPrecondition', containerId });
    }
    container.status.state = 'CONTAINER_RUNNING';
    container.status.startedAt = this.now();
  }

  async stopContainer(containerId: string, timeoutSeconds: number): Promise<void> {
    this.record('stopContainer', [containerId, timeoutSeconds]);
    const container = this.containers.get(containerId);
    if (container?.status.state === 'CONTAINER_RUNNING') this.exitContainer(containerId, 143, 'Error');
  }

  async removeContainer(containerId: string): Promise<void> {
    this.record('removeContainer', [containerId]);
    this.containers.delete(containerId);
    this.stats.delete(containerId);
  }

  async listContainers(filter: ContainerFilter = {}): Promise<Container[]> {
    this.record('listContainers', [filter]);
    return [...this.containers.values()]
      .filter((c) => (!filter.id || c.id === filter.id) && (!filter.podSandboxId || c.podSandboxId === filter.podSandboxId))
      .filter((c) => (!filter.state || c.status.state === filter.state) && matchesLabels(c.status.labels, filter.labelSelector))
      .map((c) => ({
        id: c.id,
        podSandboxId: c.podSandboxId,
        metadata: { ...c.status.metadata },
        image: { ...c.status.image },
        imageRef: c.status.imageRef,
        state: c.status.state,
        createdAt: c.status.createdAt,
        labels: { ...c.status.labels },
        annotations: { ...c.status.annotations },
      }));
  }

  async containerStatus(containerId: string): Promise<ContainerStatus> {
    this.record('containerStatus', [containerId]);
    const container = this.mustContainer(containerId);
    return structuredClone({ ...container.status, ...(container.resources ? { resources: container.resources } : {}) });
  }

  async updateContainerResources(containerId: string, resources: LinuxContainerResources): Promise<void> {
    this.record('updateContainerResources', [containerId, resources]);
    this.mustContainer(containerId).resources = { ...resources };
  }

  async reopenContainerLog(containerId: string): Promise<void> {
    this.record('reopenContainerLog', [containerId]);
    const container = this.mustContainer(containerId);
    if (container.status.state !== 'CONTAINER_RUNNING') {
      throw new CriError(`container "${containerId}" is not running`, { code: 'FailedPrecondition', containerId });
    }
  }

  async execSync(containerId: string, cmd: string[], timeoutSeconds: number): Promise<ExecSyncResponse> {
    this.record('execSync', [containerId, cmd, timeoutSeconds]);
    this.mustRunning(containerId);
    return this.execHandler(containerId, cmd, timeoutSeconds);
  }

  private mustRunning(containerId: string): FakeContainer {
    const container = this.mustContainer(containerId);
    if (container.status.state !== 'CONTAINER_RUNNING') {
      throw new CriError(`container "${containerId}" is not running`, { code: 'FailedPrecondition', containerId });
    }
    return container;
  }

  async exec(request: ExecRequest): Promise<StreamSession> {
    this.record('exec', [request]);
    this.mustRunning(request.containerId);
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    const result = Promise.resolve(this.execHandler(request.containerId, request.cmd, 0)).then((response) => {
      stdout.end(response.stdout);
      stderr.end(response.stderr);
      return { exitCode: response.exitCode };
    });
    return {
      stdin: request.stdin ? new PassThrough() : undefined,
      stdout,
      stderr: request.tty ? undefined : stderr,
      resize: async () => undefined,
      wait: () => result,
      close: () => {
        stdout.end();
        stderr.end();
      },
    };
  }

  /** What portForward does with a connection (default: refused, nothing listens). */
  setPortForwardHandler(handler: PortForwardHandler): void {
    this.portForwardHandler = handler;
  }

  async portForward(podSandboxId: string, port: number, stream: Duplex): Promise<void> {
    this.record('portForward', [podSandboxId, port]);
    const sandbox = this.sandboxes.get(podSandboxId);
    if (!sandbox) throw new CriError(`sandbox ${podSandboxId} not found`, { code: 'NotFound', podSandboxId });
    await this.portForwardHandler(podSandboxId, port, stream);
  }

  async attach(request: AttachRequest): Promise<StreamSession> {
    this.record('attach', [request]);
    this.mustRunning(request.containerId);
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    let closed: (value: { exitCode: number }) => void = () => undefined;
    const done = new Promise<{ exitCode: number }>((resolve) => (closed = resolve));
    return {
      stdin: request.stdin ? new PassThrough() : undefined,
      stdout,
      stderr: request.tty ? undefined : stderr,
      resize: async () => undefined,
      wait: () => done,
      close: () => {
        stdout.end();
        stderr.end();
        closed({ exitCode: 0 });
      },
    };
  }

  private statsOf(container: FakeContainer): ContainerStats {
    const now = this.now();
    const s = this.stats.get(container.id) ?? { cpuNs: 0, memory: 0, rootfs: 0 };
    return {
      attributes: { id: container.id, metadata: { ...container.status.metadata }, labels: { ...container.status.labels }, annotations: { ...container.status.annotations } },
      cpu: { timestamp: now, usageCoreNanoSeconds: s.cpuNs },
      memory: { timestamp: now, workingSetBytes: s.memory, usageBytes: s.memory },
      writableLayer: { timestamp: now, fsId: { mountpoint: '/var/lib/fake' }, usedBytes: s.rootfs },
    };
  }

  async containerStats(containerId: string): Promise<ContainerStats> {
    this.record('containerStats', [containerId]);
    return this.statsOf(this.mustContainer(containerId));
  }

  async listContainerStats(filter: ContainerStatsFilter = {}): Promise<ContainerStats[]> {
    this.record('listContainerStats', [filter]);
    return [...this.containers.values()]
      .filter((c) => c.status.state === 'CONTAINER_RUNNING')
      .filter((c) => (!filter.id || c.id === filter.id) && (!filter.podSandboxId || c.podSandboxId === filter.podSandboxId))
      .filter((c) => matchesLabels(c.status.labels, filter.labelSelector))
      .map((c) => this.statsOf(c));
  }

  // ----- ImageService ------------------------------------------------------------------------

  async listImages(filter: ImageFilter = {}): Promise<Image[]> {
    this.record('listImages', [filter]);
    return [...this.images.entries()].filter(([ref]) => !filter.image || ref === filter.image.image).map(([, image]) => structuredClone(image));
  }

  async imageStatus(image: ImageSpec): Promise<Image | undefined> {
    this.record('imageStatus', [image]);
    const found = this.images.get(image.image);
    return found ? structuredClone(found) : undefined;
  }

  async pullImage(image: ImageSpec, auth?: AuthConfig, sandboxConfig?: PodSandboxConfig): Promise<string> {
    this.record('pullImage', [image, auth, sandboxConfig]);
    const failure = this.pullFailures.get(image.image);
    if (failure) throw failure;
    return (this.images.get(image.image) ?? this.addImage(image.image)).id;
  }

  async removeImage(image: ImageSpec): Promise<void> {
    this.record('removeImage', [image]);
    this.images.delete(image.image);
  }

  async imageFsInfo(): Promise<FilesystemUsage[]> {
    this.record('imageFsInfo', []);
    const used = [...this.images.values()].reduce((sum, image) => sum + image.size, 0);
    return [{ timestamp: this.now(), fsId: { mountpoint: '/var/lib/fake' }, usedBytes: used }];
  }
}

const _typecheck: ContainerRuntime = new FakeRuntime();
void _typecheck;
