/**
 * Standing chaos (issue 25): kill -9 loops of each component, bounded in rounds and time.
 * - control plane, file store: writers create and update objects in bursts, the process is
 *   killed mid-burst and started again; every acknowledged write is found (an object's value is
 *   at least its last acknowledged one and at most its last attempted one), nothing is
 *   duplicated (resourceVersions unique) and revisions never go back.
 * The agent, overlay and proxy loops are further down this file.
 */
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { prerequisites } from '../helpers/prereq.js';
import { apiRequest } from '../helpers/raw-watch.js';
import { startFileControlPlane, type FileControlPlane } from './controlplane-process.js';
import { startTestControlPlane, type TestControlPlane } from '../helpers/controlplane.js';
import { testDocker } from '../helpers/docker.js';
import { waitFor } from '../helpers/wait.js';
import { busyboxSpec, ensureLocalImage } from '../../cri/local-images.js';
import { agentNodeUnavailable, startAgentNode, type AgentNode } from '../e2e/helpers-node.js';

const env = await prerequisites();
const agentEnv = await prerequisites('root', 'docker', 'command:ip', 'command:nsenter');
const agentUnavailable = agentEnv.skip ? undefined : await agentNodeUnavailable();
if (agentUnavailable && process.env.CI === 'true') throw new Error(agentUnavailable);
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

/**
 * - agent: pods are created through the API and the agent is killed with SIGKILL while they
 *   are being started (0.2–1.5 s after), three rounds; after each restart every pod runs with
 *   exactly one sandbox and one container per spec container, pods that ran before keep their
 *   containers, and no two pods share an IP.
 */
describe.skipIf(agentEnv.skip || agentUnavailable !== undefined)('kill -9 loops: agent with pods in flight', () => {
  let cp: TestControlPlane | undefined;
  let node: AgentNode | undefined;
  afterAll(async () => {
    await node?.stop();
    await cp?.stop();
  });

  it('duplicates and loses no container across 3 kills with pods starting', async () => {
    cp = await startTestControlPlane({ controllers: false });
    const docker = await testDocker();
    const busybox = await ensureLocalImage(docker, busyboxSpec);
    node = await startAgentNode({ controlPlane: cp, docker, name: 'kill' });
    const nodeName = node.nodeName;
    const scope = node.scopeLabel;
    await waitFor('node registered', async () => (await apiRequest(cp!.url, 'GET', `/api/v1/nodes/${nodeName}`)).status === 200, 60_000, 250);
    const names: string[] = [];
    const stable = new Map<string, string>();
    const rounds = 3;
    let kills = 0;
    let missingIp = 0;
    const view = async () => {
      const all = await docker.listContainers({ all: true, filters: { label: [scope] } });
      const running = all.filter((c) => c.State === 'running');
      const perPod = new Map<string, { sandboxes: number; containers: string[] }>();
      for (const c of running) {
        const pod = c.Labels['io.kubernetes.pod.name'] ?? '?';
        const entry = perPod.get(pod) ?? { sandboxes: 0, containers: [] };
        if (c.Labels['io.kubernetes.container.name'] === 'POD') entry.sandboxes++;
        else entry.containers.push(`${c.Labels['io.kubernetes.container.name']}=${c.Id}`);
        perPod.set(pod, entry);
      }
      return perPod;
    };
    const settled = async () => {
      const ips: string[] = [];
      let withoutIp = 0;
      for (const name of names) {
        const got = await apiRequest(cp!.url, 'GET', `/api/v1/namespaces/default/pods/${name}`, undefined, 3_000);
        const status = got.body.status as { phase?: string; podIP?: string } | undefined;
        if (status?.phase !== 'Running') return undefined;
        // Measured, not required here: a pod adopted after a kill mid-start can be reported
        // Running without its podIP (seen on this suite's first runs; reported in the note).
        if (status.podIP) ips.push(status.podIP);
        else withoutIp++;
      }
      const perPod = await view();
      if (names.some((name) => perPod.get(name)?.sandboxes !== 1 || perPod.get(name)?.containers.length !== 2)) return undefined;
      return { ips, perPod, withoutIp };
    };
    for (let round = 0; round < rounds; round++) {
      for (let i = 0; i < 3; i++) {
        const name = `k${round}-${i}`;
        names.push(name);
        const pod = { metadata: { name }, spec: { nodeName, terminationGracePeriodSeconds: 1, containers: ['a', 'b'].map((c) => ({ name: c, image: busybox, imagePullPolicy: 'Never', command: ['sleep', '3600'] })) } };
        expect((await apiRequest(cp.url, 'POST', '/api/v1/namespaces/default/pods', pod)).status).toBe(201);
      }
      await sleep(200 + Math.floor(Math.random() * 1300));
      await node.restartAgent('SIGKILL');
      kills++;
      const state = await waitFor(`all ${names.length} pods running once after kill ${kills}`, settled, 90_000, 500).catch(async (error: unknown) => {
        const phases = await Promise.all(names.map(async (name) => `${name}:${JSON.stringify((await apiRequest(cp!.url, 'GET', `/api/v1/namespaces/default/pods/${name}`)).body.status).slice(0, 600)}`));
        const containers = [...(await view())].map(([pod, entry]) => `${pod}: ${entry.sandboxes} sandboxes, ${entry.containers.length} containers`);
        throw new Error(`${(error as Error).message}; pods ${phases.join(' ')}; running ${containers.join('; ')}; agent log tail: ${node!.logs().slice(-3000)}`, { cause: error });
      });
      // Hold still a moment: a duplicate or a late restart would show now.
      await sleep(3_000);
      const again = await settled();
      expect(again, 'pods stopped running after they settled').toBeDefined();
      const perPod = again!.perPod;
      expect([...perPod.keys()].sort()).toEqual([...names].sort());
      for (const [pod, entry] of perPod) {
        expect(entry.sandboxes, `sandboxes of ${pod}`).toBe(1);
        expect(entry.containers, `containers of ${pod}`).toHaveLength(2);
        const ids = entry.containers.sort().join(',');
        if (stable.has(pod)) expect(ids, `${pod} kept its containers across the kill`).toBe(stable.get(pod));
        stable.set(pod, ids);
      }
      expect(new Set(state.ips).size, 'two pods share an IP').toBe(state.ips.length);
      missingIp = again!.withoutIp;
    }
    const held = ipamFiles(join(node.dir, 'ipam'), node.dir);
    console.log(`[chaos] agent: ${kills} kill -9 with pods starting; pods ${names.length}, running containers ${names.length * 2} + ${names.length} sandboxes, duplicates 0, lost 0; IPAM addresses held ${held} for ${names.length} pods; pods Running without a podIP at the end ${missingIp}`);
  });
});

function ipamFiles(dir: string, nodeDir: string): number {
  if (!existsSync(dir)) throw new Error(`no IPAM store at ${dir}; the node dir holds ${readdirSync(nodeDir).join(', ')}`);
  let count = 0;
  const walk = (path: string) => {
    for (const entry of readdirSync(path, { withFileTypes: true })) {
      if (entry.isDirectory()) walk(join(path, entry.name));
      else if (/^\d+\.\d+\.\d+\.\d+$/.test(entry.name)) count++;
    }
  };
  walk(dir);
  return count;
}
