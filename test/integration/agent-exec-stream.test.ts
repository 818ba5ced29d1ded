/**
 * The kubelet API's /exec and /attach WebSocket endpoints (agent/server/exec-stream.ts) against a real
 * Docker container, with a plain `ws` client speaking v5/v4.channel.k8s.io, and the same
 * endpoints reached by kubectl through the control-plane stub (pods/exec upgrade proxy) with a
 * plain-HTTP kubelet on loopback, as `knode up` runs it. Only 127.0.0.1 is used; the container
 * has no network (NetworkMode none).
 */
import { randomBytes } from 'node:crypto';
import type Docker from 'dockerode';
import { KubeConfig, type V1Pod } from '@kubernetes/client-node';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KubeletServer, type ServedAgent } from '../../agent/server/server.js';
import { AgentMetrics } from '../../agent/server/metrics.js';
import type { PodWorkers } from '../../agent/pods/workers.js';
import { createDockerRuntime } from '../../cri/docker/factory.js';
import { busyboxSpec, ensureLocalImage } from '../../cri/local-images.js';
import { parseKubeletConfig } from '../../lib/config/kubelet.js';
import { run } from '../../lib/exec.js';
import { createLogger } from '../../lib/log.js';
import { startTestControlPlane, type TestControlPlane } from '../helpers/controlplane.js';
import { removeLabelledContainers, testDocker } from '../helpers/docker.js';
import { prerequisites } from '../helpers/prereq.js';

const env = await prerequisites('root', 'docker', 'command:kubectl');
const label = `io.knode.test=agent-exec-stream-${randomBytes(4).toString('hex')}`;

interface Outcome {
  protocol: string;
  stdout: string;
  stderr: string;
  status?: { status: string; reason?: string; message?: string; details?: { causes: { reason: string; message: string }[] } };
}

