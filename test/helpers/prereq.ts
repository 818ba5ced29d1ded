/**
 * Test prerequisites. Outside CI a test whose prerequisite is missing is skipped with a reason;
 * with CI=true nothing may be skipped, so a missing prerequisite fails the file with a message
 * that says what is missing (docs/architecture.md, "Testing").
 */
import { commandOnPath } from '../../lib/exec.js';
import { dockerAnswers } from './docker.js';

export type Need = 'root' | 'docker' | `command:${string}`;

export const onPath = (command: string): boolean => commandOnPath(command);

async function missing(need: Need): Promise<string | undefined> {
  if (need === 'root') return process.getuid?.() === 0 ? undefined : 'needs root';
  if (need === 'docker') return (await dockerAnswers()) ? undefined : 'needs a Docker Engine on /var/run/docker.sock (scripts/start-dockerd.sh)';
  const command = need.slice('command:'.length);
  return onPath(command) ? undefined : `needs "${command}" on the PATH (scripts/install-prereqs.sh)`;
}

export interface Prerequisites {
  skip: boolean;
  reason: string;
}

/** Checks prerequisites for a test file: skip outside CI, throw under CI=true. */
export async function prerequisites(...needs: Need[]): Promise<Prerequisites> {
  const reasons = (await Promise.all(needs.map(missing))).filter((reason): reason is string => reason !== undefined);
  if (reasons.length === 0) return { skip: false, reason: '' };
  const reason = reasons.join('; ');
  if (process.env.CI === 'true') throw new Error(`missing test prerequisite under CI=true: ${reason}`);
  console.warn(`skipping: ${reason}`);
  return { skip: true, reason };
}
