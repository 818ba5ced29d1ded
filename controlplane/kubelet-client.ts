/**
 * How the control plane reaches a node's kubelet API (pods/log, pods/exec, pods/attach), as
 * kube-apiserver does (https://kubernetes.io/docs/concepts/architecture/control-plane-node-communication/#api-server-to-kubelet):
 * - HTTPS to <node InternalIP>:<daemonEndpoints.kubeletEndpoint.Port>;
 * - a client certificate when --kubelet-client-certificate/--kubelet-client-key are given (the
 *   kubelet authenticates it against its authentication.x509.clientCAFile);
 * - the kubelet's serving certificate verified only with --kubelet-certificate-authority
 *   (without it kube-apiserver does not verify it either).
 * knode's own kubelet serves plain HTTP when it has no tlsCertFile (a test kubelet on
 * loopback): for a loopback kubelet address only, and only without client credentials, a
 * server that answers the TLS handshake in plain text is asked again over HTTP.
 */
import { readFileSync } from 'node:fs';
import { request as httpRequest, type ClientRequest, type IncomingHttpHeaders, type IncomingMessage, type OutgoingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { Duplex } from 'node:stream';
import { ConfigError } from '../lib/errors.js';
import { isLoopback } from './security.js';
import { ApiError } from './status.js';

export interface KubeletClientConfig {
  /** PEM client certificate and key (both or neither). */
  cert?: string;
  key?: string;
  /** PEM CA bundle that signs the kubelets' serving certificates; verification is on when set. */
  ca?: string;
  /**
   * Which kubelet addresses may be dialled (default: any). Test control planes in the root
   * network namespace allow only this machine's own addresses, so that a kubelet whose address
   * exists only inside a test netns is refused instead of sent out through the default route.
   */
  allowHost?: (host: string) => boolean;
}

interface KubeletClientFiles {
  certificate?: string;
  key?: string;
  certificateAuthority?: string;
}

function readPem(flag: string, file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (error) {
    throw new ConfigError(`${flag} "${file}": ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  }
}

/** Reads the flags' files; a certificate without its key (or the reverse) is a config error. */
export function loadKubeletClientConfig(files: KubeletClientFiles): KubeletClientConfig {
  if (Boolean(files.certificate) !== Boolean(files.key)) throw new ConfigError('--kubelet-client-certificate and --kubelet-client-key must be given together');
  return {
    ...(files.certificate ? { cert: readPem('--kubelet-client-certificate', files.certificate) } : {}),
    ...(files.key ? { key: readPem('--kubelet-client-key', files.key) } : {}),
    ...(files.certificateAuthority ? { ca: readPem('--kubelet-certificate-authority', files.certificateAuthority) } : {}),
  };
}

export interface KubeletTarget {
  host: string;
  port: number;
  nodeName: string;
}

interface KubeletCall {
  method: string;
  path: string;
  headers?: OutgoingHttpHeaders;
  /** Until the kubelet answers (default 30 s). */
  timeoutMs?: number;
}

type KubeletAnswer =
  | { kind: 'response'; response: IncomingMessage; request: ClientRequest }
  | { kind: 'upgrade'; response: IncomingMessage; socket: Duplex; head: Buffer };

/** The TLS alert a plain-HTTP server causes (OpenSSL "wrong version number" / "packet length too long"). */
export function isPlainTextAnswer(error: unknown): boolean {
  const code = (error as { code?: unknown } | undefined)?.code;
  const message = error instanceof Error ? error.message : '';
  return code === 'ERR_SSL_WRONG_VERSION_NUMBER' || code === 'ERR_SSL_PACKET_LENGTH_TOO_LONG' || /wrong version number|packet length too long/i.test(message);
}

function attempt(config: KubeletClientConfig, target: KubeletTarget, call: KubeletCall, tls: boolean): Promise<KubeletAnswer> {
  return new Promise((resolve, reject) => {
    const options = { host: target.host, port: target.port, method: call.method, path: call.path, headers: call.headers ?? {}, agent: false as const };
    const request = tls
      ? httpsRequest({ ...options, rejectUnauthorized: Boolean(config.ca), ...(config.ca ? { ca: config.ca } : {}), ...(config.cert && config.key ? { cert: config.cert, key: config.key } : {}) })
      : httpRequest(options);
    // Node's https client, unlike its http client and its servers, leaves Nagle's algorithm on
    // (Go's net.Dial, which kube-apiserver uses, sets TCP_NODELAY on every connection). On an
    // upgraded stream it held each small frame after the first until the kubelet's delayed ACK,
    // 40 ms later: a port-forward connection's SYN_STREAMs and first DATA, an exec's stdin.
    request.setNoDelay(true);
    request.setTimeout(call.timeoutMs ?? 30_000, () => request.destroy(new Error(`no answer in ${Math.round((call.timeoutMs ?? 30_000) / 1000)} s`)));
    request.once('response', (response) => {
      request.setTimeout(0);
      resolve({ kind: 'response', response, request });
    });
    request.once('upgrade', (response, socket, head) => {
      request.setTimeout(0);
      resolve({ kind: 'upgrade', response, socket, head });
    });
    request.once('error', reject);
    request.end();
  });
}

/** Sends one request to a kubelet; connection failures become a 502 Status naming the node. */
export async function callKubelet(config: KubeletClientConfig, target: KubeletTarget, call: KubeletCall): Promise<KubeletAnswer> {
  if (config.allowHost && !config.allowHost(target.host)) {
    throw new ApiError(502, 'ServiceUnavailable', `error trying to reach the kubelet of node ${target.nodeName} at ${target.host}:${target.port}: this control plane may not dial that address`);
  }
  try {
    return await attempt(config, target, call, true);
  } catch (error) {
    if (isPlainTextAnswer(error) && isLoopback(target.host) && !config.cert && !config.ca) {
      try {
        return await attempt(config, target, call, false);
      } catch (plainError) {
        error = plainError;
      }
    }
    const message = error instanceof Error ? error.message : String(error);
    throw new ApiError(502, 'ServiceUnavailable', `error trying to reach the kubelet of node ${target.nodeName} at ${target.host}:${target.port}: ${message}`, undefined, { cause: error });
  }
}

/** Reads a kubelet's error answer and turns it into a Status with its code and text. */
export async function kubeletError(response: IncomingMessage, target: KubeletTarget): Promise<ApiError> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of response) {
    if (size < 64 * 1024) chunks.push(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  const code = response.statusCode ?? 500;
  let text = Buffer.concat(chunks).toString('utf8').trim() || `kubelet answered ${code}`;
  // The kubelet refused the control plane itself: say so (see --kubelet-client-certificate).
  if (code === 401 || code === 403) text = `the kubelet of node ${target.nodeName} refused the control plane's request (${code}): ${text}`;
  const reasons: Record<number, string> = { 400: 'BadRequest', 401: 'Unauthorized', 403: 'Forbidden', 404: 'NotFound' };
  return new ApiError(code >= 400 && code < 600 ? code : 500, reasons[code] ?? 'InternalError', text);
}

/** The 101 answer as received, to relay to the client verbatim. */
export function switchingProtocolsHead(response: IncomingMessage): string {
  const lines = [`HTTP/1.1 101 ${response.statusMessage || 'Switching Protocols'}`];
  const raw = response.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) lines.push(`${raw[i]}: ${raw[i + 1]}`);
  return `${lines.join('\r\n')}\r\n\r\n`;
}

/** Request headers a stream upgrade carries to the kubelet (not the client's credentials). */
export function upgradeHeaders(headers: IncomingHttpHeaders): OutgoingHttpHeaders {
  const keep = ['upgrade', 'sec-websocket-key', 'sec-websocket-version', 'sec-websocket-protocol', 'x-stream-protocol-version', 'user-agent'];
  const out: OutgoingHttpHeaders = { connection: 'Upgrade' };
  for (const name of keep) {
    const value = headers[name];
    if (value !== undefined) out[name] = value;
  }
  return out;
}
