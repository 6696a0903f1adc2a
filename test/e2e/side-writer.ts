/**
 * A writer on one host's side of a network cut (run inside the host's namespace by cluster.test.ts: `ip netns exec
 * wb-host-a node dist/test/e2e/side-writer.js`). It cannot reach Temporal, so it does what a client there would
 * do with what it last knew: write straight to the host's data server under the placement it was given, with a
 * grant signed with the data key. One line per attempt goes to SW_OUT: {n, sentAt, ackAt, status, code}; it stops
 * when the file SW_STOP exists.
 */
import fs from 'node:fs';
import { DataKey } from '../../src/grants';
import { PLACEMENT_HEADER } from '../../src/contract/data-plane';

const need = (k: string): string => {
  const v = process.env[k];
  if (!v) throw new Error(`side-writer: ${k} is not set`);
  return v;
};
const endpoint = need('SW_ENDPOINT');
const workspaceId = need('SW_WORKSPACE');
const placement = Number(need('SW_PLACEMENT'));
const key = new DataKey(need('SW_DATA_KEY'));
const prefix = need('SW_PREFIX');
const out = need('SW_OUT');
const stop = need('SW_STOP');

async function main(): Promise<void> {
  for (let n = 0; !fs.existsSync(stop); n++) {
    const sentAt = Date.now();
    let status = 0;
    let code = '';
    try {
      const res = await fetch(`${endpoint}/workspaces/${workspaceId}/files/workspace${prefix}${n}`, {
        method: 'PUT',
        body: String(n),
        headers: {
          'content-type': 'application/octet-stream',
          [PLACEMENT_HEADER]: String(placement),
          authorization: `Bearer ${key.grantFor(workspaceId, placement, ['write'])}`,
        },
        signal: AbortSignal.timeout(3000),
      });
      status = res.status;
      code = res.ok ? 'ok' : (((await res.json().catch(() => ({}))) as { error?: { code?: string } }).error?.code ?? '');
    } catch (err) {
      code = (err as Error).name === 'TimeoutError' ? 'timeout' : 'unreachable';
    }
    const ackAt = status >= 200 && status < 300 ? Date.now() : null;
    fs.appendFileSync(out, JSON.stringify({ n, sentAt, ackAt, status, code }) + '\n');
    await new Promise((r) => setTimeout(r, 100));
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
