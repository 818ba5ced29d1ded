/**
 * Server-side printing: `kubectl get` asks for `application/json;as=Table;v=v1;g=meta.k8s.io`
 * and prints the columns it gets (https://kubernetes.io/docs/reference/using-api/api-concepts/#receiving-resources-as-tables).
 * Columns follow kube-apiserver's printers for the common kinds; other kinds get Name and Age.
 */
import { csrCells, csrConditionText } from './kinds-csr.js';
import type { KObject } from './storage/types.js';
import { isRecord } from './util.js';
import { workloadColumns, type WorkloadColumn } from './table-workloads.js';

type Column = WorkloadColumn;

/** kubectl's short age: 5s, 3m, 2h, 4d. */
function shortAge(created: string | undefined, now: Date): string {
  if (!created) return '<unknown>';
  const seconds = Math.max(0, Math.floor((now.getTime() - Date.parse(created)) / 1000));
  if (seconds < 120) return `${seconds}s`;
  if (seconds < 3600 * 2) return `${Math.floor(seconds / 60)}m`;
  if (seconds < 86400 * 2) return `${Math.floor(seconds / 3600)}h`;
  return `${Math.floor(seconds / 86400)}d`;
}

const obj = (value: unknown): Record<string, unknown> => (isRecord(value) ? value : {});
const list = (value: unknown): Record<string, unknown>[] => (Array.isArray(value) ? value.filter(isRecord) : []);

const name: Column = { name: 'Name', type: 'string', format: 'name', description: 'Name', priority: 0, cell: (o) => o.metadata.name };
const age: Column = { name: 'Age', type: 'string', description: 'CreationTimestamp', priority: 0, cell: (o, now) => shortAge(o.metadata.creationTimestamp, now) };

function podStatus(pod: KObject): string {
  if (pod.metadata.deletionTimestamp) return 'Terminating';
  const status = obj(pod.status);
  for (const cs of list(status.containerStatuses)) {
    const waiting = obj(obj(cs.state).waiting);
    if (typeof waiting.reason === 'string') return waiting.reason;
    const terminated = obj(obj(cs.state).terminated);
    if (typeof terminated.reason === 'string' && status.phase !== 'Running') return terminated.reason;
  }
  return typeof status.reason === 'string' ? status.reason : String(status.phase ?? 'Unknown');
}

const podColumns: Column[] = [
  name,
  {
    name: 'Ready',
    type: 'string',
    description: 'The aggregate readiness state of this pod for accepting traffic.',
    priority: 0,
    cell: (p) => `${list(obj(p.status).containerStatuses).filter((c) => c.ready === true).length}/${list(obj(p.spec).containers).length}`,
  },
  { name: 'Status', type: 'string', description: 'The aggregate status of the containers in this pod.', priority: 0, cell: podStatus },
  {
    name: 'Restarts',
    type: 'string',
    description: 'The number of times the containers in this pod have been restarted.',
    priority: 0,
    cell: (p) => String(list(obj(p.status).containerStatuses).reduce((sum, c) => sum + (typeof c.restartCount === 'number' ? c.restartCount : 0), 0)),
  },
  age,
  { name: 'IP', type: 'string', description: 'IP address of the pod.', priority: 1, cell: (p) => obj(p.status).podIP ?? '<none>' },
  { name: 'Node', type: 'string', description: 'Node the pod is assigned to.', priority: 1, cell: (p) => obj(p.spec).nodeName ?? '<none>' },
];

function nodeReady(node: KObject): string {
  const ready = list(obj(node.status).conditions).find((c) => c.type === 'Ready');
  let text = ready?.status === 'True' ? 'Ready' : ready ? 'NotReady' : 'Unknown';
  if (obj(node.spec).unschedulable) text += ',SchedulingDisabled';
  return text;
}

