/**
 * Every common HTTP client, unchanged, through the outbound port (#27):
 * each recipe of docs/clients.md, run as the client's users run it, against
 * a sidecar (in process, stand-in STS) in front of a recording upstream.
 * Each must reach the upstream as one request, with the token the sidecar
 * exchanged and none of the app's, and read the upstream's answer.
 *
 * Node's fetch (NODE_USE_ENV_PROXY=1) and undici's ProxyAgent open CONNECT
 * tunnels; axios, node:http, Python's urllib, requests and httpx, curl and
 * Java's HttpClient send absolute-form requests to the proxy; got is shown
 * with origin-form and `Host`. Go's net/http is documented but not run
 * here (no Go toolchain on these machines; its HTTP_PROXY behaviour is the
 * absolute-form one tested with the others).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import axios from 'axios';
import got from 'got';
import { fetch as undiciFetch, ProxyAgent } from 'undici';
import { callGraph, compileTestPolicy } from '../helpers/policy.ts';
import { FakeSts, startApp, startTestSidecar, type TestApp, type TestSidecar } from '../helpers/sidecar.ts';

const POLICY = callGraph(`
gateway: { entrypoint: true }
orders:
  accepts:
    - { name: from-gateway, from: gateway }
catalog:
  accepts:
    - { name: from-orders, from: orders, methods: [GET, POST], paths: ["/items", "/items/**"] }
`);

/** Runs a client program; resolves with its stdout. The token reaches it in the environment, never on a command line. */
function run(
  command: string,
  args: readonly string[],
  env: Record<string, string>,
  timeoutMs = 30_000,
): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (error) =>
      reject(new Error(`${command} could not start (${error.message}): npm test's prerequisites install it`)),
    );
    child.on('close', (code) => {
      clearTimeout(timer);
      // Never the token: the program prints only what it read back.
      if (code === 0) resolve(out.trim());
      else
        reject(
          new Error(
            `${command} exited ${code}: ${err.replaceAll(env.BATON_TEST_TOKEN ?? '\u0000', '<token>').slice(-1500)}`,
          ),
        );
    });
  });
}

