/**
 * docker-compose.yml comes up: every service that has a healthcheck, started
 * as compose starts it, passes that healthcheck, executed for real.
 *
 * No Docker engine runs here, so this file does what compose would:
 *
 * - it starts services in depends_on order, each when its dependencies have
 *   completed (`service_completed_successfully`), passed their healthcheck
 *   (`service_healthy`) or started;
 * - a service runs its own `command` (and `entrypoint`) with its image's
 *   `ENV` (the Dockerfile's runtime stage) and its `environment`, and nothing
 *   of this test's environment but PATH;
 * - its volumes are folders: a named volume is one folder per volume (a
 *   `subpath` must exist, as Docker Engine requires), a bind mount the
 *   project's file, tmpfs an empty folder. The container paths in the
 *   command, the environment and the mounted config files are replaced by
 *   those folders (the one liberty taken with "the same files"), and a path
 *   under no mount of the service fails the test;
 * - every process shares this machine's loopback, so the network
 *   namespaces are emulated (test/helpers/compose-network.ts, preloaded):
 *   a listener's port is remapped to a free one, and service names and
 *   127.0.0.1 reach the right namespace. redis-server, not a Node.js
 *   process, is told its remapped port with --port, and its healthcheck's
 *   redis-cli with -p;
 * - baton's image runs `node /app/dist/baton.mjs` (the esbuild bundle); here
 *   `bin/baton.js` runs the same sources, on this machine's Node.js 24.
 *
 * A healthcheck runs in its service's namespace with its environment, every
 * half second instead of every `interval`, until it passes or compose's
 * budget (start_period + interval × retries) is spent.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { COMPOSE_EMULATION, type ComposeEmulation, readPort, recordPort } from '../helpers/compose-network.ts';
import { freePort } from '../helpers/net.ts';
import { BATON_BIN, type RunningProcess, startProcess } from '../helpers/process.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const PRELOAD = fileURLToPath(new URL('../helpers/compose-network.ts', import.meta.url));

interface LongVolume {
  type: 'volume' | 'bind';
  source: string;
  target: string;
  read_only?: boolean;
  volume?: { subpath?: string };
}
interface Mount {
  readonly target: string;
  /** The folder or file that stands for it on this machine. */
  readonly path: string;
}
interface Healthcheck {
  test: string[] | string;
  interval?: string;
  timeout?: string;
  retries?: number;
  start_period?: string;
}
interface Service {
  image?: string;
  build?: unknown;
  command?: string[];
  entrypoint?: string[];
  environment?: Record<string, string>;
  volumes?: Array<string | LongVolume>;
  tmpfs?: string[];
  network_mode?: string;
  ports?: string[];
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: Healthcheck;
}

const compose = parse(readFileSync(join(ROOT, 'docker-compose.yml'), 'utf8'), { merge: true }) as {
  services: Record<string, Service>;
};
const services = compose.services;

/** The runtime stage of the Dockerfile: its ENV and its ENTRYPOINT, what every baton container starts with. */
function bakedImage(): { env: Record<string, string>; entrypoint: string[] } {
  const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
  const runtime = dockerfile.slice(dockerfile.search(/^FROM \S+ AS runtime$/m));
  const env: Record<string, string> = {};
  for (const [, name, value] of runtime.matchAll(/^ENV (\w+)=(\S*)$/gm)) env[name as string] = value as string;
  const entrypoint = JSON.parse(/^ENTRYPOINT (\[.*\])$/m.exec(runtime)?.[1] ?? '[]') as string[];
  return { env, entrypoint };
}
const IMAGE = bakedImage();
/** What the image's ENTRYPOINT runs: the bundle (scripts/build.ts). */
const IMAGE_BUNDLE = '/app/dist/baton.mjs';

/** Whether this file knows how to run the service's image: baton's own, or Redis from this machine's redis-server. */
const isBaton = (s: Service): boolean => s.build !== undefined;
const isRedis = (s: Service): boolean => /^redis:/.test(s.image ?? '');

/** The namespace a service's processes live in: its own, or the one `network_mode: service:<x>` names. */
const namespaceOf = (name: string): string => services[name]?.network_mode?.replace(/^service:/, '') ?? name;
/** What compose's DNS resolves: every service with a namespace of its own. */
const HOSTS: Record<string, string> = Object.fromEntries(
  Object.keys(services)
    .filter((n) => services[n]?.network_mode === undefined)
    .map((n) => [n, n]),
);

/** Compose durations (`5s`, `1m30s`) in milliseconds. */
function duration(text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  let ms = 0;
  for (const [, n, unit] of text.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g))
    ms += Number(n) * ({ ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[unit as string] as number);
  return ms;
}

