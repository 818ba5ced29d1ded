/**
 * Standing chaos (issue 25): kill -9 loops of each component, bounded in rounds and time.
 * - control plane, file store: writers create and update objects in bursts, the process is
 *   killed mid-burst and started again; every acknowledged write is found (an object's value is
 *   at least its last acknowledged one and at most its last attempted one), nothing is
 *   duplicated (resourceVersions unique) and revisions never go back.
 * The agent, overlay and proxy loops are further down this file, each in its own test netns.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
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
import { knodeBin } from '../e2e/helpers-kubectl.js';
import { TestNetwork } from '../helpers/netns.js';
import { bridgeLoopbackInto, type LoopbackBridge } from '../helpers/loopback-bridge.js';
import { buildOverlayNodes } from '../integration/overlay-nodes.js';
import { service, slice } from '../unit/proxy-fixtures.js';
import { writeKubeconfig } from '../../controlplane/kubeconfig.js';
import { buildPluginKit, type PluginKit } from '../helpers/cni-harness.js';
import { nodeApi, startOverlay, stopProcess, writeNetConf, type ClusterNode } from '../helpers/overlay-cluster.js';

const env = await prerequisites();
const agentEnv = await prerequisites('root', 'docker', 'command:ip', 'command:nsenter');
const agentUnavailable = agentEnv.skip ? undefined : await agentNodeUnavailable();
if (agentUnavailable && process.env.CI === 'true') throw new Error(agentUnavailable);
const overlayEnv = await prerequisites('root', 'command:ip', 'command:bridge', 'command:nsenter', 'command:iptables');
const proxyEnv = await prerequisites('root', 'command:ip', 'command:iptables-save');
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
        // A sandbox whose CNI ADD the kill interrupted is NotReady and replaced, never adopted
        // without a network (cri/docker/sandbox.ts networkAttached): every pod gets its podIP.
        if (status.podIP) ips.push(status.podIP);
        else withoutIp++;
      }
      const perPod = await view();
      if (names.some((name) => perPod.get(name)?.sandboxes !== 1 || perPod.get(name)?.containers.length !== 2)) return undefined;
      if (withoutIp > 0) return undefined;
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
    expect(missingIp, 'pods Running without a podIP').toBe(0);
    // Interrupted ADDs leave no address behind once the agent's network GC has run.
    const held = await waitFor('one IPAM address per pod', async () => {
      const count = ipamFiles(join(node!.dir, 'ipam'), node!.dir);
      return count === names.length ? count : undefined;
    }, 60_000, 1_000).catch(() => ipamFiles(join(node!.dir, 'ipam'), node!.dir));
    console.log(`[chaos] agent: ${kills} kill -9 with pods starting; pods ${names.length}, running containers ${names.length * 2} + ${names.length} sandboxes, duplicates 0, lost 0; IPAM addresses held ${held} for ${names.length} pods; pods Running without a podIP at the end ${missingIp}`);
    expect(held, 'IPAM addresses held').toBe(names.length);
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

/** Polls a kernel-state snapshot until two reads a second apart agree and `ready` holds. */
async function settledState(what: string, read: () => Promise<string>, ready: (state: string) => boolean, timeoutMs = 120_000): Promise<string> {
  let last = '';
  return waitFor(what, async () => {
    const state = await read();
    const same = state === last && ready(state);
    last = state;
    return same ? state : undefined;
  }, timeoutMs, 1_000);
}

/**
 * - overlay: `knode overlay` on node 1 of three is killed with SIGKILL and started again, three
 *   times; the VXLAN device, routes, ARP and FDB entries and masquerade rules converge to the
 *   same state; when node 3 is deleted while it is down, it converges to that state without
 *   node 3's entries.
 */
