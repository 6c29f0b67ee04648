/**
 * The worker thread of a log opened with `thread: 'worker'` (./sqlite-wal-thread.ts): it owns the SQLite connection
 * and answers one message per operation. Its group commit batches the operations that arrive while a transaction
 * is being synced, as it does on the caller's thread.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { SqliteWalFile, type SqliteWalFileOptions } from './sqlite-wal-file.js';
import { replyCodeOf, type WalWorkerReply, type WalWorkerRequest, type WalWorkerStart } from './sqlite-wal-thread.js';

const port = parentPort!;

/** A BLOB sent from the other thread arrives as a Uint8Array; SQLite binds a Buffer as a BLOB. */
function asBound(value: unknown): unknown {
  return value instanceof Uint8Array && !Buffer.isBuffer(value) ? Buffer.from(value.buffer, value.byteOffset, value.byteLength) : value;
}

function run(file: SqliteWalFile, request: WalWorkerRequest): Promise<unknown> | unknown {
  const [a, b] = request.args;
  switch (request.op) {
    case 'append':
      return file.append(a as string, asBound(b) as string | Buffer);
    case 'registerGroup':
      return file.registerGroup(a as string);
    case 'commitOffset':
      return file.commitOffset(a as string, b as number);
    case 'readAfter':
      return file.readAfter(a as number, b as number);
    case 'pageStats':
      return file.pageStats();
    case 'stats':
      return file.stats();
    case 'close':
      return file.close();
  }
}

function serve(file: SqliteWalFile): void {
  port.postMessage({ ready: true } satisfies WalWorkerStart);
  port.on('message', (request: WalWorkerRequest) => answer(file, request));
}

function answer(file: SqliteWalFile, request: WalWorkerRequest): void {
  Promise.resolve()
    .then(() => run(file, request))
    .then(
      (value) => port.postMessage({ id: request.id, ok: true, value: value ?? null, unusable: file.unusable } satisfies WalWorkerReply),
      (err: unknown) => port.postMessage({ id: request.id, ok: false, code: replyCodeOf(err), message: (err as Error).message, unusable: file.unusable } satisfies WalWorkerReply),
    );
}

let opened: SqliteWalFile | null = null;
try {
  opened = SqliteWalFile.open(workerData as SqliteWalFileOptions);
} catch (err) {
  // Answered, not thrown: the thread then ends on its own, and the opener reports the reason.
  port.postMessage({ ready: false, code: replyCodeOf(err), message: (err as Error).message } satisfies WalWorkerStart);
}
if (opened !== null) serve(opened);
