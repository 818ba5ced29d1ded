/**
 * The OpenAPI v3 schemas of the workload kinds, read by the real kubectl: `kubectl explain`
 * walks them, and `kubectl apply` computes its strategic merge patch from them (the containers
 * list merged by name, as upstream's patch-merge-key says).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../../lib/exec.js';
import { prerequisites } from '../helpers/prereq.js';
import { startTestControlPlane, type TestControlPlane } from '../helpers/controlplane.js';

const env = await prerequisites('command:kubectl');
const ns = 'openapi';

type Obj = Record<string, unknown>;

describe.skipIf(env.skip)('OpenAPI v3 of the workload kinds with kubectl', () => {
  let cp: TestControlPlane;
  const kubectl = async (args: string[], input?: string) => run(['kubectl', '--kubeconfig', cp.kubeconfigPath, '-n', ns, ...args], { allowFailure: true, timeoutMs: 60_000, input });

  beforeAll(async () => {
    cp = await startTestControlPlane({ resyncMs: 500 });
    expect((await kubectl(['create', 'namespace', ns])).code).toBe(0);
  });
  afterAll(async () => {
    await cp?.stop();
  });

  it('explains deployment.spec.strategy, a job and a daemonset field', async () => {
    const strategy = await kubectl(['explain', 'deployment.spec.strategy']);
    expect(strategy.stderr).toBe('');
    expect(strategy.stdout).toMatch(/GROUP:\s+apps/);
    expect(strategy.stdout).toMatch(/KIND:\s+Deployment/);
    expect(strategy.stdout).toMatch(/VERSION:\s+v1/);
    expect(strategy.stdout).toMatch(/FIELD: strategy <DeploymentStrategy>/);
    expect(strategy.stdout).toMatch(/rollingUpdate\s+<RollingUpdateDeployment>/);
    expect(strategy.stdout).toContain('Type of deployment. Can be "Recreate" or "RollingUpdate". Default is');
    const surge = await kubectl(['explain', 'deployment.spec.strategy.rollingUpdate.maxSurge']);
    expect(surge.stdout).toMatch(/FIELD: maxSurge <(IntOrString|string)>/);
    expect(surge.stdout).toContain('IntOrString is a type that can hold an int32 or a string.');
    expect((await kubectl(['explain', 'jobs.spec.backoffLimit'])).stdout).toMatch(/FIELD: backoffLimit <integer>[\s\S]*Specifies the number of retries/);
    expect((await kubectl(['explain', 'ds.spec.template.spec.containers.readinessProbe.periodSeconds'])).stdout).toMatch(/How often \(in seconds\) to perform the probe/);
    const recursive = (await kubectl(['explain', 'cronjob.spec', '--recursive'])).stdout;
    expect(recursive).toMatch(/concurrencyPolicy\s+<string>/);
    expect(recursive).toMatch(/jobTemplate\s+<JobTemplateSpec> -required-|jobTemplate\s+<JobTemplateSpec>/);
    expect((await kubectl(['explain', 'deployment.spec.nosuchfield'])).stderr).toContain('field "nosuchfield" does not exist');
  });

  it('applies a Deployment twice, merging the containers list by name', async () => {
    const manifest = (env: string) => `apiVersion: apps/v1
kind: Deployment
metadata: {name: m}
spec:
  selector: {matchLabels: {app: m}}
  template:
    metadata: {labels: {app: m}}
    spec:
      containers:
      - {name: a, image: i:1, env: [{name: X, value: "${env}"}]}
      - {name: b, image: i:2}
`;
    expect((await kubectl(['apply', '-f', '-'], manifest('1'))).stdout.trim()).toBe('deployment.apps/m created');
    // Another manager sets a field the manifest does not have; apply must keep it (merge by name, not replace).
    expect((await kubectl(['patch', 'deploy/m', '--type=strategic', '-p', JSON.stringify({ spec: { template: { spec: { containers: [{ name: 'b', workingDir: '/tmp' }] } } } })])).code).toBe(0);
    expect((await kubectl(['apply', '-f', '-'], manifest('2'))).stdout.trim()).toBe('deployment.apps/m configured');
    const stored = JSON.parse((await kubectl(['get', 'deploy/m', '-o', 'json'])).stdout) as Obj;
    const containers = ((((stored.spec as Obj).template as Obj).spec as Obj).containers as Obj[]).map((c) => ({ name: c.name, env: c.env, workingDir: c.workingDir }));
    // kubectl's default --validate=strict: an unknown field is refused (server-side field validation, announced in the OpenAPI).
    const unknown = await kubectl(['apply', '-f', '-'], manifest('3').replace('selector: {matchLabels: {app: m}}', 'selector: {matchLabels: {app: m}}\n  replicaz: 3'));
    expect(unknown.code).not.toBe(0);
    expect(unknown.stderr).toContain('unknown field "spec.replicaz"');
    expect(containers).toEqual([
      { name: 'a', env: [{ name: 'X', value: '2' }], workingDir: undefined },
      { name: 'b', env: undefined, workingDir: '/tmp' },
    ]);
  });
});
