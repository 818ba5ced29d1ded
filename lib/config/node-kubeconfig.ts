/**
 * The kubeconfigs a node writes for itself (kubelet bootstrap writeKubeconfigFromBootstrapping,
 * kubeadm's bootstrap-kubelet.conf): one cluster "default-cluster" with the server and the CA
 * inline, one user "default-auth" with either a bearer token (the bootstrap token) or client
 * certificate and key files (the cert dir's *-current.pem, which holds both).
 */
import { stringify } from 'yaml';
import { readKubeconfig } from './kubeconfig.js';
import { readFileSync } from 'node:fs';

interface NodeKubeconfig {
  server: string;
  /** The cluster CA, PEM; without it the system CAs verify the server. */
  caPem?: string;
  token?: string;
  clientCertificate?: string;
  clientKey?: string;
}

export function nodeKubeconfigText(params: NodeKubeconfig): string {
  const user: Record<string, string> = {};
  if (params.token) user.token = params.token;
  if (params.clientCertificate) user['client-certificate'] = params.clientCertificate;
  if (params.clientKey) user['client-key'] = params.clientKey;
  return stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'default-cluster', cluster: { server: params.server, ...(params.caPem ? { 'certificate-authority-data': Buffer.from(params.caPem).toString('base64') } : {}) } }],
    users: [{ name: 'default-auth', user }],
    contexts: [{ name: 'default-context', context: { cluster: 'default-cluster', user: 'default-auth', namespace: 'default' } }],
    'current-context': 'default-context',
  });
}

/** Server and CA (PEM) of a kubeconfig's current cluster; the CA may be inline or a file. */
export function clusterOf(file: string): { server: string; caPem?: string; token?: string; certFile?: string; keyFile?: string; certData?: string; keyData?: string } {
  const data = readKubeconfig(file);
  const context = data.contexts.find((entry) => entry.name === data['current-context'])!.context;
  const cluster = data.clusters.find((entry) => entry.name === context.cluster)!.cluster;
  const user = data.users.find((entry) => entry.name === context.user)?.user ?? {};
  const caPem = cluster['certificate-authority-data'] ? Buffer.from(cluster['certificate-authority-data'], 'base64').toString('utf8') : cluster['certificate-authority'] ? readFileSync(cluster['certificate-authority'], 'utf8') : undefined;
  const token = user.token ?? (user.tokenFile ? readFileSync(user.tokenFile, 'utf8').trim() : undefined);
  return {
    server: cluster.server,
    ...(caPem ? { caPem } : {}),
    ...(token ? { token } : {}),
    ...(user['client-certificate'] ? { certFile: user['client-certificate'] } : {}),
    ...(user['client-key'] ? { keyFile: user['client-key'] } : {}),
    ...(user['client-certificate-data'] ? { certData: Buffer.from(user['client-certificate-data'], 'base64').toString('utf8') } : {}),
    ...(user['client-key-data'] ? { keyData: Buffer.from(user['client-key-data'], 'base64').toString('utf8') } : {}),
  };
}
