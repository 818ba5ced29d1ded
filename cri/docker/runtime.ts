/**
 * DockerRuntime: the ContainerRuntime (CRI RuntimeService + ImageService) over the Docker Engine,
 * playing the role cri-dockerd plays for the kubelet. It keeps no state of its own beyond a
 * stats sample cache and the IPs of the sandboxes it saw attached: everything is read back from
 * Docker's names and labels and from the CNI result cache, so a restarted agent (or a restarted
 * dockerd: each dockerode request opens a new connection to the socket) sees the same picture.
 */
import type { Duplex } from 'node:stream';
import { pauseImage } from '../local-images.js';
import {
  CriError,
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
  type RuntimeCondition,
  type RuntimeStatus,
  type StreamSession,
  type VersionResponse,
} from '../runtime.js';
import { ContainerManager } from './containers.js';
import type Docker from 'dockerode';
import { labelFilters, makeContext, type DockerRuntimeOptions, type RuntimeContext } from './context.js';
import { criError, isNotFound } from './errors.js';
import { isCriError } from '../runtime.js';
import { attachStream, execStream, execSync } from './exec.js';
import { portForward } from './port-forward.js';
import { NetnsDialer } from './netns-dialer.js';
import { ImageManager } from './images.js';
import { SandboxManager } from './sandbox.js';
import { StatsCollector } from './stats.js';

export type { DockerRuntimeOptions } from './context.js';

export class DockerRuntime implements ContainerRuntime {
  readonly context: RuntimeContext;
  private readonly sandboxes: SandboxManager;
  private readonly containers: ContainerManager;
  private readonly images: ImageManager;
  private readonly statsCollector: StatsCollector;
  /** Opens port-forward connections inside sandboxes without a socat per connection. */
  private readonly dialer: NetnsDialer;
  private dockerRoot?: string;

  constructor(options: DockerRuntimeOptions = {}) {
    this.context = makeContext(options, pauseImage);
    this.sandboxes = new SandboxManager(this.context);
    this.containers = new ContainerManager(this.context);
    this.images = new ImageManager(this.context);
    this.statsCollector = new StatsCollector(this.context);
    this.sandboxes.onRemoveContainer = (id) => this.removeContainer(id);
    this.dialer = new NetnsDialer({ log: this.context.log });
  }

  async version(): Promise<VersionResponse> {
    try {
      const version = await this.context.docker.version();
      return { version: '0.1.0', runtimeName: 'docker', runtimeVersion: version.Version, runtimeApiVersion: version.ApiVersion };
    } catch (error) {
      throw criError('failed to get the Docker version', error);
    }
  }

  async status(): Promise<RuntimeStatus> {
    const runtime: RuntimeCondition = { type: 'RuntimeReady', status: true, reason: '', message: '' };
    try {
      await this.context.docker.ping();
    } catch (error) {
      Object.assign(runtime, { status: false, reason: 'DockerDaemonNotReady', message: criError('docker ping failed', error).message });
    }
    const network: RuntimeCondition = { type: 'NetworkReady', status: true, reason: '', message: '' };
    if (!this.context.network) {
      Object.assign(network, { status: false, reason: 'NetworkPluginNotReady', message: 'no CNI network configured' });
    } else {
      try {
        await this.context.network.status();
      } catch (error) {
        Object.assign(network, { status: false, reason: 'NetworkPluginNotReady', message: error instanceof Error ? error.message : String(error) });
      }
    }
    return { conditions: [runtime, network] };
  }

  runPodSandbox(config: PodSandboxConfig): Promise<string> {
    return this.sandboxes.run(config);
  }

  stopPodSandbox(podSandboxId: string): Promise<void> {
    return this.sandboxes.stop(podSandboxId);
  }

  removePodSandbox(podSandboxId: string): Promise<void> {
    return this.sandboxes.remove(podSandboxId);
  }

  podSandboxStatus(podSandboxId: string): Promise<PodSandboxStatus> {
    return this.sandboxes.status(podSandboxId);
  }

  listPodSandbox(filter?: PodSandboxFilter): Promise<PodSandbox[]> {
    return this.sandboxes.list(filter);
  }

  /** Every sandbox and container in scope from one Docker list (the PLEG relist: one request, not two). */
  async listPodResources(): Promise<{ sandboxes: PodSandbox[]; containers: Container[] }> {
    let infos: Docker.ContainerInfo[];
    try {
      infos = await this.context.docker.listContainers({ all: true, filters: { label: labelFilters(this.context, undefined) } });
    } catch (error) {
      throw criError('failed to list pod sandboxes and containers', error);
    }
    return { sandboxes: await this.sandboxes.fromInfos(infos), containers: this.containers.fromInfos(infos) };
  }

