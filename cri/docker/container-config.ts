/**
 * CRI ContainerConfig → Docker create options (pure). This is cri-dockerd's
 * core/container_create.go + helpers_linux.go in substance:
 * - the container joins the sandbox: network and IPC `container:<sandbox>`, PID too when the
 *   pod shares its process namespace (namespaceOptions.pid = POD), host PID for NODE;
 * - command → Entrypoint, args → Cmd (Docker drops the image CMD when Entrypoint is given, which
 *   is Kubernetes' rule: https://kubernetes.io/docs/tasks/inject-data-application/define-command-argument-container/#notes);
 * - resources → cgroup settings; memory swap = memory limit (no swap, the kubelet's default);
 * - securityContext → User, GroupAdd, Privileged, ReadonlyRootfs, CapAdd/CapDrop,
 *   no-new-privileges, masked/readonly paths;
 * - mounts are bind mounts (Docker's Mounts API: a missing source is an error, not a new dir);
 *   the pod's resolv.conf/hostname/hosts are added unless a mount covers the path;
 * - logs: Docker's json-file driver with rotation, linked from the CRI log path (see logs.ts).
 */
import { isAbsolute } from 'node:path';
import type Docker from 'dockerode';
import { CriError, type ContainerConfig, type Labels, type LinuxContainerResources, type Mount, type MountPropagation, type PodSandboxConfig } from '../runtime.js';
import { containerType, dockerLabels, podIdentityLabels, toDockerLabels } from './naming.js';

export interface ContainerCreateInput {
  sandboxId: string;
  sandboxConfig: PodSandboxConfig;
  config: ContainerConfig;
  /** Docker name (from naming.ts). */
  name: string;
  /** Pod files to bind-mount at /etc/resolv.conf, /etc/hostname, /etc/hosts (target → source). */
  podFiles: Record<string, string>;
  scopeLabels: Labels;
  /** Absolute CRI log path or ''. */
  logPath: string;
  logMaxSize: string;
  logMaxFiles: number;
}

const propagationModes: Record<MountPropagation, 'rprivate' | 'rslave' | 'rshared'> = {
  PROPAGATION_PRIVATE: 'rprivate',
  PROPAGATION_HOST_TO_CONTAINER: 'rslave',
  PROPAGATION_BIDIRECTIONAL: 'rshared',
};

/** Checks what Docker would reject late or confusingly; throws CriError InvalidArgument. */
export function validateContainerConfig(config: ContainerConfig): void {
  const name = config.metadata?.name ?? '';
  const fail = (message: string): never => {
    throw new CriError(`invalid config of container "${name}": ${message}`, { code: 'InvalidArgument', container: name });
  };
  if (!name) fail('metadata.name is empty');
  if (!config.image?.image) fail('image is empty');
  for (const mount of config.mounts ?? []) validateMount(mount, fail);
  for (const env of config.envs ?? []) {
    if (!env.key || env.key.includes('=')) fail(`invalid environment variable name "${env.key}"`);
  }
  if (config.workingDir && !isAbsolute(config.workingDir)) fail(`workingDir "${config.workingDir}" is not absolute`);
}

function validateMount(mount: Mount, fail: (message: string) => never): void {
  if (!mount.containerPath || !isAbsolute(mount.containerPath) || mount.containerPath.split('/').includes('..')) {
    fail(`mount path "${mount.containerPath}" must be absolute and without ".."`);
  }
  if (!mount.hostPath || !isAbsolute(mount.hostPath)) fail(`mount source "${mount.hostPath}" for "${mount.containerPath}" must be an absolute path`);
  if (mount.propagation && !(mount.propagation in propagationModes)) fail(`unknown mount propagation "${mount.propagation}"`);
}

function mountsOf(input: ContainerCreateInput): Docker.MountSettings[] {
  const mounts: Docker.MountSettings[] = (input.config.mounts ?? []).map((mount) => ({
    Type: 'bind',
    Source: mount.hostPath,
    Target: mount.containerPath,
    ReadOnly: mount.readonly === true,
    BindOptions: { Propagation: propagationModes[mount.propagation ?? 'PROPAGATION_PRIVATE'] },
  }));
  const covered = new Set(mounts.map((mount) => mount.Target));
  for (const [target, source] of Object.entries(input.podFiles)) {
    if (!covered.has(target)) mounts.push({ Type: 'bind', Source: source, Target: target, ReadOnly: false, BindOptions: { Propagation: 'rprivate' } });
  }
  return mounts;
}

function userOf(config: ContainerConfig): string | undefined {
  const sc = config.linux?.securityContext;
  if (!sc) return undefined;
  const user = sc.runAsUsername || (sc.runAsUser !== undefined ? String(sc.runAsUser) : undefined);
  if (user === undefined) return undefined;
  return sc.runAsGroup !== undefined ? `${user}:${sc.runAsGroup}` : user;
}

