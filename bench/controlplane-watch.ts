/**
 * Benchmark: list + watch with 5,000 pods and 100 watchers on the knode control plane.
 * Measures the delivery latency of a pod change to all 100 watch streams (from just before the
 * write to the moment each client has parsed the event line), the list latency, and memory.
 * Baseline, measured in the same run and process: a bare node:http server that writes the same
 * event line to 100 chunked responses, with the same clients — the floor of "HTTP chunked
 * stream + JSON parse" without any API logic. Both servers are set up once and stay open; the
 * events are sent in ≥ 3 interleaved rounds (knode first in odd rounds, the baseline first in
 * even ones), the figures pool every round's samples and carry the per-round p50/p99 ratios.
 *
 *   npm run build && npm run build:bench && node --expose-gc dist-bench/bench/controlplane-watch.js [pods=5000] [watchers=100] [events per round=200] [rounds=3]
 * Latency is per watcher and event (100 samples per event). The API server runs in this process
 * (controlplane/control-plane.ts, what `knode controlplane` serves) with its controllers off, so
 * that only the API path is measured: in a `knode controlplane` process the controllers would act
 * on the 5,000 synthetic pods (scheduling them, or handling pods of nodes that do not exist),
 * which is not the watch path this measures.
 */
import { createServer, request, Agent, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { createLogger } from '../lib/log.js';
import { startControlPlane } from '../controlplane/control-plane.js';
import { MemoryStorage } from '../controlplane/storage/memory.js';
import { resources, type ResourceInfo } from '../controlplane/resources.js';
import type { KObject } from '../controlplane/storage/types.js';
import { reportFigure, roundRatios } from './lib/report.js';

const podCount = Number(process.argv[2] ?? 5000);
const watcherCount = Number(process.argv[3] ?? 100);
const eventCount = Number(process.argv[4] ?? 200);
const rounds = Number(process.argv[5] ?? 3);
if (![podCount, watcherCount, eventCount, rounds].every((n) => Number.isInteger(n) && n >= 1)) throw new Error('usage: controlplane-watch [pods] [watchers] [events per round] [rounds], all ≥ 1');
const pods = resources.find((r) => r.name === 'pods') as ResourceInfo;
const agent = new Agent({ keepAlive: true, maxSockets: watcherCount + 10 });

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

/** Opens a streaming GET and calls onLine for each JSON line. */
function stream(url: string, onLine: (line: string) => void): Promise<() => void> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent }, (res: IncomingMessage) => {
      let buffer = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buffer += chunk;
        let newline: number;
        while ((newline = buffer.indexOf('\n')) >= 0) {
          onLine(buffer.slice(0, newline));
          buffer = buffer.slice(newline + 1);
        }
      });
      res.on('error', () => undefined);
      resolve(() => req.destroy());
    });
    req.on('error', reject);
    req.end();
  });
}

function getJson(url: string): Promise<{ body: { metadata: { resourceVersion: string }; items: unknown[] }; ms: number }> {
  const start = performance.now();
  return new Promise((resolve, reject) => {
    request(url, { agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ body: JSON.parse(Buffer.concat(chunks).toString('utf8')) as never, ms: performance.now() - start }));
      res.on('error', reject);
    })
      .on('error', reject)
      .end();
  });
}

interface Path {
  fire(i: number): Promise<void> | void;
  arrivals: { onEvent?: (i: number) => void };
  close(): Promise<void>;
}

/** Sends `eventCount` events numbered from `first`: `fire(i)` emits event i; each watcher reports i when parsed. Returns every latency. */
async function measure({ fire, arrivals }: Path, first: number): Promise<number[]> {
  const latencies: number[] = [];
  for (let i = first; i < first + eventCount; i++) {
    let received = 0;
    const start = performance.now();
    const done = new Promise<void>((resolve) => {
      arrivals.onEvent = (n) => {
        if (n !== i) return;
        latencies.push(performance.now() - start);
        if (++received === watcherCount) resolve();
      };
    });
    await fire(i);
    await done;
  }
  return latencies;
}

