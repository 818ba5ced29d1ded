/**
 * Starting one init or app container of a pod sync (kuberuntime_container.go startContainer):
 * restart back-off (CrashLoopBackOff), the image per imagePullPolicy with ErrImagePull /
 * ImagePullBackOff, the container config (env, mounts, OOM score by QoS), create + start with
 * the kubelet's waiting reasons, then the postStart hook (a failed hook kills the container).
 * Each step records the kubelet's events (kuberuntime_container.go startContainer, images/
 * image_manager.go EnsureImageExists, kuberuntime_manager.go doBackOff): Pulling, Pulled, BackOff,
 * Failed ("Error: …" with the waiting reason or the runtime's message), Created, Started,
 * FailedPostStartHook.
 */
import type { V1Container } from '@kubernetes/client-node';
import type { ContainerConfig, PodSandboxConfig } from '../../cri/runtime.js';
import { describeError } from '../../lib/errors.js';
import { formatDuration } from '../../lib/duration.js';
import { backoffKey } from './backoff.js';
import { containerHash } from './container-hash.js';
import { ContainerConfigError, buildEnvironment, expandCommand, type EnvContext, type EnvObjects } from './env.js';
import { pullDecision } from './image-policy.js';
import { HookError, runHook } from './lifecycle.js';
import type { ContainerToStart } from './actions.js';
import type { PodSyncContext } from './worker-deps.js';
import { oomScoreAdj } from '../../lib/k8s/qos.js';
import { containerResources } from '../../lib/k8s/resources.js';
import { buildContainerConfig } from './runtime-config.js';
import { VolumeError, containerMounts } from '../volumes/volumes.js';

/** What every container start of one sync shares. */
interface StartInputs {
  sandboxId: string;
  sandboxConfig: PodSandboxConfig;
  objects: EnvObjects;
  context: EnvContext;
  volumes: Map<string, string>;
}

/**
 * Image pull per imagePullPolicy with ErrImagePull / ImagePullBackOff. Returns the waiting reason
 * on failure (ErrImageNeverPull, ImagePullBackOff, ErrImagePull), undefined when the image is there.
 */
async function ensureImage(ctx: PodSyncContext, container: V1Container, sandboxConfig: PodSandboxConfig): Promise<string | undefined> {
  const { deps } = ctx;
  const image = container.image!;
  const name = container.name;
  const present = (await deps.runtime.imageStatus({ image })) !== undefined;
  const decision = pullDecision(container.imagePullPolicy, image, present);
  if ('error' in decision) {
    ctx.event('Warning', decision.error, decision.message, name);
    ctx.setWaiting(name, { reason: decision.error, message: decision.message });
    return decision.error;
  }
  if (!decision.pull) {
    ctx.event('Normal', 'Pulled', `Container image "${image}" already present on machine`, name);
    return undefined;
  }
  const key = `${ctx.uid}_${image}`;
  const now = deps.clock.now();
  if (deps.imageBackoff.isInBackOffSinceUpdate(key)) {
    ctx.event('Normal', 'BackOff', `Back-off pulling image "${image}"`, name);
    ctx.setWaiting(name, { reason: 'ImagePullBackOff', message: `Back-off pulling image "${image}"` });
    ctx.schedule(deps.imageBackoff.remainingSinceUpdate(key));
    return 'ImagePullBackOff';
  }
  ctx.event('Normal', 'Pulling', `Pulling image "${image}"`, name);
  try {
    await deps.runtime.pullImage({ image }, undefined, sandboxConfig);
  } catch (error) {
    ctx.event('Warning', 'Failed', `Failed to pull image "${image}": ${describeError(error)}`, name);
    ctx.schedule(deps.imageBackoff.next(key, now));
    ctx.setWaiting(name, { reason: 'ErrImagePull', message: describeError(error) });
    return 'ErrImagePull';
  }
  // No pull queue here: the time including waiting is the pull's own.
  const took = formatDuration(deps.clock.now() - now);
  const size = (await deps.runtime.imageStatus({ image }))?.size ?? 0;
  ctx.event('Normal', 'Pulled', `Successfully pulled image "${image}" in ${took} (${took} including waiting). Image size: ${size} bytes.`, name);
  return undefined;
}

