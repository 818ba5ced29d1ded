/**
 * A real etcd cluster for tests: Debian's etcd-server started N times on loopback, each member
 * on its own free client and peer ports with its own data dir under one temp dir (removed by
 * stop()). Members can be killed with SIGKILL and restarted on the same data dir and ports,
 * which is how the tests inject a member failure.
 *
 *   const cluster = await startTestEtcdCluster(3);
 *   cluster.endpoints            // ['http://127.0.0.1:P0', …]
 *   await cluster.kill(1);       // kill -9 of member 1
 *   await cluster.restart(1);    // same data dir; resolves once it answers again
 *   await cluster.stop();
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { freeLoopbackPort as freePort } from './ports.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';

export { freePort };

interface Member {
  name: string;
  client: string;
  peer: string;
  dataDir: string;
  child?: ChildProcess;
  stderr: string;
}

export interface TestEtcdCluster {
  endpoints: string[];
  kill(index: number): Promise<void>;
  restart(index: number): Promise<void>;
  /** Resolves once the member answers a linearizable read (it has rejoined the quorum). */
  waitHealthy(index: number, timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

export async function startTestEtcdCluster(size = 3): Promise<TestEtcdCluster> {
  const dir = mkdtempSync(join(tmpdir(), 'knode-etcd-cluster-'));
  const token = `knode-${randomBytes(6).toString('hex')}`;
  const members: Member[] = [];
  for (let i = 0; i < size; i++) {
    const [clientPort, peerPort] = [await freePort(), await freePort()];
    members.push({ name: `m${i}`, client: `http://127.0.0.1:${clientPort}`, peer: `http://127.0.0.1:${peerPort}`, dataDir: join(dir, `m${i}`), stderr: '' });
  }
  const initialCluster = members.map((m) => `${m.name}=${m.peer}`).join(',');

  const launch = (member: Member): void => {
    const child = spawn(
      'etcd',
      ['--name', member.name, '--data-dir', member.dataDir, '--listen-client-urls', member.client, '--advertise-client-urls', member.client, '--listen-peer-urls', member.peer, '--initial-advertise-peer-urls', member.peer, '--initial-cluster', initialCluster, '--initial-cluster-token', token, '--initial-cluster-state', 'new', '--log-level', 'error'],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    child.stderr?.on('data', (chunk: Buffer) => (member.stderr = (member.stderr + chunk.toString()).slice(-4000)));
    member.child = child;
  };

  const waitHealthy = async (index: number, timeoutMs = 30_000): Promise<void> => {
    const member = members[index]!;
    const probe = new Etcd3({ hosts: member.client, dialTimeout: 1000, defaultCallOptions: { deadline: Date.now() + timeoutMs } });
    const deadline = Date.now() + timeoutMs;
    try {
      for (;;) {
        const child = member.child;
        if (child && (child.exitCode !== null || child.signalCode !== null)) throw new Error(`etcd member ${member.name} exited (${child.exitCode ?? child.signalCode}): ${member.stderr}`);
        try {
          await probe.get('health').options({ deadline: Date.now() + 2000 }).exec();
          return;
        } catch (error) {
          if (Date.now() > deadline) throw new Error(`etcd member ${member.name} did not answer in ${timeoutMs} ms: ${member.stderr}`, { cause: error });
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
      }
    } finally {
      probe.close();
    }
  };

  const kill = async (index: number): Promise<void> => {
    const child = members[index]!.child;
    if (!child) return;
    child.kill('SIGKILL');
    await exited(child);
    members[index]!.child = undefined;
  };

  const stop = async (): Promise<void> => {
    await Promise.all(members.map((_, i) => kill(i)));
    rmSync(dir, { recursive: true, force: true });
  };

  try {
    members.forEach(launch);
    for (let i = 0; i < size; i++) await waitHealthy(i);
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    endpoints: members.map((m) => m.client),
    kill,
    restart: async (index) => {
      if (members[index]!.child) throw new Error(`etcd member ${index} is running`);
      launch(members[index]!); // an existing data dir wins over the --initial-cluster flags
      await waitHealthy(index);
    },
    waitHealthy,
    stop,
  };
}
