// One serving process per address and interface on a host. Two processes on
// one interface never see each other's frames (the packet socket ignores
// outgoing ones), so the wire probe cannot find them; instead each claims
// its shelf.slot and interface by binding an abstract Unix socket, a name the
// kernel scopes to the network namespace and frees when the process dies,
// whatever its run-dir.

import * as net from 'node:net';

/** Held claims; release() gives them up (stop). */
export class AddressClaims {
  private readonly held: net.Server[] = [];

  /**
   * Claims eS.L on `ifname`; false when another process on this host (in
   * this network namespace) holds it. `scope` keeps claims for different
   * namespaces of one process apart (ServerOptions.netns, tests).
   */
  claim(key: string, ifname: string, scope = ''): Promise<boolean> {
    const name = `\0aoe-target${scope}/${ifname}/${key}`;
    return new Promise((resolve, reject) => {
      const server = net.createServer();
      server.unref();
      server.once('error', (err: NodeJS.ErrnoException) => {
        if (err.code === 'EADDRINUSE') resolve(false);
        else reject(err);
      });
      server.listen(name, () => {
        this.held.push(server);
        resolve(true);
      });
    });
  }

  release(): void {
    for (const s of this.held.splice(0)) s.close();
  }
}
