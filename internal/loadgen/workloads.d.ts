// Types of workloads.js (plain JavaScript so that k6 can import it too).
export type DocKind = 'small' | 'iot' | 'large';
export type StrategyName = 'replication' | 'ec' | 'field_hybrid';
export type ScenarioName = 'write' | 'hot-patch' | 'hot-post' | 'read' | 'project' | 'ycsb-a' | 'ycsb-b' | 'heal-write';
export type OpKind = 'write' | 'update' | 'read';

export const HOT_FIELDS: Record<DocKind, string[]>;
export const DOC_KINDS: DocKind[];
export const STRATEGIES: StrategyName[];
export const SCENARIOS: ScenarioName[];
export const DOC_SIZES: { smallHotBytes: number; smallColdBytes: number; iotLogBytes: number; largeColdBytes: number };
export const ZIPFIAN_THETA: number;

/** A field list as a query value: names percent-encoded, commas between them not. */
export function fieldListQuery(fields: readonly string[]): string;
export function prng(seed: number): () => number;
export function fnv1a(text: string): number;
export function randomBase64(rand: () => number, chars: number): string;

export interface DocumentFactory {
  kind: DocKind;
  hotFields: string[];
  /** Comma-separated hot fields, for `?fields=`. */
  fields: string;
  render(id: string, n: number): string;
  patch(n: number): string;
}
export function bulkText(kind: DocKind): string | null;
export function documents(kind: DocKind, bulk?: string | null): DocumentFactory;
export function zipfian(n: number, rand: () => number, theta?: number): () => number;
export function keyOf(prefix: string, group: string, i: number | string): string;

export interface WorkloadOptions {
  scenario: ScenarioName;
  strategy: StrategyName;
  doc: DocKind;
  keys: number;
  iotKeys: number;
  ycsbKeys: number;
  prefix: string;
  /** 1-based virtual user number. */
  vu: number;
  seed: string;
}

export interface KeyGroup {
  group: string;
  kind: DocKind;
  strategy: StrategyName;
  keys: number;
}
export function keyGroup(o: Pick<WorkloadOptions, 'scenario' | 'strategy' | 'doc' | 'keys' | 'iotKeys' | 'ycsbKeys'>): KeyGroup | null;

export interface BenchRequest {
  op: OpKind;
  method: 'GET' | 'POST' | 'PATCH';
  path: string;
  body: string | null;
  headers: Record<string, string>;
}
export function preloadRequest(group: KeyGroup, prefix: string, i: number): BenchRequest;
export function requestStream(o: WorkloadOptions): (iter: number) => BenchRequest;
