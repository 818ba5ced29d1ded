import { pino, type Logger, type LevelWithSilent } from 'pino';
import { ConfigError } from './errors.js';

export type { Logger } from 'pino';

export const logLevels: readonly LevelWithSilent[] = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];

/** Picks the level: the flag, else KNODE_LOG_LEVEL, else info. Throws on an unknown level. */
export function resolveLogLevel(flag?: string, env: NodeJS.ProcessEnv = process.env): LevelWithSilent {
  const level = flag ?? env.KNODE_LOG_LEVEL ?? 'info';
  if (!logLevels.includes(level as LevelWithSilent)) {
    throw new Error(`unknown log level "${level}" (one of ${logLevels.join(', ')})`);
  }
  return level as LevelWithSilent;
}

/**
 * JSON logs on stderr (stdout stays free for what a command prints for people or scripts),
 * one child logger per component.
 */
export function createLogger(component: string, level?: string, destination: number | NodeJS.WritableStream = 2): Logger {
  const stream = typeof destination === 'number' ? pino.destination({ fd: destination, sync: true }) : destination;
  return pino({ level: resolveLogLevel(level), base: { component }, timestamp: pino.stdTimeFunctions.isoTime }, stream);
}

/**
 * klog verbosity (the kubelet's and kube-proxy's --v) → pino level. klog: 0–2 are the normal
 * operating levels (2 is the recommended default), 3–4 extended/debug, 5+ trace-level detail
 * (https://github.com/kubernetes/community/blob/master/contributors/devel/sig-instrumentation/logging.md).
 */
export function klogLevel(text: string): 'info' | 'debug' | 'trace' {
  if (!/^\d{1,3}$/.test(text)) throw new ConfigError(`flag --v: "${text}" is not a verbosity number (0-10)`);
  const v = Number(text);
  return v <= 2 ? 'info' : v <= 4 ? 'debug' : 'trace';
}
