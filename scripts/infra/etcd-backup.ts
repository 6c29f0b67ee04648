/**
 * Backing up and restoring etcd with its own tools, as an operator would (README "Backup and recovery"):
 * `etcdctl snapshot save` from a running member, `snapshot restore` into a fresh data directory. etcdctl comes from
 * Debian's `etcd-client` package, installed when missing. etcd 3.5 and later moved `snapshot restore` to `etcdutl`;
 * Debian 12 ships 3.4, whose etcdctl still has it, so `etcdutl` is used when it is on PATH and etcdctl otherwise.
 *
 *   await etcdSnapshotSave('http://127.0.0.1:2379', '/backups/strata.db');
 *   await etcdSnapshotRestore({ file: '/backups/strata.db', dataDir, name, peerUrl });   // dataDir must not exist
 */
import { spawn } from 'node:child_process';
import { InfraError, ensureBinary, findBinary } from './debian-package.js';

export const ETCD_BACKUP_LIMITS = {
  /** One etcdctl or etcdutl command (a snapshot of a small store takes well under a second). */
  commandTimeoutMs: 120_000,
  /** Bytes of a command's output kept for error messages. */
  outputTailBytesMax: 4_096,
} as const;

const MANUAL_FIX = 'Install it yourself with `sudo apt-get update && sudo apt-get install -y etcd-client` (Debian/Ubuntu), or put etcdctl (v3.4+) on PATH.';

/** The path of etcdctl, installing Debian's `etcd-client` first when none is found. */
export function ensureEtcdctl(): Promise<string> {
  return ensureBinary({ binary: 'etcdctl', packages: ['etcd-client'], wellKnownPaths: ['/usr/bin/etcdctl', '/usr/local/bin/etcdctl'], manualFix: MANUAL_FIX });
}

/** `etcdctl snapshot save <file>` against `endpoint`; resolves with etcdctl's output. */
export async function etcdSnapshotSave(endpoint: string, file: string): Promise<string> {
  const etcdctl = await ensureEtcdctl();
  return run(etcdctl, [`--endpoints=${endpoint}`, 'snapshot', 'save', file]);
}

/** `etcdctl snapshot status <file>`: the snapshot's revision and key count, as etcdctl reports them. */
export async function etcdSnapshotStatus(file: string): Promise<{ revision: number; totalKeys: number }> {
  const etcdctl = await ensureEtcdctl();
  const out = await run(etcdctl, ['snapshot', 'status', file, '--write-out=json']);
  const status = JSON.parse(out) as { revision: number; totalKey: number };
  return { revision: status.revision, totalKeys: status.totalKey };
}

export interface RestoreOptions {
  file: string;
  /** The member's new data directory; must not exist yet (etcd refuses to restore over data). */
  dataDir: string;
  /** The member's name and peer URL, as the member will be started with them. */
  name: string;
  peerUrl: string;
}

/** Restores a snapshot into a fresh data directory for a single-member cluster. */
export async function etcdSnapshotRestore(options: RestoreOptions): Promise<string> {
  const etcdutl = await findBinary({ binary: 'etcdutl', wellKnownPaths: ['/usr/bin/etcdutl', '/usr/local/bin/etcdutl'] });
  const tool = etcdutl ?? (await ensureEtcdctl());
  return run(tool, [
    'snapshot',
    'restore',
    options.file,
    `--data-dir=${options.dataDir}`,
    `--name=${options.name}`,
    `--initial-cluster=${options.name}=${options.peerUrl}`,
    `--initial-advertise-peer-urls=${options.peerUrl}`,
  ]);
}

function run(binary: string, args: string[]): Promise<string> {
  const shown = [binary, ...args].join(' ');
  return new Promise((resolve, reject) => {
    // ETCDCTL_API=3: etcdctl 3.3 and older default to the v2 API, which has no snapshots.
    const child = spawn(binary, args, { env: { ...process.env, ETCDCTL_API: '3' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString('utf8');
      output = (output + chunk.toString('utf8')).slice(-ETCD_BACKUP_LIMITS.outputTailBytesMax);
    });
    child.stderr.on('data', (chunk: Buffer) => {
      output = (output + chunk.toString('utf8')).slice(-ETCD_BACKUP_LIMITS.outputTailBytesMax);
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), ETCD_BACKUP_LIMITS.commandTimeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(new InfraError(`cannot run \`${shown}\`: ${err.message}`));
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) return resolve(stdout);
      reject(new InfraError(`\`${shown}\` failed (${signal ?? `exit code ${code}`}):\n${output}`));
    });
  });
}
