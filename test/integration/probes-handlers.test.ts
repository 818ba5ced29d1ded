/**
 * The http, tcp and grpc probers against real servers on 127.0.0.1 (root namespace loopback
 * only: no packet leaves it), success and failure for real, and hostile targets (hang, reset,
 * garbage, a 10 MB body) that must not hold up other probes.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { Registry } from 'prom-client';
import type { V1Pod, V1Probe } from '@kubernetes/client-node';
import { run } from '../../lib/exec.js';
import { createLogger } from '../../lib/log.js';
import { probeHttp, maxResponseBodyBytes } from '../../probes/http.js';
import { probeTcp } from '../../probes/tcp.js';
import { healthServiceDefinition, probeGrpc } from '../../probes/grpc.js';
import { HandlerProber, defaultProbeUserAgent } from '../../probes/prober.js';
import { ProbeManager } from '../../probes/manager.js';

import { prerequisites } from '../helpers/prereq.js';
import { FakeExecutor, FakePodStatusProvider, RecordingProbeListener } from '../helpers/probe-fakes.js';

const env = await prerequisites('command:openssl');
const lo = '127.0.0.1';

type Closer = () => Promise<void>;
const closers: Closer[] = [];

function portOf(server: net.Server): number {
  return (server.address() as net.AddressInfo).port;
}

async function listen(server: net.Server): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, lo, () => resolve());
  });
  const sockets = new Set<net.Socket>();
  server.on('connection', (socket: net.Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  closers.push(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return portOf(server);
}

const seen: http.IncomingHttpHeaders[] = [];
const seenPaths: string[] = [];
function handler(req: http.IncomingMessage, res: http.ServerResponse): void {
  seen.push(req.headers);
  seenPaths.push(req.url ?? '');
  const url = new URL(req.url ?? '/', 'http://x');
  switch (url.pathname) {
    case '/ok':
      res.end('fine');
      return;
    case '/fail':
      res.statusCode = 503;
      res.end('down');
      return;
    case '/same':
      res.writeHead(302, { location: '/ok' }).end();
      return;
    case '/other':
      res.writeHead(301, { location: `http://localhost:${url.searchParams.get('port')}/elsewhere` }).end('moved');
      return;
    case '/loop':
      res.writeHead(302, { location: '/loop' }).end();
      return;
    case '/big': {
      // 10 MB, written only as fast as the client reads.
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      let left = 10 * 1024 * 1024;
      const chunk = Buffer.alloc(64 * 1024, 'x');
      const write = (): void => {
        while (left > 0) {
          left -= chunk.length;
          if (!res.write(chunk)) return void res.once('drain', write);
        }
        res.end();
      };
      write();
      return;
    }
    case '/hang':
      return; // never answers
    default:
      res.statusCode = 404;
      res.end();
  }
}

let httpPort = 0;
let httpsPort = 0;
let hangPort = 0;
let resetPort = 0;
let garbagePort = 0;
let closedPort = 0;
let grpcPort = 0;
let bareGrpcPort = 0;
let tmp = '';

async function selfSignedCert(dir: string): Promise<{ key: Buffer; cert: Buffer }> {
  await run(['openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-days', '1', '-subj', '/CN=probe-test'], { timeoutMs: 30_000 });
  return { key: await readFile(join(dir, 'key.pem')), cert: await readFile(join(dir, 'cert.pem')) };
}

const servingStatus = new Map<string, string>([['', 'SERVING'], ['db', 'NOT_SERVING']]);

async function startGrpc(withHealth: boolean): Promise<number> {
  const server = new grpc.Server();
  if (withHealth) {
    server.addService(await healthServiceDefinition(), {
      Check: (call: grpc.ServerUnaryCall<{ service: string }, unknown>, callback: grpc.sendUnaryData<unknown>) => {
        const status = servingStatus.get(call.request.service);
        if (status === undefined) callback({ code: grpc.status.NOT_FOUND, details: 'unknown service' });
        else callback(null, { status });
      },
    });
  }
  const port = await new Promise<number>((resolve, reject) => server.bindAsync(`${lo}:0`, grpc.ServerCredentials.createInsecure(), (error, bound) => (error ? reject(error) : resolve(bound))));
  closers.push(async () => {
    server.forceShutdown();
  });
  return port;
}

describe.skipIf(env.skip)('probers against real loopback servers', () => {
  beforeAll(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'knode-probes-'));
    httpPort = await listen(http.createServer(handler));
    httpsPort = await listen(https.createServer(await selfSignedCert(tmp), handler));
    hangPort = await listen(net.createServer(() => undefined));
    resetPort = await listen(net.createServer((socket) => socket.resetAndDestroy()));
    garbagePort = await listen(net.createServer((socket) => socket.end('\x00\x01garbage that is not HTTP\r\n\r\n')));
    const closed = net.createServer();
    closedPort = await new Promise<number>((resolve) => closed.listen(0, lo, () => resolve(portOf(closed))));
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    grpcPort = await startGrpc(true);
    bareGrpcPort = await startGrpc(false);
  });

  afterAll(async () => {
    await Promise.all(closers.map((close) => close()));
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  const get = (path: string, extra: Partial<Parameters<typeof probeHttp>[0]> = {}) =>
    probeHttp({ scheme: 'HTTP', host: lo, port: httpPort, path, headers: [], timeoutMs: 2000, userAgent: defaultProbeUserAgent, ...extra });

  it('httpGet: 2xx is success, 5xx and 404 are failures; sends kube-probe User-Agent, headers and Host', async () => {
    seen.length = 0;
    expect(await get('/ok', { headers: [{ name: 'X-Probe', value: 'yes' }, { name: 'Host', value: 'app.example' }] })).toEqual({ result: 'success', output: 'fine' });
    expect(seen[0]).toMatchObject({ 'user-agent': 'kube-probe/1.32', 'x-probe': 'yes', host: 'app.example', accept: '*/*' });
    expect(await get('/fail')).toEqual({ result: 'failure', output: 'HTTP probe failed with statuscode: 503' });
    expect(await get('/missing')).toEqual({ result: 'failure', output: 'HTTP probe failed with statuscode: 404' });
    expect(await get('/ok', { headers: [{ name: 'User-Agent', value: 'custom' }] })).toMatchObject({ result: 'success' });
    expect(seen.at(-1)!['user-agent']).toBe('custom');
  });

  it('httpGet: follows redirects to the same host; another host is success with a warning, not followed', async () => {
    seenPaths.length = 0;
    expect(await get('/same')).toEqual({ result: 'success', output: 'fine' });
    expect(seenPaths).toEqual(['/same', '/ok']);
    seenPaths.length = 0;
    expect(await get(`/other?port=${httpPort}`)).toEqual({ result: 'warning', output: 'Probe terminated redirects, Response body: moved' });
    expect(seenPaths).toEqual([`/other?port=${httpPort}`]);
    expect(await get('/loop')).toMatchObject({ result: 'failure', output: expect.stringContaining('stopped after 10 redirects') });
  });

  it('httpGet: HTTPS with a self-signed certificate is accepted (not verified)', async () => {
    expect(await get('/ok', { scheme: 'HTTPS', port: httpsPort })).toEqual({ result: 'success', output: 'fine' });
    expect(await get('/fail', { scheme: 'HTTPS', port: httpsPort })).toMatchObject({ result: 'failure' });
  });

  it('httpGet: a 10 MB body is read only up to 10 KiB', async () => {
    const outcome = await get('/big', { timeoutMs: 5000 });
    expect(outcome.result).toBe('success');
    expect(outcome.output.length).toBe(maxResponseBodyBytes);
  });

  it('httpGet: hang, reset, garbage and closed ports are failures within the timeout', async () => {
    const hang = await get('/hang', { timeoutMs: 300 });
    expect(hang.result).toBe('failure');
    expect(hang.output).toContain('Client.Timeout exceeded');
    expect(await get('/', { port: hangPort, timeoutMs: 300 })).toMatchObject({ result: 'failure' });
    expect(await get('/', { port: resetPort })).toMatchObject({ result: 'failure', output: expect.stringMatching(/ECONNRESET|socket hang up/) });
    expect(await get('/', { port: garbagePort })).toMatchObject({ result: 'failure' });
    expect(await get('/', { port: closedPort })).toMatchObject({ result: 'failure', output: expect.stringContaining('ECONNREFUSED') });
  });

  it('tcpSocket: a listening port succeeds, a closed one fails', async () => {
    expect(await probeTcp(lo, httpPort, 1000)).toEqual({ result: 'success', output: '' });
    expect(await probeTcp(lo, hangPort, 1000)).toEqual({ result: 'success', output: '' });
    expect(await probeTcp(lo, closedPort, 1000)).toMatchObject({ result: 'failure', output: expect.stringContaining('ECONNREFUSED') });
  });

  it('grpc: SERVING succeeds; NOT_SERVING, unknown service, no health service, closed and hanging ports fail', async () => {
    expect(await probeGrpc(lo, grpcPort, '', 2000, defaultProbeUserAgent)).toEqual({ result: 'success', output: 'service is healthy' });
    expect(await probeGrpc(lo, grpcPort, 'db', 2000, defaultProbeUserAgent)).toEqual({ result: 'failure', output: 'service unhealthy (responded with "NOT_SERVING")' });
    expect(await probeGrpc(lo, grpcPort, 'nope', 2000, defaultProbeUserAgent)).toMatchObject({ result: 'failure', output: expect.stringContaining('unknown service') });
    expect(await probeGrpc(lo, bareGrpcPort, '', 2000, defaultProbeUserAgent)).toMatchObject({ result: 'failure', output: expect.stringContaining('does not implement the grpc health protocol') });
    expect(await probeGrpc(lo, closedPort, '', 1000, defaultProbeUserAgent)).toMatchObject({ result: 'failure' });
    const hung = await probeGrpc(lo, hangPort, '', 500, defaultProbeUserAgent);
    expect(hung.result).toBe('failure');
  });

  it('hostile targets never hold up other probes: many workers keep their schedule', async () => {
    const statuses = new FakePodStatusProvider();
    const listener = new RecordingProbeListener();
    const registry = new Registry();
    const manager = new ProbeManager({
      prober: new HandlerProber(new FakeExecutor()),
      listener,
      statusProvider: statuses,
      registry,
      logger: createLogger('probes-test', 'silent'),
    });
    const probes: Record<string, V1Probe> = {
      goodHttp: { httpGet: { port: httpPort, path: '/ok' }, periodSeconds: 1 },
      goodTcp: { tcpSocket: { port: httpPort }, periodSeconds: 1 },
      goodGrpc: { grpc: { port: grpcPort }, periodSeconds: 1 },
      hangHttp: { httpGet: { port: httpPort, path: '/hang' }, periodSeconds: 1, timeoutSeconds: 3 },
      hangTcpHttp: { httpGet: { port: hangPort }, periodSeconds: 1, timeoutSeconds: 3 },
      reset: { httpGet: { port: resetPort }, periodSeconds: 1 },
      garbage: { httpGet: { port: garbagePort }, periodSeconds: 1 },
      big: { httpGet: { port: httpPort, path: '/big' }, periodSeconds: 1 },
      hangGrpc: { grpc: { port: hangPort }, periodSeconds: 1, timeoutSeconds: 3 },
    };
    const kinds = Object.keys(probes);
    const copies = 8;
    for (let i = 0; i < copies; i++) {
      for (const kind of kinds) {
        const uid = `${kind}-${i}`;
        const pod: V1Pod = { metadata: { uid, name: uid, namespace: 'probes' }, spec: { containers: [{ name: 'app', readinessProbe: probes[kind] }] } };
        manager.addPod(pod);
        statuses.statuses.set(uid, { phase: 'Running', podIP: lo, containerStatuses: [{ name: 'app', containerID: `fake://${uid}`, image: '', imageID: '', ready: false, restartCount: 0, state: { running: { startedAt: new Date() } } }] });
      }
    }
    const started = Date.now();
    manager.start();
    await new Promise((resolve) => setTimeout(resolve, 6500));
    const elapsed = Date.now() - started;
    const json = await registry.getMetricsAsJSON();
    manager.stop();
    const total = json.find((metric) => metric.name === 'prober_probe_total')!;
    const count = (kind: string, result: string): number[] =>
      Array.from({ length: copies }, (_, i) => (total.values as Array<{ labels: Record<string, string>; value: number }>).filter((v) => v.labels.pod === `${kind}-${i}` && v.labels.result === result).reduce((sum, v) => sum + v.value, 0));
    // A 1 s period over ~6.5 s (minus up to 1 s of start jitter) is ~6 probes for every good
    // target however long the hostile ones hang; allow a loaded machine to skip a few ticks
    // (a blocked worker would have managed at most 2: its 3 s timeouts).
    const expectedMin = Math.floor(elapsed / 1000) - 3;
    for (const kind of ['goodHttp', 'goodTcp', 'goodGrpc', 'big']) {
      for (const n of count(kind, 'successful')) expect(n, kind).toBeGreaterThanOrEqual(expectedMin);
      expect(count(kind, 'failed').every((n) => n === 0), kind).toBe(true);
    }
    for (const kind of ['reset', 'garbage']) for (const n of count(kind, 'failed')) expect(n, kind).toBeGreaterThanOrEqual(expectedMin);
    // Hanging targets: each probe ends at its 3 s timeout, the worker skips ticks it missed.
    for (const kind of ['hangHttp', 'hangTcpHttp', 'hangGrpc']) for (const n of count(kind, 'failed')) expect(n, kind).toBeGreaterThanOrEqual(1);
    const readyUpdates = listener.updates.filter((u) => u.result === 'success').map((u) => u.podUid.replace(/-\d+$/, ''));
    expect(new Set(readyUpdates)).toEqual(new Set(['goodHttp', 'goodTcp', 'goodGrpc', 'big']));
  }, 30_000);
});
