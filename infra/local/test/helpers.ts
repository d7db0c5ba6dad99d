import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

export function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `herald-test-${prefix}-`));
}

/** Connects, writes `payload`, resolves with the first chunk of the answer (bounded by `timeoutMs`). */
export function tcpRequest(port: number, payload: string, timeoutMs = 5000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no answer from 127.0.0.1:${port} within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.setEncoding('utf8');
    socket.once('connect', () => socket.write(payload));
    socket.once('data', (data: string) => {
      clearTimeout(timer);
      socket.end();
      resolve(data);
    });
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.once('close', () => {
      clearTimeout(timer);
      reject(new Error(`connection to 127.0.0.1:${port} closed without an answer`));
    });
  });
}

export { pidAlive } from '../src/proc.js';
