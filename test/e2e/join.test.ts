/**
 * `knode join` end to end (issue 20): a control plane in its own netns (TLS on its underlay
 * address, the cluster CA, CSR approval and signing, cluster-info), two node netns joined to it
 * only with the line `knode token create --print-join-command` prints, each running the node's
 * components as `knode join`'s supervised children. Then, through kubectl:
 * - both nodes Ready with client certificates from TLS bootstrap (node-csr-… CSRs approved and
 *   issued) and serving certificates from kubelet-serving CSRs; no admin credential on a node;
 * - pods scheduled on both nodes; `kubectl logs`, `exec` and `port-forward` reach both kubelets
 *   over TLS verified with the cluster CA; pod-to-pod and Service traffic across the overlay;
 * - the kubelet API refuses anonymous requests (401); node A's credential may not label node B;
 * - node B's certificates live for seconds: they rotate while its pods keep running unrestarted
 *   and the node stays Ready (no gap in API access);
 * - bad input: a wrong CA hash stops the join before the token is sent and writes nothing, an
 *   unknown token id and a malformed token stop with one clear error, a garbage bootstrap
 *   kubeconfig stops the agent with one clear error.
 * Network safety: everything lives in test netns on an underlay bridge; no netns has a default route.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type Docker from 'dockerode';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { busyboxSpec, ensureLocalImage, pauseSpec } from '../../cri/local-images.js';
import { run } from '../../lib/exec.js';
import { ensureKubeletPki } from '../../lib/kubelet-pki.js';
import { removeAgentPods, testDocker } from '../helpers/docker.js';
import { TestNetwork, type Netns } from '../helpers/netns.js';
import { prerequisites } from '../helpers/prereq.js';
import { waitFor } from '../helpers/wait.js';
import { webPod } from './helpers-cluster.js';

const env = await prerequisites('root', 'docker', 'command:ip', 'command:nsenter', 'command:kubectl', 'command:curl', 'command:openssl');
const knodeBin = fileURLToPath(new URL('../../bin/knode', import.meta.url));
const clusterCidr = '10.244.0.0/16';
const serviceCidr = '10.96.0.0/12';
/** Node B's certificates: short enough to rotate a few times during the test. */
const shortLifetimeSeconds = 20;

interface Proc {
  child: ChildProcess;
  output: string;
  exit?: number | null;
}

function startProc(netns: Netns, args: string[], extraEnv: NodeJS.ProcessEnv = {}): Proc {
  const child = spawn('nsenter', [`--net=${netns.path}`, '--', process.execPath, knodeBin, ...args], { env: { ...process.env, KNODE_LOG_LEVEL: 'info', ...extraEnv }, stdio: ['ignore', 'pipe', 'pipe'] });
  const proc: Proc = { child, output: '' };
  const append = (chunk: Buffer) => (proc.output = (proc.output + chunk.toString()).slice(-20_000));
  child.stdout!.on('data', append);
  child.stderr!.on('data', append);
  child.once('exit', (code) => (proc.exit = code));
  return proc;
}

async function stopProc(proc: Proc | undefined): Promise<void> {
  if (!proc || proc.exit !== undefined) return;
  const exited = new Promise((resolve) => proc.child.once('exit', resolve));
  proc.child.kill('SIGTERM');
  const timer = setTimeout(() => proc.child.kill('SIGKILL'), 40_000);
  await exited;
  clearTimeout(timer);
}

/** Runs `knode ARGS` to completion inside a netns: exit code and output. */
async function knodeOnce(netns: Netns, args: string[], extraEnv: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; output: string }> {
  const proc = startProc(netns, args, extraEnv);
  const timer = setTimeout(() => proc.child.kill('SIGKILL'), 90_000);
  await new Promise((resolve) => proc.child.once('exit', resolve));
  clearTimeout(timer);
  return { code: proc.exit ?? null, output: proc.output };
}

interface JoinedNode {
  name: string;
  netns: Netns;
  ip: string;
  dir: string;
  scope: string;
  join: Proc;
}

