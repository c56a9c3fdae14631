// The errors the serving core's API raises that its callers tell apart: a
// command line prints their message alone (it says what to fix), and the
// logger leaves out their stack. Here, below every room that raises them
// (target, views), so that each raises the same class.

/** A configuration the server cannot serve, or a request it refuses; the message says what to fix. */
export class ConfigError extends Error {}

/** None of the configured interfaces exists at a first start: a restart waits for them, so this one may pass. */
export class NoInterfaceError extends ConfigError {}

/**
 * Start-up found nothing it can serve: every export is held for its
 * configuration or refused because another target serves its address.
 * `reasons` has one line per export ("eS.L: what is wrong; what to do").
 */
export class NothingToServe extends ConfigError {
  constructor(
    readonly reasons: string[],
    /** Some export was refused because another target answers its address: that target may go (or be a forger that stops), so a restart may serve. */
    readonly transient = false,
  ) {
    super(reasons.join('\n'));
  }
}

/** A start-up error that comes back unchanged at every try: fix the configuration (or the files it names), then start again. */
export function isPermanentStartError(e: unknown): boolean {
  if (e instanceof NothingToServe) return !e.transient;
  return e instanceof ConfigError && !(e instanceof NoInterfaceError);
}

/** A reload found a problem before it changed anything; the message says what to fix. */
export class ReloadRefused extends ConfigError {}

/** A resize that was refused or is not possible; the message says why and what to do. */
export class ResizeError extends Error {}
