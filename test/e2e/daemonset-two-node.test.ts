/**
 * A DaemonSet across node netns (issue 18), driven by the real kubectl against the control plane
 * with its controllers and real `knode overlay|agent|proxy` processes per node
 * (./helpers-cluster.ts), as upstream's DaemonSet controller behaves
 * (https://kubernetes.io/docs/concepts/workloads/controllers/daemonset/,
 * https://kubernetes.io/docs/tasks/manage-daemon/update-daemon-set/):
 * - one pod per eligible node; a node with a NoSchedule taint the pods do not tolerate gets none,
 *   and gets one once the DaemonSet's template tolerates the taint;
 * - a node that joins later gets its pod;
 * - a RollingUpdate with maxUnavailable 1 replaces the pods node by node: watched event by event,
 *   at no moment do fewer than (nodes − 1) nodes have an available pod, and no node ever has two
 *   live pods (maxSurge 0); `kubectl rollout status` and `rollout history` follow it.
 */
import type Docker from 'dockerode';
import { KubeConfig, Watch, type V1DaemonSet, type V1Pod } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../../lib/exec.js';
import { busyboxImage } from '../../cri/local-images.js';
import { testDocker } from '../helpers/docker.js';
import { prerequisites } from '../helpers/prereq.js';
import { waitFor as pollUntil } from '../helpers/wait.js';
import { clusterUnavailable, startCluster, type ClusterNode, type TestCluster } from './helpers-cluster.js';

const env = await prerequisites('root', 'docker', 'command:ip', 'command:nsenter', 'command:kubectl', 'command:curl', 'command:iptables');
const unavailable = clusterUnavailable();
if (unavailable && process.env.CI === 'true') throw new Error(`missing test prerequisite under CI=true: ${unavailable}`);
if (unavailable) console.warn(`skipping: ${unavailable}`);

const waitFor = <T>(what: string, probe: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 120_000): Promise<T> => pollUntil(what, probe, timeoutMs, 250);

const taintKey = 'knode.test/dedicated';

/** The DaemonSet: a pod that becomes ready 2 s after it starts (so each replacement has a window of unavailability). */
const daemonSet = (): V1DaemonSet => ({
  apiVersion: 'apps/v1',
  kind: 'DaemonSet',
  metadata: { name: 'noded', namespace: 'default' },
  spec: {
    selector: { matchLabels: { app: 'noded' } },
    updateStrategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 1 } },
    template: {
      metadata: { labels: { app: 'noded' } },
      spec: {
        terminationGracePeriodSeconds: 1,
        containers: [
          {
            name: 'main',
            image: busyboxImage,
            env: [{ name: 'VERSION', value: '1' }],
            command: ['sh', '-c', 'sleep 2; touch /tmp/ready; exec sleep 3600'],
            readinessProbe: { exec: { command: ['cat', '/tmp/ready'] }, periodSeconds: 1 },
          },
        ],
      },
    },
  },
});

