/** Human-readable renderings for the CLI (`--json` prints the raw objects instead). */
import type { LedgerEntry, WorkspaceDescription } from '../contract/types';
import type { ListedWorkspace, ReplicationView } from '../contract/data-plane';

export function formatList(rows: ListedWorkspace[]): string {
  if (rows.length === 0) return '(no workspaces)';
  const head = ['ID', 'TENANT', 'STATE', 'HOST'];
  const body = rows.map((r) => [r.workspaceId, r.tenant, r.state, r.host ?? '-']);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  return [head, ...body].map((cols) => cols.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd()).join('\n');
}

/** `ok, 0.8 s behind (checked …)`, with the last error of a failing replica. */
export function formatReplication(r: ReplicationView): string {
  const lag = r.lagSeconds === null ? '' : `, ${r.lagSeconds} s behind`;
  const why = r.state === 'unknown' ? ' (the holding host did not answer)' : '';
  return `${r.state}${lag}${why}${r.state === 'off' ? '' : ` (checked ${r.checkedAt})`}${r.lastError ? `\n            last error: ${r.lastError}` : ''}`;
}

export function formatDescription(d: WorkspaceDescription & { replication?: ReplicationView }): string {
  const lines = [
    `workspace   ${d.workspaceId}`,
    `tenant      ${d.tenant}`,
    `state       ${d.state} since ${d.stateSince}${d.busy ? ` (moving to ${d.busy.to})` : ''}`,
    `host        ${d.host ?? '-'}${d.endpoint ? ` (${d.endpoint})` : ''}`,
    `file        ${d.filePath ?? '-'}`,
    `cold copy   ${d.cold ? `${d.cold.url} ${d.cold.bytes} bytes sha256 ${d.cold.sha256}` : '-'}`,
    `archive     ${d.archive ? `${d.archive.url} ${d.archive.bytes} bytes sha256 ${d.archive.sha256}` : '-'}`,
    `last active ${d.lastActiveAt}`,
    `policy      suspend after ${d.policy.suspendAfter}, freeze after ${d.policy.freezeAfter}, archive after ${d.policy.archiveAfter}, delete after ${d.policy.deleteAfter}`,
    `next        ${d.nextAutoAt ? `${d.nextAutoTo} at ${d.nextAutoAt} if idle` : '-'}`,
  ];
  if (d.replication) lines.splice(5, 0, `replication ${formatReplication(d.replication)}`);
  if (d.template) lines.splice(2, 0, `template    ${d.template}`);
  if (d.published) {
    const whom = d.published.shareWith === '*' ? 'every tenant' : [d.tenant, ...d.published.shareWith].join(', ');
    lines.splice(3, 0, `published   template version sha256 ${d.published.version} (read-only, frozen), clonable by ${whom}`);
  }
  if (d.prefetched) lines.push(`prefetched  on ${d.prefetched.host} (${d.prefetched.filePath})${d.prefetched.expiresAt ? `, expires ${d.prefetched.expiresAt} unless woken` : ''}`);
  const recent = d.ledger.slice(-10);
  if (recent.length) lines.push('', 'recent moves:', formatHistory(recent));
  return lines.join('\n');
}

export function formatHistory(entries: LedgerEntry[]): string {
  if (entries.length === 0) return '(no moves yet)';
  return entries
    .map((e) => `${e.at}  ${e.from} → ${e.to}  ${e.outcome}${e.by ? `  by ${e.by}` : ''}${e.reason ? `  (${e.reason})` : ''}${e.detail ? `  — ${e.detail}` : ''}`)
    .join('\n');
}
