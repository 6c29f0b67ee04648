/**
 * A DNS server for one name, for tests of clients that look names up themselves (nginx's `resolver`): it answers
 * A queries for that name with the addresses it is told, NXDOMAIN when it has none, and refuses everything else.
 * UDP on a free loopback port. It counts the queries it answered, so that a test can see a client ask again.
 *
 * Only what such a client sends is understood (RFC 1035, section 4): one question, no EDNS. A malformed message
 * is dropped, as a real server would; the client then times out.
 */
import dgram from 'node:dgram';
import { isIPv4 } from 'node:net';

const HEADER_BYTES = 12;
const TYPE_A = 1;
const CLASS_IN = 1;
const RCODE_NXDOMAIN = 3;
const RCODE_REFUSED = 5;
/** Answers may be kept this long; nginx's `valid` overrides it anyway. */
const ANSWER_TTL_S = 1;
/** An A answer per address, in one UDP datagram of at most 512 bytes. */
const ADDRESSES_MAX = 16;

export interface DnsResponder {
  /** The UDP port, on 127.0.0.1. */
  port: number;
  /** The IPv4 addresses the name resolves to from now on; none = NXDOMAIN. */
  answer(addresses: readonly string[]): void;
  /** A queries for the name answered so far. */
  readonly queries: number;
  close(): Promise<void>;
}

export async function startDnsResponder(name: string): Promise<DnsResponder> {
  const wanted = name.toLowerCase().replace(/\.$/, '');
  let addresses: readonly string[] = [];
  let queries = 0;
  const socket = dgram.createSocket('udp4');
  socket.on('message', (message, peer) => {
    const question = parseQuestion(message);
    if (question === null) return;
    const isOurs = question.name === wanted && question.type === TYPE_A && question.klass === CLASS_IN;
    if (isOurs) queries++;
    const rcode = !isOurs ? RCODE_REFUSED : addresses.length === 0 ? RCODE_NXDOMAIN : 0;
    socket.send(buildReply(message, question.end, rcode, isOurs ? addresses : []), peer.port, peer.address);
  });
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(0, '127.0.0.1', () => {
      socket.off('error', reject);
      resolve();
    });
  });
  return {
    port: socket.address().port,
    answer(next) {
      if (next.length > ADDRESSES_MAX) throw new Error(`addresses.length > ${ADDRESSES_MAX}`);
      for (const address of next) if (!isIPv4(address)) throw new Error(`${address} is not an IPv4 address`);
      addresses = [...next];
    },
    get queries() {
      return queries;
    },
    close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  };
}

interface Question {
  /** Lower case, without the final dot. */
  name: string;
  type: number;
  klass: number;
  /** Offset of the first byte after the question. */
  end: number;
}

/** The single question of a standard query, or null when the message is anything else. */
function parseQuestion(message: Buffer): Question | null {
  if (message.length < HEADER_BYTES) return null;
  const flags = message.readUInt16BE(2);
  const isQuery = (flags & 0x8000) === 0 && ((flags >> 11) & 0xf) === 0;
  if (!isQuery || message.readUInt16BE(4) !== 1) return null;
  const labels: string[] = [];
  let offset = HEADER_BYTES;
  for (;;) {
    if (offset >= message.length) return null;
    const length = message[offset]!;
    offset++;
    if (length === 0) break;
    // A query's name is never compressed; a label is at most 63 bytes.
    if (length > 63 || offset + length > message.length) return null;
    labels.push(message.toString('latin1', offset, offset + length));
    offset += length;
  }
  if (offset + 4 > message.length) return null;
  return { name: labels.join('.').toLowerCase(), type: message.readUInt16BE(offset), klass: message.readUInt16BE(offset + 2), end: offset + 4 };
}

/** The query's header and question, turned into a response with `rcode` and an A record per address. */
function buildReply(query: Buffer, questionEnd: number, rcode: number, addresses: readonly string[]): Buffer {
  const header = Buffer.from(query.subarray(0, HEADER_BYTES));
  const recursionDesired = query.readUInt16BE(2) & 0x0100;
  // QR (a response), AA (authoritative), RD copied from the query, RA, and the response code.
  header.writeUInt16BE(0x8000 | 0x0400 | recursionDesired | 0x0080 | rcode, 2);
  header.writeUInt16BE(1, 4); // QDCOUNT
  header.writeUInt16BE(addresses.length, 6); // ANCOUNT
  header.writeUInt16BE(0, 8); // NSCOUNT
  header.writeUInt16BE(0, 10); // ARCOUNT
  const answers = addresses.map((address) => {
    const record = Buffer.alloc(16);
    record.writeUInt16BE(0xc000 | HEADER_BYTES, 0); // the name: a pointer to the question's
    record.writeUInt16BE(TYPE_A, 2);
    record.writeUInt16BE(CLASS_IN, 4);
    record.writeUInt32BE(ANSWER_TTL_S, 6);
    record.writeUInt16BE(4, 10);
    address.split('.').forEach((octet, i) => record.writeUInt8(Number(octet), 12 + i));
    return record;
  });
  return Buffer.concat([header, query.subarray(HEADER_BYTES, questionEnd), ...answers]);
}
