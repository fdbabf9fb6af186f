/**
 * A body read as UTF-8 text, never buffering more than `maxBytes`: the one
 * bounded reader behind every fetch baton makes of a document it did not
 * write (JWKS, discovery, introspection, the signed policy, the STS's token
 * response) and the CLI's stdin. A peer that sends more is cut off at the
 * first chunk past the bound, not after it has filled memory.
 */
import { BatonError } from './errors.ts';

/**
 * Thrown when a body goes past its bound. Each caller maps it to the code
 * of what it was reading (a key set, a policy, a token response), so one
 * that escapes unmapped is a bug: BATON_INTERNAL, reason `body-too-large`.
 */
export class BodyTooLargeError extends BatonError {
  readonly maxBytes: number;
  constructor(maxBytes: number) {
    super('BATON_INTERNAL', `expected at most ${maxBytes} bytes, got more`, { reason: 'body-too-large' });
    this.name = 'BodyTooLargeError';
    this.maxBytes = maxBytes;
  }
}

/** Past `maxBytes` the stream is destroyed (when it can be) and BodyTooLargeError thrown; a read error propagates as it is. */
export async function readBoundedText(
  body: AsyncIterable<Buffer | string> & { destroy?: () => void },
  maxBytes: number,
): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    const buffer = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    size += buffer.length;
    if (size > maxBytes) {
      body.destroy?.();
      throw new BodyTooLargeError(maxBytes);
    }
    chunks.push(buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}