/** False (CrashLoopBackOff recorded, retry scheduled) while the container's restart back-off runs. */
function restartAllowed(ctx: PodSyncContext, start: ContainerToStart): boolean {
  if (!start.lastExit) return true;
  const { deps, pod } = ctx;
  const { container } = start;
  const now = deps.clock.now();
  const key = backoffKey(ctx.uid, container.name, containerHash(container));
  const exitedAt = start.lastExit.finishedAt ? Math.floor(start.lastExit.finishedAt / 1e6) : now;
  if (deps.restartBackoff.isInBackOffSince(key, exitedAt)) {
    const delay = deps.restartBackoff.delay(key);
    ctx.event('Warning', 'BackOff', `Back-off restarting failed container ${container.name} in pod ${pod.metadata?.name}_${pod.metadata?.namespace}(${ctx.uid})`, container.name);
    ctx.setWaiting(container.name, { reason: 'CrashLoopBackOff', message: `back-off ${Math.round(delay / 1000)}s restarting failed container=${container.name} pod=${pod.metadata?.name}_${pod.metadata?.namespace}(${ctx.uid})` });
    ctx.schedule(deps.restartBackoff.remaining(key, exitedAt));
    return false;
  }
  deps.restartBackoff.next(key, now);
  return true;
}

/** The CRI container config; undefined (CreateContainerConfigError recorded) on a config error. */
function containerConfig(ctx: PodSyncContext, start: ContainerToStart, inputs: StartInputs): ContainerConfig | undefined {
  const { deps, pod } = ctx;
  const { container } = start;
  try {
    const { env } = buildEnvironment(pod, container, inputs.objects, inputs.context);
    const node = deps.node();
    const memoryRequest = containerResources(container).requests.memory ?? 0;
    const oom = oomScoreAdj(pod, memoryRequest, node.memoryCapacityBytes);
    return buildContainerConfig(pod, container, start.attempt, { env, command: expandCommand(container.command, env), args: expandCommand(container.args, env), mounts: containerMounts(container, inputs.volumes), oomScoreAdj: oom }, deps.runtimeConfig);
  } catch (error) {
    if (error instanceof ContainerConfigError || error instanceof VolumeError) {
      ctx.event('Warning', 'Failed', `Error: ${error.message}`, container.name);
      ctx.setWaiting(container.name, { reason: 'CreateContainerConfigError', message: error.message });
      ctx.schedule(2000);
      return undefined;
    }
    throw error;
  }
}

/**
 * Creates and starts the container; waiting reasons and a retry on failure. Returns the id of
 * the container created (also when it then failed to start), undefined when none was.
 */
export async function startContainer(ctx: PodSyncContext, start: ContainerToStart, inputs: StartInputs): Promise<string | undefined> {
  const { deps } = ctx;
  const { container } = start;
  if (!restartAllowed(ctx, start)) return undefined;
  const imageError = await ensureImage(ctx, container, inputs.sandboxConfig);
  if (imageError) {
    ctx.event('Warning', 'Failed', `Error: ${imageError}`, container.name);
    return undefined;
  }
  const config = containerConfig(ctx, start, inputs);
  if (!config) return undefined;
  let id: string;
  try {
    id = await deps.runtime.createContainer(inputs.sandboxId, config, inputs.sandboxConfig);
  } catch (error) {
    ctx.event('Warning', 'Failed', `Error: ${describeError(error)}`, container.name);
    ctx.setWaiting(container.name, { reason: 'CreateContainerError', message: describeError(error) });
    ctx.schedule(2000);
    return undefined;
  }
  ctx.event('Normal', 'Created', `Created container: ${container.name}`, container.name);
  try {
    await deps.runtime.startContainer(id);
  } catch (error) {
    ctx.event('Warning', 'Failed', `Error: ${describeError(error)}`, container.name);
    ctx.setWaiting(container.name, { reason: 'RunContainerError', message: describeError(error) });
    ctx.schedule(2000);
    return id;
  }
  ctx.event('Normal', 'Started', `Started container ${container.name}`, container.name);
  ctx.clearWaiting(container.name);
  deps.log.info({ pod: ctx.name, container: container.name, attempt: start.attempt }, 'started container');
  await postStart(ctx, container, id, inputs.context.podIP ?? '');
  return id;
}

async function postStart(ctx: PodSyncContext, container: V1Container, id: string, podIP: string): Promise<void> {
  const hook = container.lifecycle?.postStart;
  if (!hook) return;
  const { deps, pod } = ctx;
  try {
    await runHook(hook, { runtime: deps.runtime, pod, container, containerId: id, podIP, timeoutMs: ctx.graceSeconds() * 1000 || 30_000, allowNetwork: deps.podNetworkReachable !== false }, 'PostStart');
  } catch (error) {
    const message = error instanceof HookError ? error.message : describeError(error);
    deps.log.warn({ pod: ctx.name, container: container.name, err: error }, `FailedPostStartHook: ${message}; killing the container`);
    // The event leaves the hook's output out, so that secrets do not leak (as the kubelet).
    ctx.event('Warning', 'FailedPostStartHook', 'PostStartHook failed', container.name);
    ctx.event('Normal', 'Killing', 'FailedPostStartHook', container.name);
    await deps.runtime.stopContainer(id, 0);
  }
}
