// The device-token verifier moved to @herald/token, so the API verifies device tokens with the
// same code and settings (PUT /v1/devices/:device/webpush, docs/webpush.md).
export { type DeviceIdentity, TokenError, TokenVerifier, type TokenVerifierOptions } from '@herald/token';
