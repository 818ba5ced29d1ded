/**
 * The `knode` command line: one program, a subcommand per component (docs/architecture.md "Components",
 * "Command-line contract"). Each subcommand validates its flags and config files, then hands
 * over to its component. Exit codes: 0 done, 1 failure, 2 bad flags or config.
 */
import v8 from 'node:v8';
import { Command, CommanderError, Option } from 'commander';
import { ConfigError, describeError } from '../lib/errors.js';
import { createLogger, klogLevel, resolveLogLevel, type Logger } from '../lib/log.js';
import { packageVersion } from '../lib/version.js';

import type { CommandOptions, Runner, Stoppable } from '../lib/command-options.js';

/**
 * Each subcommand lives in its component's folder and is imported only when chosen, so that a
 * short command does not pay for loading the others.
 */
const runners: Record<string, () => Promise<{ run: Runner }>> = {
  controlplane: () => import('../controlplane/command.js'),
  agent: () => import('../agent/command.js'),
  proxy: () => import('../proxy/command.js'),
  overlay: () => import('../overlay/command.js'),
  dns: () => import('../dns/command.js'),
  'install-cni': () => import('../cni/install-command.js'),
  up: () => import('./up.js'),
  join: () => import('./join.js'),
  down: () => import('./down.js'),
  uninstall: () => import('./uninstall.js'),
  version: () => import('./version.js'),
  token: () => import('./token.js'),
};

/**
 * Daemons that allocate little once started keep V8's young generation at its initial size (one
 * 1 MiB semi-space pair) instead of letting it grow to 16 MiB semi-spaces during module loading
 * and keep them: about 20 MiB less RSS for the agent (measured with bench/agent-static-pods.ts),
 * at the price of more (each short) scavenges. The flag is read when the young generation would
 * grow, so it works when set here, before the command's modules load (--max-semi-space-size is
 * only read at heap setup).
 */
const smallYoungGeneration = new Set(['agent']);

