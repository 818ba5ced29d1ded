/**
 * A Deployment's and a Job's life with real agents (issue 18, "Done when"), driven by the real
 * kubectl against the control plane and a `knode overlay|agent|proxy` node running real
 * containers (./helpers-cluster.ts), the control plane on a file store so that it can restart:
 * - `kubectl rollout pause` / `resume`: a template change while paused makes no ReplicaSet and
 *   replaces no pod; resume rolls it out; `rollout history` and `rollout undo --to-revision`
 *   (https://kubernetes.io/docs/concepts/workloads/controllers/deployment/#pausing-and-resuming-a-rollout-of-a-deployment,
 *   #rolling-back-to-a-previous-revision);
 * - deletes with each propagation policy, as kube-controller-manager's garbage collector does
 *   (https://kubernetes.io/docs/concepts/architecture/garbage-collection/#cascading-deletion):
 *   background (owner gone at once, dependents after), foreground (owner kept with the
 *   `foregroundDeletion` finalizer until its dependents are gone), orphan (dependents kept, their
 *   ownerReferences to the owner removed);
 * - a control-plane restart in the middle of a rollout and of a Job: nothing lost, nothing
 *   duplicated (pods and their containers counted; the Job never exceeds its completions, the
 *   rollout ends with exactly `replicas` pods of the new template).
 */
import { randomBytes } from 'node:crypto';
import type Docker from 'dockerode';
import type { V1Deployment, V1Job, V1Pod, V1ReplicaSet } from '@kubernetes/client-node';
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
/** Two more names for the busybox image (unique: test files run in parallel on one Docker Engine). */
const tags = [`life2-${randomBytes(4).toString('hex')}`, `life3-${randomBytes(4).toString('hex')}`];
const image2 = `knode.local/busybox:${tags[0]}`;
const image3 = `knode.local/busybox:${tags[1]}`;

const live = (pod: V1Pod) => !pod.metadata?.deletionTimestamp && pod.status?.phase !== 'Succeeded' && pod.status?.phase !== 'Failed';
const ready = (pod: V1Pod) => live(pod) && (pod.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');
const imageOf = (object: V1Pod | V1ReplicaSet) => ('template' in (object.spec ?? {}) ? (object as V1ReplicaSet).spec?.template?.spec : (object as V1Pod).spec)?.containers[0]?.image;

/** A Deployment of `replicas` busybox pods that become Ready 2 s after they start. */
const deployment = (name: string, replicas: number, grace = 1): V1Deployment => ({
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  metadata: { name, namespace: 'default' },
  spec: {
    replicas,
    selector: { matchLabels: { app: name } },
    strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } },
    template: {
      metadata: { labels: { app: name } },
      spec: {
        terminationGracePeriodSeconds: grace,
        containers: [
          {
            name: 'main',
            image: busyboxImage,
            command: ['sh', '-c', 'sleep 2; touch /tmp/ready; exec sleep 3600'],
            readinessProbe: { exec: { command: ['cat', '/tmp/ready'] }, periodSeconds: 1 },
          },
        ],
      },
    },
  },
});

