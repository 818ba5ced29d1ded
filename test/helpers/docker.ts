/** A Docker Engine for tests: the one on /var/run/docker.sock, started when none answers. */
import { fileURLToPath } from 'node:url';
import Docker from 'dockerode';
import { run } from '../../lib/exec.js';
import { removePodCgroup } from '../../agent/cgroups/cgroups.js';

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
 * --iptables=false --ip-masq=false --ip-forward=false (scripts/start-dockerd.sh) when none
 * answers and we are root.
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

/**
 * Removes the pods an agent left running (agents leave their pods on purpose, as the kubelet
 * does): every container carrying the label, then the pods' cgroups in each QoS tier.
 */
export async function removeAgentPods(docker: Docker, label: string): Promise<void> {
  const containers = await docker.listContainers({ all: true, filters: { label: [label] } });
  const uids = new Set(containers.map((c) => c.Labels['io.kubernetes.pod.uid']).filter((uid): uid is string => Boolean(uid)));
  await removeLabelledContainers(docker, label);
  for (const uid of uids) {
    for (const tier of ['', 'burstable/', 'besteffort/']) await removePodCgroup(`/kubepods/${tier}pod${uid}`).catch(() => undefined);
  }
}
