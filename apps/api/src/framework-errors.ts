import type { Socket } from 'node:net';
import { HttpError } from '@herald/protocol';
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';

/** Deepest JSON nesting a request body may have: deeper bodies would overflow JSON.stringify's stack. */
export const MAX_JSON_DEPTH = 64;

/** True when `text` nests arrays/objects deeper than `max`; one pass, strings skipped, no recursion. */
export function jsonTooDeep(text: string, max = MAX_JSON_DEPTH): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 92 /* \ */) i++;
      else if (c === 34 /* " */) inString = false;
    } else if (c === 34) inString = true;
    else if (c === 91 /* [ */ || c === 123 /* { */) {
      if (++depth > max) return true;
    } else if (c === 93 /* ] */ || c === 125 /* } */) depth--;
  }
  return false;
}

function body(code: string, message: string): string {
  return JSON.stringify({ code, message });
}

/**
 * Errors Fastify raises before a route runs (malformed URL encoding, overlong path parameters)
 * and errors of the HTTP parser itself (bad framing, oversized headers) get Herald's error shape
 * too, so every 4xx a client sees carries a machine-readable `code`.
 */
export function frameworkErrorOptions() {
  return {
    // Always 400: an overlong or badly encoded path parameter is a malformed request like any other.
    frameworkErrors: (error: FastifyError, _req: FastifyRequest, reply: FastifyReply) => {
      reply.code(400).type('application/json').send(body(HttpError.BadRequest.code, error.message));
    },
    clientErrorHandler: (err: NodeJS.ErrnoException, socket: Socket) => {
      if (!socket.writable) return socket.destroy();
      const tooLarge = err.code === 'HPE_HEADER_OVERFLOW';
      const payload = tooLarge
        ? body(HttpError.HeadersTooLarge.code, 'request headers are too large')
        : body(HttpError.BadRequest.code, 'malformed HTTP request');
      const status = tooLarge ? '431 Request Header Fields Too Large' : '400 Bad Request';
      socket.end(
        `HTTP/1.1 ${status}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(payload)}\r\nConnection: close\r\n\r\n${payload}`,
      );
    },
  };
}
