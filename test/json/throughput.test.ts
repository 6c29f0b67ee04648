/**
 * Throughput of the document model on large string members, printed rather than asserted (machines differ).
 * The design target is well over 200 MB/s for parsing an 800 KiB or 8 MiB string member.
 */
import { describe, expect, it } from 'vitest';
import { parseJson } from '../../internal/json/parse.js';
import { serializeJson } from '../../internal/json/serialize.js';
import { coldHash, mergeDocument, splitDocument } from '../../internal/json/split.js';
import type { JsonObject } from '../../internal/json/value.js';

function bestMs(runs: number, f: () => void): number {
  let best = Infinity;
  for (let i = 0; i < runs; i++) {
    const started = performance.now();
    f();
    best = Math.min(best, performance.now() - started);
  }
  return best;
}

describe('throughput on large string members', () => {
  it('prints MB/s for parse, serialize, split and merge', () => {
    const rows: string[] = [];
    const cases: [string, string][] = [
      ['800 KiB plain', 'abcdefghij'.repeat((800 * 1024) / 10)],
      ['8 MiB plain', 'abcdefghij'.repeat(8 * 1024 * 1024 / 10)],
      ['8 MiB non-ASCII', 'abcdéfgh☃'.repeat(8 * 1024 * 1024 / 12)],
      ['8 MiB escaped', 'abcdefg\\n"'.repeat(8 * 1024 * 1024 / 10)],
    ];
    for (const [name, body] of cases) {
      const bytes = Buffer.from(JSON.stringify({ like_count: 17, body, views: 3 }), 'utf8');
      let doc: JsonObject | undefined;
      const parseMs = bestMs(3, () => {
        doc = parseJson(bytes, { depthMax: 64, membersMax: 100_000 }) as JsonObject;
      });
      let text = '';
      const serializeMs = bestMs(3, () => {
        text = serializeJson(doc!);
      });
      expect(text.length).toBeGreaterThan(0);
      let split = splitDocument(doc!, [['like_count'], ['views']]);
      const splitMs = bestMs(3, () => {
        split = splitDocument(doc!, [['like_count'], ['views']]);
      });
      const hashMs = bestMs(3, () => coldHash(split.coldText));
      let merged: Buffer = Buffer.alloc(0);
      const mergeMs = bestMs(3, () => {
        merged = mergeDocument(split.coldText, split.hot);
      });
      expect(merged.equals(Buffer.from(text, 'utf8'))).toBe(true);
      const rate = (ms: number): string => `${(bytes.length / 1e6 / (ms / 1000)).toFixed(0)} MB/s`.padStart(11);
      rows.push(
        `${name.padEnd(16)} ${(bytes.length / 1024).toFixed(0).padStart(6)} KiB  parse ${rate(parseMs)}  serialize ${rate(serializeMs)}  split ${rate(splitMs)}  sha256 ${rate(hashMs)}  merge ${rate(mergeMs)}`,
      );
    }
    console.log(`document model throughput (best of 3, node ${process.version}):\n${rows.join('\n')}`);
  });
});
