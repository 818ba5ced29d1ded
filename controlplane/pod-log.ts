/**
 * pods/log: proxied to the kubelet API of the Pod's node, as kube-apiserver does
 * (GET https://<node InternalIP>:<kubeletEndpoint.Port>/containerLogs/<ns>/<pod>/<container>,
 * https://kubernetes.io/docs/reference/command-line-tools-reference/kubelet/). The kubelet's
 * serving certificate is self-signed, so it is not verified (kube-apiserver without
 * --kubelet-certificate-authority behaves the same). The query (follow, tailLines, sinceSeconds,
 * timestamps, previous, limitBytes) is passed through.
 */
import type { ServerResponse } from 'node:http';
import { request } from 'node:https';
import type { Registry } from './registry.js';
import { resources, type ResourceInfo } from './resources.js';
import { ApiError, badRequest } from './status.js';
import type { KObject } from './storage/types.js';
import { isRecord } from './util.js';

const nodes = resources.find((r) => r.name === 'nodes') as ResourceInfo;
const passThrough = ['follow', 'tailLines', 'sinceSeconds', 'sinceTime', 'timestamps', 'previous', 'limitBytes'];

type Obj = Record<string, unknown>;
const list = (v: unknown): Obj[] => (Array.isArray(v) ? v.filter(isRecord) : []);

export function chooseContainer(pod: KObject, requested: string | null): string {
  const names = list(isRecord(pod.spec) ? pod.spec.containers : undefined).map((c) => String(c.name));
  const initNames = list(isRecord(pod.spec) ? pod.spec.initContainers : undefined).map((c) => String(c.name));
  if (requested) {
    if (!names.includes(requested) && !initNames.includes(requested))
      throw badRequest(`container ${requested} is not valid for pod ${String(pod.metadata.name)}`);
    return requested;
  }
  if (names.length === 1) return names[0] as string;
  throw badRequest(`a container name must be specified for pod ${String(pod.metadata.name)}, choose one of: [${names.join(' ')}]`);
}

/** Where the node's kubelet listens, from its status (InternalIP, daemonEndpoints). */
export function kubeletAddress(node: KObject): { host: string; port: number } {
  const status = isRecord(node.status) ? node.status : {};
  const addresses = list(status.addresses);
  const address = addresses.find((a) => a.type === 'InternalIP') ?? addresses.find((a) => a.type === 'Hostname');
  const endpoint = isRecord(status.daemonEndpoints) && isRecord(status.daemonEndpoints.kubeletEndpoint) ? status.daemonEndpoints.kubeletEndpoint : {};
  const port = typeof endpoint.Port === 'number' && endpoint.Port > 0 ? endpoint.Port : 10250;
  if (!address || typeof address.address !== 'string') throw new ApiError(500, 'InternalError', `Internal error occurred: node ${String(node.metadata.name)} has no address for its kubelet`);
  return { host: address.address, port };
}

export function podLogProxy(registry: Registry): (pod: KObject, query: URLSearchParams, res: ServerResponse) => Promise<void> {
  return async (pod, query, res) => {
    const spec = isRecord(pod.spec) ? pod.spec : {};
    if (typeof spec.nodeName !== 'string' || spec.nodeName === '') throw badRequest(`pod ${String(pod.metadata.name)} does not have a host assigned`);
    const container = chooseContainer(pod, query.get('container'));
    const node = await registry.get(nodes, undefined, spec.nodeName);
    const { host, port } = kubeletAddress(node);
    const params = new URLSearchParams();
    for (const name of passThrough) {
      const value = query.get(name);
      if (value !== null) params.set(name, value);
    }
    const path = `/containerLogs/${encodeURIComponent(String(pod.metadata.namespace))}/${encodeURIComponent(String(pod.metadata.name))}/${encodeURIComponent(container)}?${params.toString()}`;
    await new Promise<void>((resolve, reject) => {
      const upstream = request({ host, port, path, method: 'GET', rejectUnauthorized: false, timeout: 30_000 }, (reply) => {
        if ((reply.statusCode ?? 500) >= 400) {
          const chunks: Buffer[] = [];
          reply.on('data', (c: Buffer) => chunks.push(c));
          reply.on('end', () => reject(new ApiError(reply.statusCode ?? 500, reply.statusCode === 404 ? 'NotFound' : 'InternalError', Buffer.concat(chunks).toString('utf8').trim() || `kubelet answered ${reply.statusCode}`)));
          return;
        }
        res.writeHead(200, { 'Content-Type': 'text/plain', 'Transfer-Encoding': 'chunked' });
        reply.pipe(res);
        reply.on('end', resolve);
        reply.on('error', resolve);
        res.on('close', () => {
          upstream.destroy();
          resolve();
        });
      });
      upstream.on('timeout', () => upstream.destroy(new Error('kubelet did not answer in 30 s')));
      upstream.on('error', (error) => {
        if (res.headersSent) {
          res.end();
          resolve();
        } else reject(new ApiError(502, 'ServiceUnavailable', `error trying to reach the kubelet of node ${String(spec.nodeName)}: ${error.message}`, undefined, { cause: error }));
      });
      upstream.end();
    });
  };
}
