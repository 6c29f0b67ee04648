/**
 * A reader of server-sent events (the WHATWG "event stream" format) from a fetch body, for the change feed
 * (`GET /watch`). It yields one message per blank-line-terminated block; comments and `retry:` are skipped, as
 * the client schedules its own reconnections.
 */

export interface ServerSentEvent {
  /** `event:` (default "message"). */
  event: string;
  /** `id:`; null when the block had none. */
  id: string | null;
  /** The `data:` lines joined with newlines. */
  data: string;
}

/**
 * A message longer than this is not one the gateway sends (its largest names a key, which is at most 1 KiB):
 * something else is answering, and buffering it without end would let it take the client's memory.
 */
export const EVENT_BYTES_MAX = 64 * 1024;

export class EventStreamError extends Error {
  override name = 'EventStreamError';
}

export async function* readEventStream(body: ReadableStream<Uint8Array>): AsyncGenerator<ServerSentEvent, void, undefined> {
  const decoder = new TextDecoder();
  let buffered = '';
  let event = '';
  let id: string | null = null;
  let data: string[] = [];
  let dataChars = 0;
  const reader = body.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      buffered += done ? decoder.decode() : decoder.decode(value, { stream: true });
      // A line ends at CRLF, LF or CR; a CR at the very end may be the first half of a CRLF still on its way.
      for (;;) {
        const end = buffered.search(/\r\n|\n|\r(?=.)/s);
        if (end < 0) break;
        const line = buffered.slice(0, end);
        buffered = buffered.slice(end + (buffered.startsWith('\r\n', end) ? 2 : 1));
        if (line === '') {
          if (data.length > 0) yield { event: event || 'message', id, data: data.join('\n') };
          event = '';
          id = null;
          data = [];
          dataChars = 0;
          continue;
        }
        if (line.startsWith(':')) continue;
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        const value = colon < 0 ? '' : line.slice(colon + (line.startsWith(' ', colon + 1) ? 2 : 1));
        if (field === 'event') event = value;
        else if (field === 'id') id = value;
        else if (field === 'data') {
          data.push(value);
          dataChars += value.length;
        }
      }
      if (buffered.length + dataChars > EVENT_BYTES_MAX) {
        throw new EventStreamError(`an event of more than ${EVENT_BYTES_MAX} bytes arrived: this is not a Strata change feed`);
      }
      if (done) return;
    }
  } finally {
    // Stopping early (a caller's break, an abort) must close the connection, not leave it half read.
    await reader.cancel().catch(() => undefined);
    reader.releaseLock();
  }
}
