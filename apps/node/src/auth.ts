// The device-token verifier lives in @herald/token, so the API verifies device tokens with the
// same code and the same app choice by `aud` (PUT /v1/devices/:device/webpush, docs/webpush.md).
export {
  DEFAULT_APP,
  type DeviceIdentity,
  TokenError,
  TokenVerifier,
  type TokenVerifierOptions,
  tokenApp,
  verifierFor,
  verifyAppToken,
  verifyAppTokenNow,
} from '@herald/token';
