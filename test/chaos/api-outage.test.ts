/**
 * Standing chaos (issue 25): an API outage. A node (the built `knode agent` in a test netns,
 * ../e2e/helpers-node.ts) runs two static pods serving HTTP; the control plane (file store) is
 * killed with SIGKILL and stays down for 15 s. Meanwhile the static pods are unaffected: the same
 * containers keep running (same IDs, no restart) and keep answering from the node's netns. When
 * the control plane is back on the same address, the node recovers: its lease is renewed, it is
 * Ready, the mirror pods are Running with the same containers.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { busyboxSpec, ensureLocalImage } from '../../cri/local-images.js';
import { testDocker } from '../helpers/docker.js';
import { prerequisites } from '../helpers/prereq.js';
import { apiRequest } from '../helpers/raw-watch.js';
import { waitFor } from '../helpers/wait.js';
import { agentNodeUnavailable, startAgentNode, type AgentNode } from '../e2e/helpers-node.js';
import { startFileControlPlane, type FileControlPlane } from './controlplane-process.js';

const env = await prerequisites('root', 'docker', 'command:ip', 'command:nsenter', 'command:curl');
const unavailable = env.skip ? undefined : await agentNodeUnavailable();
if (unavailable && process.env.CI === 'true') throw new Error(unavailable);
const outageMs = 15_000;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface PodView {
  metadata?: { name?: string };
  status?: { phase?: string; podIP?: string; containerStatuses?: { restartCount?: number; containerID?: string }[] };
}

describe.skipIf(env.skip || unavailable !== undefined)('API outage with static pods running', () => {
  let cp: FileControlPlane | undefined;
  let node: AgentNode | undefined;
  let dir = '';
  afterAll(async () => {
    await node?.stop();
    await cp?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('static pods keep running and serving through a 15 s outage; the node recovers when the API returns', async () => {
    dir = mkdtempSync(join(tmpdir(), 'knode-chaos-outage-'));
    cp = await startFileControlPlane(join(dir, 'cp'));
    const docker = await testDocker();
    const busybox = await ensureLocalImage(docker, busyboxSpec);
    node = await startAgentNode({ controlPlane: { port: cp.port }, docker, name: 'outage' });
    const statics = ['web0', 'web1'];
    for (const name of statics) {
      writeFileSync(
        join(node.staticPodPath, `${name}.yaml`),
        `apiVersion: v1\nkind: Pod\nmetadata: {name: ${name}, namespace: default}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: httpd\n    image: "${busybox}"\n    command: ["sh", "-c", "mkdir -p /www && echo ${name} > /www/index.html && exec httpd -f -p 8080 -h /www"]\n`,
      );
    }
    const server = cp.server;
    const mirror = (name: string) => `${name}-${node!.nodeName}`;
    const running = async () => {
      const pods: PodView[] = [];
      for (const name of statics) {
        const got = await apiRequest(server, 'GET', `/api/v1/namespaces/default/pods/${mirror(name)}`, undefined, 3_000);
        const pod = got.body as PodView;
        if (got.status !== 200 || pod.status?.phase !== 'Running' || !pod.status.podIP) return undefined;
        pods.push(pod);
      }
      return pods;
    };
    const pods = await waitFor('both mirror pods Running with an IP', running, 120_000, 250);
    const ips = pods.map((pod) => pod.status!.podIP!);
    const containerIds = async () => (await Promise.all(statics.map((name) => node!.containers(mirror(name))))).map((list) => list.map((c) => c.Id).sort().join(',')).join(';');
    const idsBefore = await containerIds();
    expect(idsBefore.split(';').every((ids) => ids.split(',').length === 1)).toBe(true);
    const serve = async (ip: string) => (await node!.netns.exec(['curl', '-s', '-m', '3', `http://${ip}:8080/`], { allowFailure: true, timeoutMs: 10_000 })).stdout.trim();
    await waitFor('both static pods serving', async () => (await Promise.all(ips.map(serve))).join() === statics.join(), 30_000, 250);

    await cp.kill();
    const downAt = Date.now();
    let checks = 0;
    let failures = 0;
    while (Date.now() - downAt < outageMs) {
      await sleep(2_000);
      checks++;
      const answers = await Promise.all(ips.map(serve));
      if (answers.join() !== statics.join() || (await containerIds()) !== idsBefore) failures++;
    }
    expect(failures).toBe(0);
    await cp.start();
    const backAt = new Date();
    const recovered = await waitFor('the node to renew its lease and report Ready after the outage', async () => {
      const lease = await apiRequest(server, 'GET', `/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/${node!.nodeName}`, undefined, 3_000);
      const renew = (lease.body.spec as { renewTime?: string } | undefined)?.renewTime;
      const got = await apiRequest(server, 'GET', `/api/v1/nodes/${node!.nodeName}`, undefined, 3_000);
      const ready = ((got.body.status as { conditions?: { type: string; status: string; lastHeartbeatTime?: string }[] } | undefined)?.conditions ?? []).find((c) => c.type === 'Ready');
      // The lease is the heartbeat; the kubelet reports status on change or every nodeStatusReportFrequency (KEP-589).
      return renew && new Date(renew) > backAt && ready?.status === 'True' ? Date.now() - backAt.getTime() : undefined;
    }, 90_000, 250);
    const after = await waitFor('both mirror pods Running after the outage', running, 60_000, 250);
    expect(after.map((pod) => pod.status!.podIP)).toEqual(ips);
    expect(after.flatMap((pod) => pod.status!.containerStatuses!.map((c) => c.restartCount))).toEqual([0, 0]);
    expect(await containerIds()).toBe(idsBefore);
    expect(await Promise.all(ips.map(serve))).toEqual(statics);
    console.log(`[chaos] API outage: control plane killed for ${outageMs} ms; ${checks} checks of 2 static pods during it, ${failures} failed; same containers after; node Ready with a fresh lease ${recovered} ms after the API returned`);
  });
});
