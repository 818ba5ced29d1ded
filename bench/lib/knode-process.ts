/**
 * How a benchmark starts a knode daemon so that it runs as deployed: `bin/knode`'s shebang
 * (`#!/usr/bin/env -S VAR=value … node`) sets the environment node starts with (glibc's
 * MALLOC_ARENA_MAX, read only at process start). Benchmarks run node directly when they add node
 * flags (profiles, --trace-gc), so they take that environment from the shebang itself, the one
 * place it is written.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository's bin/knode (benchmarks run from dist-bench/bench/lib/). */
export const knodeBin = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'bin', 'knode');

/** VAR=value assignments of bin/knode's `env -S` shebang. */
export function shebangEnv(bin = knodeBin): Record<string, string> {
  const first = readFileSync(bin, 'utf8').split('\n', 1)[0] ?? '';
  const match = /^#!\S*env\s+-S\s+(.*)$/.exec(first);
  const env: Record<string, string> = {};
  for (const word of match?.[1]?.split(/\s+/) ?? []) {
    const assignment = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(word);
    if (assignment) env[assignment[1]!] = assignment[2]!;
  }
  return env;
}

/** node + flags + bin/knode + args, with bin/knode's environment over `env`. */
export function knodeCommand(args: readonly string[], nodeFlags: readonly string[] = [], env: NodeJS.ProcessEnv = process.env): { command: string; args: string[]; env: NodeJS.ProcessEnv } {
  return { command: process.execPath, args: [...nodeFlags, knodeBin, ...args], env: { ...env, ...shebangEnv() } };
}