const nodeColumns: Column[] = [
  name,
  { name: 'Status', type: 'string', description: 'The status of the node', priority: 0, cell: nodeReady },
  {
    name: 'Roles',
    type: 'string',
    description: 'The roles of the node',
    priority: 0,
    cell: (n) =>
      Object.keys(n.metadata.labels ?? {})
        .filter((k) => k.startsWith('node-role.kubernetes.io/'))
        .map((k) => k.slice('node-role.kubernetes.io/'.length))
        .join(',') || '<none>',
  },
  age,
  { name: 'Version', type: 'string', description: 'Kubelet Version', priority: 0, cell: (n) => obj(obj(n.status).nodeInfo).kubeletVersion ?? '' },
  // The wide columns of kube-apiserver's node table (pkg/printers/internalversion printNode).
  { name: 'Internal-IP', type: 'string', description: 'List of internal IPs in the node', priority: 1, cell: (n) => nodeAddress(n, 'InternalIP') },
  { name: 'External-IP', type: 'string', description: 'List of external IPs in the node', priority: 1, cell: (n) => nodeAddress(n, 'ExternalIP') },
  { name: 'OS-Image', type: 'string', description: 'OS image reported by the node', priority: 1, cell: (n) => obj(obj(n.status).nodeInfo).osImage ?? '<unknown>' },
  { name: 'Kernel-Version', type: 'string', description: 'Kernel version reported by the node', priority: 1, cell: (n) => obj(obj(n.status).nodeInfo).kernelVersion ?? '<unknown>' },
  { name: 'Container-Runtime', type: 'string', description: 'Container runtime reported by the node', priority: 1, cell: (n) => obj(obj(n.status).nodeInfo).containerRuntimeVersion ?? '<unknown>' },
];

function nodeAddress(node: KObject, type: string): string {
  return list(obj(node.status).addresses).filter((a) => a.type === type).map((a) => String(a.address)).join(',') || '<none>';
}

const serviceColumns: Column[] = [
  name,
  { name: 'Type', type: 'string', description: 'The type of the service.', priority: 0, cell: (s) => obj(s.spec).type },
  { name: 'Cluster-IP', type: 'string', description: 'The cluster IP of the service.', priority: 0, cell: (s) => obj(s.spec).clusterIP ?? '<none>' },
  {
    name: 'External-IP',
    type: 'string',
    description: 'The external IP of the service.',
    priority: 0,
    cell: (s) => (Array.isArray(obj(s.spec).externalIPs) ? (obj(s.spec).externalIPs as string[]).join(',') : '<none>'),
  },
  {
    name: 'Port(s)',
    type: 'string',
    description: 'The ports of the service.',
    priority: 0,
    cell: (s) =>
      list(obj(s.spec).ports)
        .map((p) => `${String(p.port)}${p.nodePort ? `:${String(p.nodePort)}` : ''}/${String(p.protocol ?? 'TCP')}`)
        .join(',') || '<none>',
  },
  age,
];

const namespaceColumns: Column[] = [name, { name: 'Status', type: 'string', description: 'The status of the namespace', priority: 0, cell: (n) => obj(n.status).phase ?? '' }, age];

const endpointsColumns: Column[] = [
  name,
  {
    name: 'Endpoints',
    type: 'string',
    description: 'Endpoints',
    priority: 0,
    cell: (e) => {
      const pairs = list(e.subsets).flatMap((s) => list(s.addresses).flatMap((a) => list(s.ports).map((p) => `${String(a.ip)}:${String(p.port)}`)));
      if (pairs.length === 0) return '<none>';
      return pairs.length > 3 ? `${pairs.slice(0, 3).join(',')} + ${pairs.length - 3} more...` : pairs.join(',');
    },
  },
  age,
];

const count = (value: unknown) => (isRecord(value) ? Object.keys(value).length : 0);

