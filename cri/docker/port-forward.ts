/**
 * CRI PortForward for Docker sandboxes: Docker has no port-forward API, so the connection is
 * made from inside the sandbox's network namespace by `socat`, entered with `nsenter`, exactly
 * as dockershim and cri-dockerd do (`nsenter -t <pause pid> -n socat - TCP4:localhost:<port>`,
 * cri-dockerd core/docker_streaming_others.go). localhost is the pod's own loopback, so a
 * server that listens on 127.0.0.1 inside the pod is reached too, as with any kubelet.
 *
 * Once a namespace has a ready helper (./netns-dialer.ts), the connection is opened by it instead
 * and the stream is piped to that socket directly, as containerd's CRI does: no process and no
 * pipe copies per connection. The first connection into a namespace still goes through socat.
 */
import { spawn } from 'node:child_process';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { CriError } from '../runtime.js';
import { DialError, socketErrorText, type NetnsDialer } from './netns-dialer.js';

/** Keeps this much of socat's diagnostics for the error message. */
const maxStderrBytes = 4096;

/** Forwards `stream` to localhost:`port` in the network namespace at `netnsPath` (a running sandbox's). */
export async function portForward(netnsPath: string, podSandboxId: string, port: number, stream: Duplex, dialer?: NetnsDialer): Promise<void> {
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new CriError(`invalid port ${port}`, { code: 'InvalidArgument', podSandboxId });
  let socket: Socket | undefined;
  try {
    socket = await dialer?.dial(netnsPath, port);
  } catch (error) {
    if (error instanceof DialError) throw new CriError(error.message, { podSandboxId });
    // The helper failed (not the connect): this connection goes through socat.
  }
  if (socket) return forwardSocket(socket, podSandboxId, stream);
  return forwardThroughSocat(netnsPath, podSandboxId, port, stream);
}

/** Pipes `stream` and a socket connected inside the pod until the pod's side closes or the client goes away. */
async function forwardSocket(socket: Socket, podSandboxId: string, stream: Duplex): Promise<void> {
  socket.setNoDelay(true);
  // The client's half-close becomes a FIN to the pod's server (socat does the same on stdin EOF).
  stream.pipe(socket);
  socket.pipe(stream, { end: false });
  let abandoned = false;
  const stop = () => {
    abandoned = true;
    socket.destroy();
  };
  stream.once('close', stop);
  let failure: NodeJS.ErrnoException | undefined;
  socket.on('error', (error: NodeJS.ErrnoException) => (failure ??= error));
  if (!socket.destroyed) await new Promise((resolve) => socket.once('close', resolve));
  stream.off('close', stop);
  stream.unpipe(socket);
  // A client that went away first is not an error.
  if (failure && !abandoned) throw new CriError(`forwarding: ${socketErrorText(failure)}`, { podSandboxId });
}

async function forwardThroughSocat(netnsPath: string, podSandboxId: string, port: number, stream: Duplex): Promise<void> {
  const child = spawn('nsenter', [`--net=${netnsPath}`, 'socat', '-', `TCP4:localhost:${port}`], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => {
    if (stderr.length < maxStderrBytes) stderr += chunk.toString('utf8');
  });
  // The client's half-close reaches socat as EOF on its stdin. The stream itself is not ended
  // here: the caller ends it after reporting how the forward went, as the kubelet does.
  stream.pipe(child.stdin);
  child.stdout.pipe(stream, { end: false });
  child.stdin.on('error', () => undefined); // socat exits before its input is drained
  let abandoned = false;
  const stop = () => {
    abandoned = true;
    child.kill('SIGKILL');
  };
  stream.once('close', stop);
  const exit = await new Promise<{ code: number | null; error?: Error }>((resolve) => {
    child.once('error', (error) => resolve({ code: null, error }));
    child.once('close', (code) => resolve({ code }));
  });
  stream.off('close', stop);
  stream.unpipe(child.stdin);
  if (exit.error) {
    const missing = (exit.error as NodeJS.ErrnoException).code === 'ENOENT';
    throw new CriError(missing ? 'unable to do port forwarding: nsenter not found' : `unable to do port forwarding: ${exit.error.message}`, { podSandboxId });
  }
  if (exit.code === 127) throw new CriError('unable to do port forwarding: socat not found', { podSandboxId });
  // A client that went away first (the SIGKILL above) is not an error.
  if (exit.code !== 0 && !abandoned) throw new CriError(stderr.trim().replace(/^.*?socat\[\d+\] E /gm, '') || `socat exited with ${exit.code}`, { podSandboxId });
}
