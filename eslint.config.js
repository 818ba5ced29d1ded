// Lint (run by the test command, scripts/test.sh): promises are never left floating or passed
// where a callback's result is ignored, and errors are logged one way — the error object under
// `err` (pino's serializer keeps message, stack and cause), never a string made from it.
import tseslint from 'typescript-eslint';

const productFolders = ['bin', 'lib', 'agent', 'cni', 'overlay', 'dns', 'proxy', 'cri', 'probes', 'eviction', 'controlplane'];

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', '.tmp/**'] },
  {
    files: [...productFolders.map((folder) => `${folder}/**/*.ts`), 'bench/**/*.ts', 'test/**/*.ts'],
    languageOptions: {
      parser: tseslint.parser,
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    plugins: { '@typescript-eslint': tseslint.plugin },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      'no-restricted-syntax': [
        'error',
        {
          selector: "Property[key.name='err'][value.type='CallExpression'][value.callee.name=/^(describeError|String)$/]",
          message: 'log the error object itself under `err` (pino serializes it), not a string made from it',
        },
        {
          selector: "Property[key.name='err'][value.type=/^(Literal|TemplateLiteral)$/]",
          message: 'log the error object itself under `err`, not a string',
        },
      ],
    },
  },
  {
    // One runtime copy of client-node per process, the bundled one (lib/kube-client.ts says why).
    files: productFolders.map((folder) => `${folder}/**/*.ts`),
    ignores: ['lib/kube-client.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        { paths: [{ name: '@kubernetes/client-node', allowTypeImports: true, message: 'import values from lib/kube-client.js (types may come from the package)' }], patterns: [{ group: ['@kubernetes/client-node/*'], allowTypeImports: true, message: 'import values from lib/kube-client.js' }] },
      ],
    },
  },
);
