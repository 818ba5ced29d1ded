/**
 * Mirror pods (pkg/kubelet/pod/mirror_client.go and the kubelet's syncPod mirror handling): each
 * static pod gets a mirror pod on the API server; a mirror whose hash no longer matches (the
 * manifest changed) or that is being deleted is deleted and created again; a mirror pod deleted
 * by a user is recreated; mirrors whose static pod is gone are deleted. Reconciled on every
 * change of either side and periodically, so an API outage only delays this, and the static
 * pods themselves never wait for it.
 */
import type { V1Pod } from '@kubernetes/client-node';
import { CoreV1Api } from '../../lib/kube-client.js';
import type { Logger } from '../../lib/log.js';
import { describeError } from '../../lib/errors.js';
import { buildMirrorPod, mirrorMatches } from '../sources/static-pod.js';
import { apiErrorCode } from './manager.js';
import { fullName } from '../sources/pod-config.js';
import { isStaticPod } from '../../lib/k8s/pod-source.js';

interface MirrorPodApi {
  create(pod: V1Pod): Promise<V1Pod>;
  /** Deletes with grace 0 and a UID precondition; "not found" is success. */
  delete(namespace: string, name: string, uid: string): Promise<void>;
}

export class ClientMirrorPodApi implements MirrorPodApi {
  constructor(private readonly core: CoreV1Api) {}

  create(pod: V1Pod): Promise<V1Pod> {
    return this.core.createNamespacedPod({ namespace: pod.metadata!.namespace ?? 'default', body: pod });
  }

  async delete(namespace: string, name: string, uid: string): Promise<void> {
    try {
      await this.core.deleteNamespacedPod({ name, namespace, body: { gracePeriodSeconds: 0, preconditions: { uid } } });
    } catch (error) {
      if (apiErrorCode(error) === 404 || apiErrorCode(error) === 409) return;
      throw error;
    }
  }
}

interface MirrorPlan {
  create: V1Pod[];
  /** Mirror pods to delete (before their re-creation when they are in `create` too). */
  delete: V1Pod[];
}

/** Pure: what to create and delete, given the static pods and the mirrors the API has. */
export function planMirrorPods(staticPods: readonly V1Pod[], mirrors: ReadonlyMap<string, V1Pod>, node: { name: string; uid: string }): MirrorPlan {
  const plan: MirrorPlan = { create: [], delete: [] };
  const wanted = new Set<string>();
  for (const pod of staticPods) {
    const name = fullName(pod);
    wanted.add(name);
    const mirror = mirrors.get(name);
    if (mirror && mirrorMatches(mirror, pod)) continue;
    // A stale mirror, or one a user is deleting gracefully, is removed at once and recreated.
    if (mirror) plan.delete.push(mirror);
    plan.create.push(buildMirrorPod(pod, node));
  }
  for (const [name, mirror] of mirrors) if (!wanted.has(name)) plan.delete.push(mirror);
  return plan;
}

export class MirrorPodManager {
  private running?: Promise<void>;
  private again = false;

  constructor(
    private readonly api: MirrorPodApi,
    private readonly log: Logger,
    private readonly onCreated: (pod: V1Pod) => void = () => undefined,
  ) {}

  /** Reconciles (serialized; a call during a run schedules one more run). */
  reconcile(staticPods: () => readonly V1Pod[], mirrors: () => ReadonlyMap<string, V1Pod>, node: () => { name: string; uid: string } | undefined): Promise<void> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    const run = (async () => {
      do {
        this.again = false;
        const n = node();
        if (n) await this.apply(planMirrorPods(staticPods(), mirrors(), n));
      } while (this.again);
    })();
    // Cleared in a later microtask: the run may complete synchronously (no node yet).
    this.running = run.finally(() => {
      if (this.running === guarded) this.running = undefined;
    });
    const guarded = this.running;
    return this.running;
  }

  private async apply(plan: MirrorPlan): Promise<void> {
    for (const mirror of plan.delete) {
      const { namespace = 'default', name = '', uid = '' } = mirror.metadata ?? {};
      try {
        await this.api.delete(namespace, name, uid);
        this.log.info({ pod: `${namespace}/${name}` }, 'deleted mirror pod');
      } catch (error) {
        this.log.warn({ pod: `${namespace}/${name}`, err: error }, 'mirror pod delete failed');
      }
    }
    for (const pod of plan.create) {
      try {
        await this.api.create(pod);
        this.log.info({ pod: fullName(pod) }, 'created mirror pod');
        this.onCreated(pod);
      } catch (error) {
        if (apiErrorCode(error) === 409) continue; // the watch has not shown it to us yet
        this.log.warn({ pod: fullName(pod), err: error }, 'mirror pod create failed');
      }
    }
  }
}

interface MirrorPodSyncOptions {
  manager: Pick<MirrorPodManager, 'reconcile'>;
  /** The pods the node runs (the static ones among them get mirrors). */
  pods: () => Iterable<V1Pod>;
  /** The mirror pods the API server has (as the API source last reported them). */
  mirrors: () => ReadonlyMap<string, V1Pod>;
  /** The registered Node (owner of mirror pods); nothing is done before registration. */
  node: () => { name: string; uid: string } | undefined;
  log: Logger;
  /** Periodic reconcile, ms; default 10 000. */
  periodMs?: number;
}

/** When mirror pods are reconciled: on trigger() (a change of either side) and periodically. */
export class MirrorPodSync {
  private timer?: NodeJS.Timeout;

  constructor(private readonly options: MirrorPodSyncOptions) {}

  /** One reconcile; never rejects (a failure is logged and retried on the next trigger or tick). */
  trigger(): Promise<void> {
    const { manager, pods, mirrors, node, log } = this.options;
    return manager.reconcile(() => [...pods()].filter((pod) => isStaticPod(pod)), mirrors, node).catch((error: unknown) => log.warn({ err: error }, 'mirror pod reconcile failed'));
  }

  start(): void {
    this.timer = setInterval(() => void this.trigger(), this.options.periodMs ?? 10_000);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }
}
