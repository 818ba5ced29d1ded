/** Reading subcommand options that the CLI hands over (strings, booleans, lists). */
import { ConfigError } from './errors.js';
import { readKubeconfig } from './config/kubeconfig.js';
import type { Logger } from './log.js';

export type CommandOptions = Record<string, string | boolean | string[] | undefined>;

/** What a long-running subcommand returns: the CLI calls stop() on SIGTERM/SIGINT. */
export interface Stoppable {
  stop(): Promise<void>;
  /** Resolves when the component ends on its own (fatal error or done). */
  done?: Promise<void>;
}

/**
 * A subcommand's entry point. It lives here, not in bin/cli.ts, so that command modules never
 * import the CLI that loads them (no import circle).
 */
export type Runner = (options: CommandOptions, log: Logger) => Promise<Stoppable | void>;

export function optionalString(options: CommandOptions, name: string): string | undefined {
  const value = options[name];
  return typeof value === 'string' ? value : undefined;
}

export function requiredString(options: CommandOptions, name: string, flag: string): string {
  const value = optionalString(options, name);
  if (value === undefined || value === '') throw new ConfigError(`flag ${flag} is required`);
  return value;
}

/** The --kubeconfig flag: required, and validated before anything else starts. */
export function requireKubeconfig(options: CommandOptions): string {
  const file = requiredString(options, 'kubeconfig', '--kubeconfig');
  readKubeconfig(file);
  return file;
}
