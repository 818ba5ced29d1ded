/**
 * Issue 5 acceptance, through kubectl only: `kubectl apply` of a ConfigMap, a Secret and a Pod
 * (init container + 2 containers, configMap volume, env/envFrom from the secret, a preStop hook,
 * a container that ignores SIGTERM) on a real `knode agent`, then `kubectl logs`, `kubectl exec`
 * (output, stdin, exit code) through the real `knode controlplane` and the agent's kubelet API,
 * `kubectl port-forward` (WebSocket tunnel and SPDY; @kubernetes/client-node's channel protocol),
 * and `kubectl delete` (preStop ran, grace period honoured, SIGKILL at its end: measured).
 *
 * The kubelet API is secured as on a kubeadm node: HTTPS with a serving certificate signed by a
 * test CA, x509 client-certificate authentication against that CA, anonymous off; the control
 * plane dials it with --kubelet-client-certificate/--kubelet-client-key and verifies it with
 * --kubelet-certificate-authority. A request without a client certificate gets 401.
 *
 * Network safety: the control plane runs in the root netns and dials the node's InternalIP, so
 * the agent runs in the root netns too, with its kubelet on 127.0.0.1 and KNODE_NODE_IP=127.0.0.1
 * (checked on the Node before any logs/exec), and KNODE_CNI_HOST_NETNS wires the pods into a test
 * netns without a default route. Nothing but loopback is dialled from the root netns.
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { PassThrough, Writable } from 'node:stream';
import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type Docker from 'dockerode';
import { stringify } from 'yaml';
import WebSocket from 'ws';
import { KubeConfig, PortForward } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { busyboxSpec, ensureLocalImage } from '../../cri/local-images.js';
import { run } from '../../lib/exec.js';
import { testDocker } from '../helpers/docker.js';
import { type Netns } from '../helpers/netns.js';
import { onPath, prerequisites } from '../helpers/prereq.js';
import { waitFor } from '../helpers/wait.js';
import { httpGet, startPortForward, tcpUpload, type KnodeProcess, type KubeletPki } from './helpers-kubectl.js';
import { cniBin, startSingleNode, type SingleNode } from './helpers-single-node.js';

const env = await prerequisites('root', 'docker', 'command:ip', 'command:kubectl', 'command:openssl');
const haveCni = onPath('ip') && (await stat(join(cniBin, 'bridge')).then(() => true, () => false));
const built = existsSync(fileURLToPath(new URL('../../dist/bin/knode.js', import.meta.url)));
if (process.env.CI === 'true' && !env.skip && (!haveCni || !built)) throw new Error(`agent-kubectl e2e cannot run: ${built ? 'reference CNI plugins missing' : 'dist/ missing: run npm run build'}`);

const id = randomBytes(4).toString('hex');
const nodeName = `knt-kubectl-${id}`;
const scopeLabel = `io.knode.test=agent-kubectl-${id}`;
const subnet = `10.${200 + (parseInt(id.slice(0, 2), 16) % 50)}.${parseInt(id.slice(2, 4), 16)}.0/24`;
const pod = 'web';
const grace = 5;
const configValue = `config-value-${id}`;
const password = `s3cret-${id}`;

describe.skipIf(env.skip || !haveCni || !built)('kubectl apply / logs / exec / delete against a knode agent (issue 5)', () => {
  let docker: Docker;
  let fixture: SingleNode | undefined;
  let node: Netns;
  let dir: string;
  let pki: KubeletPki;
  let controlPlane: KnodeProcess | undefined;
  let agent: KnodeProcess | undefined;
  let kubeconfig: string;
  let busybox: string;
  let kubeletPort = 0;

  const kubectl = (args: string[], options: { input?: string; timeoutMs?: number } = {}) =>
    run(['kubectl', '--kubeconfig', kubeconfig, '-n', 'default', ...args], { allowFailure: true, timeoutMs: options.timeoutMs ?? 60_000, ...(options.input !== undefined ? { input: options.input } : {}) });
  const getJson = async <T>(args: string[]): Promise<T> => {
    const result = await kubectl([...args, '-o', 'json']);
    if (result.code !== 0) throw new Error(result.stderr);
    return JSON.parse(result.stdout) as T;
  };
  const logsOnFailure = () => `\n--- agent ---\n${agent?.logs().slice(-6000)}\n--- controlplane ---\n${controlPlane?.logs().slice(-3000)}`;

  beforeAll(async () => {
    docker = await testDocker();
    busybox = await ensureLocalImage(docker, busyboxSpec);
    fixture = await startSingleNode({ docker, tag: 'kctl', id, nodeName, scopeLabel, subnet, extraDirs: ['marker'] });
    ({ dir, pki, node, controlPlane, agent, kubeconfig, kubeletPort } = fixture);

  });

  afterAll(async () => {
    await fixture?.stop();
  });

  it('the kubelet API refuses requests without a client certificate (401) and serves the control plane\'s', async () => {
    const get = (withCert: boolean) =>
      new Promise<number>((resolve, reject) => {
        const req = httpsRequest(
          { host: '127.0.0.1', port: kubeletPort, path: '/pods', ca: pki.ca, ...(withCert ? { cert: pki.clientCert, key: pki.clientKey } : {}), agent: false },
          (res) => {
            res.resume();
            resolve(res.statusCode ?? 0);
          },
        );
        req.on('error', reject);
        req.end();
      });
    expect(await get(false)).toBe(401);
    expect(await get(true)).toBe(200);
    // The WebSocket upgrade goes through the same authentication: 401, never a 101.
    const upgrade = await new Promise<number>((resolve, reject) => {
      const ws = new WebSocket(`wss://127.0.0.1:${kubeletPort}/exec/default/${pod}/c1?command=true&stdout=1`, ['v5.channel.k8s.io'], { ca: pki.ca });
      ws.on('unexpected-response', (_req, res) => {
        resolve(res.statusCode ?? 0);
        ws.terminate();
      });
      ws.on('open', () => reject(new Error('upgraded without a client certificate')));
      ws.on('error', reject);
    });
    expect(upgrade).toBe(401);
  });

  it('kubectl apply runs the pod; logs and exec go through the control plane to the kubelet', async () => {
    const manifests = [
      { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'cfg' }, data: { key: configValue } },
      { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'sec' }, stringData: { password, user: 'admin' } },
      {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: pod },
        spec: {
          nodeName,
          terminationGracePeriodSeconds: grace,
          initContainers: [{ name: 'init', image: busybox, command: ['sh', '-c', 'echo init-wrote-this > /scratch/init.txt'], volumeMounts: [{ name: 'scratch', mountPath: '/scratch' }] }],
          containers: [
            {
              name: 'c1',
              image: busybox,
              command: ['sh', '-c', 'echo "cfg=$(cat /etc/cfg/key)"; echo "PASSWORD=$PASSWORD"; echo "user=$user"; echo "init=$(cat /scratch/init.txt)"; exec sleep 3600'],
              env: [{ name: 'PASSWORD', valueFrom: { secretKeyRef: { name: 'sec', key: 'password' } } }],
              envFrom: [{ secretRef: { name: 'sec' } }],
              volumeMounts: [{ name: 'cfg', mountPath: '/etc/cfg' }, { name: 'scratch', mountPath: '/scratch' }],
            },
            {
              name: 'c2',
              image: busybox,
              command: ['sh', '-c', "trap '' TERM; echo c2-started; while true; do sleep 1; done"],
              lifecycle: { preStop: { exec: { command: ['sh', '-c', 'date +%s > /marker/prestop; echo prestop-ran >> /marker/prestop'] } } },
              volumeMounts: [{ name: 'marker', mountPath: '/marker' }],
            },
          ],
          volumes: [
            { name: 'cfg', configMap: { name: 'cfg' } },
            { name: 'scratch', emptyDir: {} },
            { name: 'marker', hostPath: { path: join(dir, 'marker'), type: 'Directory' } },
          ],
        },
      },
    ];
    await writeFile(join(dir, 'app.yaml'), manifests.map((m) => stringify(m)).join('---\n'));
    const applied = await kubectl(['apply', '-f', join(dir, 'app.yaml')]);
    expect(applied.stderr).toBe('');
    expect(applied.stdout).toContain(`pod/${pod} created`);

    type PodJson = { status?: { phase?: string; containerStatuses?: { name: string; ready: boolean }[]; initContainerStatuses?: { name: string; state?: { terminated?: { exitCode: number } } }[] } };
    const running = await waitFor(
      'pod Running with both containers ready',
      async () => {
        const p = await getJson<PodJson>(['get', 'pod', pod]);
        return p.status?.phase === 'Running' && p.status.containerStatuses?.length === 2 && p.status.containerStatuses.every((c) => c.ready) ? p : undefined;
      },
      120_000,
      500,
    ).catch((error: unknown) => {
      throw new Error(`${String(error)}${logsOnFailure()}`);
    });
    expect(running.status!.initContainerStatuses?.[0]?.state?.terminated?.exitCode).toBe(0);

    const logs = await waitFor('c1 logged its config', async () => {
      const result = await kubectl(['logs', pod, '-c', 'c1']);
      return result.code === 0 && result.stdout.includes('init=') ? result : undefined;
    }, 60_000, 500);
    expect(logs.stdout).toBe(`cfg=${configValue}\nPASSWORD=${password}\nuser=admin\ninit=init-wrote-this\n`);
    expect((await kubectl(['logs', pod, '-c', 'c2'])).stdout).toBe('c2-started\n');
    const noContainer = await kubectl(['logs', pod, '-c', 'nope']);
    expect(noContainer.code).not.toBe(0);
    expect(noContainer.stderr).toContain('container nope is not valid for pod web');

    // logs -f streams what the container writes later (exec writes to PID 1's stdout).
    const follow = spawn('kubectl', ['--kubeconfig', kubeconfig, '-n', 'default', 'logs', '-f', pod, '-c', 'c2'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let followed = '';
    follow.stdout!.on('data', (chunk: Buffer) => (followed += chunk.toString()));
    try {
      await waitFor('logs -f shows the existing line', () => followed.includes('c2-started'), 30_000, 100);
      expect((await kubectl(['exec', pod, '-c', 'c2', '--', 'sh', '-c', 'echo followed-later > /proc/1/fd/1'])).code).toBe(0);
      await waitFor('logs -f shows a line written later', () => followed.includes('followed-later'), 30_000, 100);
    } finally {
      follow.kill('SIGTERM');
    }

    const cat = await kubectl(['exec', pod, '-c', 'c1', '--', 'cat', '/etc/cfg/key']);
    expect({ code: cat.code, stdout: cat.stdout, stderr: cat.stderr }).toEqual({ code: 0, stdout: configValue, stderr: '' });
    const stdin = await kubectl(['exec', '-i', pod, '-c', 'c1', '--', 'sh', '-c', 'cat; echo done'], { input: 'hello through stdin\nsecond line\n' });
    expect({ code: stdin.code, stdout: stdin.stdout }).toEqual({ code: 0, stdout: 'hello through stdin\nsecond line\ndone\n' });
    const stderr = await kubectl(['exec', pod, '-c', 'c1', '--', 'sh', '-c', 'echo to-out; echo to-err >&2']);
    expect({ code: stderr.code, stdout: stderr.stdout, stderr: stderr.stderr }).toEqual({ code: 0, stdout: 'to-out\n', stderr: 'to-err\n' });
    const exit3 = await kubectl(['exec', pod, '-c', 'c2', '--', 'sh', '-c', 'exit 3']);
    expect(exit3.code).toBe(3);
    const missing = await kubectl(['exec', pod, '-c', 'c1', '--', '/no/such/binary']);
    expect(missing.code).not.toBe(0);
    console.log(`[agent-kubectl] exec of a missing binary: exit ${missing.code}, ${JSON.stringify((missing.stdout + missing.stderr).trim().slice(0, 200))}`);
    const stopped = await kubectl(['exec', pod, '-c', 'init', '--', 'true']);
    expect(stopped.code).not.toBe(0);
    expect(stopped.stderr).toMatch(/init/);
    console.log(`[agent-kubectl] exec into the completed init container: ${JSON.stringify(stopped.stderr.trim().slice(0, 300))}`);
    const noPod = await kubectl(['exec', 'no-such-pod', '--', 'true']);
    expect(noPod.code).not.toBe(0);
    expect(noPod.stderr).toContain('pods "no-such-pod" not found');
  });

  it('port-forward reaches a server on the pod\'s own loopback: kubectl over the WebSocket tunnel and SPDY, client-node over channels', async () => {
    // httpd listens on 127.0.0.1 inside the pod: only a forward made in the pod's netns reaches it.
    const pf = 'pf';
    // And nc on 9090 hashes what one connection uploads until the client half-closes it.
    const upload = `while true; do nc -l -p 9090 -e sh -c 'sha256sum | cut -d" " -f1 > /tmp/up.sha.new && mv /tmp/up.sha.new /tmp/up.sha'; done`;
    const script = `set -e; mkdir -p /www; echo pf-${id} > /www/index.html; head -c 3000000 /dev/urandom > /www/big; sha256sum /www/big | cut -d' ' -f1 > /www/big.sha; (${upload}) & exec httpd -f -p 127.0.0.1:8080 -h /www`;
    const manifest = { apiVersion: 'v1', kind: 'Pod', metadata: { name: pf }, spec: { nodeName, terminationGracePeriodSeconds: 1, containers: [{ name: 'web', image: busybox, command: ['sh', '-c', script] }] } };
    await writeFile(join(dir, 'pf.yaml'), stringify(manifest));
    expect((await kubectl(['apply', '-f', join(dir, 'pf.yaml')])).code).toBe(0);
    await waitFor('port-forward pod serving', async () => {
      const result = await kubectl(['exec', pf, '--', 'cat', '/www/big.sha']);
      return result.code === 0 && result.stdout.trim().length === 64 ? result : undefined;
    }, 120_000, 500).catch((error: unknown) => {
      throw new Error(`${String(error)}${logsOnFailure()}`);
    });
    const bigSha = (await kubectl(['exec', pf, '--', 'cat', '/www/big.sha'])).stdout.trim();

    for (const transport of ['websocket', 'spdy'] as const) {
      const forward = await startPortForward(kubeconfig, pf, ['8080', '8081', '9090'], transport === 'spdy' ? { KUBECTL_PORT_FORWARD_WEBSOCKETS: 'false' } : {});
      try {
        const [local8080, local8081, local9090] = forward.ports;
        expect((await httpGet(local8080!, '/index.html')).body.toString()).toBe(`pf-${id}\n`);
        // Several connections at once, each its own stream pair; a few MB arrive intact.
        const [big, again, index] = await Promise.all([httpGet(local8080!, '/big'), httpGet(local8080!, '/big'), httpGet(local8080!, '/index.html')]);
        expect(createHash('sha256').update(big.body).digest('hex')).toBe(bigSha);
        expect(createHash('sha256').update(again.body).digest('hex')).toBe(bigSha);
        expect(index.body.toString()).toBe(`pf-${id}\n`);
        // Upload: the half-close of the local connection reaches the pod's server as EOF.
        const sent = randomBytes(2_000_000);
        await tcpUpload(local9090!, sent);
        const uploaded = await waitFor('upload hashed in the pod', async () => {
          const result = await kubectl(['exec', pf, '--', 'sh', '-c', 'cat /tmp/up.sha && rm /tmp/up.sha']);
          return result.code === 0 ? result.stdout.trim() : undefined;
        }, 20_000, 250);
        expect(uploaded).toBe(createHash('sha256').update(sent).digest('hex'));
        // Nothing listens on 8081: the kubelet says why on the error stream; kubectl prints it.
        await httpGet(local8081!, '/').then(() => undefined, () => undefined);
        await waitFor('the forwarding error reported', async () => (forward.stderr().includes('error forwarding port 8081') ? true : undefined), 10_000, 100);
        expect(forward.stderr()).toMatch(/error forwarding port 8081 to pod [0-9a-f]+, uid [0-9a-f-]+: .*Connection refused/);
        // kubectl 1.30+ tries the WebSocket tunnel first; without it, the plain SPDY upgrade.
        expect(agent!.logs()).toMatch(new RegExp(`"pod":"default/${pf}","transport":"${transport}".*port-forward connection opened`));
        console.log(`[agent-kubectl] port-forward over ${transport}: 2 x ${big.body.length} bytes down and ${sent.length} up intact; refused port: ${JSON.stringify(forward.stderr().trim().split('\n').find((l) => l.includes('8081')))}`);
      } catch (error) {
        throw new Error(`port-forward over ${transport}: ${String(error)}\n--- kubectl ---\n${forward.stderr()}${logsOnFailure()}`);
      } finally {
        forward.stop();
      }
    }
    // Client libraries speak the WebSocket channel protocol (v4.channel.k8s.io) instead:
    // @kubernetes/client-node's PortForward, one connection for the life of the WebSocket.
    const kc = new KubeConfig();
    kc.loadFromFile(kubeconfig);
    const output: Buffer[] = [];
    const errors: Buffer[] = [];
    const collect = (into: Buffer[]) => new Writable({ write: (chunk: Buffer, _encoding, done) => (into.push(chunk), done()) });
    const input = new PassThrough();
    const ws = (await new PortForward(kc).portForward('default', pf, [8080], collect(output), collect(errors), input)) as WebSocket;
    input.write('GET /index.html HTTP/1.0\r\n\r\n');
    // httpd closes the connection after an HTTP/1.0 answer: the forward ends, the kubelet closes the WebSocket.
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`client-node port-forward: no close in 20 s; got ${JSON.stringify(Buffer.concat(output).toString())}`)), 20_000);
      ws.once('close', () => (clearTimeout(timer), resolve()));
    });
    expect(Buffer.concat(output).toString()).toMatch(new RegExp(`^HTTP/1\\.[01] 200 OK\r\n[\\s\\S]*\r\n\r\npf-${id}\n$`));
    expect(Buffer.concat(errors).toString()).toBe('');
    expect(agent!.logs()).toMatch(new RegExp(`"pod":"default/${pf}","transport":"websocket-channels".*port-forward connection opened`));

    // The agent survived all of it and the forward still works afterwards.
    const after = await startPortForward(kubeconfig, pf, ['8080'], {});
    try {
      const answer = await httpGet(after.ports[0]!, '/index.html').catch((error: unknown) => {
        throw new Error(`${String(error)}\n--- kubectl ---\n${after.stderr()}${logsOnFailure()}`);
      });
      expect(answer.body.toString()).toBe(`pf-${id}\n`);
    } finally {
      after.stop();
    }
    expect(agent!.running).toBe(true);
    await kubectl(['delete', 'pod', pf, '--wait=false']);
  });

  it('kubectl delete runs preStop, waits the grace period, then SIGKILLs (measured)', async () => {
    const [c2] = await docker.listContainers({ filters: { label: [scopeLabel, `io.kubernetes.pod.name=${pod}`, 'io.kubernetes.container.name=c2'] } });
    expect(c2).toBeDefined();
    const events = await docker.getEvents({ filters: { container: [c2!.Id], event: ['die'] } });
    const died = new Promise<{ at: number; exitCode: string }>((resolve) => {
      events.on('data', (chunk: Buffer) => {
        for (const line of chunk.toString().split('\n').filter(Boolean)) {
          const event = JSON.parse(line) as { timeNano: number; Actor: { Attributes: Record<string, string> } };
          resolve({ at: event.timeNano / 1e6, exitCode: event.Actor.Attributes.exitCode ?? '' });
        }
      });
    });
    try {
      const deletedAt = Date.now();
      const deleted = await kubectl(['delete', 'pod', pod, '--wait=false']);
      expect(deleted.stdout).toContain(`pod "${pod}" deleted`);
      const death = await Promise.race([died, new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 60_000))]);
      expect(death, `c2 did not die within 60 s${logsOnFailure()}`).toBeDefined();
      const seconds = (death!.at - deletedAt) / 1000;
      console.log(`[agent-kubectl] delete → c2 exit: ${seconds.toFixed(2)} s (terminationGracePeriodSeconds ${grace}), exit code ${death!.exitCode}`);
      expect(seconds).toBeGreaterThanOrEqual(grace - 0.5);
      expect(seconds).toBeLessThan(grace + 30);
      expect(death!.exitCode).toBe('137'); // SIGKILL: the container ignored SIGTERM
      const marker = await readFile(join(dir, 'marker', 'prestop'), 'utf8');
      expect(marker).toContain('prestop-ran');
      const preStopAt = Number(marker.split('\n')[0]) * 1000;
      expect(preStopAt).toBeGreaterThanOrEqual(Math.floor(deletedAt / 1000) * 1000);
      expect(preStopAt).toBeLessThanOrEqual(death!.at);
      await waitFor('pod removed from the API', async () => {
        const result = await kubectl(['get', 'pod', pod]);
        return result.code !== 0 && result.stderr.includes('not found');
      }, 60_000, 500);
    } finally {
      (events as unknown as { destroy(): void }).destroy();
    }
  });
});
