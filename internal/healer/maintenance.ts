/**
 * What the healer's maintenance writes share (repair, moves, extra replicas): a commit of a changed manifest under
 * the same version, fenced by the leader's term, and the deletion of copies nothing references any more.
 */
import type { NodePool } from '../cluster/node-pool.js';
import type { Manifest, StoredManifest } from '../manifest/manifest.js';
import type { CommitResult, LeaderTerm, MetadataStore } from '../metadata/metadata-store.js';

/**
 * Commits `next` in place of `stored`: same version and write id, only if the manifest has not changed since it
 * was read and only while `term` still leads. Throws when the outcome is unknown.
 */
export function commitSameVersion(metadata: MetadataStore, stored: StoredManifest, next: Manifest, term: LeaderTerm): Promise<CommitResult> {
  return metadata.commit({
    key: stored.manifest.key,
    expectedModRevision: stored.modRevision,
    writeId: stored.manifest.writeId,
    manifest: next,
    assignVersion: false,
    fence: term,
  });
}

/**
 * Deletes blobs one by one, never failing: a blob left behind (node down, timeout) is not referenced and its write
 * id is committed, so inventory GC deletes it later.
 */
export async function deleteQuietly(
  deps: { pool: NodePool; nodeTimeoutMs: number },
  blobs: readonly { node: string; blob: string }[],
): Promise<void> {
  for (const { node, blob } of blobs) {
    const client = deps.pool.client(node);
    if (!client) continue;
    try {
      await client.delete(blob, { timeoutMs: deps.nodeTimeoutMs });
    } catch (error) {
      deps.pool.observe(node, error);
    }
  }
}