async function knode(): Promise<Path & { listP50: number; listBytes: number; heapMiB: number; rssMiB: number }> {
  const storage = new MemoryStorage();
  const cp = await startControlPlane({ storage, log: createLogger('bench', 'silent'), host: '127.0.0.1', port: 0, clusterCidr: '10.244.0.0/16', serviceCidr: '10.96.0.0/12', controllers: { enabled: false } });
  const mem0 = process.memoryUsage();
  for (let i = 0; i < podCount; i++) {
    const pod: KObject = {
      metadata: { name: `pod-${i}`, labels: { app: `app-${i % 50}` } },
      spec: { nodeName: `node-${i % 10}`, containers: [{ name: 'c', image: 'busybox:1.36', ports: [{ containerPort: 8080 }] }] },
    };
    await cp.registry.create(pods, 'default', pod);
  }
  const lists: number[] = [];
  let listBytes = 0;
  const arrivals: { onEvent?: (i: number) => void } = {};
  const closers: (() => void)[] = [];
  for (let w = 0; w < watcherCount; w++) {
    const list = await getJson(`${cp.url}/api/v1/pods`);
    lists.push(list.ms);
    if (w === 0) listBytes = JSON.stringify(list.body).length;
    if (list.body.items.length !== podCount) throw new Error(`list returned ${list.body.items.length} pods`);
    closers.push(
      await stream(`${cp.url}/api/v1/pods?watch=1&resourceVersion=${list.body.metadata.resourceVersion}`, (line) => {
        const event = JSON.parse(line) as { type: string; object: { metadata: { annotations?: Record<string, string> } } };
        const seq = event.object.metadata.annotations?.seq;
        if (event.type === 'MODIFIED' && seq !== undefined) arrivals.onEvent?.(Number(seq));
      }),
    );
  }
  global.gc?.();
  const mem1 = process.memoryUsage();
  return {
    fire: async (i) => {
      await cp.registry.mutate(pods, 'default', `pod-${i % podCount}`, (pod) => ({ ...pod, metadata: { ...pod.metadata, annotations: { seq: String(i) } } }));
    },
    arrivals,
    close: async () => {
      for (const close of closers) close();
      await cp.stop();
    },
    listP50: percentile(lists, 50),
    listBytes,
    heapMiB: (mem1.heapUsed - mem0.heapUsed) / 2 ** 20,
    rssMiB: mem1.rss / 2 ** 20,
  };
}

