/**
 * The staticPodURL source (pkg/kubelet/config/http.go): the URL is fetched every
 * httpCheckFrequency with staticPodURLHeader; the body is one or more Pod documents or a PodList.
 * A fetch or parse failure is reported (once per distinct failure) and leaves the last good set
 * in place, as the kubelet does; an empty body is an empty set.
 */
import { createHash } from 'node:crypto';
import type { V1Pod } from '@kubernetes/client-node';
import type { Logger } from '../../lib/log.js';
import { describeError } from '../../lib/errors.js';
import { ManifestError, applyPodDefaults, podsFromDocuments, validatePodDocument } from './manifest.js';
import { decodeManifestBounded, maxManifestBytes, oversize } from './manifest-worker.js';
import { toStaticPod } from './static-pod.js';
import type { SourceListener } from './file.js';

interface StaticPodUrlOptions {
  url: string;
  headers: Record<string, string[]>;
  nodeName: string;
  checkFrequencyMs: number;
  listener: SourceListener;
  log: Logger;
  timeoutMs?: number;
}

export const httpSourceName = 'http';

/** Parses the body: Pod documents, or a v1 PodList (bounded in size and main-thread time). */
export async function parseUrlManifest(text: string, url: string): Promise<V1Pod[]> {
  if (text.trim() === '') return [];
  const documents = await decodeManifestBounded(text, url);
  const first = documents[0];
  if (typeof first === 'object' && first !== null && (first as { kind?: unknown }).kind === 'PodList') {
    const items = (first as { items?: unknown }).items;
    if (!Array.isArray(items)) throw new ManifestError(url, 'PodList without items');
    return items.map((item: unknown, index) => applyPodDefaults(validatePodDocument(url, index, { apiVersion: 'v1', kind: 'Pod', ...(item as object) })));
  }
  return podsFromDocuments(documents, url);
}

/** The response body, at most maxManifestBytes (the kubelet reads at most maxConfigLength, pkg/kubelet/config/http.go). */
async function readBody(response: Response, url: string): Promise<string> {
  const declared = Number(response.headers.get('content-length') ?? NaN);
  if (declared > maxManifestBytes) {
    await response.body?.cancel();
    throw oversize(url, declared);
  }
  const chunks: Uint8Array[] = [];
  let length = 0;
  if (response.body) {
    for await (const chunk of response.body as AsyncIterable<Uint8Array>) {
      length += chunk.byteLength;
      if (length > maxManifestBytes) throw oversize(url, length);
      chunks.push(chunk);
    }
  }
  return Buffer.concat(chunks).toString('utf8');
}

export class StaticPodUrlSource {
  private timer?: NodeJS.Timeout;
  private lastBody?: string;
  private lastError?: string;
  private polling?: Promise<void>;
  private stopped = false;

  constructor(private readonly options: StaticPodUrlOptions) {}

  async start(): Promise<void> {
    this.stopped = false;
    await this.poll();
    this.timer = setInterval(() => {
      if (!this.polling) this.polling = this.poll().finally(() => (this.polling = undefined));
    }, Math.max(100, this.options.checkFrequencyMs));
    this.timer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.polling;
  }

  private report(error: ManifestError): void {
    if (error.message === this.lastError) return;
    this.lastError = error.message;
    this.options.listener.onManifestError(httpSourceName, error);
  }

  async poll(): Promise<void> {
    const { url } = this.options;
    let body: string;
    try {
      const headers = new Headers();
      for (const [name, values] of Object.entries(this.options.headers)) for (const value of values) headers.append(name, value);
      const response = await fetch(url, { headers, signal: AbortSignal.timeout(this.options.timeoutMs ?? 10_000) });
      body = await readBody(response, url);
      if (!response.ok) throw new Error(`HTTP ${response.status} ${response.statusText}`);
    } catch (error) {
      this.report(error instanceof ManifestError ? error : new ManifestError(url, `cannot fetch: ${describeError(error)}`, { cause: error }));
      return;
    }
    const hash = createHash('sha256').update(body).digest('hex');
    if (hash === this.lastBody) return;
    let pods: V1Pod[];
    try {
      pods = (await parseUrlManifest(body, url)).map((pod) => toStaticPod(pod, this.options.nodeName, 'http', url));
    } catch (error) {
      this.report(error instanceof ManifestError ? error : new ManifestError(url, describeError(error), { cause: error }));
      return;
    }
    this.lastBody = hash;
    this.lastError = undefined;
    if (!this.stopped) this.options.listener.onPods(httpSourceName, pods);
  }
}
