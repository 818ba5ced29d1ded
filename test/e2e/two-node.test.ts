/**
 * End-to-end acceptance on two nodes (issue 10): one control-plane stub (root 127.0.0.1, with its
 * scheduler, node IPAM, EndpointSlice and ClusterIP/NodePort allocation), two node netns joined by
 * an underlay bridge, each running `knode overlay` + `knode agent` + `knode proxy` as processes
 * (./helpers-cluster.ts), driven through kubectl:
 * - web pods on both nodes (scheduled by nodeSelector) behind a NodePort Service; a client pod on
 *   node A reaches the ClusterIP and gets answers from pods on BOTH nodes (through the overlay);
 * - the NodePort answers from an underlay-side netns on both nodes' addresses;
 * - a static pod on node B gets its mirror pod and is reachable across the overlay;
 * - a liveness failure restarts a container;
 * - a deleted pod leaves the Service's EndpointSlice within seconds and traffic keeps working;
 * - SIGKILL + restart of node A's agent restarts nothing and reports the status again
 *   (the kubelet adopts running pods: https://kubernetes.io/docs/concepts/workloads/pods/pod-lifecycle/).
 * Network safety: no netns has a default route, the root netns's links, addresses, routes and
 * iptables rules are the same before and after.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type Docker from 'dockerode';
import { PatchStrategy, setHeaderOptions, type V1Pod } from '@kubernetes/client-node';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../../lib/exec.js';
import { busyboxImage } from '../../cri/local-images.js';
import { testDocker } from '../helpers/docker.js';
import { prerequisites } from '../helpers/prereq.js';
import { waitFor as pollUntil } from '../helpers/wait.js';
import { clusterUnavailable, execInPod, startCluster, webPod, type ClusterNode, type TestCluster } from './helpers-cluster.js';

const env = await prerequisites('root', 'docker', 'command:ip', 'command:nsenter', 'command:kubectl', 'command:curl', 'command:iptables', 'command:perl');
const unavailable = clusterUnavailable();
if (unavailable && process.env.CI === 'true') throw new Error(`missing test prerequisite under CI=true: ${unavailable}`);
if (unavailable) console.warn(`skipping: ${unavailable}`);

const waitFor = <T>(what: string, probe: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 90_000): Promise<T> => pollUntil(what, probe, timeoutMs, 250);

/** The root netns's network state, minus counters and lifetimes (read only). */
async function rootNetworkState(): Promise<string> {
  const out = async (command: string[]) => (await run(command, { allowFailure: true, timeoutMs: 15_000 })).stdout;
  const links = (await out(['ip', '-o', 'link', 'show'])).split('\n').map((line) => line.split(': ')[1] ?? '').filter(Boolean);
  const addresses = (await out(['ip', '-o', 'addr', 'show'])).replace(/valid_lft \S+ preferred_lft \S+/g, '');
  const routes = await out(['ip', '-4', 'route', 'show', 'table', 'all']);
  const rules = (await out(['iptables-save'])).split('\n').filter((line) => !line.startsWith('#')).map((line) => line.replace(/\[\d+:\d+\]/, '')).join('\n');
  return [links.join(' '), addresses, routes, rules].join('\n----\n');
}

const sleeper = (name: string, node: string, extra: Record<string, unknown> = {}, command = 'exec sleep 3600'): V1Pod => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name },
  spec: { nodeName: node, terminationGracePeriodSeconds: 1, containers: [{ name: 'main', image: busyboxImage, command: ['sh', '-c', command], ...extra }] },
});

/**
 * `count` bounded HTTP GETs (nc -w 2) from inside a pod's container; one line per request: the
 * body's last line for a 200, FAIL otherwise. (busybox-static's wget segfaults in this image.)
 */
async function requestsFromPod(node: ClusterNode, pod: string, host: string, port: number, count: number): Promise<string[]> {
  const get = `r=$(printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 ${host} ${port} 2>/dev/null); case "$r" in "HTTP/1.1 200"*) echo "$r" | tail -n 1;; *) echo FAIL;; esac`;
  const script = `i=0; while [ $i -lt ${count} ]; do i=$((i+1)); ${get}; done`;
  return (await execInPod(node, pod, script, 30_000 + count * 3000)).split('\n').filter(Boolean);
}

