import { describe, expect, it } from 'vitest';
import { serveOpenApi } from '../../controlplane/openapi.js';

type Obj = Record<string, unknown>;
const schemas = (path: string) => ((serveOpenApi(path) as Obj).components as Obj).schemas as Record<string, Obj>;

describe('OpenAPI v3 component schemas', () => {
  it('describes every apps/v1 and batch/v1 kind by its group-version-kind, and every type it references', () => {
    for (const [path, kinds] of [
      ['/openapi/v3/apis/apps/v1', ['Deployment', 'ReplicaSet', 'DaemonSet', 'ControllerRevision', 'DeploymentList']],
      ['/openapi/v3/apis/batch/v1', ['Job', 'CronJob', 'JobList']],
    ] as const) {
      const all = schemas(path);
      const gvks = Object.values(all).flatMap((s) => (s['x-kubernetes-group-version-kind'] as Obj[] | undefined) ?? []).map((g) => g.kind);
      for (const kind of kinds) expect(gvks).toContain(kind);
      const refs = JSON.stringify(all).match(/#\/components\/schemas\/[\w.]+/g) ?? [];
      for (const ref of new Set(refs)) expect(all[ref.replace('#/components/schemas/', '')], ref).toBeDefined();
    }
  });

  it('carries the strategic merge keys and the descriptions', () => {
    const all = schemas('/openapi/v3/apis/apps/v1');
    const podSpec = all['io.k8s.api.v1.PodSpec']?.properties as Record<string, Obj>;
    expect(podSpec.containers).toMatchObject({ type: 'array', 'x-kubernetes-patch-merge-key': 'name', 'x-kubernetes-patch-strategy': 'merge' });
    const spec = all['io.k8s.api.v1.DeploymentSpec'] as Obj;
    expect(spec.description).toBe('DeploymentSpec is the specification of the desired behavior of the Deployment.');
    expect((spec.properties as Record<string, Obj>).replicas).toMatchObject({ type: 'integer', format: 'int32' });
    expect((spec.properties as Record<string, Obj>).strategy).toMatchObject({ allOf: [{ $ref: '#/components/schemas/io.k8s.api.v1.DeploymentStrategy' }] });
  });

  it('leaves the other groups without schemas', () => {
    expect(schemas('/openapi/v3/api/v1')).toEqual({});
  });
});

describe('strict field validation of the workload kinds', () => {
  it('names every unknown field with its path, skips free-form fields and patch directives', async () => {
    const { unknownFields } = await import('../../controlplane/field-validation.js');
    const deployment = {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'x', labelz: {} },
      spec: {
        replicaz: 1,
        selector: { matchLabels: { a: 'b' } },
        template: { metadata: { labels: { a: 'b' } }, spec: { containers: [{ name: 'c', image: 'i', imagee: 1, ports: [{ containerPort: 1, hostPortt: 2 }], resources: { limits: { cpu: '1' } } }], '$setElementOrder/containers': [{ name: 'c' }] } },
      },
    };
    expect(unknownFields('Deployment', deployment)).toEqual(['metadata.labelz', 'spec.replicaz', 'spec.template.spec.containers[0].imagee', 'spec.template.spec.containers[0].ports[0].hostPortt']);
    expect(unknownFields('ControllerRevision', { apiVersion: 'apps/v1', kind: 'ControllerRevision', metadata: { name: 'r' }, revision: 1, data: { anything: { goes: true } } })).toEqual([]);
    expect(unknownFields('CronJob', { spec: { schedule: '* * * * *', jobTemplate: { spec: { backoffLimitt: 1 } } } })).toEqual(['spec.jobTemplate.spec.backoffLimitt']);
  });
});
