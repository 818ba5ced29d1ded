/**
 * Readiness for systemd `Type=notify` units (sd_notify(3)): a daemon calls notifyReady() once it
 * actually serves, and systemd moves its unit from "activating" to "active" only then, so units
 * ordered After= it start when it is usable, not when its process merely exists.
 *
 * Node cannot send a datagram on a unix socket (dgram has no AF_UNIX) and a native addon is not
 * worth one message, so the message is sent by `systemd-notify --ready`, a child process. systemd
 * accepts it only with `NotifyAccess=all` in the unit (the sender is not the main PID), and
 * systemd-notify (≥ v246) waits until systemd has processed it (sd_notify_barrier), so the
 * message is not lost to the sender exiting first. Outside systemd (NOTIFY_SOCKET unset) this
 * does nothing.
 */
import { run } from './exec.js';
import type { Logger } from './log.js';

let notified = false;

/**
 * Tells systemd that the daemon is ready (READY=1, with STATUS=what). Never throws: a failure
 * is logged, and systemd's start timeout then restarts the unit. Only the first call sends.
 */
export async function notifyReady(log: Logger, status?: string, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const socket = env.NOTIFY_SOCKET;
  if (!socket || notified) return;
  notified = true;
  const command = ['systemd-notify', '--ready', ...(status ? [`--status=${status.slice(0, 200)}`] : [])];
  try {
    await run(command, { env, timeoutMs: 30_000 });
    log.debug({ socket }, 'told systemd the daemon is ready');
  } catch (error) {
    log.warn({ err: error, socket }, 'could not tell systemd the daemon is ready (systemd-notify)');
  }
}
