/**
 * How every part of Workbooks reaches Temporal (worker hosts, the HTTP API, the CLI, WorkbooksClient): one
 * client profile read the way Temporal's own tools read it (@temporalio/envconfig): a profile of a TOML config
 * file (TEMPORAL_CONFIG_FILE, default ~/.config/temporalio/temporal.toml; TEMPORAL_PROFILE, default `default`)
 * with the TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TEMPORAL_TLS* and TEMPORAL_GRPC_META_* variables
 * laid over it. Certificates and keys are read and checked once, at start, so a missing or bad file is a one-line
 * error naming the variable (or profile key) and the file. The API key, the client key and gRPC metadata are held
 * out of sight: they are never logged, printed or serialized, and child processes never see TEMPORAL_* variables
 * (src/child-env.ts).
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadClientConfig, loadClientConfigProfile, type ClientConfigProfile, type ConfigDataSource } from '@temporalio/envconfig';
import { Connection, type ConnectionOptions } from '@temporalio/client';
import { NativeConnection, type NativeConnectionOptions } from '@temporalio/worker';
import { TemporalConnectError, type TlsSettings, explainConnectError, isSlowAnswer, probe } from './temporal-diagnose';

export { TemporalConnectError };

/** A setting that cannot be used (one line, names the variable or profile key and the file). */
export class TemporalSettingsError extends Error {
  override name = 'TemporalSettingsError';
}


export type { TlsSettings };

interface Secrets {
  apiKey?: string;
  /** undefined: plain unless an API key is set (then TLS with the system's roots); false: plain; else TLS. */
  tls?: TlsSettings | false;
  metadata?: Record<string, string>;
}

/** What one resolved profile says about reaching Temporal. Secrets stay inside (see toJSON). */
export class TemporalAccess {
  readonly #secrets: Secrets;

  constructor(
    /** The profile's address (host:port), or null when none is configured. */
    readonly address: string | null,
    /** The profile's namespace, or null when none is configured. */
    readonly namespace: string | null,
    /** Where the settings came from, for banners and errors: `environment` or `profile 'p' of <file> + environment`. */
    readonly source: string,
    secrets: Secrets = {},
  ) {
    this.#secrets = secrets;
  }

  /** No TLS, no API key: the embedded dev server, tests. */
  static plain(): TemporalAccess {
    return new TemporalAccess(null, null, 'defaults');
  }

  /** Whether the connection uses TLS. */
  get tls(): boolean {
    const t = this.#secrets.tls;
    return t === undefined ? this.#secrets.apiKey !== undefined : t !== false;
  }

  /** Whether anything beyond a plain connection is configured (TLS, a client certificate, an API key, metadata). */
  get secured(): boolean {
    return this.tls || this.#secrets.apiKey !== undefined || this.#secrets.metadata !== undefined;
  }

  /** How the connection is secured, without secrets: `plain`, `TLS`, `mTLS`, `TLS + API key`. */
  get mode(): string {
    if (!this.tls) return this.#secrets.apiKey !== undefined ? 'API key without TLS' : 'plain';
    const t = this.#secrets.tls;
    const m = t && t.clientCertPair ? 'mTLS' : 'TLS';
    return this.#secrets.apiKey !== undefined ? `${m} + API key` : m;
  }

  /** One line for banners: the mode and where the settings came from. */
  describe(): string {
    return this.source === 'defaults' ? this.mode : `${this.mode}, ${this.source}`;
  }

  /** The options both connection kinds take (address, TLS, API key, metadata). Holds secrets: never log it. */
  connectionOptions(address: string): { address: string; tls?: TlsSettings | boolean; apiKey?: string; metadata?: Record<string, string> } {
    const s = this.#secrets;
    return {
      address,
      ...(s.tls !== undefined ? { tls: s.tls } : {}),
      ...(s.apiKey !== undefined ? { apiKey: s.apiKey } : {}),
      ...(s.metadata !== undefined ? { metadata: { ...s.metadata } } : {}),
    };
  }

