/**
 * The one informer helper (lib/informer.ts) against a real HTTP list/watch server
 * (test/helpers/list-watch-server.ts) through client-node's real clients: per-object events and
 * complete sets, the synced signal, selectors on list and watch, relist after 410 Gone, the one
 * retry policy after errors (on a fake clock: no timing is asserted), no duplicate events, stop().
 * And the retry policy itself: exponential from 1 s, doubling to 30 s, up to 20 % jitter.
 */
import { CoreV1Api, type V1ConfigMap } from '@kubernetes/client-node';
import { afterEach, describe, expect, it } from 'vitest';
import type { TimerHandle } from '../../lib/clock.js';
import { Informer, RetryBackoff, type InformerOptions } from '../../lib/informer.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { startListWatchServer, type ListWatchServer } from '../helpers/list-watch-server.js';
import { capturingLog } from '../helpers/log-capture.js';
import { waitFor } from '../helpers/wait.js';

describe('RetryBackoff', () => {
  it('doubles from 1 s to the 30 s cap without jitter at random() = 0', () => {
    const backoff = new RetryBackoff(1000, 30_000, () => 0);
    expect(Array.from({ length: 7 }, () => backoff.next())).toEqual([1000, 2000, 4000, 8000, 16_000, 30_000, 30_000]);
    backoff.reset();
    expect(backoff.next()).toBe(1000);
  });

  it('adds at most 20 % jitter and never exceeds the cap', () => {
    const backoff = new RetryBackoff(1000, 30_000, () => 0.999);
    const delays = Array.from({ length: 8 }, () => backoff.next());
    expect(delays[0]).toBeGreaterThan(1000);
    expect(delays[0]).toBeLessThanOrEqual(1200);
    expect(Math.max(...delays)).toBeLessThanOrEqual(30_000);
  });
});

/** A fake clock that also remembers the delay of every timer set on it. */
class RecordingClock extends FakeClock {
  readonly delays: number[] = [];
  override setTimer(callback: () => void, delayMs: number): TimerHandle {
    this.delays.push(delayMs);
    return super.setTimer(callback, delayMs);
  }
}

type Event = [string, string, string?];

const servers: ListWatchServer[] = [];
const informers: Array<Informer<V1ConfigMap>> = [];
afterEach(async () => {
  for (const informer of informers.splice(0)) await informer.stop();
  for (const server of servers.splice(0)) await server.close();
});

async function setup(extra: Partial<InformerOptions<V1ConfigMap>> = {}) {
  const server = await startListWatchServer();
  servers.push(server);
  const kubeConfig = server.kubeConfig();
  const core = kubeConfig.makeApiClient(CoreV1Api);
  const events: Event[] = [];
  const sets: string[][] = [];
  const clock = new RecordingClock();
  const { log, lines } = capturingLog('informer-test', 'warn');
  const informer = new Informer<V1ConfigMap>({
    kubeConfig,
    path: '/api/v1/configmaps',
    list: (selectors) => core.listConfigMapForAllNamespaces(selectors),
    onAdd: (o) => events.push(['add', o.metadata?.name ?? '', o.data?.v]),
    onUpdate: (o) => events.push(['update', o.metadata?.name ?? '', o.data?.v]),
    onDelete: (o) => events.push(['delete', o.metadata?.name ?? '']),
    onItems: (items) => sets.push(items.map((o) => `${o.metadata?.name}=${o.data?.v}`).sort()),
    what: 'ConfigMaps',
    log,
    clock,
    backoff: new RetryBackoff(1000, 30_000, () => 0),
    ...extra,
  });
  informers.push(informer);
  const watching = (count: number) => waitFor(`${count} open watch(es)`, () => server.openWatches === count);
  return { server, informer, events, sets, clock, lines, watching };
}

