/**
 * The floor for a proxy on this runtime: node:http in, undici's raw
 * dispatch out, keep-alive, no token work, no header rules beyond dropping
 * Host. What it costs is what any Node.js sidecar pays before doing
 * anything useful; the gap from here to nginx is the runtime, the gap from
 * here to baton is baton.
 * Run as a process: node bench/lib/bare-proxy.ts <listen port> <upstream port>
 */
import { createServer } from 'node:http';
import { type Dispatcher, Pool } from 'undici';

const [listen, upstream] = process.argv.slice(2).map(Number);
const pool = new Pool(`http://127.0.0.1:${upstream}`, { pipelining: 1, keepAliveTimeout: 4_000 });

createServer((req, res) => {
  const headers: string[] = [];
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    if ((req.rawHeaders[i] as string).toLowerCase() !== 'host') headers.push(req.rawHeaders[i] as string, req.rawHeaders[i + 1] as string);
  }
  pool.dispatch(
    { path: req.url as string, method: req.method as Dispatcher.HttpMethod, headers, body: null },
    {
      // undici 7 takes the controller-style handler only when onRequestStart is present.
      onRequestStart() {},
      onResponseStart(_c, status, responseHeaders) {
        const { connection: _connection, 'keep-alive': _keepAlive, 'transfer-encoding': _te, ...rest } = responseHeaders;
        res.writeHead(status, rest as Record<string, string>);
      },
      onResponseData(_c, chunk) {
        res.write(chunk);
      },
      onResponseEnd() {
        res.end();
      },
      onResponseError() {
        res.destroy();
      },
    },
  );
}).listen(listen, '127.0.0.1', () => process.stdout.write('ready\n'));
