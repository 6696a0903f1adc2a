/**
 * The scale bench alone (bench/scale.ts), on one server, printing its report section:
 *
 *   node dist/bench/scale-main.js [--server embedded|cluster] [--n 10000] [--due 1000] [--concurrency 16]
 *                                 [--cache N] [--wakes 50] [--wake-window 10] [--json FILE] [--out FILE] [--dir DIR]
 *
 * --wake-window is in seconds; --json writes the raw result (to render again), --out the markdown section.
 *
 *   node dist/bench/scale-main.js --registered 100000 [--server embedded|cluster] [--concurrency 16] [--out FILE]
 *
 * instead registers N mostly frozen workspaces and measures the server's database size, the worker's RSS, list
 * latency and the registration time (bench/scale-registered.ts).
 */
import fs from 'node:fs';
import { installInterruptCleanup } from './cleanup';
import { measureScale, scaleMarkdown, scaleServerName } from './scale';
import { SERVER_KINDS, ServerKind } from './scale-server';
import { measureRegistered, registeredMarkdown } from './scale-registered';

const FLAGS = ['server', 'n', 'due', 'concurrency', 'cache', 'wakes', 'wake-window', 'json', 'out', 'dir', 'registered'] as const;
type Flag = (typeof FLAGS)[number];

function parseArgs(argv: string[]): Partial<Record<Flag, string>> {
  const out: Partial<Record<Flag, string>> = {};
  for (let i = 0; i < argv.length; i++) {
    const m = /^--([a-z-]+)(?:=(.*))?$/.exec(argv[i]!);
    if (!m || !(FLAGS as readonly string[]).includes(m[1]!)) throw new Error(`unknown argument '${argv[i]}' (flags: ${FLAGS.map((f) => `--${f}`).join(' ')})`);
    const value = m[2] ?? argv[++i];
    if (value === undefined) throw new Error(`--${m[1]} needs a value`);
    out[m[1] as Flag] = value;
  }
  return out;
}

function whole(raw: string | undefined, name: string, fallback: number | undefined, min = 1): number | undefined {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be a whole number >= ${min}, got '${raw}'`);
  return n;
}

async function main(): Promise<void> {
  const a = parseArgs(process.argv.slice(2));
  const server = (a.server ?? 'embedded') as ServerKind;
  if (!SERVER_KINDS.includes(server)) throw new Error(`--server must be one of ${SERVER_KINDS.join(', ')}, got '${a.server}'`);
  const n = whole(a.n, 'n', 10_000)!;
  const due = whole(a.due, 'due', 1_000)!;
  if (due > n) throw new Error(`--due (${due}) must not exceed --n (${n})`);
  const windowS = a['wake-window'] === undefined ? 10 : Number(a['wake-window']);
  if (!(windowS >= 0)) throw new Error(`--wake-window must be seconds >= 0, got '${a['wake-window']}'`);
  installInterruptCleanup();
  if (a.registered !== undefined) {
    const reg = await measureRegistered({ server, n: whole(a.registered, 'registered', 0)!, concurrency: whole(a.concurrency, 'concurrency', 16)!, cacheSize: whole(a.cache, 'cache', undefined), baseDir: a.dir });
    const text = `## Registered, ${server}: ${reg.n.toLocaleString('en-US')} mostly frozen workspaces\n\n${registeredMarkdown(reg)}\n`;
    console.log(`\n${text}`);
    if (a.out) fs.writeFileSync(a.out, text);
    if (a.json) fs.writeFileSync(a.json, JSON.stringify(reg));
    return;
  }
  if (a.json) process.env.BENCH_SCALE_JSON = a.json;
  const r = await measureScale({
    server,
    n,
    due,
    concurrency: whole(a.concurrency, 'concurrency', 16)!,
    cacheSize: whole(a.cache, 'cache', undefined),
    wakes: whole(a.wakes, 'wakes', 50, 0),
    wakeWindowMs: windowS * 1000,
    baseDir: a.dir,
  });
  const text = `## Scale, ${scaleServerName(r)}: ${r.n.toLocaleString('en-US')} workspaces, ${r.due.toLocaleString('en-US')} due in the same second\n\n${scaleMarkdown(r)}\n`;
  console.log(`\n${text}`);
  if (a.out) fs.writeFileSync(a.out, text);
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
