/**
 * Graceful close of a node:http server, shared by the gateway, storage node and healer listeners: stop accepting,
 * let requests in flight finish for up to a grace period, then cut whatever is left.
 */
import type { Server } from 'node:http';

/**
 * How often idle keep-alive connections are closed while draining. node:http's close() closes the connections
 * idle at that moment only; one whose request finishes later stays open until its keep-alive timeout (65 s on the
 * gateway), which would hold the close up for that long.
 */
export const CLOSE_IDLE_SWEEP_MS = 50;

/** Resolves true when every request finished within `graceMs`, false when some connections had to be cut. */
export function closeServer(server: Server, graceMs: number): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    let cut = false;
    let deadline: NodeJS.Timeout | undefined;
    let sweep: NodeJS.Timeout | undefined;
    server.close(() => {
      clearTimeout(deadline);
      clearInterval(sweep);
      resolve(!cut);
    });
    server.closeIdleConnections();
    if (graceMs <= 0) {
      server.closeAllConnections();
      return;
    }
    sweep = setInterval(() => server.closeIdleConnections(), CLOSE_IDLE_SWEEP_MS);
    sweep.unref();
    deadline = setTimeout(() => {
      cut = true;
      clearInterval(sweep);
      server.closeAllConnections();
    }, graceMs);
    deadline.unref();
  });
}
