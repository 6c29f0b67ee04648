import type Database from 'better-sqlite3';
import type { ManifestDictionary } from '../manifest/manifest-codec.js';
import { checksumBytesMatch, recordChecksumBytes } from './record-envelope.js';
import { CorruptRow } from './sqlite-records.js';

/**
 * The embedded store's manifest dictionary (schema 6; docs/design/compact-formats.md 3.6 and 3.7): the small
 * numbers a binary manifest uses for node names and interned hot-field sets. Append-only: a number is assigned
 * once, in the transaction of the first commit whose manifest needs it, and is never changed, deleted or reused
 * (a removed node keeps its number), so every manifest ever encoded keeps decoding to the same names.
 *
 * Each row is sealed (record kind `dictionary`, envelope version 2, raw checksum) and verified when read: a
 * damaged entry is reported as a corrupt record, never decoded into another node's name.
 */

export const DICTIONARY_SQL = `
CREATE TABLE IF NOT EXISTS node_numbers (
  number   INTEGER PRIMARY KEY CHECK (number >= 1),
  name     TEXT NOT NULL UNIQUE,
  checksum BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS hot_field_sets (
  id       INTEGER PRIMARY KEY CHECK (id >= 1),
  fields   TEXT NOT NULL UNIQUE,
  checksum BLOB NOT NULL
);
`;

/** The record keys of the two kinds of entry: one namespace per kind, so a node row never verifies as a set. */
const NODE_RECORD = (n: number) => `node/${n}`;
const SET_RECORD = (id: number) => `hot-field-set/${id}`;

interface NodeRow {
  number: number;
  name: string;
  checksum: Buffer;
}
interface SetRow {
  id: number;
  fields: string;
  checksum: Buffer;
}

/** A hot-field set as stored: its fields' JSON array, in the manifest's order (order matters to its bitmap). */
function setText(fields: readonly string[]): string {
  return JSON.stringify(fields);
}

/**
 * Lookups for the codec, and assignment for the commit paths. Entries are cached only once they are known to be
 * committed: an entry this connection assigned in a transaction that is still open can be rolled back with its
 * operation (a savepoint) or its batch, and its number would then go to another name. Any other entry a read finds
 * is committed (another process's insert is visible only once committed), so only this connection's own recent
 * assignments are kept out of the cache, until `settled()` says no transaction is open any more.
 */
export class SqliteDictionary implements ManifestDictionary {
  private readonly nodesByName = new Map<string, number>();
  private readonly nodesByNumber = new Map<number, string>();
  private readonly setsByText = new Map<string, number>();
  private readonly setsById = new Map<number, readonly string[]>();
  private readonly stmt;
  /** Node numbers and set ids this connection assigned since the last `settled()`: not cached meanwhile. */
  private readonly assignedNodes = new Set<number>();
  private readonly assignedSets = new Set<number>();

  constructor(private readonly db: Database.Database) {
    this.stmt = {
      nodeByName: db.prepare<[string], NodeRow>('SELECT number, name, checksum FROM node_numbers WHERE name = ?'),
      nodeByNumber: db.prepare<[number], NodeRow>('SELECT number, name, checksum FROM node_numbers WHERE number = ?'),
      lastNode: db.prepare<[], number | null>('SELECT max(number) FROM node_numbers').pluck(),
      insertNode: db.prepare<[number, string, Buffer]>('INSERT INTO node_numbers (number, name, checksum) VALUES (?, ?, ?)'),
      setByText: db.prepare<[string], SetRow>('SELECT id, fields, checksum FROM hot_field_sets WHERE fields = ?'),
      setById: db.prepare<[number], SetRow>('SELECT id, fields, checksum FROM hot_field_sets WHERE id = ?'),
      lastSet: db.prepare<[], number | null>('SELECT max(id) FROM hot_field_sets').pluck(),
      insertSet: db.prepare<[number, string, Buffer]>('INSERT INTO hot_field_sets (id, fields, checksum) VALUES (?, ?, ?)'),
    };
  }

