/** The storage backends the conformance suite runs against. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryStorage } from '../../controlplane/storage/memory.js';
import type { Storage } from '../../controlplane/storage/types.js';
import { EtcdStorage } from '../../controlplane/storage/etcd.js';
import { onPath } from '../helpers/prereq.js';
import { startTestEtcd, type TestEtcd } from './controlplane-etcd.js';

export interface Backend {
  name: string;
  durable: boolean;
  open(): Promise<Storage>;
  reopen(): Promise<Storage>;
  cleanup(): Promise<void>;
}

export async function storageBackends(): Promise<Backend[]> {
  const memory: Backend = {
    name: 'memory',
    durable: false,
    async open() {
      const s = new MemoryStorage();
      await s.start();
      return s;
    },
    reopen: () => Promise.reject(new Error('memory storage is not durable')),
    cleanup: async () => undefined,
  };
  const dir = mkdtempSync(join(tmpdir(), 'knode-cp-file-'));
  const file: Backend = {
    name: 'file',
    durable: true,
    async open() {
      const s = new MemoryStorage({ dir });
      await s.start();
      return s;
    },
    async reopen() {
      return this.open();
    },
    cleanup: async () => rmSync(dir, { recursive: true, force: true }),
  };
  const backends = [memory, file];
  if (onPath('etcd')) {
    let etcd: TestEtcd | undefined;
    const prefix = `/knode-test-${process.pid}`;
    backends.push({
      name: 'etcd',
      durable: true,
      async open() {
        etcd ??= await startTestEtcd();
        const s = new EtcdStorage({ endpoints: [etcd.endpoint], prefix });
        await s.start();
        return s;
      },
      async reopen() {
        return this.open();
      },
      cleanup: async () => etcd?.stop(),
    });
  } else if (process.env.CI === 'true') throw new Error('missing test prerequisite under CI=true: needs "etcd" on the PATH (scripts/install-prereqs.sh)');
  return backends;
}
