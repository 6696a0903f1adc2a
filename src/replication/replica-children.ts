/**
 * The names directly under a replica URL (`file:///dir` → its subdirectories, `s3://bucket/prefix` → the
 * "directories" under `prefix/`): how a caller that keeps several replicas under one root (one per generation)
 * finds them without a record of its own. Names are returned as found; callers check them against their own
 * naming rule before using any.
 */
import fs from 'node:fs';
import { S3SettingsError, s3Client, s3SettingsFromEnv } from '../storage/s3-client';
import { s3ListPages } from '../storage/s3-list';
import { ReplicationError } from './errors';
import { parseReplicaUrl } from './urls';

/** At most this many names are read: a root holding more is not one of ours. */
const MAX_CHILDREN = 10_000;

/** `namePrefix`: only names starting with it (e.g. a tenant's `acme.`; listed as such on S3, filtered on disk). */
export async function replicaChildren(rootUrl: string, opts: { env?: NodeJS.ProcessEnv; signal?: AbortSignal; namePrefix?: string } = {}): Promise<string[]> {
  const root = parseReplicaUrl(rootUrl, 'rootUrl');
  if (root.kind === 'file') {
    let entries: fs.Dirent[];
    try {
      entries = await fs.promises.readdir(root.dir, { withFileTypes: true });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return [];
      if (code === 'ENOTDIR') throw new ReplicationError(`cannot list ${root.url}: ${root.dir} is not a directory`);
      throw new ReplicationError(`cannot list ${root.url}: ${(err as Error).message}`);
    }
    const dirs = entries.filter((e) => e.isDirectory() && e.name.startsWith(opts.namePrefix ?? ''));
    if (dirs.length > MAX_CHILDREN) throw new ReplicationError(`cannot list ${root.url}: more than ${MAX_CHILDREN} entries`);
    return dirs.map((e) => e.name);
  }
  let client;
  try {
    client = s3Client(s3SettingsFromEnv(opts.env ?? process.env));
  } catch (err) {
    if (err instanceof S3SettingsError) throw new ReplicationError(err.message);
    throw err;
  }
  const prefix = `${root.prefix}/`;
  const names: string[] = [];
  try {
    for await (const page of s3ListPages(client, { bucket: root.bucket, prefix: prefix + (opts.namePrefix ?? ''), delimiter: '/', signal: opts.signal })) {
      for (const p of page.prefixes) {
        const name = p.slice(prefix.length).replace(/\/$/, '');
        if (name) names.push(name);
      }
      if (names.length > MAX_CHILDREN) throw new ReplicationError(`cannot list ${root.url}: more than ${MAX_CHILDREN} entries`);
    }
  } catch (err) {
    if (err instanceof ReplicationError) throw err;
    throw new ReplicationError(`cannot list ${root.url}: ${(err as Error).name}: ${(err as Error).message}`);
  }
  return names;
}
