import { mkdtempSync, rmSync, unlinkSync, utimesSync, writeFileSync, mkdirSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { V1Pod } from '@kubernetes/client-node';
import { createLogger } from '../../lib/log.js';
import { StaticPodDirSource } from '../../agent/sources/file.js';
import { StaticPodUrlSource, parseUrlManifest } from '../../agent/sources/url.js';
import { PodConfig, podsDifferSemantically } from '../../agent/sources/pod-config.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { configSeenAnnotation, configSourceAnnotation, configMirrorAnnotation } from '../../lib/k8s/pod-source.js';
import { SourceRecorder } from '../helpers/source-recorder.js';

const log = createLogger('test', 'silent');
const root = mkdtempSync(join(tmpdir(), 'knode-agent-sources-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const manifest = (name: string, cmd = '3600') => `apiVersion: v1\nkind: Pod\nmetadata:\n  name: ${name}\nspec:\n  containers:\n  - name: main\n    image: knode.local/busybox:1\n    command: ["sleep", "${cmd}"]\n`;


async function until(check: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('static pod directory source', () => {
  it('adds, changes and removes pods on file events, and rescans', async () => {
    const dir = join(root, 'watch');
    mkdirSync(dir);
    writeFileSync(join(dir, 'a.yaml'), manifest('a'));
    writeFileSync(join(dir, 'notes.txt'), 'not a manifest');
    const rec = new SourceRecorder();
    // A long check period: only fs.watch can make the later changes visible quickly.
    const source = new StaticPodDirSource({ dir, nodeName: 'n1', checkFrequencyMs: 3_600_000, listener: rec, log });
    await source.start();
    try {
      expect(rec.names).toEqual(['a-n1']);
      const uidA = rec.sets.at(-1)![0]!.metadata!.uid;
      writeFileSync(join(dir, 'b.json'), JSON.stringify({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'b' }, spec: { containers: [{ name: 'c', image: 'i:1' }] } }));
      await until(() => rec.names.join() === 'a-n1,b-n1', 'b to appear');
      writeFileSync(join(dir, 'a.yaml'), manifest('a', '7200'));
      await until(() => rec.sets.at(-1)!.find((p) => p.metadata!.name === 'a-n1')?.metadata!.uid !== uidA, 'a to change UID');
      unlinkSync(join(dir, 'b.json'));
      await until(() => rec.names.join() === 'a-n1', 'b to go');
      expect(rec.errors).toEqual([]);
    } finally {
      await source.stop();
    }
  });

  it('reports a bad file once and keeps the good ones; duplicates lose to the first file', async () => {
    const dir = join(root, 'bad');
    mkdirSync(dir);
    writeFileSync(join(dir, '1-good.yaml'), manifest('good'));
    writeFileSync(join(dir, '2-broken.yaml'), 'apiVersion: v1\nkind: Pod\nmetadata: {name: x\n');
    writeFileSync(join(dir, '3-dup.yaml'), manifest('good'));
    const rec = new SourceRecorder();
    const source = new StaticPodDirSource({ dir, nodeName: 'n1', checkFrequencyMs: 100, listener: rec, log });
    await source.start();
    try {
      expect(rec.names).toEqual(['good-n1']);
      // The broken file was written just now: its error comes once it has settled (200 ms).
      await until(() => rec.errors.length >= 2, 'both errors');
      await source.scan();
      await source.scan();
      expect([...rec.errors.map((e) => e.message)].sort()).toEqual([
        expect.stringMatching(/2-broken\.yaml.*invalid YAML/),
        expect.stringMatching(/3-dup\.yaml.*pod "default\/good-n1" is already defined in ".*1-good\.yaml"/),
      ]);
      // Fixing the broken file brings its pod in.
      writeFileSync(join(dir, '2-broken.yaml'), manifest('fixed'));
      await until(() => rec.names.join() === 'fixed-n1,good-n1', 'fixed pod');
    } finally {
      await source.stop();
    }
  });

  it('a file that does not parse right after a write keeps its pods and is read again once settled', async () => {
    const dir = join(root, 'settle');
    mkdirSync(dir);
    const file = join(dir, 'p.yaml');
    writeFileSync(file, manifest('p'));
    const rec = new SourceRecorder();
    // A long settle time: the half-written state is always seen within it, however slow the machine.
    const source = new StaticPodDirSource({ dir, nodeName: 'n1', checkFrequencyMs: 3_600_000, listener: rec, log, settleMs: 60_000 });
    await source.start();
    try {
      expect(rec.names).toEqual(['p-n1']);
      const uid = rec.sets.at(-1)![0]!.metadata!.uid;
      // An editor's save caught half-way: the file truncated and partly written.
      writeFileSync(file, manifest('p', '7200').slice(0, 40));
      await source.scan();
      expect(rec.errors).toEqual([]);
      expect(rec.names).toEqual(['p-n1']);
      expect(rec.sets.at(-1)![0]!.metadata!.uid).toBe(uid);
      // The write completes: the new content replaces the pod, and no error was ever reported.
      writeFileSync(file, manifest('p', '7200'));
      await source.scan();
      expect(rec.errors).toEqual([]);
      expect(rec.sets.at(-1)![0]!.spec!.containers[0]!.command).toEqual(['sleep', '7200']);
      // A file still broken once settled is reported (mtime set back past the settle time).
      writeFileSync(file, 'kind: [');
      const past = new Date(Date.now() - 120_000);
      utimesSync(file, past, past);
      await source.scan();
      expect(rec.errors.map((e) => e.message)).toEqual([expect.stringMatching(/p\.yaml.*invalid YAML/)]);
      expect(rec.names).toEqual([]);
    } finally {
      await source.stop();
    }
  });

  it('a missing directory is an empty set, and is picked up once created', async () => {
    const dir = join(root, 'later');
    const rec = new SourceRecorder();
    const source = new StaticPodDirSource({ dir, nodeName: 'n1', checkFrequencyMs: 100, listener: rec, log });
    await source.start();
    try {
      expect(rec.sets).toEqual([[]]);
      mkdirSync(dir);
      writeFileSync(join(dir, 'p.yml'), manifest('p'));
      await until(() => rec.names.join() === 'p-n1', 'p after the directory appears');
    } finally {
      await source.stop();
    }
  });

  it('20 malformed manifests: 20 errors, the good pod still there', async () => {
    const dir = join(root, 'twenty');
    mkdirSync(dir);
    writeFileSync(join(dir, 'good.yaml'), manifest('good'));
    const rec = new SourceRecorder();
    const source = new StaticPodDirSource({ dir, nodeName: 'n1', checkFrequencyMs: 100, listener: rec, log });
    await source.start();
    expect(rec.names).toEqual(['good-n1']);
    const goodUid = rec.sets.at(-1)![0]!.metadata!.uid;
    const bodies = [
      'kind: [', 'apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {}\n', 'apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec: {containers: [{name: c}]}\n',
      manifest('good'), '"just a string"', 'apiVersion: v1\nkind: Pod\n', manifest('UPPER'), manifest('x').replace('name: main', 'name: Main_1'),
      manifest('x').replace('image: knode.local/busybox:1', 'image: 42'), '{"apiVersion":"v1","kind":"Pod"', manifest('x').replace('spec:', 'spec:\n  restartPolicy: Bad'),
      manifest('x').replace('spec:', 'spec:\n  hostNetwork: "yes"'), manifest('x').replace('spec:', 'spec:\n  volumes: [{name: v}, {name: v}]'),
      `${manifest('y')}---\n${manifest('y')}`, 'apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec: {containers: {}}\n', '- a\n- b\n',
      'apiVersion: v2\nkind: Pod\n', manifest('x').replace('command: ["sleep", "3600"]', 'command: [1, 2]'), 'apiVersion: v1\nkind: Pod\nmetadata: {name: x, namespace: Bad_NS}\nspec: {containers: [{name: c, image: i}]}\n',
      manifest('x').replace('    command', '    ports: [{containerPort: 0}]\n    command'),
    ];
    expect(bodies).toHaveLength(20);
    bodies.forEach((body, i) => writeFileSync(join(dir, `bad-${String(i).padStart(2, '0')}.yaml`), body));
    try {
      await until(() => rec.errors.length >= 20, '20 errors');
      await source.scan();
      expect(rec.names).toEqual(['good-n1']);
      expect(rec.sets.at(-1)![0]!.metadata!.uid).toBe(goodUid);
      expect(rec.errors).toHaveLength(20);
      for (const error of rec.errors) {
        expect(error.message).toMatch(/^static pod manifest ".*bad-\d\d\.yaml": /);
        expect(error.message).not.toContain('\n');
      }
    } finally {
      await source.stop();
    }
  });
});

describe('staticPodURL source', () => {
  let body = manifest('web');
  let status = 200;
  let seenHeader: string | undefined;
  const server: Server = createServer((req, res) => {
    seenHeader = req.headers['x-token'] as string | undefined;
    res.writeHead(status, { 'content-type': 'application/yaml' });
    res.end(body);
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it('polls, keeps the last good set on failure, and reads PodLists', async () => {
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/pods`;
    const rec = new SourceRecorder();
    const source = new StaticPodUrlSource({ url, headers: { 'X-Token': ['t1'] }, nodeName: 'n1', checkFrequencyMs: 3_600_000, listener: rec, log });
    await source.start();
    try {
      expect(rec.names).toEqual(['web-n1']);
      expect(seenHeader).toBe('t1');
      expect(rec.sets.at(-1)![0]!.metadata!.annotations![configSourceAnnotation]).toBe('http');
      status = 500;
      await source.poll();
      body = 'kind: [';
      status = 200;
      await source.poll();
      expect(rec.sets).toHaveLength(1);
      expect(rec.errors.map((e) => e.message)).toEqual([expect.stringMatching(/cannot fetch: HTTP 500/), expect.stringMatching(/invalid YAML/)]);
      body = JSON.stringify({ apiVersion: 'v1', kind: 'PodList', items: [{ metadata: { name: 'l1' }, spec: { containers: [{ name: 'c', image: 'i:1' }] } }] });
      await source.poll();
      expect(rec.names).toEqual(['l1-n1']);
      body = '';
      await source.poll();
      expect(rec.names).toEqual([]);
    } finally {
      await source.stop();
    }
  });

  it('parseUrlManifest rejects a PodList without items', async () => {
    await expect(parseUrlManifest('{"kind":"PodList"}', 'http://x')).rejects.toThrow(/PodList without items/);
  });
});

describe('pod config merger', () => {
  const pod = (name: string, uid: string, extra: Record<string, string> = {}): V1Pod => ({
    metadata: { name, namespace: 'default', uid, annotations: extra },
    spec: { containers: [{ name: 'c', image: 'i' }] },
  });

  it('merges sources, stamps seen/source, keeps mirrors apart, rejects duplicate names', () => {
    const clock = new FakeClock(Date.UTC(2026, 0, 1));
    const changes: [string[], string[]][] = [];
    const duplicates: string[] = [];
    const config = new PodConfig(
      {
        onPodsChanged: (desired, mirrors) => changes.push([[...desired.keys()].sort(), [...mirrors.keys()]]),
        onDuplicate: (p) => duplicates.push(p.metadata!.uid!),
      },
      clock,
    );
    config.set('api', [pod('a', 'u-a'), pod('s-n1', 'u-mirror', { [configMirrorAnnotation]: 'h' }), pod('dup', 'u-dup-api')]);
    config.set('file', [pod('s-n1', 'u-s', { [configSourceAnnotation]: 'file' }), pod('dup', 'u-dup-file')]);
    expect(changes.at(-1)).toEqual([['u-a', 'u-dup-file', 'u-s'], ['default/s-n1']]);
    expect(duplicates).toEqual(['u-dup-api']);
    const a = config.desiredPods().get('u-a')!;
    expect(a.metadata!.annotations![configSourceAnnotation]).toBe('api');
    expect(a.metadata!.annotations![configSeenAnnotation]).toBe('2026-01-01T00:00:00.000Z');
    clock.advance(5000);
    config.set('api', [pod('a', 'u-a')]);
    expect(config.desiredPods().get('u-a')!.metadata!.annotations![configSeenAnnotation]).toBe('2026-01-01T00:00:00.000Z');
    config.set('api', []);
    config.set('api', [pod('a', 'u-a')]);
    expect(config.desiredPods().get('u-a')!.metadata!.annotations![configSeenAnnotation]).toBe('2026-01-01T00:00:05.000Z');
  });
});

describe('podsDifferSemantically (kubelet config.go)', () => {
  const base: V1Pod = {
    metadata: { name: 'p', namespace: 'default', uid: 'u', resourceVersion: '1', labels: { a: '1' } },
    spec: { containers: [{ name: 'c', image: 'i' }], readinessGates: [{ conditionType: 'example.com/lb' }] },
    status: { phase: 'Pending' },
  };
  const variant = (change: (pod: V1Pod) => void): V1Pod => {
    const pod = structuredClone(base);
    change(pod);
    return pod;
  };
  it.each([
    ['resourceVersion only', (p: V1Pod) => (p.metadata!.resourceVersion = '2'), false],
    ['status phase only', (p: V1Pod) => (p.status = { phase: 'Running', podIP: '10.0.0.1' }), false],
    ['the same pod reordered', (p: V1Pod) => (p.metadata = { labels: { a: '1' }, uid: 'u', namespace: 'default', name: 'p', resourceVersion: '1' }), false],
    ['a label', (p: V1Pod) => (p.metadata!.labels = { a: '2' }), true],
    ['an annotation', (p: V1Pod) => (p.metadata!.annotations = { note: 'x' }), true],
    ['the spec', (p: V1Pod) => (p.spec!.containers[0]!.image = 'j'), true],
    ['deletion', (p: V1Pod) => Object.assign(p.metadata!, { deletionTimestamp: new Date(0), deletionGracePeriodSeconds: 5 }), true],
    ['a readiness gate condition', (p: V1Pod) => (p.status!.conditions = [{ type: 'example.com/lb', status: 'True' }]), true],
    ['another condition', (p: V1Pod) => (p.status!.conditions = [{ type: 'Ready', status: 'True' }]), false],
  ])('%s', (_name, change, differs) => {
    expect(podsDifferSemantically(base, variant(change))).toBe(differs);
  });
});
