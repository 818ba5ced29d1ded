import { describe, expect, it } from 'vitest';
import { claimObjects } from '../../controlplane/controllers/controller-ref.js';
import type { KObject } from '../../controlplane/storage/types.js';

const owner: KObject = { metadata: { name: 'rs', namespace: 'n', uid: 'u1' }, spec: { selector: { matchLabels: { app: 'a' } } } };
const pod = (name: string, labels: Record<string, string>, ownerUid?: string, extra: Partial<KObject['metadata']> = {}): KObject => ({
  metadata: { name, namespace: 'n', labels, ...(ownerUid ? { ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'x', uid: ownerUid, controller: true }] } : {}), ...extra },
});
const names = (list: KObject[]) => list.map((o) => o.metadata.name);

describe('ControllerRefManager claim', () => {
  it('keeps, adopts and releases as ClaimObject does', () => {
    const claim = claimObjects(owner, [
      pod('mine', { app: 'a' }, 'u1'),
      pod('orphan', { app: 'a' }),
      pod('relabelled', { app: 'b' }, 'u1'),
      pod('someone-elses', { app: 'a' }, 'u2'),
      pod('unselected-orphan', { app: 'b' }),
      pod('deleting-orphan', { app: 'a' }, undefined, { deletionTimestamp: '2024-01-01T00:00:00Z' }),
      pod('deleting-relabelled', { app: 'b' }, 'u1', { deletionTimestamp: '2024-01-01T00:00:00Z' }),
      { ...pod('other-namespace', { app: 'a' }), metadata: { name: 'other-namespace', namespace: 'm', labels: { app: 'a' } } },
    ]);
    expect(names(claim.owned)).toEqual(['mine']);
    expect(names(claim.adopt)).toEqual(['orphan']);
    expect(names(claim.release)).toEqual(['relabelled']);
  });

  it('adopts and releases nothing while the controller is being deleted', () => {
    const deleting = { ...owner, metadata: { ...owner.metadata, deletionTimestamp: '2024-01-01T00:00:00Z' } };
    const claim = claimObjects(deleting, [pod('mine', { app: 'a' }, 'u1'), pod('orphan', { app: 'a' }), pod('relabelled', { app: 'b' }, 'u1')]);
    expect(names(claim.owned)).toEqual(['mine']);
    expect(claim.adopt).toEqual([]);
    expect(claim.release).toEqual([]);
  });
});
