// Part of `npm run build`, after tsc: replaces dist/lib/kube-client.js (a re-export of
// @kubernetes/client-node) by one module holding only the client-node code it reaches, with the
// package's own dependencies (node-fetch, openid-client, js-yaml, …) tree-shaken into it too;
// lib/kube-client.ts says why. Node built-ins and the packages knode itself depends on stay imports.
import { readFileSync, writeFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { build } from 'esbuild';

const root = new URL('../', import.meta.url);
const file = new URL('dist/lib/kube-client.js', root).pathname;
const own = new Set(Object.keys(JSON.parse(readFileSync(new URL('package.json', root), 'utf8')).dependencies));
own.delete('@kubernetes/client-node');
const packageName = (path) => path.split('/').slice(0, path.startsWith('@') ? 2 : 1).join('/');

const result = await build({
  entryPoints: [file],
  outfile: file,
  allowOverwrite: true,
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  sourcemap: true,
  // V8 keeps a module's whole source text in the heap for as long as the process runs (lazy
  // compilation, Function.prototype.toString): without comments and whitespace the bundle's
  // source is 4.9 → 2.2 MB and a process that imports it has 2.6 MiB less heap (8.2 → 5.6 MiB
  // over a bare node, issue 24). Identifiers are kept (readable stack traces, class names);
  // the source map still points into the packages' own files.
  minifyWhitespace: true,
  minifySyntax: true,
  legalComments: 'none',
  logLevel: 'warning',
  write: false,
  // The CommonJS dependencies call require() (of built-ins and of shared packages such as ws).
  banner: { js: "import { createRequire as createRequireForBundle } from 'node:module';\nconst require = createRequireForBundle(import.meta.url);" },
  plugins: [
    {
      name: 'keep-shared-imports',
      setup(builder) {
        // A package knode depends on itself stays an import when imported (one copy in memory), but
        // is bundled when a CommonJS module require()s it: a require() of an external would stay a
        // run-time lookup that a later bundle of the CLI (bench/lib/qemu.ts, the IPVS guest)
        // cannot see (client-node requires ws).
        builder.onResolve({ filter: /^[^./]/ }, ({ path, kind }) => (path.startsWith('node:') || builtinModules.includes(path) || (own.has(packageName(path)) && kind !== 'require-call') ? { path, external: true } : undefined));
        // node-fetch 2 takes URL from node:url and whatwg-url only where there is none; whatwg-url's
        // IDNA mapping table (tr46) alone is 1.5 MiB of heap.
        builder.onResolve({ filter: /^whatwg-url$/ }, () => ({ path: 'whatwg-url', namespace: 'node-url' }));
        builder.onLoad({ filter: /.*/, namespace: 'node-url' }, () => ({ contents: "import { URL } from 'node:url';\nexport { URL };\nexport default { URL };\n", loader: 'js' }));
      },
    },
  ],
});

// esbuild escapes non-ASCII characters in code but not in the comments of the CommonJS modules it
// wraps (js-yaml's “…”, ip-address's §): one such character makes V8 keep the whole 5 MB source
// as a two-byte string, twice the memory. \uXXXX is the same character in a string, regular
// expression or identifier, and plain text in a comment.
for (const output of result.outputFiles) {
  writeFileSync(output.path, output.path.endsWith('.js') ? output.text.replace(/[^\x00-\x7f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`) : output.contents);
}
