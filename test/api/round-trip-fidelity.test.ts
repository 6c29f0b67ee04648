/**
 * What a read gives back of the text a write sent, property by property, as the README ("What comes back") and
 * api.md (GET /read) state it: member order (integer-like names included) and number text are kept exactly;
 * white space, string escapes and a byte order mark are not (the document is stored as its canonical compact
 * text, internal/json/README.md); duplicate member names are refused rather than merged. Each property is
 * checked under every strategy with hot fields, so that splitting and merging do not change the answer.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiTarget, type ApiTarget } from './support.js';

const STRATEGIES = ['replication', 'ec', 'field_hybrid'] as const;

describe('what a read gives back of a written text', () => {
  let cluster: ApiTarget;
  beforeAll(async () => {
    cluster = await apiTarget();
  });
  afterAll(async () => {
    await cluster.destroy();
  });

  let serial = 0;
  /** Writes `text` under `strategy` (with `hot` as hot fields) and returns the text the read answers with. */
  async function roundTrip(text: string | Buffer, strategy: string, hot = 'hot'): Promise<string> {
    const key = `fidelity/${strategy}/${serial++}`;
    const res = await cluster.fetch(`/write?key=${encodeURIComponent(key)}&strategy=${strategy}&hot_fields=${hot}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: text,
    });
    expect(res.status, await res.clone().text()).toBe(200);
    const read = await cluster.read(key);
    expect(read.status).toBe(200);
    return read.text();
  }

  for (const strategy of STRATEGIES) {
    describe(strategy, () => {
      it('keeps member order, integer-like names included, where JavaScript objects would move them first', async () => {
        const text = '{"b":1,"10":2,"hot":{"z":0,"1":1},"2":3,"a":{"9":null,"x":[],"0":{}}}';
        expect(await roundTrip(text, strategy, 'hot,10')).toBe(text);
        expect(JSON.stringify(JSON.parse(text))).not.toBe(text);
      });

      it('keeps every number\'s text as written', async () => {
        const text = '{"hot":1.0,"n":[12345678901234567890,-0,1E400,1e-7,1E+2,0.1000,-1.5e-300,19.99,0]}';
        expect(await roundTrip(text, strategy)).toBe(text);
      });

      it('keeps characters written as themselves, and white space inside strings', async () => {
        const text = '{"hot":"héllo 😀","ü name":"tab\\there, line\\nthere, two  spaces, U+2028 \u2028 and DEL \u007f"}';
        expect(await roundTrip(text, strategy)).toBe(text);
      });

      it('drops white space between tokens: the answer is compact', async () => {
        const text = '{\n  "hot" : 1,\r\n\t"list" : [ 1 , 2 ] ,\n  "empty" : { } \n}\n';
        expect(await roundTrip(text, strategy)).toBe('{"hot":1,"list":[1,2],"empty":{}}');
      });

      it('rewrites string escapes: characters come back as themselves unless JSON requires an escape', async () => {
        const text = '{"hot":"\\u00e9\\/","\\u0061":"\\u0041\\u000a\\u001F\\"\\\\\\b\\f\\r\\t","lone":"\\uD800"}';
        const expected = '{"hot":"é/","a":"A\\n\\u001f\\"\\\\\\b\\f\\r\\t","lone":"\\ud800"}';
        expect(await roundTrip(text, strategy)).toBe(expected);
      });

      it('drops a leading byte order mark', async () => {
        const text = '{"hot":1}';
        expect(await roundTrip(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(text)]), strategy)).toBe(text);
      });
    });
  }

  it('refuses duplicate member names with 422 INVALID_JSON instead of keeping one of them', async () => {
    for (const text of ['{"a":1,"a":2}', '{"a":1,"\\u0061":2}', '{"o":{"k":1,"k":1}}']) {
      const res = await cluster.write('fidelity/duplicates', text);
      expect(res.status).toBe(422);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe('INVALID_JSON');
    }
    expect((await cluster.read('fidelity/duplicates')).status).toBe(404);
  });
});
