import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { Vfs, VfsError, VfsSchemaError } from '../../src/vfs/vfs';
import { MAX_FILE_BYTES, MAX_PATH_BYTES, VOLUMES, Volume, VfsInputError, checkPath, checkPrefix, parseVolumePath } from '../../src/vfs/volumes';

let root: string;
let counter = 0;
/** A fresh path for a workspace file inside this run's temp directory. */
const tmpFile = (name = 'ws') => path.join(root, `${name}-${++counter}.db`);

before(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'workbooks-vfs-test-'));
});
after(() => {
  fs.rmSync(root, { recursive: true, force: true });
});

function withVfs<T>(fn: (v: Vfs, file: string) => T, file = tmpFile()): T {
  const v = Vfs.open(file);
  try {
    return fn(v, file);
  } finally {
    v.close();
  }
}

function inputError(code: 'bad_volume' | 'bad_path' | 'too_large', message?: RegExp) {
  return (err: unknown) => {
    assert.ok(err instanceof VfsInputError, `expected VfsInputError, got ${String(err)}`);
    assert.equal(err.code, code);
    if (message) assert.match(err.message, message);
    return true;
  };
}

describe('put / get / stat / list / delete', () => {
  it('round-trips a file by (volume, path)', () => {
    withVfs((v) => {
      const before = Date.now();
      const e = v.put('workspace', '/notes/today.md', 'hello');
      assert.equal(e.volume, 'workspace');
      assert.equal(e.path, '/notes/today.md');
      assert.equal(e.bytes, 5);
      assert.ok(e.updatedAt >= before && e.updatedAt <= Date.now());
      assert.equal(v.get('workspace', '/notes/today.md')?.toString('utf8'), 'hello');
      assert.deepEqual(v.stat('workspace', '/notes/today.md'), e);
      assert.equal(v.get('workspace', '/notes/missing.md'), null);
      assert.equal(v.stat('workspace', '/notes/missing.md'), null);
      assert.equal(v.delete('workspace', '/notes/today.md'), true);
      assert.equal(v.get('workspace', '/notes/today.md'), null);
      assert.equal(v.delete('workspace', '/notes/today.md'), false);
      assert.deepEqual(v.list('workspace'), []);
    });
  });

  it('utf-8 strings are stored as utf-8 bytes', () => {
    withVfs((v) => {
      const e = v.put('memory', '/ü.txt', 'héllo €');
      assert.equal(e.bytes, Buffer.byteLength('héllo €'));
      assert.equal(e.bytes, 10);
      assert.deepEqual(v.get('memory', '/ü.txt'), Buffer.from('héllo €', 'utf8'));
    });
  });

  it('the same path in different volumes is independent', () => {
    withVfs((v) => {
      for (const vol of VOLUMES) v.put(vol, '/same', `in ${vol}`);
      for (const vol of VOLUMES) assert.equal(v.get(vol, '/same')?.toString(), `in ${vol}`);
      assert.equal(v.delete('memory', '/same'), true);
      assert.equal(v.get('memory', '/same'), null);
      assert.equal(v.get('workspace', '/same')?.toString(), 'in workspace');
      assert.equal(v.get('tmp', '/same')?.toString(), 'in tmp');
      v.put('tmp', '/same', 'changed');
      assert.equal(v.get('workspace', '/same')?.toString(), 'in workspace');
    });
  });

  it('overwriting updates bytes, size and does not duplicate', () => {
    withVfs((v) => {
      v.put('workspace', '/f', 'a much longer first version');
      const e = v.put('workspace', '/f', Buffer.from([1, 2, 3]));
      assert.equal(e.bytes, 3);
      assert.deepEqual(v.get('workspace', '/f'), Buffer.from([1, 2, 3]));
      assert.equal(v.stat('workspace', '/f')?.bytes, 3);
      assert.equal(v.list('workspace').length, 1);
      assert.deepEqual(v.usage().workspace, { files: 1, bytes: 3 });
      assert.equal(v.sizeOf('workspace', '/f'), 3);
      assert.equal(v.sizeOf('workspace', '/nope'), null);
    });
  });

  it('sizes and totals agree with the files, large ones (overflow pages) included', () => {
    withVfs((v) => {
      const big = Buffer.alloc(3 * 1024 * 1024 + 5, 7);
      v.put('workspace', '/big', big);
      v.put('memory', '/small', 'abc');
      v.put('workspace', '/empty', Buffer.alloc(0));
      assert.equal(v.sizeOf('workspace', '/big'), big.length);
      assert.equal(v.sizeOf('workspace', '/empty'), 0);
      assert.equal(v.stat('workspace', '/big')?.bytes, big.length);
      assert.deepEqual(v.usage(), { workspace: { files: 2, bytes: big.length }, memory: { files: 1, bytes: 3 }, tmp: { files: 0, bytes: 0 } });
      // The running total follows every write of the handle.
      assert.equal(v.totalBytes(), big.length + 3);
      v.put('workspace', '/big', 'now small');
      v.put('tmp', '/t', 'xy');
      assert.equal(v.totalBytes(), 9 + 3 + 2);
      assert.equal(v.delete('memory', '/small'), true);
      assert.equal(v.delete('memory', '/small'), false);
      assert.equal(v.totalBytes(), 9 + 2);
      v.clear('tmp');
      assert.equal(v.totalBytes(), 9);
      const sum = Object.values(v.usage()).reduce((a, u) => a + u.bytes, 0);
      assert.equal(v.totalBytes(), sum);
    });
  });

  it('empty files are allowed', () => {
    withVfs((v) => {
      assert.equal(v.put('workspace', '/empty', '').bytes, 0);
      assert.deepEqual(v.get('workspace', '/empty'), Buffer.alloc(0));
    });
  });

  it("list with prefix '/a' matches '/a' and '/a/…' but not '/ab'", () => {
    withVfs((v) => {
      for (const p of ['/a', '/a/b', '/a/b/c', '/ab', '/ab/c', '/a-b', '/a.b', '/b', '/A']) v.put('workspace', p, p);
      v.put('memory', '/a/x', 'other volume');
      const paths = (prefix?: string) => v.list('workspace', prefix).map((e) => e.path);
      assert.deepEqual(paths('/a'), ['/a', '/a/b', '/a/b/c']);
      assert.deepEqual(paths('/a/'), ['/a', '/a/b', '/a/b/c']);
      assert.deepEqual(paths('/a/b'), ['/a/b', '/a/b/c']);
      assert.deepEqual(paths('/ab'), ['/ab', '/ab/c']);
      assert.deepEqual(paths('/zzz'), []);
      assert.deepEqual(paths(), ['/A', '/a', '/a-b', '/a.b', '/a/b', '/a/b/c', '/ab', '/ab/c', '/b']);
      assert.deepEqual(paths('/'), paths());
      assert.deepEqual(paths(''), paths());
      assert.deepEqual(v.list('memory', '/a').map((e) => e.path), ['/a/x']);
      const entry = v.list('workspace', '/a/b/c')[0];
      assert.equal(entry.volume, 'workspace');
      assert.equal(entry.bytes, 6);
      assert.equal(typeof entry.updatedAt, 'number');
    });
  });

  it('list with a prefix holding non-BMP characters finds the files below it', () => {
    withVfs((v) => {
      for (const p of ['/📁', '/📁/x', '/📁/sub/y', '/📁x', '/é/z', '/éz']) v.put('workspace', p, 'x');
      assert.deepEqual(v.list('workspace', '/📁').map((e) => e.path), ['/📁', '/📁/sub/y', '/📁/x']);
      assert.deepEqual(v.list('workspace', '/é').map((e) => e.path), ['/é/z']);
    });
  });

  it('list refuses a bad prefix', () => {
    withVfs((v) => {
      assert.throws(() => v.list('workspace', 'a'), inputError('bad_path', /absolute/));
      assert.throws(() => v.list('workspace', '/a/../b'), inputError('bad_path'));
      assert.equal(checkPrefix(undefined), '/');
      assert.equal(checkPrefix('/a/'), '/a');
    });
  });

  it('clear(volume) clears only that volume and returns the count', () => {
    withVfs((v) => {
      for (let i = 0; i < 5; i++) v.put('tmp', `/t${i}`, 'x');
      for (let i = 0; i < 3; i++) v.put('memory', `/m${i}`, 'yy');
      v.put('workspace', '/w', 'zzz');
      assert.equal(v.clear('tmp'), 5);
      assert.equal(v.clear('tmp'), 0);
      assert.deepEqual(v.list('tmp'), []);
      assert.deepEqual(v.usage(), { workspace: { files: 1, bytes: 3 }, memory: { files: 3, bytes: 6 }, tmp: { files: 0, bytes: 0 } });
      assert.equal(v.clear('memory'), 3);
      assert.equal(v.get('workspace', '/w')?.toString(), 'zzz');
    });
  });

  it('binary data (random 1 MB) round-trips byte-exact', () => {
    withVfs((v, file) => {
      const data = crypto.randomBytes(1024 * 1024);
      data[0] = 0;
      data[data.length - 1] = 0;
      assert.equal(v.put('workspace', '/blob.bin', data).bytes, 1024 * 1024);
      const back = v.get('workspace', '/blob.bin');
      assert.ok(back);
      assert.equal(back.length, data.length);
      assert.ok(back.equals(data));
      v.close();
      const again = Vfs.open(file);
      try {
        assert.ok(again.get('workspace', '/blob.bin')?.equals(data));
      } finally {
        again.close();
      }
    });
  });
});

