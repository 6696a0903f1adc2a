/**
 * The orphans sweep (src/host/orphans-sweep.ts) on real files: a set-aside older than the grace goes (all its
 * files), a younger one stays, `never` keeps everything, nothing outside the service's set-aside names or outside
 * orphans/ is touched; WORKBOOKS_ORPHANS_GRACE parses like the other durations; the host's periodic sweep logs.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ConfigError, loadConfig } from '../../src/config';
import { liveDir, liveFile, orphansDir, scratchDir, setAside } from '../../src/host/data-dir';
import { parseOrphanName, startOrphansSweep, sweepOrphans } from '../../src/host/orphans-sweep';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

function dataDir(t: { after(fn: () => void): void }): { dataDir: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wb-orphans-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.mkdirSync(orphansDir({ dataDir: dir }), { recursive: true });
  return { dataDir: dir };
}

/** The stamp setAside writes for time `at`. */
function stampOf(at: number): string {
  return new Date(at).toISOString().replace(/[:.]/g, '-');
}

/** Writes `name` with modification time `mtime` (ms) in `dir`. */
function writeAged(dir: string, name: string, mtime: number, body = 'x'): string {
  const p = path.join(dir, name);
  fs.mkdirSync(path.dirname(p), { recursive: true });
  fs.writeFileSync(p, body);
  fs.utimesSync(p, mtime / 1000, mtime / 1000);
  return p;
}

/** A set-aside of `id` made at `at` (the stamp in the names and the files' modification time). */
function setAsideAt(cfg: { dataDir: string }, id: string, at: number, suffixes = ['', '-wal', '-shm']): string[] {
  return suffixes.map((s) => writeAged(orphansDir(cfg), `${id}.${stampOf(at)}.sqlite${s}`, at));
}

function names(dir: string): string[] {
  return fs.existsSync(dir) ? fs.readdirSync(dir).sort() : [];
}

test('a set-aside older than the grace is removed with its journals; one within the grace stays', (t) => {
  const cfg = dataDir(t);
  const now = Date.now();
  const old = setAsideAt(cfg, 'acme.notes', now - 8 * DAY);
  const young = setAsideAt(cfg, 'acme.notes', now - 6 * DAY, ['', '-wal']);
  const other = setAsideAt(cfg, 'acme.notes-2', now - 30 * DAY, ['']);
  const removed = sweepOrphans(cfg, 7 * DAY, { now });
  assert.deepEqual(
    removed.map((r) => r.file).sort(),
    [...old, ...other].map((p) => path.basename(p)).sort(),
  );
  for (const r of removed) {
    assert.ok(r.ageMs > 7 * DAY, `age of ${r.file} reported: ${r.ageMs}`);
    assert.equal(r.workspaceId, r.file.startsWith('acme.notes-2.') ? 'acme.notes-2' : 'acme.notes');
  }
  assert.deepEqual(names(orphansDir(cfg)), young.map((p) => path.basename(p)).sort());
  // Idempotent: nothing more to remove.
  assert.deepEqual(sweepOrphans(cfg, 7 * DAY, { now }), []);
});

test('`never` (null) keeps every set-aside, however old', (t) => {
  const cfg = dataDir(t);
  const now = Date.now();
  const files = setAsideAt(cfg, 'acme.notes', now - 365 * DAY);
  assert.deepEqual(sweepOrphans(cfg, null, { now }), []);
  assert.deepEqual(names(orphansDir(cfg)), files.map((p) => path.basename(p)).sort());
});

test('age counts from the later of the set-aside stamp and the newest modification time', (t) => {
  const cfg = dataDir(t);
  const now = Date.now();
  // Set aside yesterday by an older build: the file's modification time is its last write, a month ago.
  const upgraded = writeAged(orphansDir(cfg), `acme.a.${stampOf(now - DAY)}.sqlite`, now - 30 * DAY);
  // Set aside a month ago, touched by an operator an hour ago: the grace restarts.
  const touched = writeAged(orphansDir(cfg), `acme.b.${stampOf(now - 30 * DAY)}.sqlite`, now - HOUR);
  // Set aside a month ago, its -wal touched an hour ago: the set-aside stays whole.
  const walTouched = [
    writeAged(orphansDir(cfg), `acme.c.${stampOf(now - 30 * DAY)}.sqlite`, now - 30 * DAY),
    writeAged(orphansDir(cfg), `acme.c.${stampOf(now - 30 * DAY)}.sqlite-wal`, now - HOUR),
  ];
  assert.deepEqual(sweepOrphans(cfg, 7 * DAY, { now }), []);
  assert.deepEqual(names(orphansDir(cfg)), [upgraded, touched, ...walTouched].map((p) => path.basename(p)).sort());
});

