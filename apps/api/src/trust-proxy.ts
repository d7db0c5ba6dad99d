import { isIP } from 'node:net';

/** proxy-addr's names for address ranges, accepted in HERALD_TRUST_PROXY. */
const RANGES = new Set(['loopback', 'linklocal', 'uniquelocal']);

/** One HERALD_TRUST_PROXY item: an address, a CIDR (address/bits) or a named range. */
function validItem(item: string): boolean {
  if (RANGES.has(item)) return true;
  const [addr = '', bits, extra] = item.split('/');
  const family = isIP(addr);
  if (family === 0 || extra !== undefined) return false;
  if (bits === undefined) return true;
  if (!/^\d{1,3}$/.test(bits)) return isIP(bits) === 4 && family === 4; // a netmask, 255.255.0.0
  return Number(bits) <= (family === 4 ? 32 : 128);
}

/**
 * HERALD_TRUST_PROXY as Fastify's `trustProxy`: `false`, `true`, or the list as given. Returns
 * a problem message instead when an item is not an address, a CIDR or a named range, so a typo
 * stops the API at start rather than when Fastify compiles the list.
 */
export function parseTrustProxy(value: string): boolean | string | { problem: string } {
  const v = value.trim();
  if (v === 'false' || v === '') return false;
  if (v === 'true') return true;
  const items = v
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  const bad = items.filter((i) => !validItem(i));
  if (items.length === 0 || bad.length > 0)
    return {
      problem: `HERALD_TRUST_PROXY must be true, false or a comma-separated list of addresses, CIDRs, loopback, linklocal, uniquelocal (bad: ${bad.join(', ') || value})`,
    };
  return items.join(',');
}