describe('path and volume validation', () => {
  const badPaths: [string, unknown][] = [
    ['relative', 'a/b'],
    ['relative dot', './a'],
    ['empty', ''],
    ['root', '/'],
    ['dot-dot', '/a/../b'],
    ['leading dot-dot', '/..'],
    ['dot', '/a/./b'],
    ['trailing dot', '/a/.'],
    ['double slash at start', '//a'],
    ['double slash inside', '/a//b'],
    ['trailing slash', '/a/'],
    ['NUL', '/a\u0000b'],
    ['newline', '/a\nb'],
    ['tab', '/a\tb'],
    ['escape', '/a\u001b[31m'],
    ['DEL', '/a\u007f'],
    ['C1 control (NEL)', '/a\u0085b'],
    ['C1 control (CSI)', '/a\u009b'],
    ['backslash', '/a\\b'],
    ['windows path', 'C:\\a'],
    ['too long (ascii)', '/' + 'a'.repeat(MAX_PATH_BYTES)],
    ['too long in bytes, not in characters', '/' + '€'.repeat(400)],
    ['not a string', 42],
    ['null', null],
  ];
  for (const [name, p] of badPaths) {
    it(`refuses ${name}`, () => {
      assert.throws(() => checkPath(p), inputError('bad_path'));
      withVfs((v) => {
        assert.throws(() => v.put('workspace', p as string, 'x'), inputError('bad_path'));
        assert.throws(() => v.get('workspace', p as string), inputError('bad_path'));
        assert.throws(() => v.delete('workspace', p as string), inputError('bad_path'));
        assert.equal(v.usage().workspace.files, 0);
      });
    });
  }

  const goodPaths = ['/a', '/a/b/c.txt', '/..a', '/a..', '/.hidden', '/a b', '/日本語/ファイル.md', '/emoji/📁', '/é', '/' + 'a'.repeat(MAX_PATH_BYTES - 1), '/' + '€'.repeat(341)];
  for (const p of goodPaths) {
    it(`accepts ${p.length > 40 ? `${Buffer.byteLength(p)}-byte path` : JSON.stringify(p)}`, () => {
      assert.equal(checkPath(p), p);
      withVfs((v) => {
        v.put('workspace', p, 'ok');
        assert.equal(v.get('workspace', p)?.toString(), 'ok');
        assert.deepEqual(v.list('workspace').map((e) => e.path), [p]);
      });
    });
  }

  it('the path limit is 1024 bytes, inclusive', () => {
    assert.equal(MAX_PATH_BYTES, 1024);
    assert.equal(Buffer.byteLength('/' + 'a'.repeat(1023)), 1024);
    assert.equal(checkPath('/' + 'a'.repeat(1023)).length, 1024);
    assert.throws(() => checkPath('/' + 'a'.repeat(1024)), inputError('bad_path', /longer than 1024 bytes/));
  });

  it('unknown volume is bad_volume for every operation', () => {
    withVfs((v) => {
      for (const vol of ['public', '', 'Workspace', 'tmp ', undefined, null]) {
        const bad = vol as unknown as Volume;
        assert.throws(() => v.put(bad, '/a', 'x'), inputError('bad_volume', /unknown volume/));
        assert.throws(() => v.get(bad, '/a'), inputError('bad_volume'));
        assert.throws(() => v.stat(bad, '/a'), inputError('bad_volume'));
        assert.throws(() => v.list(bad), inputError('bad_volume'));
        assert.throws(() => v.delete(bad, '/a'), inputError('bad_volume'));
        assert.throws(() => v.clear(bad), inputError('bad_volume'));
      }
      assert.deepEqual(v.usage(), { workspace: { files: 0, bytes: 0 }, memory: { files: 0, bytes: 0 }, tmp: { files: 0, bytes: 0 } });
    });
  });

  it('parseVolumePath splits volume:/path and validates both', () => {
    assert.deepEqual(parseVolumePath('workspace:/notes.md'), { volume: 'workspace', path: '/notes.md' });
    assert.deepEqual(parseVolumePath('tmp:/a:b'), { volume: 'tmp', path: '/a:b' });
    assert.throws(() => parseVolumePath('/notes.md'), inputError('bad_path'));
    assert.throws(() => parseVolumePath('public:/a'), inputError('bad_volume'));
    assert.throws(() => parseVolumePath('memory:a'), inputError('bad_path'));
  });

  it('non-Buffer data is refused', () => {
    withVfs((v) => {
      assert.throws(() => v.put('workspace', '/a', 42 as unknown as string), (e: unknown) => e instanceof VfsInputError);
      assert.equal(v.get('workspace', '/a'), null);
    });
  });
});

