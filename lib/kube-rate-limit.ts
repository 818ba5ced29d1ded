/**
 * kubeAPIQPS / kubeAPIBurst (KubeletConfiguration; client-go rest.Config QPS/Burst): every request
 * the agent's API clients send — made with makeApiClient (applySecurityAuthentication) or as a
 * watch, log or exec stream (applyToHTTPSOptions) — first takes a token from one bucket shared by
 * the whole KubeConfig, as client-go's per-client rate limiter. The KubeConfig is changed in
 * place (its two request hooks wrapped), so that whatever loadKubeconfig returned (e.g. with
 * API server failover) keeps working.
 */
import type { KubeConfig } from '@kubernetes/client-node';
import { TokenBucket } from './token-bucket.js';
import type { Clock } from './clock.js';

interface RateLimitedKubeConfig {
  bucket: TokenBucket;
}

export function rateLimitKubeConfig(kc: KubeConfig, qps: number, burst: number, clock?: Clock): RateLimitedKubeConfig {
  const bucket = new TokenBucket(qps, burst, clock);
  const authenticate = kc.applySecurityAuthentication.bind(kc);
  const https = kc.applyToHTTPSOptions.bind(kc);
  kc.applySecurityAuthentication = async (context) => {
    await bucket.take();
    return authenticate(context);
  };
  kc.applyToHTTPSOptions = async (options) => {
    await bucket.take();
    return https(options);
  };
  return { bucket };
}
