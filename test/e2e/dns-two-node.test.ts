/**
 * Cluster DNS end to end on two node netns (issue 19): each node runs `knode dns` after its proxy
 * (as `knode up` does), publishing itself as its node's endpoint of kube-system/kube-dns
 * (10.96.0.10, internalTrafficPolicy Local), and forwards outside names to a dnsmasq that lives
 * in the test's underlay-client netns. From pods on node A, with busybox `nslookup` and with
 * glibc `getent` (an image with the host's getent and its libraries):
 * `web`, `web.default`, `web.default.svc.cluster.local`; a headless Service's endpoints on both
 * nodes; an SRV; a PTR; an ExternalName; an outside name through the forwarder; `http://web/`
 * by name; a Service created after the pod resolves within 1 s of its creation (clocked inside
 * the pod); a deleted one stops resolving; and with node B's DNS stopped, node A still resolves
 * (no node needs another to resolve a name).
 */
import { readFileSync } from 'node:fs';
import type { V1Pod, V1Service } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { busyboxImage } from '../../cri/local-images.js';
import { ensureGlibcImage } from '../helpers/dns.js';
import { testDocker } from '../helpers/docker.js';
import { prerequisites } from '../helpers/prereq.js';
import { waitFor as pollUntil } from '../helpers/wait.js';
import { clusterUnavailable, execInPod, startCluster, webPod, type TestCluster } from './helpers-cluster.js';

const env = await prerequisites('root', 'docker', 'command:ip', 'command:nsenter', 'command:kubectl', 'command:curl', 'command:iptables', 'command:dnsmasq', 'command:dig', 'command:ldd');
const unavailable = clusterUnavailable();
if (unavailable && process.env.CI === 'true') throw new Error(`missing test prerequisite under CI=true: ${unavailable}`);
if (unavailable) console.warn(`skipping: ${unavailable}`);

const waitFor = <T>(what: string, probe: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 90_000): Promise<T> => pollUntil(what, probe, timeoutMs, 250);

const client = (name: string, node: string, image: string): V1Pod => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name },
  spec: { nodeName: node, terminationGracePeriodSeconds: 1, containers: [{ name: 'main', image, command: ['sh', '-c', 'exec sleep 3600'] }] },
});

const service = (name: string, spec: V1Service['spec']): V1Service => ({ apiVersion: 'v1', kind: 'Service', metadata: { name }, spec });

