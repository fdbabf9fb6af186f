/**
 * A deadline for receiving the request body (issue #16). The inbound
 * timeout covers the app's answer, not the upload: without this, one user
 * trickling bodies a byte a minute holds its in-flight slots for as long as
 * the sockets live. Past the deadline the request is answered 408 (RFC 9110
 * §15.5.9) and its connection closed; a request without a body arms
 * nothing.
 */
import type { Exchange } from '../dataplane/exchange.ts';

/** Calls `expire` if the body of `exchange` has not fully arrived within `ms`; disarmed when the exchange is over. */
export function armBodyDeadline(exchange: Exchange, ms: number, expire: () => void): void {
  if (exchange.requestComplete || !exchange.hasBody) return;
  const timer = setTimeout(() => {
    if (!exchange.requestComplete && !exchange.finished && !exchange.closed) expire();
  }, ms);
  exchange.onClose(() => clearTimeout(timer));
}