describe('size limit', () => {
  it('a file over MAX_FILE_BYTES is refused without writing', () => {
    assert.equal(MAX_FILE_BYTES, 256 * 1024 * 1024);
    withVfs((v, file) => {
      v.put('workspace', '/big', 'previous');
      const sizeBefore = fs.statSync(file).size + (fs.existsSync(`${file}-wal`) ? fs.statSync(`${file}-wal`).size : 0);
      // allocUnsafe does not fill the buffer: the pages are never touched, so this is quick and cheap.
      const big = Buffer.allocUnsafe(MAX_FILE_BYTES + 1);
      assert.throws(() => v.put('workspace', '/big', big), inputError('too_large', new RegExp(`${MAX_FILE_BYTES + 1} bytes; the limit is ${MAX_FILE_BYTES}`)));
      assert.throws(() => v.put('workspace', '/new-big', big), inputError('too_large'));
      assert.equal(v.get('workspace', '/big')?.toString(), 'previous');
      assert.equal(v.get('workspace', '/new-big'), null);
      assert.deepEqual(v.usage().workspace, { files: 1, bytes: 8 });
      const sizeAfter = fs.statSync(file).size + (fs.existsSync(`${file}-wal`) ? fs.statSync(`${file}-wal`).size : 0);
      assert.equal(sizeAfter, sizeBefore);
    });
  });
});