describe.skipIf(env.skip || unavailable !== undefined)('cluster DNS on two nodes', () => {
  let cluster: TestCluster;
  let webIp = '';
  const podIps: string[] = [];
  const inA = (pod: string, script: string) => execInPod(cluster.nodes[0]!, pod, script, 30_000);
  /** Retries a lookup inside a pod until `check` holds (names need the watch to arrive first). */
  const eventually = (what: string, pod: string, script: string, check: (out: string) => boolean) =>
    waitFor(what, async () => {
      const out = await inA(pod, `${script} 2>&1 || true`);
      return check(out) ? out : undefined;
    }, 30_000);

  beforeAll(async () => {
    const docker = await testDocker();
    await ensureGlibcImage();
    cluster = await startCluster({ docker, dns: { dnsmasqArgs: ['--address=/outside.test/192.0.2.10', '--local=/outside.test/'] } });
    const [a, b] = cluster.nodes as [TestCluster['nodes'][0], TestCluster['nodes'][0]];
    const core = cluster.core;
    await core.createNamespacedPod({ namespace: 'default', body: webPod('web-a', a.name) });
    await core.createNamespacedPod({ namespace: 'default', body: webPod('web-b', b.name) });
    await core.createNamespacedPod({ namespace: 'default', body: client('bb', a.name, busyboxImage) });
    await core.createNamespacedPod({ namespace: 'default', body: client('glibc', a.name, (await ensureGlibcImage())) });
    const created = await core.createNamespacedService({ namespace: 'default', body: service('web', { selector: { app: 'web' }, ports: [{ name: 'http', port: 80, targetPort: 'http' }] }) });
    webIp = created.spec!.clusterIP!;
    await core.createNamespacedService({ namespace: 'default', body: service('hl', { clusterIP: 'None', selector: { app: 'web' }, ports: [{ name: 'http', port: 8080 }] }) });
    await core.createNamespacedService({ namespace: 'default', body: service('ext', { type: 'ExternalName', externalName: 'www.outside.test' }) });
    for (const name of ['web-a', 'web-b', 'bb', 'glibc']) {
      const pod = await waitFor(`${name} running`, async () => {
        const p = await core.readNamespacedPod({ name, namespace: 'default' });
        return p.status?.podIP && p.status.phase === 'Running' ? p : undefined;
      }, 180_000);
      if (name.startsWith('web-')) podIps.push(pod.status!.podIP!);
    }
    await waitFor('web pods ready', async () => {
      const pods = await core.listNamespacedPod({ namespace: 'default', labelSelector: 'app=web' });
      return pods.items.every((p) => p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'));
    }, 120_000);
  }, 600_000);

  afterAll(async () => {
    if (cluster && cluster.unexpectedExits().length > 0) console.error(cluster.diagnostics());
    await cluster?.stop();
  }, 120_000);

  it('pods have the clusterDNS in resolv.conf and kube-dns has one endpoint per node', async () => {
    const resolvConf = await inA('bb', 'cat /etc/resolv.conf');
    expect(resolvConf).toMatch(/^nameserver 10\.96\.0\.10$/m);
    expect(resolvConf).toMatch(/^search default\.svc\.cluster\.local svc\.cluster\.local cluster\.local/m);
    // Each node's `knode dns` publishes its own endpoint once it serves; node B's may come after A's.
    const want = cluster.nodes.map((n) => n.name).sort();
    const slices = await waitFor('one kube-dns endpoint per node', async () => {
      const names = (await cluster.kubectl('get', 'endpointslices', '-n', 'kube-system', '-l', 'kubernetes.io/service-name=kube-dns', '-o', 'jsonpath={.items[*].endpoints[*].nodeName}')).split(' ').sort();
      return names.join() === want.join() ? names : undefined;
    }, 30_000);
    expect(slices).toEqual(want);
  });

  it('busybox nslookup and glibc getent resolve web, web.default and the full name', async () => {
    for (const name of ['web', 'web.default', 'web.default.svc.cluster.local']) {
      await eventually(`getent hosts ${name}`, 'glibc', `getent hosts ${name}`, (out) => out.includes(webIp));
    }
    await eventually('nslookup full name', 'bb', 'nslookup web.default.svc.cluster.local', (out) => out.includes(webIp));
    await eventually('nslookup web (search list)', 'bb', 'nslookup web', (out) => out.includes(webIp));
  });

  it('a headless Service answers with the endpoints on both nodes; SRV; PTR; ExternalName; outside name', async () => {
    const headless = await eventually('headless', 'glibc', 'getent ahostsv4 hl.default.svc.cluster.local', (out) => podIps.every((ip) => out.includes(ip)));
    expect(headless).toContain(podIps[0]);
    await eventually('headless nslookup', 'bb', 'nslookup hl.default.svc.cluster.local', (out) => podIps.every((ip) => out.includes(ip)));
    await eventually('SRV', 'bb', 'nslookup -type=srv _http._tcp.web.default.svc.cluster.local', (out) => /80 web\.default\.svc\.cluster\.local/.test(out));
    await eventually('PTR (busybox)', 'bb', `nslookup ${webIp}`, (out) => out.includes('web.default.svc.cluster.local'));
    await eventually('PTR (glibc)', 'glibc', `getent hosts ${webIp}`, (out) => out.includes('web.default.svc.cluster.local'));
    await eventually('ExternalName (glibc)', 'glibc', 'getent hosts ext.default.svc.cluster.local', (out) => out.includes('192.0.2.10'));
    await eventually('ExternalName (busybox)', 'bb', 'nslookup ext.default.svc.cluster.local', (out) => out.includes('192.0.2.10'));
    await eventually('outside (glibc)', 'glibc', 'getent hosts www.outside.test', (out) => out.includes('192.0.2.10'));
    await eventually('outside (busybox)', 'bb', 'nslookup www.outside.test', (out) => out.includes('192.0.2.10'));
  });

  it('a pod reaches http://web/ by name', async () => {
    const get = `printf 'GET / HTTP/1.0\\r\\nHost: web\\r\\n\\r\\n' | nc -w 3 web 80`;
    await eventually('http://web/', 'bb', get, (out) => /HTTP\/1\.[01] 200/.test(out) && /web-[ab]/.test(out));
  });

  it('a Service created after the pod resolves within 1 s of its creation; deleted, it stops resolving', async () => {
    // The loop runs in the pod before the Service exists and prints the kernel's uptime clock (the
    // same clock as the host's /proc/uptime, 10 ms steps; busybox date has no %N) at the first answer.
    const loop = inA('glibc', 'i=0; while [ $i -lt 500 ]; do getent hosts late.default.svc.cluster.local >/dev/null && { cut -d" " -f1 /proc/uptime; exit 0; }; sleep 0.02; i=$((i+1)); done; echo none');
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const uptime = () => Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]);
    const createdAt = uptime();
    const late = await cluster.core.createNamespacedService({ namespace: 'default', body: service('late', { selector: { app: 'web' }, ports: [{ port: 80, targetPort: 8080 }] }) });
    const output = (await loop).trim();
    const seenAt = Number(output);
    expect(Number.isFinite(seenAt), `the pod never resolved late: ${output}`).toBe(true);
    expect((seenAt - createdAt) * 1000).toBeLessThan(1000);
    expect(await inA('glibc', 'getent hosts late')).toContain(late.spec!.clusterIP!);
    await cluster.core.deleteNamespacedService({ name: 'late', namespace: 'default' });
    await eventually('late gone', 'glibc', 'getent hosts late.default.svc.cluster.local; echo rc=$?', (out) => out.includes('rc=2'));
  });

  it('node A resolves on its own: node B\'s DNS stopped changes nothing for A', async () => {
    await cluster.nodes[1]!.stop('dns');
    await eventually('web after B stopped', 'glibc', 'getent hosts web', (out) => out.includes(webIp));
    await eventually('outside after B stopped', 'bb', 'nslookup www.outside.test', (out) => out.includes('192.0.2.10'));
  });
});
