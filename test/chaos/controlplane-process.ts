/**
 * `knode controlplane --store file` as a real process on a fixed loopback port, so that it can
 * be killed and started again on the same data dir and address (clients and bridges into test
 * netns keep their URL). Used by the kill -9 and API outage chaos tests.
 */
import { join } from 'node:path';
import { KnodeProcess } from '../e2e/helpers-kubectl.js';
import { freePort } from '../helpers/etcd-cluster.js';
import { apiRequest } from '../helpers/raw-watch.js';
import { waitFor } from '../helpers/wait.js';

export interface FileControlPlane {
  readonly port: number;
  readonly server: string;
  readonly kubeconfigPath: string;
  readonly process: KnodeProcess;
  /** kill -9 */
  kill(): Promise<void>;
  /** Starts it again on the same data dir and port; resolves when it answers. */
  start(): Promise<void>;
  stop(): Promise<void>;
}

export async function startFileControlPlane(dataDir: string, extraArgs: string[] = []): Promise<FileControlPlane> {
  const port = await freePort();
  const server = `http://127.0.0.1:${port}`;
  let proc: KnodeProcess | undefined;
  const start = async () => {
    const launched = new KnodeProcess(['controlplane', '--listen', `127.0.0.1:${port}`, '--store', 'file', '--data-dir', dataDir, ...extraArgs], { ...process.env, KNODE_LOG_LEVEL: 'warn' });
    proc = launched;
    await waitFor('the control plane to answer', async () => {
      if (!launched.running) throw new Error(`knode controlplane exited: ${launched.logs()}`);
      return (await apiRequest(server, 'GET', '/api/v1/namespaces/default', undefined, 2_000)).status === 200;
    }, 60_000, 50);
  };
  const kill = async () => {
    const child = proc?.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGKILL');
    await exited;
  };
  await start();
  return {
    port,
    server,
    kubeconfigPath: join(dataDir, 'admin.kubeconfig'),
    get process() {
      return proc!;
    },
    kill,
    start,
    stop: async () => proc?.stop(),
  };
}
