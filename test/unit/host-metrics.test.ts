/** The active-instances gauge (src/metrics/host-metrics.ts): kept current without reading the live dir per move. */
import { test, mock } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { HostInstances } from '../../src/host/instances';
import { liveFile } from '../../src/host/data-dir';
import { trackActiveInstances } from '../../src/metrics/host-metrics';
import { Vfs } from '../../src/vfs/vfs';
import { tempDir } from '../../harness/stack';

test('a burst of opens and closes reads the live dir at most once a second, and the gauge follows within a second', async (t) => {
  const dir = tempDir('wb-gauge-');
  const instances = new HostInstances({ dataDir: dir });
  for (let i = 0; i < 40; i++) Vfs.open(liveFile({ dataDir: dir }, `ws${i}`)).close();
  const tracked = trackActiveInstances(instances, 'host-a', 60_000);
  t.after(() => {
    tracked.stop();
    instances.closeAll();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const reads = mock.method(fs, 'readdirSync');
  t.after(() => reads.mock.restore());
  for (let i = 0; i < 40; i++) instances.open(`ws${i}`, {});
  for (let i = 0; i < 40; i++) instances.close(`ws${i}`, { checkpoint: false });
  assert.equal(reads.mock.callCount(), 0, '80 moves, no read of the live dir yet');
  await sleep(1300);
  assert.equal(reads.mock.callCount(), 1, 'one read for the whole burst, within a second');
});
