/** Readable text of a failure inside workflow code: activity failures wrap the real cause; report the innermost. */
export function messageOf(err: unknown): string {
  let e: unknown = err;
  while (e && typeof e === 'object' && 'cause' in e && (e as { cause?: unknown }).cause) e = (e as { cause: unknown }).cause;
  return e instanceof Error ? e.message : String(e);
}
