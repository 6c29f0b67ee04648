import { hash } from 'node:crypto';
import type { ICompare, IKeyValue, IRequestOp, ITxnRequest, ITxnResponse } from 'etcd3';
import { assert } from '../core/assert.js';
import { StrataError } from '../core/errors.js';
import { KeySpace, absent, get, prefixUpperBound, put, rangedKv, valueIs } from './etcd-keyspace.js';

/**
 * The manifest dictionary of the etcd store: the node numbers and hot-field sets that binary manifests
 * (internal/manifest/manifest-codec.ts) name by number instead of by text. Layout under `<prefix>dict/`:
 *
 * | key | value | says |
 * |---|---|---|
 * | `node/<name>` | `{"number":n}` | the node's number (what encoding looks up) |
 * | `node-number/<n>` | `{"name":"..."}` | the number's node (what decoding looks up) |
 * | `hot-field-set/<id>` | `{"fields":[...]}` | the set's fields, in the manifest's order |
 * | `hot-field-set-of/<h>` | `{"id":n}` | the id of the set whose canonical text hashes to `h` |
 *
 * Both directions are written in one transaction that also requires both keys to be absent, so two gateways
 * assigning at once cannot give one number two meanings nor one name two numbers: the loser re-reads and either
 * finds its name assigned or takes the next number. Nothing here is ever deleted, so a number is never reused,
 * and a cache of entries can be incomplete but never wrong (as long as etcd is not restored to an older state:
 * a commit therefore compares the number-side values it encoded with, `compares()`).
 *
 * An entry is used only when its two directions agree: a damaged value (one side) leaves the entry unusable,
 * so a manifest that needs it is refused (METADATA_CORRUPT) rather than decoded with a wrong node, and the
 * damaged name or id is never assigned again.
 *
 * `h` is the first 128 bits of SHA-256 over the set's JSON text: a key of bounded length for sets of any size.
 */

export const ETCD_DICTIONARY_LIMITS = {
  /** Assignment transactions that keep losing their race to other gateways give up (METADATA_UNAVAILABLE). */
  assignAttemptsMax: 16,
  /** Keys per range read when loading the dictionary. */
  loadPageKeysMax: 1_000,
  /**
   * Distinct hot-field sets. Clients may name hot fields per request, so sets are not bounded by configuration;
   * past this many, a manifest with a new set is stored in the codec's escape form (its JSON text) instead.
   */
  hotFieldSetsMax: 10_000,
} as const;

/** What encoding one manifest needs from the dictionary (manifest-codec.ts `dictionaryNeeds`). */
export interface DictionaryNeeds {
  nodes: readonly string[];
  hotFieldSets: readonly (readonly string[])[];
}

/** A commit's checks of the dictionary entries its manifest was encoded with (EtcdDictionary.guard). */
export interface DictionaryGuard {
  compare: ICompare[];
  /** One read per compare, for the failure branch. */
  reads: IRequestOp[];
  /** Whether the values read by `reads` (operations `from`.. of a failed transaction) differ from those compared. */
  stale(response: ITxnResponse, from: number): boolean;
}

/** The two calls the dictionary makes, through the store's deadlines, retries and error mapping. */
export interface DictionaryIo {
  /** Every key-value in [key, rangeEnd), at most `limit` per call, from `key` on. */
  range(what: string, key: Buffer, rangeEnd: Buffer, limit: number): Promise<{ kvs: IKeyValue[]; more: boolean }>;
  /** A transaction that is safe to repeat (its compares make a second application fail). */
  txn(what: string, request: ITxnRequest): Promise<ITxnResponse>;
}

interface Entries {
  numberByNode: Map<string, number>;
  nodeByNumber: Map<number, string>;
  idBySet: Map<string, number>;
  setById: Map<number, readonly string[]>;
  /** Names and set texts whose stored entry is damaged: never assigned again, never used. */
  damaged: Set<string>;
  nextNodeNumber: number;
  nextSetId: number;
  setCount: number;
}

function emptyEntries(): Entries {
  return {
    numberByNode: new Map(),
    nodeByNumber: new Map(),
    idBySet: new Map(),
    setById: new Map(),
    damaged: new Set(),
    nextNodeNumber: 1,
    nextSetId: 1,
    setCount: 0,
  };
}

