/**
 * The API source (pkg/kubelet/config/apiserver.go): pods whose spec.nodeName is this node, kept
 * by a client-node ListWatch with a field selector. On "410 Gone" the ListWatch relists by
 * itself (client-node cache.js doneHandler/watchHandler reset the resourceVersion); on any other
 * error it stops, so this source restarts it with a capped back-off. Every change emits the
 * complete set.
 */
import { CoreV1Api, KubeConfig, ListWatch, Watch, type V1Pod } from '@kubernetes/client-node';
import type { Logger } from '../../lib/log.js';
import { describeError } from '../../lib/errors.js';

export const apiSourceName = 'api';

export interface ApiPodSourceOptions {
  kubeConfig: KubeConfig;
  nodeName: string;
  onPods(source: string, pods: V1Pod[]): void;
  log: Logger;
  /** First restart delay after a watch failure (ms); doubles to 30 s. */
  retryMs?: number;
}

export class ApiPodSource {
  private informer?: ListWatch<V1Pod>;
  private retryTimer?: NodeJS.Timeout;
  private retryMs: number;
  private stopped = false;
  private synced = false;

  constructor(private readonly options: ApiPodSourceOptions) {
    this.retryMs = options.retryMs ?? 1000;
  }

  /** Starts the watch; resolves once the first list is in (or failed, then it keeps retrying). */
  async start(): Promise<void> {
    this.stopped = false;
    await this.connect();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    await this.informer?.stop();
    this.informer = undefined;
  }

  /** Whether the first list has been received. */
  get hasSynced(): boolean {
    return this.synced;
  }

  private emit(informer: ListWatch<V1Pod>): void {
    // A new informer fills its cache item by item: only a complete list is a pod set.
    if (this.stopped || this.informer !== informer || informer.latestResourceVersion() === '') return;
    this.options.onPods(apiSourceName, [...informer.list()]);
  }

  private async connect(): Promise<void> {
    if (this.stopped) return;
    const fieldSelector = `spec.nodeName=${this.options.nodeName}`;
    const core = this.options.kubeConfig.makeApiClient(CoreV1Api);
    const informer = new ListWatch<V1Pod>(
      '/api/v1/pods',
      new Watch(this.options.kubeConfig),
      async () => {
        const list = await core.listPodForAllNamespaces({ fieldSelector });
        // After a (re)list the cache is complete once the ListWatch has applied it: emit then.
        setImmediate(() => this.emit(informer));
        return list as unknown as { metadata?: { resourceVersion?: string }; items: V1Pod[] };
      },
      false,
      undefined,
      fieldSelector,
    );
    this.informer = informer;
    informer.on('change', () => this.emit(informer));
    informer.on('connect', () => {
      this.retryMs = this.options.retryMs ?? 1000;
    });
    informer.on('error', (error: unknown) => {
      if (this.stopped || this.informer !== informer) return;
      this.options.log.warn({ err: error, retryMs: this.retryMs }, 'pod watch failed; restarting');
      this.retryTimer = setTimeout(() => {
        informer.stop().then(
          () => this.connect(),
          () => this.connect(),
        );
      }, this.retryMs);
      this.retryMs = Math.min(this.retryMs * 2, 30_000);
    });
    try {
      await informer.start();
      if (informer.latestResourceVersion() !== '') {
        this.synced = true;
        this.emit(informer);
      }
    } catch (error) {
      this.options.log.warn({ err: error }, 'initial pod list failed; retrying');
    }
  }
}
