/**
 * Starts everything the hop harness compares, on loopback:
 *
 *   lane      what B forwards to (through a wire tap)      what "the origin read" is
 *   node      node:http                                    node:http's parse
 *   raw       the raw-socket recorder                      ./reference-framer.ts's parse
 *   nginx     nginx (one worker) → the raw recorder        what nginx forwarded
 *   haproxy   haproxy (HTTP mode) → the raw recorder       what haproxy forwarded
 *   answers   a raw app answering each case's bytes        (the answer direction)
 *   orders    the raw-socket recorder, behind an mTLS pair  ./reference-framer.ts's parse
 *
 * and the baton side (./mesh.ts): the STS, sidecar A, and one sidecar B
 * per lane, whose service name is the lane's name, in plaintext. The
 * `orders` lane is `baton demo`'s mesh instead (src/demo/mesh.ts), in mTLS
 * as in production: its own STS, policy server and development IdP, the
 * gateway's sidecar as A and orders' as B, every hop between them mutual
 * TLS checked by SPIFFE ID; only its pair leg runs (B's inbound port wants
 * a workload certificate).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startMesh } from '../../../src/demo/mesh.ts';
import { type NativeProxy, startHaproxyProxy, startNginxProxy } from '../../helpers/native-proxies.ts';
import { callGraph } from '../../helpers/policy.ts';
import { ANSWER_CASES } from './corpus.ts';
import { type HopMesh, startHopMesh, type User, USERS } from './mesh.ts';
import { type Origin, startNodeOrigin, startRawOrigin, startWireTap, type WireTap } from './origins.ts';
import type { Lane, Ports, Tokens } from './run.ts';

export const REQUEST_LANES = ['node', 'raw', 'nginx', 'haproxy'] as const;
export const ANSWER_LANE = 'answers';
export const MTLS_LANE = 'orders';

export interface Harness {
  readonly mesh: HopMesh;
  readonly lanes: Readonly<Record<string, Lane>>;
  ports(lane: string): Ports;
  /** The mTLS pair: its users' tokens (from the demo's IdP) and A's outbound port; its lane is MTLS_LANE. */
  readonly mtls: { readonly tokens: Tokens; readonly pairPort: number; secrets(): readonly string[] } | undefined;
  /** The native proxies' configs, as they run. */
  readonly configs: Readonly<Record<string, string>>;
  stop(): Promise<void>;
}

export async function startHarness(options: { mtls?: boolean } = {}): Promise<Harness> {
  const stops: Array<() => Promise<void>> = [];
  const stop = async (): Promise<void> => {
    for (const step of stops.reverse()) await step().catch(() => undefined);
  };
  try {
    const lanes: Record<string, Lane> = {};
    const configs: Record<string, string> = {};
    const lane = async (name: string, origin: Origin, front?: NativeProxy): Promise<void> => {
      stops.push(() => origin.close());
      if (front !== undefined) {
        stops.push(() => front.stop());
        configs[name] = front.config;
      }
      const tap: WireTap = await startWireTap(front?.port ?? origin.port);
      stops.push(() => tap.close());
      lanes[name] = { name, origin, tap, direct: front === undefined };
    };
    await lane('node', await startNodeOrigin());
    await lane('raw', await startRawOrigin());
    const behindNginx = await startRawOrigin();
    await lane('nginx', behindNginx, await startNginxProxy(behindNginx.port));
    const behindHaproxy = await startRawOrigin();
    await lane('haproxy', behindHaproxy, await startHaproxyProxy(behindHaproxy.port));
    const answers = new Map(ANSWER_CASES.map((c) => [`/answer/${c.id}`, c]));
    await lane(
      ANSWER_LANE,
      await startRawOrigin({
        answer(request) {
          const answerCase = answers.get(request.target);
          return answerCase === undefined
            ? undefined
            : { bytes: Buffer.from(answerCase.answer, 'latin1'), close: answerCase.close === true };
        },
      }),
    );
    const mesh = await startHopMesh(Object.fromEntries(Object.values(lanes).map((l) => [l.name, l.tap.port])));
    stops.push(() => mesh.stop());
    let mtls: Harness['mtls'];
    if (options.mtls === true) {
      await lane(MTLS_LANE, await startRawOrigin());
      const dir = mkdtempSync(join(tmpdir(), 'baton-hop-mtls-'));
      stops.push(async () => rmSync(dir, { recursive: true, force: true }));
      const policyFile = join(dir, 'callgraph.yaml');
      writeFileSync(
        policyFile,
        callGraph(
          'gateway: { entrypoint: true }\norders: { accepts: [ { name: from-gateway, from: gateway } ] }\npayments: { accepts: [ { name: from-orders, from: orders } ] }',
          { name: 'hop-mtls' },
        ),
      );
      // The processes' logs go to files only: reading every audit line here would take the lanes' CPU.
      const demo = await startMesh({
        transport: 'mtls',
        policyFile,
        apps: { orders: (lanes[MTLS_LANE] as Lane).tap.port },
        logDir: dir,
        logsToFileOnly: true,
      });
      stops.push(() => demo.stop());
      const held = new Map<User, string>();
      for (const user of USERS) held.set(user, await demo.userToken({ sub: user, scope: 'shop' }));
      const tokens: Tokens = {
        userToken: (user) => held.get(user) as string,
        meshToken: () => Promise.reject(new Error('the mTLS lane has no inbound leg')),
      };
      mtls = { tokens, pairPort: demo.services.gateway.outbound, secrets: () => [...held.values()] };
    }
    return {
      mesh,
      lanes,
      configs,
      ports: (name) =>
        name === MTLS_LANE && mtls !== undefined
          ? { pair: mtls.pairPort, inbound: 0 }
          : { pair: mesh.outboundPort, inbound: mesh.inboundPorts[name] as number },
      mtls,
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}
