/**
 * The agent's certificates, wired as the kubelet wires them (cmd/kubelet/app/server.go
 * buildKubeletClientConfig, pkg/kubelet/certificate/kubelet.go):
 * - client: with --bootstrap-kubeconfig, TLS bootstrap first (bootstrap.ts); with
 *   rotateCertificates the kubelet-client pair is then renewed before it expires, through the
 *   current certificate (or the bootstrap credential once it has expired). The kubeconfig names
 *   kubelet-client-current.pem, which client-node reads for every request, so API calls switch
 *   to a new pair at once, in place.
 * - serving: tlsCertFile/tlsPrivateKeyFile when set; else with serverTLSBootstrap a
 *   kubelet-serving CSR for the node's addresses (renewed likewise, the server's TLS context
 *   switched in place); else a self-signed pair in <cert-dir>/kubelet.crt + kubelet.key, made once.
 */
import { existsSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import type { KubeConfig } from '@kubernetes/client-node';
import type { Clock } from '../../lib/clock.js';
import type { KubeletConfiguration } from '../../lib/config/kubelet.js';
import { clusterOf } from '../../lib/config/node-kubeconfig.js';
import { loadKubeconfig } from '../../lib/config/kubeconfig.js';
import { writeFileAtomic } from '../../lib/fs.js';
import type { Logger } from '../../lib/log.js';
import { defaultNodeIP } from '../node/manager.js';
import { loadClientCert, nodeSubject } from './bootstrap.js';
import { clientSigner, clientUsages, kubeCsrApi, servingSigner, servingUsages, type CsrApi } from './csr.js';
import { CertificateManager } from './manager.js';
import { selfSignedServing } from './pki.js';
import { CertificateStore, parsePair } from './store.js';

/** The kubelet server's certificate when it changes at run time (serverTLSBootstrap). */
export interface ServingTlsSource {
  current(): { cert: string; key: string } | undefined;
}

interface NodeCertificatesOptions {
  nodeName: string;
  config: KubeletConfiguration;
  kubeconfig: string;
  bootstrapKubeconfig?: string;
  certDir: string;
  nodeIP?: string;
  clock: Clock;
  log: Logger;
  /** CSR expirationSeconds (tests with short lifetimes); default: the signer's. */
  expirationSeconds?: number;
}

export class NodeCertificates {
  private client?: CertificateManager;
  private serving?: CertificateManager;
  /** Set when the server's TLS context follows a rotating pair. */
  servingTls?: ServingTlsSource;
  private onServingRotated: () => void = () => undefined;

  private constructor(private readonly options: NodeCertificatesOptions) {}

  /** Bootstraps the client certificate when needed and settles the serving certificate's source. */
  static async prepare(options: NodeCertificatesOptions): Promise<{ certificates: NodeCertificates; config: KubeletConfiguration }> {
    const certificates = new NodeCertificates(options);
    if (options.bootstrapKubeconfig) {
      await loadClientCert({ kubeconfig: options.kubeconfig, bootstrapKubeconfig: options.bootstrapKubeconfig, certDir: options.certDir, nodeName: options.nodeName, log: options.log.child({ part: 'bootstrap' }), ...(options.expirationSeconds ? { expirationSeconds: options.expirationSeconds } : {}) });
    }
    const config = await certificates.servingConfig();
    return { certificates, config };
  }

  /** The serving side: files as given, a self-signed pair, or (serverTLSBootstrap) a rotating source. */
  private async servingConfig(): Promise<KubeletConfiguration> {
    const { config, certDir, log, nodeName } = this.options;
    if (config.tlsCertFile || config.tlsPrivateKeyFile) {
      if (config.serverTLSBootstrap) log.warn('serverTLSBootstrap is ignored: tlsCertFile/tlsPrivateKeyFile are set (as the kubelet)');
      return config;
    }
    if (config.serverTLSBootstrap) {
      const store = new CertificateStore(certDir, 'kubelet-server');
      this.servingTls = {
        current: () => {
          const pair = this.serving?.current() ?? store.current();
          return pair ? { cert: pair.certPem, key: pair.keyPem } : undefined;
        },
      };
      return config;
    }
    const certFile = join(certDir, 'kubelet.crt');
    const keyFile = join(certDir, 'kubelet.key');
    const readable = existsSync(certFile) && existsSync(keyFile) && parsePair(readFileSync(certFile, 'utf8'), readFileSync(keyFile, 'utf8'));
    if (!readable) {
      const pair = await selfSignedServing(hostname(), this.servingNames());
      writeFileAtomic(keyFile, pair.keyPem, { mode: 0o600, mkdir: true });
      writeFileAtomic(certFile, pair.certPem, { mode: 0o644 });
      log.info({ certFile, node: nodeName }, 'self-signed serving certificate written (no tlsCertFile and no serverTLSBootstrap)');
    }
    return { ...config, tlsCertFile: certFile, tlsPrivateKeyFile: keyFile };
  }

  /** SANs of the serving certificate: the node's IP and host name (its status addresses). */
  private servingNames(): string[] {
    const ip = this.options.nodeIP ?? defaultNodeIP();
    return [...(ip ? [ip] : []), hostname()];
  }

  /** Starts rotation; `kubeConfig` is the agent's (node credential) API access. */
  async start(kubeConfig: KubeConfig, onServingRotated: () => void, nodeRegistered: () => boolean = () => true): Promise<void> {
    const { config, certDir, log, clock, nodeName, kubeconfig, bootstrapKubeconfig } = this.options;
    this.onServingRotated = onServingRotated;
    const common = { clock, ...(this.options.expirationSeconds ? { expirationSeconds: this.options.expirationSeconds } : {}) };
    if (config.rotateCertificates) {
      const store = new CertificateStore(certDir, 'kubelet-client');
      const user = clusterOf(kubeconfig);
      if (!user.certFile || resolve(user.certFile) !== resolve(store.currentPath)) {
        log.warn({ kubeconfig }, 'rotateCertificates: the kubeconfig\'s client certificate is not the cert dir\'s kubelet-client-current.pem (use --bootstrap-kubeconfig), so it is not rotated');
      } else {
        const nodeApi = kubeCsrApi(kubeConfig, log);
        const bootstrapApi = bootstrapKubeconfig && existsSync(bootstrapKubeconfig) ? kubeCsrApi(await loadKubeconfig(bootstrapKubeconfig, log), log) : undefined;
        this.client = new CertificateManager({
          ...common,
          store,
          template: () => ({ subject: nodeSubject(nodeName), sans: [] }),
          signerName: clientSigner,
          usages: clientUsages,
          // client-go newClientsetFn: the current certificate while valid, else the bootstrap credential.
          api: (current): CsrApi => (current || !bootstrapApi ? nodeApi : bootstrapApi),
          log: log.child({ part: 'client-certificate' }),
        });
        this.client.start();
      }
    }
    if (this.servingTls) {
      this.serving = new CertificateManager({
        ...common,
        store: new CertificateStore(certDir, 'kubelet-server'),
        // As the kubelet, the serving CSR waits for the Node (its addresses are what the approver checks).
        template: () => (nodeRegistered() ? { subject: nodeSubject(nodeName), sans: this.servingNames() } : undefined),
        signerName: servingSigner,
        usages: servingUsages,
        api: () => kubeCsrApi(kubeConfig, log),
        onRotated: () => this.onServingRotated(),
        log: log.child({ part: 'serving-certificate' }),
      });
      this.serving.start();
    }
  }

  async stop(): Promise<void> {
    await this.client?.stop();
    await this.serving?.stop();
  }
}
