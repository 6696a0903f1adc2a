/** Test-only damage to SQLite files. */
import assert from 'node:assert/strict';
import fs from 'node:fs';

/**
 * Damages a closed SQLite file so that it still opens (page 1, the schema, is untouched) but fails
 * `PRAGMA integrity_check`: the cell content area of b-tree page `pageNo` (page 2 is the root of the files
 * table) is overwritten with 0xa5 bytes, so its cells (child page numbers or row headers) point nowhere.
 */
export function corruptBtreePage(file: string, pageNo = 2): void {
  const fd = fs.openSync(file, 'r+');
  try {
    const header = Buffer.alloc(100);
    fs.readSync(fd, header, 0, 100, 0);
    const pageSize = header.readUInt16BE(16) === 1 ? 65536 : header.readUInt16BE(16);
    const start = (pageNo - 1) * pageSize;
    const page = Buffer.alloc(12);
    fs.readSync(fd, page, 0, 12, start);
    assert.ok([2, 5, 10, 13].includes(page[0]!), `page ${pageNo} is a b-tree page (type ${page[0]})`);
    assert.ok(page.readUInt16BE(3) > 0, `page ${pageNo} has cells`);
    const contentStart = page.readUInt16BE(5) || 65536;
    const len = pageSize - contentStart;
    fs.writeSync(fd, Buffer.alloc(len, 0xa5), 0, len, start + contentStart);
  } finally {
    fs.closeSync(fd);
  }
}

