// The version `vblade --version` and `vbladed --version` print: package.json's.

/** The package version; package.json is read from the root, three levels above dist/src/cli. */
export function packageVersion(): string {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return (require('../../../package.json') as { version: string }).version;
}
