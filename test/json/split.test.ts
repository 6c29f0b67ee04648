import { describe, expect, it } from 'vitest';
import { formatPointer, isPrefix } from '../../internal/json/pointer.js';
import { serializeJson } from '../../internal/json/serialize.js';
import {
  coldHash,
  decodeHotBlob,
  encodeHotBlob,
  mergeDocument,
  splitDocument,
  type HotEntry,
} from '../../internal/json/split.js';
import { cloneJson, isJsonObject, type JsonObject, type JsonValue } from '../../internal/json/value.js';
import { expectStrataError, parse, seededRandom } from './helpers.js';
import { randomHotPaths, randomObject, writeWithWhitespace } from './random-docs.js';

function obj(text: string): JsonObject {
  const v = parse(text);
  if (!isJsonObject(v)) throw new Error('test document is an object');
  return v;
}

function paths(...pointers: string[]): string[][] {
  return pointers.map((p) => (p.startsWith('/') ? p.slice(1).split('/') : [p]));
}

/** The document minus the hot members, built the slow and obvious way. */
function withoutHot(doc: JsonObject, hot: readonly HotEntry[]): JsonObject {
  const copy = cloneJson(doc) as JsonObject;
  for (const entry of hot) {
    let node: JsonValue | undefined = copy;
    for (const s of entry.segments.slice(0, -1)) node = isJsonObject(node) ? node.get(s) : undefined;
    if (!isJsonObject(node)) throw new Error(`parent of ${entry.pointer} is an object`);
    node.delete(entry.segments[entry.segments.length - 1]!);
  }
  return copy;
}

function valueAt(doc: JsonObject, segments: readonly string[]): JsonValue | undefined {
  let node: JsonValue | undefined = doc;
  for (const s of segments) node = isJsonObject(node) ? node.get(s) : undefined;
  return node;
}

/** Every property the split promises, for one document and one set of hot paths. */
function checkSplit(doc: JsonObject, hotPaths: string[][]): void {
  const before = serializeJson(doc);
  const split = splitDocument(doc, hotPaths);
  expect(serializeJson(doc), 'input not mutated').toBe(before);
  expect(mergeDocument(split.coldText, split.hot).toString('utf8'), 'merge(split(doc)) = doc').toBe(before);
  expect(split.logicalBytes).toBe(Buffer.byteLength(before, 'utf8'));
  expect(split.coldText.toString('utf8'), 'cold text').toBe(serializeJson(withoutHot(doc, split.hot)));
  let previous = 0;
  for (const entry of split.hot) {
    expect(entry.offset).toBeGreaterThanOrEqual(previous);
    previous = entry.offset;
    expect(entry.pointer).toBe(formatPointer(entry.segments));
    expect(entry.valueText).toBe(serializeJson(valueAt(doc, entry.segments)!));
    expect(hotPaths.some((p) => isPrefix(p, entry.segments) && p.length === entry.segments.length)).toBe(true);
    // No other taken entry is an ancestor of this one.
    expect(split.hot.filter((e) => isPrefix(e.segments, entry.segments))).toHaveLength(1);
  }
  // Every listed path that exists through objects is carried by some entry.
  for (const p of hotPaths) {
    const parent = valueAt(doc, p.slice(0, -1));
    if (isJsonObject(parent) && parent.has(p[p.length - 1]!)) {
      expect(split.hot.some((e) => isPrefix(e.segments, p)), `hot path ${formatPointer(p)} taken`).toBe(true);
    }
  }
  const decoded = decodeHotBlob(encodeHotBlob(split.hot));
  expect(decoded.map(({ value: _value, ...rest }) => rest)).toEqual(split.hot);
  expect(mergeDocument(split.coldText, decoded).toString('utf8')).toBe(before);
}

