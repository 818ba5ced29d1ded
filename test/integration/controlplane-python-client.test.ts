/**
 * Issue 25 item 11: the official Python client (Debian's python3-kubernetes) against the
 * control plane. It asks for watches with `watch=True`, which only a ParseBool-style reading
 * of the query treats as a watch; a list/create round trip checks the rest of its path.
 */
import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestControlPlane, type TestControlPlane } from '../helpers/controlplane.js';

const python = '/usr/bin/python3';
const hasClient = spawnSync(python, ['-c', 'import kubernetes'], { stdio: 'ignore' }).status === 0;
if (!hasClient && process.env.CI === 'true') throw new Error('missing test prerequisite under CI=true: python3-kubernetes (scripts/install-prereqs.sh)');

const script = String.raw`
import json, sys, threading, time
from kubernetes import client, watch
cfg = client.Configuration()
cfg.host = sys.argv[1]
api = client.CoreV1Api(client.ApiClient(cfg))
ns = sys.argv[2]
api.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
api.create_namespaced_config_map(ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="first"), data={"k": "v"}))
listed = api.list_namespaced_config_map(ns)
rv = listed.metadata.resource_version
def later():
    time.sleep(0.5)
    api.create_namespaced_config_map(ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="second")))
threading.Thread(target=later).start()
seen = []
w = watch.Watch()
for event in w.stream(api.list_namespaced_config_map, ns, resource_version=rv, timeout_seconds=10):
    seen.append([event["type"], event["object"].metadata.name])
    if event["object"].metadata.name == "second":
        w.stop()
print(json.dumps({"listed": [i.metadata.name for i in listed.items], "seen": seen}))
`;

describe.skipIf(!hasClient)('issue 25 item 11: the official Python client', () => {
  let cp: TestControlPlane;
  beforeAll(async () => {
    cp = await startTestControlPlane({ controllers: false });
  });
  afterAll(async () => {
    await cp?.stop();
  });

  it('creates, lists and watches (watch=True is a watch)', async () => {
    const { spawn } = await import('node:child_process');
    const child = spawn(python, ['-c', script, cp.url, 'py-client'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    expect(code, err).toBe(0);
    const result = JSON.parse(out.trim().split('\n').at(-1) ?? '{}') as { listed: string[]; seen: string[][] };
    expect(result.listed).toEqual(['first']);
    expect(result.seen).toEqual([['ADDED', 'second']]);
  }, 60_000);
});
