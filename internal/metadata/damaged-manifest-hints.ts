/**
 * What a manifest record that failed verification still seems to say. Nothing here is trusted to serve or to
 * commit anything: it is read only to refuse a repair (MetadataStore.replaceCorruptManifest), so a hint that the
 * damage itself invented can only keep a key unreadable, never bring a deleted one back.
 */
export interface DamagedManifestHints {
  /** Some part of the record says it is a tombstone. */
  deleted: boolean;
  /** The write id the record names, when it still names one. */
  writeId: string | null;
}

/** The hints of a manifest's JSON text (the SQLite row's `manifest` column; the manifest inside an etcd record). */
export function hintsOfManifestJson(json: string, key: string): DamagedManifestHints {
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch {
    return { deleted: false, writeId: null };
  }
  return hintsOfManifestObject(parsed, key);
}

/**
 * The hints of a parsed manifest. One that names another key (an index or a row pointing at the wrong record) says
 * nothing about this key's history: no hints from it.
 */
export function hintsOfManifestObject(value: unknown, key: string): DamagedManifestHints {
  if (value === null || typeof value !== 'object') return { deleted: false, writeId: null };
  const m = value as { key?: unknown; deleted?: unknown; writeId?: unknown };
  if (typeof m.key === 'string' && m.key !== key) return { deleted: false, writeId: null };
  return { deleted: m.deleted === true, writeId: typeof m.writeId === 'string' ? m.writeId : null };
}

/**
 * Why a rebuilt manifest of write `writeId` must not replace a damaged record with these hints, or null. A write id
 * that sorts after the rebuilt one (ULIDs sort by time) names a change the nodes hold no blobs of.
 */
export function refusalOf(hints: DamagedManifestHints, writeId: string): { reason: 'deleted' | 'newer'; why: string } | null {
  if (hints.deleted) return { reason: 'deleted', why: 'the damaged record still reads as a tombstone' };
  if (hints.writeId !== null && hints.writeId > writeId) {
    return { reason: 'newer', why: `the damaged record names write ${JSON.stringify(hints.writeId.slice(0, 64))}, newer than the newest write on the nodes` };
  }
  return null;
}

/**
 * The hints of a binary manifest (manifests_v2) whose row failed verification: whatever its bytes still decode to
 * (`decode` runs the codec without the checksum's blessing), or no hints when they decode to nothing.
 */
export function hintsOfDecodedManifest(decode: () => unknown, key: string): DamagedManifestHints {
  let decoded: unknown;
  try {
    decoded = decode();
  } catch {
    return { deleted: false, writeId: null };
  }
  return hintsOfManifestObject(decoded, key);
}
