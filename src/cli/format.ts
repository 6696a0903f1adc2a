/** Human-readable renderings for the CLI (`--json` prints the raw objects instead). */
import type { LedgerEntry, WorkspaceDescription } from '../contract/types';
import type { ListedWorkspace, ReplicationView } from '../contract/data-plane';
import type { TenantStorage, WorkspaceStorage } from '../client/storage-report';
import type { Amount } from '../storage/usage';

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

/** Rows of text columns, padded to the widest cell; numbers (right-aligned) from the second column on. */
function table(head: string[], rows: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  return [head, ...rows].map((cols) => cols.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ').trimEnd()).join('\n');
}

const cell = (a: Amount) => `${a.bytes} B / ${a.objects}`;

export function formatWorkspaceStorage(r: WorkspaceStorage): string {
  const rows = [
    ['cold', cell(r.cold), cell(r.cold.referenced), cell(r.cold.leftover), cell(r.cold.ledgerPages), String(r.cold.missing)],
    ['archive', cell(r.archive), cell(r.archive.referenced), cell(r.archive.leftover), cell(r.archive.ledgerPages), String(r.archive.missing)],
    [`replicas (${r.replicas.generations} gen)`, cell(r.replicas), cell(r.replicas.referenced), cell(r.replicas.leftover), '-', String(r.replicas.missing)],
    ['total', cell(r.total), '', '', '', ''],
  ];
  const local = r.local.kind === null ? 'none' : `${r.local.kind} on ${r.local.host ?? '?'}${r.local.bytes !== null ? `, ${r.local.bytes} B` : ' (size not reported by the host)'}`;
  return [
    `workspace ${r.workspaceId} (${r.tenant}, ${r.state})${r.truncated ? '  TRUNCATED: a listing stopped at its limit, figures are at least these' : ''}`,
    table(['STORE', 'BYTES / OBJECTS', 'REFERENCED', 'LEFTOVER', 'LEDGER PAGES', 'MISSING'], rows),
    `local copy: ${local}`,
    `stores: cold ${r.stores.cold}, archive ${r.stores.archive}${r.archive.objects === 0 && r.stores.archive === r.stores.cold ? ' (the cold store)' : ''}, replicas ${r.stores.replicas ?? 'off'}`,
    ...(r.leftovers.length ? ['leftovers:', ...r.leftovers.map((u) => `  ${u}`)] : []),
  ].join('\n');
}

export function formatTenantStorage(r: TenantStorage): string {
  const rows = r.workspaces.map((w) => [w.workspaceId, w.state ?? '-', cell(w.cold), cell(w.archive), cell(w.replicas), cell(w.leftover), cell(w.total)]);
  if (r.others) rows.push([`(not running: ${r.others.workspaces})`, '-', cell(r.others.cold), cell(r.others.archive), cell(r.others.replicas), cell(sumLeftover(r.others)), cell(r.others.total)]);
  const t = r.totals;
  rows.push(['TOTAL', '', cell(t.cold), cell(t.archive), cell(t.replicas), cell(sumLeftover(t)), cell(t.total)]);
  return [
    `tenant ${r.tenant}: ${r.workspaces.length} running workspace(s)${r.truncated ? '  TRUNCATED' : ''}`,
    table(['WORKSPACE', 'STATE', 'COLD', 'ARCHIVE', 'REPLICAS', 'LEFTOVER', 'TOTAL'], rows),
    `ledger pages: ${cell({ objects: t.cold.ledgerPages.objects + t.archive.ledgerPages.objects, bytes: t.cold.ledgerPages.bytes + t.archive.ledgerPages.bytes })}; local copies: ${t.local.live} live, ${t.local.prefetched} prefetched (${t.local.prefetchedBytes} B)`,
    ...(r.others && r.others.ids.length ? [`not running: ${r.others.ids.join(', ')}`] : []),
    ...r.notes.map((n) => `note: ${n}`),
  ].join('\n');
}

function sumLeftover(s: { cold: { leftover: Amount }; archive: { leftover: Amount }; replicas: { leftover: Amount } }): Amount {
  return { objects: s.cold.leftover.objects + s.archive.leftover.objects + s.replicas.leftover.objects, bytes: s.cold.leftover.bytes + s.archive.leftover.bytes + s.replicas.leftover.bytes };
}
