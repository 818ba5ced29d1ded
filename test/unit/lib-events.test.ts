import { describe, expect, it } from 'vitest';
import type { CoreV1Event } from '@kubernetes/client-node';
import { EventRecorder, podReference, type EventInput, type EventsApi } from '../../lib/events.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { createLogger } from '../../lib/log.js';

/** Fake events API: an in-memory store by namespace/name, with optional failures. */
class FakeEventsApi {
  readonly store = new Map<string, CoreV1Event>();
  failCreates = 0;
  calls: string[] = [];

  createNamespacedEvent = async (req: { namespace: string; body: CoreV1Event }): Promise<CoreV1Event> => {
    this.calls.push('create');
    if (this.failCreates > 0) {
      this.failCreates--;
      throw new Error('API unavailable');
    }
    const key = `${req.namespace}/${req.body.metadata!.name}`;
    if (this.store.has(key)) throw Object.assign(new Error('AlreadyExists'), { code: 409 });
    this.store.set(key, structuredClone(req.body));
    return req.body;
  };

  patchNamespacedEvent = async (req: { name: string; namespace: string; body: { count: number; lastTimestamp: Date; message: string } }): Promise<CoreV1Event> => {
    this.calls.push('patch');
    const event = this.store.get(`${req.namespace}/${req.name}`);
    if (!event) throw Object.assign(new Error('NotFound'), { code: 404 });
    event.count = req.body.count;
    event.lastTimestamp = req.body.lastTimestamp;
    event.message = req.body.message;
    return event;
  };
}

const event = (message: string, containerName = 'app'): EventInput => ({
  involvedObject: podReference({ metadata: { uid: 'uid-1', namespace: 'ns', name: 'web' } }, containerName),
  type: 'Warning',
  reason: 'Unhealthy',
  message,
});

/** A clock that moves 1 s per reading, so repeats get later lastTimestamps. */
class SteppingClock extends FakeClock {
  override now(): number {
    this.advance(1000);
    return super.now();
  }
}

function recorder(api: FakeEventsApi): EventRecorder {
  return new EventRecorder({ api: api as unknown as EventsApi, component: 'kubelet', host: () => 'node-a', log: createLogger('test', 'silent'), clock: new SteppingClock(1_000_000) });
}

