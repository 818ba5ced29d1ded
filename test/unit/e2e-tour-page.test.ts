/**
 * The reading of docs/tour.md by test/e2e/readme-tour.test.ts: which lines become commands, how
 * `# expect:` attaches, and how expectations match (word boundaries at alphanumeric ends).
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { outputMatches, tourSteps } from '../e2e/helpers-tour.js';

const page = [
  '# Title',
  '',
  '    bash scripts/up.sh',
  '',
  '```sh',
  'export KUBECONFIG=/var/lib/knode/a.kubeconfig',
  '# a comment line',
  '',
  'kubectl get nodes     # expect: Ready',
  'curl -s http://$(kubectl get svc web -o jsonpath=\'{.spec.clusterIP}\')/ \\',
  '  -m 5   # expect: hello from pod web',
  '# expect: second thing',
  '```',
  '',
  '```console',
  '$ not run',
  '```',
  '```',
  'not run either',
  '```',
  '```sh',
  'knode down --purge   # expect: purged:',
  '```',
].join('\n');

describe('tourSteps', () => {
  it('takes the commands of sh blocks only, in order, with their line and expectations', () => {
    expect(tourSteps(page)).toEqual([
      { command: 'export KUBECONFIG=/var/lib/knode/a.kubeconfig', expect: [], line: 6 },
      { command: 'kubectl get nodes', expect: ['Ready'], line: 9 },
      { command: "curl -s http://$(kubectl get svc web -o jsonpath='{.spec.clusterIP}')/ -m 5", expect: ['hello from pod web', 'second thing'], line: 10 },
      { command: 'knode down --purge', expect: ['purged:'], line: 22 },
    ]);
  });

  it.each([
    ['an unclosed block', '```sh\nls\n'],
    ['an expectation before any command', '```sh\n# expect: x\n```\n'],
    ['a continuation at the end of a block', '```sh\nls \\\n```\n'],
  ])('rejects %s', (_name, text) => {
    expect(() => tourSteps(text)).toThrow();
  });

  it('reads the real page: commands, expectations, and the purge at the end', () => {
    const steps = tourSteps(readFileSync(new URL('../../docs/tour.md', import.meta.url), 'utf8'));
    expect(steps.length).toBeGreaterThanOrEqual(10);
    expect(steps[0]!.command).toMatch(/^export KUBECONFIG=\/var\/lib\/knode\//);
    expect(steps.at(-1)!.command).toBe('knode down --purge');
    expect(steps.every((step) => !step.command.includes('# expect'))).toBe(true);
  });
});

describe('outputMatches', () => {
  it.each([
    ['knt-1   Ready    <none>', 'Ready', true],
    ['knt-1   NotReady <none>', 'Ready', false],
    ['Readyish', 'Ready', false],
    ['pod "web" deleted\nservice "web" deleted', 'service "web" deleted', true],
    ['PodCIDR:   10.244.0.0/24', '10.244.', true],
    ['PodCIDR:   110.244.0.0/24', '10.244.', false],
    ['web    10.244.0.3:8080   2s', ':8080', true],
    ['purged: 2 container(s)', 'purged:', true],
    ['a.b', 'a.b', true],
    ['axb', 'a.b', false],
  ])('%j contains %j: %s', (output, expected, result) => {
    expect(outputMatches(output, expected)).toBe(result);
  });
});
