/**
 * Standing chaos (issue 25): a container runtime restart with pods running. The node (the
 * built `knode agent` in a test netns, ../e2e/helpers-node.ts) has a dockerd of its OWN, started
 * in the node's netns with its own data root, exec root, socket and containerd namespace (never
 * the shared engine), as test/integration/cri-dockerd-restart.test.ts does. Three pods run; the
 * dockerd is restarted twice (its containers stop with it); afterwards every pod runs again and
 * nothing leaked: the CNI IPAM store (host-local) holds exactly one address per running pod and
 * the node netns holds exactly one veth per running pod.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Docker from 'dockerode';
import { afterAll, describe, expect, it } from 'vitest';
import { busyboxSpec, ensureLocalImage } from '../../cri/local-images.js';
import { prerequisites } from '../helpers/prereq.js';
import { apiRequest } from '../helpers/raw-watch.js';
import { waitFor } from '../helpers/wait.js';
import { TestDockerd } from '../helpers/test-dockerd.js';
import type { Netns } from '../helpers/netns.js';
import { agentNodeUnavailable, startAgentNode, type AgentNode } from '../e2e/helpers-node.js';
import { startFileControlPlane, type FileControlPlane } from './controlplane-process.js';

const env = await prerequisites('root', 'docker', 'command:ip', 'command:nsenter', 'command:dockerd');
const unavailable = env.skip ? undefined : await agentNodeUnavailable();
if (unavailable && process.env.CI === 'true') throw new Error(unavailable);
const runId = randomBytes(4).toString('hex');

/** Addresses the host-local IPAM store holds (one file named after each address). */
function ipamAddresses(dir: string): string[] {
  const found: string[] = [];
  const walk = (path: string) => {
    for (const entry of readdirSync(path)) {
      const full = join(path, entry);
      if (statSync(full).isDirectory()) walk(full);
      else if (/^\d+\.\d+\.\d+\.\d+$/.test(entry)) found.push(entry);
    }
  };
  walk(dir);
  return found.sort();
}

async function veths(netns: Netns): Promise<string[]> {
  return (await netns.ip('-o', 'link', 'show', 'type', 'veth')).stdout.split('\n').filter((line) => line.trim() !== '');
}

describe.skipIf(env.skip || unavailable !== undefined)('container runtime restart with pods running', () => {
  let cp: FileControlPlane | undefined;
  let node: AgentNode | undefined;
  let runtime: TestDockerd | undefined;
  let cpDir = '';

  afterAll(async () => {
    await node?.stop(); // removes the node's containers through its own dockerd
    await runtime?.cleanup();
    await cp?.stop();
    if (cpDir) rmSync(cpDir, { recursive: true, force: true });
  });

  let docker: Docker | undefined;
  let nodeNetns: Netns | undefined;
  let allRunning: () => Promise<string[] | undefined> = async () => undefined;
  let ipamDir = '';
  const restarts = 2;

  it('runs every pod again after two dockerd restarts', async () => {
    cpDir = mkdtempSync(join(tmpdir(), 'knode-chaos-rr-'));
    cp = await startFileControlPlane(join(cpDir, 'cp'));
    node = await startAgentNode({
      controlPlane: { port: cp.port },
      docker: new Docker(), // replaced by the node's own runtime below
      name: 'rr',
      runtime: async (netns, dir) => {
        nodeNetns = netns;
        runtime = new TestDockerd(netns, join(dir, 'runtime'), `rr-${runId}`);
        await runtime.start();
        docker = runtime.docker;
        return { docker, endpoint: runtime.endpoint };
      },
    });
    const busybox = await ensureLocalImage(docker!, busyboxSpec);
    const names = ['rr0', 'rr1', 'rr2'];
    for (const name of names) {
      const pod = { metadata: { name }, spec: { nodeName: node.nodeName, terminationGracePeriodSeconds: 1, containers: [{ name: 'main', image: busybox, imagePullPolicy: 'Never', command: ['sleep', '3600'] }] } };
      expect((await apiRequest(cp.server, 'POST', '/api/v1/namespaces/default/pods', pod)).status).toBe(201);
    }
    allRunning = async () => {
      const ips: string[] = [];
      for (const name of names) {
        const got = await apiRequest(cp!.server, 'GET', `/api/v1/namespaces/default/pods/${name}`, undefined, 3_000);
        const status = got.body.status as { phase?: string; podIP?: string } | undefined;
        if (status?.phase !== 'Running' || !status.podIP) return undefined;
        if ((await node!.containers(name)).length !== 1) return undefined;
        ips.push(status.podIP);
      }
      return ips;
    };
    await waitFor('3 pods Running', allRunning, 120_000, 250);
    ipamDir = join(node.dir, 'ipam');
    expect(ipamAddresses(ipamDir)).toHaveLength(3);
    for (let round = 0; round < restarts; round++) {
      const before = (await Promise.all(names.map((name) => node!.containers(name)))).flat().map((c) => c.Id);
      await runtime!.stop();
      await runtime!.start();
      // Running again in new containers (dockerd stopped the old ones with it).
      await waitFor(`3 pods Running again after dockerd restart ${round + 1}`, async () => {
        const ips = await allRunning();
        const now = (await Promise.all(names.map((name) => node!.containers(name)))).flat().map((c) => c.Id);
        return ips && now.every((id) => !before.includes(id)) ? ips : undefined;
      }, 120_000, 250);
    }
  });

  // Issue 25 item 8: after a runtime restart the agent tears down the old sandboxes' networks
  // (it stops NotReady sandboxes too, and housekeeping runs the CNI network GC).
  it('leaks no IPAM address and no veth after those restarts', async () => {
    expect(ipamDir, 'the previous test did not get the pods running').not.toBe('');
    // Let the agent finish its cleanup of what the restarts left behind.
    const settled = await waitFor('the IPAM store and veths to settle', async () => {
      const ips = (await allRunning()) ?? [];
      const held = ipamAddresses(ipamDir);
      const links = await veths(nodeNetns!);
      // The pods' status reports the new sandboxes' addresses a moment after IPAM holds them.
      const reported = [...ips].sort().join() === held.join();
      return held.length === 3 && links.length === 3 && reported ? { ips, held, links } : undefined;
    }, 15_000, 500).catch(async () => ({ ips: (await allRunning()) ?? [], held: ipamAddresses(ipamDir), links: await veths(nodeNetns!) }));
    console.log(`[chaos] runtime restart: dockerd restarted ${restarts}× with 3 pods; IPAM addresses held ${settled.held.length} (pods ${settled.ips.join(', ')}), veths ${settled.links.length}; leaked addresses ${settled.held.length - 3}, leaked veths ${settled.links.length - 3}`);
    expect(settled.held).toEqual([...settled.ips].sort());
    expect(settled.links).toHaveLength(3);
  });
});
