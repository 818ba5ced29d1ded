import { describe, expect, it } from 'vitest';
import type { V1Container, V1Pod } from '@kubernetes/client-node';
import { defaultImagePullPolicy, imageTagAndDigest, pullDecision } from '../../agent/pods/image-policy.js';
import { normalizeImageRef } from '../../cri/docker/images.js';
import { Backoff, backoffKey, resyncDelayMs } from '../../agent/pods/backoff.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { containerHash, fnv1a32, sandboxHash } from '../../agent/pods/container-hash.js';
import { latestByName, previousByName, shouldStartContainer } from '../../agent/pods/restart.js';
import type { ContainerStatus } from '../../cri/runtime.js';

describe('imagePullPolicy', () => {
  it.each([
    ['busybox', 'Always'],
    ['busybox:latest', 'Always'],
    ['busybox:1.36', 'IfNotPresent'],
    ['registry:5000/team/app', 'Always'],
    ['registry:5000/team/app:v2', 'IfNotPresent'],
    ['app@sha256:abcd', 'IfNotPresent'],
    ['app:latest@sha256:abcd', 'IfNotPresent'],
  ])('%s defaults to %s', (image, policy) => expect(defaultImagePullPolicy(image)).toBe(policy));

  it('splits tag and digest; the runtime normalizes (cri/docker/images.ts, the one implementation)', () => {
    expect(imageTagAndDigest('localhost:5000/a/b:t@sha256:1')).toEqual({ tag: 't', digest: 'sha256:1' });
    expect(imageTagAndDigest('localhost:5000/a/b')).toEqual({});
    expect(normalizeImageRef('localhost:5000/a')).toBe('localhost:5000/a:latest');
    expect(normalizeImageRef('a:1')).toBe('a:1');
  });

  it.each([
    ['Always', true, { pull: true }],
    ['Always', false, { pull: true }],
    ['IfNotPresent', true, { pull: false }],
    ['IfNotPresent', false, { pull: true }],
    ['Never', true, { pull: false }],
  ] as const)('%s with image present=%s', (policy, present, decision) => expect(pullDecision(policy, 'a:1', present)).toEqual(decision));

  it('Never with a missing image is ErrImageNeverPull', () => {
    expect(pullDecision('Never', 'a:1', false)).toMatchObject({ pull: false, error: 'ErrImageNeverPull' });
  });
});

describe('back-off', () => {
  it('restarts at once, then waits 10, 20, 40 … 300 s', () => {
    const clock = new FakeClock(1_000_000);
    const backoff = new Backoff(clock);
    const key = backoffKey('uid', 'c', 'h');
    const waits: number[] = [];
    for (let i = 0; i < 8; i++) {
      const exitedAt = clock.now();
      let waited = 0;
      while (backoff.isInBackOffSince(key, exitedAt)) {
        clock.advance(1000);
        waited += 1000;
      }
      waits.push(waited / 1000);
      backoff.next(key, clock.now());
      clock.advance(500); // runs half a second, then exits again
    }
    expect(waits).toEqual([0, 10, 20, 40, 80, 160, 300, 300]);
  });

  it('remaining() counts down', () => {
    const clock = new FakeClock(0);
    const backoff = new Backoff(clock);
    backoff.next('k', 0);
    clock.advance(1000);
    expect(backoff.remaining('k', 1000)).toBe(10_000);
    clock.advance(4000);
    expect(backoff.remaining('k', 1000)).toBe(6000);
    clock.advance(6000);
    expect(backoff.remaining('k', 1000)).toBe(0);
  });

  it('resets after 10 minutes without a new failure', () => {
    const clock = new FakeClock(0);
    const backoff = new Backoff(clock);
    for (let i = 0; i < 5; i++) backoff.next('k', clock.now());
    expect(backoff.delay('k')).toBe(160_000);
    clock.advance(10 * 60_000 + 1);
    expect(backoff.delay('k')).toBe(0);
    expect(backoff.isInBackOffSince('k', clock.now())).toBe(false);
    expect(backoff.next('k', clock.now())).toBe(10_000);
    clock.advance(10 * 60_000 + 1);
    backoff.gc();
    expect(backoff.size).toBe(0);
  });

  it('periodic resync: syncFrequency plus up to half again of jitter', () => {
    expect(resyncDelayMs(60_000, () => 0)).toBe(60_000);
    expect(resyncDelayMs(60_000, () => 0.5)).toBe(75_000);
    expect(resyncDelayMs(60_000, () => 0.999)).toBeCloseTo(89_970);
    const delays = Array.from({ length: 200 }, () => resyncDelayMs(60_000));
    expect(Math.min(...delays)).toBeGreaterThanOrEqual(60_000);
    expect(Math.max(...delays)).toBeLessThan(90_000);
    expect(new Set(delays.map((d) => Math.floor(d / 1000))).size).toBeGreaterThan(10);
  });

  it('keeps keys apart', () => {
    const backoff = new Backoff(new FakeClock(0));
    backoff.next('a', 0);
    backoff.next('a', 0);
    expect(backoff.delay('a')).toBe(20_000);
    expect(backoff.delay('b')).toBe(0);
  });
});

