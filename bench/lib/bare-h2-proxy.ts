/**
 * The floor for an HTTP/2 (gRPC) proxy on this runtime, as ./bare-proxy.ts is
 * for HTTP/1.1: node:http2 in (h2c), one node:http2 client session to the
 * upstream with every call multiplexed on it, the head passed on without its
 * pseudo-fields (`:authority` replaced by the upstream's), bodies piped both
 * ways, the answer's head and trailers (gRPC's `grpc-status`) relayed. No
 * token work, no policy, no limits beyond node's defaults: what any Node.js
 * gRPC proxy pays per call before doing anything useful. The gap from here
 * to nginx is the runtime, the gap from here to baton is baton. A measuring
 * stick, not a proxy to ship.
 * Run as a process: node bench/lib/bare-h2-proxy.ts <listen port> <upstream port>
 */
import {
  type ClientHttp2Session,
  connect,
  createServer,
  type IncomingHttpHeaders,
  type OutgoingHttpHeaders,
  type ServerHttp2Stream,
} from 'node:http2';

const [listen, upstream] = process.argv.slice(2).map(Number);
const origin = `http://127.0.0.1:${upstream}`;
let session: ClientHttp2Session | undefined;

function upstreamSession(): ClientHttp2Session {
  if (session !== undefined && !session.closed && !session.destroyed) return session;
  const fresh = connect(origin);
  fresh.on('error', () => {});
  fresh.once('close', () => {
    if (session === fresh) session = undefined;
  });
  session = fresh;
  return fresh;
}

/** A head or trailers without pseudo-fields. */
function plain(headers: IncomingHttpHeaders): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (const name of Object.keys(headers)) if (name.charCodeAt(0) !== 0x3a) out[name] = headers[name];
  return out;
}

createServer()
  .on('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, flags: number) => {
    stream.on('error', () => {});
    const endStream = (flags & 1) !== 0; // END_STREAM on the head: no body.
    const head: OutgoingHttpHeaders = {
      ...plain(headers),
      ':method': headers[':method'],
      ':path': headers[':path'],
      ':authority': `127.0.0.1:${upstream}`,
      ':scheme': 'http',
    };
    const call = upstreamSession().request(head, { endStream });
    call.on('error', () => stream.close());
    let trailers: OutgoingHttpHeaders = {};
    call.on('trailers', (received: IncomingHttpHeaders) => (trailers = plain(received)));
    call.on('response', (answer: IncomingHttpHeaders) => {
      stream.respond({ ...plain(answer), ':status': answer[':status'] }, { waitForTrailers: true });
      stream.once('wantTrailers', () => stream.sendTrailers(trailers));
      call.pipe(stream);
    });
    stream.once('close', () => call.close());
    if (!endStream) stream.pipe(call);
  })
  .listen(listen, '127.0.0.1', () => process.stdout.write('ready\n'));

// A normal exit on SIGTERM, so a profile asked for with --cpu-prof is written.
process.once('SIGTERM', () => process.exit(0));