describe.skipIf(overlayEnv.skip)('kill -9 loops: overlay', () => {
  const net = new TestNetwork();
  const bridges: LoopbackBridge[] = [];
  const nodes: ClusterNode[] = [];
  let kit: PluginKit | undefined;
  let cp: TestControlPlane | undefined;
  afterAll(async () => {
    await Promise.all(nodes.map((node) => stopProcess(node.daemon, 'SIGKILL')));
    for (const bridge of bridges) await bridge.stop();
    await net.cleanup();
    await cp?.stop();
    kit?.cleanup();
  });

  it('converges to the same kernel state after each of 3 kills', async () => {
    kit = await buildPluginKit('knt-ovk-', true);
    cp = await startTestControlPlane({ controllers: false });
    const netConf = writeNetConf(join(kit.dir, 'conf'));
    nodes.push(...(await buildOverlayNodes(net, cp, kit, { count: 3, underlayPrefix: '192.168.79', nameSuffix: 'k', podCIDR: (i) => `10.244.${i}.0/24` }, bridges)));
    await Promise.all(nodes.map((node) => startOverlay(kit!, node, netConf, 'ul0')));
    const n1 = nodes[0]!;
    const snapshot = async () => {
      const parts = await Promise.all([
        n1.ns.ip('-d', 'link', 'show', 'flannel.1'),
        n1.ns.ip('-4', 'route', 'show'),
        n1.ns.ip('neigh', 'show', 'dev', 'flannel.1'),
        n1.ns.exec(['bridge', 'fdb', 'show', 'dev', 'flannel.1']),
        n1.ns.exec(['iptables', '-w', '-t', 'nat', '-S']),
        n1.ns.exec(['iptables', '-w', '-t', 'filter', '-S']),
      ]);
      return parts.map((part) => part.stdout.split('\n').map((line) => line.trim()).filter((line) => line !== '').sort().join('\n')).join('\n--\n');
    };
    const peers = (count: number) => (state: string) => (state.match(/ via 10\.244\.\d\.0 dev flannel\.1 onlink/g) ?? []).length === count;
    const initial = await settledState('the overlay on node 1 to program both peers', snapshot, peers(2));
    let kills = 0;
    for (let round = 0; round < 3; round++) {
      await stopProcess(n1.daemon, 'SIGKILL');
      kills++;
      const last = round === 2;
      // In the last round node 3 goes away while node 1's overlay is down.
      if (last) await nodeApi(cp.kubeconfigPath).deleteNode({ name: nodes[2]!.name });
      await startOverlay(kit, n1, netConf, 'ul0');
      const after = await settledState(`node 1's overlay to converge after kill ${kills}`, snapshot, peers(last ? 1 : 2));
      const expected = last ? initial.split('\n').filter((line) => !line.includes('10.244.3.') && !line.includes('192.168.79.3 ')).join('\n') : initial;
      expect(after).toBe(expected);
    }
    console.log(`[chaos] overlay: ${kills} kill -9 of node 1's overlay (one with a node deleted meanwhile); kernel state converged each time (${initial.split('\n').length} lines compared)`);
  });
});

/**
 * - proxy: `knode proxy` (iptables mode) in a node netns is killed with SIGKILL and started
 *   again; the rules are the same as before; after a kill during which a Service is deleted and
 *   an EndpointSlice changes, the rules equal those of a clean start (`--cleanup`, then a fresh
 *   proxy) on the same API state.
 */
