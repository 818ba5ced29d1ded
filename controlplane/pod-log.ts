/**
 * pods/log: proxied to the kubelet API of the Pod's node, as kube-apiserver does
 * (GET https://<node InternalIP>:<kubeletEndpoint.Port>/containerLogs/<ns>/<pod>/<container>,
 * https://kubernetes.io/docs/reference/command-line-tools-reference/kubelet/), with the
 * control plane's kubelet client credentials (kubelet-client.ts). The query (follow, tailLines,
 * sinceSeconds, timestamps, previous, limitBytes) is passed through.
 */
import type { ServerResponse } from 'node:http';
import { callKubelet, kubeletError, type KubeletClientConfig, type KubeletTarget } from './kubelet-client.js';
import type { Registry } from './registry.js';
import { resources, type ResourceInfo, resourceNamed } from './resources.js';
import { ApiError, badRequest } from './status.js';
import type { KObject } from './storage/types.js';
import { isRecord } from './util.js';

const nodes = resourceNamed('nodes');
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

/** The kubelet of the pod's node: 400 when the pod is not bound, 404 when the node is gone. */
export async function kubeletOfPod(registry: Registry, pod: KObject): Promise<KubeletTarget> {
  const spec = isRecord(pod.spec) ? pod.spec : {};
  if (typeof spec.nodeName !== 'string' || spec.nodeName === '') throw badRequest(`pod ${String(pod.metadata.name)} does not have a host assigned`);
  const node = await registry.get(nodes, undefined, spec.nodeName);
  return { ...kubeletAddress(node), nodeName: spec.nodeName };
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

export function podLogProxy(registry: Registry, client: KubeletClientConfig = {}): (pod: KObject, query: URLSearchParams, res: ServerResponse) => Promise<void> {
  return async (pod, query, res) => {
    const target = await kubeletOfPod(registry, pod);
    const container = chooseContainer(pod, query.get('container'));
    const params = new URLSearchParams();
    for (const name of passThrough) {
      const value = query.get(name);
      if (value !== null) params.set(name, value);
    }
    const path = `/containerLogs/${encodeURIComponent(String(pod.metadata.namespace))}/${encodeURIComponent(String(pod.metadata.name))}/${encodeURIComponent(container)}?${params.toString()}`;
    const answer = await callKubelet(client, target, { method: 'GET', path });
    if (answer.kind !== 'response') {
      answer.socket.destroy();
      throw new ApiError(502, 'InternalError', `the kubelet of node ${target.nodeName} switched protocols on a log request`);
    }
    const { response, request } = answer;
    if ((response.statusCode ?? 500) >= 400) throw await kubeletError(response, target);
    res.writeHead(200, { 'Content-Type': 'text/plain', 'Transfer-Encoding': 'chunked' });
    await new Promise<void>((resolve) => {
      response.pipe(res);
      response.once('end', resolve);
      response.once('error', () => {
        res.end();
        resolve();
      });
      res.once('close', () => {
        request.destroy();
        resolve();
      });
    });
  };
}
