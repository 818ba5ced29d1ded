/**
 * pods/exec, pods/attach and pods/portforward: the upgrade request (WebSocket, GET or POST as
 * kube-apiserver accepts both; SPDY for port-forward too) is proxied to the kubelet of the pod's
 * node (https://<InternalIP>:<kubeletEndpoint.Port>/exec|attach/<ns>/<pod>/<container>?command=...,
 * /portForward/<ns>/<pod>?ports=...), and once the kubelet answers 101 the two connections are
 * piped byte for byte, as kube-apiserver's UpgradeAwareHandler does
 * (k8s.io/apimachinery/pkg/util/proxy). knode's kubelet serves the port-forward WebSocket tunnel
 * (SPDY/3.1+portforward.k8s.io) itself, so the control plane needs no SPDY translation. The
 * client's own credentials are not forwarded: the control plane authenticates with its kubelet
 * client certificate (kubelet-client.ts). Everything that fails before the 101 is a Status.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { callKubelet, kubeletError, switchingProtocolsHead, upgradeHeaders, type KubeletClientConfig } from './kubelet-client.js';
import { chooseContainer, kubeletOfPod } from './pod-log.js';
import type { Registry } from './registry.js';
import { ApiError, type StatusBody } from './status.js';
import type { KObject } from './storage/types.js';
import { isRecord } from './util.js';

export const streamSubresources = ['exec', 'attach', 'portforward'] as const;
export type StreamSubresource = (typeof streamSubresources)[number];

export type PodStreamProxy = (pod: KObject, subresource: StreamSubresource, query: URLSearchParams, req: IncomingMessage, socket: Duplex, head: Buffer) => Promise<void>;

/** An HTTP response with a Status body, written on a socket that was not upgraded. */
export function writeStatusToSocket(socket: Duplex, error: ApiError): void {
  const body = JSON.stringify(error.toStatus() satisfies StatusBody);
  const text = `HTTP/1.1 ${error.code} ${error.reason}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nCache-Control: no-cache, private\r\nConnection: close\r\n\r\n${body}`;
  if (socket.writable) socket.end(text);
  else socket.destroy();
}

function isRunning(pod: KObject): boolean {
  const phase = isRecord(pod.status) ? pod.status.phase : undefined;
  return phase !== 'Succeeded' && phase !== 'Failed';
}

/** The kubelet path: the query without `container`, which is part of the path (exec/attach only). */
export function kubeletStreamPath(pod: KObject, subresource: StreamSubresource, container: string | undefined, query: URLSearchParams): string {
  const params = new URLSearchParams();
  for (const [name, value] of query) if (name !== 'container') params.append(name, value);
  const ns = encodeURIComponent(String(pod.metadata.namespace));
  const name = encodeURIComponent(String(pod.metadata.name));
  if (subresource === 'portforward') return `/portForward/${ns}/${name}?${params.toString()}`;
  return `/${subresource}/${ns}/${name}/${encodeURIComponent(container ?? '')}?${params.toString()}`;
}

/** What one batch of a relay may hold before it is written anyway. */
const maxBatch = 256 * 1024;

/**
 * Copies `from` to `to` as pipe() does, except that what arrives within one turn of the event
 * loop goes out in one write (corked until setImmediate). A TLS connection hands over its
 * records one by one: a kubelet's 64 KiB DATA frame came out as four 16 KiB writes and a tail of
 * 20 bytes, each a send on the client's connection and a wake-up of kubectl.
 */
function relay(from: Duplex, to: Duplex): void {
  let corked = false;
  const flush = () => {
    if (!corked) return;
    corked = false;
    to.uncork();
    // What the socket did not take at once is waited for before reading more (pipe's backpressure).
    if (to.writableLength > to.writableHighWaterMark && !from.isPaused()) {
      from.pause();
      to.once('drain', () => from.resume());
    }
  };
  from.on('data', (chunk: Buffer) => {
    if (!corked) {
      corked = true;
      to.cork();
      setImmediate(flush);
    }
    // A batch is bounded: the next relay waits for none of it.
    if (!to.write(chunk) && to.writableLength >= maxBatch) flush();
  });
  from.once('end', () => {
    flush();
    to.end();
  });
}

function pipeBoth(a: Duplex, b: Duplex): void {
  const close = () => {
    a.destroy();
    b.destroy();
  };
  a.on('error', close);
  b.on('error', close);
  a.on('close', close);
  b.on('close', close);
  relay(a, b);
  relay(b, a);
}

export function podStreamProxy(registry: Registry, client: KubeletClientConfig = {}): PodStreamProxy {
  return async (pod, subresource, query, req, socket, head) => {
    // A stream into a pod that has ended is refused (kube-apiserver pkg/registry/core/pod/strategy.go; kubectl port-forward checks the same).
    if (!isRunning(pod)) throw new ApiError(400, 'BadRequest', `cannot ${subresource} into a container in a completed pod; current phase is ${String((pod.status as { phase?: unknown }).phase)}`);
    const target = await kubeletOfPod(registry, pod);
    const container = subresource === 'portforward' ? undefined : chooseContainer(pod, query.get('container'));
    const answer = await callKubelet(client, target, { method: req.method ?? 'GET', path: kubeletStreamPath(pod, subresource, container, query), headers: upgradeHeaders(req.headers) });
    if (answer.kind === 'response') {
      const error = await kubeletError(answer.response, target);
      answer.request.destroy();
      throw error;
    }
    if (!socket.writable) {
      answer.socket.destroy();
      return;
    }
    socket.write(switchingProtocolsHead(answer.response));
    if (answer.head.length > 0) socket.write(answer.head);
    if (head.length > 0) answer.socket.write(head);
    pipeBoth(socket, answer.socket);
  };
}