test('only set-asides in orphans/ are swept: other names there and other directories are untouched', (t) => {
  const cfg = dataDir(t);
  const now = Date.now();
  const longAgo = now - 400 * DAY;
  const keep = [
    writeAged(orphansDir(cfg), 'README.operator.txt', longAgo),
    writeAged(orphansDir(cfg), `not a key.${stampOf(longAgo)}.sqlite`, longAgo),
    writeAged(orphansDir(cfg), `acme.notes.${stampOf(longAgo)}.sqlite.bak`, longAgo),
    writeAged(orphansDir(cfg), `acme.notes.sqlite`, longAgo),
    writeAged(path.join(orphansDir(cfg), `acme.notes.${stampOf(longAgo - 1000)}.sqlite`), 'inside-a-directory', longAgo),
  ];
  const elsewhere = [
    writeAged(liveDir(cfg), `acme.notes.${stampOf(longAgo)}.sqlite`, longAgo),
    writeAged(scratchDir(cfg), `acme.notes.${stampOf(longAgo)}.sqlite`, longAgo),
    writeAged(cfg.dataDir, `acme.notes.${stampOf(longAgo)}.sqlite`, longAgo),
  ];
  const gone = setAsideAt(cfg, 'acme.notes', longAgo, ['']);
  assert.deepEqual(sweepOrphans(cfg, DAY, { now }).map((r) => r.file), gone.map((p) => path.basename(p)));
  for (const p of [...keep, ...elsewhere]) assert.ok(fs.existsSync(p), `${p} kept`);
  for (const p of gone) assert.ok(!fs.existsSync(p), `${p} removed`);
});

test('what setAside writes is what the sweep reads: kept within the grace, removed after it', (t) => {
  const cfg = dataDir(t);
  fs.mkdirSync(liveDir(cfg), { recursive: true });
  fs.writeFileSync(liveFile(cfg, 'acme.notes'), 'db');
  fs.writeFileSync(liveFile(cfg, 'acme.notes') + '-wal', 'wal');
  const movedTo = setAside(cfg, 'acme.notes')!;
  const parsed = parseOrphanName(path.basename(movedTo));
  assert.ok(parsed, `setAside's name ${movedTo} parses`);
  assert.equal(parsed.workspaceId, 'acme.notes');
  assert.ok(Math.abs(parsed.setAsideAt - Date.now()) < 60_000);
  assert.deepEqual(sweepOrphans(cfg, DAY), []);
  const removed = sweepOrphans(cfg, DAY, { now: Date.now() + 2 * DAY });
  assert.deepEqual(removed.map((r) => r.file).sort(), [`${path.basename(movedTo)}`, `${path.basename(movedTo)}-wal`].sort());
  assert.deepEqual(names(orphansDir(cfg)), []);
});

test('the host sweep runs at start and logs every removal with the file name and age; `never` logs nothing', (t) => {
  const cfg = dataDir(t);
  const now = Date.now();
  const [file] = setAsideAt(cfg, 'acme.notes', now - 10 * DAY, ['']);
  const kept = setAsideAt(cfg, 'acme.other', now - 10 * DAY, ['']);
  const lines: { msg: string; fields?: Record<string, unknown> }[] = [];
  const never = startOrphansSweep(cfg, null, (msg, fields) => lines.push({ msg, fields }));
  never.stop();
  assert.equal(lines.length, 0);
  assert.ok(fs.existsSync(file!));

  fs.utimesSync(kept[0]!, now / 1000, now / 1000); // touched: kept
  const sweep = startOrphansSweep(cfg, 7 * DAY, (msg, fields) => lines.push({ msg, fields }));
  sweep.stop();
  assert.equal(lines.length, 1, JSON.stringify(lines));
  assert.match(lines[0]!.msg, /orphans grace/);
  assert.equal(lines[0]!.fields?.file, path.basename(file!));
  assert.equal(lines[0]!.fields?.workspaceId, 'acme.notes');
  assert.ok((lines[0]!.fields?.ageSeconds as number) >= 10 * 86_400 - 60);
  assert.equal(lines[0]!.fields?.graceSeconds, 7 * 86_400);
  assert.ok(!fs.existsSync(file!));
  assert.ok(fs.existsSync(kept[0]!));
});

test('WORKBOOKS_ORPHANS_GRACE: default 7d, durations like the others, `never`, bad values refused', () => {
  const base = { dataDir: '/tmp/wb-orphans-config' };
  assert.equal(loadConfig({}, base).orphansGraceMs, 7 * DAY);
  assert.equal(loadConfig({ WORKBOOKS_ORPHANS_GRACE: '36h' }, base).orphansGraceMs, 36 * HOUR);
  assert.equal(loadConfig({ WORKBOOKS_ORPHANS_GRACE: '1d12h' }, base).orphansGraceMs, 36 * HOUR);
  assert.equal(loadConfig({ WORKBOOKS_ORPHANS_GRACE: 'never' }, base).orphansGraceMs, null);
  assert.equal(loadConfig({ WORKBOOKS_ORPHANS_GRACE: 'NEVER' }, base).orphansGraceMs, null);
  for (const bad of ['soon', '-1d', '500ms', '0s']) {
    assert.throws(() => loadConfig({ WORKBOOKS_ORPHANS_GRACE: bad }, base), ConfigError, bad);
  }
});