describe('the SQLite file', () => {
  it('is WAL with synchronous NORMAL and busy_timeout 5000 on the connection', () => {
    withVfs((v, file) => {
      v.put('workspace', '/a', 'x');
      // The Vfs's own connection (per-connection settings can only be seen there).
      const db = (v as unknown as { db: Database.Database }).db;
      assert.equal(db.pragma('journal_mode', { simple: true }), 'wal');
      assert.equal(db.pragma('synchronous', { simple: true }), 1);
      assert.equal(db.pragma('busy_timeout', { simple: true }), 5000);
      assert.equal(db.pragma('user_version', { simple: true }), 1);
      // WAL is persistent in the file: a second, independent connection sees it too.
      const other = new Database(file, { readonly: true });
      try {
        assert.equal(other.pragma('journal_mode', { simple: true }), 'wal');
        assert.equal((other.prepare('SELECT count(*) AS n FROM files').get() as { n: number }).n, 1);
      } finally {
        other.close();
      }
      assert.ok(fs.existsSync(`${file}-wal`));
    });
  });

  it('data persists across close and reopen', () => {
    const file = tmpFile();
    const v = Vfs.open(file);
    v.put('workspace', '/keep', 'kept');
    v.put('memory', '/mem', Buffer.from([0, 255]));
    assert.equal(v.isOpen, true);
    v.close();
    assert.equal(v.isOpen, false);
    v.close(); // idempotent
    const again = Vfs.open(file, { create: false });
    try {
      assert.equal(again.get('workspace', '/keep')?.toString(), 'kept');
      assert.deepEqual(again.get('memory', '/mem'), Buffer.from([0, 255]));
      assert.equal(again.file, file);
    } finally {
      again.close();
    }
    const ro = Vfs.open(file, { create: false, readonly: true });
    try {
      assert.equal(ro.get('workspace', '/keep')?.toString(), 'kept');
      assert.throws(() => ro.put('workspace', '/x', 'y'), /readonly/i);
    } finally {
      ro.close();
    }
  });

  it('creates missing parent directories, but create:false refuses a missing file', () => {
    const file = path.join(root, 'deep', 'er', 'ws.db');
    withVfs((v) => v.put('workspace', '/a', 'x'), file);
    assert.ok(fs.existsSync(file));
    const missing = path.join(root, 'nope', 'ws.db');
    assert.throws(() => Vfs.open(missing, { create: false }), (e: unknown) => e instanceof VfsError && /does not exist/.test(e.message));
    assert.equal(fs.existsSync(path.join(root, 'nope')), false);
  });

  it('a non-SQLite file is refused with a clear VfsError and left untouched', () => {
    for (const content of ['hello, this is a text file, not a database\n'.repeat(20), 'short', crypto.randomBytes(8192).toString('latin1')]) {
      const file = tmpFile('text');
      fs.writeFileSync(file, content, 'latin1');
      const before = fs.readFileSync(file);
      assert.throws(
        () => Vfs.open(file),
        (e: unknown) => e instanceof VfsError && e.name === 'VfsError' && e.message.includes(file) && /not a (usable )?workspace file/.test(e.message) && /not a database/.test(e.message),
      );
      assert.deepEqual(fs.readFileSync(file), before);
      assert.equal(fs.existsSync(`${file}-wal`), false);
    }
  });

  it('a SQLite file without the files table is refused and left unchanged', () => {
    const file = tmpFile('foreign');
    const db = new Database(file);
    db.exec('CREATE TABLE other (x); INSERT INTO other VALUES (1)');
    db.close();
    for (const opts of [{}, { create: false }, { readonly: true }]) {
      assert.throws(
        () => Vfs.open(file, opts),
        (e: unknown) => e instanceof VfsError && e.message === `${file} is not a workbooks workspace file: its schema is not ours (unexpected table 'other'; no table 'files'; no index 'sqlite_autoindex_files_1')`,
        JSON.stringify(opts),
      );
    }
    const check = new Database(file, { readonly: true });
    try {
      const tables = check.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").pluck().all();
      assert.deepEqual(tables, ['other']);
      assert.equal(check.pragma('journal_mode', { simple: true }), 'delete');
    } finally {
      check.close();
    }
  });

  it('a file whose schema is not exactly ours is refused before any statement of ours runs on it', () => {
    // Each is a real workspace file, then changed the way a tampered copy or a crafted template would be.
    const crafted: Record<string, string> = {
      'trigger on files': "CREATE TABLE log (x); CREATE TRIGGER t AFTER DELETE ON files BEGIN INSERT INTO log VALUES (old.path); END;",
      'recursive trigger': 'CREATE TRIGGER r AFTER UPDATE ON files BEGIN UPDATE files SET bytes = bytes + 1; END;',
      'extra view': 'CREATE VIEW v AS SELECT * FROM files;',
      'extra index': 'CREATE INDEX i ON files (bytes);',
      'other columns': 'ALTER TABLE files ADD COLUMN owner TEXT;',
    };
    for (const [what, sql] of Object.entries(crafted)) {
      const file = tmpFile(`crafted-${what.replace(/ /g, '-')}`);
      const v = Vfs.open(file);
      v.put('workspace', '/a', 'a');
      v.put('tmp', '/t', 't');
      v.close();
      const db = new Database(file);
      db.exec(sql);
      db.close();
      for (const opts of [{}, { create: false }, { readonly: true }]) {
        assert.throws(() => Vfs.open(file, opts), (e: unknown) => e instanceof VfsSchemaError && /its schema is not ours/.test(e.message), `${what} ${JSON.stringify(opts)}`);
      }
      const check = new Database(file, { readonly: true });
      try {
        assert.equal(check.prepare("SELECT count(*) FROM files WHERE volume = 'tmp'").pluck().get(), 1, `${what}: nothing of ours ran (tmp not cleared)`);
      } finally {
        check.close();
      }
    }
    // A virtual table standing in for ours.
    const file = tmpFile('crafted-virtual');
    const db = new Database(file);
    db.exec("CREATE VIRTUAL TABLE files USING fts5(volume, path, data, bytes, updated_at)");
    db.close();
    assert.throws(() => Vfs.open(file), VfsSchemaError);
  });

  it('an empty existing file is initialised as a workspace', () => {
    const file = tmpFile('empty');
    fs.writeFileSync(file, '');
    withVfs((v) => {
      v.put('workspace', '/a', 'x');
      assert.equal(v.get('workspace', '/a')?.toString(), 'x');
    }, file);
  });

  it('a file from a newer schema is refused', () => {
    const file = tmpFile('newer');
    withVfs(() => undefined, file);
    const db = new Database(file);
    db.pragma('user_version = 2');
    db.close();
    assert.throws(() => Vfs.open(file), (e: unknown) => e instanceof VfsError && /has schema 2, newer than this build \(1\)/.test(e.message));
  });
});

