/**
 * The one runtime entry to @kubernetes/client-node in the product (types still come from the
 * package itself; eslint refuses other value imports of it). Why: the package's index loads every
 * generated API group and model, ~30 MB of JavaScript whose source V8 keeps in the heap: +66 MiB
 * of RSS over a bare node in every process that imports it (issue 24; `knode agent` was 130 MiB
 * at 0 pods). `npm run build` bundles the compiled copy of this file with esbuild
 * (scripts/bundle-kube-client.mjs): only the client-node code reachable from the names below is
 * kept (API groups not named here, exec/attach/cp/metrics, … are dropped), +24 MiB, and
 * minified without renaming (comments and whitespace out: 2.6 MiB less heap). Tests run this
 * file as written: a plain re-export of the package.
 */
export {
  AuthenticationV1Api,
  AuthorizationV1Api,
  CertificatesV1Api,
  CoordinationV1Api,
  CoreV1Api,
  DiscoveryV1Api,
  KubeConfig,
  ListWatch,
  PatchStrategy,
  setHeaderOptions,
  V1MicroTime,
  Watch,
} from '@kubernetes/client-node';
/** Every generated model class by name (the control plane reads their attribute type maps). */
export * as models from '@kubernetes/client-node/dist/gen/models/all.js';
