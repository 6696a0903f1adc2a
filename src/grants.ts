/**
 * Data-plane grants: short-lived, signed permissions for one workspace's data on one host.
 *
 * A grant names a workspace, the placement it is served under, the operations it allows (read, write, export)
 * and when it expires; it is signed with HMAC-SHA256 under the data key that every host, the API and the CLI
 * share (WORKBOOKS_DATA_KEY, WORKBOOKS_DATA_KEY_FILE, or `<data dir>/data-key` made by `workbooks up`). A host's
 * data server serves a request only with a valid grant for that very workspace, placement and operation.
 * Wire form: `v1.<base64url(JSON)>.<base64url(HMAC)>`, sent as `Authorization: Bearer <grant>`.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

export type GrantOp = 'read' | 'write' | 'export';
export const GRANT_OPS: readonly GrantOp[] = ['read', 'write', 'export'];

export interface Grant {
  workspaceId: string;
  /** The placement the workspace is served under (null: an instance opened by an older build). */
  placement: number | null;
  ops: GrantOp[];
  /** Expiry, epoch seconds. */
  expiresAt: number;
}

/** How long a grant the client makes is valid. */
export const GRANT_TTL_SECONDS = 120;
/** A host refuses grants valid for longer than this (a leaked grant must die soon). */
export const MAX_GRANT_TTL_SECONDS = 15 * 60;
/** Shortest acceptable data key. */
export const MIN_DATA_KEY_CHARS = 32;

export class GrantError extends Error {
  override name = 'GrantError';
  constructor(
    readonly code: 'grant_required' | 'bad_grant' | 'grant_expired' | 'grant_mismatch',
    message: string,
  ) {
    super(message);
  }
}

export class DataKeyError extends Error {
  override name = 'DataKeyError';
}

export class DataKey {
  private readonly secret: Buffer;

  constructor(secret: string) {
    if (typeof secret !== 'string' || secret.trim().length < MIN_DATA_KEY_CHARS) {
      throw new DataKeyError(`the data key must be at least ${MIN_DATA_KEY_CHARS} characters`);
    }
    this.secret = Buffer.from(secret.trim(), 'utf8');
  }

  sign(g: Grant): string {
    const body = Buffer.from(JSON.stringify({ w: g.workspaceId, p: g.placement, o: g.ops, x: g.expiresAt })).toString('base64url');
    return `v1.${body}.${this.mac(body)}`;
  }

  /** A grant for the request the client is about to make. */
  grantFor(workspaceId: string, placement: number | null, ops: GrantOp[], now = Date.now()): string {
    return this.sign({ workspaceId, placement, ops, expiresAt: Math.floor(now / 1000) + GRANT_TTL_SECONDS });
  }

  /**
   * Checks a bearer value and what it grants: this workspace, this placement (undefined: the grant's own), this
   * operation, not expired. Throws GrantError otherwise.
   */
  verify(bearer: string | undefined, want: { workspaceId: string; placement?: number | null; op: GrantOp }, now = Date.now()): Grant {
    if (!bearer) throw new GrantError('grant_required', 'data requests need a grant (Authorization: Bearer v1.…, made with the data key)');
    const m = /^Bearer\s+(v1)\.([A-Za-z0-9_-]{1,4096})\.([A-Za-z0-9_-]{43})$/.exec(bearer.trim());
    if (!m) throw new GrantError('bad_grant', 'the grant is malformed');
    const [, , body, mac] = m;
    const want_ = Buffer.from(this.mac(body!), 'utf8');
    const got = Buffer.from(mac!, 'utf8');
    if (want_.length !== got.length || !crypto.timingSafeEqual(want_, got)) throw new GrantError('bad_grant', 'the grant is not signed with this host\'s data key');
    let g: { w?: unknown; p?: unknown; o?: unknown; x?: unknown };
    try {
      g = JSON.parse(Buffer.from(body!, 'base64url').toString('utf8'));
    } catch {
      throw new GrantError('bad_grant', 'the grant is malformed');
    }
    if (typeof g.w !== 'string' || !(g.p === null || Number.isSafeInteger(g.p)) || !Array.isArray(g.o) || !Number.isSafeInteger(g.x)) {
      throw new GrantError('bad_grant', 'the grant is malformed');
    }
    const grant: Grant = { workspaceId: g.w, placement: g.p as number | null, ops: (g.o as unknown[]).filter((o): o is GrantOp => GRANT_OPS.includes(o as GrantOp)), expiresAt: g.x as number };
    const nowS = Math.floor(now / 1000);
    if (grant.expiresAt < nowS) throw new GrantError('grant_expired', 'the grant has expired; ask for a new one');
    if (grant.expiresAt - nowS > MAX_GRANT_TTL_SECONDS) throw new GrantError('bad_grant', `the grant is valid for longer than ${MAX_GRANT_TTL_SECONDS} s`);
    if (grant.workspaceId !== want.workspaceId) throw new GrantError('grant_mismatch', 'the grant is for another workspace');
    if (want.placement !== undefined && grant.placement !== want.placement) throw new GrantError('grant_mismatch', 'the grant is for another placement of this workspace');
    if (!grant.ops.includes(want.op)) throw new GrantError('grant_mismatch', `the grant does not allow ${want.op}`);
    return grant;
  }

  private mac(body: string): string {
    return crypto.createHmac('sha256', this.secret).update(`v1.${body}`).digest('base64url');
  }
}

/** Where `workbooks up` keeps the data key it makes. */
export function dataKeyFile(dataDir: string): string {
  return path.join(dataDir, 'data-key');
}

/**
 * The data key: the configured one (WORKBOOKS_DATA_KEY or the file WORKBOOKS_DATA_KEY_FILE names), else the one in
 * `<data dir>/data-key`, made there (0600) when `create` is set and there is none. Null when there is none.
 */
export function loadDataKey(cfg: { dataKey: string | null; dataDir: string }, opts: { create?: boolean } = {}): DataKey | null {
  if (cfg.dataKey) return new DataKey(cfg.dataKey);
  const file = dataKeyFile(cfg.dataDir);
  try {
    return new DataKey(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    if (err instanceof DataKeyError) throw new DataKeyError(`${file}: ${err.message}`);
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || !opts.create) return null;
  }
  const secret = crypto.randomBytes(32).toString('base64url');
  fs.mkdirSync(cfg.dataDir, { recursive: true });
  try {
    fs.writeFileSync(file, secret + '\n', { mode: 0o600, flag: 'wx' });
  } catch (err) {
    // Another process made it first: use that one.
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return new DataKey(fs.readFileSync(file, 'utf8'));
    throw err;
  }
  return new DataKey(secret);
}
