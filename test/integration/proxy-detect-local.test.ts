/**
 * detectLocalMode NodeCIDR: the proxy takes the Node's spec.podCIDR from the real control plane
 * (waiting for it, bounded), and that CIDR then decides what is local pod traffic in the rules
 * (the same rule path as clusterCIDR: test/unit/proxy-settings.test.ts).
 */
import { randomBytes } from 'node:crypto';
import { CoreV1Api, KubeConfig, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../lib/log.js';
import { waitForNodePodCIDR } from '../../proxy/detect-local.js';
import { startTestControlPlane, type TestControlPlane } from '../helpers/controlplane.js';

const id = randomBytes(3).toString('hex');
const silent = createLogger('test', 'silent');

describe('detectLocalMode NodeCIDR', () => {
  let cp: TestControlPlane;
  let kc: KubeConfig;
  let core: CoreV1Api;

  beforeAll(async () => {
    cp = await startTestControlPlane({ controllers: false });
    kc = new KubeConfig();
    kc.loadFromFile(cp.kubeconfigPath);
    core = kc.makeApiClient(CoreV1Api);
  }, 60_000);
  afterAll(() => cp?.stop());

  it("detectLocalMode NodeCIDR takes the node's podCIDR, waiting for it", async () => {
    const name = `knt-dl-${id}`;
    await core.createNode({ body: { metadata: { name } } });
    const waiting = waitForNodePodCIDR(kc, name, silent, 30_000, 100);
    await core.patchNode({ name, body: { spec: { podCIDR: '10.244.7.0/24', podCIDRs: ['10.244.7.0/24'] } } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
    expect(await waiting).toBe('10.244.7.0/24');
  });

  it('a node that never gets one is a clear error after the bound', async () => {
    await expect(waitForNodePodCIDR(kc, `knt-missing-${id}`, silent, 300, 100)).rejects.toThrow(/detectLocalMode NodeCIDR: no pod CIDR for node "knt-missing-.*" within 0s/);
  });
});
