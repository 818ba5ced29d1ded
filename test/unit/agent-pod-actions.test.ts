import { describe, expect, it } from 'vitest';
import type { V1Container, V1Pod } from '@kubernetes/client-node';
import { computePodActions, sandboxHashAnnotation } from '../../agent/pods/actions.js';
import { containerHash, sandboxHash } from '../../agent/pods/container-hash.js';
import type { ContainerStatus, PodSandboxStatus } from '../../cri/runtime.js';

const c = (name: string, extra: Partial<V1Container> = {}): V1Container => ({ name, image: 'i:1', ...extra });
const pod = (spec: Partial<V1Pod['spec']> & { containers: V1Container[] }): V1Pod => ({ metadata: { name: 'p', namespace: 'd', uid: 'u' }, spec: { restartPolicy: 'Always', ...spec } });

function sandbox(p: V1Pod, id = 's1', state: PodSandboxStatus['state'] = 'SANDBOX_READY', attempt = 0, createdAt = 1): PodSandboxStatus {
  return {
    id, metadata: { name: 'p', namespace: 'd', uid: 'u', attempt }, state, createdAt, network: { ip: '10.0.0.2', additionalIps: [] },
    linux: { namespaces: { options: {} } }, labels: {}, annotations: { [sandboxHashAnnotation]: sandboxHash(p) }, runtimeHandler: '',
  };
}
function status(container: V1Container, state: ContainerStatus['state'], attempt = 0, exitCode = 0, sandboxId = 's1'): ContainerStatus {
  return {
    id: `${container.name}-${attempt}`, podSandboxId: sandboxId, metadata: { name: container.name, attempt }, state, createdAt: 10 + attempt, startedAt: 11, finishedAt: state === 'CONTAINER_EXITED' ? 12 : 0,
    exitCode, image: { image: 'i:1' }, imageRef: 'sha256:x', reason: '', message: '', labels: {}, annotations: { 'io.kubernetes.container.hash': containerHash(container) }, mounts: [], logPath: '',
  };
}
const names = (list: { container: V1Container }[]) => list.map((x) => x.container.name);

describe('computePodActions', () => {
  const a = c('a');
  const b = c('b');
  const init1 = c('init1');
  const init2 = c('init2');
  const side = c('side', { restartPolicy: 'Always' });

  it('no sandbox: create it and start the first init container only', () => {
    const p = pod({ initContainers: [init1, init2], containers: [a] });
    expect(computePodActions(p, [], [])).toMatchObject({ createSandbox: true, killPod: false, sandboxAttempt: 0 });
    expect(names(computePodActions(p, [], []).containersToStart)).toEqual(['init1']);
  });

  it('no init containers: all app containers at once', () => {
    expect(names(computePodActions(pod({ containers: [a, b] }), [], []).containersToStart)).toEqual(['a', 'b']);
  });

  it('init containers in order, each after the previous succeeded', () => {
    const p = pod({ initContainers: [init1, init2], containers: [a] });
    const s = sandbox(p);
    expect(computePodActions(p, [s], [status(init1, 'CONTAINER_RUNNING')]).containersToStart).toEqual([]);
    expect(names(computePodActions(p, [s], [status(init1, 'CONTAINER_EXITED', 0, 0)]).containersToStart)).toEqual(['init2']);
    expect(names(computePodActions(p, [s], [status(init1, 'CONTAINER_EXITED'), status(init2, 'CONTAINER_EXITED')]).containersToStart)).toEqual(['a']);
    const retry = computePodActions(p, [s], [status(init1, 'CONTAINER_EXITED', 0, 1)]);
    expect(retry.containersToStart.map((x) => [x.container.name, x.attempt, x.lastExit?.id])).toEqual([['init1', 1, 'init1-0']]);
  });

  it('a failed init container under Never fails the pod', () => {
    const p = pod({ restartPolicy: 'Never', initContainers: [init1], containers: [a] });
    expect(computePodActions(p, [sandbox(p)], [status(init1, 'CONTAINER_EXITED', 0, 1)])).toMatchObject({ initFailed: true, killPod: true, containersToStart: [] });
  });

  it('a sidecar must run before the next init container, and is restarted when it exits', () => {
    const p = pod({ initContainers: [side, init1], containers: [a] });
    const s = sandbox(p);
    expect(names(computePodActions(p, [s], []).containersToStart)).toEqual(['side']);
    expect(names(computePodActions(p, [s], [status(side, 'CONTAINER_RUNNING')]).containersToStart)).toEqual(['init1']);
    expect(names(computePodActions(p, [s], [status(side, 'CONTAINER_EXITED'), status(init1, 'CONTAINER_EXITED')]).containersToStart)).toEqual(['side']);
  });

  it('a changed container spec: kill and start again; unknown containers are killed', () => {
    const p = pod({ containers: [a, b] });
    const old = status({ ...a, command: ['old'] }, 'CONTAINER_RUNNING');
    const stranger = status(c('gone'), 'CONTAINER_RUNNING');
    const actions = computePodActions(p, [sandbox(p)], [old, status(b, 'CONTAINER_RUNNING'), stranger]);
    expect(actions.containersToKill.map((k) => [k.name, k.reason])).toEqual([['gone', 'Container is not in the pod spec'], ['a', 'Container spec hash changed']]);
    expect(names(actions.containersToStart)).toEqual(['a']);
  });

  it('a changed sandbox (hostNetwork) or a dead sandbox recreates the pod with the next attempt', () => {
    const p = pod({ containers: [a] });
    const hostNet = pod({ containers: [a], hostNetwork: true });
    const changed = computePodActions(hostNet, [sandbox(p)], [status(a, 'CONTAINER_RUNNING')]);
    expect(changed).toMatchObject({ killPod: true, createSandbox: true, sandboxAttempt: 1 });
    expect(computePodActions(p, [sandbox(p, 's1', 'SANDBOX_NOTREADY')], [])).toMatchObject({ killPod: true, createSandbox: true, sandboxAttempt: 1 });
  });

  it('restartPolicy Never with containers that ran: no new sandbox', () => {
    const p = pod({ restartPolicy: 'Never', containers: [a] });
    expect(computePodActions(p, [sandbox(p, 's1', 'SANDBOX_NOTREADY')], [status(a, 'CONTAINER_EXITED')])).toMatchObject({ createSandbox: false, containersToStart: [] });
  });

  it('restart per policy with attempts counting across sandboxes', () => {
    const p = pod({ restartPolicy: 'OnFailure', containers: [a, b] });
    const s = sandbox(p, 's2', 'SANDBOX_READY', 1, 5);
    const actions = computePodActions(p, [sandbox(p, 's1', 'SANDBOX_NOTREADY', 0, 1), s], [status(a, 'CONTAINER_EXITED', 0, 0, 's1'), status(a, 'CONTAINER_EXITED', 1, 1, 's2'), status(b, 'CONTAINER_EXITED', 0, 0, 's2')]);
    expect(actions.containersToStart.map((x) => [x.container.name, x.attempt])).toEqual([['a', 2]]);
  });

  it('a created-but-never-started container is replaced', () => {
    const p = pod({ containers: [a] });
    const actions = computePodActions(p, [sandbox(p)], [status(a, 'CONTAINER_CREATED')]);
    expect(actions.containersToKill.map((k) => k.id)).toEqual(['a-0']);
    expect(actions.containersToStart.map((x) => [x.container.name, x.attempt])).toEqual([['a', 1]]);
  });
});