  /** Serialized (a config dumped to a log, an error's context): no secrets. */
  toJSON(): Record<string, unknown> {
    return { address: this.address, namespace: this.namespace, mode: this.mode, source: this.source };
  }
}

type Env = Record<string, string | undefined>;

/** TEMPORAL_* variables envconfig reads as booleans: only true/false/1/0 (envconfig would read `yes` as false). */
function boolVar(env: Env, name: string): boolean | undefined {
  const raw = env[name];
  if (raw === undefined || raw === '') return undefined;
  const v = raw.trim().toLowerCase();
  if (v === 'true' || v === '1') return true;
  if (v === 'false' || v === '0') return false;
  throw new TemporalSettingsError(`${name} must be true or false, got '${raw}'`);
}

/** The config file envconfig reads: TEMPORAL_CONFIG_FILE, else the user's temporalio/temporal.toml. */
function configFilePath(env: Env): string | null {
  if (env.TEMPORAL_CONFIG_FILE) return env.TEMPORAL_CONFIG_FILE;
  if (os.platform() === 'darwin') return env.HOME ? path.join(env.HOME, 'Library', 'Application Support', 'temporalio', 'temporal.toml') : null;
  let dir = env.XDG_CONFIG_HOME;
  if (!dir) dir = env.HOME ? path.join(env.HOME, '.config') : undefined;
  else if (!path.isAbsolute(dir)) return null;
  return dir ? path.join(dir, 'temporalio', 'temporal.toml') : null;
}

const FIELDS = {
  clientCert: { env: 'TEMPORAL_TLS_CLIENT_CERT', toml: 'client_cert', what: 'client certificate' },
  clientKey: { env: 'TEMPORAL_TLS_CLIENT_KEY', toml: 'client_key', what: 'client key' },
  serverCACert: { env: 'TEMPORAL_TLS_SERVER_CA_CERT', toml: 'server_ca_cert', what: 'server CA certificate' },
} as const;

/**
 * The TEMPORAL_* settings of `env` (and the profile they select) as a TemporalAccess. Throws TemporalSettingsError
 * for anything that cannot work: a config file named but missing or unreadable, a profile that is not there, a
 * certificate or key that cannot be read or is not PEM, a certificate without its key.
 */
