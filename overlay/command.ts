import { existsSync } from 'node:fs';
import { optionalString, requireKubeconfig, type Runner } from '../lib/command-options.js';
import { loadKubeconfig } from '../lib/config/kubeconfig.js';
import { loadNetConf } from '../lib/config/netconf.js';
import { notifyReady } from '../lib/sd-notify.js';
import { netConfUnimplemented } from '../lib/config/support-netconf.js';
import { warnUnimplemented } from '../lib/config/support.js';
import { cleanupOverlay } from './cleanup.js';
import { OverlayDaemon } from './daemon.js';

/** `knode overlay` (flanneld equivalent): see overlay/daemon.ts; `--cleanup`: overlay/cleanup.ts. */
export const run: Runner = async (options, log) => {
  const netConfFile = optionalString(options, 'netConf') ?? '/etc/knode/net-conf.json';
  const subnetFile = optionalString(options, 'subnetFile') ?? '/run/flannel/subnet.env';
  if (options.cleanup === true) {
    // The VNI names the device; without a readable net-conf.json flannel's default (1) is assumed.
    const vni = existsSync(netConfFile) ? loadNetConf(netConfFile).Backend.VNI : undefined;
    const removed = await cleanupOverlay({ vni, subnetFile });
    log.info({ removed }, 'removed the overlay\'s devices, rules and files');
    return;
  }
  const kubeconfigFile = requireKubeconfig(options);
  const netConf = loadNetConf(netConfFile);
  warnUnimplemented(log, 'net-conf.json', netConfUnimplemented(netConf));
  const daemon = new OverlayDaemon({
    kubeconfig: await loadKubeconfig(kubeconfigFile),
    netConf,
    nodeName: optionalString(options, 'hostnameOverride'),
    iface: optionalString(options, 'iface'),
    subnetFile,
    ipMasq: options.ipMasq === true,
    log,
  });
  await daemon.start();
  // Ready = lease written to the subnet file, CNI socket serving, peers synced (daemon.ts start()).
  await notifyReady(log, `subnet lease written to ${subnetFile}`);
  return daemon;
};