describe.skipIf(proxyEnv.skip)('kill -9 loops: proxy', () => {
  const net = new TestNetwork();
  let bridge: LoopbackBridge | undefined;
  let cp: TestControlPlane | undefined;
  let proxy: ChildProcess | undefined;
  let dir = '';
  let output = '';
  afterAll(async () => {
    await stopProcess(proxy, 'SIGKILL');
    await bridge?.stop();
    await net.cleanup();
    await cp?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('programs the same rules after each of 3 kills, and a clean start agrees', async () => {
    dir = mkdtempSync(join(tmpdir(), 'knode-chaos-proxy-'));
    cp = await startTestControlPlane({ controllers: false });
    const node = await net.node('pxk');
    bridge = await bridgeLoopbackInto(node.name, cp.port);
    const kubeconfig = join(dir, 'kubeconfig');
    writeKubeconfig(kubeconfig, { server: `http://127.0.0.1:${bridge.port}` });
    const config = join(dir, 'kube-proxy.yaml');
    writeFileSync(config, 'apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nclusterCIDR: 10.244.0.0/16\nhealthzBindAddress: 127.0.0.1:10256\nmetricsBindAddress: 127.0.0.1:10249\niptables:\n  minSyncPeriod: 1s\n  syncPeriod: 5s\n');
    const names = ['pa', 'pb', 'pc'];
    for (const [i, name] of names.entries()) {
      expect((await apiRequest(cp.url, 'POST', '/api/v1/namespaces/default/services', service(name, `10.96.7.${10 + i}`, [{ name: 'http', port: 80 }], {}, 'default'))).status).toBe(201);
      expect((await apiRequest(cp.url, 'POST', '/apis/discovery.k8s.io/v1/namespaces/default/endpointslices', slice(name, [{ name: 'http', port: 80 }], [{ ip: `10.244.9.${10 + i}` }, { ip: `10.244.9.${20 + i}` }], 'default'))).status).toBe(201);
    }
    const start = () => {
      proxy = spawn('nsenter', [`--net=${node.path}`, '--', process.execPath, knodeBin, 'proxy', '--kubeconfig', kubeconfig, '--config', config, '--hostname-override', 'pxk', '--log-level', 'warn'], { stdio: ['ignore', 'ignore', 'pipe'] });
      proxy.stderr!.on('data', (chunk: Buffer) => (output = (output + chunk.toString()).slice(-20_000)));
    };
    const snapshot = async () => {
      // The proxy programs the nft backend here; the legacy one must hold none of its rules
      // (`--cleanup` may leave it empty tables, which is not proxy state).
      const legacy = (await node.exec(['iptables-legacy-save'], { allowFailure: true })).stdout;
      if (/KUBE-/.test(legacy)) throw new Error(`proxy rules in the legacy backend: ${legacy}`);
      const text = (await node.exec(['iptables-save'])).stdout;
      return text.split('\n').filter((line) => !line.startsWith('#')).map((line) => line.replace(/ \[\d+:\d+\]$/, '')).join('\n');
    };
    // Ours only (the API also has default/kubernetes).
    const services = (count: number) => (state: string) => (state.match(/^-A KUBE-SERVICES .*default\/p[abc]:http.*-j KUBE-SVC-/gm) ?? []).length === count;
    start();
    const initial = await settledState('the proxy to program 3 services', snapshot, services(3)).catch(async (error: unknown) => {
      throw new Error(`${(error as Error).message}; proxy output: ${output.slice(-3000)}; rules: ${(await snapshot()).slice(0, 3000)}`, { cause: error });
    });
    let kills = 0;
    for (let round = 0; round < 3; round++) {
      await stopProcess(proxy, 'SIGKILL');
      kills++;
      const last = round === 2;
      if (last) {
        expect((await apiRequest(cp.url, 'DELETE', '/api/v1/namespaces/default/services/pb')).status).toBe(200);
        expect((await apiRequest(cp.url, 'DELETE', '/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/pb-abc')).status).toBe(200);
        const changed = slice('pa', [{ name: 'http', port: 80 }], [{ ip: '10.244.9.30' }], 'default');
        expect((await apiRequest(cp.url, 'PUT', '/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/pa-abc', changed)).status).toBe(200);
      }
      start();
      const after = await settledState(`the proxy to converge after kill ${kills}`, snapshot, (state) => services(last ? 2 : 3)(state) && (!last || state.includes('10.244.9.30')));
      if (!last) {
        expect(after).toBe(initial);
        continue;
      }
      await stopProcess(proxy, 'SIGTERM');
      const cleanup = await node.exec([process.execPath, knodeBin, 'proxy', '--cleanup'], { allowFailure: true, timeoutMs: 60_000 });
      expect(cleanup.code, cleanup.stderr).toBe(0);
      start();
      const clean = await settledState('a clean proxy start to program 2 services', snapshot, services(2));
      expect(after).toBe(clean);
      expect(after).not.toBe(initial);
    }
    console.log(`[chaos] proxy: ${kills} kill -9 (one with a Service deleted and an EndpointSlice changed meanwhile); rules converged each time (${initial.split('\n').length} lines compared)`);
  }, 420_000); // five proxy starts; a start alone took 20 s at load 15 on 2 cores
});
