/**
 * Graceful node shutdown under a real systemd-logind (issue 22; KEP-2000/2712): the knode
 * install (control plane + agent, systemd/install.sh) in a booted Debian bookworm
 * (test/helpers/booted-systemd.ts) with shutdownGracePeriod 20s / shutdownGracePeriodCriticalPods
 * 8s. Shown: the agent raises logind's InhibitDelayMaxSec to 20 s with its drop-in and holds a
 * "delay" inhibitor on shutdown; `systemctl poweroff` inside makes logind send
 * PrepareForShutdown; the node turns Ready=False "node is shutting down"; the ordinary pod is
 * terminated first (its container ignores SIGTERM, so it takes its whole 12 s group), the
 * system-node-critical one only after it; both end Failed/Terminated with DisruptionTarget; a
 * pod bound to the node meanwhile is rejected (NodeShutdown); all
 * of that while the system is still "running" — the inhibitor held the shutdown back. The
 * control plane runs in the container too: the test watches it (kubectl through the container's
 * network namespace) while the shutdown is held, and, its data directory being a host
 * directory, reads what it stored once the container is off (a file-store control plane here).
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kubeconfigText } from '../../controlplane/kubeconfig.js';
import { busyboxSpec, ensureLocalImage } from '../../cri/local-images.js';
import { BootedSystemd, bookwormSystemdRoot } from '../helpers/booted-systemd.js';
import { prerequisites } from '../helpers/prereq.js';
import { waitFor } from '../helpers/wait.js';
import { startTestControlPlane } from '../helpers/controlplane.js';
import { run } from '../../lib/exec.js';

const env = await prerequisites('root', 'command:debootstrap', 'command:systemd-nspawn', 'command:nsenter', 'command:kubectl', 'command:flock');
const repo = fileURLToPath(new URL('../..', import.meta.url)).replace(/\/$/, '');
const built = existsSync(`${repo}/dist/bin/knode.js`);
if (process.env.CI === 'true' && !built) throw new Error('missing test prerequisite under CI=true: run npm run build first');

const nodeName = 'knode-gs';

interface Snapshot {
  low: string;
  critical: string;
  system: string;
}

describe.skipIf(env.skip || !built)('graceful node shutdown through systemd-logind (nspawn, bookworm)', () => {
  let machine: BootedSystemd | undefined;
  let kubeconfig: string;
  // The control plane's data directory, outside the container: read after the poweroff.
  const cpData = mkdtempSync('/var/tmp/knode-gs-cp-');
  const m = () => machine!;
  const kubectl = (...args: string[]) => m().execNet(['kubectl', '--kubeconfig', kubeconfig, '--request-timeout=5s', ...args]);

  beforeAll(async () => {
    const root = await bookwormSystemdRoot();
    machine = await BootedSystemd.boot({
      root,
      docker: true,
      maxLifetimeSeconds: 600,
      binds: [
        { host: repo, readOnly: true },
        { host: realpathSync(`${repo}/node_modules`), readOnly: true },
        { host: process.execPath, inside: '/usr/bin/node', readOnly: true },
        { host: cpData, inside: '/var/lib/knode/controlplane' },
      ],
    });
    await m().exec(['ip', 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth0p']);
    await m().exec(['ip', 'addr', 'add', '10.123.0.2/24', 'dev', 'eth0']);
    for (const link of ['eth0', 'eth0p']) await m().exec(['ip', 'link', 'set', link, 'up']);
    await m().exec(['ip', 'route', 'add', 'default', 'dev', 'eth0']);
    kubeconfig = m().path('/root/local.kubeconfig');
    writeFileSync(kubeconfig, kubeconfigText({ server: 'http://127.0.0.1:6443' }), { mode: 0o600 });
    // install.sh keeps an existing config: the install's defaults plus the shutdown settings.
    mkdirSync(m().path('/etc/knode'), { recursive: true });
    writeFileSync(
      m().path('/etc/knode/kubelet-config.yaml'),
      [
        'apiVersion: kubelet.config.k8s.io/v1beta1',
        'kind: KubeletConfiguration',
        'staticPodPath: /etc/kubernetes/manifests',
        'containerRuntimeEndpoint: unix:///var/run/docker.sock',
        'clusterDomain: cluster.local',
        'clusterDNS: [10.96.0.10]',
        'shutdownGracePeriod: 20s',
        'shutdownGracePeriodCriticalPods: 8s',
        '',
      ].join('\n'),
    );
    await waitFor('Docker in the container', () => m().exec(['docker', 'info']).then(() => true), 60_000, 500);
    const install = await m().exec(['bash', `${repo}/systemd/install.sh`, '--kubeconfig', '/root/local.kubeconfig', '--with-controlplane', '--node-name', nodeName], { timeoutMs: 240_000 });
    expect(install.stdout).toContain('started:');
  }, 30 * 60_000);

  afterAll(async () => {
    await machine?.shutdown();
    rmSync(cpData, { recursive: true, force: true });
  }, 120_000);

  /** The agent's shutdown manager lines and the inhibitors, for a failure message. */
  const diagnostics = async () => {
    const journal = await m().exec(['journalctl', '-u', 'knode-agent', '--no-pager', '-o', 'cat'], { allowFailure: true });
    const inhibitors = await m().exec(['systemd-inhibit', '--list', '--no-pager'], { allowFailure: true });
    return `${journal.stdout.split('\n').filter((line) => /shutdown|inhibit|D-Bus|logind/i.test(line)).slice(-30).join('\n')}\n--- inhibitors ---\n${inhibitors.stdout}`;
  };

  it('holds a delay inhibitor and raised InhibitDelayMaxSec to the grace period', async () => {
    const inhibitors = await waitFor('the kubelet delay inhibitor', async () => {
      const { stdout } = await m().exec(['systemd-inhibit', '--list', '--no-pager', '--no-legend']);
      return /kubelet.*shutdown.*delay/.test(stdout) ? stdout : undefined;
    }, 60_000, 500).catch(async (error: unknown) => {
      throw new Error(`${String(error)}\n${await diagnostics()}`, { cause: error });
    });
    expect(inhibitors).toContain('kubelet');
    const { stdout } = await m().exec(['busctl', 'get-property', 'org.freedesktop.login1', '/org/freedesktop/login1', 'org.freedesktop.login1.Manager', 'InhibitDelayMaxUSec']);
    expect(stdout.trim()).toBe('t 20000000');
    expect((await m().exec(['cat', '/etc/systemd/logind.conf.d/99-kubelet.conf'])).stdout).toContain('InhibitDelayMaxSec=20');
  }, 180_000);

  it('poweroff: NotReady, the ordinary pod terminated before the critical one, all while the shutdown is held', async () => {
    await waitFor('node Ready', async () => ((await kubectl('get', 'node', nodeName, '-o', 'jsonpath={.status.conditions[?(@.type=="Ready")].status}')).stdout === 'True' ? true : undefined), 120_000, 1000);
    const docker = new Docker({ socketPath: m().path('/run/docker.sock') });
    const image = await ensureLocalImage(docker, busyboxSpec);
    const pod = (name: string, command: string[], critical: boolean) => ({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name, namespace: 'default' },
      spec: {
        terminationGracePeriodSeconds: 60,
        ...(critical ? { priorityClassName: 'system-node-critical', priority: 2_000_001_000 } : {}),
        containers: [{ name: 'main', image, imagePullPolicy: 'Never', command }],
      },
    });
    // sleep as PID 1 has no SIGTERM handler: it is killed at the end of its group's period.
    writeFileSync(m().path('/tmp/low.json'), JSON.stringify(pod('low', ['/bin/sleep', '3600'], false)));
    // The critical one takes ~5 s to stop once asked (a window to see it still running).
    writeFileSync(m().path('/tmp/critical.json'), JSON.stringify(pod('critical', ['/bin/sh', '-c', 'trap "sleep 5; exit 0" TERM; while :; do sleep 1; done'], true)));
    await kubectl('apply', '-f', m().path('/tmp/low.json'));
    await kubectl('apply', '-f', m().path('/tmp/critical.json'));
    type PodJson = { metadata: { name: string }; status: { phase?: string; reason?: string; message?: string; conditions?: { type: string; status: string; reason?: string }[]; containerStatuses?: { state?: { terminated?: { exitCode: number; finishedAt: string } } }[] } };
    let last: PodJson[] = [];
    const phases = async () => {
      last = (JSON.parse((await kubectl('get', 'pods', '-o', 'json')).stdout) as { items: PodJson[] }).items;
      return Object.fromEntries(last.map((p) => [p.metadata.name, p.status.phase ?? '']));
    };
    await waitFor('both pods Running', async () => {
      const p = await phases();
      return p.low === 'Running' && p.critical === 'Running' ? true : undefined;
    }, 120_000, 1000);

    // The agent's log through the shutdown (the container's journal goes with it).
    let agentLog = '';
    const follow = spawn('nsenter', ['-t', String(m().pid), '-a', 'journalctl', '-f', '-n', '0', '-o', 'cat', '-u', 'knode-agent'], { stdio: ['ignore', 'pipe', 'ignore'] });
    follow.stdout.on('data', (chunk: Buffer) => (agentLog = (agentLog + chunk.toString()).slice(-50_000)));
    const explain = (error: unknown) => {
      throw new Error(`${String(error)}\n--- agent log ---\n${agentLog.split('\n').filter((l) => /shutdown|inhibit|kill|Terminat/i.test(l)).join('\n')}`, { cause: error });
    };
    await m().exec(['systemctl', 'poweroff', '--no-block']);
    const notReady = await waitFor('the node NotReady: shutting down', async () => {
      const { stdout } = await kubectl('get', 'node', nodeName, '-o', 'jsonpath={.status.conditions[?(@.type=="Ready")].status}|{.status.conditions[?(@.type=="Ready")].reason}|{.status.conditions[?(@.type=="Ready")].message}');
      return stdout.startsWith('False|') ? stdout : undefined;
    }, 30_000, 300).catch(explain);
    expect(notReady).toBe('False|KubeletNotReady|node is shutting down');
    // A pod bound to the node now is not admitted (NodeShutdown).
    writeFileSync(m().path('/tmp/late.json'), JSON.stringify({ ...pod('late', ['/bin/sleep', '3600'], false), spec: { ...pod('late', [], false).spec, nodeName, containers: [{ name: 'main', image, imagePullPolicy: 'Never', command: ['/bin/sleep', '3600'] }] } }));
    await kubectl('apply', '-f', m().path('/tmp/late.json'));

    // Watch while the control plane answers (it is stopped once the inhibitor is released).
    const seen: Snapshot[] = [];
    await waitFor('the shutdown to go on', async () => {
      const p = await phases().catch(() => undefined);
      if (!p) return true; // the control plane is gone: the shutdown went on
      const system = (await m().exec(['systemctl', 'is-system-running'], { allowFailure: true, timeoutMs: 5000 }).catch(() => ({ stdout: '' }))).stdout.trim();
      seen.push({ low: p.low ?? '', critical: p.critical ?? '', system });
      return undefined;
    }, 90_000, 250).catch(explain);
    follow.kill();
    // Priority order, live: never the critical pod Failed before the ordinary one.
    expect(seen.filter((s) => s.critical === 'Failed' && s.low !== 'Failed'), JSON.stringify(seen)).toEqual([]);
    // The ordinary pod was Failed while the system was still running: the inhibitor held it.
    const lowFailed = seen.find((s) => s.low === 'Failed');
    expect(lowFailed, JSON.stringify(seen)).toMatchObject({ critical: 'Running', system: 'running' });

    // After the poweroff, what the control plane stored (its data directory is a host directory).
    await m().shutdown();
    const cp = await startTestControlPlane({ storage: 'file', dataDir: `${cpData}/store`, controllers: false });
    try {
      const api = (...args: string[]) => run(['kubectl', '--kubeconfig', cp.kubeconfigPath, ...args]);
      const stored = (JSON.parse((await api('get', 'pods', '-o', 'json')).stdout) as { items: PodJson[] }).items;
      const finished = new Map<string, { exitCode: number; finishedAt: string }>();
      for (const name of ['low', 'critical']) {
        const status = stored.find((p) => p.metadata.name === name)!.status;
        expect({ name, phase: status.phase, reason: status.reason, message: status.message }).toEqual({ name, phase: 'Failed', reason: 'Terminated', message: 'Pod was terminated in response to imminent node shutdown.' });
        expect(status.conditions?.find((c) => c.type === 'DisruptionTarget')).toMatchObject({ status: 'True', reason: 'TerminationByKubelet', message: 'Pod was terminated in response to imminent node shutdown.' });
        finished.set(name, status.containerStatuses![0]!.state!.terminated!);
      }
      const late = stored.find((p) => p.metadata.name === 'late')!.status;
      expect({ phase: late.phase, reason: late.reason, message: late.message }).toEqual({ phase: 'Failed', reason: 'NodeShutdown', message: 'Pod was rejected: Pod was rejected as the node is shutting down.' });
      expect(late.containerStatuses ?? []).toEqual([]);
      // The ordinary pod ignores SIGTERM: SIGKILL at the end of its group's 12 s (137). The
      // critical one, asked only after that, stopped by itself within its 8 s (0), later.
      expect(finished.get('low')!.exitCode).toBe(137);
      expect(finished.get('critical')!.exitCode).toBe(0);
      expect(Date.parse(finished.get('critical')!.finishedAt)).toBeGreaterThan(Date.parse(finished.get('low')!.finishedAt));
      const ready = JSON.parse((await api('get', 'node', nodeName, '-o', 'jsonpath={.status.conditions[?(@.type=="Ready")]}')).stdout) as { status: string; reason: string; message: string };
      expect(ready).toMatchObject({ status: 'False', reason: 'KubeletNotReady', message: 'node is shutting down' });
      const events = (JSON.parse((await api('get', 'events', '-A', '-o', 'json')).stdout) as { items: { reason: string; involvedObject: { kind: string; name: string } }[] }).items;
      expect(events.some((e) => e.reason === 'Shutdown' && e.involvedObject.kind === 'Node' && e.involvedObject.name === nodeName)).toBe(true);
    } finally {
      await cp.stop();
    }
  }, 300_000);
});