describe('splitDocument and mergeDocument', () => {
  it('reproduces the document byte for byte for many random documents and hot path sets', () => {
    const random = seededRandom(20240601);
    let withHot = 0;
    for (let i = 0; i < 1500; i++) {
      const doc = randomObject(random, 4);
      const hotPaths = randomHotPaths(random, doc);
      checkSplit(doc, hotPaths);
      if (splitDocument(doc, hotPaths).hot.length > 0) withHot++;
    }
    expect(withHot).toBeGreaterThan(700); // the generator really exercises hot members
  });

  it('takes a hot member placed first, last, in the middle and alone', () => {
    const doc = obj('{"a":1,"b":2,"c":3}');
    for (const hot of [['a'], ['b'], ['c'], ['a', 'c'], ['a', 'b'], ['b', 'c'], ['a', 'b', 'c']]) {
      checkSplit(doc, hot.map((h) => [h]));
    }
    expect(splitDocument(doc, [['b']]).coldText.toString()).toBe('{"a":1,"c":3}');
    expect(splitDocument(doc, [['a'], ['b'], ['c']]).coldText.toString()).toBe('{}');
    expect(splitDocument(obj('{"only":1}'), [['only']]).hot[0]!.offset).toBe(1);
  });

  it('splices nested hot members back into their parent, even when the parent is left empty', () => {
    const doc = obj('{"id":7,"stats":{"views":10,"likes":3},"tail":[{"x":1}]}');
    const split = splitDocument(doc, paths('/stats/views', '/stats/likes'));
    expect(split.coldText.toString()).toBe('{"id":7,"stats":{},"tail":[{"x":1}]}');
    expect(split.hot.map((h) => [h.pointer, h.offset, h.valueText])).toEqual([
      ['/stats/views', 17, '10'],
      ['/stats/likes', 17, '3'],
    ]);
    checkSplit(doc, paths('/stats/views', '/stats/likes'));
    checkSplit(doc, paths('/stats/likes', 'id'));
  });

  it('lets an ancestor hot path carry its descendants, whichever is listed first', () => {
    const doc = obj('{"stats":{"views":10},"x":1}');
    for (const hot of [paths('/stats/views', 'stats'), paths('stats', '/stats/views')]) {
      const split = splitDocument(doc, hot);
      expect(split.hot.map((h) => h.pointer)).toEqual(['/stats']);
      expect(split.coldText.toString()).toBe('{"x":1}');
    }
  });

  it('skips hot paths that are absent or run through arrays and scalars', () => {
    const doc = obj('{"list":[{"a":1}],"n":5,"o":{}}');
    const split = splitDocument(doc, paths('/list/0', '/list/0/a', '/n/x', '/o/missing', 'missing'));
    expect(split.hot).toEqual([]);
    expect(split.coldText.toString()).toBe(serializeJson(doc));
  });

  it('keeps hot members at their place between cold members with integer-like names', () => {
    const doc = obj('{"10":"a","2":"b","hot":1,"1":"c"}');
    const split = splitDocument(doc, [['hot'], ['10']]);
    expect(split.coldText.toString()).toBe('{"2":"b","1":"c"}');
    expect(mergeDocument(split.coldText, split.hot).toString()).toBe('{"10":"a","2":"b","hot":1,"1":"c"}');
  });

  it('keeps the order of entries given at one offset when merging and sorts different offsets', () => {
    const cold = Buffer.from('{"a":1,"z":{}}');
    const merged = mergeDocument(cold, [
      { offset: 13, segments: ['z', 'q'], valueText: '2' },
      { offset: 6, segments: ['m'], valueText: '"m"' },
      { offset: 6, segments: ['b'], valueText: '"b"' },
      { offset: 12, segments: ['z', 'p'], valueText: '1' },
    ]);
    expect(merged.toString()).toBe('{"a":1,"m":"m","b":"b","z":{"p":1},"q":2}');
  });

  it('refuses hot offsets that are not member boundaries of the cold text', () => {
    const cold = Buffer.from('{"a":"x,y","b":2}');
    for (const offset of [0, 2, 3, 4, 8, 17, 99, 1.5]) {
      expectStrataError(() => mergeDocument(cold, [{ offset, segments: ['h'], valueText: '1' }]), 'BLOB_CORRUPT');
    }
    expect(mergeDocument(cold, [{ offset: 10, segments: ['h'], valueText: '1' }]).toString()).toBe(
      '{"a":"x,y","h":1,"b":2}',
    );
  });

  it('merges an 8 MiB cold text by splicing, without parsing it', () => {
    const doc = obj(JSON.stringify({ hot: 1, body: 'x'.repeat(8 * 1024 * 1024), n: 2 }));
    const split = splitDocument(doc, [['hot'], ['n']]);
    const started = performance.now();
    const merged = mergeDocument(split.coldText, split.hot);
    const ms = performance.now() - started;
    expect(merged.equals(Buffer.from(serializeJson(doc)))).toBe(true);
    console.log(`merge of an 8 MiB document: ${ms.toFixed(1)} ms`);
  });
});

