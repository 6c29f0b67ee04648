/** A deployment the peers benchmark measures: Strata's all-in-one or a SeaweedFS cluster, started and stopped by it. */

export interface PeerProcess {
  name: string;
  pid: number;
}

export interface PeerTarget {
  /** Where the load generator sends requests: Strata's gateway, or SeaweedFS's master. */
  url: string;
  /** The server processes whose CPU is counted (their descendants too). */
  processes(): PeerProcess[];
  /** Stops every process it started and removes its data; idempotent. */
  stop(): Promise<void>;
}
