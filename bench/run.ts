/**
 * `npm run bench`: runs every benchmark in bench/ one after another (they measure the machine,
 * so never in parallel), streams each one's figures, and keeps each output under
 * bench/results/<name>.txt. Each benchmark prints its own table with its baseline measured in
 * the same run. `npm run bench -- NAME…` runs only the named ones.
 */
import { spawn } from 'node:child_process';
import { createWriteStream, mkdirSync, readdirSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const resultsDir = join(here, '..', '..', 'bench', 'results');

function benchmarks(): string[] {
  return readdirSync(here)
    .filter((file) => file.endsWith('.js') && file !== 'run.js')
    .map((file) => basename(file, '.js'))
    .sort();
}

function runOne(name: string): Promise<{ code: number; seconds: number }> {
  const started = Date.now();
  const out = createWriteStream(join(resultsDir, `${name}.txt`));
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--expose-gc', join(here, `${name}.js`)], { stdio: ['ignore', 'pipe', 'pipe'] });
    for (const stream of [child.stdout, child.stderr]) {
      stream.on('data', (chunk: Buffer) => {
        process.stdout.write(chunk);
        out.write(chunk);
      });
    }
    child.on('close', (code) => {
      out.end();
      resolve({ code: code ?? 1, seconds: (Date.now() - started) / 1000 });
    });
  });
}

const wanted = process.argv.slice(2);
const names = wanted.length > 0 ? wanted : benchmarks();
mkdirSync(resultsDir, { recursive: true });
const summary: string[] = [];
let failed = 0;
for (const name of names) {
  process.stdout.write(`\n=== ${name}\n`);
  const { code, seconds } = await runOne(name);
  if (code !== 0) failed++;
  summary.push(`${name.padEnd(28)} ${code === 0 ? 'ok    ' : `exit ${code}`} ${seconds.toFixed(1)} s`);
}
process.stdout.write(`\n${summary.join('\n')}\noutputs in ${resultsDir}\n`);
process.exit(failed > 0 ? 1 : 0);