describe('Informer (lib/informer.ts) against a real list/watch server', () => {
  it('lists, then reports each watch event once, per object and as the complete set', async () => {
    const { server, informer, events, sets, watching } = await setup();
    server.put('a', { v: '1' });
    server.put('b', { v: '1' });
    await informer.start();
    await informer.whenSynced();
    expect(informer.hasSynced).toBe(true);
    expect(events).toEqual([
      ['add', 'a', '1'],
      ['add', 'b', '1'],
    ]);
    // One set for the whole list, never one per item.
    expect(sets).toEqual([['a=1', 'b=1']]);
    await watching(1);

    server.put('a', { v: '2' });
    server.remove('b');
    server.put('c', { v: '1' });
    await waitFor('three watch events', () => events.length === 5);
    expect(events.slice(2)).toEqual([['update', 'a', '2'], ['delete', 'b'], ['add', 'c', '1']]);
    expect(sets.slice(1)).toEqual([['a=2', 'b=1'], ['a=2'], ['a=2', 'c=1']]);
    expect(informer.list().map((o) => o.metadata?.name).sort()).toEqual(['a', 'c']);
    // The watch continued from the list's resourceVersion.
    const [list, watch] = server.requests;
    expect(list).toMatchObject({ watch: false });
    expect(watch).toMatchObject({ watch: true, resourceVersion: '102' });
  });

  it('sends its field and label selectors with the list and the watch', async () => {
    const { server, informer, watching } = await setup({ fieldSelector: 'metadata.name=a', labelSelector: 'app=x' });
    await informer.start();
    await watching(1);
    expect(server.requests.map((r) => [r.watch, r.fieldSelector, r.labelSelector])).toEqual([
      [false, 'metadata.name=a', 'app=x'],
      [true, 'metadata.name=a', 'app=x'],
    ]);
  });

  it('relists after 410 Gone, reporting only what changed meanwhile, without a back-off', async () => {
    const { server, informer, events, sets, clock, watching } = await setup();
    server.put('keep', { v: '1' });
    server.put('change', { v: '1' });
    server.put('gone', { v: '1' });
    await informer.start();
    await watching(1);
    events.length = 0;
    sets.length = 0;
    // Changes the watch does not see, then the history is compacted and the watch ends: the
    // re-watch from the old resourceVersion gets 410 Expired and the informer lists again.
    server.put('change', { v: '2' }, true);
    server.remove('gone', true);
    server.put('new', { v: '1' }, true);
    server.compact();
    server.endWatches();
    await waitFor('the relist', () => server.requests.filter((r) => !r.watch).length === 2 && sets.length === 1);
    expect(events).toEqual([['delete', 'gone'], ['update', 'change', '2'], ['add', 'new', '1']]);
    expect(sets).toEqual([['change=2', 'keep=1', 'new=1']]);
    expect(clock.delays).toEqual([]);
    await watching(1);
  });

  it('retries failed lists and watches with the growing back-off, resets it once data flows, and loses nothing', async () => {
    const { server, informer, events, clock, lines, watching } = await setup();
    server.put('a', { v: '1' });
    server.failNext = 3;
    await informer.start();
    expect(informer.hasSynced).toBe(false);
    for (const [attempt, delay] of [
      [1, 1000],
      [2, 2000],
      [3, 4000],
    ]) {
      await waitFor(`retry timer ${attempt}`, () => clock.pendingTimers === 1);
      // Nothing is tried again before the back-off has passed.
      expect(server.requests).toHaveLength(attempt);
      expect(clock.delays.at(-1)).toBe(delay);
      clock.advance(delay - 1);
      expect(server.requests).toHaveLength(attempt);
      clock.advance(1);
    }
    await informer.whenSynced();
    expect(events).toEqual([['add', 'a', '1']]);
    expect(lines().filter((line) => line.msg === 'list/watch failed; retrying after a back-off')).toHaveLength(3);
    await watching(1);

    // A cut watch: retried after the (reset) first delay, from the last resourceVersion, so the
    // events meanwhile arrive once each.
    server.cutWatches();
    await watching(0);
    await waitFor('the retry timer or the re-opened watch', () => clock.pendingTimers === 1 || server.openWatches === 1);
    server.put('b', { v: '1' });
    server.put('a', { v: '2' });
    if (clock.pendingTimers === 1) {
      expect(clock.delays.at(-1)).toBe(1000);
      clock.advance(1000);
    }
    await waitFor('the events made while cut', () => events.length === 3);
    expect(events).toEqual([['add', 'a', '1'], ['add', 'b', '1'], ['update', 'a', '2']]);
    expect(server.requests.filter((r) => !r.watch)).toHaveLength(4);
  });

  it('stop() ends the watch, cancels a pending retry and reports nothing after', async () => {
    const { server, informer, events, clock, watching } = await setup();
    await informer.start();
    await watching(1);
    await informer.stop();
    await watching(0);
    server.put('late', { v: '1' });
    expect(events).toEqual([]);

    const second = await setup();
    second.server.failNext = 1;
    await second.informer.start();
    await waitFor('the retry timer', () => second.clock.pendingTimers === 1);
    await second.informer.stop();
    expect(second.clock.pendingTimers).toBe(0);
    expect(second.server.requests).toHaveLength(1);
    expect(clock.pendingTimers).toBe(0);

    // Stopped while its list is in flight: the list still arrives, but no watch stays open.
    const third = await setup();
    const release = third.server.holdLists();
    const starting = third.informer.start();
    await waitFor('the list request', () => third.server.requests.length === 1);
    await third.informer.stop();
    release();
    await starting;
    await waitFor('no watch left open', () => third.server.openWatches === 0, 3000);
    expect(third.events).toEqual([]);
  });
});