describe('EventRecorder (lib/events.ts): the one recorder of agent, probes and eviction', () => {
  it('records a pod event with the container field path and kubelet source', async () => {
    const api = new FakeEventsApi();
    const r = recorder(api);
    r.record(event('Liveness probe failed: HTTP probe failed with statuscode: 404'));
    await r.flush();
    const [stored] = [...api.store.values()];
    expect(stored).toMatchObject({
      reason: 'Unhealthy',
      type: 'Warning',
      count: 1,
      involvedObject: { kind: 'Pod', name: 'web', namespace: 'ns', uid: 'uid-1', fieldPath: 'spec.containers{app}' },
      source: { component: 'kubelet', host: 'node-a' },
    });
  });

  it('aggregates repeats into one event with a growing count; different messages are apart', async () => {
    const api = new FakeEventsApi();
    const r = recorder(api);
    for (let i = 0; i < 3; i++) r.record(event('Readiness probe failed: connection refused'));
    r.record(event('Readiness probe failed: connection refused', 'other'));
    await r.flush();
    const counts = [...api.store.values()].map((e) => [e.involvedObject.fieldPath, e.count]);
    expect(counts).toEqual([
      ['spec.containers{app}', 3],
      ['spec.containers{other}', 1],
    ]);
    const aggregated = [...api.store.values()][0]!;
    expect(new Date(aggregated.lastTimestamp!).getTime()).toBeGreaterThan(new Date(aggregated.firstTimestamp!).getTime());
  });

  it('survives API failures; a restarted recorder writes a new event object (as a restarted kubelet)', async () => {
    const api = new FakeEventsApi();
    api.failCreates = 1;
    const r = recorder(api);
    r.record(event('x'));
    r.record(event('x'));
    await r.flush();
    expect(api.calls).toEqual(['create', 'create']);
    expect([...api.store.values()][0]!.count).toBe(1);
    const again = recorder(api);
    again.record(event('x'));
    again.record(event('x'));
    await again.flush();
    expect([...api.store.values()].map((e) => e.count)).toEqual([1, 2]);
  });

  it('creates the event again, with the count so far, when it expired (404 on patch)', async () => {
    const api = new FakeEventsApi();
    const r = recorder(api);
    r.record(event('x'));
    await r.flush();
    api.store.clear();
    r.record(event('x'));
    await r.flush();
    expect(api.calls).toEqual(['create', 'patch', 'create']);
    const [stored] = [...api.store.values()];
    expect(stored!.count).toBe(2);
    expect(new Date(stored!.firstTimestamp!).getTime()).toBeLessThan(new Date(stored!.lastTimestamp!).getTime());
  });

  it('combines similar events with 10 different messages in 10 minutes (client-go EventAggregator)', async () => {
    const api = new FakeEventsApi();
    const r = recorder(api);
    for (let i = 0; i < 12; i++) r.record(event(`Readiness probe failed: attempt ${i}`));
    await r.flush();
    const events = [...api.store.values()];
    // 9 distinct messages are written apart; from the 10th on they are one combined event.
    expect(events.filter((e) => !e.message!.startsWith('(combined'))).toHaveLength(9);
    const combined = events.filter((e) => e.message!.startsWith('(combined from similar events): '));
    expect(combined).toHaveLength(1);
    expect(combined[0]).toMatchObject({ count: 3, message: '(combined from similar events): Readiness probe failed: attempt 11' });
  });

  it('a different reason is not combined, and the window restarts after 10 quiet minutes', async () => {
    const api = new FakeEventsApi();
    const clock = new FakeClock(1_000_000);
    const r = new EventRecorder({ api: api as unknown as EventsApi, component: 'kubelet', host: () => 'node-a', log: createLogger('test', 'silent'), clock });
    for (let i = 0; i < 9; i++) r.record(event(`m${i}`));
    r.record({ ...event('other'), reason: 'BackOff' });
    clock.advance(600_001);
    r.record(event('m9'));
    await r.flush();
    expect([...api.store.values()].some((e) => e.message!.startsWith('(combined'))).toBe(false);
  });

  it('drops events of one object over a burst of 25, then allows one per 5 minutes (spam filter)', async () => {
    const api = new FakeEventsApi();
    const clock = new FakeClock(1_000_000);
    const r = new EventRecorder({ api: api as unknown as EventsApi, component: 'kubelet', host: () => 'node-a', log: createLogger('test', 'silent'), clock });
    for (let i = 0; i < 30; i++) r.record({ ...event('Back-off restarting failed container app in pod web_ns(uid-1)'), reason: 'BackOff' });
    const other = { ...event('y'), involvedObject: { ...event('y').involvedObject, name: 'other', uid: 'uid-2' } };
    r.record(other);
    await r.flush();
    const byName = (name: string) => [...api.store.values()].filter((e) => e.involvedObject.name === name);
    expect(byName('web')[0]!.count).toBe(25);
    expect(byName('other')).toHaveLength(1);
    clock.advance(299_000);
    r.record({ ...event('Back-off restarting failed container app in pod web_ns(uid-1)'), reason: 'BackOff' });
    await r.flush();
    expect(byName('web')[0]!.count).toBe(25);
    clock.advance(1_000);
    r.record({ ...event('Back-off restarting failed container app in pod web_ns(uid-1)'), reason: 'BackOff' });
    await r.flush();
    expect(byName('web')[0]!.count).toBe(26);
  });

  it('writes no faster than eventRecordQPS after a burst of eventBurst (the kubelet event client limit)', async () => {
    const api = new FakeEventsApi();
    const clock = new FakeClock(1_000_000);
    const r = new EventRecorder({ api: api as unknown as EventsApi, component: 'kubelet', host: () => 'node-a', log: createLogger('test', 'silent'), clock, writeLimit: { qps: 2, burst: 2 } });
    for (let i = 0; i < 4; i++) r.record({ ...event(`m${i}`), involvedObject: { ...event('x').involvedObject, name: `pod-${i}` } });
    const settle = () => new Promise((resolve) => setTimeout(resolve, 20));
    await settle();
    expect(api.calls).toHaveLength(2);
    clock.advance(499);
    await settle();
    expect(api.calls).toHaveLength(2);
    clock.advance(1);
    await settle();
    expect(api.calls).toHaveLength(3);
    clock.advance(500);
    await r.flush();
    expect(api.calls).toHaveLength(4);
  });

  it('names an init container by spec.initContainers{name}', () => {
    const pod = { metadata: { name: 'p', namespace: 'ns', uid: 'u' }, spec: { initContainers: [{ name: 'init' }] } };
    expect(podReference(pod, 'init').fieldPath).toBe('spec.initContainers{init}');
    expect(podReference(pod, 'app').fieldPath).toBe('spec.containers{app}');
  });

  it('records Node events in the default namespace with annotations, aggregated the same way', async () => {
    const api = new FakeEventsApi();
    const r = recorder(api);
    const node = { involvedObject: { apiVersion: 'v1', kind: 'Node', name: 'node-a', uid: 'n-1' }, type: 'Warning' as const, reason: 'FailedStaticPodManifest', message: 'bad', annotations: { a: 'b' } };
    r.record(node);
    r.record(node);
    await r.flush();
    const [stored] = [...api.store.entries()];
    expect(stored![0]).toMatch(/^default\/node-a\./);
    expect(stored![1]).toMatchObject({ count: 2, involvedObject: { kind: 'Node', name: 'node-a', uid: 'n-1' }, metadata: { annotations: { a: 'b' } } });
    expect(stored![1].involvedObject.namespace).toBeUndefined();
  });
});

