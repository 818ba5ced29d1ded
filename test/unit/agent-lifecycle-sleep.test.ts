/**
 * The sleep lifecycle action (KEP-3960) with 0 seconds (PodLifecycleSleepActionAllowZero, GA in
 * 1.34): the hook returns at once and runs nothing in the container, as the kubelet's
 * runSleepHandler (time.After(0)).
 */
import { describe, expect, it } from 'vitest';
import type { V1Container, V1Pod } from '@kubernetes/client-node';
import { runHook } from '../../agent/pods/lifecycle.js';

const container: V1Container = { name: 'c', image: 'i:1' };
const pod: V1Pod = { metadata: { name: 'p', namespace: 'ns', uid: 'u' }, spec: { containers: [container] } };

describe('sleep lifecycle action', () => {
  it('sleeps 0 s without touching the container', async () => {
    const execs: string[][] = [];
    const runtime = {
      execSync: async (_id: string, command: string[]) => {
        execs.push(command);
        return { exitCode: 0, stdout: '', stderr: '' };
      },
    };
    await expect(runHook({ sleep: { seconds: 0 } }, { runtime, pod, container, containerId: 'cid', podIP: '', timeoutMs: 30_000 }, 'PreStop')).resolves.toBeUndefined();
    expect(execs).toEqual([]);
  });
});
