/**
 * What a service process writes (workspace files, markers, stored copies, the made token, its children's logs)
 * is its own: files 0600, directories 0700.
 */
export function ownFilesOnly(): void {
  process.umask(0o077);
}
