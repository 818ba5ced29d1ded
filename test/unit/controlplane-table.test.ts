import { describe, expect, it } from 'vitest';
import { toTable } from '../../controlplane/table.js';
import type { KObject } from '../../controlplane/storage/types.js';

interface Table {
  columnDefinitions: { name: string; priority: number }[];
  rows: { cells: unknown[] }[];
}

const node: KObject = {
  apiVersion: 'v1',
  kind: 'Node',
  metadata: { name: 'n1', creationTimestamp: '2026-11-22T00:00:00Z', labels: {} },
  status: {
    conditions: [{ type: 'Ready', status: 'True' }],
    addresses: [{ type: 'InternalIP', address: '10.0.0.5' }, { type: 'Hostname', address: 'n1' }],
    nodeInfo: { kubeletVersion: 'v1.32.0', osImage: 'Debian GNU/Linux 12', kernelVersion: '6.18.0', containerRuntimeVersion: 'docker://20.10.24' },
  },
};

describe('server-side tables', () => {
  it('gives nodes the wide columns of kube-apiserver (kubectl get nodes -o wide)', () => {
    const table = toTable('Node', [node], '1', 'None', new Date('2026-11-22T01:00:00Z')) as Table;
    const wide = table.columnDefinitions.filter((c) => c.priority === 1).map((c) => c.name);
    expect(wide).toEqual(['Internal-IP', 'External-IP', 'OS-Image', 'Kernel-Version', 'Container-Runtime']);
    expect(table.rows[0]!.cells.slice(-5)).toEqual(['10.0.0.5', '<none>', 'Debian GNU/Linux 12', '6.18.0', 'docker://20.10.24']);
  });
});
