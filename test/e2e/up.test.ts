/**
 * `knode up` as an operator runs it (the built CLI), inside a test node netns joined by a veth
 * to an "underlay" netns (no default route): `knode up` changes the network of the namespace it
 * runs in (cni0, flannel.1, iptables), so it never runs in the root netns. Checks: the progress
 * lines, node Ready, the example static pod's mirror pod Running with an IP of the node's
 * podCIDR and answering HTTP, a Service in front of a kubectl-created pod answering through the
 * proxy's rules, SIGTERM → exit 0 with the pods left running, `knode up` again → the same
 * containers (no duplicates), and `knode down --purge` removing containers, devices, rules and
 * the data dir.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { removeAgentPods, testDocker } from '../helpers/docker.js';
import { TestNetwork, type Netns } from '../helpers/netns.js';
import { prerequisites } from '../helpers/prereq.js';
import { waitFor as pollUntil } from '../helpers/wait.js';

const env = await prerequisites('root', 'docker', 'command:ip', 'command:nsenter', 'command:kubectl', 'command:curl', 'command:iptables', 'command:openssl');
const knode = fileURLToPath(new URL('../../bin/knode', import.meta.url));
const built = existsSync(fileURLToPath(new URL('../../dist/bin/up.js', import.meta.url)));

const runId = randomBytes(4).toString('hex');
const scopeLabel = `io.knode.test=up-${runId}`;
const nodeName = `knt-up-${runId}`;
const underlayNet = `192.168.${100 + (parseInt(runId.slice(0, 2), 16) % 100)}`;

/** Polls with this file's default deadline (test/helpers/wait.ts). */
const waitFor = <T>(what: string, probe: () => T | undefined | Promise<T | undefined>, timeoutMs = 90_000): Promise<T> =>
  pollUntil(what, probe, timeoutMs, 250);

interface Up {
  child: ChildProcess;
  output: () => string;
  exit: Promise<number | null>;
}