async function baseline(sampleLine: string): Promise<Path> {
  const responses: ServerResponse[] = [];
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked' });
    res.flushHeaders();
    responses.push(res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  const arrivals: { onEvent?: (i: number) => void } = {};
  const closers: (() => void)[] = [];
  for (let w = 0; w < watcherCount; w++) {
    closers.push(
      await stream(url, (line) => {
        const event = JSON.parse(line) as { object: { metadata: { annotations?: Record<string, string> } } };
        arrivals.onEvent?.(Number(event.object.metadata.annotations?.seq));
      }),
    );
  }
  while (responses.length < watcherCount) await new Promise((r) => setTimeout(r, 10));
  const template = JSON.parse(sampleLine) as { type: string; object: { metadata: { annotations?: Record<string, string> } } };
  return {
    fire: (i) => {
      template.object.metadata.annotations = { seq: String(i) };
      const line = `${JSON.stringify(template)}\n`;
      for (const res of responses) res.write(line);
    },
    arrivals,
    close: async () => {
      for (const close of closers) close();
      for (const res of responses) res.end();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

const sample = JSON.stringify({
  type: 'MODIFIED',
  object: {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'pod-1', namespace: 'default', uid: '7c1f6a3e-0000-4000-8000-000000000000', resourceVersion: '5001', creationTimestamp: '2026-01-01T00:00:00Z', labels: { app: 'app-1' }, annotations: { seq: '0' } },
    spec: { nodeName: 'node-1', restartPolicy: 'Always', dnsPolicy: 'ClusterFirst', terminationGracePeriodSeconds: 30, containers: [{ name: 'c', image: 'busybox:1.36', imagePullPolicy: 'IfNotPresent', ports: [{ containerPort: 8080, protocol: 'TCP' }], terminationMessagePath: '/dev/termination-log', terminationMessagePolicy: 'File', resources: {} }] },
    status: { phase: 'Pending', qosClass: 'BestEffort' },
  },
});

const k = await knode();
const b = await baseline(sample);
const samples = { knode: [] as number[][], baseline: [] as number[][] };
let next = 0;
for (let round = 0; round < rounds; round++) {
  for (const path of round % 2 === 0 ? (['knode', 'baseline'] as const) : (['baseline', 'knode'] as const)) {
    samples[path].push(await measure(path === 'knode' ? k : b, next));
    next += eventCount;
  }
  console.error(`round ${round + 1}/${rounds}: p50 knode ${percentile(samples.knode.at(-1)!, 50).toFixed(2)} ms, baseline ${percentile(samples.baseline.at(-1)!, 50).toFixed(2)} ms`);
}
await k.close();
await b.close();
const pooled = (path: 'knode' | 'baseline', p: number) => percentile(samples[path].flat(), p);
const perRound = (path: 'knode' | 'baseline', p: number) => samples[path].map((latencies) => percentile(latencies, p));
const row = (name: string, knodeValue: number, baseValue: number) =>
  `${name.padEnd(34)} ${knodeValue.toFixed(2).padStart(10)} ${baseValue.toFixed(2).padStart(10)} ${(knodeValue / baseValue).toFixed(1).padStart(7)}x`;
console.log(`controlplane watch: ${podCount} pods, ${watcherCount} watchers, ${eventCount} events × ${rounds} interleaved rounds (all watchers in this process)`);
console.log(`${''.padEnd(34)} ${'knode'.padStart(10)} ${'baseline'.padStart(10)} ${'ratio'.padStart(8)}`);
console.log(row('watch event delivery p50 (ms)', pooled('knode', 50), pooled('baseline', 50)));
console.log(row('watch event delivery p99 (ms)', pooled('knode', 99), pooled('baseline', 99)));
console.log(row('watch event delivery max (ms)', pooled('knode', 100), pooled('baseline', 100)));
console.log(`list of ${podCount} pods p50: ${k.listP50.toFixed(1)} ms (${(k.listBytes / 2 ** 20).toFixed(1)} MiB JSON)`);
console.log(`heap growth for ${podCount} pods + ${watcherCount} watches: ${k.heapMiB.toFixed(1)} MiB; RSS ${k.rssMiB.toFixed(0)} MiB`);
const baselineName = 'bare node:http server writing the same event line to the same number of chunked responses, same clients, interleaved rounds';
const size = `${podCount} pods, ${watcherCount} watchers`;
const description = `${eventCount} pod updates × ${rounds} rounds, latency from before the write to each watcher's parsed event (all in one process; API server in-process, controllers off)`;
for (const p of [50, 99]) {
  reportFigure({ name: `watch event delivery p${p}, ${size}`, value: pooled('knode', p), unit: 'ms', baseline: pooled('baseline', p), baselineName, better: 'lower', description, roundRatios: roundRatios(perRound('knode', p), perRound('baseline', p)) });
}
reportFigure({ name: `list of ${podCount} pods p50`, value: k.listP50, unit: 'ms', baseline: null, baselineName: 'none measured (no bare list server in this bench)', better: 'lower', description: `${(k.listBytes / 2 ** 20).toFixed(1)} MiB JSON` });
reportFigure({ name: `heap growth, ${size}`, value: k.heapMiB, unit: 'MiB', baseline: null, baselineName: 'none: in-memory storage has no reference to compare with', better: 'lower' });
agent.destroy();
