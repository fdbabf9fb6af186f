/**
 * Reconstructs call chains from the JSON logs of several processes
 * (sidecars and the STS): every audit line of a `txn`, a trace id or a
 * request id, in time order, and the hops it went through. Lines join on
 * `txn` and on `trace_id` both ways, so an STS refusal written before the
 * txn was known is still found through its trace id.
 *
 * A `txn` covers every request made with one user token, so its lines are
 * split into requests by the sidecars' `request` id (src/sidecar/context-handles.ts),
 * which survives apps that do not propagate trace context. STS lines carry
 * no request id: one joins the request whose trace it shares, else the
 * request whose outbound check, by the same client for the same target,
 * came last before it.
 *
 * Log files hold much more than audit lines; anything the one audit-line
 * parser (./audit-event.ts) does not read is skipped. Each event says who
 * wrote it and the status the caller got, as its line recorded them.
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import {
  type AuditComponent,
  type AuditDirection,
  type AuditEventName,
  type AuditLine,
  parseAuditLine,
} from './audit-event.ts';
import { AuditInputInvalidError } from './errors.ts';

export interface AuditQuery {
  readonly txn?: string;
  readonly traceId?: string;
  /** One request (`request` in sidecar audit lines, the `baton-request` header an app saw). */
  readonly request?: string;
}

/** One audit line as the trail shows it: a sidecar's decision or failure, or the STS deciding, issuing or refusing. */
export interface TrailEvent {
  readonly time: string | undefined;
  readonly service: string;
  /** Who wrote the line. */
  readonly component: AuditComponent;
  readonly event: AuditEventName;
  /** Sidecar lines: which port. */
  readonly direction: AuditDirection | undefined;
  readonly chain: readonly string[];
  readonly target: string | undefined;
  /** The HTTP method (sidecars) or the grant (STS). */
  readonly method: string | undefined;
  readonly path: string | undefined;
  readonly rule: string | undefined;
  readonly decision: string | undefined;
  /** Why it was not allowed: the policy's cause, the OAuth error, or the error code. */
  readonly cause: string | undefined;
  /** The HTTP status the caller got, when the line recorded one. */
  readonly status: number | undefined;
  readonly txn: string | undefined;
  /** The request the event belongs to: from the line, or attributed (STS lines). */
  readonly request: string | undefined;
  /** The STS client that asked (STS lines only). */
  readonly client: string | undefined;
  readonly traceId: string | undefined;
  readonly spanId: string | undefined;
}

/** One request and the calls it caused. */
export interface RequestTrail {
  /** Undefined for lines that belong to no single request (old lines without `request`, an STS line with nothing to attach to). */
  readonly request: string | undefined;
  readonly hops: readonly string[];
  readonly events: readonly TrailEvent[];
  readonly deniedAt: TrailEvent | undefined;
}

export interface AuditTrail {
  readonly txns: readonly string[];
  readonly traceIds: readonly string[];
  /** Services the call reached, in order: the entry hop, then each inbound decision's service. */
  readonly hops: readonly string[];
  readonly events: readonly TrailEvent[];
  /** The first enforced denial, if the chain was stopped. */
  readonly deniedAt: TrailEvent | undefined;
  /** The events split by request, in the order the requests began. */
  readonly requests: readonly RequestTrail[];
}

/** Every audit line in the files and directories given, parsed by the one audit-line parser. */
export function readLogLines(paths: readonly string[]): AuditLine[] {
  const lines: AuditLine[] = [];
  for (const path of paths) {
    let files: string[];
    try {
      files = statSync(path).isDirectory()
        ? readdirSync(path)
            .sort()
            .map((name) => join(path, name))
            .filter((file) => statSync(file).isFile())
        : [path];
    } catch (error) {
      throw new AuditInputInvalidError(
        `expected a readable log file or directory, got ${path} (${(error as NodeJS.ErrnoException).code ?? 'unreadable'})`,
        { reason: 'unreadable' },
      );
    }
    for (const file of files) {
      for (const raw of readFileSync(file, 'utf8').split('\n')) {
        const line = parseAuditLine(raw);
        if (line !== undefined) lines.push(line);
      }
    }
  }
  return lines;
}

export function reconstructTrail(lines: readonly AuditLine[], query: AuditQuery): AuditTrail {
  const txns = new Set<string>();
  const traceIds = new Set<string>();
  if (query.txn !== undefined) txns.add(query.txn);
  if (query.traceId !== undefined) traceIds.add(query.traceId.toLowerCase());
  if (query.request !== undefined) {
    // A request's own lines, then the STS lines of its txns (attributed below, then filtered).
    for (const line of lines) {
      if (requestOf(line) !== query.request) continue;
      const txn = txnOf(line);
      const traceId = line.traceId;
      if (txn !== undefined) txns.add(txn);
      if (traceId !== undefined) traceIds.add(traceId);
    }
  } else {
    // Two passes close the join: a txn's lines name its traces, a trace's lines name its txns.
    for (let pass = 0; pass < 2; pass++) {
      for (const line of lines) {
        const txn = txnOf(line);
        const traceId = line.traceId;
        if ((txn !== undefined && txns.has(txn)) || (traceId !== undefined && traceIds.has(traceId))) {
          if (txn !== undefined) txns.add(txn);
          if (traceId !== undefined) traceIds.add(traceId);
        }
      }
    }
  }
  const matched = lines
    .filter((line) => {
      const txn = txnOf(line);
      return (txn !== undefined && txns.has(txn)) || (line.traceId !== undefined && traceIds.has(line.traceId));
    })
    .map(toEvent)
    .sort((a, b) => (a.time ?? '').localeCompare(b.time ?? '') || step(a) - step(b));
  const attributed = attributeRequests(matched);
  const events = query.request === undefined ? attributed : attributed.filter((e) => e.request === query.request);
  const requests = splitByRequest(events);
  const found =
    query.request === undefined
      ? { txns, traceIds }
      : {
          txns: new Set(events.flatMap((e) => (e.txn === undefined ? [] : [e.txn]))),
          traceIds: new Set(events.flatMap((e) => (e.traceId === undefined ? [] : [e.traceId]))),
        };
  return {
    txns: [...found.txns],
    traceIds: [...found.traceIds],
    hops: hopsOf(events),
    events,
    deniedAt: events.find((e) => e.decision === 'deny'),
    requests,
  };
}

