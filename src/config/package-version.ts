// The version the programs print (--version) and the man pages carry: package.json's.

/** The package version; package.json is read from the root, three levels above dist/src/config. */
export function packageVersion(): string {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return (require('../../../package.json') as { version: string }).version;
}
