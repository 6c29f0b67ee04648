/** The four deployments of issue 15's table: how each is started and how the load generator talks to it. */
import { SEAWEEDFS_RELEASE } from '../../scripts/infra/seaweedfs.js';
import { startSeaweedfs } from './seaweedfs-target.js';
import type { PeersSettings, SystemId } from './settings.js';
import { startStrata } from './strata-target.js';
import type { PeerTarget } from './target.js';

export interface SystemSpec {
  id: SystemId;
  /** The row's name in the table. */
  label: string;
  /** How it is built and what it promises about an acknowledged write, for the JSON result and BENCHMARKS.md. */
  description: string;
  /** The load generator's flags that select the API (the URL is added once the system runs). */
  loadgenArgs: string[];
}

/** `seaweedfsContentType`: see PeersSettings; the default is the settings' default. */
export function systemSpec(id: SystemId, seaweedfsContentType = 'application/octet-stream'): SystemSpec {
  switch (id) {
    case 'strata-field_hybrid':
    case 'strata-replication': {
      const strategy = id === 'strata-field_hybrid' ? 'field_hybrid' : 'replication';
      return {
        id,
        label: `Strata all-in-one, \`${strategy}\``,
        description:
          `a fresh all-in-one (one Node.js process, six in-process storage nodes, embedded SQLite metadata and WAL), ` +
          `POST /write?key=K&strategy=${strategy}, GET /read/K; every write fsynced on a quorum before it is acknowledged`,
        loadgenArgs: ['-api', 'strata', '-strategy', strategy],
      };
    }
    case 'seaweedfs-one-copy':
      return {
        id,
        label: `SeaweedFS ${SEAWEEDFS_RELEASE}, one volume server, uploads with fsync`,
        description:
          `weed master + one weed volume, replication 000; PUT <volume>/<fid>?fsync=true (Content-Type ${seaweedfsContentType}) ` +
          'with ids assigned beforehand, GET <volume>/<fid>',
        loadgenArgs: ['-api', 'seaweedfs', '-replication', '000', '-fsync=true', '-content-type', seaweedfsContentType],
      };
    case 'seaweedfs-three-copies':
      return {
        id,
        label: `SeaweedFS ${SEAWEEDFS_RELEASE}, three volume servers, three copies, fsync`,
        description:
          'weed master + three weed volume on one host (one rack), replication 002 (two more copies on other servers of the rack); ' +
          `PUT ?fsync=true (Content-Type ${seaweedfsContentType}) answers once every copy is written and fsynced; reads from any copy`,
        loadgenArgs: ['-api', 'seaweedfs', '-replication', '002', '-fsync=true', '-content-type', seaweedfsContentType],
      };
  }
}

export async function startSystem(id: SystemId, s: PeersSettings, weed: string, log: (line: string) => void): Promise<PeerTarget> {
  switch (id) {
    case 'strata-field_hybrid':
    case 'strata-replication': {
      const env: Record<string, string> = {};
      if (s.readCacheBytes !== null) env['STRATA_READ_CACHE_BYTES'] = String(s.readCacheBytes);
      return startStrata({ env, log });
    }
    case 'seaweedfs-one-copy':
      return startSeaweedfs({ weed, volumeServers: 1, replication: '000', log });
    case 'seaweedfs-three-copies':
      return startSeaweedfs({ weed, volumeServers: 3, replication: '002', log });
  }
}
