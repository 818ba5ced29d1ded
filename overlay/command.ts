import type { Runner } from '../lib/command-options.js';
import { optionalString, requireKubeconfig } from '../lib/command-options.js';
import { loadKubeconfig } from '../lib/config/kubeconfig.js';
import { loadNetConf } from '../lib/config/netconf.js';
import { OverlayDaemon } from './daemon.js';

/** `knode overlay` (flanneld equivalent): see overlay/daemon.ts. */
export const run: Runner = async (options, log) => {
  const kubeconfigFile = requireKubeconfig(options);
  const netConf = loadNetConf(optionalString(options, 'netConf') ?? '/etc/knode/net-conf.json');
  const daemon = new OverlayDaemon({
    kubeconfig: await loadKubeconfig(kubeconfigFile),
    netConf,
    nodeName: optionalString(options, 'hostnameOverride'),
    iface: optionalString(options, 'iface'),
    subnetFile: optionalString(options, 'subnetFile') ?? '/run/flannel/subnet.env',
    ipMasq: options.ipMasq === true,
    log,
  });
  await daemon.start();
  return daemon;
};
