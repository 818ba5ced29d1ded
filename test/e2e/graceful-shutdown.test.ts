/**
 * Graceful node shutdown under a real systemd-logind (issue 22; KEP-2000/2712): the knode
 * install (control plane + agent, systemd/install.sh) in a booted Debian bookworm
 * (test/helpers/booted-systemd.ts) with shutdownGracePeriod 20s / shutdownGracePeriodCriticalPods
 * 8s. Shown: the agent raises logind's InhibitDelayMaxSec to 20 s with its drop-in and holds a
 * "delay" inhibitor on shutdown; `systemctl poweroff` inside makes logind send
 * PrepareForShutdown; the node turns Ready=False "node is shutting down"; the ordinary pod is
 * terminated first (its container ignores SIGTERM, so it takes its whole 12 s group), the
 * system-node-critical one only after it; both end Failed/Terminated with DisruptionTarget; all
 * of that while the system is still "running" — the inhibitor held the shutdown back. The
 * control plane runs in the container too, so the test reads it (kubectl through the
 * container's network namespace) while the shutdown is held.
 */
import { existsSync, mkdirSync, realpathSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kubeconfigText } from '../../controlplane/kubeconfig.js';
import { busyboxSpec, ensureLocalImage } from '../../cri/local-images.js';
import { BootedSystemd, bookwormSystemdRoot } from '../helpers/booted-systemd.js';
import { prerequisites } from '../helpers/prereq.js';
import { waitFor } from '../helpers/wait.js';

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
  }, 120_000);

  it('holds a delay inhibitor and raised InhibitDelayMaxSec to the grace period', async () => {
    const inhibitors = await waitFor('the kubelet delay inhibitor', async () => {
      const { stdout } = await m().exec(['systemd-inhibit', '--list', '--no-pager', '--no-legend']);
      return /kubelet.*Kubelet needs time to handle node shutdown.*shutdown.*delay/.test(stdout) ? stdout : undefined;
    }, 120_000, 500);
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
    // The critical one takes ~3 s to stop once asked (a window to see it still running).
    writeFileSync(m().path('/tmp/critical.json'), JSON.stringify(pod('critical', ['/bin/sh', '-c', 'trap "sleep 3; exit 0" TERM; while :; do sleep 1; done'], true)));
    await kubectl('apply', '-f', m().path('/tmp/low.json'));
    await kubectl('apply', '-f', m().path('/tmp/critical.json'));
    const phases = async () => {
      const { stdout } = await kubectl('get', 'pods', '-o', 'jsonpath={range .items[*]}{.metadata.name}={.status.phase} {end}');
      return Object.fromEntries(stdout.trim().split(' ').map((pair) => pair.split('=')));
    };
    await waitFor('both pods Running', async () => {
      const p = await phases();
      return p.low === 'Running' && p.critical === 'Running' ? true : undefined;
    }, 120_000, 1000);

    await m().exec(['systemctl', 'poweroff', '--no-block']);
    const notReady = await waitFor('the node NotReady: shutting down', async () => {
      const { stdout } = await kubectl('get', 'node', nodeName, '-o', 'jsonpath={.status.conditions[?(@.type=="Ready")].status}|{.status.conditions[?(@.type=="Ready")].reason}|{.status.conditions[?(@.type=="Ready")].message}');
      return stdout.startsWith('False|') ? stdout : undefined;
    }, 30_000, 300);
    expect(notReady).toBe('False|KubeletNotReady|node is shutting down');

    // Watch until both pods are Failed (the control plane is still up: shutdown is held).
    const seen: Snapshot[] = [];
    const final = await waitFor('both pods Failed', async () => {
      const p = await phases();
      const system = (await m().exec(['systemctl', 'is-system-running'], { allowFailure: true, timeoutMs: 5000 })).stdout.trim();
      seen.push({ low: p.low ?? '', critical: p.critical ?? '', system });
      return p.low === 'Failed' && p.critical === 'Failed' ? p : undefined;
    }, 60_000, 300);
    expect(final).toEqual({ low: 'Failed', critical: 'Failed' });
    // Priority order: never the critical pod Failed before the ordinary one; and a moment with
    // the ordinary one Failed while the critical one still ran.
    expect(seen.filter((s) => s.critical === 'Failed' && s.low !== 'Failed'), JSON.stringify(seen)).toEqual([]);
    expect(seen.some((s) => s.low === 'Failed' && s.critical === 'Running'), JSON.stringify(seen)).toBe(true);
    // The ordinary pod was Failed while the system was still running: the inhibitor held it.
    expect(seen.find((s) => s.low === 'Failed')?.system, JSON.stringify(seen)).toBe('running');

    for (const name of ['low', 'critical']) {
      const { stdout } = await kubectl('get', 'pod', name, '-o', 'json');
      const status = (JSON.parse(stdout) as { status: { phase: string; reason: string; message: string; conditions: { type: string; status: string; reason?: string }[] } }).status;
      expect({ name, phase: status.phase, reason: status.reason, message: status.message }).toEqual({ name, phase: 'Failed', reason: 'Terminated', message: 'Pod was terminated in response to imminent node shutdown.' });
      expect(status.conditions.find((c) => c.type === 'DisruptionTarget')).toMatchObject({ status: 'True', reason: 'TerminationByKubelet' });
    }
  }, 300_000);
});