describe('coldHash', () => {
  it('is the same for equal cold parts whatever the white space and hot values', () => {
    const random = seededRandom(7);
    for (let i = 0; i < 200; i++) {
      const doc = randomObject(random, 3);
      const hotPaths = randomHotPaths(random, doc);
      const a = splitDocument(parse(writeWithWhitespace(random, doc)) as JsonObject, hotPaths);
      const b = splitDocument(parse(writeWithWhitespace(random, doc)) as JsonObject, hotPaths);
      expect(coldHash(a.coldText)).toBe(coldHash(b.coldText));
    }
    const one = splitDocument(obj('{"a":1,"hot":5,"b":{"c":[1,2]}}'), [['hot']]);
    const two = splitDocument(obj('{ "a" : 1 , "hot" : 6000 , "b" : { "c" : [ 1 , 2 ] } }'), [['hot']]);
    expect(coldHash(one.coldText)).toBe(coldHash(two.coldText));
    expect(coldHash(one.coldText)).toMatch(/^[0-9a-f]{64}$/);
  });

  it('differs when a cold value, a member, the member order or number text changes', () => {
    const base = coldHash(splitDocument(obj('{"a":1,"hot":5,"b":2}'), [['hot']]).coldText);
    for (const changed of ['{"a":1,"hot":5,"b":3}', '{"a":1,"hot":5}', '{"b":2,"hot":5,"a":1}', '{"a":1.0,"hot":5,"b":2}', '{"a":1,"hot":5,"b":2,"c":null}']) {
      expect(coldHash(splitDocument(obj(changed), [['hot']]).coldText), changed).not.toBe(base);
    }
  });
});

describe('hot blob', () => {
  it('is compact JSON with values inline', () => {
    const split = splitDocument(obj('{"like_count":17,"t":"x","stats":{"views":{"d":1}}}'), paths('like_count', '/stats/views'));
    expect(encodeHotBlob(split.hot).toString()).toBe('[["/like_count",1,17],["/stats/views",18,{"d":1}]]');
    expect(encodeHotBlob([]).toString()).toBe('[]');
  });

  it('decodes values and segments, names with escapes included', () => {
    const [entry] = decodeHotBlob(Buffer.from('[["/a~1b/~0",3,[1.0,"é"]]]'));
    expect(entry).toMatchObject({ pointer: '/a~1b/~0', segments: ['a/b', '~'], offset: 3, valueText: '[1.0,"é"]' });
  });

  it('rejects malformed payloads as BLOB_CORRUPT', () => {
    const bad = [
      '',
      '{}',
      '[1]',
      '[["/a",1]]',
      '[["/a",1,2,3]]',
      '[[1,1,2]]',
      '[["a",1,2]]',
      '[["",1,2]]',
      '[["/a~2",1,2]]',
      '[["/a",-1,2]]',
      '[["/a",1.5,2]]',
      '[["/a",01,2]]',
      '[["/a",99999999999999999999,2]]',
      '[["/a",5,2],["/b",4,2]]',
      '[["/a",1,{"x":1,"x":2}]]',
      '[["/a",1,2]] trailing',
    ];
    for (const text of bad) {
      const message = expectStrataError(() => decodeHotBlob(Buffer.from(text)), 'BLOB_CORRUPT');
      expect(message).toMatch(/^hot blob is malformed/);
    }
    expectStrataError(() => decodeHotBlob(Buffer.from([0x5b, 0xff, 0x5d])), 'BLOB_CORRUPT');
  });
});
