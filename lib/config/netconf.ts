/**
 * flannel's net-conf.json (https://github.com/flannel-io/flannel/blob/master/Documentation/configuration.md).
 * knode implements the vxlan backend only; flannel's defaults apply where it is silent:
 * SubnetLen 24 (when Network is larger than /24), VNI 1, Port 8472 (the Linux kernel's VXLAN
 * port, flannel's default), DirectRouting false. A missing Backend means vxlan here (flannel's
 * own default, udp, is not offered).
 */
import { z } from 'zod';
import { isValidCIDR, canonicalCIDR, cidrContains } from '../net.js';

const ipNumber = (address: string): number => address.split('.').reduce((n, part) => n * 256 + Number(part), 0);
import { readConfigDocument, validateConfig } from './load.js';

const cidr = z.string().refine(isValidCIDR, 'must be a CIDR such as 10.244.0.0/16');

export const netConfSchema = z
  .object({
    Network: cidr,
    SubnetLen: z.number().int().min(1).max(32).optional(),
    SubnetMin: z.ipv4({ error: 'must be an IPv4 address such as 10.244.10.0' }).optional(),
    SubnetMax: z.ipv4({ error: 'must be an IPv4 address such as 10.244.200.0' }).optional(),
    EnableIPv4: z.boolean().default(true),
    EnableIPv6: z.boolean().default(false),
    Backend: z
      .object({
        Type: z.literal('vxlan', { error: 'unsupported backend type (knode supports "vxlan")' }).default('vxlan'),
        VNI: z.number().int().min(1).max(16_777_215).default(1),
        Port: z.number().int().min(1).max(65535).default(8472),
        DirectRouting: z.boolean().default(false),
        GBP: z.boolean().default(false),
        MTU: z.number().int().min(576).max(65535).optional(),
        MacPrefix: z.string().optional(),
      })
      .prefault({}),
  })
  .transform((conf, ctx) => {
    const networkBits = Number(conf.Network.split('/')[1]);
    // flannel: SubnetLen defaults to 24, or to the network's own length for networks of /24 and smaller.
    const subnetLen = conf.SubnetLen ?? (networkBits < 24 ? 24 : networkBits);
    if (subnetLen < networkBits) {
      ctx.addIssue({ code: 'custom', path: ['SubnetLen'], message: `SubnetLen ${subnetLen} is shorter than the Network's /${networkBits}` });
      return z.NEVER;
    }
    for (const field of ['SubnetMin', 'SubnetMax'] as const) {
      const address = conf[field];
      if (address && !cidrContains(conf.Network, `${address}/32`)) {
        ctx.addIssue({ code: 'custom', path: [field], message: `${address} is not inside the Network ${conf.Network}` });
        return z.NEVER;
      }
    }
    if (conf.SubnetMin && conf.SubnetMax && ipNumber(conf.SubnetMin) > ipNumber(conf.SubnetMax)) {
      ctx.addIssue({ code: 'custom', path: ['SubnetMin'], message: `SubnetMin ${conf.SubnetMin} is larger than SubnetMax ${conf.SubnetMax}` });
      return z.NEVER;
    }
    return { ...conf, Network: canonicalCIDR(conf.Network), SubnetLen: subnetLen };
  });

export type NetConf = z.output<typeof netConfSchema>;

export function parseNetConf(data: unknown, file: string): NetConf {
  return validateConfig(netConfSchema, data, file);
}

export function loadNetConf(file: string): NetConf {
  return parseNetConf(readConfigDocument(file), file);
}
