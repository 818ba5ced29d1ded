/**
 * The httpGet prober, after the kubelet's pkg/probe/http
 * (https://kubernetes.io/docs/concepts/configuration/liveness-readiness-startup-probes/ and
 * .../configure-liveness-readiness-startup-probes/#http-probes):
 * - GET with `User-Agent: kube-probe/<major.minor>` and `Accept: *\/*` unless the probe sets them;
 *   a `Host` header in httpHeaders replaces the request's host;
 * - HTTPS does not verify the certificate; no keep-alive (a fresh connection per probe);
 * - success for 200 <= status < 400; redirects are followed only to the same hostname (at most
 *   10); a redirect to another host is not followed and the 3xx counts as success with a
 *   warning ("Probe terminated redirects"), as the kubelet does;
 * - at most 10 KiB of the body is read (the rest is dropped, the connection closed);
 * - one hard timeout covers connect, headers, redirects and body (Go's http.Client.Timeout).
 * Built on node:http/https directly: a probe is one request with no pooling, and the hard
 * timeout must destroy the socket whatever state the peer leaves it in.
 */
import http from 'node:http';
import https from 'node:https';
import type { ProbeOutcome } from './types.js';

export const maxResponseBodyBytes = 10 * 1024;
const maxRedirects = 10;

interface HttpProbeRequest {
  scheme: 'HTTP' | 'HTTPS';
  host: string;
  port: number;
  path: string;
  headers: Array<{ name: string; value: string }>;
  timeoutMs: number;
  userAgent: string;
}

interface Answer {
  status: number;
  location?: string;
  body: string;
}

/** Formats host:port for a URL, bracketing IPv6 literals. */
function hostPort(host: string, port: number): string {
  return `${host.includes(':') ? `[${host}]` : host}:${port}`;
}

export function probeUrl(request: Pick<HttpProbeRequest, 'scheme' | 'host' | 'port' | 'path'>): URL {
  const path = request.path === '' ? '/' : request.path.startsWith('/') ? request.path : `/${request.path}`;
  return new URL(`${request.scheme.toLowerCase()}://${hostPort(request.host, request.port)}${path}`);
}

function buildHeaders(request: HttpProbeRequest, keepHost: boolean): http.OutgoingHttpHeaders {
  const headers: http.OutgoingHttpHeaders = {};
  for (const { name, value } of request.headers) {
    const key = name.toLowerCase();
    if (key === 'host' && !keepHost) continue;
    const previous = headers[key];
    headers[key] = previous === undefined ? value : ([] as string[]).concat(previous as string | string[], value);
  }
  headers['user-agent'] ??= request.userAgent;
  headers.accept ??= '*/*';
  headers.connection = 'close';
  return headers;
}

/**
 * The probe's one hard deadline over all its requests. A plain timer that destroys the request
 * in flight: an AbortController per probe (signal listeners on every request, an AbortError
 * built on expiry) cost a measurable share of a probe's CPU for the same effect.
 */
class Deadline {
  expired = false;
  private current?: http.ClientRequest;
  private readonly timer: NodeJS.Timeout;

  constructor(timeoutMs: number) {
    this.timer = setTimeout(() => {
      this.expired = true;
      this.current?.destroy(new Error('probe deadline exceeded'));
    }, Math.max(1, timeoutMs));
  }

  /** Tracks the request in flight; one made after expiry is destroyed at once. */
  track(req: http.ClientRequest): void {
    this.current = req;
    if (this.expired) req.destroy(new Error('probe deadline exceeded'));
  }

  clear(): void {
    clearTimeout(this.timer);
    this.current = undefined;
  }
}

function getOnce(url: URL, headers: http.OutgoingHttpHeaders, deadline: Deadline): Promise<Answer> {
  return new Promise<Answer>((resolve, reject) => {
    const options: https.RequestOptions = {
      method: 'GET',
      hostname: url.hostname.replace(/^\[|\]$/g, ''),
      port: url.port,
      path: `${url.pathname}${url.search}`,
      headers,
      agent: false,
      rejectUnauthorized: false,
    };
    const req = (url.protocol === 'https:' ? https : http).request(options, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      const answer = (): Answer => ({ status: res.statusCode ?? 0, location: res.headers.location, body: Buffer.concat(chunks).subarray(0, maxResponseBodyBytes).toString('utf8') });
      res.on('data', (chunk: Buffer) => {
        if (size >= maxResponseBodyBytes) return;
        chunks.push(chunk);
        size += chunk.length;
        if (size >= maxResponseBodyBytes) {
          // Body cap reached: stop reading and drop the connection (pkg/probe/http ReadAtMost).
          resolve(answer());
          req.destroy();
        }
      });
      // Connection: close without an agent: the socket closes by itself after a full response.
      res.on('end', () => resolve(answer()));
      res.on('error', reject);
    });
    req.on('error', reject);
    deadline.track(req);
    req.end();
  });
}

function describe(error: unknown, deadline: Deadline): string {
  if (deadline.expired) return 'context deadline exceeded (Client.Timeout exceeded while awaiting headers)';
  return error instanceof Error ? error.message : String(error);
}

/** Runs one HTTP(S) probe; never throws, never outlives timeoutMs by more than a tick. */
export async function probeHttp(request: HttpProbeRequest): Promise<ProbeOutcome> {
  // Our own timer, cleared when done: AbortSignal.timeout would fire (and build a DOMException
  // with a stack) for every probe long after it finished.
  const deadline = new Deadline(request.timeoutMs);
  const first = probeUrl(request);
  const hostHeader = request.headers.find((header) => header.name.toLowerCase() === 'host');
  let url = first;
  try {
    for (let hop = 0; ; hop++) {
      const answer = await getOnce(url, buildHeaders(request, hop === 0 || hostHeader !== undefined && url.host === first.host), deadline);
      if (answer.status >= 300 && answer.status < 400 && answer.location !== undefined) {
        const next = new URL(answer.location, url);
        // prober/http redirectChecker: only follow to the same hostname; otherwise use this response.
        if (next.hostname === first.hostname && (next.protocol === 'http:' || next.protocol === 'https:')) {
          if (hop + 1 >= maxRedirects) return { result: 'failure', output: `Get "${next.href}": stopped after ${maxRedirects} redirects` };
          url = next;
          continue;
        }
      }
      return classify(answer);
    }
  } catch (error) {
    return { result: 'failure', output: `Get "${url.href}": ${describe(error, deadline)}` };
  } finally {
    deadline.clear();
  }
}

function classify(answer: Answer): ProbeOutcome {
  if (answer.status >= 200 && answer.status < 400) {
    if (answer.status >= 300) return { result: 'warning', output: `Probe terminated redirects, Response body: ${answer.body}` };
    return { result: 'success', output: answer.body };
  }
  return { result: 'failure', output: `HTTP probe failed with statuscode: ${answer.status}` };
}
