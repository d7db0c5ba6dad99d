import { describe, expect, it } from 'vitest';
import { committedOpenApi, OPENAPI_FILE, OPENAPI_UPDATE, openApiText } from '../src/openapi-doc.js';

describe('docs/openapi.json', () => {
  it('is the document the routes generate', async () => {
    const generated = await openApiText();
    expect(JSON.parse(generated).paths['/v1/notifications']).toBeTruthy();
    expect(
      committedOpenApi(),
      `${OPENAPI_FILE} is out of date with the route schemas: run \`${OPENAPI_UPDATE}\` and commit the file`,
    ).toBe(generated);
  });
});
