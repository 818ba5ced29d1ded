/**
 * Standing chaos (issue 25): kill -9 loops of each component, bounded in rounds and time.
 * - control plane, file store: writers create and update objects in bursts, the process is
 *   killed mid-burst and started again; every acknowledged write is found (an object's value is
 *   at least its last acknowledged one and at most its last attempted one), nothing is
 *   duplicated (resourceVersions unique) and revisions never go back.
 * The agent, overlay and proxy loops are further down this file.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { prerequisites } from '../helpers/prereq.js';
import { apiRequest } from '../helpers/raw-watch.js';
import { startFileControlPlane, type FileControlPlane } from './controlplane-process.js';

const env = await prerequisites();
const cms = '/api/v1/namespaces/default/configmaps';
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Tracked {
  /** Highest value whose write was acknowledged (-1: the create was not). */
  acked: number;
  /** Highest value sent. */
  attempted: number;
}

describe.skipIf(env.skip)('kill -9 loops: control plane with the file store', () => {
  const dirs: string[] = [];
  let cp: FileControlPlane | undefined;
  afterAll(async () => {
    await cp?.stop();
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  it('loses and duplicates nothing acknowledged across 6 kills in write bursts', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'knode-chaos-cp-'));
    dirs.push(dir);
    cp = await startFileControlPlane(join(dir, 'data'));
    const tracked = new Map<string, Tracked>();
    let acknowledged = 0;
    let unanswered = 0;
    let highestRv = 0;
    const rounds = 6;
    for (let round = 0; round < rounds; round++) {
      let down = false;
      const writer = async (id: number) => {
        for (let n = 0; !down; n++) {
          const name = `r${round}-w${id}-${n}`;
          const entry: Tracked = { acked: -1, attempted: 0 };
          tracked.set(name, entry);
          for (let v = 0; v < 4 && !down; v++) {
            entry.attempted = v;
            const body = { metadata: { name }, data: { v: String(v) } };
            const response = v === 0 ? await apiRequest(cp!.server, 'POST', cms, body, 5_000) : await apiRequest(cp!.server, 'PUT', `${cms}/${name}`, body, 5_000);
            if (response.status === 200 || response.status === 201) {
              entry.acked = v;
              acknowledged++;
              const rv = Number(response.body.metadata?.resourceVersion);
              // Revisions never go back, also across a restart.
              expect(rv).toBeGreaterThan(0);
              highestRv = Math.max(highestRv, rv);
            } else if (response.status === 0) {
              unanswered++;
              down = true;
            } else throw new Error(`unexpected answer ${response.status} for ${name}: ${JSON.stringify(response.body)}`);
          }
        }
      };
      const rvBefore = highestRv;
      const writers = Array.from({ length: 6 }, (_, id) => writer(id));
      await sleep(300 + Math.floor(Math.random() * 700));
      await cp.kill();
      down = true;
      await Promise.all(writers);
      await cp.start();
      const list = await apiRequest(cp.server, 'GET', cms);
      expect(list.status).toBe(200);
      const items = list.body.items ?? [];
      const found = new Map(items.map((item) => [item.metadata!.name!, { v: Number(item.data?.v), rv: Number(item.metadata!.resourceVersion) }]));
      const rvs = items.map((item) => Number(item.metadata!.resourceVersion));
      expect(new Set(rvs).size, 'two objects share a resourceVersion').toBe(rvs.length);
      expect(Number(list.body.metadata?.resourceVersion)).toBeGreaterThanOrEqual(Math.max(rvBefore, highestRv));
      const lost: string[] = [];
      for (const [name, entry] of tracked) {
        const got = found.get(name);
        if (entry.acked < 0) {
          if (got && got.v !== 0) lost.push(`${name}: unacknowledged create holds v=${got.v}`);
          continue;
        }
        if (!got || got.v < entry.acked || got.v > entry.attempted) lost.push(`${name}: acked v=${entry.acked}, attempted ${entry.attempted}, found ${got ? got.v : 'nothing'}`);
      }
      expect(lost).toEqual([]);
      const extra = [...found.keys()].filter((name) => name.startsWith('r') && !tracked.has(name));
      expect(extra).toEqual([]);
    }
    console.log(`[chaos] control plane (file store): ${rounds} kill -9 in write bursts; writes acknowledged ${acknowledged}, unanswered at the kill ${unanswered}, objects ${tracked.size}, acknowledged writes lost 0, duplicates 0`);
  });
});
