/**
 * The shutdown manager's failure path without logind (agent/node/shutdown.ts): no system bus →
 * start() rejects with a clear error instead of waiting forever (dbus-next only emits 'error'),
 * and admission lets every pod through while no shutdown is in progress. The D-Bus side with a
 * real systemd-logind: test/e2e/graceful-shutdown.test.ts.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { V1Pod } from '@kubernetes/client-node';
import { afterAll, describe, expect, it } from 'vitest';
import { ShutdownManager, createShutdownManager } from '../../agent/node/shutdown.js';
import { loadKubeletConfig } from '../../lib/config/kubelet.js';
import { createLogger } from '../../lib/log.js';

const dir = mkdtempSync(join(tmpdir(), 'knode-shutdown-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const manager = (busAddress: string) =>
  new ShutdownManager({
    groups: [{ priority: 0, shutdownGracePeriodSeconds: 5 }],
    pods: { active: () => [], kill: () => undefined },
    setStatus: () => undefined,
    onShuttingDown: async () => undefined,
    flushStatuses: async () => undefined,
    events: { record: () => undefined },
    node: () => ({ name: 'n' }),
    log: createLogger('test', 'silent'),
    busAddress,
  });

describe('ShutdownManager without logind', () => {
  it('start() rejects with the bus address when the system bus is not there', async () => {
    const m = manager(`unix:path=${join(dir, 'no-bus')}`);
    await expect(m.start()).rejects.toThrow(`cannot connect to the system D-Bus at unix:path=${join(dir, 'no-bus')}`);
    expect(m.inhibitorHeld).toBe(false);
    await m.stop();
  });

  it('admits every pod while no shutdown is in progress; Ready is not touched', () => {
    const m = manager(`unix:path=${join(dir, 'no-bus')}`);
    const pods = new Map<string, V1Pod>([['a', { metadata: { uid: 'a', name: 'a' } }], ['b', { metadata: { uid: 'b', name: 'b' } }]]);
    expect([...m.admit(pods, () => false).keys()]).toEqual(['a', 'b']);
    expect(m.notReadyMessage()).toBeUndefined();
  });

  it('is not created when graceful shutdown is off (no grace period)', () => {
    const agent = {} as Parameters<typeof createShutdownManager>[0];
    expect(createShutdownManager(agent, loadKubeletConfig().config, 'n', undefined, createLogger('test', 'silent'))).toBeUndefined();
  });
});
