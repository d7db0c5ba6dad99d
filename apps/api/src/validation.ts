import { COLLAPSE_KEY_RE, ID_RE, TOPIC_RE } from '@herald/protocol';
import type { FastifySchemaValidationError } from 'fastify';
import { BadRequest } from './errors.js';
import { IDEMPOTENCY_KEY_PATTERN } from './schemas.js';

/** `/to/devices/0` -> `to.devices[0]`. */
function fieldOf(instancePath: string, dataVar: string, child?: unknown): string {
  let out = '';
  const parts = instancePath.split('/').slice(1);
  if (typeof child === 'string') parts.push(child);
  for (const p of parts) out += /^\d+$/.test(p) ? `[${p}]` : out ? `.${p}` : p;
  if (dataVar === 'headers') return out === 'idempotency-key' ? 'Idempotency-Key header' : `${out} header`;
  if (dataVar === 'params') return out ? `${out} in the path` : 'path';
  return out || dataVar;
}

/**
 * Turns Ajv's first error (allErrors is off, so it is the one that stopped validation) into a
 * HERALD_BAD_REQUEST whose message names the field in the publisher's terms.
 */
export function formatValidation(errors: FastifySchemaValidationError[], dataVar: string): Error {
  const e = errors[0];
  if (!e) return new BadRequest(`invalid ${dataVar}`);
  const field = fieldOf(e.instancePath, dataVar);
  switch (e.keyword) {
    case 'required':
      return new BadRequest(`missing ${fieldOf(e.instancePath, dataVar, e.params.missingProperty)}`);
    case 'additionalProperties':
      return new BadRequest(
        `unknown property ${fieldOf(e.instancePath, dataVar, e.params.additionalProperty)}`,
      );
    case 'minProperties':
    case 'maxProperties':
      return new BadRequest(`${field} must have exactly one of devices, users, topic, broadcast`);
    case 'const':
      return new BadRequest(`${field} must be ${JSON.stringify(e.params.allowedValue)}`);
    case 'format':
      return new BadRequest(
        `${field} must be an ISO 8601 date-time with a time zone, e.g. 2030-01-01T12:00:00Z`,
      );
    case 'enum':
      return new BadRequest(
        `${field} must be one of ${(e.params.allowedValues as unknown[]).map(String).join(', ')}`,
      );
    case 'pattern':
    case 'maxLength':
      if (e.params.pattern === COLLAPSE_KEY_RE.source)
        return new BadRequest(`${field} must be 1 to 64 of A-Z a-z 0-9 _ . : ~ -`);
      if (e.params.pattern === ID_RE.source)
        return new BadRequest(`${field} is not a valid id (1 to 128 of A-Z a-z 0-9 _ . : @ -)`);
      if (e.params.pattern === TOPIC_RE.source || e.keyword === 'maxLength')
        return new BadRequest(
          `${field} is not a valid topic (dot-separated words of A-Z a-z 0-9 _ -, at most 128 characters)`,
        );
      if (e.params.pattern === IDEMPOTENCY_KEY_PATTERN)
        return new BadRequest(`${field} must be 1 to 200 printable ASCII characters`);
      return new BadRequest(`${field} has an invalid format`);
    default:
      return new BadRequest(`${field} ${e.message ?? 'is invalid'}`);
  }
}