/** The identity of a hot-field set: its fields in order, as JSON text. */
function setText(fields: readonly string[]): string {
  return JSON.stringify(fields);
}

function setHash(text: string): string {
  return hash('sha256', text, 'hex').slice(0, 32);
}

function parseObject(kv: IKeyValue): Record<string, unknown> | null {
  try {
    const value: unknown = JSON.parse(kv.value.toString('utf8'));
    return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

function positiveInteger(value: unknown): number | null {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 1 ? value : null;
}

export class EtcdDictionary {
  private entries: Entries = emptyEntries();
  /** Whether the dictionary was read at least once (open may skip it when etcd is not checked at start). */
  private loaded = false;
  /** One load at a time: a burst of reads that each met an unknown number shares one round trip. */
  private loading: Promise<void> | null = null;
  /** Assignments of this process one at a time: concurrent commits needing the same new node race less. */
  private assigning: Promise<void> = Promise.resolve();

  private readonly nodeNames: Buffer;
  private readonly nodeNumbers: Buffer;
  private readonly sets: Buffer;
  private readonly setsByHash: Buffer;

  constructor(
    private readonly io: DictionaryIo,
    private readonly namespace: Buffer,
  ) {
    this.nodeNames = Buffer.concat([namespace, Buffer.from('node/')]);
    this.nodeNumbers = Buffer.concat([namespace, Buffer.from('node-number/')]);
    this.sets = Buffer.concat([namespace, Buffer.from('hot-field-set/')]);
    this.setsByHash = Buffer.concat([namespace, Buffer.from('hot-field-set-of/')]);
  }

  // ---- lookups (manifest-codec.ts ManifestDictionary): from the cache only --------------------------------------

  nodeNumber(name: string): number | undefined {
    return this.entries.numberByNode.get(name);
  }

  nodeName(n: number): string | undefined {
    return this.entries.nodeByNumber.get(n);
  }

  hotFieldSetId(fields: readonly string[]): number | undefined {
    return this.entries.idBySet.get(setText(fields));
  }

  hotFieldSet(id: number): readonly string[] | undefined {
    return this.entries.setById.get(id);
  }

  // ---- loading ---------------------------------------------------------------------------------------------------

  /**
   * Reads the whole dictionary and replaces the cache with it. Concurrent callers share one read; a caller that
   * arrives while a read is under way waits for it and then for one of its own, since the running read may have
   * started before the entry it needs was assigned.
   */
  async reload(): Promise<void> {
    const running = this.loading;
    if (running !== null) await running.catch(() => undefined);
    if (this.loading === null) {
      this.loading = this.readAll().finally(() => {
        this.loading = null;
      });
    }
    await this.loading;
  }

  private async readAll(): Promise<void> {
    const end = prefixUpperBound(this.namespace);
    const kvs: IKeyValue[] = [];
    let from = this.namespace;
    for (;;) {
      const page = await this.io.range('manifest dictionary', from, end, ETCD_DICTIONARY_LIMITS.loadPageKeysMax);
      kvs.push(...page.kvs);
      const last = page.kvs[page.kvs.length - 1];
      if (!page.more || last === undefined) break;
      from = Buffer.concat([last.key, Buffer.from([0])]);
    }
    this.entries = this.entriesOf(kvs);
    this.loaded = true;
  }

  /** The usable entries of a dictionary read: those whose two directions agree. */
  private entriesOf(kvs: readonly IKeyValue[]): Entries {
    const nodeSide = new Map<string, number | null>();
    const numberSide = new Map<number, string | null>();
    const setSide = new Map<number, string[] | null>();
    const hashSide = new Map<string, number | null>();
    const out = emptyEntries();
    const seeNumber = (n: number) => (out.nextNodeNumber = Math.max(out.nextNodeNumber, n + 1));
    const seeSetId = (n: number) => (out.nextSetId = Math.max(out.nextSetId, n + 1));
    for (const kv of kvs) {
      const value = parseObject(kv);
      if (kv.key.subarray(0, this.nodeNames.length).equals(this.nodeNames)) {
        const n = positiveInteger(value?.['number']);
        if (n !== null) seeNumber(n);
        nodeSide.set(KeySpace.nameIn(this.nodeNames, kv.key), n);
      } else if (kv.key.subarray(0, this.nodeNumbers.length).equals(this.nodeNumbers)) {
        const n = positiveInteger(Number(KeySpace.nameIn(this.nodeNumbers, kv.key)));
        const name = value?.['name'];
        if (n === null) continue;
        seeNumber(n);
        numberSide.set(n, typeof name === 'string' ? name : null);
      } else if (kv.key.subarray(0, this.sets.length).equals(this.sets)) {
        const id = positiveInteger(Number(KeySpace.nameIn(this.sets, kv.key)));
        const fields = value?.['fields'];
        if (id === null) continue;
        seeSetId(id);
        out.setCount++;
        const ok = Array.isArray(fields) && fields.every((f) => typeof f === 'string');
        setSide.set(id, ok ? (fields as string[]) : null);
      } else if (kv.key.subarray(0, this.setsByHash.length).equals(this.setsByHash)) {
        const id = positiveInteger(value?.['id']);
        if (id !== null) seeSetId(id);
        hashSide.set(KeySpace.nameIn(this.setsByHash, kv.key), id);
      }
    }
    for (const [name, n] of nodeSide) {
      if (n !== null && numberSide.get(n) === name) {
        out.numberByNode.set(name, n);
        out.nodeByNumber.set(n, name);
      } else {
        out.damaged.add(`node ${name}`);
      }
    }
    for (const [h, id] of hashSide) {
      const fields = id === null ? null : setSide.get(id);
      if (id !== null && fields !== null && fields !== undefined && setHash(setText(fields)) === h) {
        out.idBySet.set(setText(fields), id);
        out.setById.set(id, Object.freeze([...fields]));
      } else {
        out.damaged.add(`hot-field-set ${h}`);
      }
    }
    return out;
  }

  // ---- assignment ------------------------------------------------------------------------------------------------

  /**
   * Makes sure every node and hot-field set in `needs` has a number, assigning the missing ones in etcd (before
   * the manifest that needs them is encoded and committed). Hot-field sets beyond `hotFieldSetsMax` are left
   * unassigned. Throws METADATA_CORRUPT when a needed entry exists but is damaged, METADATA_UNAVAILABLE when
   * other gateways keep winning the race for `assignAttemptsMax` rounds.
   */
  async ensure(needs: DictionaryNeeds): Promise<void> {
    const { nodes, sets } = this.missing(needs);
    if (nodes.length === 0 && sets.length === 0) return;
    // Never read yet: what is missing is most likely assigned already; reading first spares a failed transaction.
    if (!this.loaded) await this.reload();
    const previous = this.assigning;
    let release!: () => void;
    this.assigning = new Promise<void>((resolve) => (release = resolve));
    await previous;
    try {
      await this.assign(needs);
    } finally {
      release();
    }
  }

  private missing(needs: DictionaryNeeds): { nodes: string[]; sets: string[] } {
    const nodes = [...new Set(needs.nodes)].filter((name) => !this.entries.numberByNode.has(name));
    const sets = [...new Set(needs.hotFieldSets.map(setText))].filter((text) => !this.entries.idBySet.has(text));
    return { nodes, sets: this.entries.setCount >= ETCD_DICTIONARY_LIMITS.hotFieldSetsMax ? [] : sets };
  }

  private async assign(needs: DictionaryNeeds): Promise<void> {
    for (let attempt = 1; attempt <= ETCD_DICTIONARY_LIMITS.assignAttemptsMax; attempt++) {
      const { nodes, sets } = this.missing(needs);
      if (nodes.length === 0 && sets.length === 0) return;
      for (const name of nodes) if (this.entries.damaged.has(`node ${name}`)) throw this.damaged(`node ${JSON.stringify(name)}`);
      for (const text of sets) if (this.entries.damaged.has(`hot-field-set ${setHash(text)}`)) throw this.damaged(`hot-field set ${text.slice(0, 200)}`);
      const compare: ICompare[] = [];
      const success: IRequestOp[] = [];
      let nextNode = this.entries.nextNodeNumber;
      let nextSet = this.entries.nextSetId;
      const assigned: { nodes: [string, number][]; sets: [string, number][] } = { nodes: [], sets: [] };
      for (const name of nodes) {
        const n = nextNode++;
        const nameKey = KeySpace.under(this.nodeNames, name, 'node name');
        const numberKey = this.numberKey(n);
        compare.push(absent(nameKey), absent(numberKey));
        success.push(put(nameKey, JSON.stringify({ number: n })), put(numberKey, JSON.stringify({ name })));
        assigned.nodes.push([name, n]);
      }
      for (const text of sets) {
        const id = nextSet++;
        const hashKey = KeySpace.under(this.setsByHash, setHash(text), 'hot-field set hash');
        const idKey = this.setKey(id);
        compare.push(absent(hashKey), absent(idKey));
        success.push(put(hashKey, JSON.stringify({ id })), put(idKey, `{"fields":${text}}`));
        assigned.sets.push([text, id]);
      }
      const response = await this.io.txn('manifest dictionary assignment', { compare, success, failure: [] });
      if (response.succeeded) {
        for (const [name, n] of assigned.nodes) {
          this.entries.numberByNode.set(name, n);
          this.entries.nodeByNumber.set(n, name);
        }
        for (const [text, id] of assigned.sets) {
          this.entries.idBySet.set(text, id);
          this.entries.setById.set(id, Object.freeze(JSON.parse(text) as string[]));
          this.entries.setCount++;
        }
        this.entries.nextNodeNumber = Math.max(this.entries.nextNodeNumber, nextNode);
        this.entries.nextSetId = Math.max(this.entries.nextSetId, nextSet);
        return;
      }
      // Another gateway assigned one of these names, or took one of these numbers: read what it did.
      await this.reload();
    }
    throw new StrataError(
      'METADATA_UNAVAILABLE',
      `etcd: assigning manifest dictionary numbers lost its race to other gateways ${ETCD_DICTIONARY_LIMITS.assignAttemptsMax} times; retry`,
    );
  }

  // ---- what a commit relies on ------------------------------------------------------------------------------------

  /**
   * What a commit of a manifest encoded with `needs` checks about the dictionary: that the number-side entries it
   * encoded with still hold what this cache says. They can only differ when etcd was restored to a state from
   * before their assignment; the commit then fails instead of storing a manifest whose numbers mean other nodes,
   * and the caller reloads the dictionary and encodes again (`stale`). `reads` go in the commit's failure branch.
   */
  guard(needs: DictionaryNeeds): DictionaryGuard {
    const expected: { key: Buffer; value: Buffer }[] = [];
    for (const name of new Set(needs.nodes)) {
      const n = this.entries.numberByNode.get(name);
      if (n !== undefined) expected.push({ key: this.numberKey(n), value: Buffer.from(JSON.stringify({ name })) });
    }
    for (const text of new Set(needs.hotFieldSets.map(setText))) {
      const id = this.entries.idBySet.get(text);
      if (id !== undefined) expected.push({ key: this.setKey(id), value: Buffer.from(`{"fields":${text}}`) });
    }
    return {
      compare: expected.map((e) => valueIs(e.key, e.value)),
      reads: expected.map((e) => get(e.key)),
      stale: (response, from) =>
        expected.some((e, i) => {
          const kv = rangedKv(response, from + i);
          return kv === null || !kv.value.equals(e.value);
        }),
    };
  }

  private numberKey(n: number): Buffer {
    assert(Number.isSafeInteger(n) && n >= 1, 'a node number is an integer >= 1');
    return KeySpace.under(this.nodeNumbers, String(n), 'node number');
  }

  private setKey(id: number): Buffer {
    assert(Number.isSafeInteger(id) && id >= 1, 'a hot-field set id is an integer >= 1');
    return KeySpace.under(this.sets, String(id), 'hot-field set id');
  }

  private damaged(what: string): StrataError {
    return new StrataError(
      'METADATA_CORRUPT',
      `the manifest dictionary entry of ${what} in etcd is damaged (its two keys disagree); manifests that need it cannot be written or read. ` +
        'It is not repaired automatically: see "Manifest dictionary" in internal/metadata/README.md',
      { kind: 'dictionary', key: what, why: 'its two keys disagree' },
    );
  }
}
