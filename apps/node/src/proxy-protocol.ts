/**
 * PROXY protocol (v1 text and v2 binary, per the HAProxy spec) for the push node's HTTP server.
 *
 * Nodes sit behind an L4 balancer, so the TCP peer of every connection is the balancer. With
 * PROXY protocol the balancer prepends the real client address to the stream, and the node can
 * log and rate-limit by it. The header is only trusted when the operator turns it on
 * (`mode: 'required'`): that setting asserts that only the balancer can reach the node, so nobody
 * else can write a header. With `mode: 'off'` a header is never parsed, and a client that sends
 * one gets a 400 from the HTTP parser instead of a spoofed address.
 *
 * https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt
 */
import type * as http from 'node:http';
import * as net from 'node:net';
import type { Duplex } from 'node:stream';

export interface ProxySource {
  address: string;
  port: number;
  family: 'IPv4' | 'IPv6';
}

export type ProxyParseResult =
  | { kind: 'incomplete' }
  | { kind: 'invalid'; reason: string }
  | {
      kind: 'ok';
      /** Bytes taken by the header; whatever follows belongs to the application protocol. */
      length: number;
      version: 1 | 2;
      /** The real client, when the header carries a TCP/IP source (not for UNKNOWN, LOCAL, UNIX...). */
      source?: ProxySource;
      /** v2 LOCAL: a connection the balancer made itself (health check); use the real peer. */
      local: boolean;
    };

/** The v1 spec caps a line at 107 bytes, CRLF included. */
export const V1_MAX_LENGTH = 107;
/** Fixed part of a v2 header: signature, version/command, family, length. */
export const V2_HEADER_LENGTH = 16;
/**
 * Our cap on the v2 length field (addresses + TLVs). The spec allows 65535, but every byte we
 * accept is buffered before any authentication; 1 KiB fits UNIX addresses (216 bytes) plus the
 * TLVs real balancers send (AWS VPC endpoint id, GCP PSC id, HAProxy SSL info).
 */
export const V2_MAX_PAYLOAD = 1024;
/** No valid header is longer than this, so a connection never buffers more while waiting. */
export const MAX_HEADER_LENGTH = V2_HEADER_LENGTH + V2_MAX_PAYLOAD;

const V1_PREFIX = Buffer.from('PROXY ', 'latin1');
const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);

const CR = 0x0d;
const LF = 0x0a;

const INCOMPLETE: ProxyParseResult = { kind: 'incomplete' };
const invalid = (reason: string): ProxyParseResult => ({ kind: 'invalid', reason });

/** True when `buf` and `prefix` agree on their common length. */
function matchesPrefix(buf: Buffer, prefix: Buffer): boolean {
  const n = Math.min(buf.length, prefix.length);
  return buf.subarray(0, n).equals(prefix.subarray(0, n));
}

/**
 * Parses a PROXY protocol header at the start of `buf`. Pure: no I/O, no state. Returns
 * `incomplete` only while more bytes could still make a valid header, so a caller that feeds it
 * a growing buffer never needs more than MAX_HEADER_LENGTH bytes to get an answer.
 */
export function parseProxyHeader(buf: Buffer): ProxyParseResult {
  if (buf.length === 0) return INCOMPLETE;
  if (buf[0] === V1_PREFIX[0]) {
    return matchesPrefix(buf, V1_PREFIX) ? parseV1(buf) : invalid('not a PROXY protocol header');
  }
  if (buf[0] === V2_SIGNATURE[0]) {
    return matchesPrefix(buf, V2_SIGNATURE) ? parseV2(buf) : invalid('bad v2 signature');
  }
  return invalid('not a PROXY protocol header');
}

// ---------------------------------------------------------------------------------------- v1

