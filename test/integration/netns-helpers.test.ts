import { afterAll, describe, expect, it } from 'vitest';
import { run } from '../../lib/exec.js';
import { TestNetwork } from '../helpers/netns.js';
import { prerequisites } from '../helpers/prereq.js';

const env = await prerequisites('root', 'command:ip', 'command:ping');

async function rootLinks(): Promise<string> {
  const { stdout } = await run(['ip', '-o', 'link', 'show']);
  return stdout.split('\n').map((line) => line.split(':')[1]?.trim()).sort().join(',');
}

async function rootRoutes(): Promise<string> {
  return (await run(['ip', 'route', 'show', 'table', 'all'])).stdout;
}

describe.skipIf(env.skip)('netns helpers on the real kernel', () => {
  const network = new TestNetwork();
  afterAll(() => network.cleanup());

  it('builds two nodes and a pod, passes traffic inside them, and removes everything', async () => {
    const linksBefore = await rootLinks();
    const routesBefore = await rootRoutes();

    const nodeA = await network.node('a');
    const nodeB = await network.node('b');
    await network.link(nodeA, nodeB, { aAddress: '192.168.77.1/24', bAddress: '192.168.77.2/24' });
    const pod = await network.pod(nodeA, 'pod', { address: '10.244.9.2/24', nodeAddress: '10.244.9.1/24' });
    await pod.addRoute('10.244.0.0/16', { gateway: '10.244.9.1' });

    // Traffic stays inside the test namespaces.
    await nodeA.exec(['ping', '-c', '1', '-W', '2', '192.168.77.2'], { timeoutMs: 5_000 });
    await pod.exec(['ping', '-c', '1', '-W', '2', '10.244.9.1'], { timeoutMs: 5_000 });
    for (const netns of [nodeA, nodeB, pod]) expect(await netns.hasNoDefaultRoute()).toBe(true);

    // The root namespace did not change.
    expect(await rootLinks()).toBe(linksBefore);
    expect(await rootRoutes()).toBe(routesBefore);

    await network.cleanup();
    const { stdout } = await run(['ip', 'netns', 'list']);
    expect(stdout).not.toContain(network.id);
  });
});