/** Compose interpolation of a value written in the file: `$$` is a literal `$`; nothing else is expected here. */
function interpolate(text: string): string {
  assert.doesNotMatch(text.replace(/\$\$/g, ''), /\$/, `${text}: a variable compose would substitute from the shell`);
  return text.replace(/\$\$/g, '$');
}

describe(
  'docker-compose.yml comes up: every healthcheck passes against the service compose starts',
  { timeout: 300_000 },
  () => {
    const work = mkdtempSync(join(tmpdir(), 'baton-compose-up-'));
    const portsDir = join(work, 'ports');
    mkdirSync(portsDir);
    const processes = new Map<string, RunningProcess>();
    const redisPorts = new Map<string, number>();

    after(async () => {
      await Promise.all([...processes.values()].map((p) => p.stop('SIGTERM', 5_000)));
      rmSync(work, { recursive: true, force: true });
    });

    /** The service's mounts as container path → folder or file on this machine. */
    function mountsOf(name: string): Mount[] {
      const service = services[name] as Service;
      const mounts: Mount[] = [];
      for (const entry of service.volumes ?? []) {
        const volume: LongVolume =
          typeof entry === 'string'
            ? (([source, target, mode]) => ({
                type: source.startsWith('.') ? 'bind' : 'volume',
                source,
                target,
                read_only: mode === 'ro',
              }))(entry.split(':') as [string, string, string | undefined])
            : entry;
        if (volume.type === 'bind') {
          mounts.push({ target: volume.target, path: join(ROOT, volume.source) });
          continue;
        }
        const root = join(work, 'volumes', volume.source);
        // Docker creates a named volume empty on first use; a subpath it does not create (Engine 26 refuses to start the container).
        mkdirSync(root, { recursive: true });
        const subpath = volume.volume?.subpath;
        if (subpath !== undefined)
          assert.ok(
            existsSync(join(root, subpath)),
            `${name}: subpath ${subpath} of volume ${volume.source} exists before ${name} starts (Docker Engine refuses to start it otherwise)`,
          );
        mounts.push({ target: volume.target, path: subpath === undefined ? root : join(root, subpath) });
      }
      for (const target of service.tmpfs ?? []) {
        const path = join(work, 'tmpfs', name, target);
        mkdirSync(path, { recursive: true });
        mounts.push({ target, path });
      }
      return mounts;
    }

    /** Replaces container paths in a text with what stands for them on this machine, the longest mount first. */
    function mapperFor(mounts: readonly Mount[]): (text: string) => string {
      if (mounts.length === 0) return (text) => text;
      const targets = mounts.map((m) => m.target).sort((a, b) => b.length - a.length);
      const pattern = new RegExp(
        `(${targets.map((t) => t.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|')})(?=[/\\s"',}\\]:]|$)`,
        'g',
      );
      return (text) => text.replace(pattern, (target) => (mounts.find((m) => m.target === target) as Mount).path);
    }

    /** Every container path a service names must be under one of its mounts: anything else would be this machine's own /etc or /var. */
    function assertOnlyMountedPaths(name: string, what: string, text: string): void {
      for (const [path] of text.matchAll(/(?<![\w./-])\/(?:etc|var|run|data|app)\/[\w./-]+/g)) {
        if (!path.startsWith(work) && !path.startsWith(ROOT))
          assert.fail(`${name}: ${what} names ${path}, which is under none of its mounts`);
      }
    }

    /** The mounts, with each bind-mounted file that names container paths replaced by a copy with those paths mapped. */
    function withMappedFiles(name: string, mounts: readonly Mount[]): Mount[] {
      const map = mapperFor(mounts);
      return mounts.map((mount) => {
        if (!mount.path.startsWith(ROOT) || !statSync(mount.path).isFile()) return mount;
        const text = readFileSync(mount.path, 'utf8');
        const mapped = map(text);
        if (mapped === text) return mount;
        assertOnlyMountedPaths(name, mount.target, mapped.replace(/^\s*#.*$/gm, ''));
        mkdirSync(join(work, 'files', name), { recursive: true });
        const copy = join(work, 'files', name, basename(mount.target));
        writeFileSync(copy, mapped);
        return { target: mount.target, path: copy };
      });
    }

    /** The environment compose gives the service's container: the image's ENV, then its own `environment`. */
    function environmentOf(name: string, map: (text: string) => string): Record<string, string> {
      const service = services[name] as Service;
      const env: Record<string, string> = { ...(isBaton(service) ? IMAGE.env : {}) };
      for (const [key, value] of Object.entries(service.environment ?? {})) env[key] = map(interpolate(String(value)));
      for (const [key, value] of Object.entries(env)) assertOnlyMountedPaths(name, `environment ${key}`, value);
      const emulation: ComposeEmulation = { dir: portsDir, namespace: namespaceOf(name), hosts: HOSTS };
      return {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        ...env,
        NODE_OPTIONS: `${env.NODE_OPTIONS ?? ''} --import ${PRELOAD}`.trim(),
        [COMPOSE_EMULATION]: JSON.stringify(emulation),
      };
    }

    /** Starts the service's process as compose would (its dependencies are the caller's business). */
    async function start(name: string): Promise<RunningProcess> {
      const service = services[name] as Service;
      const map = mapperFor(withMappedFiles(name, mountsOf(name)));
      const env = environmentOf(name, map);
      const words = [
        ...(service.entrypoint ?? (isBaton(service) ? IMAGE.entrypoint : [])),
        ...(service.command ?? []),
      ].map((w) => map(interpolate(w)));
      let command: string;
      let args: string[];
      let cwd: string | undefined;
      if (isBaton(service)) {
        assert.equal(words[0], 'node', `${name} runs node`);
        command = process.execPath;
        // The image's bundle is these sources, bundled: bin/baton.js runs them as they are.
        args = words.slice(1).map((w) => (w === IMAGE_BUNDLE ? BATON_BIN : w));
      } else if (isRedis(service)) {
        const port = await freePort();
        redisPorts.set(name, port);
        command = 'redis-server';
        args = [...words.slice(1), '--port', String(port), '--bind', '127.0.0.1'];
        // The image's WORKDIR, /data, is a tmpfs here.
        cwd = join(work, 'tmpfs', name, 'data');
        mkdirSync(cwd, { recursive: true });
        recordPort(portsDir, namespaceOf(name), 6379, { port, everyInterface: true });
      } else {
        assert.fail(`${name}: no way to run image ${service.image} without Docker`);
      }
      for (const word of args) assertOnlyMountedPaths(name, 'its command', word);
      const running = startProcess(command, args, env, { inheritEnv: false, ...(cwd === undefined ? {} : { cwd }) });
      processes.set(name, running);
      return running;
    }

    /** The service's healthcheck as it would run in its container. */
    function healthcheckCommand(name: string): { command: string; args: string[]; env: Record<string, string> } {
      const service = services[name] as Service;
      const test = service.healthcheck?.test as string[];
      const map = mapperFor(mountsOf(name));
      const env = environmentOf(name, map);
      if (test[0] === 'CMD') {
        const [command, ...rest] = test.slice(1).map((w) => map(interpolate(w)));
        assert.equal(command, 'node', `${name}: the image has node; another tool would need its equivalent here`);
        return { command: process.execPath, args: rest, env };
      }
      assert.equal(test[0], 'CMD-SHELL', `${name}: CMD or CMD-SHELL`);
      let shell = map(interpolate(test[1] as string));
      assertOnlyMountedPaths(name, 'its healthcheck', shell);
      if (isRedis(service)) shell = shell.replace(/\bredis-cli\b/g, `redis-cli -p ${redisPorts.get(name) ?? 6379}`);
      return { command: '/bin/sh', args: ['-c', shell], env };
    }

    /** How the check runs here, for the test's name: what stands in for the image's tool. */
    function howChecked(service: Service): string {
      const test = service.healthcheck?.test;
      if (!Array.isArray(test)) return 'a healthcheck that is not a test array';
      if (test[0] === 'CMD' && test[1] === 'node')
        return `node -e … run by this machine's Node.js ${process.version}, as the node:24 image's`;
      if (isRedis(service)) return "redis-cli … | grep, this machine's redis-cli told the remapped port";
      return test.join(' ');
    }

    function runOnce(
      check: { command: string; args: string[]; env: Record<string, string> },
      timeoutMs: number,
    ): Promise<{ code: number | null; output: string }> {
      return new Promise((resolve) => {
        const child = spawn(check.command, check.args, {
          env: check.env,
          stdio: ['ignore', 'pipe', 'pipe'],
          timeout: timeoutMs,
        });
        let output = '';
        child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
        child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
        child.on('close', (code) => resolve({ code, output }));
      });
    }

    const started = new Map<string, Promise<RunningProcess>>();
    const completed = new Map<string, Promise<void>>();
    const healthy = new Map<string, Promise<void>>();

    /** Starts the service once its depends_on conditions hold, as `docker compose up` does. */
    function up(name: string): Promise<RunningProcess> {
      let promise = started.get(name);
      if (promise === undefined) {
        promise = (async () => {
          const conditions = Object.entries(services[name]?.depends_on ?? {});
          await Promise.all(
            conditions.map(([dependency, { condition }]) =>
              condition === 'service_completed_successfully'
                ? completedOf(dependency)
                : condition === 'service_healthy'
                  ? healthyOf(dependency)
                  : up(dependency),
            ),
          );
          return await start(name);
        })();
        started.set(name, promise);
      }
      return promise;
    }

    function completedOf(name: string): Promise<void> {
      let promise = completed.get(name);
      if (promise === undefined) {
        promise = (async () => {
          const running = await up(name);
          const code = await running.exited;
          assert.equal(
            code,
            0,
            `${name} completes successfully\n${running.stdout().slice(-2000)}\n${running.stderr().slice(-2000)}`,
          );
        })();
        completed.set(name, promise);
      }
      return promise;
    }

    function healthyOf(name: string): Promise<void> {
      let promise = healthy.get(name);
      if (promise === undefined) {
        promise = (async () => {
          const running = await up(name);
          const check = services[name]?.healthcheck as Healthcheck;
          const budget = duration(check.start_period, 0) + duration(check.interval, 30_000) * (check.retries ?? 3);
          const deadline = Date.now() + budget;
          const command = healthcheckCommand(name);
          let last = { code: null as number | null, output: '' };
          while (Date.now() < deadline) {
            assert.equal(running.child.exitCode, null, `${name} keeps running\n${running.stderr().slice(-3000)}`);
            last = await runOnce(command, duration(check.timeout, 30_000));
            if (last.code === 0) return;
            await new Promise((resolve) => setTimeout(resolve, 500));
          }
          assert.fail(
            `${name} is not healthy after ${budget} ms: its check exits ${last.code} (${last.output.trim().slice(0, 500)})\n${name}'s output:\n${running.stdout().slice(-3000)}\n${running.stderr().slice(-3000)}`,
          );
        })();
        healthy.set(name, promise);
      }
      return promise;
    }

    const checked = Object.entries(services).filter(([, s]) => s.healthcheck !== undefined);

    it('knows how to run every service that has a healthcheck, and a test runs each below', () => {
      assert.ok(checked.length > 0);
      for (const [name, service] of checked)
        assert.ok(isBaton(service) || isRedis(service), `${name} runs baton's image or Redis`);
    });

    for (const [name, service] of checked) {
      it(`${name} becomes healthy by its own healthcheck (${howChecked(service)})`, { timeout: 240_000 }, async () => {
        await healthyOf(name);
      });
    }

    it(
      "answers the quickstart's requests on the published ports: /checkout through gateway, orders and payments over mTLS, /direct-charge refused",
      { timeout: 240_000 },
      async () => {
        for (const [name] of checked) await healthyOf(name);
        /** A port compose publishes on the host (`127.0.0.1:H:C`): the container port's listener, in that service's namespace. */
        const published = (name: string, containerPort: number): number => {
          assert.ok(
            (services[name]?.ports ?? []).includes(`127.0.0.1:${containerPort}:${containerPort}`),
            `${name} publishes ${containerPort}`,
          );
          const record = readPort(portsDir, namespaceOf(name), containerPort);
          assert.ok(
            record?.everyInterface,
            `${name} listens on ${containerPort} on every interface, as publishing needs`,
          );
          return record.port;
        };
        // docs/docker-compose.md, as curl sends it.
        const issued = await fetch(`http://127.0.0.1:${published('idp', 9000)}/dev/token`, {
          method: 'POST',
          body: new URLSearchParams({
            sub: 'alice',
            scope: 'shop orders:write payments:charge otp',
            acr: 'urn:baton:acr:mfa',
          }),
        });
        const { access_token: token } = (await issued.json()) as { access_token: string };
        const gateway = published('gateway', 7080);
        const checkout = await fetch(`http://127.0.0.1:${gateway}/checkout`, {
          method: 'POST',
          headers: { authorization: `Bearer ${token}` },
        });
        const body = (await checkout.json()) as {
          service: string;
          downstream?: {
            status: number;
            body: { service: string; downstream?: { status: number; body: { service: string; chain: string } } };
          };
        };
        assert.equal(checkout.status, 200, JSON.stringify(body));
        assert.equal(body.downstream?.body.downstream?.body.service, 'payments');
        assert.equal(body.downstream?.body.downstream?.body.chain, 'gateway,orders');
        const direct = await fetch(`http://127.0.0.1:${gateway}/direct-charge`, {
          method: 'POST',
          headers: { authorization: `Bearer ${token}` },
        });
        await direct.arrayBuffer();
        assert.equal(direct.status, 403);
      },
    );
  },
);