describe('container and sandbox hashes', () => {
  const c: V1Container = { name: 'a', image: 'i:1', command: ['sleep', '1'], env: [{ name: 'X', value: '1' }] };
  it('fnv1a32 matches the reference vectors', () => {
    expect(fnv1a32('')).toBe(0x811c9dc5);
    expect(fnv1a32('a')).toBe(0xe40c292c);
    expect(fnv1a32('foobar')).toBe(0xbf9cf968);
  });
  it('changes with the spec, not with key order or resources', () => {
    const h = containerHash(c);
    expect(h).toMatch(/^[0-9a-f]{8}$/);
    expect(containerHash({ env: [{ value: '1', name: 'X' }], command: ['sleep', '1'], image: 'i:1', name: 'a' })).toBe(h);
    expect(containerHash({ ...c, resources: { limits: { cpu: '1' } } })).toBe(h);
    expect(containerHash({ ...c, image: 'i:2' })).not.toBe(h);
    expect(containerHash({ ...c, env: [{ name: 'X', value: '2' }] })).not.toBe(h);
  });
  it('sandbox hash follows hostNetwork but not the image', () => {
    const pod: V1Pod = { spec: { containers: [c] } };
    const h = sandboxHash(pod);
    expect(sandboxHash({ spec: { containers: [{ ...c, image: 'other' }] } })).toBe(h);
    expect(sandboxHash({ spec: { containers: [c], hostNetwork: true } })).not.toBe(h);
  });
});


function status(name: string, attempt: number, state: ContainerStatus['state'], exitCode = 0, createdAt = attempt): ContainerStatus {
  return {
    id: `${name}-${attempt}`, podSandboxId: 's', metadata: { name, attempt }, state, createdAt, startedAt: 1, finishedAt: state === 'CONTAINER_EXITED' ? 2 : 0,
    exitCode, image: { image: 'i' }, imageRef: 'sha256:i', reason: '', message: '', labels: {}, annotations: {}, mounts: [], logPath: '',
  };
}

describe('restart decisions', () => {
  const app: V1Container = { name: 'app', image: 'i' };
  const init: V1Container = { name: 'init', image: 'i' };
  const sidecar: V1Container = { name: 'side', image: 'i', restartPolicy: 'Always' };
  const pod = (restartPolicy: string): V1Pod => ({ spec: { restartPolicy, containers: [app], initContainers: [init, sidecar] } });
  it.each([
    ['Always', 'app', 'never ran', undefined, true],
    ['Always', 'app', 'running', status('app', 0, 'CONTAINER_RUNNING'), false],
    ['Always', 'app', 'exit 0', status('app', 0, 'CONTAINER_EXITED', 0), true],
    ['OnFailure', 'app', 'exit 0', status('app', 0, 'CONTAINER_EXITED', 0), false],
    ['OnFailure', 'app', 'exit 1', status('app', 0, 'CONTAINER_EXITED', 1), true],
    ['Never', 'app', 'exit 1', status('app', 0, 'CONTAINER_EXITED', 1), false],
    ['Never', 'app', 'never ran', undefined, true],
    ['Always', 'init', 'exit 0', status('init', 0, 'CONTAINER_EXITED', 0), false],
    ['Always', 'init', 'exit 1', status('init', 0, 'CONTAINER_EXITED', 1), true],
    ['Never', 'init', 'exit 1', status('init', 0, 'CONTAINER_EXITED', 1), false],
    ['Never', 'side', 'sidecar exit 0', status('side', 0, 'CONTAINER_EXITED', 0), true],
    ['Always', 'app', 'unknown state', status('app', 0, 'CONTAINER_UNKNOWN'), true],
  ] as const)('policy %s, %s, %s → %s', (policy, which, _what, latest, expected) => {
    const container = which === 'app' ? app : which === 'init' ? init : sidecar;
    expect(shouldStartContainer(pod(policy), container, latest, which !== 'app')).toBe(expected);
  });

  it('picks latest and previous attempts', () => {
    const all = [status('a', 0, 'CONTAINER_EXITED', 1), status('a', 2, 'CONTAINER_RUNNING'), status('a', 1, 'CONTAINER_EXITED', 1), status('b', 0, 'CONTAINER_RUNNING')];
    expect(latestByName(all).get('a')!.metadata.attempt).toBe(2);
    expect(previousByName(all).get('a')!.metadata.attempt).toBe(1);
    expect(previousByName(all).get('b')).toBeUndefined();
  });
});
