import { describe, expect, it } from 'vitest';
import { createLogger } from '../../lib/log.js';
import { FakeClock, FakeImageStore } from '../helpers/eviction-fakes.js';
import { loadKubeletConfig } from '../../lib/config/kubelet.js';
import { bytesToFree, detectImages, ImageGCManager, imageGCPolicyFromKubelet, selectImagesToFree, type ImageRecord } from '../../eviction/image-gc.js';

const silent = createLogger('image-gc-test', 'silent');
const policy = { highThresholdPercent: 85, lowThresholdPercent: 80, minAgeMs: 120_000, maxAgeMs: 0 };

describe('bytesToFree (kubelet GarbageCollect arithmetic)', () => {
  it.each([
    ['under the high threshold', 1000, 200, 0], // 80% used
    ['at the high threshold', 1000, 150, 50], // 85% used → down to 80% = 200 available
    ['far above', 1000, 10, 190],
    ['available clamped to capacity', 1000, 5000, 0],
    ['no capacity', 0, 0, 0],
  ])('%s', (_name, capacity, available, expected) => {
    expect(bytesToFree(capacity, available, policy)).toBe(expected);
  });
});

describe('image GC policy', () => {
  it('comes from the KubeletConfiguration defaults; 100% disables GC', () => {
    const { config } = loadKubeletConfig();
    expect(imageGCPolicyFromKubelet(config)).toEqual({ highThresholdPercent: 85, lowThresholdPercent: 80, minAgeMs: 120_000, maxAgeMs: 0 });
    expect(bytesToFree(1000, 0, { ...policy, highThresholdPercent: 100 })).toBe(0);
  });
});

describe('selectImagesToFree', () => {
  const rec = (firstDetected: number, lastUsed: number, size: number, pinned = false): ImageRecord => ({ firstDetected, lastUsed, size, pinned });
  const records = new Map<string, ImageRecord>([
    ['never-used-old', rec(0, 0, 10)],
    ['never-used-older', rec(-10, 0, 10)],
    ['used-long-ago', rec(0, 50, 10)],
    ['used-recently', rec(0, 900, 10)],
    ['in-use', rec(0, 1000, 10)],
    ['pinned', rec(0, 0, 10, true)],
    ['too-young', rec(950, 0, 10)],
  ]);
  const inUse = new Set(['in-use']);
  it.each([
    ['oldest last-used first, ties by first detected', 30, ['never-used-older', 'never-used-old', 'used-long-ago']],
    ['everything eligible', Number.MAX_SAFE_INTEGER, ['never-used-older', 'never-used-old', 'used-long-ago', 'used-recently']],
    ['stops once enough is freed', 1, ['never-used-older']],
    ['nothing wanted', 0, []],
  ])('%s', (_name, bytes, expected) => {
    expect(selectImagesToFree(records, inUse, 1000, 100, bytes)).toEqual(expected);
  });
});

describe('detectImages', () => {
  it('keeps first detection, refreshes last use for images in use, drops gone images', () => {
    const first = detectImages(new Map(), [{ id: 'a', sizeBytes: 1, repoTags: [] }, { id: 'b', sizeBytes: 2, repoTags: [] }], new Set(['b']), 100);
    expect(first.get('a')).toEqual({ firstDetected: 100, lastUsed: 0, size: 1, pinned: false });
    expect(first.get('b')).toEqual({ firstDetected: 100, lastUsed: 100, size: 2, pinned: false });
    const second = detectImages(first, [{ id: 'b', sizeBytes: 2, repoTags: [] }], new Set(), 200);
    expect([...second.keys()]).toEqual(['b']);
    expect(second.get('b')).toEqual({ firstDetected: 100, lastUsed: 100, size: 2, pinned: false });
  });
});

