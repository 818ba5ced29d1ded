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
