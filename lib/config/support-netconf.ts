/**
 * flannel net-conf.json: every accepted field, honoured (with the test that proves it) or not
 * implemented (named in the overlay's one start-up warning when set). See lib/config/support.ts.
 */
import { parseNetConf, type NetConf } from './netconf.js';
import { unimplementedSettings, type FieldSupport, type SupportTable } from './support.js';

const h = (test: string, name: string, note?: string): FieldSupport => ({ status: 'honoured', test, name, ...(note ? { note } : {}) });
const no = (note?: string): FieldSupport => ({ status: 'not implemented', ...(note ? { note } : {}) });

const policy = 'test/unit/overlay-policy.test.ts';
const multinode = 'test/integration/overlay-multinode.test.ts';

export const netConfSupport: SupportTable = {
  Network: h(policy, 'leases podCIDR inside Network, refuses the rest'),
  SubnetLen: no('the subnet size is the node IPAM\'s (controlplane --cluster-cidr gives each node a /24), as with flannel\'s kube subnet manager'),
  SubnetMin: h(policy, 'net-conf SubnetMin/SubnetMax bound the lease', 'the node IPAM allocates; the overlay refuses a podCIDR outside the bounds'),
  SubnetMax: h(policy, 'net-conf SubnetMin/SubnetMax bound the lease', 'the node IPAM allocates; the overlay refuses a podCIDR outside the bounds'),
  EnableIPv4: no('IPv4 is always on'),
  EnableIPv6: no('no IPv6 overlay'),
  'Backend.Type': h('test/unit/config.test.ts', 'reads the usual flannel config', 'vxlan only; anything else is refused'),
  'Backend.VNI': h(policy, 'wants every other node with the same VNI'),
  'Backend.Port': h(multinode, 'pod→pod across nodes (ping and TCP)', 'the VXLAN device\'s UDP port'),
  'Backend.DirectRouting': h('test/integration/overlay-directrouting.test.ts', 'routes same-subnet peers directly and pods still reach each other'),
  'Backend.GBP': no(),
  'Backend.MTU': h(policy, 'sizes the VXLAN MTU 50 below the underlay unless configured'),
  'Backend.MacPrefix': no(),
};

let defaults: NetConf | undefined;

/** Not-implemented fields this net-conf sets to something other than the default. */
export function netConfUnimplemented(conf: NetConf): string[] {
  defaults ??= parseNetConf({ Network: conf.Network }, '(defaults)');
  return unimplementedSettings(conf, defaults, netConfSupport);
}