describe('one recorder for every component: the control plane controllers write through the registry', () => {
  it('recordAndWait resolves once written; reportingComponent/Instance come from the source', async () => {
    const api = new FakeEventsApi();
    const r = recorder(api);
    await r.recordAndWait(event('y'));
    expect([...api.store.values()][0]).toMatchObject({ reportingComponent: 'kubelet', reportingInstance: 'node-a', count: 1 });
    api.failCreates = 1;
    // A failed write is given up (logged), never thrown at the caller.
    await expect(r.recordAndWait(event('z'))).resolves.toBeUndefined();
  });

  it('a controller event lands in the registry and repeats aggregate into one Event', async () => {
    const { MemoryStorage } = await import('../../controlplane/storage/memory.js');
    const { Registry } = await import('../../controlplane/registry.js');
    const { resourceNamed } = await import('../../controlplane/resources.js');
    const { createEventRecorder } = await import('../../controlplane/controllers/events.js');
    const storage = new MemoryStorage();
    await storage.start();
    try {
      const registry = new Registry(storage);
      await registry.create(resourceNamed('namespaces'), undefined, { metadata: { name: 'default' } });
      const recorder = createEventRecorder(registry, 'deployment-controller', createLogger('test', 'silent'), new SteppingClock(2_000_000));
      const deployment = { kind: 'Deployment', metadata: { name: 'web', namespace: 'default', uid: 'd-1', resourceVersion: '7' } };
      await recorder.record(deployment, 'Normal', 'ScalingReplicaSet', 'Scaled up replica set web-1 from 0 to 2');
      await recorder.record(deployment, 'Normal', 'ScalingReplicaSet', 'Scaled up replica set web-1 from 0 to 2');
      await recorder.record(deployment, 'Warning', 'FailedCreate', 'quota');
      const list = await registry.list(resourceNamed('events'), 'default');
      const scaling = list.items.find((e) => e.reason === 'ScalingReplicaSet');
      expect(list.items).toHaveLength(2);
      expect(scaling).toMatchObject({
        count: 2,
        type: 'Normal',
        source: { component: 'deployment-controller' },
        reportingComponent: 'deployment-controller',
        involvedObject: { apiVersion: 'apps/v1', kind: 'Deployment', name: 'web', namespace: 'default', uid: 'd-1', resourceVersion: '7' },
      });
      expect(scaling!.firstTimestamp).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
      expect(String(scaling!.lastTimestamp) > String(scaling!.firstTimestamp)).toBe(true);
    } finally {
      await storage.stop();
    }
  });
});