describe('export', () => {
  function seeded(): { v: Vfs; file: string } {
    const file = tmpFile('src');
    const v = Vfs.open(file);
    v.put('workspace', '/readme.md', '# hi');
    v.put('workspace', '/data/blob', Buffer.from([0, 1, 2, 254, 255]));
    v.put('memory', '/secret', 'do not leak');
    v.put('tmp', '/scratch', 'never leaves');
    return { v, file };
  }

  it('writes a new SQLite file with only the workspace volume, openable as a Vfs', () => {
    const { v } = seeded();
    try {
      const outDir = fs.mkdtempSync(path.join(root, 'out-'));
      const out = path.join(outDir, 'export.db');
      assert.deepEqual(v.export(out), { files: 2, bytes: 9 });
      assert.deepEqual(fs.readdirSync(outDir), ['export.db']);
      assert.equal(fs.readFileSync(out).subarray(0, 16).toString('latin1'), 'SQLite format 3\u0000');
      // Raw check: nothing but workspace rows.
      const raw = new Database(out, { readonly: true });
      try {
        assert.deepEqual(raw.prepare('SELECT DISTINCT volume FROM files').pluck().all(), ['workspace']);
        assert.equal(raw.pragma('user_version', { simple: true }), 1);
        assert.equal(raw.pragma('journal_mode', { simple: true }), 'delete');
      } finally {
        raw.close();
      }
      const e = Vfs.open(out, { create: false });
      try {
        assert.deepEqual(e.list('workspace').map((f) => f.path), ['/data/blob', '/readme.md']);
        assert.equal(e.get('workspace', '/readme.md')?.toString(), '# hi');
        assert.deepEqual(e.get('workspace', '/data/blob'), Buffer.from([0, 1, 2, 254, 255]));
        assert.deepEqual(e.list('memory'), []);
        assert.deepEqual(e.list('tmp'), []);
        assert.equal(e.get('memory', '/secret'), null);
        assert.deepEqual(e.integrityCheck('full'), []);
      } finally {
        e.close();
      }
      // The source is untouched.
      assert.equal(v.get('memory', '/secret')?.toString(), 'do not leak');
      assert.equal(v.get('tmp', '/scratch')?.toString(), 'never leaves');
    } finally {
      v.close();
    }
  });

  it('an empty workspace exports an empty file', () => {
    withVfs((v) => {
      v.put('memory', '/m', 'x');
      const out = path.join(root, `empty-export-${++counter}.db`);
      assert.deepEqual(v.export(out), { files: 0, bytes: 0 });
      const e = Vfs.open(out, { create: false, readonly: true });
      try {
        assert.deepEqual(e.list('workspace'), []);
        assert.deepEqual(e.list('memory'), []);
      } finally {
        e.close();
      }
    });
  });

  it('refuses exporting onto its own file', () => {
    const { v, file } = seeded();
    try {
      const before = fs.readdirSync(path.dirname(file)).sort();
      assert.throws(() => v.export(file), (e: unknown) => e instanceof VfsError && e.message === 'cannot export a workspace onto its own file');
      const rel = path.relative(process.cwd(), file);
      assert.throws(() => v.export(rel), (e: unknown) => e instanceof VfsError && /own file/.test(e.message));
      assert.deepEqual(fs.readdirSync(path.dirname(file)).sort(), before);
      assert.equal(v.get('memory', '/secret')?.toString(), 'do not leak');
    } finally {
      v.close();
    }
  });

  it('refuses exporting into a missing directory', () => {
    const { v } = seeded();
    try {
      const dir = path.join(root, 'missing-dir');
      assert.throws(
        () => v.export(path.join(dir, 'x.db')),
        (e: unknown) => e instanceof VfsError && e.message === `cannot export: directory ${dir} does not exist`,
      );
      assert.equal(fs.existsSync(dir), false);
    } finally {
      v.close();
    }
  });

  it('replaces an existing file at the target and leaves no .partial file', () => {
    const { v } = seeded();
    try {
      const outDir = fs.mkdtempSync(path.join(root, 'out-'));
      const out = path.join(outDir, 'e.db');
      fs.writeFileSync(out, 'old contents');
      v.export(out);
      v.put('workspace', '/later', 'added');
      assert.deepEqual(v.export(out), { files: 3, bytes: 14 });
      assert.deepEqual(fs.readdirSync(outDir), ['e.db']);
      assert.equal(fs.readdirSync(outDir).some((n) => n.endsWith('.partial')), false);
      const e = Vfs.open(out, { readonly: true });
      try {
        assert.equal(e.get('workspace', '/later')?.toString(), 'added');
      } finally {
        e.close();
      }
    } finally {
      v.close();
    }
  });

  it('a failed export removes its .partial file', () => {
    const { v } = seeded();
    try {
      const outDir = fs.mkdtempSync(path.join(root, 'out-'));
      // The target is an existing non-empty directory, so the final rename fails after the copy.
      const out = path.join(outDir, 'taken');
      fs.mkdirSync(out);
      fs.writeFileSync(path.join(out, 'keep'), 'x');
      assert.throws(() => v.export(out), (e: unknown) => (e as NodeJS.ErrnoException).code !== undefined);
      assert.deepEqual(fs.readdirSync(outDir), ['taken']);
      assert.deepEqual(fs.readdirSync(out), ['keep']);
    } finally {
      v.close();
    }
  });
});

