import net from 'node:net';

/** Ports handed out by this process recently, so two calls in a row never return the same port. */
const handedOut = new Set<number>();

function listenOnce(port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once('error', reject);
    server.listen({ port, host, exclusive: true }, () => {
      const address = server.address();
      const chosen = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(chosen));
    });
  });
}

/** A TCP port that is free right now on `host` (listen on port 0, read the port, close). */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const port = await listenOnce(0, host);
    if (port > 0 && !handedOut.has(port)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error(`freePort: could not find a free port on ${host}`);
}

/** True when a TCP listener could bind `port` on `host` right now. */
export async function isPortFree(port: number, host = '127.0.0.1'): Promise<boolean> {
  try {
    await listenOnce(port, host);
    return true;
  } catch {
    return false;
  }
}

/** `preferred` when it is free (and not already handed out here), else any free port. */
export async function preferredPort(preferred: number, host = '127.0.0.1'): Promise<number> {
  if (!handedOut.has(preferred) && (await isPortFree(preferred, host))) {
    handedOut.add(preferred);
    return preferred;
  }
  return freePort(host);
}
