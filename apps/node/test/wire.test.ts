import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';
import { SharedFrame } from '../src/transport.js';
import { WS_TEXT, writeFrame } from '../src/wire.js';

describe('pre-encoded WebSocket frames', () => {
  it.each([0, 1, 125, 126, 65_535, 65_536, 200_000])(
    'is read back by a real ws client for %i bytes',
    async (n) => {
      const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false });
      await once(wss, 'listening');
      const server = once(wss, 'connection');
      const client = new WebSocket(`ws://127.0.0.1:${(wss.address() as AddressInfo).port}`);
      const [sock] = (await server) as [WebSocket];
      await once(client, 'open');
      const text = 'é'.repeat(Math.floor(n / 2)) + 'x'.repeat(n % 2);
      const messages: string[] = [];
      client.on('message', (m) => messages.push(m.toString()));
      // Interleaved with ws's own sends, order is kept.
      sock.send('before');
      const shared = new SharedFrame(text);
      // Encoded once, whoever asks again gets the same bytes.
      expect(shared.as(WS_TEXT)).toBe(shared.as(WS_TEXT));
      writeFrame(sock, shared.as(WS_TEXT), text);
      sock.send('after');
      while (messages.length < 3) await once(client, 'message');
      expect(messages).toEqual(['before', text, 'after']);
      client.terminate();
      wss.close();
    },
  );
});