describe.skipIf(env.skip || unavailable !== undefined)('two nodes: overlay + agent + proxy per node netns, driven by kubectl', () => {
  let docker: Docker;
  let cluster: TestCluster;
  let a: ClusterNode;
  let b: ClusterNode;
  let rootBefore: string;
  let clusterIP = '';
  let nodePort = 0;
  let appliedAt = 0;
  const webNames = ['web-a1', 'web-a2', 'web-b1', 'web-b2'];

  const kubectl = (...args: string[]) => cluster.kubectl(...args);
  const pod = async (name: string) => cluster.core.readNamespacedPod({ name, namespace: 'default' });
  const ready = (p: V1Pod) => p.status?.phase === 'Running' && (p.status.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');
  const sliceAddresses = async () => {
    const out = await kubectl('get', 'endpointslices', '-l', 'kubernetes.io/service-name=web', '-o', 'jsonpath={range .items[*].endpoints[*]}{.addresses[0]} {.conditions.ready}{"\\n"}{end}');
    return out.split('\n').filter(Boolean).map((line) => line.split(' ') as [string, string]);
  };
  const failWith = (error: unknown): never => {
    throw new Error(`${error instanceof Error ? error.message : String(error)}\n${cluster.diagnostics()}`, { cause: error });
  };

  beforeAll(async () => {
    rootBefore = await rootNetworkState();
    docker = await testDocker();
    const started = Date.now();
    cluster = await startCluster({ docker });
    console.log(`[two-node] control plane + 2 nodes (overlay, agent, proxy) ready in ${Date.now() - started} ms`);
    [a, b] = cluster.nodes as [ClusterNode, ClusterNode];
    const manifests = [
      ...webNames.map((name) => webPod(name, name.startsWith('web-a') ? a.name : b.name)),
      sleeper('client', a.name),
      sleeper('live', b.name, { livenessProbe: { exec: { command: ['cat', '/tmp/ok'] }, periodSeconds: 1, failureThreshold: 1 } }, 'touch /tmp/ok && exec sleep 3600'),
      { apiVersion: 'v1', kind: 'Service', metadata: { name: 'web' }, spec: { type: 'NodePort', selector: { app: 'web' }, ports: [{ name: 'http', port: 80, targetPort: 'http' }] } },
    ];
    const file = join(a.layout.dataDir, 'workload.yaml');
    writeFileSync(file, manifests.map((m) => stringify(m)).join('---\n'));
    await kubectl('apply', '-f', file);
    appliedAt = Date.now();
    const staticPod = webPod('static-web', b.name);
    delete staticPod.spec!.nodeSelector;
    staticPod.metadata!.labels = { app: 'static' };
    writeFileSync(join(b.layout.manifests, 'static-web.yaml'), stringify(staticPod));
  }, 240_000);

  afterAll(async () => {
    try {
      await cluster?.stop();
      if (cluster) {
        // Everything the cluster made is gone: containers (by scope label), netns, data dirs.
        for (const node of cluster.nodes) {
          expect(await docker.listContainers({ all: true, filters: { label: [node.scopeLabel] } })).toEqual([]);
          expect(existsSync(node.layout.dataDir)).toBe(false);
        }
        const left = (await run(['ip', 'netns', 'list'])).stdout;
        for (const netns of [...cluster.nodes.map((n) => n.netns), cluster.underlay, cluster.underlayClient]) expect(left).not.toContain(netns.name);
      }
    } finally {
      // The root netns is never changed (network safety rule, docs/architecture.md, "Testing").
      if (rootBefore) expect(await rootNetworkState()).toBe(rootBefore);
    }
  }, 120_000);

  it('each node has its own podCIDR, knode CNI conflist and no default route; web pods run on both nodes', async () => {
    for (const node of [a, b]) {
      const conflist = JSON.parse(readFileSync(join(node.layout.cniConfDir, '10-knode.conflist'), 'utf8')) as { plugins: { type: string }[] };
      expect(conflist.plugins.map((p) => p.type)).toEqual(['knode', 'portmap']);
      expect(await node.netns.hasNoDefaultRoute()).toBe(true);
      expect((await node.netns.ip('-o', 'link', 'show')).stdout).toMatch(/\bflannel\.1\b/);
    }
    expect(await cluster.underlayClient.hasNoDefaultRoute()).toBe(true);
    expect(await cluster.underlay.hasNoDefaultRoute()).toBe(true);
    // While both nodes run, the root netns has none of their devices, addresses, routes or rules.
    expect(await rootNetworkState()).toBe(rootBefore);
    const cidrs = await Promise.all([a, b].map(async (n) => (await cluster.core.readNode({ name: n.name })).spec?.podCIDR ?? ''));
    expect(cidrs[0]).toMatch(/^10\.244\.\d+\.0\/24$/);
    expect(cidrs[1]).toMatch(/^10\.244\.\d+\.0\/24$/);
    expect(cidrs[0]).not.toBe(cidrs[1]);
    const pods = await waitFor('the web pods Ready', async () => {
      const all = await Promise.all(webNames.map(pod));
      return all.every(ready) ? all : undefined;
    }, 150_000).catch(failWith);
    console.log(`[two-node] 4 web pods Ready ${Date.now() - appliedAt} ms after kubectl apply`);
    for (const p of pods) {
      const node = p.metadata!.name!.startsWith('web-a') ? 0 : 1;
      expect(p.spec!.nodeName).toBe([a, b][node]!.name);
      expect(p.status!.podIP!.split('.').slice(0, 3).join('.')).toBe(cidrs[node]!.split('.').slice(0, 3).join('.'));
    }
    const wide = await kubectl('get', 'pods', '-o', 'wide', '--no-headers');
    for (const name of webNames) expect(wide).toMatch(new RegExp(`^${name}\\s+1/1\\s+Running\\s+0\\s`, 'm'));
  }, 200_000);

  it('a client pod on node A reaches the ClusterIP and gets answers from pods on both nodes', async () => {
    const service = await cluster.core.readNamespacedService({ name: 'web', namespace: 'default' });
    clusterIP = service.spec!.clusterIP!;
    nodePort = service.spec!.ports![0]!.nodePort!;
    expect(clusterIP).toMatch(/^10\.(9[6-9]|10\d|11[01])\./);
    expect(nodePort).toBeGreaterThanOrEqual(30000);
    await waitFor('4 ready endpoints in the EndpointSlice', async () => {
      const endpoints = await sliceAddresses();
      return endpoints.length === 4 && endpoints.every(([, isReady]) => isReady === 'true');
    }).catch(failWith);
    await waitFor('the client pod Running', async () => ready(await pod('client'))).catch(failWith);
    await waitFor('a first answer through the ClusterIP', async () => (await requestsFromPod(a, 'client', clusterIP, 80, 1))[0] !== 'FAIL').catch(failWith);
    const seen = new Set<string>();
    const answers: string[] = [];
    // Random endpoint choice: bounded rounds until all four answered (P(miss) per round ≈ 4·(3/4)^20).
    for (let round = 0; round < 6 && seen.size < 4; round++) {
      const batch = await requestsFromPod(a, 'client', clusterIP, 80, 20);
      answers.push(...batch);
      for (const answer of batch) seen.add(answer);
    }
    expect(answers.filter((answer) => answer === 'FAIL')).toEqual([]);
    expect([...seen].sort()).toEqual(webNames);
  }, 200_000);

  it('the NodePort answers from the underlay on both nodes, with pods of both nodes behind it', async () => {
    const answers: string[] = [];
    for (const node of [a, b]) {
      const url = `http://${node.underlayIp}:${nodePort}/`;
      await waitFor(`the NodePort on ${node.name}`, async () => (await cluster.underlayClient.exec(['curl', '-s', '-m', '2', url], { allowFailure: true, timeoutMs: 10_000 })).code === 0, 30_000).catch(failWith);
      const script = `for i in $(seq 1 16); do curl -s -m 2 ${url} || echo FAIL; done`;
      const out = await cluster.underlayClient.exec(['sh', '-c', script], { timeoutMs: 90_000 });
      const lines = out.stdout.split('\n').filter(Boolean);
      expect(lines, `NodePort on ${node.name}`).toHaveLength(16);
      expect(lines.filter((line) => line === 'FAIL'), `NodePort on ${node.name}`).toEqual([]);
      answers.push(...lines);
    }
    expect(answers.some((answer) => answer.startsWith('web-a'))).toBe(true);
    expect(answers.some((answer) => answer.startsWith('web-b'))).toBe(true);
    expect(answers.every((answer) => webNames.includes(answer))).toBe(true);
  }, 120_000);

  it('a static pod on node B has its mirror pod, reachable from node A through the overlay', async () => {
    const mirror = `static-web-${b.name}`;
    const mirrorPod = await waitFor('the mirror pod Ready', async () => {
      const p = await pod(mirror);
      return ready(p) ? p : undefined;
    }, 120_000).catch(failWith);
    expect(await kubectl('get', 'pod', mirror, '--no-headers', '-o', 'custom-columns=NAME:.metadata.name,NODE:.spec.nodeName')).toMatch(new RegExp(`^${mirror}\\s+${b.name}\\s*$`));
    expect(mirrorPod.spec!.nodeName).toBe(b.name);
    expect(mirrorPod.metadata!.annotations?.['kubernetes.io/config.mirror']).toBeTruthy();
    // The kubelet names a static pod <name>-<node> everywhere, so its downward-API metadata.name is the mirror's.
    expect(await requestsFromPod(a, 'client', mirrorPod.status!.podIP!, 8080, 3)).toEqual([mirror, mirror, mirror]);
  }, 150_000);

  it('a liveness failure restarts the container', async () => {
    const before = await waitFor('the live pod Running', async () => {
      const p = await pod('live');
      return ready(p) ? p : undefined;
    }).catch(failWith);
    expect(before.status!.containerStatuses![0]!.restartCount).toBe(0);
    const oldId = before.status!.containerStatuses![0]!.containerID;
    await execInPod(b, 'live', 'rm /tmp/ok');
    const after = await waitFor('restartCount to increase', async () => {
      const p = await pod('live');
      const status = p.status?.containerStatuses?.[0];
      return status && status.restartCount >= 1 && status.ready && status.containerID !== oldId ? p : undefined;
    }, 90_000).catch(failWith);
    expect(after.status!.containerStatuses![0]!.lastState?.terminated).toBeTruthy();
    expect(Number(await kubectl('get', 'pod', 'live', '-o', 'jsonpath={.status.containerStatuses[0].restartCount}'))).toBeGreaterThanOrEqual(1);
    const events = await kubectl('get', 'events', '--field-selector', 'involvedObject.name=live', '-o', 'jsonpath={.items[*].reason}');
    expect(events).toContain('Unhealthy');
  }, 120_000);

  it('deleting a web pod removes its address from the EndpointSlice within seconds; the ClusterIP keeps answering', async () => {
    const gone = await pod('web-b1');
    const ip = gone.status!.podIP!;
    await kubectl('delete', 'pod', 'web-b1', '--wait=false');
    const deletedAt = Date.now();
    await waitFor('web-b1 out of the EndpointSlice', async () => !(await sliceAddresses()).some(([address]) => address === ip), 60_000).catch(failWith);
    const elapsed = Date.now() - deletedAt;
    console.log(`[two-node] web-b1 left the EndpointSlice ${elapsed} ms after kubectl delete`);
    expect((await sliceAddresses()).map(([address]) => address)).toHaveLength(3);
    // Give the proxies their minSyncPeriod (1 s) and then every request must succeed.
    await waitFor('web-b1 out of the proxy rules', async () => !(await requestsFromPod(a, 'client', clusterIP, 80, 12)).some((x) => x === 'web-b1' || x === 'FAIL'), 30_000).catch(failWith);
    const answers = await requestsFromPod(a, 'client', clusterIP, 80, 30);
    expect(answers.filter((x) => !['web-a1', 'web-a2', 'web-b2'].includes(x))).toEqual([]);
    expect(answers).toContain('web-b2');
  }, 150_000);

  it("restarting node A's agent (SIGKILL) restarts nothing and reports the status again", async () => {
    const podsOnA = ['web-a1', 'web-a2', 'client'];
    const containersOnA = async () => (await docker.listContainers({ all: true, filters: { label: [a.scopeLabel] } })).map((c) => `${c.Id}:${c.State}`).sort();
    const restartCounts = async () => Object.fromEntries(await Promise.all(podsOnA.map(async (name) => [name, (await pod(name)).status?.containerStatuses?.map((c) => `${c.containerID}:${c.restartCount}`)] as const)));
    const before = await containersOnA();
    expect(before.filter((c) => c.endsWith(':running'))).toHaveLength(6); // 3 sandboxes + 3 containers
    const countsBefore = await restartCounts();
    await a.stop('agent', 'SIGKILL');
    const downAt = Date.now();
    // While the agent is down the status is set back to Pending: the restarted agent must report Running again.
    await cluster.core.patchNamespacedPodStatus({ name: 'client', namespace: 'default', body: { status: { phase: 'Pending' } } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
    expect((await pod('client')).status!.phase).toBe('Pending');
    a.start('agent');
    await waitFor('the client pod reported Running again', async () => (await pod('client')).status?.phase === 'Running', 90_000).catch(failWith);
    await waitFor('the pods on node A Ready', async () => (await Promise.all(podsOnA.map(pod))).every(ready), 60_000).catch(failWith);
    await waitFor("node A's Lease renewed by the new agent", async () => Date.parse(await kubectl('get', 'lease', '-n', 'kube-node-lease', a.name, '-o', 'jsonpath={.spec.renewTime}')) > downAt, 60_000).catch(failWith);
    await new Promise((resolve) => setTimeout(resolve, 3000));
    expect(await containersOnA()).toEqual(before);
    expect(await restartCounts()).toEqual(countsBefore);
    const answers = await requestsFromPod(a, 'client', clusterIP, 80, 10);
    expect(answers.filter((x) => x === 'FAIL')).toEqual([]);
    expect(a.logs('agent')).not.toMatch(/"level":60/);
    expect(cluster.unexpectedExits()).toEqual([]);
  }, 200_000);
});