describe.skipIf(env.skip)('knode join: two nodes join a control plane with a bootstrap token', () => {
  const net = new TestNetwork();
  const prefix = `192.168.${100 + (parseInt(randomBytes(1).toString('hex'), 16) % 100)}`;
  const cpIp = `${prefix}.50`;
  const dirs: string[] = [];
  let docker: Docker;
  let cpNetns: Netns;
  let underlay: Netns;
  let cpDir = '';
  let cp: Proc | undefined;
  let joinLine = '';
  const nodes: JoinedNode[] = [];
  const kubectlIn = async (netns: Netns, kubeconfig: string, args: string[], allowFailure = false) =>
    run(['nsenter', `--net=${netns.path}`, '--', 'kubectl', '--kubeconfig', kubeconfig, '--request-timeout=20s', ...args], { timeoutMs: 40_000, allowFailure });
  const kubectl = async (...args: string[]) => (await kubectlIn(cpNetns, join(cpDir, 'admin.kubeconfig'), args)).stdout;
  const diagnostics = () => [`--- controlplane ${cp?.exit ?? 'running'}\n${cp?.output.slice(-3000) ?? ''}`, ...nodes.map((n) => `--- join ${n.name} ${n.join.exit ?? 'running'}\n${n.join.output.slice(-3000)}\n${logTail(n, 'agent')}`)].join('\n');
  const logTail = (node: JoinedNode, component: string) => {
    const file = join(node.dir, 'logs', `${component}.log`);
    return existsSync(file) ? `[${component}.log]\n${readFileSync(file, 'utf8').slice(-4000)}` : '';
  };
  const failWith = (error: unknown): never => {
    throw new Error(`${error instanceof Error ? error.message : String(error)}\n${diagnostics()}`, { cause: error });
  };
  const argValue = (line: string, flag: string) => new RegExp(`${flag}\\s+(\\S+)`).exec(line)?.[1] ?? '';

  /** `kubectl port-forward pod/NAME :8080` in the control plane's netns, one GET through it, stopped. */
  async function portForwardGet(pod: string): Promise<string> {
    const child = spawn('nsenter', [`--net=${cpNetns.path}`, '--', 'kubectl', '--kubeconfig', join(cpDir, 'admin.kubeconfig'), 'port-forward', '--address', '127.0.0.1', `pod/${pod}`, ':8080'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    try {
      const port = await waitFor(`kubectl port-forward to ${pod}`, () => {
        if (child.exitCode !== null) throw new Error(`kubectl port-forward exited ${child.exitCode}: ${output}`);
        return /Forwarding from 127\.0\.0\.1:(\d+) -> 8080/.exec(output)?.[1];
      }, 30_000, 100);
      return (await run(['nsenter', `--net=${cpNetns.path}`, '--', 'curl', '-s', '-m', '10', `http://127.0.0.1:${port}/`], { timeoutMs: 20_000 })).stdout;
    } finally {
      child.kill('SIGKILL');
    }
  }

  async function makeNodeNetns(role: string, index: number): Promise<{ netns: Netns; ip: string }> {
    const netns = await net.node(role);
    const ip = `${prefix}.${index}`;
    const [, peer] = await net.link(netns, underlay, { aName: 'ul0', aAddress: `${ip}/24` });
    await underlay.ip('link', 'set', peer, 'master', 'br0');
    return { netns, ip };
  }

  async function joinNode(role: string, index: number, extraEnv: NodeJS.ProcessEnv = {}): Promise<JoinedNode> {
    const { netns, ip } = await makeNodeNetns(role, index);
    const dir = await mkdtemp(join(tmpdir(), `knode-join-${role}-`));
    dirs.push(dir);
    const scope = `io.knode.test=join-${net.id}-${role}`;
    const args = joinLine.split(/\s+/).slice(2); // after "knode join"
    const proc = startProc(netns, ['join', ...args, '--data-dir', dir, '--iface', 'ul0', '--hostname-override', netns.name], { KNODE_RUNTIME_SCOPE: scope, ...extraEnv });
    const node = { name: netns.name, netns, ip, dir, scope, join: proc };
    nodes.push(node);
    return node;
  }

  beforeAll(async () => {
    docker = await testDocker();
    await Promise.all([ensureLocalImage(docker, pauseSpec), ensureLocalImage(docker, busyboxSpec)]);
    underlay = await net.namespace('ul');
    await underlay.ip('link', 'add', 'br0', 'type', 'bridge');
    await underlay.ip('link', 'set', 'br0', 'up');
    cpNetns = await net.namespace('cp');
    const [, cpPeer] = await net.link(cpNetns, underlay, { aName: 'ul0', aAddress: `${cpIp}/24` });
    await underlay.ip('link', 'set', cpPeer, 'master', 'br0');
    cpDir = await mkdtemp(join(tmpdir(), 'knode-join-cp-'));
    dirs.push(cpDir);
    // The cluster CA and the API server's kubelet client certificate (O=system:masters), as kubeadm's apiserver-kubelet-client.
    await ensureKubeletPki(join(cpDir, 'pki'), { servingNames: ['IP:127.0.0.1'], days: 2 });
    cp = startProc(cpNetns, [
      'controlplane', '--listen', `${cpIp}:6443`, '--data-dir', cpDir, '--store', 'memory', '--cluster-cidr', clusterCidr, '--service-cidr', serviceCidr,
      '--kubelet-client-certificate', join(cpDir, 'pki', 'client.crt'), '--kubelet-client-key', join(cpDir, 'pki', 'client.key'),
      '--kubelet-certificate-authority', join(cpDir, 'pki', 'ca.crt'), '--csr-min-duration', '10s',
    ]);
    await waitFor('the control plane', async () => {
      if (cp!.exit !== undefined) throw new Error(`control plane exited: ${cp!.output}`);
      return existsSync(join(cpDir, 'admin.kubeconfig')) && (await kubectlIn(cpNetns, join(cpDir, 'admin.kubeconfig'), ['get', 'namespaces'], true)).code === 0;
    }, 60_000, 250).catch(failWith);
    const printed = await knodeOnce(cpNetns, ['token', 'create', '--kubeconfig', join(cpDir, 'admin.kubeconfig'), '--print-join-command']);
    expect(printed.code, printed.output).toBe(0);
    joinLine = printed.output.split('\n').find((line) => line.startsWith('knode join ')) ?? '';
    expect(joinLine).toMatch(new RegExp(`^knode join --server https://${cpIp.replace(/\./g, '\\.')}:6443 --token [a-z0-9]{6}\\.[a-z0-9]{16} --discovery-token-ca-cert-hash sha256:[0-9a-f]{64}$`));
    const a = await joinNode('a', 1);
    const b = await joinNode('b', 2, { KNODE_CSR_EXPIRATION_SECONDS: String(shortLifetimeSeconds) });
    for (const node of [a, b]) {
      await waitFor(`${node.name} joined`, () => {
        if (node.join.exit !== undefined) throw new Error(`knode join on ${node.name} exited with ${node.join.exit}`);
        return node.join.output.includes('knode joined');
      }, 240_000, 500).catch(failWith);
    }
  }, 400_000);

  afterAll(async () => {
    await Promise.all(nodes.map((node) => stopProc(node.join)));
    for (const node of nodes) await removeAgentPods(docker, node.scope).catch(() => undefined);
    await stopProc(cp);
    const withRoute: string[] = [];
    for (const netns of [underlay, cpNetns, ...nodes.map((n) => n.netns)]) if (netns && !(await netns.hasNoDefaultRoute().catch(() => true))) withRoute.push(netns.name);
    await net.cleanup();
    await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
    expect(withRoute).toEqual([]);
  }, 180_000);

  it('both nodes are Ready with bootstrapped client and serving certificates, and hold no admin credential', async () => {
    const [a, b] = nodes as [JoinedNode, JoinedNode];
    const ready = await kubectl('get', 'nodes', '-o', 'jsonpath={range .items[*]}{.metadata.name}={.status.conditions[?(@.type=="Ready")].status}{"\\n"}{end}');
    expect(ready).toContain(`${a.name}=True`);
    expect(ready).toContain(`${b.name}=True`);
    const csrs = await kubectl('get', 'csr', '-o', 'jsonpath={range .items[*]}{.metadata.name} {.spec.signerName} {.spec.username} {.status.conditions[0].type} {.status.certificate}{"\\n"}{end}');
    for (const node of [a, b]) {
      // The bootstrap CSR: made with the token (system:bootstrap:<id>), for system:node:<name>.
      expect(csrs).toMatch(new RegExp(`node-csr-\\S+ kubernetes.io/kube-apiserver-client-kubelet system:bootstrap:[a-z0-9]{6} Approved \\S+`));
      expect(csrs).toMatch(new RegExp(`csr-\\S+ kubernetes.io/kubelet-serving system:node:${node.name} Approved \\S+`));
      const kubeconfig = readFileSync(join(node.dir, 'config', 'kubelet.kubeconfig'), 'utf8');
      expect(kubeconfig).toContain(join(node.dir, 'kubelet', 'pki', 'kubelet-client-current.pem'));
      const subject = async (file: string) => (await run(['openssl', 'x509', '-noout', '-subject', '-in', join(node.dir, 'kubelet', 'pki', file)])).stdout;
      expect(await subject('kubelet-client-current.pem')).toMatch(new RegExp(`O\\s*=\\s*system:nodes, CN\\s*=\\s*system:node:${node.name}`));
      // The proxy and the overlay have their own, narrower identities.
      expect(await subject('kube-proxy-client-current.pem')).toMatch(/subject=CN\s*=\s*system:kube-proxy$/m);
      expect(await subject('overlay-client-current.pem')).toMatch(new RegExp(`subject=CN\\s*=\\s*system:knode:overlay:${node.name}$`, 'm'));
      expect(readFileSync(join(node.dir, 'config', 'kube-proxy-config.yaml'), 'utf8')).toContain(join(node.dir, 'config', 'proxy.kubeconfig'));
      const adminToken = readFileSync(join(cpDir, 'token'), 'utf8').trim();
      for (const file of readdirSync(join(node.dir, 'config'), { recursive: true }) as string[]) {
        const path = join(node.dir, 'config', file);
        if (existsSync(path) && !file.endsWith('pki')) expect(readFileSync(path, 'utf8').includes(adminToken)).toBe(false);
      }
    }
  });

  it('schedules pods on both nodes; kubectl logs, exec and port-forward reach both kubelets; pods and a Service work across nodes', async () => {
    const [a, b] = nodes as [JoinedNode, JoinedNode];
    const file = join(a.dir, 'workload.yaml');
    const service = { apiVersion: 'v1', kind: 'Service', metadata: { name: 'web' }, spec: { selector: { app: 'web' }, ports: [{ name: 'http', port: 80, targetPort: 'http' }] } };
    writeFileSync(file, [webPod('web-a', a.name), webPod('web-b', b.name), service].map((m) => stringify(m)).join('---\n'));
    await kubectl('apply', '-f', file);
    const ips = await waitFor('both web pods Ready', async () => {
      const out = await kubectl('get', 'pods', '-o', 'jsonpath={range .items[*]}{.metadata.name} {.spec.nodeName} {.status.podIP} {.status.conditions[?(@.type=="Ready")].status}{"\\n"}{end}');
      const rows = out.split('\n').filter(Boolean).map((line) => line.split(' '));
      const ok = ['web-a', 'web-b'].every((name) => rows.some((r) => r[0] === name && r[3] === 'True'));
      return ok ? Object.fromEntries(rows.map((r) => [r[0], { node: r[1], ip: r[2] }])) : undefined;
    }, 180_000, 500).catch(failWith);
    expect(ips['web-a']!.node).toBe(a.name);
    expect(ips['web-b']!.node).toBe(b.name);
    for (const name of ['web-a', 'web-b']) {
      expect(await kubectl('exec', name, '--', 'cat', '/tmp/w/index.html')).toBe(`${name}\n`);
      // busybox httpd logs nothing by itself: the log is whatever the container printed (maybe empty); the call must succeed.
      await kubectl('logs', name);
    }
    // kubectl port-forward (SPDY through the control plane to each kubelet), inside the control plane's netns.
    for (const name of ['web-a', 'web-b']) expect(await portForwardGet(name)).toBe(`${name}\n`);
    // Pod on A → pod on B (and back) across the VXLAN overlay.
    expect(await kubectl('exec', 'web-a', '--', 'sh', '-c', `printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 ${ips['web-b']!.ip} 8080 | tail -n 1`)).toBe('web-b\n');
    expect(await kubectl('exec', 'web-b', '--', 'sh', '-c', `printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 ${ips['web-a']!.ip} 8080 | tail -n 1`)).toBe('web-a\n');
    // Service traffic across nodes: the proxy (its own system:kube-proxy identity) programs the
    // ClusterIP; from node A's pod, bounded requests reach the pod on node B too.
    const clusterIP = await kubectl('get', 'service', 'web', '-o', 'jsonpath={.spec.clusterIP}');
    const answers = await waitFor('answers from both pods through the ClusterIP', async () => {
      const out = await kubectl('exec', 'web-a', '--', 'sh', '-c', `i=0; while [ $i -lt 12 ]; do i=$((i+1)); printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 ${clusterIP} 80 | tail -n 1; done`);
      const names = new Set(out.split('\n').filter(Boolean));
      return names.has('web-a') && names.has('web-b') ? names : undefined;
    }, 90_000, 1000).catch(failWith);
    expect([...answers].sort()).toEqual(['web-a', 'web-b']);
  }, 300_000);

  it('the kubelet API refuses anonymous requests (401); a node credential may not touch another node (403)', async () => {
    const [a, b] = nodes as [JoinedNode, JoinedNode];
    for (const node of [a, b]) {
      const anonymous = await run(['nsenter', `--net=${cpNetns.path}`, '--', 'curl', '-sk', '-o', '/dev/null', '-w', '%{http_code}', '-m', '10', `https://${node.ip}:10250/pods`], { allowFailure: true, timeoutMs: 20_000 });
      expect(anonymous.stdout.trim()).toBe('401');
    }
    const patched = await kubectlIn(a.netns, join(a.dir, 'config', 'kubelet.kubeconfig'), ['label', 'node', b.name, 'stolen=yes'], true);
    expect(patched.code).not.toBe(0);
    expect(patched.stderr).toMatch(/Forbidden/);
  });

  it(`rotates node B's certificates (lifetime ${shortLifetimeSeconds} s) without restarting its pods or losing API access`, async () => {
    const b = nodes[1]!;
    const current = join(b.dir, 'kubelet', 'pki', 'kubelet-client-current.pem');
    const servingCurrent = join(b.dir, 'kubelet', 'pki', 'kubelet-server-current.pem');
    const containerBefore = await kubectl('get', 'pod', 'web-b', '-o', 'jsonpath={.status.containerStatuses[0].containerID} {.status.containerStatuses[0].restartCount}');
    const seen = new Set([readlinkSync(current)]);
    const servingSeen = new Set([readlinkSync(servingCurrent)]);
    await waitFor('two client and serving certificate rotations on node B', async () => {
      seen.add(readlinkSync(current));
      servingSeen.add(readlinkSync(servingCurrent));
      // API access throughout: the node stays Ready (its status and lease keep being written).
      const ready = await kubectl('get', 'node', b.name, '-o', 'jsonpath={.status.conditions[?(@.type=="Ready")].status}');
      if (ready !== 'True') throw new Error(`node ${b.name} Ready=${ready}`);
      return seen.size >= 3 && servingSeen.size >= 2;
    }, 120_000, 1000).catch(failWith);
    expect(await kubectl('get', 'pod', 'web-b', '-o', 'jsonpath={.status.containerStatuses[0].containerID} {.status.containerStatuses[0].restartCount}')).toBe(containerBefore);
    expect(containerBefore).toMatch(/ 0$/);
    // The control plane still reaches the kubelet over TLS with its new serving certificate.
    expect(await kubectl('exec', 'web-b', '--', 'cat', '/tmp/w/index.html')).toBe('web-b\n');
    const agentLog = readFileSync(join(b.dir, 'logs', 'agent.log'), 'utf8');
    expect(agentLog).toContain('certificate rotated');
    expect(agentLog).not.toMatch(/"statusCode":401|HTTP-Code: 401/);
  }, 180_000);

  it('stops before sending the token on a wrong CA hash, and names malformed or unknown tokens and garbage bootstrap kubeconfigs', async () => {
    const { netns } = await makeNodeNetns('x', 9);
    const dir = await mkdtemp(join(tmpdir(), 'knode-join-x-'));
    dirs.push(dir);
    const server = argValue(joinLine, '--server');
    const token = argValue(joinLine, '--token');
    const hash = argValue(joinLine, '--discovery-token-ca-cert-hash');
    const joinWith = (args: string[]) => knodeOnce(netns, ['join', '--server', server, '--data-dir', dir, '--iface', 'ul0', '--hostname-override', 'never', ...args]);
    const wrongHash = await joinWith(['--token', token, '--discovery-token-ca-cert-hash', `sha256:${'0'.repeat(64)}`]);
    expect(wrongHash.code).toBe(2);
    expect(wrongHash.output).toMatch(/none of the pinned ones .* matches; the join stopped before sending the token/);
    expect(readdirSync(dir)).toEqual([]);
    // The control plane saw no CSR and no request with the token: no node "never".
    expect(await kubectl('get', 'csr', '-o', 'name')).not.toContain('never');
    const unknown = await joinWith(['--token', 'zzzzzz.0123456789abcdef', '--discovery-token-ca-cert-hash', hash]);
    expect(unknown.code).toBe(2);
    expect(unknown.output).toMatch(/token id "zzzzzz" is invalid for this cluster or it has expired/);
    const malformed = await joinWith(['--token', 'not-a-token', '--discovery-token-ca-cert-hash', hash]);
    expect(malformed.code).toBe(2);
    expect(malformed.output).toMatch(/--token: malformed bootstrap token/);
    expect(readdirSync(dir)).toEqual([]);
    const garbage = join(dir, 'garbage.kubeconfig');
    writeFileSync(garbage, 'clusters: [1, 2\n');
    const agent = await knodeOnce(netns, ['agent', '--kubeconfig', join(dir, 'kubelet.kubeconfig'), '--bootstrap-kubeconfig', garbage, '--root-dir', join(dir, 'kubelet')]);
    expect(agent.code).toBe(2);
    expect(agent.output).toContain(garbage);
    expect(agent.output.trim().split('\n').filter((line) => line.startsWith('knode agent:'))).toHaveLength(1);
    // A well-formed but unknown token in a bootstrap kubeconfig: 401, named.
    writeFileSync(garbage, stringify({ apiVersion: 'v1', kind: 'Config', clusters: [{ name: 'c', cluster: { server, 'certificate-authority': join(cpDir, 'pki', 'ca.crt') } }], users: [{ name: 'u', user: { token: 'zzzzzz.0123456789abcdef' } }], contexts: [{ name: 'x', context: { cluster: 'c', user: 'u' } }], 'current-context': 'x' }));
    const rejected = await knodeOnce(netns, ['agent', '--kubeconfig', join(dir, 'kubelet.kubeconfig'), '--bootstrap-kubeconfig', garbage, '--root-dir', join(dir, 'kubelet')]);
    expect(rejected.code).toBe(2);
    expect(rejected.output).toMatch(/rejected its credential \(HTTP 401 Unauthorized\)/);
  }, 120_000);
});
