/**
 * The tour of docs/tour.md (what a new user does once `knode up` runs), executed as written so
 * that it cannot rot: every command of its ```sh blocks runs in order, each must exit 0, and each
 * `# expect: TEXT` must be in its output (conventions: helpers-tour.ts). Editing the page
 * changes what this test runs.
 *
 * Where the page and this test differ, and why:
 * - the commands run in a test node netns (network safety rule, docs/architecture.md, "Testing"), joined by
 *   a veth to an "underlay" netns, with no default route; `knode up` is started the way
 *   up.test.ts starts it (helpers-up.ts), like `bash scripts/up.sh` in the page's first terminal;
 * - `/var/lib/knode` in a command becomes this test's data dir, and `knode up|down` get
 *   `--data-dir` (a shell function `knode` runs the built bin/knode);
 * - a real node reaches ClusterIPs through its default route (the packet is routed, then DNATed
 *   in OUTPUT); the test netns has none, so the service range gets a route via the underlay;
 * - each command runs in its own `bash -o pipefail` in the repository root, and the environment
 *   it leaves (`export KUBECONFIG=...`, `cd`) carries over to the next, as in one terminal
 *   (exported variables only: the page exports what later commands use).
 * The commands share the machine's filesystem and Docker Engine with everything else: a page
 * command must only touch /var/lib/knode (rewritten here), the repository and the cluster.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { removeAgentPods, testDocker } from '../helpers/docker.js';
import { TestNetwork, type Netns } from '../helpers/netns.js';
import { prerequisites } from '../helpers/prereq.js';
import { outputMatches, tourSteps, type TourStep } from './helpers-tour.js';
import { killUpLeftovers, knodeBin, startKnodeUp, stopKnodeUp, waitKnodeUp, type RunningUp } from './helpers-up.js';

const env = await prerequisites('root', 'docker', 'command:ip', 'command:nsenter', 'command:kubectl', 'command:curl', 'command:iptables', 'command:bash');
const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
const built = existsSync(join(repoRoot, 'dist', 'bin', 'up.js'));
const tourPage = join(repoRoot, 'docs', 'tour.md');
const steps = tourSteps(readFileSync(tourPage, 'utf8'));

const runId = randomBytes(4).toString('hex');
const scope = `io.knode.test=tour-${runId}`;
const nodeName = `knt-tour-${runId}`;
const underlayNet = `192.168.${100 + (parseInt(runId.slice(0, 2), 16) % 100)}`;
const defaultDataDir = '/var/lib/knode';

/** What the page's commands see as `knode`: the built CLI, with the test's data dir for up/down. */
const preamble = [
  'set -o pipefail',
  'knode() {',
  '  case "$1" in',
  '    up|down) local sub=$1; shift; "$KNODE_TOUR_NODE" "$KNODE_TOUR_BIN" "$sub" --data-dir "$KNODE_TOUR_DATA_DIR" "$@" ;;',
  '    *) "$KNODE_TOUR_NODE" "$KNODE_TOUR_BIN" "$@" ;;',
  '  esac',
  '}',
].join('\n');

interface Shell {
  env: NodeJS.ProcessEnv;
  cwd: string;
}

interface StepResult {
  code: number;
  output: string;
}

/** Runs one command of the page in the node netns; the environment it leaves becomes `shell`'s. */
function runStep(netnsPath: string, shell: Shell, command: string, envFile: string): Promise<StepResult> {
  const script = `${preamble}\n${command}\n__tour_rc=$?\nenv -0 > "$KNODE_TOUR_ENV_FILE"\nexit $__tour_rc\n`;
  return new Promise((resolve) => {
    execFile('nsenter', [`--net=${netnsPath}`, 'bash', '-c', script], { cwd: shell.cwd, env: { ...shell.env, KNODE_TOUR_ENV_FILE: envFile }, timeout: 170_000, killSignal: 'SIGKILL', maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : 128) : 0;
      if (existsSync(envFile)) {
        const next: NodeJS.ProcessEnv = {};
        for (const entry of readFileSync(envFile, 'utf8').split('\0')) {
          const at = entry.indexOf('=');
          if (at > 0) next[entry.slice(0, at)] = entry.slice(at + 1);
        }
        delete next['_'];
        delete next.KNODE_TOUR_ENV_FILE;
        shell.env = next;
        if (next.PWD && existsSync(next.PWD)) shell.cwd = next.PWD;
      }
      resolve({ code, output: `${stdout}${stderr}${error?.killed ? '\n(killed: timed out after 170 s)' : ''}` });
    });
  });
}

