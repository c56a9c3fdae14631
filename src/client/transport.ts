// The client's view of the network: the part of a PacketSocket it uses, and
// how to open one for an initiator. The native addon is loaded lazily (by
// loadAddon, on first use), so the pure parts of the client (and their tests,
// with a fake socket) work without it being built.

import { loadAddon, NativeLimit, type LinkInfo, type PacketSocket, type PacketSocketOptions } from '../native/addon';

/** What the client and the load engine need of a packet socket (a fake in tests). */
export type FrameSocket = Pick<PacketSocket, 'ring' | 'drain' | 'release' | 'send' | 'startPolling' | 'stopPolling' | 'close'> &
  Partial<Pick<PacketSocket, 'ready'>>;

/** An open socket and the facts about its interface the client needs. */
export interface Endpoint {
  socket: FrameSocket;
  ifname: string;
  netns: string | undefined;
  /** Our own MAC (source of every request). */
  mac: Uint8Array;
  /** Interface MTU when the socket was opened. */
  mtu: number;
}

export interface OpenEndpointOptions {
  /** Path of a network namespace (e.g. /run/netns/x) the interface lives in. */
  netns?: string;
  /** Receive ring slots (default 512). */
  frameCount?: number;
  /** Largest MTU the socket must receive whole (default: the interface's MTU now, at least 9000). */
  maxMtu?: number;
  /** Socket send buffer in bytes (0 = kernel default). */
  sndbuf?: number;
}

/** Receive slot size for frames up to `mtu`: Ethernet header + payload + room for the tpacket header, in 2 KiB steps. */
export function frameSizeForMtu(mtu: number): number {
  const need = mtu + 14 + 4 + 128;
  return Math.min(NativeLimit.FrameSizeMax, Math.ceil(need / 2048) * 2048);
}

export function linkInfo(ifname: string, netns?: string): LinkInfo {
  const info = loadAddon().linkInfo(ifname, netns);
  if (info === null) {
    throw new Error(
      `no network interface "${ifname}"${netns ? ` in namespace ${netns}` : ''} (see \`ip${netns ? ` -n ${netns.split('/').pop()}` : ''} link\`)`,
    );
  }
  return info;
}

/** Opens a packet socket on `ifname` that receives AoE replies. */
export function openEndpoint(ifname: string, options: OpenEndpointOptions = {}): Endpoint {
  const info = linkInfo(ifname, options.netns);
  if (!info.up) {
    throw new Error(`interface "${ifname}" is down (bring it up with \`ip link set ${ifname} up\`)`);
  }
  const maxMtu = Math.max(options.maxMtu ?? 9000, info.mtu);
  // An initiator must see replies (R set), which the target's filter drops.
  const socketOptions: PacketSocketOptions = {
    frameSize: frameSizeForMtu(maxMtu),
    frameCount: options.frameCount ?? 512,
    netns: options.netns,
    sndbuf: options.sndbuf ?? 0,
    accept: 'replies',
  };
  const socket = loadAddon().openPacket(ifname, socketOptions);
  return { socket, ifname, netns: options.netns, mac: info.mac, mtu: info.mtu };
}
