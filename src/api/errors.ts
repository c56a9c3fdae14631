// The errors the serving core's API raises that its callers tell apart: a
// command line prints their message alone (it says what to fix), and the
// logger leaves out their stack. Here, below every room that raises them
// (target, views), so that each raises the same class.

/** A configuration the server cannot serve, or a request it refuses; the message says what to fix. */
export class ConfigError extends Error {}

/** A reload found a problem before it changed anything; the message says what to fix. */
export class ReloadRefused extends ConfigError {}

/** A resize that was refused or is not possible; the message says why and what to do. */
export class ResizeError extends Error {}