export function loadTemporalAccess(env: Env = process.env): TemporalAccess {
  const file = configFilePath(env);
  const fileExists = file !== null && fs.existsSync(file);
  if (env.TEMPORAL_CONFIG_FILE && !fileExists) throw new TemporalSettingsError(`TEMPORAL_CONFIG_FILE ${env.TEMPORAL_CONFIG_FILE}: no such file`);
  const profileName = env.TEMPORAL_PROFILE || 'default';
  boolVar(env, 'TEMPORAL_TLS');
  if (boolVar(env, 'TEMPORAL_TLS_DISABLE_HOST_VERIFICATION')) {
    throw new TemporalSettingsError(
      'TEMPORAL_TLS_DISABLE_HOST_VERIFICATION is not supported (the Temporal TypeScript SDK always verifies the server certificate): give its CA with TEMPORAL_TLS_SERVER_CA_CERT_PATH and, if the name differs, TEMPORAL_TLS_SERVER_NAME',
    );
  }
  const defined: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (v !== undefined && v !== '') defined[k] = v;
  let profile: ClientConfigProfile;
  try {
    profile = loadClientConfigProfile({ overrideEnvVars: defined });
  } catch (err) {
    const msg = firstLine((err as Error).message);
    if (/^Profile '.*' not found/.test(msg)) {
      throw new TemporalSettingsError(`TEMPORAL_PROFILE '${profileName}': no such profile in ${fileExists ? file : 'any config file (none found; set TEMPORAL_CONFIG_FILE)'}`);
    }
    if (/Cannot specify both (\w+)_path and \w+_data/.test(msg)) {
      const field = /Cannot specify both (\w+)_path/.exec(msg)![1]!;
      throw new TemporalSettingsError(`both a path and data are given for the ${field.replace(/_/g, ' ')} (${field}_path/_data in ${describeFile(file, profileName, fileExists)} or TEMPORAL_TLS_${field.toUpperCase()}_PATH/_DATA): give one`);
    }
    throw new TemporalSettingsError(`${fileExists ? `config file ${file}` : 'Temporal settings'}: ${msg}`);
  }
  const fromFile = fileExists && (env.TEMPORAL_PROFILE !== undefined || hasProfile(file!, profileName));
  const anyVar = Object.keys(defined).some((k) => k.startsWith('TEMPORAL_'));
  const source = fromFile ? `profile '${profileName}' of ${file}${anyVar ? ' + TEMPORAL_* variables' : ''}` : anyVar ? 'TEMPORAL_* variables' : 'defaults';

  const origin = (field: keyof typeof FIELDS, kind: 'PATH' | 'DATA'): string => {
    const f = FIELDS[field];
    const name = `${f.env}_${kind}`;
    return defined[name] !== undefined ? name : `${f.toml}_${kind.toLowerCase()} of ${describeFile(file, profileName, fileExists)}`;
  };
  const read = (field: keyof typeof FIELDS, src: ConfigDataSource | undefined): Uint8Array | undefined => {
    if (!src) return undefined;
    if ('path' in src) {
      try {
        return fs.readFileSync(src.path);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'is a directory' : firstLine((err as Error).message);
        throw new TemporalSettingsError(`${origin(field, 'PATH')} ${src.path}: ${why}`);
      }
    }
    return typeof src.data === 'string' ? Buffer.from(src.data) : src.data;
  };
  const where = (field: keyof typeof FIELDS, src: ConfigDataSource): string => ('path' in src ? `${origin(field, 'PATH')} ${src.path}` : origin(field, 'DATA'));

  let tls: Secrets['tls'];
  const t = profile.tls;
  if (t !== undefined) {
    if (t.disabled === true) {
      tls = false;
    } else {
      const crt = read('clientCert', t.clientCert);
      const key = read('clientKey', t.clientKey);
      const ca = read('serverCACert', t.serverCACert);
      if (crt && !key) throw new TemporalSettingsError(`${where('clientCert', t.clientCert!)} is set but no client key is (TEMPORAL_TLS_CLIENT_KEY_PATH or TEMPORAL_TLS_CLIENT_KEY_DATA)`);
      if (key && !crt) throw new TemporalSettingsError(`${where('clientKey', t.clientKey!)} is set but no client certificate is (TEMPORAL_TLS_CLIENT_CERT_PATH or TEMPORAL_TLS_CLIENT_CERT_DATA)`);
      if (crt) checkCertificate(crt, where('clientCert', t.clientCert!));
      if (ca) checkCertificate(ca, where('serverCACert', t.serverCACert!));
      if (key) checkKey(key, where('clientKey', t.clientKey!));
      tls = {
        ...(t.serverName ? { serverNameOverride: t.serverName } : {}),
        ...(ca ? { serverRootCACertificate: ca } : {}),
        ...(crt && key ? { clientCertPair: { crt, key } } : {}),
      };
    }
  }
  const secrets: Secrets = {
    ...(profile.apiKey ? { apiKey: profile.apiKey } : {}),
    ...(tls !== undefined ? { tls } : {}),
    ...(profile.grpcMeta && Object.keys(profile.grpcMeta).length ? { metadata: profile.grpcMeta } : {}),
  };
  return new TemporalAccess(profile.address || null, profile.namespace || null, source, secrets);
}

function describeFile(file: string | null, profile: string, exists: boolean): string {
  return exists ? `profile '${profile}' in ${file}` : 'the profile';
}