const eventColumns: Column[] = [
  { name: 'Last Seen', type: 'string', description: 'Time since the last occurrence', priority: 0, cell: (e, now) => shortAge((e.lastTimestamp ?? e.eventTime ?? e.metadata.creationTimestamp) as string | undefined, now) },
  { name: 'Type', type: 'string', description: 'Type of this event', priority: 0, cell: (e) => e.type ?? '' },
  { name: 'Reason', type: 'string', description: 'Why the event happened', priority: 0, cell: (e) => e.reason ?? '' },
  {
    name: 'Object',
    type: 'string',
    description: 'The object this event is about',
    priority: 0,
    cell: (e) => `${String(obj(e.involvedObject).kind ?? '').toLowerCase()}/${String(obj(e.involvedObject).name ?? '')}`,
  },
  { name: 'Message', type: 'string', description: 'A human-readable description', priority: 0, cell: (e) => e.message ?? '' },
];

const sliceColumns: Column[] = [
  name,
  { name: 'AddressType', type: 'string', description: 'Type of address', priority: 0, cell: (s) => s.addressType ?? '' },
  { name: 'Ports', type: 'string', description: 'Ports', priority: 0, cell: (s) => list(s.ports).map((p) => String(p.port)).join(',') || '<unset>' },
  {
    name: 'Endpoints',
    type: 'string',
    description: 'Addresses',
    priority: 0,
    cell: (s) => {
      const addresses = list(s.endpoints).flatMap((e) => (Array.isArray(e.addresses) ? (e.addresses as string[]) : []));
      if (addresses.length === 0) return '<unset>';
      return addresses.length > 3 ? `${addresses.slice(0, 3).join(',')} + ${addresses.length - 3} more...` : addresses.join(',');
    },
  },
  age,
];

const byKind: Record<string, Column[]> = {
  Pod: podColumns,
  Node: nodeColumns,
  Service: serviceColumns,
  Namespace: namespaceColumns,
  Endpoints: endpointsColumns,
  Event: eventColumns,
  EndpointSlice: sliceColumns,
  ConfigMap: [name, { name: 'Data', type: 'integer', description: 'Number of keys', priority: 0, cell: (c) => count(c.data) + count(c.binaryData) }, age],
  Secret: [
    name,
    { name: 'Type', type: 'string', description: 'Secret type', priority: 0, cell: (c) => c.type ?? '' },
    { name: 'Data', type: 'integer', description: 'Number of keys', priority: 0, cell: (c) => count(c.data) },
    age,
  ],
  CertificateSigningRequest: [
    name,
    age,
    { name: 'SignerName', type: 'string', description: 'spec.signerName', priority: 0, cell: csrCells.signerName },
    { name: 'Requestor', type: 'string', description: 'spec.username', priority: 0, cell: csrCells.requestor },
    { name: 'RequestedDuration', type: 'string', description: 'spec.expirationSeconds', priority: 0, cell: csrCells.requestedDuration },
    { name: 'Condition', type: 'string', description: 'status.conditions', priority: 0, cell: csrConditionText },
  ],
  Lease: [name, { name: 'Holder', type: 'string', description: 'holderIdentity', priority: 0, cell: (l) => obj(l.spec).holderIdentity ?? '' }, age],
  ...workloadColumns(name, age),
};

export type IncludeObject = 'None' | 'Metadata' | 'Object';

export function toTable(kind: string, items: KObject[], resourceVersion: string, include: IncludeObject, now = new Date(), listMeta: Record<string, unknown> = {}): object {
  const columns = byKind[kind] ?? [name, age];
  return {
    kind: 'Table',
    apiVersion: 'meta.k8s.io/v1',
    metadata: { ...listMeta, resourceVersion },
    columnDefinitions: columns.map(({ cell: _cell, ...definition }) => ({ format: '', ...definition })),
    rows: items.map((item) => ({
      cells: columns.map((column) => column.cell(item, now) ?? ''),
      ...(include === 'None'
        ? {}
        : { object: include === 'Object' ? item : { kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: item.metadata } }),
    })),
  };
}

/** Whether an Accept header asks for a meta.k8s.io Table. */
export function wantsTable(accept: string | undefined): boolean {
  if (!accept) return false;
  return accept.split(',').some((part) => {
    const params = part.split(';').map((p) => p.trim());
    return params.includes('as=Table') && params.includes('g=meta.k8s.io');
  });
}
