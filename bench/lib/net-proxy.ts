/**
 * The floor for a Node.js proxy on sockets (#19): node:net in and out, one
 * upstream connection pinned to each client connection, the request head
 * rewritten (Host replaced, as a sidecar must), response bytes passed
 * through untouched. No HTTP parser beyond finding the end of the head, no
 * bodies (the benchmark sends GETs), no token work: what the runtime costs
 * when the node:http and undici object models are out of the way. A
 * measuring stick, not a proxy to ship.
 * Run as a process: node bench/lib/net-proxy.ts <listen port> <upstream port>
 */
import { connect, createServer } from 'node:net';

const [listen, upstream] = process.argv.slice(2).map(Number);
const HEAD_END = Buffer.from('\r\n\r\n');
const HOST = /\r\nhost:[^\r]*/i;

createServer((client) => {
  const server = connect(upstream as number, '127.0.0.1');
  client.setNoDelay(true);
  server.setNoDelay(true);
  let pending: Buffer | undefined;
  client.on('data', (chunk: Buffer) => {
    let data = pending === undefined ? chunk : Buffer.concat([pending, chunk]);
    pending = undefined;
    let end: number;
    while ((end = data.indexOf(HEAD_END)) !== -1) {
      const head = data.toString('latin1', 0, end).replace(HOST, `\r\nhost: 127.0.0.1:${upstream}`);
      server.write(head + '\r\n\r\n', 'latin1');
      data = data.subarray(end + 4);
    }
    if (data.length > 0) pending = data;
  });
  server.pipe(client);
  const close = (): void => {
    client.destroy();
    server.destroy();
  };
  client.on('error', close).on('close', close);
  server.on('error', close).on('close', close);
}).listen(listen, '127.0.0.1', () => process.stdout.write('ready\n'));