describe.skipIf(env.skip || unavailable !== undefined)('a Deployment and a Job with real agents: pause, undo, propagation, control-plane restart', () => {
  let docker: Docker;
  let cluster: TestCluster;
  let node: ClusterNode;

  const kubectl = (...args: string[]) => cluster.kubectl(...args);
  const failWith = (error: unknown): never => {
    throw new Error(`${error instanceof Error ? error.message : String(error)}\n${cluster.diagnostics()}`, { cause: error });
  };
  const apply = (object: object) => run(['kubectl', '--kubeconfig', cluster.kubeconfig, 'apply', '-f', '-'], { input: JSON.stringify(object), timeoutMs: 30_000 });
  const getJson = async <T>(...args: string[]) => JSON.parse(await kubectl('get', ...args, '-o', 'json')) as T;
  const pods = async (selector: string) => (await getJson<{ items: V1Pod[] }>('pods', '-l', selector)).items;
  const sets = async (selector: string) => (await getJson<{ items: V1ReplicaSet[] }>('replicasets', '-l', selector)).items;
  /** Whether `kind/name` exists (kubectl get --ignore-not-found prints nothing when it does not). */
  const exists = async (kind: string, name: string) => (await kubectl('get', kind, name, '--ignore-not-found', '-o', 'name')).trim() !== '';
  const rolledOut = async (name: string) => expect(await kubectl('rollout', 'status', `deployment/${name}`, '--timeout=240s').catch(failWith)).toContain('successfully rolled out');
  /** Running app containers of the pods (Docker, by the agent's labels): one per live pod, none for another. */
  const runningContainers = async (podNames: string[]) => (await Promise.all(podNames.map((n) => node.containers(n)))).map((list) => list.length);
  /** App containers (not sandboxes) on the node of every pod whose name starts with `prefix`, by the agent's labels. */
  const nodeContainers = async (prefix: string, all = false) =>
    (await docker.listContainers({ all, filters: { label: [node.scopeLabel] } })).filter((c) => c.Labels['io.kubernetes.container.name'] !== 'POD' && (c.Labels['io.kubernetes.pod.name'] ?? '').startsWith(prefix));
  const revisions = async (name: string) =>
    (await kubectl('rollout', 'history', `deployment/${name}`))
      .split('\n')
      .filter((line) => /^\d+\s/.test(line))
      .map((line) => Number(line.split(/\s+/)[0]));

  beforeAll(async () => {
    docker = await testDocker();
    cluster = await startCluster({ docker, roles: ['a'], persistentControlPlane: true });
    [node] = cluster.nodes as [ClusterNode];
    for (const tag of tags) await docker.getImage(busyboxImage).tag({ repo: 'knode.local/busybox', tag });
  }, 300_000);

  afterAll(async () => {
    for (const tag of tags)
      await docker
        ?.getImage(`knode.local/busybox:${tag}`)
        .remove()
        .catch(() => undefined); // absent when the test did not get that far
    await cluster?.stop();
    if (cluster) expect(await docker.listContainers({ all: true, filters: { label: [node.scopeLabel] } })).toEqual([]);
  }, 120_000);

  it('pause holds a template change (no ReplicaSet, no pod replaced); resume rolls it out; history and undo --to-revision', async () => {
    await apply(deployment('paused', 2));
    await rolledOut('paused');
    const before = (await pods('app=paused')).filter(live);
    expect(before).toHaveLength(2);
    expect(await kubectl('rollout', 'pause', 'deployment/paused')).toContain('paused');
    await kubectl('set', 'image', 'deployment/paused', `main=${image2}`);
    // The controller has seen the change (observedGeneration) and rolled nothing out.
    const held = await waitFor('the paused Deployment observed', async () => {
      const d = await getJson<V1Deployment>('deployment', 'paused');
      return d.status?.observedGeneration === d.metadata?.generation ? d : undefined;
    }).catch(failWith);
    expect(held.status?.conditions?.find((c) => c.type === 'Progressing')).toMatchObject({ status: 'Unknown', reason: 'DeploymentPaused' });
    expect(held.status).toMatchObject({ replicas: 2, updatedReplicas: 0, availableReplicas: 2 });
    expect((await sets('app=paused')).map(imageOf)).toEqual([busyboxImage]);
    const during = (await pods('app=paused')).filter(live);
    expect(during.map((p) => p.metadata!.uid).sort()).toEqual(before.map((p) => p.metadata!.uid).sort());
    expect(await runningContainers(during.map((p) => p.metadata!.name!))).toEqual([1, 1]);

    expect(await kubectl('rollout', 'resume', 'deployment/paused')).toContain('resumed');
    await rolledOut('paused');
    const afterResume = await waitFor('two new pods, the old ones gone', async () => {
      const current = await pods('app=paused');
      return current.length === 2 && current.every((p) => ready(p) && imageOf(p) === image2) ? current : undefined;
    }).catch(failWith);
    expect(await runningContainers(afterResume.map((p) => p.metadata!.name!))).toEqual([1, 1]);
    expect((await sets('app=paused')).map(imageOf).sort()).toEqual([busyboxImage, image2].sort());
    expect((await getJson<V1Deployment>('deployment', 'paused')).status?.conditions?.find((c) => c.type === 'Progressing')?.reason).toBe('NewReplicaSetAvailable');

    await kubectl('set', 'image', 'deployment/paused', `main=${image3}`);
    await rolledOut('paused');
    expect(await revisions('paused')).toEqual([1, 2, 3]);
    expect(await kubectl('rollout', 'history', 'deployment/paused', '--revision=2')).toContain(image2);
    // Back to the first template: its ReplicaSet becomes the new one again, as revision 4.
    expect(await kubectl('rollout', 'undo', 'deployment/paused', '--to-revision=1')).toContain('rolled back');
    await rolledOut('paused');
    const undone = await waitFor('two pods of revision 1 Ready, the others gone', async () => {
      const current = await pods('app=paused');
      return current.length === 2 && current.every((p) => ready(p) && imageOf(p) === busyboxImage) ? current : undefined;
    }).catch(failWith);
    expect(await runningContainers(undone.map((p) => p.metadata!.name!))).toEqual([1, 1]);
    expect(await revisions('paused')).toEqual([2, 3, 4]);
    const d = await getJson<V1Deployment>('deployment', 'paused');
    expect(d.metadata?.annotations?.['deployment.kubernetes.io/revision']).toBe('4');
    expect(d.spec?.template?.spec?.containers[0]?.image).toBe(busyboxImage);
    expect((await sets('app=paused')).map(imageOf).sort()).toEqual([busyboxImage, image2, image3].sort());
    expect(await kubectl('describe', 'deployment', 'paused')).toMatch(/Normal\s+DeploymentRollback|Normal\s+ScalingReplicaSet/);
  }, 600_000);

  it('delete --cascade=background: the Deployment goes at once, its ReplicaSets and pods (and containers) after', async () => {
    const [first] = (await pods('app=paused')).filter(live);
    await kubectl('delete', 'deployment', 'paused', '--cascade=background', '--wait=true');
    expect(await exists('deployment', 'paused')).toBe(false);
    await waitFor('its ReplicaSets and pods gone', async () => (await sets('app=paused')).length === 0 && (await pods('app=paused')).length === 0).catch(failWith);
    await waitFor('the containers gone from the node', async () => (await runningContainers([first!.metadata!.name!]))[0] === 0).catch(failWith);
  }, 300_000);

  it('delete --cascade=foreground: the Deployment stays with foregroundDeletion until its pods are gone', async () => {
    // A 4 s grace period (the container's `sleep` as PID 1 ignores SIGTERM): the pods take a while to go.
    await apply(deployment('fg', 2, 4));
    await rolledOut('fg');
    await kubectl('delete', 'deployment', 'fg', '--cascade=foreground', '--wait=false');
    const owner = await getJson<V1Deployment>('deployment', 'fg');
    expect(owner.metadata?.deletionTimestamp).toBeDefined();
    expect(owner.metadata?.finalizers).toContain('foregroundDeletion');
    // Polled in this order, the owner gone means its dependents were gone first.
    let sawBlocked = false;
    let leftBehind: string[] = [];
    await waitFor('the Deployment gone', async () => {
      const ownerThere = await exists('deployment', 'fg');
      const dependents = [...(await pods('app=fg')), ...(await sets('app=fg'))];
      if (ownerThere && dependents.length > 0) sawBlocked = true;
      if (!ownerThere) leftBehind = dependents.map((o) => `${o.kind}/${o.metadata?.name}`);
      return !ownerThere;
    }, 180_000).catch(failWith);
    expect(sawBlocked).toBe(true);
    expect(leftBehind).toEqual([]);
  }, 300_000);

  it('delete --cascade=orphan keeps the ReplicaSet and its running pods, without the ownerReference', async () => {
    await apply(deployment('orph', 2));
    await rolledOut('orph');
    const [rs] = await sets('app=orph');
    const before = (await pods('app=orph')).filter(live);
    await kubectl('delete', 'deployment', 'orph', '--cascade=orphan', '--wait=true');
    expect(await exists('deployment', 'orph')).toBe(false);
    const kept = await waitFor('the ReplicaSet orphaned', async () => {
      const current = await sets('app=orph');
      return current.length === 1 && (current[0]!.metadata?.ownerReferences ?? []).length === 0 ? current[0] : undefined;
    }).catch(failWith);
    expect(kept.metadata?.uid).toBe(rs!.metadata?.uid);
    expect(kept.metadata?.finalizers ?? []).not.toContain('orphan');
    // The pods are the same ones, still running, still the (kept) ReplicaSet's.
    const after = (await pods('app=orph')).filter(live);
    expect(after.map((p) => p.metadata!.uid).sort()).toEqual(before.map((p) => p.metadata!.uid).sort());
    for (const pod of after) expect(pod.metadata?.ownerReferences).toEqual([expect.objectContaining({ kind: 'ReplicaSet', uid: rs!.metadata?.uid, controller: true })]);
    expect(await runningContainers(after.map((p) => p.metadata!.name!))).toEqual([1, 1]);
    // The ReplicaSet deleted with orphan too: its pods stay, now without an owner.
    await kubectl('delete', 'replicaset', rs!.metadata!.name!, '--cascade=orphan', '--wait=true');
    const bare = await waitFor('the pods orphaned', async () => {
      const current = (await pods('app=orph')).filter(live);
      return current.length === 2 && current.every((p) => (p.metadata?.ownerReferences ?? []).length === 0) ? current : undefined;
    }).catch(failWith);
    expect(bare.map((p) => p.metadata!.uid).sort()).toEqual(before.map((p) => p.metadata!.uid).sort());
    expect(await runningContainers(bare.map((p) => p.metadata!.name!))).toEqual([1, 1]);
    await kubectl('delete', 'pods', '-l', 'app=orph', '--wait=true');
  }, 300_000);

  it('a control-plane restart in the middle of a rollout: it finishes with exactly replicas pods of the new template', async () => {
    const replicas = 4;
    await apply(deployment('mid', replicas));
    await rolledOut('mid');
    await kubectl('set', 'image', 'deployment/mid', `main=${image2}`);
    // Mid-rollout: a pod of the new template exists, the old ones are not all gone.
    await waitFor('the rollout under way', async () => {
      const current = await pods('app=mid');
      return current.some((p) => imageOf(p) === image2) && current.some((p) => imageOf(p) === busyboxImage);
    }).catch(failWith);
    await cluster.restartControlPlane({ downMs: 3000 }).catch(failWith);
    await rolledOut('mid');
    const done = await waitFor('exactly the new pods, Ready', async () => {
      const current = await pods('app=mid');
      return current.length === replicas && current.every((p) => ready(p) && imageOf(p) === image2) ? current : undefined;
    }, 180_000).catch(failWith);
    expect(await runningContainers(done.map((p) => p.metadata!.name!))).toEqual(Array(replicas).fill(1));
    // And the node runs exactly those: the old pods' containers are gone, none was started twice.
    const onNode = await waitFor('exactly one running container per new pod on the node', async () => {
      const running = await nodeContainers('mid-');
      return running.length === replicas ? running : undefined;
    }, 60_000).catch(failWith);
    expect(onNode.map((c) => c.Labels['io.kubernetes.pod.name']).sort()).toEqual(done.map((p) => p.metadata!.name!).sort());
    const all = await sets('app=mid');
    expect(all.map(imageOf).sort()).toEqual([busyboxImage, image2].sort());
    const newSet = all.find((rs) => imageOf(rs) === image2)!;
    expect(newSet.spec?.replicas).toBe(replicas);
    expect(all.find((rs) => imageOf(rs) === busyboxImage)?.spec?.replicas).toBe(0);
    // No pod of the new template was made too many and deleted again (events are kept in the store).
    const events = (await getJson<{ items: { reason?: string; count?: number }[] }>('events', '--field-selector', `involvedObject.name=${newSet.metadata!.name!}`)).items;
    const total = (reason: string) => events.filter((e) => e.reason === reason).reduce((sum, e) => sum + (e.count ?? 1), 0);
    expect(total('SuccessfulDelete')).toBe(0);
    expect(total('SuccessfulCreate')).toBeLessThanOrEqual(replicas);
    const d = await getJson<V1Deployment>('deployment', 'mid');
    expect(d.status).toMatchObject({ replicas, updatedReplicas: replicas, readyReplicas: replicas, availableReplicas: replicas });
    expect(d.metadata?.annotations?.['deployment.kubernetes.io/revision']).toBe('2');
    expect(cluster.unexpectedExits()).toEqual([]);
    await kubectl('delete', 'deployment', 'mid', '--wait=true');
  }, 600_000);

  it('a control-plane restart in the middle of a Job: it completes with exactly completions pods, each counted once', async () => {
    const job: V1Job = {
      apiVersion: 'batch/v1',
      kind: 'Job',
      metadata: { name: 'midjob', namespace: 'default' },
      spec: {
        parallelism: 2,
        completions: 4,
        template: { spec: { restartPolicy: 'Never', terminationGracePeriodSeconds: 1, containers: [{ name: 'main', image: busyboxImage, command: ['sh', '-c', 'sleep 3; echo done'] }] } },
      },
    };
    await apply(job);
    await waitFor('the first pods running', async () => (await pods('job-name=midjob')).filter((p) => p.status?.phase === 'Running').length === 2).catch(failWith);
    // Down for longer than a pod runs: pods finish while no controller (nor API) is there.
    await cluster.restartControlPlane({ downMs: 5000 }).catch(failWith);
    expect(await kubectl('wait', '--for=condition=complete', 'job/midjob', '--timeout=240s').catch(failWith)).toContain('condition met');
    const done = await getJson<V1Job>('job', 'midjob');
    expect(done.status).toMatchObject({ succeeded: 4, active: 0 });
    expect(done.status?.failed ?? 0).toBe(0);
    expect(done.status?.uncountedTerminatedPods?.succeeded ?? []).toEqual([]);
    const all = await pods('job-name=midjob');
    expect(all.map((p) => p.status?.phase)).toEqual(Array(4).fill('Succeeded'));
    for (const pod of all) expect(pod.metadata?.finalizers ?? []).not.toContain('batch.kubernetes.io/job-tracking');
    // One container per pod, each ran to completion once.
    const containers = await Promise.all(all.map((p) => node.containers(p.metadata!.name!, { all: true })));
    expect(containers.map((list) => list.length)).toEqual([1, 1, 1, 1]);
    for (const list of containers) expect(list[0]!.State).toBe('exited');
    expect(await nodeContainers('midjob-', true)).toHaveLength(4);
    expect(cluster.unexpectedExits()).toEqual([]);
    await kubectl('delete', 'job', 'midjob', '--wait=true');
  }, 600_000);
});