describe('integrityCheck', () => {
  const PAGE = 4096;
  /** A closed workspace file with many b-tree pages (small files, so no overflow pages). */
  function manyPages(): string {
    const file = tmpFile('integrity');
    const v = Vfs.open(file);
    for (let i = 0; i < 3000; i++) v.put('workspace', `/f/${String(i).padStart(5, '0')}`, Buffer.alloc(200, i % 251));
    assert.deepEqual(v.integrityCheck(), []);
    assert.deepEqual(v.integrityCheck('full'), []);
    v.close();
    assert.equal(fs.existsSync(`${file}-wal`), false, 'the WAL is folded in on close');
    const pages = fs.statSync(file).size / PAGE;
    assert.ok(pages > 100, `expected many pages, got ${pages}`);
    return file;
  }

  it('returns [] on a sound file', () => {
    withVfs((v) => {
      v.put('workspace', '/a', 'x');
      assert.deepEqual(v.integrityCheck(), []);
      assert.deepEqual(v.integrityCheck('quick'), []);
      assert.deepEqual(v.integrityCheck('full'), []);
    });
  });

  it('reports problems when cells in the middle of the file are corrupted', () => {
    const file = manyPages();
    const pages = fs.statSync(file).size / PAGE;
    const fd = fs.openSync(file, 'r+');
    try {
      // Keep each page's header (first 100 bytes) and scribble over its cell area, for a few middle pages.
      for (const p of [Math.floor(pages / 2), Math.floor(pages / 2) + 1, Math.floor(pages / 3)]) {
        fs.writeSync(fd, Buffer.alloc(PAGE - 100, 0xa5), 0, PAGE - 100, p * PAGE + 100);
      }
    } finally {
      fs.closeSync(fd);
    }
    const v = Vfs.open(file, { create: false });
    try {
      for (const kind of ['quick', 'full'] as const) {
        const problems = v.integrityCheck(kind);
        assert.ok(problems.length > 0, kind);
        assert.ok(problems.every((m) => typeof m === 'string' && m.length > 0));
        assert.notDeepEqual(problems, ['ok']);
        assert.match(problems.join('\n'), /Tree \d+ page \d+/);
      }
    } finally {
      v.close();
    }
  });

  it('reports (rather than throws) when whole pages are garbage', () => {
    const file = manyPages();
    const pages = fs.statSync(file).size / PAGE;
    const fd = fs.openSync(file, 'r+');
    try {
      // The first table-leaf page (b-tree page type 13) from the middle of the file on: SQLite's own check fails
      // outright (SQLITE_CORRUPT) on a garbage leaf instead of listing problems.
      const type = Buffer.alloc(1);
      let target = -1;
      for (let p = Math.floor(pages / 2); p < pages && target < 0; p++) {
        fs.readSync(fd, type, 0, 1, p * PAGE);
        if (type[0] === 13) target = p;
      }
      assert.ok(target > 0, 'found a table leaf page');
      fs.writeSync(fd, Buffer.alloc(PAGE, 0xa5), 0, PAGE, target * PAGE);
    } finally {
      fs.closeSync(fd);
    }
    const v = Vfs.open(file, { create: false });
    try {
      for (const kind of ['quick', 'full'] as const) {
        const problems = v.integrityCheck(kind);
        assert.deepEqual(problems, ['SQLITE_CORRUPT: database disk image is malformed'], kind);
      }
    } finally {
      v.close();
    }
  });
});
