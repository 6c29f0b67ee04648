// The embedded metadata store's integrity checks (PRAGMA quick_check / integrity_check), run on a worker thread
// with its own read-only connection: better-sqlite3 is synchronous, and a full check of a large file takes seconds
// to minutes, which must never block the gateway's event loop. Plain JavaScript so that it loads the same under
// node, tsx and vitest. Driven by ./sqlite-integrity-checks.ts, which documents the protocol.
import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';

const db = new Database(workerData.path, { readonly: true, fileMustExist: true, timeout: workerData.busyTimeoutMs });

parentPort.on('message', (request) => {
  const started = performance.now();
  let findings;
  try {
    const rows = db.pragma(`${request.kind}(${request.findingsMax})`);
    findings = rows.map((row) => String(Object.values(row)[0]));
  } catch (error) {
    findings = [`the check itself failed: ${error.message}`];
  }
  const ok = findings.length === 1 && findings[0] === 'ok';
  parentPort.postMessage({ id: request.id, ok, findings: ok ? [] : findings, durationMs: performance.now() - started });
});
