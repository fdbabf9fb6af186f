/**
 * JSON object parsing that refuses duplicate member names. RFC 7515 §5.2
 * and RFC 7519 §7.2 let a parser reject them or keep the last one; two
 * parsers that pick differently read two different tokens from the same
 * bytes, so a JOSE header or claims set with a duplicate is refused.
 */
export type StrictJsonResult =
  | { readonly ok: true; readonly value: Record<string, unknown> }
  | { readonly ok: false; readonly reason: 'syntax' | 'not-an-object' | 'duplicate-member' };

export function parseJsonObject(text: string): StrictJsonResult {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { ok: false, reason: 'syntax' };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    return { ok: false, reason: 'not-an-object' };
  if (hasDuplicateMember(text)) return { ok: false, reason: 'duplicate-member' };
  return { ok: true, value: value as Record<string, unknown> };
}

/**
 * Scans text already known to be valid JSON. A string followed by `:` is a
 * member name; names are compared after unescaping, so `"a"` and `"\u0061"`
 * collide as they do for JSON.parse.
 */
export function hasDuplicateMember(validJson: string): boolean {
  const scopes: Array<Set<string> | undefined> = [];
  let i = 0;
  while (i < validJson.length) {
    const c = validJson.charCodeAt(i);
    if (c === 0x7b /* { */) {
      scopes.push(new Set());
      i++;
    } else if (c === 0x5b /* [ */) {
      scopes.push(undefined);
      i++;
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      scopes.pop();
      i++;
    } else if (c === 0x22 /* " */) {
      const end = endOfString(validJson, i);
      let j = end;
      while (j < validJson.length && isWhitespace(validJson.charCodeAt(j))) j++;
      const names = scopes[scopes.length - 1];
      if (validJson.charCodeAt(j) === 0x3a /* : */ && names !== undefined) {
        // Only an escape can make two spellings of one name; most names have none and need no unescaping.
        const raw = validJson.slice(i + 1, end - 1);
        const name = raw.includes('\\') ? (JSON.parse(validJson.slice(i, end)) as string) : raw;
        if (names.has(name)) return true;
        names.add(name);
      }
      i = end;
    } else {
      i++;
    }
  }
  return false;
}

/** Index just past the quote that closes the string opening at `start`: the next quote not escaped by an odd run of backslashes. */
function endOfString(text: string, start: number): number {
  let from = start + 1;
  for (;;) {
    const quote = text.indexOf('"', from);
    if (quote === -1) return text.length;
    let backslashes = 0;
    while (text.charCodeAt(quote - 1 - backslashes) === 0x5c /* \ */) backslashes++;
    if (backslashes % 2 === 0) return quote + 1;
    from = quote + 1;
  }
}

function isWhitespace(c: number): boolean {
  return c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d;
}