describe.skipIf(env.skip || !built)('knode up: a single-node cluster in a node netns', () => {
  let docker: Docker;
  const net = new TestNetwork();
  let node: Netns;
  let dataDir: string;
  let scratch: string;
  let up: Up | undefined;

  const kubeconfig = () => join(dataDir, 'controlplane', 'admin.kubeconfig');
  const kubectl = async (...args: string[]) => (await node.exec(['kubectl', '--kubeconfig', kubeconfig(), ...args], { timeoutMs: 30_000 })).stdout;
  const ours = async () => (await docker.listContainers({ all: true, filters: { label: [scopeLabel] } })).map((c) => `${c.Id}:${c.State}`).sort();

  function startUp(): Up {
    // nsenter --net rather than `ip netns exec`: the latter remounts /sys for the netns, which
    // hides /sys/fs/cgroup from the agent (pod cgroups, eviction stats); the network is the same.
    const child = spawn('nsenter', [`--net=${node.path}`, process.execPath, knode, 'up', '--data-dir', dataDir, '--iface', 'ul0', '--hostname-override', nodeName], {
      env: { ...process.env, KNODE_RUNTIME_SCOPE: scopeLabel, KNODE_LOG_LEVEL: 'info' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr!.on('data', (chunk: Buffer) => (output = (output + chunk.toString()).slice(-20_000)));
    const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    return { child, output: () => output, exit };
  }

  async function waitUp(current: Up): Promise<void> {
    let exited = false;
    void current.exit.then(() => (exited = true));
    await waitFor('knode up to finish starting', async () => {
      if (exited) throw new Error(`knode up exited:\n${current.output()}`);
      return current.output().includes('knode is up.') ? true : undefined;
    }, 150_000).catch((error: unknown) => {
      throw new Error(`${String(error)}\n--- output:\n${current.output()}`);
    });
  }

  async function stopUp(current: Up): Promise<number | null> {
    current.child.kill('SIGTERM');
    const timer = setTimeout(() => current.child.kill('SIGKILL'), 90_000);
    const code = await current.exit;
    clearTimeout(timer);
    return code;
  }

  beforeAll(async () => {
    docker = await testDocker();
    node = await net.node('node');
    const underlay = await net.namespace('ul');
    await net.link(node, underlay, { aName: 'ul0', bName: 'ul1', aAddress: `${underlayNet}.1/24`, bAddress: `${underlayNet}.2/24` });
    dataDir = await mkdtemp(join(tmpdir(), 'knode-up-'));
    scratch = await mkdtemp(join(tmpdir(), 'knode-up-scratch-'));
  });

  afterAll(async () => {
    if (up && up.child.exitCode === null) {
      await stopUp(up).catch(() => undefined);
    }
    // Children left by a killed `up` (its pid file lists them).
    try {
      const pids = JSON.parse(readFileSync(join(dataDir, 'knode-up.pid'), 'utf8')) as { children: { pid?: number }[] };
      for (const { pid } of pids.children) if (pid) process.kill(pid, 'SIGKILL');
    } catch {
      /* no pid file: nothing left */
    }
    if (docker) {
      await removeAgentPods(docker, scopeLabel);
    }
    await net.cleanup();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
    if (scratch) await rm(scratch, { recursive: true, force: true });
  });

  it('a failure says which component and why', async () => {
    const tryUp = (dir: string, ...flags: string[]) =>
      node.exec([process.execPath, knode, 'up', '--data-dir', join(scratch, dir), '--iface', 'ul0', ...flags], { allowFailure: true, timeoutMs: 120_000, env: { ...process.env, KNODE_RUNTIME_SCOPE: scopeLabel } });
    const noDocker = await tryUp('no-docker', '--container-runtime-endpoint', `unix://${join(scratch, 'missing.sock')}`);
    expect(noDocker.code).toBe(1);
    expect(noDocker.stderr).toContain(`agent: Docker Engine not reachable at ${join(scratch, 'missing.sock')}: start dockerd or pass --container-runtime-endpoint`);
    // A child that exits early: its exit code and the last lines of its log.
    const badCidr = await tryUp('bad-cidr', '--cluster-cidr', '10.244.0.0/33');
    expect(badCidr.code).toBe(1);
    expect(badCidr.stderr).toMatch(/controlplane: exited with code 2 \(log .*controlplane\.log\); last lines:\n.*--cluster-cidr "10\.244\.0\.0\/33"/);
    expect(existsSync(join(scratch, 'bad-cidr', 'knode-up.pid'))).toBe(false);
  }, 200_000);

  it('starts every component with progress lines; the node is Ready and the example pod answers', async () => {
    up = startUp();
    await waitUp(up);
    const lines = up.output().split('\n').filter((line) => line.startsWith('✓ '));
    expect(lines.map((line) => line.split(' ')[1])).toEqual(['control', 'overlay', 'agent', 'proxy', 'dns']);
    expect(up.output()).toContain(`export KUBECONFIG=${kubeconfig()}; kubectl get pods -A`);
    expect(up.output()).toMatch(new RegExp(`node ${nodeName}: Ready, InternalIP ${underlayNet.replace(/\./g, '\\.')}\\.1, podCIDR 10\\.244\\.\\d+\\.0/24`));
    const nodes = await kubectl('get', 'nodes', '--no-headers');
    expect(nodes).toMatch(new RegExp(`^${nodeName}\\s+Ready\\s`));
    const podCIDR = await kubectl('get', 'node', nodeName, '-o', 'jsonpath={.spec.podCIDR}');
    const mirror = `hello-${nodeName}`;
    const podIP = await waitFor('the example static pod Running', async () => {
      const [phase, ip] = (await kubectl('get', 'pod', mirror, '-o', 'jsonpath={.status.phase} {.status.podIP}')).split(' ');
      return phase === 'Running' && ip ? ip : undefined;
    }, 120_000);
    expect(podIP.split('.').slice(0, 3).join('.')).toBe(podCIDR.split('.').slice(0, 3).join('.'));
    const page = await waitFor('the hello page', async () => {
      const result = await node.exec(['curl', '-sS', '-m', '5', `http://${podIP}:8080/`], { allowFailure: true, timeoutMs: 15_000 });
      return result.code === 0 ? result.stdout : undefined;
    }, 60_000);
    expect(page).toBe('hello from knode\n');
    // The kubelet authorizes with SubjectAccessReviews (Webhook): the API server's kubelet client passes (kubectl exec) …
    expect(await kubectl('exec', mirror, '--', 'echo', 'exec-ok')).toBe('exec-ok\n');
    // … another certificate of the cluster CA (a joined node's identity) does not.
    const pki = join(dataDir, 'controlplane', 'pki');
    const [key, csr, crt] = ['key', 'csr', 'crt'].map((ext) => join(scratch, `other-node.${ext}`)) as [string, string, string];
    await node.exec(['openssl', 'req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', csr, '-subj', '/O=system:nodes/CN=system:node:other']);
    await node.exec(['openssl', 'x509', '-req', '-in', csr, '-CA', join(pki, 'ca.crt'), '-CAkey', join(pki, 'ca.key'), '-CAserial', join(scratch, 'other-node.srl'), '-CAcreateserial', '-days', '1', '-out', crt]);
    const refused = await node.exec(['curl', '-sk', '--cert', crt, '--key', key, '-w', '\n%{http_code}', '-m', '10', 'https://127.0.0.1:10250/pods'], { allowFailure: true, timeoutMs: 20_000 });
    expect(refused.stdout).toContain('Forbidden (user=system:node:other, verb=get, resource=nodes, subresource(s)=[proxy])');
    expect(refused.stdout.trimEnd().split('\n').pop()).toBe('403');
  }, 300_000);

  it('a ClusterIP Service in front of a kubectl-created pod answers through the proxy rules', async () => {
    const manifest = join(scratch, 'web.yaml');
    await writeFile(
      manifest,
      [
        'apiVersion: v1', 'kind: Pod', 'metadata: {name: web, labels: {app: web}}', 'spec:', '  terminationGracePeriodSeconds: 1', '  containers:',
        '  - name: httpd', '    image: knode.local/busybox:1',
        '    command: ["sh", "-c", "mkdir -p /tmp/w && echo web-through-service > /tmp/w/index.html && exec httpd -f -p 8080 -h /tmp/w"]',
        '---', 'apiVersion: v1', 'kind: Service', 'metadata: {name: web}', 'spec:', '  selector: {app: web}', '  ports: [{port: 80, targetPort: 8080}]', '',
      ].join('\n'),
    );
    await kubectl('apply', '-f', manifest);
    const clusterIP = await kubectl('get', 'service', 'web', '-o', 'jsonpath={.spec.clusterIP}');
    expect(clusterIP).toMatch(/^10\.(9[6-9]|10[0-9]|11[01])\./);
    // A real node reaches ClusterIPs through its default route (the packet is routed, then
    // DNATed in OUTPUT); a test netns has none, so the service range gets a route of its own.
    await node.ip('route', 'add', '10.96.0.0/12', 'dev', 'ul0');
    const answer = await waitFor('the Service to answer', async () => {
      const result = await node.exec(['curl', '-sS', '-m', '3', `http://${clusterIP}/`], { allowFailure: true, timeoutMs: 10_000 });
      return result.code === 0 ? result.stdout : undefined;
    }, 120_000);
    expect(answer).toBe('web-through-service\n');
    const nat = (await node.exec(['iptables', '-w', '-t', 'nat', '-S', 'KUBE-SERVICES'])).stdout;
    expect(nat).toContain(`-d ${clusterIP}/32`);
  }, 200_000);

  it('SIGTERM exits 0 leaving pods running; knode up again resumes them without duplicates', async () => {
    const before = await ours();
    expect(before.filter((c) => c.endsWith(':running'))).toHaveLength(4); // 2 sandboxes + 2 containers
    expect(await stopUp(up!)).toBe(0);
    expect(existsSync(join(dataDir, 'knode-up.pid'))).toBe(false);
    expect(await ours()).toEqual(before);
    up = startUp();
    await waitUp(up);
    const names = [`hello-${nodeName}`, 'web'];
    await waitFor('both pods Running again', async () => {
      const text = await kubectl('get', 'pods', '--no-headers');
      return names.every((name) => new RegExp(`^${name}\\s+1/1\\s+Running\\s+0\\s`, 'm').test(text)) ? true : undefined;
    }, 120_000);
    await new Promise((resolve) => setTimeout(resolve, 3000));
    expect(await ours()).toEqual(before);
    expect((await kubectl('get', 'pods', '--no-headers')).trim().split('\n')).toHaveLength(2);
    expect(await stopUp(up)).toBe(0);
  }, 300_000);

  it('knode down --purge stops what a killed `up` left and removes containers, devices, rules and the data dir', async () => {
    up = startUp();
    await waitUp(up);
    up.child.kill('SIGKILL');
    await up.exit;
    const down = await node.exec([process.execPath, knode, 'down', '--data-dir', dataDir, '--purge'], { timeoutMs: 120_000, env: { ...process.env, KNODE_RUNTIME_SCOPE: scopeLabel } });
    expect(down.stdout).toContain('stopped a leftover agent');
    expect(down.stdout).toContain('purged: 4 container(s)');
    expect(await ours()).toEqual([]);
    const links = (await node.ip('-o', 'link')).stdout;
    expect(links).not.toMatch(/\b(cni0|flannel\.1)\b/);
    const nat = (await node.exec(['iptables', '-w', '-t', 'nat', '-S'])).stdout;
    expect(nat).not.toMatch(/KUBE-|KNODE-/);
    expect(existsSync(dataDir)).toBe(false);
  }, 200_000);
});