function parseV1(buf: Buffer): ProxyParseResult {
  if (buf.length < V1_PREFIX.length) return INCOMPLETE;
  const limit = Math.min(buf.length, V1_MAX_LENGTH);
  let end = -1;
  for (let i = V1_PREFIX.length; i < limit; i++) {
    const b = buf[i]!;
    if (b === CR) {
      if (i + 1 >= V1_MAX_LENGTH) return invalid('v1 header longer than 107 bytes');
      if (i + 1 >= buf.length) return INCOMPLETE;
      if (buf[i + 1] !== LF) return invalid('v1 header: CR not followed by LF');
      end = i;
      break;
    }
    // Printable ASCII only: rejects bare LF, NUL and binary garbage as early as possible.
    if (b < 0x20 || b > 0x7e) return invalid('v1 header: unexpected byte');
  }
  if (end < 0) return buf.length >= V1_MAX_LENGTH ? invalid('v1 header longer than 107 bytes') : INCOMPLETE;

  const length = end + 2;
  const parts = buf.toString('latin1', 0, end).split(' ');
  const proto = parts[1];
  // UNKNOWN: the balancer could not tell (the spec says ignore the rest of the line); the
  // receiver falls back to the real peer, like v2 LOCAL, but this is not a health check.
  if (proto === 'UNKNOWN') return { kind: 'ok', length, version: 1, local: false };
  if (proto !== 'TCP4' && proto !== 'TCP6') return invalid('v1 header: unknown protocol');
  if (parts.length !== 6) return invalid('v1 header: expected 4 fields after the protocol');
  const [, , src, dst, sport, dport] = parts as [string, string, string, string, string, string];

  const family = proto === 'TCP4' ? 'IPv4' : 'IPv6';
  const srcAddr = family === 'IPv4' ? parseIPv4Text(src) : parseIPv6Text(src);
  const dstAddr = family === 'IPv4' ? parseIPv4Text(dst) : parseIPv6Text(dst);
  if (srcAddr === undefined) return invalid('v1 header: bad source address');
  if (dstAddr === undefined) return invalid('v1 header: bad destination address');
  const srcPort = parsePortText(sport);
  const dstPort = parsePortText(dport);
  if (srcPort === undefined) return invalid('v1 header: bad source port');
  if (dstPort === undefined) return invalid('v1 header: bad destination port');
  return {
    kind: 'ok',
    length,
    version: 1,
    local: false,
    source: { address: srcAddr, port: srcPort, family },
  };
}

// Dotted quad, each part 0-255 without leading zeros (which some stacks read as octal).
const IPV4_PART = '(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])';
const IPV4_RE = new RegExp(`^${IPV4_PART}(?:\\.${IPV4_PART}){3}$`);

function parseIPv4Text(s: string): string | undefined {
  return IPV4_RE.test(s) ? s : undefined;
}

function parseIPv6Text(s: string): string | undefined {
  // Zone ids (fe80::1%eth0) are meaningless across hosts; reject them.
  if (s.includes('%') || !net.isIPv6(s)) return undefined;
  return canonicalIPv6(s);
}

/** RFC 5952 form (lowercase, longest zero run compressed), as Node reports remoteAddress. */
function canonicalIPv6(s: string): string {
  return new net.SocketAddress({ address: s, family: 'ipv6' }).address;
}

function parsePortText(s: string): number | undefined {
  // Decimal 0..65535, no sign, no leading zeros.
  if (!/^(?:0|[1-9][0-9]{0,4})$/.test(s)) return undefined;
  const n = Number(s);
  return n <= 65535 ? n : undefined;
}

// ---------------------------------------------------------------------------------------- v2

const CMD_LOCAL = 0x0;
const CMD_PROXY = 0x1;

const AF_UNSPEC = 0x0;
const AF_INET = 0x1;
const AF_INET6 = 0x2;
const AF_UNIX = 0x3;
const TRANSPORT_UNSPEC = 0x0;
const TRANSPORT_STREAM = 0x1;
const TRANSPORT_DGRAM = 0x2;

/** Size of the address block for each address family. */
const ADDRESS_LENGTH: Record<number, number> = {
  [AF_UNSPEC]: 0,
  [AF_INET]: 12,
  [AF_INET6]: 36,
  [AF_UNIX]: 216,
};

