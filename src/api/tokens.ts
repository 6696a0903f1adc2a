/**
 * Bearer tokens of the HTTP API and the tenant each one stands for.
 *
 * Sources: WORKBOOKS_TOKENS (`token=tenant,token=tenant,token=*`) and WORKBOOKS_TOKENS_FILE (one `token=tenant`
 * per line; blank lines and `#` comments ignored). `*` is an admin that sees every tenant. When neither is set,
 * `workbooks up` makes one admin token and keeps it in `<data dir>/api-token` (mode 0600).
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { TENANT_PATTERN } from '../contract/ids';

export const ADMIN = '*';

/** Who a request is: a tenant, or the admin (tenant null). */
export interface Caller {
  tenant: string | null;
  admin: boolean;
}

export class TokenConfigError extends Error {
  override name = 'TokenConfigError';
}

/** Printable token characters: what fits in an Authorization header without quoting. */
/** At least 16 characters: a short token can be guessed. */
const TOKEN_PATTERN = /^[A-Za-z0-9._~+/-]{16,512}$/;

export class TokenMap {
  /** sha256(token) → tenant: lookups never compare the secret itself, so they take the same time. */
  private readonly byHash = new Map<string, string>();

  get size(): number {
    return this.byHash.size;
  }

  add(token: string, tenant: string, where: string): void {
    if (!TOKEN_PATTERN.test(token)) throw new TokenConfigError(`${where}: a token must be 16-512 characters of A-Z a-z 0-9 . _ ~ + / -`);
    if (tenant !== ADMIN && !TENANT_PATTERN.test(tenant)) {
      throw new TokenConfigError(`${where}: tenant '${tenant}' is invalid: use 1-63 lowercase letters, digits or dashes, or * for an admin`);
    }
    const h = hash(token);
    const had = this.byHash.get(h);
    if (had !== undefined && had !== tenant) throw new TokenConfigError(`${where}: one token is given for two tenants ('${had}' and '${tenant}')`);
    this.byHash.set(h, tenant);
  }

  /** The caller of an `Authorization` header value, or null when it is missing, malformed or unknown. */
  authenticate(header: string | undefined): Caller | null {
    if (!header) return null;
    const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!m) return null;
    const tenant = this.byHash.get(hash(m[1]!));
    if (tenant === undefined) return null;
    return tenant === ADMIN ? { tenant: null, admin: true } : { tenant, admin: false };
  }
}

function hash(token: string): string {
  return crypto.createHash('sha256').update(token).digest('hex');
}

/** Parses `token=tenant` pairs separated by commas or newlines. */
export function parseTokenSpec(spec: string, where: string, into = new TokenMap()): TokenMap {
  let n = 0;
  for (const raw of spec.split(/[,\n]/)) {
    n++;
    const line = raw.replace(/#.*$/, '').trim();
    if (!line) continue;
    const i = line.lastIndexOf('=');
    if (i <= 0 || i === line.length - 1) throw new TokenConfigError(`${where} entry ${n}: expected token=tenant`);
    into.add(line.slice(0, i).trim(), line.slice(i + 1).trim(), `${where} entry ${n}`);
  }
  return into;
}

export interface LoadedTokens {
  tokens: TokenMap;
  /** Set when no tokens were configured and an admin token was made (or reused) here. */
  generatedFile: string | null;
}

/** Tokens from the config; without any, an admin token kept in the data dir (made once). */
export function loadTokens(cfg: { apiTokens: string | null; apiTokensFile: string | null; dataDir: string }): LoadedTokens {
  const tokens = new TokenMap();
  if (cfg.apiTokens) parseTokenSpec(cfg.apiTokens, 'WORKBOOKS_TOKENS', tokens);
  if (cfg.apiTokensFile) {
    let text: string;
    try {
      text = fs.readFileSync(cfg.apiTokensFile, 'utf8');
    } catch (err) {
      throw new TokenConfigError(`WORKBOOKS_TOKENS_FILE ${cfg.apiTokensFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    parseTokenSpec(text, `WORKBOOKS_TOKENS_FILE ${cfg.apiTokensFile}`, tokens);
  }
  if (cfg.apiTokens || cfg.apiTokensFile) {
    if (tokens.size === 0) throw new TokenConfigError('WORKBOOKS_TOKENS / WORKBOOKS_TOKENS_FILE hold no token');
    return { tokens, generatedFile: null };
  }
  const file = path.join(cfg.dataDir, 'api-token');
  let token: string;
  try {
    token = fs.readFileSync(file, 'utf8').trim();
  } catch {
    token = crypto.randomBytes(24).toString('base64url');
    fs.mkdirSync(cfg.dataDir, { recursive: true });
    fs.writeFileSync(file, token + '\n', { mode: 0o600 });
  }
  tokens.add(token, ADMIN, file);
  return { tokens, generatedFile: file };
}
