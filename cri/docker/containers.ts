/**
 * Container lifecycle on Docker (cri-dockerd core/container_*.go). Containers join their
 * sandbox (see container-config.ts) and are named and labelled so that listContainers and
 * containerStatus are answered from Docker alone.
 *
 * Logs: Docker's json-file driver writes the log, and the CRI log path
 * (<logDirectory>/<container>/<n>.log) is a symlink to it, as cri-dockerd does
 * (core/container_start.go createContainerLogSymlink). Chosen over writing the CRI format
 * ourselves because dockerd keeps writing the log (and rotating it, max-size/max-file) while
 * the agent is down or restarting; the kubelet's log reader parses both the Docker JSON and
 * the CRI line formats (pkg/kubelet/kuberuntime/logs/logs.go). For the same reason
 * reopenContainerLog has nothing to reopen: dockerd owns the file.
 */
import { randomBytes } from 'node:crypto';
import { lstat, mkdir, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type Docker from 'dockerode';
import {
  CriError,
  matchesLabels,
  type Container,
  type ContainerConfig,
  type ContainerFilter,
  type ContainerState,
  type ContainerStatus,
  type LinuxContainerResources,
  type PodSandboxConfig,
} from '../runtime.js';
import { containerCreateOptions, dockerResources, validateContainerConfig } from './container-config.js';
import { labelFilters, type RuntimeContext } from './context.js';
import { criError, dockerStatus, isNotFound } from './errors.js';
import { errnoCode } from '../../lib/errors.js';
import { containerName, containerType, decodeRecord, dockerLabels, fromDockerLabels, isoToNs, parseName, sandboxType } from './naming.js';
import { podFileNames, podFileTargets } from './pod-files.js';

function stateOf(status: string | undefined, startError = ''): ContainerState {
  switch (status) {
    case 'created':
      return startError ? 'CONTAINER_EXITED' : 'CONTAINER_CREATED';
    case 'running':
    case 'paused':
    case 'restarting':
      return 'CONTAINER_RUNNING';
    case 'exited':
    case 'dead':
    case 'removing':
      return 'CONTAINER_EXITED';
    default:
      return 'CONTAINER_UNKNOWN';
  }
}

/** Exit reasons as the CRI runtimes report them (containerd: Completed, Error, OOMKilled, StartError). */
function reasonOf(state: Docker.ContainerInspectInfo['State']): string {
  if (state.Status === 'created' && state.Error) return 'StartError';
  if (state.Status !== 'exited' && state.Status !== 'dead') return '';
  if (state.OOMKilled) return 'OOMKilled';
  return state.ExitCode === 0 ? 'Completed' : 'Error';
}

/** Containers created and not yet started that are remembered (more are forgotten at once). */
const maxRememberedCreated = 256;

export class ContainerManager {
  /**
   * Containers this manager created, until started: what start() needs of them (their log link,
   * names for errors), so that a start right after its create asks Docker nothing before
   * starting (cri-dockerd's StartContainer inspects only after the start, for the log link).
   * Any other id is inspected first, so that only CRI containers are ever started.
   */
  private readonly created = new Map<string, { logPath: string; about: { pod: string; container: string; containerId: string } }>();

  constructor(private readonly context: RuntimeContext) {}

  private get docker(): Docker {
    return this.context.docker;
  }

  async create(podSandboxId: string, config: ContainerConfig, sandboxConfig: PodSandboxConfig): Promise<string> {
    validateContainerConfig(config);
    const container = config.metadata.name;
    const pod = `${sandboxConfig.metadata?.namespace}/${sandboxConfig.metadata?.name}`;
    const context = { pod, container, podSandboxId, image: config.image.image };
    const sandbox = await this.docker.getContainer(podSandboxId).inspect().catch((error: unknown) => {
      throw criError(`cannot create container "${container}" of pod ${pod}: sandbox ${podSandboxId.slice(0, 12)}`, error, context);
    });
    if (sandbox.Config.Labels?.[dockerLabels.type] !== sandboxType) {
      throw new CriError(`cannot create container "${container}" of pod ${pod}: ${podSandboxId.slice(0, 12)} is not a pod sandbox`, { ...context, code: 'NotFound' });
    }
    for (const mount of config.mounts ?? []) {
      await stat(mount.hostPath).catch((error: unknown) => {
        throw new CriError(`cannot create container "${container}" of pod ${pod}: mount source "${mount.hostPath}" for "${mount.containerPath}" does not exist`, { ...context, code: 'InvalidArgument', cause: error });
      });
    }
    const record = decodeRecord(sandbox.Config.Labels?.[dockerLabels.sandboxRecord]);
    const podFiles: Record<string, string> = {};
    if (record?.filesDir) {
      podFiles[podFileTargets.resolvConf] = join(record.filesDir, podFileNames.resolvConf);
      podFiles[podFileTargets.hosts] = join(record.filesDir, podFileNames.hosts);
      podFiles[podFileTargets.hostname] = join(record.filesDir, podFileNames.hostname);
    }
    const logDirectory = sandboxConfig.logDirectory || record?.logDirectory || '';
    const options = containerCreateOptions({
      sandboxId: sandbox.Id,
      sandboxConfig,
      config,
      name: containerName(config.metadata, sandboxConfig.metadata),
      podFiles,
      scopeLabels: this.context.scopeLabels,
      logPath: logDirectory && config.logPath ? join(logDirectory, config.logPath) : '',
      logMaxSize: this.context.logMaxSize,
      logMaxFiles: this.context.logMaxFiles,
    });
    const remember = (id: string): string => {
      if (this.created.size >= maxRememberedCreated) this.created.clear();
      this.created.set(id, { logPath: options.Labels?.[dockerLabels.logPath] ?? '', about: { pod, container, containerId: id } });
      return id;
    };
    try {
      return remember((await this.docker.createContainer(options)).id);
    } catch (error) {
      if (dockerStatus(error) === 409) {
        // Name taken (a leftover of the same attempt): cri-dockerd randomizes the name the same way.
        try {
          return remember((await this.docker.createContainer({ ...options, name: `${options.name}_${randomBytes(4).toString('hex')}` })).id);
        } catch (retryError) {
          throw criError(`failed to create container "${container}" of pod ${pod}`, retryError, context);
        }
      }
      throw criError(`failed to create container "${container}" of pod ${pod}`, error, context);
    }
  }

  private async inspect(id: string): Promise<Docker.ContainerInspectInfo> {
    try {
      const info = await this.docker.getContainer(id).inspect();
      if (info.Config.Labels?.[dockerLabels.type] !== containerType) throw Object.assign(new Error(`${id} is not a CRI container`), { statusCode: 404 });
      return info;
    } catch (error) {
      throw criError(`container "${id}" not found`, error, { containerId: id });
    }
  }

  private describe(info: Docker.ContainerInspectInfo): { pod: string; container: string; containerId: string } {
    const parsed = parseName(info.Name);
    return {
      pod: parsed ? `${parsed.pod.namespace}/${parsed.pod.name}` : '',
      container: parsed?.container.name ?? info.Name,
      containerId: info.Id,
    };
  }

  async start(id: string): Promise<void> {
    let known = this.created.get(id);
    this.created.delete(id);
    if (!known) {
      const info = await this.inspect(id);
      known = { logPath: info.Config.Labels?.[dockerLabels.logPath] ?? '', about: this.describe(info) };
    }
    const { logPath, about } = known;
    try {
      await this.docker.getContainer(id).start();
    } catch (error) {
      if (dockerStatus(error) !== 304) throw criError(`failed to start container "${about.container}" of pod ${about.pod}`, error, about);
    }
    if (logPath) {
      const started = await this.docker.getContainer(id).inspect();
      await linkLog(logPath, started.LogPath).catch((error: unknown) => {
        throw criError(`container "${about.container}" of pod ${about.pod} started but its log link ${logPath} failed`, error, about);
      });
    }
  }

  async stop(id: string, timeoutSeconds: number): Promise<void> {
    try {
      await this.docker.getContainer(id).stop({ t: Math.max(0, Math.round(timeoutSeconds)) });
    } catch (error) {
      const status = dockerStatus(error);
      if (status !== 304 && status !== 404) throw criError(`failed to stop container ${id.slice(0, 12)}`, error, { containerId: id });
    }
  }

  async remove(id: string): Promise<void> {
    this.created.delete(id);
    let info: Docker.ContainerInspectInfo;
    try {
      info = await this.docker.getContainer(id).inspect();
    } catch (error) {
      if (isNotFound(error)) return;
      throw criError(`failed to remove container ${id.slice(0, 12)}`, error, { containerId: id });
    }
    const about = this.describe(info);
    try {
      await this.docker.getContainer(id).remove({ force: true, v: true });
    } catch (error) {
      if (!isNotFound(error)) throw criError(`failed to remove container "${about.container}" of pod ${about.pod}`, error, about);
    }
    const logPath = info.Config.Labels?.[dockerLabels.logPath];
    if (logPath) await unlinkLog(logPath);
  }

  async list(filter: ContainerFilter = {}): Promise<Container[]> {
    // The label selector goes to Docker too (as cri-dockerd does), so that a pod's sync does not
    // list every container on the node; matchesLabels below still applies it to CRI labels.
    const extra: Record<string, string> = { ...filter.labelSelector, ...(filter.podSandboxId ? { [dockerLabels.sandboxId]: filter.podSandboxId } : {}) };
    const filters: Record<string, string[]> = { label: labelFilters(this.context, containerType, extra) };
    if (filter.id) filters.id = [filter.id];
    let infos: Docker.ContainerInfo[];
    try {
      infos = await this.docker.listContainers({ all: true, filters });
    } catch (error) {
      throw criError('failed to list containers', error);
    }
    return this.fromInfos(infos, filter);
  }

  /** The containers among Docker's list entries (sandboxes are skipped) that match the filter. */
  fromInfos(infos: readonly Docker.ContainerInfo[], filter: ContainerFilter = {}): Container[] {
    const result: Container[] = [];
    for (const info of infos) {
      if (info.Labels[dockerLabels.type] !== containerType) continue;
      const parsed = parseName(info.Names[0] ?? '');
      if (!parsed) continue;
      const state = stateOf(info.State);
      if (filter.state && filter.state !== state) continue;
      const { labels, annotations } = fromDockerLabels(info.Labels, this.context.scopeLabels);
      if (!matchesLabels(labels, filter.labelSelector)) continue;
      result.push({
        id: info.Id,
        podSandboxId: info.Labels[dockerLabels.sandboxId] ?? '',
        metadata: parsed.container,
        image: { image: info.Labels[dockerLabels.image] ?? info.Image },
        imageRef: info.ImageID,
        state,
        createdAt: info.Created * 1e9,
        labels,
        annotations,
      });
    }
    return result;
  }

  async status(id: string): Promise<ContainerStatus> {
    const info = await this.inspect(id);
    const parsed = parseName(info.Name);
    const labels = info.Config.Labels ?? {};
    const state = info.State;
    const containerState = stateOf(state.Status, state.Error);
    const exited = containerState === 'CONTAINER_EXITED';
    return {
      id: info.Id,
      podSandboxId: labels[dockerLabels.sandboxId] ?? '',
      metadata: parsed?.container ?? { name: labels['io.kubernetes.container.name'] ?? '', attempt: 0 },
      state: containerState,
      createdAt: isoToNs(info.Created),
      startedAt: isoToNs(state.StartedAt),
      finishedAt: exited ? isoToNs(state.FinishedAt) || isoToNs(info.Created) : 0,
      exitCode: exited ? state.ExitCode : 0,
      image: { image: labels[dockerLabels.image] ?? info.Config.Image },
      imageRef: info.Image,
      reason: reasonOf(state),
      message: state.Error ?? '',
      ...fromDockerLabels(labels, this.context.scopeLabels),
      mounts: (info.Mounts ?? [])
        .filter((mount) => mount.Type === 'bind')
        .map((mount) => ({ containerPath: mount.Destination, hostPath: mount.Source, readonly: !mount.RW })),
      logPath: labels[dockerLabels.logPath] ?? '',
      resources: actualResources(info.HostConfig),
    };
  }

  async updateResources(id: string, resources: LinuxContainerResources): Promise<void> {
    const info = await this.inspect(id);
    // Docker's update endpoint changes cgroup limits only (its UpdateConfig has no OomScoreAdj):
    // the score is written to the container's init process, which its later children inherit.
    const { OomScoreAdj: oomScoreAdj, ...update } = dockerResources(resources);
    try {
      await this.docker.getContainer(id).update(update);
    } catch (error) {
      throw criError(`failed to update resources of container "${this.describe(info).container}"`, error, this.describe(info));
    }
    const pid = info.State?.Pid ?? 0;
    if (oomScoreAdj === undefined || pid <= 0) return;
    try {
      await writeFile(`/proc/${pid}/oom_score_adj`, String(oomScoreAdj));
    } catch (error) {
      throw criError(`failed to set oom_score_adj ${oomScoreAdj} of container "${this.describe(info).container}" (pid ${pid})`, error, this.describe(info));
    }
  }

  /** json-file logs are rotated by dockerd itself; this only checks the container is running. */
  async reopenLog(id: string): Promise<void> {
    const info = await this.inspect(id);
    if (!info.State.Running) throw new CriError(`container "${this.describe(info).container}" is not running`, { ...this.describe(info), code: 'FailedPrecondition' });
  }
}

async function linkLog(logPath: string, dockerLogPath: string): Promise<void> {
  if (!dockerLogPath) return;
  await mkdir(dirname(logPath), { recursive: true, mode: 0o755 });
  await unlinkLog(logPath);
  await symlink(dockerLogPath, logPath);
}

/** Removes the CRI log link (only a link: a real file there is not ours). */
async function unlinkLog(logPath: string): Promise<void> {
  try {
    if ((await lstat(logPath)).isSymbolicLink()) await rm(logPath, { force: true });
  } catch (error) {
    // Already gone: nothing to unlink.
    if (errnoCode(error) !== 'ENOENT') throw error;
  }
}

/** What Docker reports of the cgroup settings (0 = unset), as CRI LinuxContainerResources. */
function actualResources(host: Docker.ContainerInspectInfo['HostConfig'] | undefined): LinuxContainerResources {
  const out: LinuxContainerResources = {};
  if (host?.CpuShares) out.cpuShares = host.CpuShares;
  if (host?.CpuQuota) out.cpuQuota = host.CpuQuota;
  if (host?.CpuPeriod) out.cpuPeriod = host.CpuPeriod;
  if (host?.Memory) out.memoryLimitInBytes = host.Memory;
  return out;
}