function parseV2(buf: Buffer): ProxyParseResult {
  if (buf.length < V2_HEADER_LENGTH) {
    // The signature matched so far; reject a bad version/command byte as soon as it is here.
    if (buf.length > 12 && buf[12]! >> 4 !== 2) return invalid('v2 header: unsupported version');
    return INCOMPLETE;
  }
  const verCmd = buf[12]!;
  const famByte = buf[13]!;
  const payload = buf.readUInt16BE(14);
  if (verCmd >> 4 !== 2) return invalid('v2 header: unsupported version');
  const command = verCmd & 0x0f;
  if (command !== CMD_LOCAL && command !== CMD_PROXY) return invalid('v2 header: unknown command');
  if (payload > V2_MAX_PAYLOAD) return invalid('v2 header: length field too large');
  const length = V2_HEADER_LENGTH + payload;
  if (buf.length < length) return INCOMPLETE;

  // LOCAL: the balancer's own connection (health check). The spec says to ignore the family
  // and address block and use the real peer, so only the length matters.
  if (command === CMD_LOCAL) return { kind: 'ok', length, version: 2, local: true };

  const af = famByte >> 4;
  const transport = famByte & 0x0f;
  const addrLen = ADDRESS_LENGTH[af];
  if (addrLen === undefined) return invalid('v2 header: unknown address family');
  if (transport !== TRANSPORT_UNSPEC && transport !== TRANSPORT_STREAM && transport !== TRANSPORT_DGRAM) {
    return invalid('v2 header: unknown transport');
  }
  if (payload < addrLen) return invalid('v2 header: length field shorter than the address block');
  const tlvReason = checkTlvs(buf.subarray(V2_HEADER_LENGTH + addrLen, length));
  if (tlvReason !== undefined) return invalid(tlvReason);

  // Only TCP over IPv4/IPv6 gives us a client address we can use; anything else (UNSPEC, UNIX,
  // DGRAM) is accepted but carries no source, so the caller falls back to the real peer.
  if (transport !== TRANSPORT_STREAM || (af !== AF_INET && af !== AF_INET6)) {
    return { kind: 'ok', length, version: 2, local: false };
  }
  const a = V2_HEADER_LENGTH;
  if (af === AF_INET) {
    const address = `${buf[a]}.${buf[a + 1]}.${buf[a + 2]}.${buf[a + 3]}`;
    const port = buf.readUInt16BE(a + 8);
    return { kind: 'ok', length, version: 2, local: false, source: { address, port, family: 'IPv4' } };
  }
  const groups: string[] = [];
  for (let i = 0; i < 8; i++) groups.push(buf.readUInt16BE(a + i * 2).toString(16));
  const address = canonicalIPv6(groups.join(':'));
  const port = buf.readUInt16BE(a + 32);
  return { kind: 'ok', length, version: 2, local: false, source: { address, port, family: 'IPv6' } };
}

/**
 * TLVs are skipped, but must tile the rest of the header exactly: a length that runs past the
 * end means a broken or hostile sender, and we would rather drop it than guess.
 */
function checkTlvs(tlvs: Buffer): string | undefined {
  let i = 0;
  while (i < tlvs.length) {
    if (i + 3 > tlvs.length) return 'v2 header: truncated TLV';
    const len = tlvs.readUInt16BE(i + 1);
    i += 3 + len;
    if (i > tlvs.length) return 'v2 header: TLV runs past the header';
  }
  return undefined;
}

// ------------------------------------------------------------------------------ server side

export interface ProxyProtocolOptions {
  /**
   * 'required': every connection must start with a PROXY header (v1 or v2), or it is dropped.
   * 'off': headers are never parsed. Turn it on only when nothing but the balancer can reach
   * the node, because whoever can connect can claim any address.
   */
  mode: 'off' | 'required';
  /** How long a new connection may take to send its complete header. */
  timeoutMs: number;
  /** Called when a connection is dropped before the header completed (for logging). */
  onError?: (err: Error, socket: net.Socket) => void;
}

export class ProxyProtocolError extends Error {
  constructor(
    readonly code: 'PROXY_TIMEOUT' | 'PROXY_INVALID' | 'PROXY_EOF',
    message: string,
  ) {
    super(message);
    this.name = 'ProxyProtocolError';
  }
}

// A WeakMap rather than a property on the socket: nothing else can forge or clobber it, and
// the entry goes away with the socket.
const sources = new WeakMap<object, ProxySource>();
const installed = new WeakSet<net.Server>();

/** The client source from the PROXY header, if the connection carried one. */
export function realSource(socket: Duplex): ProxySource | undefined {
  return sources.get(socket);
}

/** The client address from the PROXY header; undefined without one (mode off, LOCAL, UNKNOWN). */
export function realAddress(socket: Duplex): string | undefined {
  return sources.get(socket)?.address;
}

