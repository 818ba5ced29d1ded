/**
 * The agent's pod sources (the kubelet's makePodSourceConfig): the static pod directory
 * (staticPodPath), the static pod URL (staticPodURL) and the API server's pods of this node, all
 * feeding PodConfig. Static sources start first and are awaited: they need nothing but the
 * filesystem. The API source starts last and is not waited for, so an unreachable API server
 * never holds up static pods. sourcesReady (kubelet config.SourcesReady) is true once every
 * configured source delivered its first set: orphan cleanup waits for it, so a restart never
 * kills pods a source simply has not reported yet. A rejected manifest is counted, logged and
 * recorded as a Warning event on the Node (FailedStaticPodManifest).
 */
import type { KubeConfig, V1Pod } from '@kubernetes/client-node';
import type { KubeletConfiguration } from '../../lib/config/kubelet.js';
import type { EventRecorder } from '../../lib/events.js';
import type { Logger } from '../../lib/log.js';
import { ApiPodSource, apiSourceName } from './api.js';
import { fileSourceName, StaticPodDirSource, type SourceListener } from './file.js';
import type { ManifestError } from './manifest.js';
import type { PodConfig } from './pod-config.js';
import { httpSourceName, StaticPodUrlSource } from './url.js';

interface PodSourcesOptions {
  config: Pick<KubeletConfiguration, 'staticPodPath' | 'staticPodURL' | 'staticPodURLHeader' | 'fileCheckFrequency' | 'httpCheckFrequency'>;
  nodeName: string;
  kubeConfig: KubeConfig;
  podConfig: Pick<PodConfig, 'set'>;
  events: Pick<EventRecorder, 'record'>;
  /** The registered Node's UID, for events about manifests (undefined before registration). */
  nodeUid: () => string | undefined;
  manifestErrors: { inc(): void };
  log: Logger;
}

export class PodSources {
  private readonly expected = new Set<string>();
  private readonly reported = new Set<string>();
  private readonly started: { stop(): Promise<void> }[] = [];
  private readonly listener: SourceListener = {
    onPods: (source, pods) => this.onPods(source, pods),
    onManifestError: (_source, error) => this.onManifestError(error),
  };

  constructor(private readonly options: PodSourcesOptions) {
    if (options.config.staticPodPath) this.expected.add(fileSourceName);
    if (options.config.staticPodURL) this.expected.add(httpSourceName);
    this.expected.add(apiSourceName);
  }

  /** Whether every configured source delivered its first set. */
  ready(): boolean {
    return [...this.expected].every((source) => this.reported.has(source));
  }

  /** Starts the static pod directory and URL sources (each has delivered its first set on return). */
  async startStatic(): Promise<void> {
    const { config, nodeName, log } = this.options;
    if (config.staticPodPath) {
      const source = new StaticPodDirSource({ dir: config.staticPodPath, nodeName, checkFrequencyMs: config.fileCheckFrequency, listener: this.listener, log: log.child({ part: 'file-source' }) });
      this.started.push(source);
      await source.start();
    }
    if (config.staticPodURL) {
      const headers = config.staticPodURLHeader;
      const source = new StaticPodUrlSource({ url: config.staticPodURL, headers, nodeName, checkFrequencyMs: config.httpCheckFrequency, listener: this.listener, log: log.child({ part: 'http-source' }) });
      this.started.push(source);
      await source.start();
    }
  }

  /** Starts the API source; not waited for (its watch retries while the API server is away). */
  startApi(): void {
    const { kubeConfig, nodeName, log } = this.options;
    const api = new ApiPodSource({ kubeConfig, nodeName, onPods: (source, pods) => this.onPods(source, pods), log: log.child({ part: 'api-source' }) });
    this.started.push(api);
    void api.start();
  }

  async stop(): Promise<void> {
    for (const source of this.started) await source.stop();
  }

  private onPods(source: string, pods: V1Pod[]): void {
    this.options.log.debug({ source, pods: pods.length }, 'pod source update');
    this.reported.add(source);
    this.options.podConfig.set(source, pods);
  }

  private onManifestError(error: ManifestError): void {
    this.options.manifestErrors.inc();
    this.options.log.error({ err: error, source: error.source }, 'static pod manifest rejected');
    const uid = this.options.nodeUid();
    this.options.events.record({
      involvedObject: { apiVersion: 'v1', kind: 'Node', name: this.options.nodeName, ...(uid ? { uid } : {}) },
      type: 'Warning',
      reason: 'FailedStaticPodManifest',
      message: error.message,
    });
  }
}
