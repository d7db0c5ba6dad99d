import type { AppConfig, AppRegistry } from '@herald/config';
import type { Keys } from '@herald/store';
import { TokenError, type TokenVerifier, tokenApp, verifierFor, verifyAppToken } from '@herald/token';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { DeviceForbidden, TokenExpired, Unauthorized } from './errors.js';

export interface DeviceAuthDeps {
  /** The /v1 API-key hook (auth.ts): sets `request.tenant` or throws. */
  apiKey: (req: FastifyRequest, reply?: FastifyReply) => Promise<void>;
  apps: AppRegistry;
  /** The deployment's Keys (app `default`); `forApp` gives the token's app's. */
  keys: Keys;
}

/**
 * Auth of the device routes (`/v1/devices/:device/...`): an API key (a backend, any device of
 * its app, scope `publish`) or the device's own token (a browser registering itself; its `sub`
 * must be the path's device). A token is verified as the push nodes verify it (@herald/token's
 * `verifyAppToken`): with the keys of the app its `aud` names, and the request is then that
 * app's (`request.tenant`), so a token of app A can only ever touch app A's device.
 */
export function deviceOrApiKey(d: DeviceAuthDeps) {
  // One verifier per app config object: a reload makes new objects, so new keys take effect.
  const verifiers = new WeakMap<AppConfig, TokenVerifier | undefined>();
  const verifierOf = (app: AppConfig): TokenVerifier | undefined => {
    if (verifiers.has(app)) return verifiers.get(app);
    let v: TokenVerifier | undefined;
    try {
      v = verifierFor(app.tokens);
    } catch {
      v = undefined; // a JWKS file that cannot be read: the app's tokens are refused
    }
    verifiers.set(app, v);
    return v;
  };
  return async function authenticateDevice(req: FastifyRequest, reply?: FastifyReply): Promise<void> {
    const token = /^Bearer +(\S+) *$/i.exec(req.headers.authorization ?? '')?.[1];
    try {
      await d.apiKey(req, reply);
      return;
    } catch (err) {
      // Not an API key: a device token, when it names an app with token keys. Anything else
      // (an unknown or expired API key, a missing scope) keeps the API key's answer.
      const named = token ? tokenApp(token) : undefined;
      const app = named === undefined ? undefined : d.apps.get(named);
      if (!(err instanceof Unauthorized) || !app || !verifierOf(app)) throw err;
    }
    let identity: Awaited<ReturnType<typeof verifyAppToken>>;
    try {
      identity = await verifyAppToken(token as string, (id) => {
        const app = d.apps.get(id);
        return app && { verifier: verifierOf(app) };
      });
    } catch (err) {
      if (err instanceof TokenError && err.expired)
        throw new TokenExpired('device token expired; get a new one');
      throw new Unauthorized('invalid API key or device token');
    }
    const wanted = (req.params as { device?: string }).device;
    if (identity.device !== wanted)
      throw new DeviceForbidden(`this token is for device ${identity.device}, not ${wanted}`);
    const app = d.apps.get(identity.app) as AppConfig;
    req.tenant = {
      app,
      keys: d.keys.forApp(app.id),
      keyId: `device:${identity.device}`,
      scopes: new Set(),
      source: 'device',
    };
    req.log = req.log.child({ app: app.id, device: identity.device });
  };
}