const live = (pod: V1Pod) => !pod.metadata?.deletionTimestamp && pod.status?.phase !== 'Succeeded' && pod.status?.phase !== 'Failed';
const available = (pod: V1Pod) => live(pod) && (pod.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');
const version = (pod: V1Pod) => pod.spec?.containers[0]?.env?.find((e) => e.name === 'VERSION')?.value;

describe.skipIf(env.skip || unavailable !== undefined)('DaemonSet across node netns, driven by kubectl', () => {
  let docker: Docker;
  let cluster: TestCluster;
  let a: ClusterNode;
  let b: ClusterNode;
  let c: ClusterNode | undefined;

  const kubectl = (...args: string[]) => cluster.kubectl(...args);
  const failWith = (error: unknown): never => {
    throw new Error(`${error instanceof Error ? error.message : String(error)}\n${cluster.diagnostics()}`, { cause: error });
  };
  const daemonPods = async () => (await cluster.core.listNamespacedPod({ namespace: 'default', labelSelector: 'app=noded' })).items;
  const podsOn = async (node: ClusterNode) => (await daemonPods()).filter((p) => p.spec?.nodeName === node.name && live(p));
  const rolloutStatus = () => kubectl('rollout', 'status', 'daemonset/noded', '--timeout=180s');
  const status = async () => JSON.parse(await kubectl('get', 'daemonset', 'noded', '-o', 'json')) as V1DaemonSet;

  beforeAll(async () => {
    docker = await testDocker();
    cluster = await startCluster({ docker });
    [a, b] = cluster.nodes as [ClusterNode, ClusterNode];
  }, 300_000);

  afterAll(async () => {
    await cluster?.stop();
    if (cluster) for (const node of cluster.nodes) expect(await docker.listContainers({ all: true, filters: { label: [node.scopeLabel] } })).toEqual([]);
  }, 120_000);

  it('one pod per node; a node tainted NoSchedule gets none until the template tolerates the taint', async () => {
    await kubectl('taint', 'nodes', b.name, `${taintKey}=db:NoSchedule`);
    await run(['kubectl', '--kubeconfig', cluster.kubeconfig, 'apply', '-f', '-'], { input: JSON.stringify(daemonSet()), timeoutMs: 30_000 });
    expect(await rolloutStatus().catch(failWith)).toContain('successfully rolled out');
    const ds = await status();
    expect(ds.status).toMatchObject({ desiredNumberScheduled: 1, currentNumberScheduled: 1, numberReady: 1, numberMisscheduled: 0 });
    const onA = await podsOn(a);
    expect(onA).toHaveLength(1);
    expect(onA[0]!.metadata!.ownerReferences).toEqual([expect.objectContaining({ kind: 'DaemonSet', name: 'noded', controller: true })]);
    // The automatic DaemonSet tolerations (not-ready, unreachable, pressure, unschedulable) are on the pod.
    const keys = (onA[0]!.spec!.tolerations ?? []).map((t) => `${t.key}:${t.effect ?? ''}`);
    expect(keys).toEqual(expect.arrayContaining(['node.kubernetes.io/not-ready:NoExecute', 'node.kubernetes.io/unreachable:NoExecute', 'node.kubernetes.io/unschedulable:NoSchedule']));
    expect(await podsOn(b)).toEqual([]);

    await kubectl('patch', 'daemonset', 'noded', '--type=json', '-p', JSON.stringify([{ op: 'add', path: '/spec/template/spec/tolerations', value: [{ key: taintKey, operator: 'Equal', value: 'db', effect: 'NoSchedule' }] }]));
    expect(await rolloutStatus().catch(failWith)).toContain('successfully rolled out');
    const onB = await waitFor('a daemon pod Ready on the tainted node', async () => {
      const pods = await podsOn(b);
      return pods.length === 1 && available(pods[0]!) ? pods : undefined;
    }).catch(failWith);
    expect(onB[0]!.spec!.tolerations).toEqual(expect.arrayContaining([expect.objectContaining({ key: taintKey, effect: 'NoSchedule' })]));
    expect((await status()).status).toMatchObject({ desiredNumberScheduled: 2, numberReady: 2, updatedNumberScheduled: 2 });
    const wide = await kubectl('get', 'pods', '-l', 'app=noded', '-o', 'wide', '--no-headers');
    for (const node of [a, b]) expect(wide).toMatch(new RegExp(`noded-\\S+\\s+1/1\\s+Running\\s+.*\\s${node.name}\\s`));
  }, 400_000);

  it('a node that joins later gets its pod', async () => {
    c = await cluster.addNode('c').catch(failWith);
    const onC = await waitFor('a daemon pod Ready on the new node', async () => {
      const pods = await podsOn(c!);
      return pods.length === 1 && available(pods[0]!) ? pods : undefined;
    }, 180_000).catch(failWith);
    expect(version(onC[0]!)).toBe('1');
    expect(await rolloutStatus().catch(failWith)).toContain('successfully rolled out');
    expect((await status()).status).toMatchObject({ desiredNumberScheduled: 3, numberAvailable: 3 });
    for (const node of [a, b]) expect(await podsOn(node)).toHaveLength(1);
  }, 400_000);

  it('a rolling update with maxUnavailable 1 replaces the pods node by node', async () => {
    const nodes = [a, b, c!];
    const kc = new KubeConfig();
    kc.loadFromFile(cluster.kubeconfig);
    const listed = await cluster.core.listNamespacedPod({ namespace: 'default', labelSelector: 'app=noded' });
    const pods = new Map(listed.items.map((p) => [p.metadata!.uid!, p]));
    const availableNodes = () => new Set([...pods.values()].filter(available).map((p) => p.spec!.nodeName)).size;
    expect(availableNodes()).toBe(3);
    let minAvailable = 3;
    let maxLivePerNode = 1;
    const order: string[] = [];
    let watchError: unknown;
    const abort = await new Watch(kc).watch(
      '/api/v1/namespaces/default/pods',
      { labelSelector: 'app=noded', resourceVersion: listed.metadata!.resourceVersion },
      (type: string, pod: V1Pod) => {
        if (type === 'DELETED') pods.delete(pod.metadata!.uid!);
        else pods.set(pod.metadata!.uid!, pod);
        minAvailable = Math.min(minAvailable, availableNodes());
        for (const node of nodes) maxLivePerNode = Math.max(maxLivePerNode, [...pods.values()].filter((p) => p.spec?.nodeName === node.name && live(p)).length);
        if (available(pod) && version(pod) === '2' && !order.includes(pod.spec!.nodeName!)) order.push(pod.spec!.nodeName!);
      },
      (error: unknown) => (watchError = error),
    );
    try {
      await kubectl('set', 'env', 'daemonset/noded', 'VERSION=2');
      expect(await rolloutStatus().catch(failWith)).toContain('successfully rolled out');
      await waitFor('every node running the new version, as the watch saw it', () => order.length === 3 && [...pods.values()].filter(live).every((p) => version(p) === '2'), 60_000);
    } finally {
      abort.abort();
    }
    expect(watchError === undefined || (watchError instanceof Error && watchError.name === 'AbortError')).toBe(true);
    // Never more than maxUnavailable (1) node without an available pod; the old pod goes first (maxSurge 0).
    // With maxSurge 0 and a 2 s readiness delay each replacement takes its node down for a while:
    // exactly one node at a time.
    expect(minAvailable).toBe(nodes.length - 1);
    expect(maxLivePerNode).toBe(1);
    expect(order.sort()).toEqual(nodes.map((n) => n.name).sort());
    const final = (await daemonPods()).filter(live);
    expect(final.map((p) => [p.spec!.nodeName, version(p)]).sort()).toEqual(nodes.map((n) => [n.name, '2']).sort());
    expect((await status()).status).toMatchObject({ desiredNumberScheduled: 3, updatedNumberScheduled: 3, numberAvailable: 3 });
    // Revisions: the first template, the toleration, the new VERSION.
    const history = await kubectl('rollout', 'history', 'daemonset/noded');
    expect(history.split('\n').filter((line) => /^\d+\s/.test(line)).map((line) => line.split(/\s+/)[0])).toEqual(['1', '2', '3']);
  }, 400_000);
});
