/**
 * One connection to an upstream (node:net, or node:tls with the workload's
 * certificate) and its response parser. It serves one ForwardCall
 * (./forward-call.ts) at a time and goes back to its pool
 * (./pool.ts) only when the call says its framing left nothing in doubt.
 *
 * | state | meaning | next |
 * | --- | --- | --- |
 * | `connecting` | TCP (and TLS) not yet up; a call is attached | busy, closed |
 * | `busy` | serving a call | idle, closed |
 * | `idle` | in the pool: any byte or FIN from the server now closes it | busy, closed |
 * | `closed` | the socket is gone | — |
 */
import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { Http1Parser, type MessageHead } from './http1-parser.ts';

/** What a connection tells the call it serves. */
export interface ConnectionEvents {
  onConnected(): void;
  /** The parser's head callback: true reads no body (a response to HEAD). */
  onHead(head: MessageHead): boolean;
  onBody(chunk: Buffer): void;
  onData(chunk: Buffer): void;
  onEnd(): void;
  onUpstreamDrain(): void;
  onTimeout(connected: boolean): void;
  onClose(error: Error | undefined): void;
}

export interface UpstreamConnectionOptions {
  readonly connectTimeoutMs: number;
  /** The most bytes a response head may hold. */
  readonly maxHeadBytes: number;
}

type State = 'connecting' | 'busy' | 'idle' | 'closed';

export class UpstreamConnection {
  readonly socket: Socket;
  /** Pool key: origin and, for mTLS, certificate generation. */
  readonly key: string;
  readonly parser: Http1Parser;
  /** It has served a request before: a close before the answer may be the server's keep-alive timeout. */
  reused = false;
  error: Error | undefined;
  #state: State = 'connecting';
  #call: ConnectionEvents | undefined;

  constructor(
    socket: Socket,
    key: string,
    secure: boolean,
    options: UpstreamConnectionOptions,
    onClosed: (connection: UpstreamConnection) => void,
  ) {
    this.socket = socket;
    this.key = key;
    this.parser = new Http1Parser(
      'response',
      {
        onHead: (head) => this.#call?.onHead(head) ?? false,
        onBody: (chunk) => this.#call?.onBody(chunk),
      },
      { maxHeadBytes: options.maxHeadBytes },
    );
    socket.setTimeout(options.connectTimeoutMs);
    socket.once(secure ? 'secureConnect' : 'connect', () => {
      if (this.#state !== 'connecting') return;
      this.#state = 'busy';
      this.#call?.onConnected();
    });
    socket.on('data', (chunk: Buffer) => {
      // Bytes nobody asked for, on an idle connection: it cannot be trusted with the next request.
      if (this.#call === undefined) socket.destroy();
      else this.#call.onData(chunk);
    });
    socket.on('end', () => {
      if (this.#call === undefined) socket.destroy();
      else this.#call.onEnd();
    });
    socket.on('drain', () => this.#call?.onUpstreamDrain());
    socket.on('timeout', () => {
      if (this.#call === undefined) socket.destroy();
      else this.#call.onTimeout(this.#state !== 'connecting');
    });
    socket.on('error', (error: Error) => {
      this.error ??= error;
    });
    socket.once('close', () => {
      this.#state = 'closed';
      onClosed(this);
      this.parser.close();
      const call = this.#call;
      this.#call = undefined;
      call?.onClose(this.error);
    });
  }

  get connected(): boolean {
    return this.#state === 'busy' || this.#state === 'idle';
  }

  /** Gives the connection to a call (a new connection is attached while it connects). */
  attach(call: ConnectionEvents): void {
    assert.ok(
      this.#state === 'connecting' || this.#state === 'idle',
      `upstream connection: attach while ${this.#state}`,
    );
    assert.equal(this.#call, undefined, 'upstream connection: already serving a call');
    this.#call = call;
    if (this.#state === 'idle') this.#state = 'busy';
  }

  /** The call is over: the connection takes no more events from it. */
  detach(call: ConnectionEvents): void {
    if (this.#call === call) this.#call = undefined;
  }

  /** Back to the pool, unpaused and with the idle timeout: only a call whose framing is certain does this. */
  idle(keepAliveTimeoutMs: number): void {
    assert.equal(this.#state, 'busy', 'upstream connection: idle while not busy');
    assert.equal(this.#call, undefined, 'upstream connection: idle while serving a call');
    this.#state = 'idle';
    this.reused = true;
    this.socket.resume();
    this.socket.setTimeout(keepAliveTimeoutMs);
  }

  usable(): boolean {
    return (
      this.#state !== 'closed' &&
      this.#state !== 'connecting' &&
      !this.socket.destroyed &&
      this.socket.readyState === 'open'
    );
  }
}
