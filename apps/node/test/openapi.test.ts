import { describe, expect, it } from 'vitest';
import {
  committedNodeOpenApi,
  NODE_OPENAPI_FILE,
  NODE_OPENAPI_UPDATE,
  nodeOpenApiText,
} from '../src/openapi.js';

describe('docs/openapi-node.json', () => {
  it('is the document of the routes the node serves', () => {
    const doc = JSON.parse(nodeOpenApiText()) as { paths: Record<string, unknown> };
    expect(Object.keys(doc.paths).sort()).toEqual(['/v1/acks', '/v1/cookie', '/v1/poll', '/v1/sse']);
    expect(
      committedNodeOpenApi(),
      `${NODE_OPENAPI_FILE} is out of date: run \`${NODE_OPENAPI_UPDATE}\``,
    ).toBe(nodeOpenApiText());
  });
});