function defineCommands(program: Command, onRun: (name: string, options: CommandOptions) => void): void {
  const add = (name: string, description: string) =>
    program
      .command(name)
      .description(description)
      .action((...params: unknown[]) => {
        const command = params[params.length - 1] as Command;
        onRun(name, { ...(command.optsWithGlobals() as CommandOptions), args: command.args });
      });

  add('controlplane', 'serve a minimal Kubernetes API (REST + watch) with its controllers')
    .option('--listen <host:port>', 'address to serve on (plain HTTP only on loopback)', '127.0.0.1:6443')
    .option('--data-dir <dir>', 'where state and admin.kubeconfig are kept', '/var/lib/knode/controlplane')
    .addOption(new Option('--store <kind>', 'storage backend').choices(['memory', 'file', 'etcd']).default('file'))
    .option('--etcd-endpoints <urls>', 'comma-separated etcd client URLs (with --store etcd)')
    .option('--cluster-cidr <cidr>', 'pod network; each node gets a /24 of it', '10.244.0.0/16')
    .option('--service-cidr <cidr>', 'ClusterIP range', '10.96.0.0/12')
    .option('--kubelet-client-certificate <file>', 'client certificate (PEM) for the kubelet API (logs, exec, attach)')
    .option('--kubelet-client-key <file>', 'key (PEM) of --kubelet-client-certificate')
    .option('--kubelet-certificate-authority <file>', 'CA (PEM) that signs the kubelets\' serving certificates; verified only when given')
    .option('--metric-resolution <duration>', 'how often every kubelet\'s /metrics/resource is scraped for metrics.k8s.io (kubectl top); 0 turns it off', '15s')
    .option('--repair', 'file store: start from a damaged log by keeping every record before the first damaged one')
    .option('--secure-listen <host:port>', 'also serve TLS with authentication here (e.g. the node address, for `knode join`)')
    .option('--token-auth-file <file>', 'static bearer tokens, CSV token,user,uid,"group1,group2" (kube-apiserver --token-auth-file)')
    .option('--csr-min-duration <duration>', 'shortest certificate the CSR signer issues (upstream 10m; smaller for rotation tests)', '10m');

  add('agent', 'run the node agent (kubelet): pods from the API and the static pod directory')
    .option('--kubeconfig <file>', 'kubeconfig to reach the API server (written by TLS bootstrap with --bootstrap-kubeconfig)')
    .option('--bootstrap-kubeconfig <file>', 'kubeconfig with a bootstrap token: used to request a client certificate when --kubeconfig is missing or its certificate is invalid or expired')
    .option('--cert-dir <dir>', 'where the client and serving certificates are kept (default: <root-dir>/pki)')
    .option('--config <file>', 'KubeletConfiguration file (kubelet.config.k8s.io/v1beta1)')
    .option('--hostname-override <name>', 'node name instead of the hostname')
    .option('--root-dir <dir>', 'directory for pod volumes and agent state', '/var/lib/knode/kubelet')
    .option('--container-runtime-endpoint <url>', 'Docker Engine socket; overrides containerRuntimeEndpoint of --config (default: unix:///var/run/docker.sock)')
    .option('--pod-infra-container-image <image>', 'pause image for pod sandboxes', 'knode.local/pause:3.10')
    .option('--cni-conf-dir <dir>', 'CNI network configurations', '/etc/cni/net.d')
    .option('--cni-bin-dir <dir>', 'CNI plugin binaries', '/opt/cni/bin')
    .option('--node-ip <ip>', "the node's InternalIP (default: env KNODE_NODE_IP, else the first non-loopback IPv4)")
    .option('--node-labels <k=v,...>', 'labels to register the node with (added to nodeLabels of --config)')
    .option('--register-with-taints <key=value:Effect,...>', 'taints to register the node with (replaces registerWithTaints of --config)')
    .option('--v <level>', 'klog verbosity: 0-2 info, 3-4 debug, 5+ trace (--log-level wins)')
    .option('--cleanup', "remove the agent's containers and pod cgroups and exit");

  add('proxy', 'run the service proxy (kube-proxy): Services become iptables rules, nftables (netlink) or IPVS')
    .option('--kubeconfig <file>', 'kubeconfig to reach the API server')
    .option('--config <file>', 'KubeProxyConfiguration file (kubeproxy.config.k8s.io/v1alpha1)')
    .addOption(new Option('--proxy-mode <mode>', 'dataplane').choices(['iptables', 'ipvs', 'nftables']))
    .option('--hostname-override <name>', 'node name instead of the hostname')
    .option('--v <level>', 'klog verbosity: 0-2 info, 3-4 debug, 5+ trace (--log-level wins)')
    .option('--cleanup', 'remove every rule the proxy created and exit');

  add('overlay', 'run the overlay daemon (flanneld): subnet lease and VXLAN peers')
    .option('--kubeconfig <file>', 'kubeconfig to reach the API server')
    .option('--net-conf <file>', "flannel net-conf.json", '/etc/knode/net-conf.json')
    .option('--iface <name>', 'interface for inter-node traffic (default: the default-route interface)')
    .option('--subnet-file <file>', 'where the lease is written for the CNI plugin', '/run/flannel/subnet.env')
    .option('--hostname-override <name>', 'node name instead of the hostname')
    .option('--ip-masq', "masquerade pod traffic leaving the cluster network (flanneld's --ip-masq)")
    .option('--cleanup', 'remove the VXLAN device, masquerade rules, CNI bridge and subnet file and exit');

  add('dns', 'serve cluster DNS on this node (Service and pod names, forwarding the rest)')
    .option('--kubeconfig <file>', 'kubeconfig to reach the API server')
    .option('--kubelet-config <file>', 'KubeletConfiguration to take clusterDomain and clusterDNS from')
    .option('--cluster-domain <domain>', 'cluster domain (default: clusterDomain of --kubelet-config, else cluster.local)')
    .option('--cluster-dns <ip>', 'the kube-dns ClusterIP pods use (default: clusterDNS of --kubelet-config)')
    .option('--resolv-conf <file>', 'upstream resolvers for names outside the cluster domain', '/etc/resolv.conf')
    .option('--bind-address <ip>', 'address to serve on (default: the node\'s InternalIP)')
    .option('--port <port>', 'DNS port (UDP and TCP)', '53')
    .option('--health-bind-address <host:port>', '/health, /ready and /metrics', '127.0.0.1:9153')
    .option('--serving-processes <n>', 'processes answering UDP queries on the one socket (default: 2, 1 on a one-core node)')
    .option('--hostname-override <name>', 'node name instead of the hostname')
    .option('--no-publish', 'do not create the kube-dns Service nor publish this node as its endpoint');

  add('up', 'run a whole single-node cluster in the foreground').option('--data-dir <dir>', 'cluster state', '/var/lib/knode')
    .option('--iface <name>', 'overlay interface (default: the default-route interface, else the first UP one with IPv4)')
    .option('--container-runtime-endpoint <url>', 'Docker Engine socket', 'unix:///var/run/docker.sock')
    .option('--cluster-cidr <cidr>', 'pod network', '10.244.0.0/16')
    .option('--service-cidr <cidr>', 'ClusterIP range', '10.96.0.0/12')
    .option('--listen <host:port>', 'control plane address', '127.0.0.1:6443')
    .option('--hostname-override <name>', 'node name instead of the hostname')
    .addOption(new Option('--proxy-mode <mode>', 'service proxy dataplane').choices(['iptables', 'nftables']).default('iptables'));

  add('join', 'join this machine to a cluster as a node: verify the CA, bootstrap the node credential, run the node\'s components')
    .option('--server <url>', 'the API server, https://HOST:6443')
    .option('--token <token>', 'bootstrap token [a-z0-9]{6}.[a-z0-9]{16} (`knode token create`)')
    .option('--discovery-token-ca-cert-hash <sha256:hex>', 'pin of the cluster CA\'s public key (comma-separated for several)')
    .option('--ca-cert <file>', 'trust this CA (PEM) instead of a pinned hash')
    .option('--data-dir <dir>', 'put everything below this directory (default: /etc/knode and /var/lib/knode)')
    .option('--iface <name>', 'overlay interface (default: the default-route interface, else the first UP one with IPv4)')
    .option('--hostname-override <name>', 'node name instead of the hostname')
    .option('--container-runtime-endpoint <url>', 'Docker Engine socket', 'unix:///var/run/docker.sock')
    .option('--cluster-cidr <cidr>', 'the cluster\'s pod network (the control plane\'s --cluster-cidr)', '10.244.0.0/16')
    .option('--service-cidr <cidr>', 'the cluster\'s ClusterIP range (the control plane\'s --service-cidr)', '10.96.0.0/12')
    .addOption(new Option('--proxy-mode <mode>', 'service proxy dataplane').choices(['iptables', 'nftables']).default('iptables'))
    .option('--systemd', 'install and start the systemd units (systemd/install.sh) instead of running in the foreground');

  add('down', 'stop a running `knode up`; --purge also removes everything it created')
    .option('--data-dir <dir>', 'cluster state', '/var/lib/knode')
    .option('--container-runtime-endpoint <url>', 'Docker Engine socket', 'unix:///var/run/docker.sock')
    .option('--purge', 'remove containers, rules, devices and the data dir');

  add('uninstall', 'remove a systemd install completely: stop and disable the units, run each component\'s cleanup, remove every installed file')
    .option('--root <dir>', 'remove the files of a staging root (install.sh --root) instead; systemd and the kernel are left alone');
  add('version', "print knode's version and the Kubernetes API version it implements");
  add('token', 'manage bootstrap tokens for `knode join` (as kubeadm token)')
    .argument('<action>', 'create [TOKEN], list or delete TOKEN|ID...')
    .argument('[tokens...]')
    .option('--kubeconfig <file>', 'an admin kubeconfig')
    .option('--ttl <duration>', 'create: lifetime of the token (0: never expires)', '24h')
    .option('--description <text>', 'create: a human-readable description')
    .option('--print-join-command', 'create: print the `knode join` command instead of the token');

  add('install-cni', 'install the knode CNI plugin into a CNI bin dir')
    .option('--bin-dir <dir>', 'CNI bin dir', '/opt/cni/bin')
    .option('--conf-dir <dir>', 'also write the default conflist here');
}

