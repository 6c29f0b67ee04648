/**
 * fetch() on a connection of its own, closed after the answer. For requests from a test to a server in another
 * process: a pooled keep-alive connection that the server closed at its idle timeout (5 s on a storage node) while
 * this process was too busy to notice is reused by the next request, which then fails with `TypeError: fetch
 * failed` (the other side closed). On a loaded machine this process can lag by more than the client's margin for
 * that race (a second); a fresh connection per request has no such race, and costs a loopback handshake.
 */
export function fetchOnFreshConnection(url: string | URL, init: RequestInit = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  headers.set('connection', 'close');
  return fetch(url, { ...init, headers });
}
