/**
 * The systemd install under a real systemd as PID 1 (issue 20, "systemd for real"): a Debian
 * bookworm root booted with systemd-nspawn (test/helpers/booted-systemd.ts) with Debian's
 * docker.io and reference CNI plugins inside, the built knode installed by systemd/install.sh
 * (control plane + overlay + agent + proxy + dns). Shown: every unit is Type=notify and becomes
 * active only once its daemon reports READY=1 (a daemon that runs but cannot serve stays
 * "activating"); each one is restarted after kill -9 of its main process; the agent's pods
 * survive an agent restart (KillMode=process); with Docker's systemd cgroup driver (what install.sh
 * finds and writes as the agent's cgroupDriver) each pod is a systemd slice with its limits;
 * every unit stops cleanly (exit 0 on SIGTERM);
 * `knode uninstall` leaves no file, unit, container, link or rule behind, and a second run is a
 * no-op. All of it inside the container's own network namespace.
 */
import { existsSync, realpathSync, writeFileSync } from 'node:fs';
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

const units = ['knode-controlplane', 'knode-overlay', 'knode-agent', 'knode-proxy', 'knode-dns'];
const nodeName = 'knode-sd';

/** What a clean system has that is not ours: runtime state of systemd, dbus, Docker, iptables' lock. */
const notOurs = [/^\/var\/lib\/(docker|containerd|systemd)(\/|$)/, /^\/run\/(docker|containerd|systemd|udev|dbus|user|log|lock|xtables\.lock|utmp|agetty\.reload)/, /^\/var\/log\/journal(\/|$)/, /^\/var\/cache\/ldconfig/];