function buildProgram(onRun: (name: string, options: CommandOptions) => void): Command {
  const program = new Command('knode')
    .description('A Kubernetes worker node: agent (kubelet), proxy (kube-proxy), overlay + CNI plugin (flannel), control-plane stub')
    .version(packageVersion(), '--version')
    .option('--log-level <level>', 'trace, debug, info, warn, error, fatal or silent (env KNODE_LOG_LEVEL)')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride()
    .configureOutput({ writeErr: (text) => process.stderr.write(text) });
  defineCommands(program, onRun);
  for (const command of program.commands) command.exitOverride();
  return program;
}

function waitForSignalOrEnd(stoppable: Stoppable, log: Logger): Promise<number> {
  return new Promise((resolve) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      log.info({ signal }, 'shutting down');
      stoppable.stop().then(
        () => resolve(0),
        (error: unknown) => {
          log.error({ err: error }, 'shutdown failed');
          resolve(1);
        },
      );
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
    stoppable.done?.then(
      () => resolve(0),
      (error: unknown) => {
        process.stderr.write(`knode: ${describeError(error)}\n`);
        resolve(1);
      },
    );
  });
}

/** Runs the CLI and resolves to the process exit code. */
export async function main(argv: string[]): Promise<number> {
  let chosen: { name: string; options: CommandOptions } | undefined;
  const program = buildProgram((name, options) => {
    chosen = { name, options };
  });
  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (error) {
    if (error instanceof CommanderError) {
      const helpOrVersion = ['commander.helpDisplayed', 'commander.version', 'commander.help'].includes(error.code);
      return helpOrVersion ? 0 : 2;
    }
    throw error;
  }
  if (!chosen) {
    program.outputHelp();
    return 2;
  }
  let log: Logger;
  try {
    const v = chosen.options.v;
    const level = (chosen.options.logLevel as string | undefined) ?? (typeof v === 'string' ? klogLevel(v) : undefined);
    log = createLogger(chosen.name, resolveLogLevel(level));
  } catch (error) {
    process.stderr.write(`knode: ${describeError(error)}\n`);
    return 2;
  }
  try {
    if (smallYoungGeneration.has(chosen.name)) v8.setFlagsFromString('--semi-space-growth-factor=1');
    const { run } = await runners[chosen.name]!();
    const stoppable = await run(chosen.options, log);
    return stoppable ? await waitForSignalOrEnd(stoppable, log) : 0;
  } catch (error) {
    process.stderr.write(`knode ${chosen.name}: ${describeError(error)}\n`);
    return error instanceof ConfigError ? error.exitCode : 1;
  }
}