  createContainer(podSandboxId: string, config: ContainerConfig, sandboxConfig: PodSandboxConfig): Promise<string> {
    return this.containers.create(podSandboxId, config, sandboxConfig);
  }

  startContainer(containerId: string): Promise<void> {
    return this.containers.start(containerId);
  }

  stopContainer(containerId: string, timeoutSeconds: number): Promise<void> {
    return this.containers.stop(containerId, timeoutSeconds);
  }

  async removeContainer(containerId: string): Promise<void> {
    await this.containers.remove(containerId);
    this.statsCollector.forget(containerId);
  }

  listContainers(filter?: ContainerFilter): Promise<Container[]> {
    return this.containers.list(filter);
  }

  containerStatus(containerId: string): Promise<ContainerStatus> {
    return this.containers.status(containerId);
  }

  updateContainerResources(containerId: string, resources: LinuxContainerResources): Promise<void> {
    return this.containers.updateResources(containerId, resources);
  }

  reopenContainerLog(containerId: string): Promise<void> {
    return this.containers.reopenLog(containerId);
  }

  execSync(containerId: string, cmd: string[], timeoutSeconds: number): Promise<ExecSyncResponse> {
    return execSync(this.context, containerId, cmd, timeoutSeconds);
  }

  exec(request: ExecRequest): Promise<StreamSession> {
    return execStream(this.context, request);
  }

  attach(request: AttachRequest): Promise<StreamSession> {
    return attachStream(this.context, request);
  }

  async portForward(podSandboxId: string, port: number, stream: Duplex): Promise<void> {
    return portForward(await this.sandboxes.netnsPath(podSandboxId), podSandboxId, port, stream, this.dialer);
  }

  private async rootMount(): Promise<string> {
    this.dockerRoot ??= await this.images.rootDir().catch((error: unknown) => {
      this.context.log.warn({ err: error }, 'cannot ask Docker for its root directory; assuming /var/lib/docker');
      return '/var/lib/docker';
    });
    return this.dockerRoot;
  }

  async containerStats(containerId: string): Promise<ContainerStats> {
    const [status] = await this.containers.list({ id: containerId });
    if (!status) throw new CriError(`container "${containerId}" not found`, { code: 'NotFound', containerId });
    return this.statsCollector.stats(status.id, await this.rootMount());
  }

  async listContainerStats(filter: ContainerStatsFilter = {}): Promise<ContainerStats[]> {
    const running = await this.containers.list({ ...filter, state: 'CONTAINER_RUNNING' });
    const root = await this.rootMount();
    const stats = await Promise.all(
      running.map((container) =>
        this.statsCollector.stats(container.id, root).catch((error: unknown) => {
          // A container that exited since the list has no stats: left out, as the kubelet's summary does.
          if (!isNotFound(error) && !isCriError(error, 'NotFound')) this.context.log.debug({ err: error, container: container.id.slice(0, 12) }, 'container stats unavailable');
          return undefined;
        }),
      ),
    );
    return stats.filter((entry): entry is ContainerStats => entry !== undefined);
  }

  /**
   * CNI GC (CNI 1.1 "GC", libcni GCNetworkList): releases the network of every cached attachment
   * whose sandbox is no longer running in Docker, e.g. after a pause container was removed
   * behind the runtime's back or the node crashed. Not part of CRI; the agent may call it
   * periodically or at start. The CNI cache dir must belong to this runtime (its scope) alone:
   * attachments of sandboxes it cannot see are collected.
   */
  async garbageCollectNetwork(): Promise<void> {
    if (!this.context.network) return;
    const ready = await this.sandboxes.list({ state: 'SANDBOX_READY' });
    const inUse = async (id: string): Promise<boolean> => (await this.sandboxes.list({ id, state: 'SANDBOX_READY' })).length > 0;
    await this.context.network.gc(
      ready.map((sandbox) => ({ containerID: sandbox.id, ifname: this.context.ifName })),
      inUse,
    );
  }

  listImages(filter?: ImageFilter): Promise<Image[]> {
    return this.images.list(filter);
  }

  imageStatus(image: ImageSpec): Promise<Image | undefined> {
    return this.images.status(image);
  }

  pullImage(image: ImageSpec, auth?: AuthConfig): Promise<string> {
    return this.images.pull(image, auth);
  }

  removeImage(image: ImageSpec): Promise<void> {
    return this.images.remove(image);
  }

  imageFsInfo(): Promise<FilesystemUsage[]> {
    return this.images.fsInfo();
  }
}

const _typecheck: (options: DockerRuntimeOptions) => ContainerRuntime = (options) => new DockerRuntime(options);
void _typecheck;
