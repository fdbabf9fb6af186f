/**
 * Starts everything the hop harness compares, on loopback:
 *
 *   lane      what B forwards to (through a wire tap)      what "the origin read" is
 *   node      node:http                                    node:http's parse
 *   raw       the raw-socket recorder                      ./reference-framer.ts's parse
 *   nginx     nginx (one worker) → the raw recorder        what nginx forwarded
 *   haproxy   haproxy (HTTP mode) → the raw recorder       what haproxy forwarded
 *   answers   a raw app answering each case's bytes        (the answer direction)
 *
 * and the baton side (./mesh.ts): the STS, sidecar A, and one sidecar B
 * per lane, whose service name is the lane's name.
 */
import { type NativeProxy, startHaproxyProxy, startNginxProxy } from '../../helpers/native-proxies.ts';
import { ANSWER_CASES } from './corpus.ts';
import { type HopMesh, startHopMesh } from './mesh.ts';
import { type Origin, startNodeOrigin, startRawOrigin, startWireTap, type WireTap } from './origins.ts';
import type { Lane, Ports } from './run.ts';

export const REQUEST_LANES = ['node', 'raw', 'nginx', 'haproxy'] as const;
export const ANSWER_LANE = 'answers';

export interface Harness {
  readonly mesh: HopMesh;
  readonly lanes: Readonly<Record<string, Lane>>;
  ports(lane: string): Ports;
  /** The native proxies' configs, as they run. */
  readonly configs: Readonly<Record<string, string>>;
  stop(): Promise<void>;
}

export async function startHarness(): Promise<Harness> {
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
          return answerCase === undefined ? undefined : { bytes: Buffer.from(answerCase.answer, 'latin1'), close: answerCase.close === true };
        },
      }),
    );
    const mesh = await startHopMesh(Object.fromEntries(Object.values(lanes).map((l) => [l.name, l.tap.port])));
    stops.push(() => mesh.stop());
    return {
      mesh,
      lanes,
      configs,
      ports: (name) => ({ pair: mesh.outboundPort, inbound: mesh.inboundPorts[name] as number }),
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}