/** Whether the config file has the profile (without it, the default profile is simply empty). */
function hasProfile(file: string, name: string): boolean {
  try {
    return loadClientConfig({ configSource: { path: file } }).profiles[name] !== undefined;
  } catch {
    return false;
  }
}

/** The PEM text holds at least one certificate Node can parse. */
function checkCertificate(pem: Uint8Array, where: string): void {
  try {
    new crypto.X509Certificate(Buffer.from(pem));
  } catch {
    throw new TemporalSettingsError(`${where}: not a PEM certificate`);
  }
}

/** The PEM text is a private key Node can parse (its content is never echoed). */
function checkKey(pem: Uint8Array, where: string): void {
  try {
    crypto.createPrivateKey({ key: Buffer.from(pem), format: 'pem' });
  } catch {
    throw new TemporalSettingsError(`${where}: not a PEM private key`);
  }
}

function firstLine(s: string): string {
  return (s.split('\n')[0] ?? '').trim();
}

/** How long a client connect may go on before the address is probed for a cause to stop waiting for. */
const EARLY_PROBE_MS = 1_500;

/**
 * A client (gRPC-js) connection to `address` with the profile's TLS, API key and metadata. gRPC-js keeps retrying
 * a refused handshake until its deadline; when a probe after EARLY_PROBE_MS finds a cause that retrying cannot
 * cure (nothing listening, a certificate refused either way; not a mere slow answer), the connect gives up then
 * with that cause.
 */
export async function connectClient(access: TemporalAccess, address: string, opts: Omit<ConnectionOptions, 'address' | 'tls' | 'apiKey' | 'metadata'> = {}): Promise<Connection> {
  if (access.tls) muteIpServerNameWarning();
  const pending = Connection.connect({ ...opts, ...access.connectionOptions(address) });
  let timer: NodeJS.Timeout | undefined;
  const early = new Promise<string>((resolve) => {
    timer = setTimeout(() => probe(access, address).then((why) => why && !isSlowAnswer(why) && resolve(why), () => undefined), EARLY_PROBE_MS);
  });
  try {
    const first = await Promise.race([pending.then((connection) => ({ connection })), early.then((why) => ({ why }))]);
    if ('connection' in first) return first.connection;
    // Given up on: close it should it still connect.
    pending.then((c) => c.close(), () => undefined);
    throw new TemporalConnectError(`cannot connect to Temporal at ${address} (${access.describe()}): ${first.why}`);
  } catch (err) {
    if (err instanceof TemporalConnectError) throw err;
    throw await explainConnectError(err, address, access);
  } finally {
    clearTimeout(timer);
  }
}

/** A worker (Core) connection to `address` with the profile's TLS, API key and metadata. */
export async function connectNative(access: TemporalAccess, address: string, opts: Omit<NativeConnectionOptions, 'address' | 'tls' | 'apiKey' | 'metadata'> = {}): Promise<NativeConnection> {
  try {
    return await NativeConnection.connect({ ...opts, ...access.connectionOptions(address) });
  } catch (err) {
    throw await explainConnectError(err, address, access);
  }
}

let muted = false;

/**
 * gRPC-js passes the dialed host as TLS ServerName even when it is an IP address, and Node warns (DEP0123) on every
 * process that does: a second stderr line on each CLI call to `TEMPORAL_ADDRESS=10.0.0.5:7233`. Such addresses are
 * legitimate here (certificates with IP SANs), so that one warning is dropped; every other warning still prints.
 */
function muteIpServerNameWarning(): void {
  if (muted) return;
  muted = true;
  const emit = process.emitWarning.bind(process) as (...args: unknown[]) => void;
  process.emitWarning = ((warning: unknown, ...rest: unknown[]) => {
    const code = typeof rest[0] === 'object' && rest[0] !== null ? (rest[0] as { code?: string }).code : rest[1];
    if (code === 'DEP0123') return;
    emit(warning, ...rest);
  }) as typeof process.emitWarning;
}
