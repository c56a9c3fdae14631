// The version `vblade --version` and `vbladed --version` print: package.json's.

export { packageVersion } from '../config/package-version';
