/**
 * Client API keys: finding the key a request presents, in constant time. The table holds only sha256 digests of
 * the secrets (see internal/config/access-config.ts for the configuration).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { ApiKeyConfig } from '../config/access-config.js';

export class ApiKeyTable {
  constructor(private readonly keys: readonly ApiKeyConfig[]) {}

  /** Without keys the gateway is open. */
  get enabled(): boolean {
    return this.keys.length > 0;
  }

  /**
   * The key whose secret is `presented`, or null. Digests are compared rather than the secrets, so that every
   * comparison has the same length, and every configured key is compared (no early exit), so the time taken says
   * nothing about which key, or which prefix of one, came close.
   */
  find(presented: string): ApiKeyConfig | null {
    const digest = createHash('sha256').update(presented, 'utf8').digest();
    let found: ApiKeyConfig | null = null;
    for (const key of this.keys) {
      if (timingSafeEqual(digest, key.secretSha256) && found === null) found = key;
    }
    return found;
  }
}

/**
 * The secret a request presents: `Authorization: Bearer <key>` or `X-Api-Key: <key>`. Null when it presents
 * none (an Authorization header of another scheme counts as none).
 */
export function presentedApiKey(authorization: string | undefined, apiKeyHeader: string | undefined): string | null {
  const bearer = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(authorization ?? '');
  if (bearer !== null) return bearer[1]!;
  const direct = apiKeyHeader?.trim();
  return direct === undefined || direct === '' ? null : direct;
}
