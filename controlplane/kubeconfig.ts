/** Writes the admin kubeconfig (clientcmd v1 Config) that points at this control plane. */
import { writeFileSync } from 'node:fs';
import { stringify } from 'yaml';

interface KubeconfigParams {
  server: string;
  token?: string;
  /** PEM of the CA (for us: the self-signed serving certificate). */
  caPem?: string;
  clusterName?: string;
}

export function kubeconfigText(params: KubeconfigParams): string {
  const clusterName = params.clusterName ?? 'knode';
  const cluster: Record<string, string | boolean> = { server: params.server };
  if (params.caPem) cluster['certificate-authority-data'] = Buffer.from(params.caPem).toString('base64');
  // client-node 1.x refuses plain http:// servers unless insecure-skip-tls-verify is set
  // ("HTTP protocol is not allowed when skipTLSVerify is not set or false"); kubectl ignores it for http.
  if (params.server.startsWith('http://')) cluster['insecure-skip-tls-verify'] = true;
  const user: Record<string, string> = params.token ? { token: params.token } : {};
  return stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: clusterName, cluster }],
    users: [{ name: 'admin', user }],
    contexts: [{ name: clusterName, context: { cluster: clusterName, user: 'admin', namespace: 'default' } }],
    'current-context': clusterName,
  });
}

/** Written with mode 0600: it may carry the bearer token. */
export function writeKubeconfig(file: string, params: KubeconfigParams): void {
  writeFileSync(file, kubeconfigText(params), { mode: 0o600 });
}
