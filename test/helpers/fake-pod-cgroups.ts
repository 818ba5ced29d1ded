// A PodCgroups (agent/cgroups/pod-cgroups.ts) that records calls, for unit tests of the pod workers.
import type { V1Pod } from '@kubernetes/client-node';
import type { PodCgroups } from '../../agent/cgroups/pod-cgroups.js';

export class FakePodCgroups implements PodCgroups {
  readonly ensured: string[] = [];
  readonly removed: string[] = [];
  failEnsure?: Error;
  async ensure(pod: V1Pod): Promise<void> {
    if (this.failEnsure) throw this.failEnsure;
    this.ensured.push(pod.metadata?.uid ?? '');
  }
  async remove(uid: string): Promise<boolean> {
    this.removed.push(uid);
    return true;
  }
}