const stepName = (step: TourStep) => `docs/tour.md:${step.line}: ${step.command.length > 90 ? `${step.command.slice(0, 87)}...` : step.command}`;

describe.skipIf(env.skip || !built)('the tour of docs/tour.md, on a fresh `knode up` in a node netns', () => {
  let docker: Docker;
  const net = new TestNetwork();
  let node: Netns;
  let dataDir: string;
  let scratch: string;
  let up: RunningUp | undefined;
  let shell: Shell;
  let failed = false;

  beforeAll(async () => {
    docker = await testDocker();
    node = await net.node('tour');
    const underlay = await net.namespace('tul');
    await net.link(node, underlay, { aName: 'ul0', bName: 'ul1', aAddress: `${underlayNet}.1/24`, bAddress: `${underlayNet}.2/24` });
    await node.ip('route', 'add', '10.96.0.0/12', 'dev', 'ul0');
    expect(await node.hasNoDefaultRoute()).toBe(true);
    dataDir = await mkdtemp(join(tmpdir(), 'knode-tour-'));
    scratch = await mkdtemp(join(tmpdir(), 'knode-tour-scratch-'));
    up = startKnodeUp({ netnsPath: node.path, dataDir, iface: 'ul0', nodeName, scope });
    await waitKnodeUp(up);
    shell = {
      cwd: repoRoot,
      env: { ...process.env, KNODE_RUNTIME_SCOPE: scope, KNODE_TOUR_NODE: process.execPath, KNODE_TOUR_BIN: knodeBin, KNODE_TOUR_DATA_DIR: dataDir },
    };
    delete shell.env.KUBECONFIG;
  });

  afterAll(async () => {
    if (up) await stopKnodeUp(up).catch(() => undefined);
    if (dataDir) killUpLeftovers(dataDir);
    if (docker) await removeAgentPods(docker, scope);
    await net.cleanup();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
    if (scratch) await rm(scratch, { recursive: true, force: true });
  });

  it('the page has a tour to run, with expectations, ending in `knode down --purge`', () => {
    expect(steps.length).toBeGreaterThanOrEqual(10);
    expect(steps.filter((step) => step.expect.length > 0).length).toBeGreaterThanOrEqual(5);
    expect(steps.at(-1)?.command).toMatch(/^knode down --purge\b/);
  });

  steps.forEach((step, index) => {
    it(stepName(step), async (context) => {
      if (failed) context.skip();
      try {
        const command = step.command.replaceAll(defaultDataDir, dataDir);
        const result = await runStep(node.path, shell, command, join(scratch, `env-${index}`));
        const context_ = `command (docs/tour.md line ${step.line}): ${command}\n--- output:\n${result.output}`;
        expect(result.code, `exit status of ${context_}`).toBe(0);
        for (const expected of step.expect) {
          expect(outputMatches(result.output, expected), `"${expected}" in the output of ${context_}`).toBe(true);
        }
      } catch (error) {
        failed = true;
        throw new Error(`${error instanceof Error ? error.message : String(error)}\n--- knode up (last lines):\n${up?.output().slice(-4000) ?? ''}`, { cause: error });
      }
    }, 180_000);
  });

  it('after the tour, knode up has exited 0 and nothing it created is left', async (context) => {
    if (failed) context.skip();
    let timer: NodeJS.Timeout | undefined;
    const code = await Promise.race([up!.exit, new Promise<'still running'>((resolve) => (timer = setTimeout(() => resolve('still running'), 60_000)))]);
    clearTimeout(timer);
    expect(code, `knode up after \`knode down\`:\n${up!.output().slice(-4000)}`).toBe(0);
    expect(await docker.listContainers({ all: true, filters: { label: [scope] } })).toEqual([]);
    expect(existsSync(dataDir)).toBe(false);
    expect((await node.ip('-o', 'link')).stdout).not.toMatch(/\b(cni0|flannel\.1)\b/);
    expect((await node.exec(['iptables', '-w', '-t', 'nat', '-S'])).stdout).not.toMatch(/KUBE-|KNODE-/);
  }, 90_000);
});