/** The client port from the PROXY header; undefined without one. */
export function realPort(socket: Duplex): number | undefined {
  return sources.get(socket)?.port;
}

/** The address to log and limit by: the PROXY header's source, else the TCP peer. */
export function clientAddress(socket: net.Socket): string | undefined {
  return sources.get(socket)?.address ?? socket.remoteAddress;
}

type ConnectionListener = (this: unknown, socket: net.Socket) => void;

/**
 * Makes `server` read a PROXY header off each new connection before its own 'connection'
 * listeners (the HTTP parser) see it. Call once, after the server is constructed (Fastify adds
 * no 'connection' listeners of its own) and before it accepts connections. A 'connection'
 * listener added later sees the raw socket at accept time: fine for counting connections, but it
 * must not read from it.
 *
 * Sockets still waiting for their header are not HTTP connections yet, so `server.close()` and
 * `closeAllConnections()` do not cut them; `timeoutMs` bounds how long they can delay shutdown.
 */
export function installProxyProtocol(server: http.Server | net.Server, opts: ProxyProtocolOptions): void {
  if (opts.mode === 'off') return;
  if (opts.mode !== 'required') throw new Error(`unknown PROXY protocol mode: ${String(opts.mode)}`);
  if (installed.has(server)) throw new Error('PROXY protocol is already installed on this server');
  installed.add(server);

  // rawListeners keeps `once` wrappers intact, so a once-listener still fires only once.
  const saved = server.rawListeners('connection') as ConnectionListener[];
  for (const listener of saved) server.removeListener('connection', listener);
  server.on('connection', (socket: net.Socket) => {
    readHeader(socket, opts, (s) => {
      // Node's http connection listener uses `this` as the server.
      for (const listener of saved) listener.call(server, s);
    });
  });
}

function readHeader(socket: net.Socket, opts: ProxyProtocolOptions, handOver: (s: net.Socket) => void): void {
  let buffered: Buffer = Buffer.alloc(0);
  let done = false;

  const finish = (): void => {
    done = true;
    clearTimeout(timer);
    socket.removeListener('data', onData);
    socket.removeListener('end', onEnd);
    socket.removeListener('error', onSocketError);
    socket.removeListener('close', onClose);
  };
  const fail = (err: Error): void => {
    if (done) return;
    finish();
    // Never hand over a socket without a valid header: that would let the balancer's address
    // (or a half-read header) through as if it were the client's.
    socket.destroy();
    opts.onError?.(err, socket);
  };

  const onData = (chunk: Buffer): void => {
    if (done) return;
    buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
    const result = parseProxyHeader(buffered);
    if (result.kind === 'incomplete') return; // the parser bounds this at MAX_HEADER_LENGTH
    if (result.kind === 'invalid') {
      fail(new ProxyProtocolError('PROXY_INVALID', `invalid PROXY protocol header: ${result.reason}`));
      return;
    }
    finish();
    // Pause before giving the bytes back: without a 'data' listener a flowing stream would
    // drop whatever arrives next, and the HTTP parser is not attached yet.
    socket.pause();
    if (buffered.length > result.length) socket.unshift(buffered.subarray(result.length));
    if (result.source) sources.set(socket, result.source);
    handOver(socket);
    // The HTTP listener expects a fresh socket that starts flowing when it adds its 'data'
    // listener; our pause() prevents that, so resume here. The unshifted bytes are emitted on
    // the next tick, before any new data from the network can reach the parser.
    if (!socket.destroyed) socket.resume();
  };
  const onEnd = (): void =>
    fail(new ProxyProtocolError('PROXY_EOF', 'connection ended before the PROXY header'));
  const onSocketError = (err: Error): void => fail(err);
  const onClose = (): void =>
    fail(new ProxyProtocolError('PROXY_EOF', 'connection closed before the PROXY header'));

  const timer = setTimeout(
    () => fail(new ProxyProtocolError('PROXY_TIMEOUT', `no PROXY header within ${opts.timeoutMs} ms`)),
    opts.timeoutMs,
  );
  timer.unref();

  socket.on('data', onData);
  socket.on('end', onEnd);
  socket.on('error', onSocketError);
  socket.on('close', onClose);
}
