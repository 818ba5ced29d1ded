/** Reading subcommand options that the CLI hands over (strings, booleans, lists). */
import { ConfigError } from './errors.js';
import { readKubeconfig } from './config/kubeconfig.js';

export type CommandOptions = Record<string, string | boolean | string[] | undefined>;

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
