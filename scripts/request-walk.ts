/**
 * Which src/ files one warm, allowed inbound request runs in: a real entry
 * sidecar in this process (the rest of the demo mesh as child processes),
 * twenty requests to warm its caches, then V8's precise coverage reset
 * (`v8.takeCoverage`), one more request, and the files with any function
 * that ran in that window. docs/design.md ("One request, few rooms") quotes
 * the count; test/docs/request-walk.test.ts holds it.
 *
 *   NODE_V8_COVERAGE=<dir> node scripts/request-walk.ts   (prints JSON)
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { takeCoverage } from 'node:v8';
import pino from 'pino';
import { request } from 'undici';
import { parse } from 'yaml';
import { freePort, listenOnLoopback } from '../src/demo/free-port.ts';
import { startMesh } from '../src/demo/mesh.ts';
import { loadSidecarConfig } from '../src/sidecar/config.ts';
import { createSidecar } from '../src/sidecar/sidecar.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const coverageDir = process.env.NODE_V8_COVERAGE;
if (coverageDir === undefined) throw new Error('run with NODE_V8_COVERAGE=<dir>');

const mesh = await startMesh({ transport: 'plaintext', env: { NODE_V8_COVERAGE: '' } });
try {
  const app = createServer((req, res) => {
    req.resume();
    res.end('ok');
  });
  const appPort = await listenOnLoopback(app);
  const base = parse(readFileSync(join(mesh.dir, 'gateway-sidecar.yaml'), 'utf8')) as Record<
    string,
    Record<string, unknown>
  >;
  const file = join(mesh.dir, 'walk-sidecar.yaml');
  const [inbound, outbound, admin] = [await freePort(), await freePort(), await freePort()];
  writeFileSync(
    file,
    JSON.stringify({
      ...base,
      inbound: { ...base.inbound, port: inbound, app: `http://127.0.0.1:${appPort}` },
      outbound: { ...base.outbound, port: outbound },
      admin: { port: admin },
      logLevel: 'warn',
    }),
  );
  const config = loadSidecarConfig({ file, env: {} });
  const sidecar = createSidecar(config, { logger: pino({ level: 'warn' }, pino.destination('/dev/null')) });
  await sidecar.start();
  for (let i = 0; i < 200 && !sidecar.ready(); i++) await new Promise((resolve) => setTimeout(resolve, 50));
  const token = await mesh.userToken({ sub: 'walker', scope: 'shop orders:read' });
  const call = async (): Promise<number> => {
    const answer = await request(`http://127.0.0.1:${inbound}/`, { headers: { authorization: `Bearer ${token}` } });
    await answer.body.dump();
    return answer.statusCode;
  };
  for (let i = 0; i < 20; i++) await call();
  // Three windows of one request each; a file counts when it ran in all three, so a background timer that
  // happened to fire in one window (a policy long poll, a JWKS refresh) is not counted as the request's.
  const windows: Array<Set<string>> = [];
  let status = 0;
  for (let w = 0; w < 3; w++) {
    takeCoverage();
    status = await call();
    takeCoverage();
    windows.push(ranIn(latestCoverage(coverageDir)));
  }
  const files = [...(windows[0] as Set<string>)].filter((file) => windows.every((window) => window.has(file))).sort();
  process.stdout.write(
    `${JSON.stringify({ status, files, dataplane: files.filter((f) => f.startsWith('src/dataplane/')).length, aboveDataplane: files.filter((f) => !f.startsWith('src/dataplane/')).length }, null, 2)}\n`,
  );
  await sidecar.close(0);
  app.close();
} finally {
  await mesh.stop();
}

interface Coverage {
  readonly result: ReadonlyArray<{
    readonly url: string;
    readonly functions: ReadonlyArray<{ readonly ranges: ReadonlyArray<{ readonly count: number }> }>;
  }>;
}

function latestCoverage(dir: string): Coverage {
  const mine = readdirSync(dir)
    .filter((f) => f.startsWith(`coverage-${process.pid}-`))
    .sort((a, b) => Number(a.split('-')[3]) - Number(b.split('-')[3]) || a.localeCompare(b));
  return JSON.parse(readFileSync(join(dir, mine.at(-1) as string), 'utf8')) as Coverage;
}

/** The src/ files with a function that ran since the previous coverage reset. */
function ranIn(coverage: Coverage): Set<string> {
  return new Set(
    coverage.result
      .filter(
        (script) =>
          script.url.startsWith('file://') &&
          script.url.includes('/src/') &&
          script.functions.some((f) => (f.ranges[0]?.count ?? 0) > 0),
      )
      .map((script) => relative(ROOT, fileURLToPath(script.url))),
  );
}
