/**
 * An embeddable storage node: opens the blob store, serves the node API over HTTP and, when configured, scrubs
 * the store in the background. cmd/storage-node only loads config and calls startStorageNode.
 */
import type { Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { serve } from '@hono/node-server';
import { assert } from '../core/assert.js';
import { systemClock, type Clock } from '../core/clock.js';
import type { ScrubReport } from '../blobstore/file-blob-store.js';
import { VOLUME_BYTES_MAX_DEFAULT, VolumeBlobStore, type VolumeBlobStoreOptions } from '../blobstore/volume/volume-blob-store.js';
import { closeServer } from '../core/close-server.js';
import { refuseConnect } from '../core/http-refusals.js';
import { StrataError } from '../core/errors.js';
import { DirLock } from '../datadir/dir-lock.js';
import { admitNodeDirectory, raiseNodeIdentityFormat, type NodeDirectoryExpectation, type NodeDirectoryOutcome } from '../datadir/node-directory.js';
import type { Logger } from '../log/logger.js';
import type { NodeInstruments } from '../metrics/node-metrics.js';
import { DiskReserve } from '../reserve/disk-reserve.js';
import { nodesFootprint } from '../reserve/reserve-sizing.js';
import { ReservedBlobStore } from '../reserve/reserved-blob-store.js';
import type { BlobStore } from '../blobstore/blob-store.js';
import { createStorageNodeApp } from './app.js';
import { NODE_HEADER_BYTES_MAX, NODE_SERVER_KEEP_ALIVE_MS } from './protocol.js';

/** Scrub read rate when scrubbing is on and no rate is configured: a small share of one disk. */
export const SCRUB_BYTES_PER_SEC_DEFAULT = 8 * 1024 * 1024;

export interface StorageNodeOptions {
  nodeId: string;
  dataDir: string;
  host: string;
  /** 0 picks a free port. */
  port: number;
  token: string;
  capacityBytes?: number;
  /** Size at which a volume file is sealed and a new one opened. */
  volumeBytesMax?: number;
  /** Pause between the end of one scrub pass and the start of the next; no scrubbing when absent. */
  scrubIntervalMs?: number;
  scrubBytesPerSecMax?: number;
  /** Told the outcome of each scrub pass (corrupt ids are also marked in the inventory). */
  onScrub?: (report: ScrubReport) => void;
  /** Told about a scrub pass that failed, and about 500s. Defaults to console.error. */
  onError?: (err: unknown) => void;
  clock?: Clock;
  /** Request lines (debug level, with the caller's X-Request-Id); silent by default. */
  log?: Logger;
  /** Request and group-commit metrics, and `GET /metrics`. */
  metrics?: NodeInstruments;
  /** Serve HTTPS with this certificate and key (PEM) instead of plain HTTP. */
  tls?: { cert: Buffer | string; key: Buffer | string };
  /**
   * Check (and write when absent) the directory's identity file before opening it (internal/datadir); without
   * this the directory is only locked.
   */
  identity?: Omit<NodeDirectoryExpectation, 'nodeId' | 'nowMs'>;
  /**
   * Instead of `identity`: decides, after the lock and before the store opens, whether the directory may be opened
   * (throws the refusal) and what it found; a node process checks against the cluster identity this way.
   */
  admitDirectory?: (dir: string) => Promise<NodeDirectoryOutcome>;
  /**
   * The space reserve of the disk this node's directory is on (internal/reserve): puts that would reach into it
   * are refused with DISK_FULL and GET /v1/health reports `writable: false`. Either one the caller shares between
   * several nodes on one disk (the all-in-one), or `{ own: ... }`: the node keeps its own in its directory.
   */
  reserve?: DiskReserve | { own: { reserveBytesMax: number } };
}

export interface StorageNode {
  nodeId: string;
  /** Base URL clients use, e.g. http://127.0.0.1:40123 (https:// with TLS). */
  address: string;
  port: number;
  store: VolumeBlobStore;
  /** The store as clients reach it: behind the reserve when there is one (puts refused with DISK_FULL). */
  blobs: BlobStore;
  /** The reserve this node opened for its own directory (null when shared or none). */
  ownReserve: DiskReserve | null;
  /** What the identity check found (null when it was not asked for). */
  directory: NodeDirectoryOutcome | null;
  /** Stops scrubbing, closes the listener and every connection (keep-alive ones too) at once, then the store. */
  stop(): Promise<void>;
  /**
   * Graceful shutdown: as stop(), but requests in flight get up to `graceMs` to finish before their connections
   * are cut. Resolves false when some had to be cut.
   */
  shutdown(graceMs: number): Promise<boolean>;
}

export async function startStorageNode(options: StorageNodeOptions): Promise<StorageNode> {
  const { nodeId, host } = options;
  assert(typeof nodeId === 'string' && nodeId.length > 0, 'nodeId is non-empty');
  assert(Number.isInteger(options.port) && options.port >= 0 && options.port <= 65535, 'port in [0, 65535]');
  const scrubIntervalMs = options.scrubIntervalMs;
  assert(scrubIntervalMs === undefined || scrubIntervalMs > 0, 'scrubIntervalMs > 0');
  const onError = options.onError ?? ((err: unknown) => console.error(`storage node ${nodeId}:`, err));

  // The lock comes first: opening the store already deletes leftover files (.new, .compact), which must never
  // happen under another process that owns the directory.
  const lock = DirLock.acquire(options.dataDir);
  let store: VolumeBlobStore;
  let directory: NodeDirectoryOutcome | null = null;
  let ownReserve: DiskReserve | null = null;
  try {
    if (options.admitDirectory !== undefined) {
      directory = await options.admitDirectory(options.dataDir);
    } else if (options.identity !== undefined) {
      directory = await admitNodeDirectory(options.dataDir, { ...options.identity, nodeId, nowMs: (options.clock ?? systemClock).nowMs() });
    }
    // Before the store: on a full disk the ballast is released first, so that opening the volumes has room.
    let opened: VolumeBlobStore | null = null;
    if (options.reserve !== undefined && !(options.reserve instanceof DiskReserve)) {
      ownReserve = await DiskReserve.open({
        dir: options.dataDir,
        label: `storage ${nodeId}'s disk (${options.dataDir})`,
        reserveBytesMax: options.reserve.own.reserveBytesMax,
        footprint: async () => nodesFootprint(opened === null ? [] : [await opened.usage()], options.volumeBytesMax ?? VOLUME_BYTES_MAX_DEFAULT, 0),
        ...(options.log !== undefined ? { log: options.log } : {}),
      });
    }
    const shared = options.reserve instanceof DiskReserve ? options.reserve : ownReserve;
    store = await openStore(options, onError, shared);
    opened = store;
  } catch (err) {
    await ownReserve?.close();
    lock.release();
    throw err;
  }
  const reserve = ownReserve ?? (options.reserve instanceof DiskReserve ? options.reserve : null);
  const blobs: BlobStore = reserve === null ? store : new ReservedBlobStore(store, reserve, nodeId, ownReserve === null);

  const app = createStorageNodeApp({
    store: blobs,
    ...(reserve !== null ? { capacity: () => reserve.status() } : {}),
    token: options.token,
    nodeId,
    onInternalError: onError,
    ...(options.log !== undefined ? { log: options.log } : {}),
    ...(options.metrics !== undefined ? { metrics: options.metrics } : {}),
  });
  let server: Server;
  try {
    server = await listen(app.fetch, host, options.port, options.tls);
  } catch (err) {
    await store.close();
    await ownReserve?.close();
    lock.release();
    throw err;
  }
  const port = (server.address() as AddressInfo).port;

  const scrubAbort = new AbortController();
  let scrubTimer: NodeJS.Timeout | undefined;
  let scrubRun: Promise<void> | undefined;
  const scheduleScrub = (): void => {
    if (scrubIntervalMs === undefined || scrubAbort.signal.aborted) return;
    scrubTimer = setTimeout(() => {
      scrubRun = store
        .scrub({
          bytesPerSecMax: options.scrubBytesPerSecMax ?? SCRUB_BYTES_PER_SEC_DEFAULT,
          signal: scrubAbort.signal,
        })
        .then((report) => options.onScrub?.(report), onError)
        .finally(scheduleScrub);
    }, scrubIntervalMs);
    // A scheduled scrub alone must not keep the process alive.
    scrubTimer.unref();
  };
  scheduleScrub();

  let stopping: Promise<boolean> | undefined;
  const shutdown = (graceMs: number): Promise<boolean> => {
    stopping ??= (async () => {
      scrubAbort.abort();
      clearTimeout(scrubTimer);
      await scrubRun;
      const finished = await closeServer(server, graceMs);
      try {
        await store.close();
        await ownReserve?.close();
      } finally {
        lock.release();
      }
      return finished;
    })();
    return stopping;
  };
  const stop = async (): Promise<void> => {
    await shutdown(0);
  };

  const scheme = options.tls === undefined ? 'http' : 'https';
  return { nodeId, address: `${scheme}://${urlHost(host)}:${port}`, port, store, blobs, ownReserve, directory, stop, shutdown };
}

/**
 * Haystack-style volumes (internal/blobstore/volume/README.md): group-committed appends, one positioned read per
 * get. The one-file-per-blob FileBlobStore remains only as the benchmark's baseline. A directory that cannot be
 * opened (a file where `volumes/` should be, a directory in place of a volume file, permissions) is
 * DATA_DIR_UNUSABLE with the reason, so that the all-in-one can keep this node down and serve with the others.
 */
async function openStore(options: StorageNodeOptions, onError: (err: unknown) => void, reserve: DiskReserve | null): Promise<VolumeBlobStore> {
  const storeOptions: VolumeBlobStoreOptions = { dir: options.dataDir, onMaintenanceError: onError };
  if (reserve !== null) storeOptions.scratchRoom = (copyBytes) => reserve.claimScratch(copyBytes);
  if (options.metrics !== undefined) storeOptions.observer = options.metrics.volume;
  if (options.clock !== undefined) storeOptions.clock = options.clock;
  if (options.capacityBytes !== undefined) storeOptions.capacityBytes = options.capacityBytes;
  if (options.volumeBytesMax !== undefined) storeOptions.volumeBytesMax = options.volumeBytesMax;
  const nodeId = options.nodeId;
  storeOptions.beforeFirstV2Volume = () => raiseNodeIdentityFormat(options.dataDir, nodeId, (options.clock ?? systemClock).nowMs());
  try {
    return await VolumeBlobStore.open(storeOptions);
  } catch (err) {
    throw new StrataError('DATA_DIR_UNUSABLE', `${options.dataDir} cannot be opened: ${(err as Error).message}`, { dir: options.dataDir, cause: err });
  }
}

function listen(
  fetch: (request: Request) => Response | Promise<Response>,
  host: string,
  port: number,
  tls: StorageNodeOptions['tls'],
): Promise<Server> {
  return new Promise((resolve, reject) => {
    const base = { fetch, hostname: host, port };
    const serverOptions = { maxHeaderSize: NODE_HEADER_BYTES_MAX, keepAliveTimeout: NODE_SERVER_KEEP_ALIVE_MS };
    // With TLS the node speaks HTTPS only: a client that is not TLS fails its handshake and never gets a byte.
    const server = (
      tls === undefined
        ? serve({ ...base, serverOptions })
        : serve({ ...base, createServer: createHttpsServer, serverOptions: { ...serverOptions, cert: tls.cert, key: tls.key } })
    ) as Server;
    refuseConnect(server, 'GET, HEAD, PUT, POST, DELETE');
    const onError = (err: Error): void => reject(err);
    server.once('error', onError);
    server.once('listening', () => {
      server.off('error', onError);
      resolve(server);
    });
  });
}

/** The host a client on this machine dials: a wildcard listener is reached on loopback. */
function urlHost(host: string): string {
  if (host === '' || host === '0.0.0.0') return '127.0.0.1';
  if (host === '::') return '[::1]';
  return host.includes(':') ? `[${host}]` : host;
}