/** Gives each STS event the request it served: by shared trace, else by the outbound check that asked for it. */
function attributeRequests(events: readonly TrailEvent[]): TrailEvent[] {
  const requestOfTrace = new Map<string, string>();
  for (const e of events)
    if (e.request !== undefined && e.traceId !== undefined && !requestOfTrace.has(e.traceId))
      requestOfTrace.set(e.traceId, e.request);
  const out: TrailEvent[] = [];
  for (const e of events) {
    if (e.request !== undefined || e.component !== 'sts') {
      out.push(e);
      continue;
    }
    const byTrace = e.traceId === undefined ? undefined : requestOfTrace.get(e.traceId);
    // Events are in time order: the last outbound check before this line, by the client that asked, for the same target.
    const asker =
      byTrace === undefined
        ? out.findLast(
            (o) =>
              o.direction === 'outbound' &&
              o.service === e.client &&
              o.target === e.target &&
              o.txn === e.txn &&
              o.request !== undefined,
          )
        : undefined;
    out.push({ ...e, request: byTrace ?? asker?.request });
  }
  return out;
}

function splitByRequest(events: readonly TrailEvent[]): RequestTrail[] {
  const groups = new Map<string | undefined, TrailEvent[]>();
  for (const e of events) {
    const group = groups.get(e.request);
    if (group === undefined) groups.set(e.request, [e]);
    else group.push(e);
  }
  return [...groups].map(([request, grouped]) => ({
    request,
    hops: hopsOf(grouped),
    events: grouped,
    deniedAt: grouped.find((e) => e.decision === 'deny'),
  }));
}

function hopsOf(events: readonly TrailEvent[]): string[] {
  const hops: string[] = [];
  for (const event of events)
    if (event.event === 'decision' && event.direction === 'inbound' && hops[hops.length - 1] !== event.service)
      hops.push(event.service);
  return hops;
}

const DIRECTION_RANK: Readonly<Record<AuditDirection | AuditComponent, number>> = {
  inbound: 0,
  outbound: 1,
  sts: 2,
  sidecar: 1,
};

/**
 * Where an event sits in its chain, to order events logged in the same
 * millisecond: a hop's inbound check, then its outbound check, then the
 * STS minting for the next hop, then the next hop's inbound check.
 */
function step(event: TrailEvent): number {
  const services = event.chain.length + (event.direction === 'inbound' ? 1 : 0);
  return services * 3 + DIRECTION_RANK[event.direction ?? event.component];
}

function txnOf(line: AuditLine): string | undefined {
  return 'txn' in line.audit ? line.audit.txn : undefined;
}

function requestOf(line: AuditLine): string | undefined {
  return line.audit.event === 'decision' ? line.audit.request : undefined;
}

/** The trail's view of one line: each field as its writer recorded it, none inferred. */
function toEvent(line: AuditLine): TrailEvent {
  const base = {
    time: line.time === undefined ? undefined : new Date(line.time).toISOString(),
    service: line.service,
    component: line.audit.component,
    event: line.audit.event,
    traceId: line.traceId,
    spanId: line.spanId,
    request: undefined,
    client: undefined,
    path: undefined,
    rule: undefined,
    decision: undefined,
    cause: undefined,
    status: undefined,
    txn: undefined,
    chain: [],
    target: undefined,
    method: undefined,
    direction: undefined,
  };
  const audit = line.audit;
  switch (audit.event) {
    case 'decision':
      return {
        ...base,
        direction: audit.direction,
        chain: audit.chain,
        target: audit.target,
        method: audit.method,
        path: audit.path,
        rule: audit.rule,
        decision: audit.decision,
        cause: audit.cause,
        status: audit.status,
        txn: audit.txn,
        request: audit.request,
      };
    case 'request_failed':
      return { ...base, direction: audit.direction, method: audit.method, cause: audit.code, status: audit.status };
    case 'token_decision':
      return {
        ...base,
        chain: audit.chain,
        target: audit.target,
        method: audit.grant,
        rule: audit.rule,
        decision: audit.decision,
        cause: audit.error ?? audit.cause,
        status: audit.status,
        txn: audit.txn,
        client: audit.client,
      };
    case 'token_issued':
      return {
        ...base,
        chain: audit.chain,
        target: audit.target,
        method: audit.grant,
        rule: audit.rule,
        decision: audit.decision,
        cause: audit.cause,
        status: audit.status,
        txn: audit.txn,
        client: audit.client,
      };
    case 'token_refused':
      return { ...base, path: audit.path, cause: audit.error ?? audit.code, status: audit.status };
  }
}
