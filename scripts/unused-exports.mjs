#!/usr/bin/env node
// Exports of the product folders that nothing in the product imports: only tests or benches
// ("test-only"), or nobody ("unused"). The product should export what the product uses; test
// support lives in test/helpers, and a test reaches a private helper through the public function
// that uses it. Uses the TypeScript compiler (the project's tsconfig.json, which covers product,
// tests and benches): every import, re-export and dynamic import is resolved to the declaration
// it names, through barrels (probes/index.ts) and aliases. A namespace import or a dynamic
// import counts as a use of every export of its target.
//
//   node scripts/unused-exports.mjs           # one line per export: "<kind> <file> <name> (type|value)"
//   node scripts/unused-exports.mjs --json    # [{ kind, file, name, declaration }]
// test/unit/structure.test.ts runs it and compares with its allow-list.
import { dirname, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const productFolders = ['bin', 'lib', 'agent', 'cni', 'overlay', 'dns', 'proxy', 'cri', 'probes', 'eviction', 'controlplane'];

const folderOf = (file) => relative(root, file).split('/')[0];
const isProduct = (file) => productFolders.includes(folderOf(file)) && !file.endsWith('.d.ts');
const isOurs = (file) => !file.includes('/node_modules/') && relative(root, file) !== '' && !relative(root, file).startsWith('..');

function program() {
  const configPath = resolve(root, 'tsconfig.json');
  const config = ts.readConfigFile(configPath, ts.sys.readFile);
  const parsed = ts.parseJsonConfigFileContent(config.config, ts.sys, root);
  return ts.createProgram({ rootNames: parsed.fileNames, options: { ...parsed.options, noEmit: true } });
}

/** The original declaration symbol behind an alias (import, re-export). */
function original(checker, symbol) {
  let current = symbol;
  for (let i = 0; i < 10 && current && current.flags & ts.SymbolFlags.Alias; i++) current = checker.getAliasedSymbol(current);
  return current;
}

export function findUnusedExports() {
  const prog = program();
  const checker = prog.getTypeChecker();
  const files = prog.getSourceFiles().filter((sf) => isOurs(sf.fileName));
  /** declaration symbol → set of importer files */
  const users = new Map();
  const use = (symbol, importer) => {
    const target = original(checker, symbol);
    if (!target) return;
    if (!users.has(target)) users.set(target, new Set());
    users.get(target).add(importer);
  };
  const useAll = (moduleSpecifier, importer) => {
    const moduleSymbol = checker.getSymbolAtLocation(moduleSpecifier);
    if (!moduleSymbol) return;
    for (const exported of checker.getExportsOfModule(moduleSymbol)) use(exported, importer);
  };
  for (const sf of files) {
    const visit = (node) => {
      if (ts.isImportDeclaration(node) && node.importClause) {
        const clause = node.importClause;
        if (clause.name) use(checker.getSymbolAtLocation(clause.name), sf.fileName);
        const bindings = clause.namedBindings;
        if (bindings && ts.isNamespaceImport(bindings)) useAll(node.moduleSpecifier, sf.fileName);
        if (bindings && ts.isNamedImports(bindings)) for (const element of bindings.elements) use(checker.getSymbolAtLocation(element.name), sf.fileName);
      } else if (ts.isExportDeclaration(node) && node.moduleSpecifier) {
        // A re-export is no use by itself: what reaches a user through it is resolved at the user.
      } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword && node.arguments[0] && ts.isStringLiteral(node.arguments[0])) {
        useAll(node.arguments[0], sf.fileName);
      } else if (ts.isImportTypeNode(node) && node.qualifier) {
        // import('./x.js').Name in a type position
        const symbol = checker.getSymbolAtLocation(node.qualifier);
        if (symbol) use(symbol, sf.fileName);
      }
      ts.forEachChild(node, visit);
    };
    visit(sf);
  }
  const found = [];
  for (const sf of files.filter((f) => isProduct(f.fileName))) {
    const moduleSymbol = checker.getSymbolAtLocation(sf);
    if (!moduleSymbol) continue;
    for (const exported of checker.getExportsOfModule(moduleSymbol)) {
      const target = original(checker, exported);
      // Only the module that declares a symbol answers for it (a barrel's re-exports are not its own).
      if (!target?.declarations?.some((d) => d.getSourceFile() === sf)) continue;
      const importers = [...(users.get(target) ?? [])].filter((file) => file !== sf.fileName);
      if (importers.some(isProduct)) continue;
      const typeOnly = !(target.flags & ts.SymbolFlags.Value);
      found.push({ kind: importers.length > 0 ? 'test-only' : 'unused', file: relative(root, sf.fileName), name: exported.getName(), declaration: typeOnly ? 'type' : 'value' });
    }
  }
  return found.sort((a, b) => (a.file === b.file ? a.name.localeCompare(b.name) : a.file.localeCompare(b.file)));
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const found = findUnusedExports();
  if (process.argv.includes('--json')) process.stdout.write(`${JSON.stringify(found, null, 1)}\n`);
  else for (const entry of found) process.stdout.write(`${entry.kind} ${entry.file} ${entry.name} (${entry.declaration})\n`);
}
