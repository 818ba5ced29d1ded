import { describe, expect, it } from 'vitest';
import { buildProxyModel, categorizeEndpoints, IncrementalProxyModel, portKey } from '../../proxy/model.js';
import { ChangeTracker } from '../../proxy/tracker.js';
import { service, slice } from './proxy-fixtures.js';

describe('proxy model (change tracking)', () => {
  it('maps a service port to its slice endpoints by port name and protocol', () => {
    const model = buildProxyModel(
      [service('svc1', '10.96.0.10', [{ name: 'p80', port: 80, targetPort: 'http' }, { name: 'dns', port: 53, protocol: 'UDP' }])],
      [slice('svc1', [{ name: 'p80', port: 8080 }, { name: 'dns', port: 5353, protocol: 'UDP' }], [{ ip: '10.244.0.2' }, { ip: '10.244.0.1' }])],
      'node-a',
    );
    expect(model.skipped).toEqual([]);
    expect(model.ports.map((port) => port.name)).toEqual(['ns1/svc1:dns', 'ns1/svc1:p80']);
    const web = model.ports.find((port) => port.portName === 'p80')!;
    expect(web.endpoints.map((endpoint) => `${endpoint.ip}:${endpoint.port}`)).toEqual(['10.244.0.1:8080', '10.244.0.2:8080']);
    expect(model.ports.find((port) => port.portName === 'dns')!.endpoints[0]!.port).toBe(5353);
  });

  it('uses ready endpoints, else serving terminating ones (KEP-1669)', () => {
    const svc = service('svc1', '10.96.0.10', [{ port: 80 }]);
    const some = buildProxyModel([svc], [slice('svc1', [{ port: 80 }], [{ ip: '10.244.0.1' }, { ip: '10.244.0.2', ready: false, serving: true, terminating: true }])], 'n');
    expect(categorizeEndpoints(some.ports[0]!).cluster.map((endpoint) => endpoint.ip)).toEqual(['10.244.0.1']);
    const onlyTerminating = buildProxyModel([svc], [slice('svc1', [{ port: 80 }], [{ ip: '10.244.0.2', ready: false, serving: true, terminating: true }, { ip: '10.244.0.3', ready: false, serving: false }])], 'n');
    expect(categorizeEndpoints(onlyTerminating.ports[0]!).cluster.map((endpoint) => endpoint.ip)).toEqual(['10.244.0.2']);
  });

  it('internalTrafficPolicy Local keeps cluster traffic on local endpoints; externalTrafficPolicy Local gets a health check port', () => {
    const svc = service('svc1', '10.96.0.10', [{ port: 80, nodePort: 30080 }], { type: 'NodePort', internalTrafficPolicy: 'Local', externalTrafficPolicy: 'Local', healthCheckNodePort: 32000 });
    const model = buildProxyModel([svc], [slice('svc1', [{ port: 80 }], [{ ip: '10.244.0.1', node: 'a' }, { ip: '10.244.1.1', node: 'b' }])], 'a');
    const port = model.ports[0]!;
    expect(categorizeEndpoints(port).cluster.map((endpoint) => endpoint.ip)).toEqual(['10.244.0.1']);
    expect(categorizeEndpoints(port).local.map((endpoint) => endpoint.ip)).toEqual(['10.244.0.1']);
    expect(port.healthCheckNodePort).toBe(32000);
  });

  it('session affinity ClientIP with its timeout (default 10800 s)', () => {
    const model = buildProxyModel(
      [
        service('a', '10.96.0.1', [{ port: 80 }], { sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: 60 } } }),
        service('b', '10.96.0.2', [{ port: 80 }], { sessionAffinity: 'ClientIP' }),
        service('c', '10.96.0.3', [{ port: 80 }]),
      ],
      [],
      'n',
    );
    expect(model.ports.map((port) => port.affinityTimeout)).toEqual([60, 10800, undefined]);
  });

  it('skips invalid services and ports with a reason, keeps the valid ones, never throws', () => {
    const model = buildProxyModel(
      [
        service('bad-ip', '10.96.0.999', [{ port: 80 }]),
        service('v6', 'fd00::1', [{ port: 80 }]),
        service('bad-port', '10.96.0.2', [{ name: 'a', port: 70000 }, { name: 'b', port: 81 }]),
        service('bad-proto', '10.96.0.3', [{ port: 80, protocol: 'ICMP' }]),
        service('headless', 'None', [{ port: 80 }]),
        { metadata: { name: 'nospec' } },
        service('good', '10.96.0.4', [{ port: 80 }]),
      ],
      [slice('missing', [{ port: 80 }], [{ ip: '10.244.0.1' }]), slice('good', [{ port: 80 }], [{ ip: 'not-an-ip' }, { ip: '10.244.0.9' }])],
      'n',
    );
    expect(model.ports.map((port) => port.name)).toEqual(['ns1/bad-port:b', 'ns1/good']);
    expect(model.ports[1]!.endpoints.map((endpoint) => endpoint.ip)).toEqual(['10.244.0.9']);
    const reasons = model.skipped.map((entry) => `${entry.object}: ${entry.reason}`).join('\n');
    expect(reasons).toMatch(/bad-ip.*invalid clusterIP/);
    expect(reasons).toMatch(/v6.*not IPv4/);
    expect(reasons).toMatch(/bad-port.*invalid port 70000/);
    expect(reasons).toMatch(/bad-proto.*unsupported protocol "ICMP"/);
    expect(reasons).toMatch(/EndpointSlices of ns1\/missing: no such Service/);
    expect(reasons).toMatch(/invalid endpoint address "not-an-ip"/);
    expect(reasons).not.toMatch(/headless/);
  });

  it('kept service by service: after random changes, each update equals a rebuild and names exactly the ports that changed', () => {
    let seed = 7;
    const random = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), Math.floor((seed / 2 ** 31) * n));
    const tracker = new ChangeTracker();
    const model = new IncrementalProxyModel('node-a');
    model.rebuild(tracker);
    let previous = new Map<string, unknown>();
    const named = (object: ReturnType<typeof slice>, name: string) => ({ ...object, metadata: { ...object.metadata, name } });
    for (let step = 0; step < 400; step++) {
      const name = `svc${random(12)}`;
      const action = random(6);
      if (action === 0) tracker.deleteService(service(name, '10.96.0.1', []));
      else if (action === 1) tracker.upsertService(service(name, `10.96.0.${random(200) + 1}`, [{ name: 'web', port: 80 }, ...(random(2) ? [{ name: 'dns', port: 53, protocol: 'UDP' }] : [])]));
      else if (action === 2) tracker.deleteSlice(named(slice(name, [], []), `slice-${name}-${random(2)}`));
      else {
        // sometimes a slice is relabelled to another Service (same slice name)
        const owner = action === 3 ? `svc${random(12)}` : name;
        const endpoints = Array.from({ length: random(4) }, (_, i) => ({ ip: `10.244.${random(3)}.${i + 1}`, node: random(2) ? 'node-a' : 'node-b' }));
        tracker.upsertSlice(named(slice(owner, [{ name: 'web', port: 8080 }, { name: 'dns', port: 5353, protocol: 'UDP' }], endpoints), `slice-${name}-${random(2)}`));
      }
      if (random(3) !== 0) continue;
      const { changedAt } = tracker.take();
      const { services, slices } = tracker.objects();
      const changes = model.update(tracker, changedAt.keys());
      const rebuilt = buildProxyModel(services, slices, 'node-a');
      const bySource = (a: { object: string }, b: { object: string }) => a.object.localeCompare(b.object);
      expect(model.ports).toEqual(rebuilt.ports);
      expect(model.model.skipped.sort(bySource)).toEqual(rebuilt.skipped.sort(bySource));
      expect(model.skippedCount).toBe(rebuilt.skipped.length);
      const now = new Map(model.ports.map((port) => [portKey(port), port]));
      const expected = [...new Set([...previous.keys(), ...now.keys()])].filter((key) => previous.get(key) !== now.get(key)).sort();
      expect([...changes.keys()].sort()).toEqual(expected);
      for (const [key, change] of changes) {
        expect(change.before).toBe(previous.get(key));
        expect(change.after).toBe(now.get(key));
      }
      previous = now;
    }
  });
});