describe.skipIf(env.skip || !built)('systemd units under a real systemd (nspawn, bookworm)', () => {
  let machine: BootedSystemd | undefined;
  let kubeconfig: string;
  let before: Set<string>;

  const m = () => machine!;
  const kubectl = (...args: string[]) => m().execNet(['kubectl', '--kubeconfig', kubeconfig, ...args]);
  const state = (unit: string) => m().show(unit, ['ActiveState', 'SubState', 'MainPID', 'NRestarts', 'Result', 'ExecMainCode', 'ExecMainStatus']);
  const activeRunning = async (unit: string) => {
    const s = await state(unit);
    return s.ActiveState === 'active' && s.SubState === 'running' ? s : undefined;
  };
  const files = async () => {
    const { stdout } = await m().exec(['find', '/etc', '/opt', '/usr/local', '/var/lib', '/var/log', '/var/cache', '/run', '/root', '/srv', '-xdev']);
    return new Set(stdout.trim().split('\n').filter((path) => !notOurs.some((pattern) => pattern.test(path))));
  };
  const containers = async () => (await m().exec(['docker', 'ps', '-q', '--no-trunc', '--filter', 'label=io.kubernetes.pod.name=sleeper'])).stdout.trim().split('\n').filter(Boolean).sort();

  /** What the pod and the agent say, for a failure message. */
  const diagnostics = async () => {
    const describe = await kubectl('describe', 'pod', 'sleeper').catch((error: unknown) => ({ stdout: String(error) }));
    const journal = await m().exec(['journalctl', '-u', 'knode-agent', '-n', '40', '--no-pager', '-o', 'cat'], { allowFailure: true });
    return `${describe.stdout}\n--- knode-agent journal ---\n${journal.stdout}`;
  };

  beforeAll(async () => {
    const root = await bookwormSystemdRoot();
    machine = await BootedSystemd.boot({
      root,
      docker: true,
      maxLifetimeSeconds: 600,
      binds: [
        { host: repo, readOnly: true },
        // node_modules may be a symlink (a git worktree): its target at the same path inside.
        { host: realpathSync(`${repo}/node_modules`), readOnly: true },
        { host: process.execPath, inside: '/usr/bin/node', readOnly: true },
      ],
    });
    // A node interface inside the container's own network namespace: a veth pair with both ends
    // inside, the default route through it (leads nowhere), as TESTING.md describes.
    await m().exec(['ip', 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth0p']);
    await m().exec(['ip', 'addr', 'add', '10.123.0.2/24', 'dev', 'eth0']);
    for (const link of ['eth0', 'eth0p']) await m().exec(['ip', 'link', 'set', link, 'up']);
    await m().exec(['ip', 'route', 'add', 'default', 'dev', 'eth0']);
    // The local control plane serves plain HTTP on loopback; the node components use it.
    kubeconfig = m().path('/root/local.kubeconfig');
    writeFileSync(kubeconfig, kubeconfigText({ server: 'http://127.0.0.1:6443' }), { mode: 0o600 });
    await waitFor('Docker in the container', () => m().exec(['docker', 'info']).then(() => true), 60_000, 500);
    // Docker with its systemd cgroup driver, as on a systemd node set up for kubeadm: install.sh
    // then writes cgroupDriver: systemd for the agent, whose pods get systemd slices.
    const daemonJson = JSON.parse((await m().exec(['cat', '/etc/docker/daemon.json'])).stdout) as Record<string, unknown>;
    writeFileSync(m().path('/etc/docker/daemon.json'), JSON.stringify({ ...daemonJson, 'exec-opts': ['native.cgroupdriver=systemd'] }));
    await m().systemctl('restart', 'docker');
    await waitFor('Docker with the systemd cgroup driver', async () => (await m().exec(['docker', 'info', '--format', '{{.CgroupDriver}}'], { allowFailure: true })).stdout.trim() === 'systemd', 60_000, 500);
    before = await files();
    // Install and start: `systemctl enable --now` returns once every Type=notify unit is ready.
    const install = await m().exec(['bash', `${repo}/systemd/install.sh`, '--kubeconfig', '/root/local.kubeconfig', '--with-controlplane', '--node-name', nodeName], { timeoutMs: 240_000 });
    expect(install.stdout).toContain('started: knode-controlplane knode-overlay knode-agent knode-proxy knode-dns');
  }, 30 * 60_000); // the first run on a machine builds the root (debootstrap)

  afterAll(async () => {
    await machine?.shutdown();
  }, 120_000);

  it('every unit is Type=notify and active/running once its daemon has reported READY=1', async () => {
    for (const unit of units) {
      const s = await m().show(unit, ['Type', 'NotifyAccess', 'ActiveState', 'SubState', 'StatusText']);
      expect({ unit, ...s }).toMatchObject({ unit, Type: 'notify', NotifyAccess: 'all', ActiveState: 'active', SubState: 'running' });
      // systemd-notify --ready --status=…: the STATUS= line is only ever sent with READY=1.
      expect(s.StatusText, unit).not.toBe('');
    }
    const node = await waitFor('node Ready', async () => {
      const { stdout } = await kubectl('get', 'node', nodeName, '-o', 'jsonpath={.status.conditions[?(@.type=="Ready")].status}');
      return stdout === 'True' ? stdout : undefined;
    }, 120_000, 1000);
    expect(node).toBe('True');
  });

  it('a daemon that runs but cannot serve stays activating: readiness is READY=1, not a started process', async () => {
    await m().systemctl('stop', 'knode-controlplane');
    try {
      // The proxy cannot list Services while the API is down: its process runs, its unit waits.
      await m().systemctl('restart', '--no-block', 'knode-proxy');
      const waiting = await waitFor('the proxy running but not ready', async () => {
        const s = await state('knode-proxy');
        return s.ActiveState === 'activating' && s.SubState === 'start' && s.MainPID !== '0' ? s : undefined;
      }, 60_000, 250);
      await new Promise((resolve) => setTimeout(resolve, 3000));
      expect(await state('knode-proxy')).toMatchObject({ ActiveState: 'activating', SubState: 'start', MainPID: waiting.MainPID });
    } finally {
      await m().systemctl('start', 'knode-controlplane');
    }
    await waitFor('the proxy ready once the API serves', () => activeRunning('knode-proxy'), 120_000, 500);
  });

  it('runs pods through Docker and Debian\'s reference CNI plugins in /usr/lib/cni', async () => {
    const docker = new Docker({ socketPath: m().path('/run/docker.sock') });
    const image = await ensureLocalImage(docker, busyboxSpec);
    const pod = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'sleeper', namespace: 'default' }, spec: { containers: [{ name: 'main', image, imagePullPolicy: 'Never', command: ['/bin/sleep', '3600'] }] } };
    writeFileSync(m().path('/tmp/sleeper.json'), JSON.stringify(pod));
    await kubectl('apply', '-f', m().path('/tmp/sleeper.json'));
    const ip = await waitFor('the pod Running with an IP', async () => {
      const { stdout } = await kubectl('get', 'pod', 'sleeper', '-o', 'jsonpath={.status.phase} {.status.podIP}');
      const [phase, podIP] = stdout.split(' ');
      return phase === 'Running' && podIP ? podIP : undefined;
    }, 120_000, 1000).catch(async (error: unknown) => {
      throw new Error(`${String(error)}\n${await diagnostics()}`, { cause: error });
    });
    expect(ip).toMatch(/^10\.244\./);
    expect(await containers()).toHaveLength(2); // the sandbox and the app container
  });

  it('cgroupDriver: systemd — each pod is a slice with its limits, and its containers are scopes inside it; the slice goes with the pod', async () => {
    expect((await m().exec(['cat', '/etc/knode/kubelet-config.yaml'])).stdout).toContain('cgroupDriver: systemd');
    const docker = new Docker({ socketPath: m().path('/run/docker.sock') });
    const image = await ensureLocalImage(docker, busyboxSpec);
    const resources = { requests: { cpu: '100m', memory: '32Mi' }, limits: { cpu: '250m', memory: '96Mi' } };
    const pod = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'sliced', namespace: 'default' }, spec: { terminationGracePeriodSeconds: 1, containers: [{ name: 'main', image, imagePullPolicy: 'Never', command: ['/bin/sleep', '3600'], resources }] } };
    writeFileSync(m().path('/tmp/sliced.json'), JSON.stringify(pod));
    await kubectl('apply', '-f', m().path('/tmp/sliced.json'));
    await waitFor('the sliced pod Running', async () => (await kubectl('get', 'pod', 'sliced', '-o', 'jsonpath={.status.phase}')).stdout === 'Running' || undefined, 120_000, 1000).catch(async (error: unknown) => {
      throw new Error(`${String(error)}\n${await diagnostics()}`, { cause: error });
    });
    const uid = (await kubectl('get', 'pod', 'sliced', '-o', 'jsonpath={.metadata.uid}')).stdout;
    const slice = `kubepods-burstable-pod${uid.replace(/-/g, '_')}.slice`;
    // systemd runs the slice with the pod's limits (kubelet: ResourceConfigForPod as unit properties)
    expect(await m().show(slice, ['ActiveState', 'MemoryLimit', 'CPUQuotaPerSecUSec'])).toEqual({ ActiveState: 'active', MemoryLimit: String(96 * 1024 * 1024), CPUQuotaPerSecUSec: '250ms' });
    // the container's scope is inside it, in every hierarchy, and the slice's own files hold the limits
    const pid = (await m().exec(['docker', 'inspect', '--format', '{{.State.Pid}}', (await m().exec(['docker', 'ps', '-q', '--filter', 'label=io.kubernetes.pod.name=sliced', '--filter', 'label=io.kubernetes.container.name=main'])).stdout.trim()])).stdout.trim();
    const cgroups = (await m().exec(['cat', `/proc/${pid}/cgroup`])).stdout;
    const path = `/kubepods.slice/kubepods-burstable.slice/${slice}/docker-`;
    expect(cgroups).toMatch(new RegExp(`:memory:(/[^/\n]+)?${path.replace(/\./g, '\\.')}`));
    expect(cgroups).toMatch(new RegExp(`:name=systemd:${path.replace(/\./g, '\\.')}`));
    const dir = `kubepods.slice/kubepods-burstable.slice/${slice}`;
    expect((await m().exec(['cat', `/sys/fs/cgroup/memory/${dir}/memory.limit_in_bytes`])).stdout.trim()).toBe(String(96 * 1024 * 1024));
    expect((await m().exec(['cat', `/sys/fs/cgroup/cpu/${dir}/cpu.cfs_quota_us`])).stdout.trim()).toBe('25000');
    expect((await m().exec(['cat', `/sys/fs/cgroup/cpu/${dir}/cpu.shares`])).stdout.trim()).toBe('102');
    await kubectl('delete', 'pod', 'sliced', '--wait=true', '--timeout=90s');
    await waitFor('the pod slice stopped and its cgroup gone', async () => {
      const state = await m().show(slice, ['ActiveState']);
      const left = await m().exec(['test', '-e', `/sys/fs/cgroup/memory/${dir}`], { allowFailure: true });
      return state.ActiveState === 'inactive' && left.code !== 0 ? true : undefined;
    }, 60_000, 500);
  });

  it('the agent\'s pods survive an agent restart (KillMode=process), clean or after kill -9', async () => {
    const running = await containers();
    await m().systemctl('restart', 'knode-agent');
    await waitFor('the agent ready again', () => activeRunning('knode-agent'), 120_000, 500);
    const { MainPID } = await state('knode-agent');
    await m().exec(['sh', '-c', `kill -9 ${MainPID}`]);
    await waitFor('the agent restarted after kill -9', async () => {
      const s = await activeRunning('knode-agent');
      return s && s.MainPID !== MainPID ? s : undefined;
    }, 120_000, 500);
    expect(await containers()).toEqual(running);
    const { stdout } = await kubectl('get', 'pod', 'sleeper', '-o', 'jsonpath={.status.phase} {.status.containerStatuses[0].restartCount}');
    expect(stdout).toBe('Running 0');
  });

  it('every unit is restarted by systemd after kill -9 of its main process', async () => {
    const pids = new Map<string, Record<string, string>>();
    for (const unit of units) pids.set(unit, await state(unit));
    for (const unit of units) await m().exec(['sh', '-c', `kill -9 ${pids.get(unit)!.MainPID}`]);
    for (const unit of units) {
      const again = await waitFor(`${unit} restarted and ready`, async () => {
        const s = await activeRunning(unit);
        return s && s.MainPID !== pids.get(unit)!.MainPID ? s : undefined;
      }, 180_000, 500);
      expect(Number(again.NRestarts), unit).toBeGreaterThan(Number(pids.get(unit)!.NRestarts));
    }
    expect(await containers()).toHaveLength(2);
  });

  it('every unit stops cleanly: SIGTERM, exit 0, the pods left to Docker', async () => {
    const running = await containers();
    await m().systemctl('stop', ...[...units].reverse());
    for (const unit of units) {
      expect({ unit, ...(await state(unit)) }).toMatchObject({ unit, ActiveState: 'inactive', Result: 'success', ExecMainCode: '1', ExecMainStatus: '0' });
    }
    expect(await containers()).toEqual(running);
    await m().systemctl('start', ...units);
  });

  it('knode uninstall leaves nothing behind, and a second run is a no-op', async () => {
    for (const unit of units) await waitFor(`${unit} active again`, () => activeRunning(unit), 120_000, 500);
    const first = await m().exec(['knode', 'uninstall'], { timeoutMs: 180_000 });
    expect(first.stdout).toContain('knode uninstalled');
    const after = await files();
    expect([...after].filter((path) => !before.has(path))).toEqual([]);
    for (const unit of units) expect({ unit, ...(await m().show(`${unit}.service`, ['LoadState', 'ActiveState'])) }).toEqual({ unit, LoadState: 'not-found', ActiveState: 'inactive' });
    expect((await m().exec(['docker', 'ps', '-aq', '--filter', 'label=io.kubernetes.pod.name'])).stdout.trim()).toBe('');
    const links = (await m().exec(['ip', '-o', 'link', 'show'])).stdout;
    expect(links).not.toMatch(/flannel|cni0|veth/);
    for (const save of ['iptables-save', 'iptables-legacy-save']) {
      const rules = (await m().exec([save])).stdout.split('\n');
      // Only the built-in chains of the tables (no chain of ours, no rule).
      expect(rules.filter((line) => line.startsWith('-A') || (line.startsWith(':') && !/^:(PREROUTING|INPUT|FORWARD|OUTPUT|POSTROUTING) /.test(line))), save).toEqual([]);
    }
    // Idempotent: knode is gone from the PATH, so the copy in the repository runs the same code.
    const second = await m().exec(['node', `${repo}/bin/knode`, 'uninstall'], { timeoutMs: 120_000 });
    expect(second.stdout).toContain('nothing to remove');
  });
});
