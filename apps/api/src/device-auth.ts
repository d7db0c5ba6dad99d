import { TokenError, TokenVerifier, type TokenVerifierOptions } from '@herald/token';
import type { FastifyRequest } from 'fastify';
import { DeviceForbidden, TokenExpired, Unauthorized } from './errors.js';

/**
 * Auth of the device routes (`/v1/devices/:device/...`): an API key (a backend, any device) or
 * the device's own token (a browser registering itself; its `sub` must be the path's device),
 * verified with the same verifier and settings as the push nodes (HERALD_TOKEN_SECRET,
 * HERALD_JWKS_URL/FILE, HERALD_TOKEN_ISSUER). Without token settings only API keys work.
 */
export function deviceOrApiKey(
  apiKey: (req: FastifyRequest) => Promise<void>,
  tokens: TokenVerifierOptions | undefined,
) {
  const verifier =
    tokens && (tokens.secret || tokens.jwksUrl || tokens.jwksFile) ? new TokenVerifier(tokens) : undefined;
  return async function authenticateDevice(req: FastifyRequest): Promise<void> {
    try {
      await apiKey(req);
      return;
    } catch (err) {
      // Not an API key: a device token, when this API can verify them.
      if (!verifier || !req.headers.authorization) throw err;
    }
    const token = /^Bearer +(\S+) *$/i.exec(req.headers.authorization)?.[1];
    if (!token) throw new Unauthorized('Authorization must be Bearer <api key or device token>');
    let device: string;
    try {
      ({ device } = await verifier.verify(token));
    } catch (err) {
      if (err instanceof TokenError && err.expired)
        throw new TokenExpired('device token expired; get a new one');
      throw new Unauthorized('invalid API key or device token');
    }
    const wanted = (req.params as { device?: string }).device;
    if (device !== wanted) throw new DeviceForbidden(`this token is for device ${device}, not ${wanted}`);
  };
}