describe('ImageGCManager over a fake store', () => {
  const images = () => [
    { id: 'old', sizeBytes: 100, repoTags: ['old:1'] },
    { id: 'used', sizeBytes: 300, repoTags: ['used:1'] },
    { id: 'mid', sizeBytes: 100, repoTags: ['mid:1'] },
    { id: 'new', sizeBytes: 100, repoTags: ['new:1'] },
    { id: 'pinned', sizeBytes: 100, repoTags: ['pause:1'], pinned: true },
  ];

  it('frees unused images down to the low threshold, oldest last-used first, never one in use', async () => {
    const clock = new FakeClock(1000);
    // 1000 bytes: 700 images + 200 other = 90% used; low 80% → free 100 bytes.
    const store = new FakeImageStore(images(), new Set(['mid']), { capacityBytes: 1000, otherUsedBytes: 200 });
    const gc = new ImageGCManager(store, policy, { clock, logger: silent });
    await gc.detect(); // mid in use at t=0
    store.inUse = new Set(['used']);
    clock.advance(200_000);
    const result = await gc.garbageCollect();
    expect(result).toEqual({ removed: ['old'], freedBytes: 100, wantedBytes: 100 });
    // Under the high threshold now (80% used): nothing more.
    expect((await gc.garbageCollect()).removed).toEqual([]);
    store.fs.otherUsedBytes = 400; // 100% used → free 200: "new" (never used) before "mid" (used at t=0)
    clock.advance(1000);
    expect((await gc.garbageCollect()).removed).toEqual(['new', 'mid']);
    expect(store.images.map((i) => i.id).sort()).toEqual(['pinned', 'used']);
  });

  it('respects imageMinimumGCAge and reports what it could not free', async () => {
    const clock = new FakeClock(0);
    const store = new FakeImageStore(images(), new Set(), { capacityBytes: 1000, otherUsedBytes: 300 });
    const gc = new ImageGCManager(store, policy, { clock, logger: silent });
    await gc.detect();
    clock.advance(60_000); // younger than 2 minutes
    expect(await gc.garbageCollect()).toEqual({ removed: [], freedBytes: 0, wantedBytes: 200 });
  });

  it('deleteUnusedImages (eviction reclaim) removes every eligible unused image', async () => {
    const clock = new FakeClock(0);
    const store = new FakeImageStore(images(), new Set(['used']));
    const gc = new ImageGCManager(store, { ...policy, minAgeMs: 0 }, { clock, logger: silent });
    clock.advance(1);
    expect(await gc.deleteUnusedImages()).toBe(300);
    expect(store.removed.sort()).toEqual(['mid', 'new', 'old']);
  });

  it('imageMaximumGCAge removes images unused for longer than it, whatever the disk usage, once MaxAge has passed since start', async () => {
    const clock = new FakeClock(1000);
    const store = new FakeImageStore(images(), new Set(['old', 'mid', 'new']));
    const gc = new ImageGCManager(store, { ...policy, maxAgeMs: 60_000 }, { clock, logger: silent });
    await gc.detect();
    store.inUse = new Set(['mid']);
    clock.advance(30_000);
    await gc.garbageCollect();
    expect(store.removed).toEqual([]); // not yet MaxAge since start
    store.inUse = new Set(['mid', 'new']);
    clock.advance(31_000);
    await gc.detect(); // "new" is last used now
    store.inUse = new Set(['mid']);
    await gc.garbageCollect();
    expect(store.removed.sort()).toEqual(['old', 'used']);
  });

  it('rejects a bad policy or schedule', () => {
    const store = new FakeImageStore([]);
    expect(() => new ImageGCManager(store, { ...policy, lowThresholdPercent: 90 }, { logger: silent })).toThrow(/must be lower/);
    expect(() => new ImageGCManager(store, policy, { logger: silent, schedule: 'every now and then' })).toThrow(/invalid image GC schedule/);
  });

  it('runs on its node-cron schedule', async () => {
    const store = new FakeImageStore(images(), new Set(), { capacityBytes: 1000, otherUsedBytes: 300 });
    const gc = new ImageGCManager(store, { ...policy, minAgeMs: 0 }, { logger: silent, schedule: '* * * * * *' });
    gc.start();
    const deadline = Date.now() + 5000;
    while (store.removed.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    await gc.stop();
    expect(store.removed.length).toBeGreaterThan(0);
  });
});
