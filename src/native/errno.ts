// errno numbers the addon returns as -errno (send(), reap() results,
// onEvent), read once from Node's table for this platform instead of
// written as literals.

import { constants } from 'node:os';

const errno = constants.errno;

/** send(): the socket buffer is full; try again later. */
export const EAGAIN = errno.EAGAIN;
/** send(): the device queue is full; try again later. */
export const ENOBUFS = errno.ENOBUFS;
/** send(): a frame is larger than the interface's MTU now. */
export const EMSGSIZE = errno.EMSGSIZE;
/** send(), onEvent: the interface went down. */
export const ENETDOWN = errno.ENETDOWN;
/** send(): the interface is gone. */
export const ENXIO = errno.ENXIO;
/** Completions: an operation the ring could not take (the engine's own use). */
export const EBUSY = errno.EBUSY;
/** Completions: an operation that failed the addon's checks. */
export const EINVAL = errno.EINVAL;
/** Completions of an rbd store: the cluster blocklisted this client (librbd's EBLOCKLISTED): fenced. */
export const ESHUTDOWN = 108; // Linux; not in Node's table
/** Completions of an rbd store: a write without the image's exclusive lock. */
export const EROFS = errno.EROFS;
