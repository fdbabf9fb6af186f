/**
 * A deadline for receiving the request body (issue #16). The inbound
 * timeout covers the app's answer, not the upload: without this, one user
 * trickling bodies a byte a minute holds its in-flight slots for as long as
 * the sockets live. Past the deadline the request is answered 408 (RFC 9110
 * §15.5.9) and its connection closed; a request without a body arms
 * nothing.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

/** Calls `expire` if the body of `req` has not fully arrived within `ms`; disarmed when the response closes. */
export function armBodyDeadline(req: IncomingMessage, res: ServerResponse, ms: number, expire: () => void): void {
  if (req.complete || !hasBody(req)) return;
  const timer = setTimeout(() => {
    if (!req.complete && !res.writableFinished) expire();
  }, ms);
  res.once('close', () => clearTimeout(timer));
}

function hasBody(req: IncomingMessage): boolean {
  const length = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}
