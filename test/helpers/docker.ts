/** A Docker Engine for tests: the one on /var/run/docker.sock, started when none answers. */
import { fileURLToPath } from 'node:url';
import Docker from 'dockerode';
import { run } from '../../lib/exec.js';

export const dockerSocket = process.env.DOCKER_SOCK ?? '/var/run/docker.sock';

export async function dockerAnswers(socketPath = dockerSocket): Promise<boolean> {
  try {
    await new Docker({ socketPath }).ping();
    return true;
  } catch {
    return false;
  }
}

/**
 * Returns a client for the test Docker Engine, starting dockerd with --bridge=none
 * --iptables=false --ip-masq=false (scripts/start-dockerd.sh) when none answers and we are root.
 */
export async function testDocker(): Promise<Docker> {
  if (!(await dockerAnswers()) && process.getuid?.() === 0) {
    const script = fileURLToPath(new URL('../../scripts/start-dockerd.sh', import.meta.url));
    await run(['bash', script], { timeoutMs: 60_000 });
  }
  return new Docker({ socketPath: dockerSocket });
}

/** Removes every container carrying the label (force), e.g. a test's unique run label. */
export async function removeLabelledContainers(docker: Docker, label: string): Promise<void> {
  const containers = await docker.listContainers({ all: true, filters: { label: [label] } });
  await Promise.all(
    containers.map((info) =>
      docker
        .getContainer(info.Id)
        .remove({ force: true, v: true })
        .catch((error: { statusCode?: number }) => {
          if (error.statusCode !== 404 && error.statusCode !== 409) throw error;
        }),
    ),
  );
}