describe.skipIf(env.skip)('kubelet /exec and /attach over WebSockets (real container)', () => {
  let docker: Docker;
  let container: Docker.Container;
  let server: KubeletServer;
  let cp: TestControlPlane;
  let base: string;

  /** Runs one stream with a ws client; `input` is sent on stdin, then (v5) stdin is closed. */
  const stream = (path: string, protocols: string[], input?: string): Promise<Outcome> =>
    new Promise((resolve, reject) => {
      const ws = new WebSocket(`${base}${path}`, protocols);
      const outcome: Outcome = { protocol: '', stdout: '', stderr: '' };
      ws.on('open', () => {
        outcome.protocol = ws.protocol;
        if (input !== undefined) {
          ws.send(Buffer.concat([Buffer.from([0]), Buffer.from(input)]));
          if (ws.protocol === 'v5.channel.k8s.io') ws.send(Buffer.from([255, 0]));
        }
      });
      ws.on('message', (data: Buffer) => {
        const text = data.subarray(1).toString('utf8');
        if (data[0] === 1) outcome.stdout += text;
        else if (data[0] === 2) outcome.stderr += text;
        else if (data[0] === 3) outcome.status = JSON.parse(text) as Outcome['status'];
      });
      ws.on('unexpected-response', (_req, res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => reject(new Error(`HTTP ${res.statusCode}: ${body.trim()}`)));
      });
      ws.on('close', () => resolve(outcome));
      ws.on('error', reject);
    });

  beforeAll(async () => {
    docker = await testDocker();
    const image = await ensureLocalImage(docker, busyboxSpec);
    container = await docker.createContainer({ Image: image, Cmd: ['sh', '-c', 'echo attached-output; exec sleep 3600'], Labels: { [label.split('=')[0]!]: label.split('=')[1]! }, HostConfig: { NetworkMode: 'none' } });
    await container.start();
    const pod: V1Pod = {
      metadata: { name: 'box', namespace: 'default', uid: 'u1' },
      spec: { nodeName: 'exec-node', containers: [{ name: 'main', image }] },
    };
    const status = { phase: 'Running', containerStatuses: [{ name: 'main', image, imageID: '', ready: true, restartCount: 0, containerID: `docker://${container.id}` }] };
    const workers = { statuses: () => [{ pod, status }] } as unknown as PodWorkers;
    const agent: ServedAgent = { workers, metrics: new AgentMetrics() };
    const config = parseKubeletConfig({ apiVersion: 'kubelet.config.k8s.io/v1beta1', kind: 'KubeletConfiguration', address: '127.0.0.1', port: 0, authentication: { anonymous: { enabled: true }, webhook: { enabled: false } }, authorization: { mode: 'AlwaysAllow' } }, 'test').config;
    server = new KubeletServer({ agent, runtime: createDockerRuntime({}), config, kubeConfig: new KubeConfig(), log: createLogger('kubelet-test', 'silent'), nodeName: 'exec-node' });
    await server.start();
    base = `ws://127.0.0.1:${server.port}`;
    cp = await startTestControlPlane({ controllers: false });
    const node = { apiVersion: 'v1', kind: 'Node', metadata: { name: 'exec-node' }, status: { addresses: [{ type: 'InternalIP', address: '127.0.0.1' }], daemonEndpoints: { kubeletEndpoint: { Port: server.port } } } };
    await run(['kubectl', '--kubeconfig', cp.kubeconfigPath, 'create', '-f', '-'], { input: JSON.stringify(node) });
    await run(['kubectl', '--kubeconfig', cp.kubeconfigPath, 'create', '-f', '-'], { input: JSON.stringify({ apiVersion: 'v1', kind: 'Pod', ...pod, status: undefined }) });
  });

  afterAll(async () => {
    await server?.stop();
    await cp?.stop();
    if (docker) await removeLabelledContainers(docker, label);
  });

  it('runs a command: stdout, stderr and a Success status (v5 preferred)', async () => {
    const out = await stream('/exec/default/box/main?command=sh&command=-c&command=echo%20out%3B%20echo%20err%20%3E%262&stdout=1&stderr=1', ['v4.channel.k8s.io', 'v5.channel.k8s.io']);
    expect(out).toEqual({ protocol: 'v5.channel.k8s.io', stdout: 'out\n', stderr: 'err\n', status: { metadata: {}, status: 'Success' } });
  });

  it('reports a non-zero exit as NonZeroExitCode with the code (v4)', async () => {
    const out = await stream('/exec/default/box/u1/main?command=sh&command=-c&command=exit%207&stdout=1', ['v4.channel.k8s.io']);
    expect(out.protocol).toBe('v4.channel.k8s.io');
    expect(out.status).toMatchObject({ status: 'Failure', reason: 'NonZeroExitCode', details: { causes: [{ reason: 'ExitCode', message: '7' }] } });
  });

  it('passes stdin and, with v5, its end to the process', async () => {
    const out = await stream('/exec/default/box/main?command=sh&command=-c&command=cat%3B%20echo%20eof&stdin=1&stdout=1', ['v5.channel.k8s.io'], 'line one\n');
    expect(out.stdout).toBe('line one\neof\n');
    expect(out.status?.status).toBe('Success');
  });

  it('with a tty: one output stream, resize reaches the terminal', async () => {
    const out = await new Promise<string>((resolve, reject) => {
      const ws = new WebSocket(`${base}/exec/default/box/main?command=sh&command=-c&command=sleep%201%3B%20stty%20size&stdin=1&stdout=1&stderr=1&tty=1`, ['v5.channel.k8s.io']);
      let stdout = '';
      ws.on('open', () => ws.send(Buffer.concat([Buffer.from([4]), Buffer.from('{"Width":101,"Height":33}')])));
      ws.on('message', (data: Buffer) => {
        expect(data[0]).not.toBe(2);
        if (data[0] === 1) stdout += data.subarray(1).toString();
      });
      ws.on('close', () => resolve(stdout));
      ws.on('error', reject);
    });
    expect(out.trim()).toBe('33 101');
  });

  it('refuses bad requests before the upgrade', async () => {
    await expect(stream('/exec/default/nope/main?command=true&stdout=1', ['v5.channel.k8s.io'])).rejects.toThrow(/HTTP 404: pod "default\/nope" not found/);
    await expect(stream('/exec/default/box/other?command=true&stdout=1', ['v5.channel.k8s.io'])).rejects.toThrow(/HTTP 404: container "other" not found/);
    await expect(stream('/exec/default/box/main?stdout=1', ['v5.channel.k8s.io'])).rejects.toThrow(/HTTP 400: you must specify a command/);
    await expect(stream('/exec/default/box/main?command=true', ['v5.channel.k8s.io'])).rejects.toThrow(/HTTP 400: you must specify at least 1 of stdin, stdout, stderr/);
    await expect(stream('/exec/default/box/main?command=true&stdout=1', ['channel.k8s.io'])).rejects.toThrow(/HTTP 400: no supported WebSocket sub-protocol/);
    const plain = await fetch(`http://127.0.0.1:${server.port}/exec/default/box/main?command=true&stdout=1`, { method: 'POST' });
    expect(plain.status).toBe(400);
  });

  it('attaches to the container\'s output', async () => {
    const ws = new WebSocket(`${base}/attach/default/box/main?stdout=1&stderr=1`, ['v5.channel.k8s.io']);
    const opened = await new Promise<string>((resolve, reject) => {
      ws.on('open', () => resolve(ws.protocol));
      ws.on('error', reject);
    });
    expect(opened).toBe('v5.channel.k8s.io');
    ws.close();
  });

  it('kubectl exec goes through the stub to a plain-HTTP loopback kubelet', async () => {
    const kubectl = (args: string[], input?: string) => run(['kubectl', '--kubeconfig', cp.kubeconfigPath, ...args], { allowFailure: true, timeoutMs: 30_000, ...(input !== undefined ? { input } : {}) });
    expect(await kubectl(['exec', 'box', '--', 'echo', 'hi'])).toMatchObject({ code: 0, stdout: 'hi\n' });
    expect(await kubectl(['exec', '-i', 'box', '--', 'sh', '-c', 'cat; echo eof'], 'piped\n')).toMatchObject({ code: 0, stdout: 'piped\neof\n' });
    expect((await kubectl(['exec', 'box', '--', 'sh', '-c', 'exit 5'])).code).toBe(5);
    // The kubelet's refusal reaches kubectl, also after kubectl's retry over SPDY.
    await kubectl(['create', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'elsewhere', namespace: 'default' }, spec: { nodeName: 'exec-node', containers: [{ name: 'main', image: 'x' }] } }));
    const unknown = await kubectl(['exec', 'elsewhere', '--', 'true']);
    expect(unknown.code).not.toBe(0);
    expect(unknown.stderr).toContain('pod "default/elsewhere" not found on this node');
    const wrong = await kubectl(['exec', 'box', '-c', 'nope', '--', 'true']);
    expect(wrong.code).not.toBe(0);
    expect(wrong.stderr).toContain('container nope is not valid for pod box');
  });
});
