/**
 * The tcpSocket prober (kubelet pkg/probe/tcp): success when a TCP connection to host:port is
 * established within the timeout; the connection is closed at once.
 * https://kubernetes.io/docs/tasks/configure-pod-container/configure-liveness-readiness-startup-probes/#define-a-tcp-liveness-probe
 */
import net from 'node:net';
import type { ProbeOutcome } from './types.js';

export function probeTcp(host: string, port: number, timeoutMs: number): Promise<ProbeOutcome> {
  return new Promise<ProbeOutcome>((resolve) => {
    const socket = net.connect({ host, port });
    const timer = setTimeout(() => done({ result: 'failure', output: `dial tcp ${host}:${port}: i/o timeout` }), Math.max(1, timeoutMs));
    function done(outcome: ProbeOutcome): void {
      clearTimeout(timer);
      socket.removeAllListeners('connect');
      socket.on('error', () => undefined);
      socket.destroy();
      resolve(outcome);
    }
    socket.once('connect', () => done({ result: 'success', output: '' }));
    socket.once('error', (error: Error) => done({ result: 'failure', output: `dial tcp ${host}:${port}: ${error.message}` }));
  });
}
