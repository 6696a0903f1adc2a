/**
 * The one ListObjectsV2 loop: every caller that lists S3 keys (the blob store's `list`, the replica tools'
 * children and delete, the storage report) pages through it. Each page is checked before it is handed on: keys
 * under the asked prefix only, sizes whole numbers ≥ 0, and a truncated page must say where to go on (else the
 * same page would be listed forever).
 */
import type { S3Client } from '@aws-sdk/client-s3';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { StoreError } from './blob-store';

/** One object as listed: its full key in the bucket and its size. */
export interface ListedObject {
  key: string;
  bytes: number;
}

export interface S3ListPage {
  objects: ListedObject[];
  /** With a delimiter: the "directories" under the prefix (full keys, ending in the delimiter). */
  prefixes: string[];
}

/** A listing answered something that cannot be trusted. */
export class S3ListError extends StoreError {
  override name = 'S3ListError';
}

/**
 * Pages of the objects under `prefix` in `bucket` (and, with `delimiter`, the common prefixes), in the server's
 * order. Errors of the SDK pass through unchanged (callers map them to their own errors).
 */
export async function* s3ListPages(
  client: S3Client,
  opts: { bucket: string; prefix: string; delimiter?: string; signal?: AbortSignal },
): AsyncGenerator<S3ListPage> {
  let token: string | undefined;
  do {
    const page = await client.send(
      new ListObjectsV2Command({ Bucket: opts.bucket, Prefix: opts.prefix, Delimiter: opts.delimiter, ContinuationToken: token }),
      { abortSignal: opts.signal },
    );
    const objects: ListedObject[] = [];
    for (const o of page.Contents ?? []) {
      if (typeof o.Key !== 'string' || !o.Key.startsWith(opts.prefix)) {
        throw new S3ListError(`s3://${opts.bucket}: listing '${opts.prefix}' answered a key outside it (${JSON.stringify(o.Key)})`);
      }
      const bytes = o.Size;
      if (typeof bytes !== 'number' || !Number.isSafeInteger(bytes) || bytes < 0) {
        throw new S3ListError(`s3://${opts.bucket}/${o.Key}: listed with an invalid size (${JSON.stringify(bytes)})`);
      }
      objects.push({ key: o.Key, bytes });
    }
    const prefixes = (page.CommonPrefixes ?? []).map((p) => p.Prefix).filter((p): p is string => typeof p === 'string' && p.startsWith(opts.prefix));
    yield { objects, prefixes };
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
    if (page.IsTruncated && !token) throw new S3ListError(`s3://${opts.bucket}: a truncated listing of '${opts.prefix}' gave no token to continue from`);
  } while (token);
}