describe('every HTTP client through the outbound port', { timeout: 120_000 }, () => {
  const sts = new FakeSts();
  let catalog: TestApp;
  let orders: TestSidecar;
  let proxy: string;
  let token: string;
  let dir: string;

  before(async () => {
    catalog = await startApp((req, res) => {
      req.resume();
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end(`catalog ${req.url}`);
      });
    });
    const app = await startApp();
    orders = await startTestSidecar(sts, {
      service: 'orders',
      app: app.url,
      upstreams: { catalog: catalog.url },
      policy: compileTestPolicy(POLICY),
    });
    after(() => app.close());
    proxy = `http://127.0.0.1:${orders.ports.outbound}`;
    // The token the app was given for orders, forwarded as the app's Authorization: the sidecar exchanges it.
    token = sts.meshToken('orders', ['gateway'], { sub: 'alice' });
    dir = mkdtempSync(join(tmpdir(), 'baton-clients-'));
  });

  after(async () => {
    await orders?.close();
    await catalog?.close();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  /** The upstream read the client's request as one, with the sidecar's exchanged token for catalog and not the app's. */
  function assertReached(client: string, answer: string): void {
    assert.equal(answer, `catalog /items?client=${client}`, `${client} read the upstream's answer`);
    const seen = catalog.seen.findLast((s) => s.url === `/items?client=${client}`);
    assert.ok(seen, `${client}: the upstream saw the request`);
    const sent = String(seen.headers.authorization).replace(/^Bearer /, '');
    assert.notEqual(sent, token, `${client}: the app's token was not relayed`);
    assert.equal(sts.tokens.get(sent)?.audience, 'catalog', `${client}: a token exchanged for catalog`);
    assert.deepEqual(sts.tokens.get(sent)?.chain, ['gateway', 'orders']);
  }

  const url = (client: string): string => `http://catalog/items?client=${client}`;
  const env = (): Record<string, string> => ({
    HTTP_PROXY: proxy,
    http_proxy: proxy,
    NO_PROXY: '',
    no_proxy: '',
    BATON_TEST_TOKEN: token,
  });

  it("Node's fetch with NODE_USE_ENV_PROXY=1 and HTTP_PROXY (a CONNECT tunnel)", async () => {
    const answer = await run(
      process.execPath,
      [
        '-e',
        `fetch(${JSON.stringify(url('node-fetch'))}, { headers: { authorization: 'Bearer ' + process.env.BATON_TEST_TOKEN } }).then(async (r) => console.log(await r.text()))`,
      ],
      { ...env(), NODE_USE_ENV_PROXY: '1' },
    );
    assertReached('node-fetch', answer);
  });

  it("undici's ProxyAgent (a CONNECT tunnel)", async () => {
    const agent = new ProxyAgent(proxy);
    try {
      const response = await undiciFetch(url('undici'), {
        headers: { authorization: `Bearer ${token}` },
        dispatcher: agent,
      });
      assertReached('undici', await response.text());
    } finally {
      await agent.close();
    }
  });

  it('axios with its proxy option (absolute-form)', async () => {
    const response = await axios.get<string>(url('axios'), {
      proxy: { protocol: 'http', host: '127.0.0.1', port: orders.ports.outbound },
      headers: { authorization: `Bearer ${token}` },
      responseType: 'text',
    });
    assertReached('axios', response.data);
  });

  it('got, origin-form to the sidecar with Host: <service>', async () => {
    const body = await got(`${proxy}/items?client=got`, {
      headers: { host: 'catalog', authorization: `Bearer ${token}` },
    }).text();
    assertReached('got', body);
  });

  it('node:http, absolute-form to the sidecar', async () => {
    const body = await new Promise<string>((resolve, reject) => {
      const req = httpRequest(
        {
          host: '127.0.0.1',
          port: orders.ports.outbound,
          path: url('node-http'),
          headers: { host: 'catalog', authorization: `Bearer ${token}` },
        },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => (text += chunk));
          res.on('end', () => resolve(text));
        },
      );
      req.on('error', reject);
      req.end();
    });
    assertReached('node-http', body);
  });

  it("Python's urllib with HTTP_PROXY (Debian's python3)", async () => {
    const program = `import os, urllib.request\nreq = urllib.request.Request(${JSON.stringify(url('urllib'))}, headers={'Authorization': 'Bearer ' + os.environ['BATON_TEST_TOKEN']})\nprint(urllib.request.urlopen(req).read().decode())`;
    assertReached('urllib', await run('/usr/bin/python3', ['-c', program], env()));
  });

  it('Python requests with HTTP_PROXY (Debian python3-requests)', async () => {
    const program = `import os, requests\nprint(requests.get(${JSON.stringify(url('requests'))}, headers={'Authorization': 'Bearer ' + os.environ['BATON_TEST_TOKEN']}).text)`;
    assertReached('requests', await run('/usr/bin/python3', ['-c', program], env()));
  });

  it('Python httpx with HTTP_PROXY (Debian python3-httpx)', async () => {
    const program = `import os, httpx\nprint(httpx.get(${JSON.stringify(url('httpx'))}, headers={'Authorization': 'Bearer ' + os.environ['BATON_TEST_TOKEN']}).text)`;
    assertReached('httpx', await run('/usr/bin/python3', ['-c', program], env()));
  });

  it('curl with -x (absolute-form)', async () => {
    // The header from a config file (mode 600), so the token is on no command line.
    const config = join(dir, 'curl.conf');
    writeFileSync(config, `header = "Authorization: Bearer ${token}"\n`, { mode: 0o600 });
    assertReached('curl', await run('curl', ['-sS', '--fail', '--config', config, '-x', proxy, url('curl')], env()));
  });

  it("Java's HttpClient with a ProxySelector (absolute-form)", async () => {
    const source = join(dir, 'Client.java');
    writeFileSync(
      source,
      `import java.net.*; import java.net.http.*;
public class Client {
  public static void main(String[] args) throws Exception {
    var client = HttpClient.newBuilder().proxy(ProxySelector.of(new InetSocketAddress("127.0.0.1", Integer.parseInt(args[0])))).build();
    var request = HttpRequest.newBuilder(URI.create(args[1])).header("Authorization", "Bearer " + System.getenv("BATON_TEST_TOKEN")).build();
    System.out.println(client.send(request, HttpResponse.BodyHandlers.ofString()).body());
  }
}
`,
    );
    assertReached('java', await run('java', [source, String(orders.ports.outbound), url('java')], env(), 60_000));
  });
});