  /**
   * Inside a batch transaction: gives every node and hot-field set in `needs` a number (the next after the largest
   * ever given; rows are never deleted, so the largest is never given twice). The caller encodes after this, in the
   * same transaction.
   */
  assign(needs: { nodes: readonly string[]; hotFieldSets: readonly (readonly string[])[] }): void {
    for (const name of needs.nodes) {
      if (this.nodeNumber(name) !== undefined) continue;
      const number = (this.stmt.lastNode.get() ?? 0) + 1;
      this.assignedNodes.add(number);
      this.stmt.insertNode.run(number, name, nodeChecksum(number, name));
    }
    for (const fields of needs.hotFieldSets) {
      if (this.hotFieldSetId(fields) !== undefined) continue;
      const id = (this.stmt.lastSet.get() ?? 0) + 1;
      const text = setText(fields);
      this.assignedSets.add(id);
      this.stmt.insertSet.run(id, text, setChecksum(id, text));
    }
  }

  nodeNumber(name: string): number | undefined {
    const cached = this.nodesByName.get(name);
    if (cached !== undefined) return cached;
    const row = this.stmt.nodeByName.get(name);
    if (row === undefined) return undefined;
    this.verifyNode(row);
    this.rememberNode(row);
    return row.number;
  }

  nodeName(n: number): string | undefined {
    const cached = this.nodesByNumber.get(n);
    if (cached !== undefined) return cached;
    if (!Number.isSafeInteger(n)) return undefined;
    const row = this.stmt.nodeByNumber.get(n);
    if (row === undefined) return undefined;
    this.verifyNode(row);
    this.rememberNode(row);
    return row.name;
  }

  hotFieldSetId(fields: readonly string[]): number | undefined {
    const text = setText(fields);
    const cached = this.setsByText.get(text);
    if (cached !== undefined) return cached;
    const row = this.stmt.setByText.get(text);
    if (row === undefined) return undefined;
    const parsed = this.verifySet(row);
    this.rememberSet(row, parsed);
    return row.id;
  }

  hotFieldSet(id: number): readonly string[] | undefined {
    const cached = this.setsById.get(id);
    if (cached !== undefined) return cached;
    if (!Number.isSafeInteger(id)) return undefined;
    const row = this.stmt.setById.get(id);
    if (row === undefined) return undefined;
    const parsed = this.verifySet(row);
    this.rememberSet(row, parsed);
    return parsed;
  }

  /** No transaction is open on the connection: whatever it assigned is committed, or was rolled back. */
  settled(): void {
    this.assignedNodes.clear();
    this.assignedSets.clear();
  }

  private rememberNode(row: NodeRow): void {
    if (!this.db.inTransaction) this.settled();
    if (this.assignedNodes.has(row.number)) return;
    this.nodesByName.set(row.name, row.number);
    this.nodesByNumber.set(row.number, row.name);
  }

  private rememberSet(row: SetRow, parsed: readonly string[]): void {
    if (!this.db.inTransaction) this.settled();
    if (this.assignedSets.has(row.id)) return;
    this.setsByText.set(row.fields, row.id);
    this.setsById.set(row.id, parsed);
  }

  private verifyNode(row: NodeRow): void {
    if (!checksumBytesMatch('dictionary', NODE_RECORD(row.number), [row.name], row.checksum)) {
      throw new CorruptRow('dictionary', NODE_RECORD(row.number), 'its checksum does not match its content');
    }
  }

  private verifySet(row: SetRow): readonly string[] {
    if (!checksumBytesMatch('dictionary', SET_RECORD(row.id), [row.fields], row.checksum)) {
      throw new CorruptRow('dictionary', SET_RECORD(row.id), 'its checksum does not match its content');
    }
    const parsed = JSON.parse(row.fields) as unknown;
    if (!Array.isArray(parsed) || !parsed.every((f) => typeof f === 'string')) {
      throw new CorruptRow('dictionary', SET_RECORD(row.id), 'its fields are not a list of paths');
    }
    return Object.freeze(parsed as string[]);
  }
}

function nodeChecksum(number: number, name: string): Buffer {
  return recordChecksumBytes('dictionary', NODE_RECORD(number), [name]);
}

function setChecksum(id: number, text: string): Buffer {
  return recordChecksumBytes('dictionary', SET_RECORD(id), [text]);
}