/** The Docker fields a CRI LinuxContainerResources maps to (create and update use the same). */
type DockerResources = Pick<Docker.HostConfig, 'CpuShares' | 'CpuPeriod' | 'CpuQuota' | 'Memory' | 'MemorySwap' | 'PidsLimit' | 'CpusetCpus' | 'CpusetMems' | 'OomScoreAdj'>;

/**
 * CRI resources → Docker, the one mapping for ContainerCreate and ContainerUpdate (as
 * cri-dockerd's updateCreateConfig / UpdateContainerResources map the same fields).
 */
export function dockerResources(r: LinuxContainerResources | undefined): DockerResources {
  if (!r) return {};
  const out: DockerResources = {};
  // Docker's minimum for shares is 2, like the kernel's (kubelet MinShares = 2).
  if (r.cpuShares) out.CpuShares = Math.max(2, r.cpuShares);
  if (r.cpuPeriod) out.CpuPeriod = r.cpuPeriod;
  if (r.cpuQuota) out.CpuQuota = r.cpuQuota;
  if (r.memoryLimitInBytes) {
    out.Memory = r.memoryLimitInBytes;
    out.MemorySwap = r.memorySwapLimitInBytes ?? r.memoryLimitInBytes;
  }
  if (r.pidsLimit) out.PidsLimit = r.pidsLimit;
  if (r.cpusetCpus) out.CpusetCpus = r.cpusetCpus;
  if (r.cpusetMems) out.CpusetMems = r.cpusetMems;
  if (r.oomScoreAdj !== undefined) out.OomScoreAdj = r.oomScoreAdj;
  return out;
}

function securityOf(config: ContainerConfig): Partial<Docker.HostConfig> {
  const sc = config.linux?.securityContext;
  if (!sc) return {};
  const out: Partial<Docker.HostConfig> = {};
  if (sc.privileged) out.Privileged = true;
  if (sc.readonlyRootfs) out.ReadonlyRootfs = true;
  if (sc.capabilities?.addCapabilities?.length) out.CapAdd = sc.capabilities.addCapabilities;
  if (sc.capabilities?.dropCapabilities?.length) out.CapDrop = sc.capabilities.dropCapabilities;
  if (sc.noNewPrivs) out.SecurityOpt = ['no-new-privileges'];
  if (sc.supplementalGroups?.length) out.GroupAdd = sc.supplementalGroups.map(String);
  if (!sc.privileged && sc.maskedPaths) out.MaskedPaths = sc.maskedPaths;
  if (!sc.privileged && sc.readonlyPaths) out.ReadonlyPaths = sc.readonlyPaths;
  return out;
}

function containerLabels(input: ContainerCreateInput): Labels {
  return {
    ...toDockerLabels(input.config.labels, input.config.annotations),
    ...podIdentityLabels(input.sandboxConfig.metadata, input.config.metadata.name),
    ...input.scopeLabels,
    [dockerLabels.type]: containerType,
    [dockerLabels.sandboxId]: input.sandboxId,
    [dockerLabels.logPath]: input.logPath,
    [dockerLabels.image]: input.config.image.image,
  };
}

export function containerCreateOptions(input: ContainerCreateInput): Docker.ContainerCreateOptions {
  const { config, sandboxId } = input;
  const pidMode = config.linux?.securityContext?.namespaceOptions?.pid;
  const hostConfig: Docker.HostConfig = {
    NetworkMode: `container:${sandboxId}`,
    IpcMode: `container:${sandboxId}`,
    PidMode: pidMode === 'POD' ? `container:${sandboxId}` : pidMode === 'NODE' ? 'host' : '',
    Mounts: mountsOf(input),
    Devices: (config.devices ?? []).map((d) => ({ PathOnHost: d.hostPath, PathInContainer: d.containerPath, CgroupPermissions: d.permissions || 'rwm' })),
    LogConfig: { Type: 'json-file', Config: { 'max-size': input.logMaxSize, 'max-file': String(input.logMaxFiles) } },
    RestartPolicy: { Name: 'no' },
    ...(input.sandboxConfig.linux?.cgroupParent ? { CgroupParent: input.sandboxConfig.linux.cgroupParent } : {}),
    ...dockerResources(config.linux?.resources),
    ...securityOf(config),
  };
  return {
    name: input.name,
    Image: config.image.image,
    ...(config.command?.length ? { Entrypoint: config.command } : {}),
    ...(config.args?.length ? { Cmd: config.args } : {}),
    Env: (config.envs ?? []).map((env) => `${env.key}=${env.value}`),
    ...(config.workingDir ? { WorkingDir: config.workingDir } : {}),
    ...(userOf(config) ? { User: userOf(config) } : {}),
    Labels: containerLabels(input),
    Tty: config.tty === true,
    OpenStdin: config.stdin === true,
    StdinOnce: config.stdinOnce === true,
    AttachStdin: config.stdin === true,
    AttachStdout: true,
    AttachStderr: true,
    HostConfig: hostConfig,
  };
}
