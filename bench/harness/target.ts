/** What the bench harness runs against: a Strata deployment it started and can take nodes away from. */

export type BenchMode = 'all-in-one' | 'cluster';

export interface BenchProcess {
  name: string;
  pid: number;
}

export interface BenchTarget {
  mode: BenchMode;
  /** The entry point the load goes to (the gateway, or nginx in front of the gateways). */
  url: string;
  /** The shared secret of the storage nodes' API, to list their inventories. */
  token: string;
  /** Storage nodes and their HTTP addresses. */
  nodes: { id: string; address: string }[];
  backends: { metadata: string; wal: string };
  /** How this mode is built, for BENCHMARKS.md. */
  description: string;
  /** The processes of the deployment whose memory is recorded. */
  processes(): BenchProcess[];
  /** Takes a storage node away as a crash would. */
  stopNode(id: string): Promise<void>;
  /** Brings it back; `empty`: with its data directory wiped first (a replaced disk). */
  startNode(id: string, options: { empty: boolean }): Promise<void>;
  stop(): Promise<void>;
}

export interface TargetOptions {
  /** Where all data goes; removed by stop(). */
  dataDir: string;
  /** STRATA_* variables for every Strata process (healer timings of the heal scenario). */
  env: Record<string, string>;
  /** Directory for V8 CPU profiles of the gateway (`node --cpu-prof`); all-in-one only. */
  cpuProfDir?: string;
  log: (line: string) => void;
}
