/**
 * ExecSync and exec/attach streams over Docker's exec API.
 *
 * Docker has no "kill exec" call, so an ExecSync timeout kills the exec'd process by its host
 * PID (exec inspect reports it; the runtime runs on the node, beside dockerd) and answers
 * DeadlineExceeded, which the kubelet's exec prober reports as a probe timeout
 * (pkg/probe/exec, KEP-1972 "exec probe timeouts are enforced").
 */
import { PassThrough, type Duplex } from 'node:stream';
import type Docker from 'dockerode';
import { CriError, type AttachRequest, type ExecRequest, type ExecSyncResponse, type StreamSession } from '../runtime.js';
import type { RuntimeContext } from './context.js';
import { criError, dockerStatus, isNotFound } from './errors.js';
import { errnoCode } from '../../lib/errors.js';

/** Output kept per stream by execSync (the rest is dropped). */
const maxExecOutputBytes = 16 * 1024 * 1024;

function collect(stream: PassThrough): () => string {
  const chunks: Buffer[] = [];
  let size = 0;
  stream.on('data', (chunk: Buffer) => {
    if (size >= maxExecOutputBytes) return;
    chunks.push(chunk.subarray(0, maxExecOutputBytes - size));
    size += chunk.length;
  });
  return () => Buffer.concat(chunks).toString('utf8');
}

async function exitCodeOf(exec: Docker.Exec): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const info = await exec.inspect();
    if (!info.Running && info.ExitCode !== null) return info.ExitCode;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return (await exec.inspect()).ExitCode ?? -1;
}

function killExec(exec: Docker.Exec): Promise<void> {
  return exec.inspect().then(
    (info) => {
      if (info.Running && info.Pid > 0) {
        try {
          process.kill(info.Pid, 'SIGKILL');
        } catch (error) {
          // ESRCH: exited meanwhile, which is what the kill wanted.
          if (errnoCode(error) !== 'ESRCH') throw error;
        }
      }
    },
    (error: unknown) => {
      // The exec (or its container) is gone: nothing left to kill.
      if (!isNotFound(error)) throw error;
    },
  );
}

function execError(containerId: string, error: unknown): CriError {
  const notRunning = dockerStatus(error) === 409;
  return criError(`failed to exec in container ${containerId.slice(0, 12)}`, error, { containerId, ...(notRunning ? { code: 'FailedPrecondition' as const } : {}) });
}

export async function execSync(context: RuntimeContext, containerId: string, cmd: string[], timeoutSeconds: number): Promise<ExecSyncResponse> {
  if (cmd.length === 0) throw new CriError('execSync: empty command', { code: 'InvalidArgument', containerId });
  let exec: Docker.Exec;
  let stream: Duplex;
  try {
    exec = await context.docker.getContainer(containerId).exec({ Cmd: cmd, AttachStdout: true, AttachStderr: true });
    stream = (await exec.start({ hijack: true, stdin: false })) as Duplex;
  } catch (error) {
    throw execError(containerId, error);
  }
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const out = collect(stdout);
  const err = collect(stderr);
  context.docker.modem.demuxStream(stream, stdout, stderr);
  let timer: NodeJS.Timeout | undefined;
  const ended = new Promise<'done'>((resolve, reject) => {
    stream.on('end', () => resolve('done'));
    stream.on('close', () => resolve('done'));
    stream.on('error', reject);
  });
  const timedOut = new Promise<'timeout'>((resolve) => {
    if (timeoutSeconds > 0) timer = setTimeout(() => resolve('timeout'), timeoutSeconds * 1000);
  });
  try {
    const outcome = await Promise.race([ended, timedOut]);
    if (outcome === 'timeout') {
      await killExec(exec);
      stream.destroy();
      throw new CriError(`command ${JSON.stringify(cmd)} in container ${containerId.slice(0, 12)} timed out after ${timeoutSeconds}s`, { code: 'DeadlineExceeded', containerId });
    }
    return { stdout: out(), stderr: err(), exitCode: await exitCodeOf(exec) };
  } catch (error) {
    if (error instanceof CriError) throw error;
    throw execError(containerId, error);
  } finally {
    clearTimeout(timer);
  }
}

function session(context: RuntimeContext, stream: Duplex, tty: boolean, wantStdin: boolean, finish: () => Promise<number>, resize: (w: number, h: number) => Promise<void>): StreamSession {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  if (tty) stream.pipe(stdout);
  else context.docker.modem.demuxStream(stream, stdout, stderr);
  const done = new Promise<{ exitCode: number }>((resolve) => {
    let settled = false;
    const end = (): void => {
      if (settled) return;
      settled = true;
      stdout.end();
      stderr.end();
      finish().then(
        (exitCode) => resolve({ exitCode }),
        () => resolve({ exitCode: -1 }),
      );
    };
    stream.on('end', end);
    stream.on('close', end);
    stream.on('error', end);
  });
  return {
    stdin: wantStdin ? stream : undefined,
    stdout,
    stderr: tty ? undefined : stderr,
    resize,
    wait: () => done,
    close: () => stream.destroy(),
  };
}

export async function execStream(context: RuntimeContext, request: ExecRequest): Promise<StreamSession> {
  const { containerId } = request;
  try {
    const exec = await context.docker.getContainer(containerId).exec({
      Cmd: request.cmd,
      AttachStdin: request.stdin === true,
      AttachStdout: request.stdout !== false,
      AttachStderr: request.stderr !== false,
      Tty: request.tty === true,
    });
    const stream = (await exec.start({ hijack: true, stdin: request.stdin === true, Tty: request.tty === true })) as Duplex;
    return session(context, stream, request.tty === true, request.stdin === true, () => exitCodeOf(exec), async (w, h) => {
      await exec.resize({ w, h });
    });
  } catch (error) {
    throw execError(containerId, error);
  }
}

export async function attachStream(context: RuntimeContext, request: AttachRequest): Promise<StreamSession> {
  const { containerId } = request;
  const container = context.docker.getContainer(containerId);
  try {
    const info = await container.inspect();
    if (!info.State.Running) throw new CriError(`container ${containerId.slice(0, 12)} is not running`, { code: 'FailedPrecondition', containerId });
    const stream = (await container.attach({ stream: true, hijack: true, stdin: request.stdin === true, stdout: request.stdout !== false, stderr: request.stderr !== false })) as Duplex;
    const finish = async (): Promise<number> => {
      const after = await container.inspect();
      return after.State.Running ? 0 : after.State.ExitCode;
    };
    return session(context, stream, info.Config.Tty, request.stdin === true, finish, async (w, h) => {
      await container.resize({ w, h });
    });
  } catch (error) {
    if (error instanceof CriError) throw error;
    throw execError(containerId, error);
  }
}
