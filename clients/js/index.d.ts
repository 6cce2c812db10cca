// Types of shardcast-client. The wire protocol is DESIGN.md §3 of the shardcast repository.

/** Any value `JSON.stringify` turns into JSON. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/** The connection's state; see {@link ShardcastClient}. */
export type ConnectionState = 'idle' | 'connecting' | 'open' | 'reconnecting' | 'closed';

/** Payload of the `state` event (and of the event named after the state). */
export interface StateEvent {
  state: ConnectionState;
  /** `connecting`/`reconnecting`: failed attempts since the backoff last started over. */
  attempt?: number;
  /** `reconnecting`: milliseconds until the next attempt. */
  delay?: number;
  /** `reconnecting`/`closed`: the close code (1006 = dropped without a close frame; 0 = no socket was made). */
  code?: number;
  /** `reconnecting`/`closed`: the close reason, or the handshake error where the runtime tells it. */
  reason?: string;
}

/** Where a message sits in its room. */
export interface MessageMeta {
  room: string;
  seq: number;
  /** The room's epoch the seq belongs to. */
  epoch: string | null;
}

/** A delivered message (client-level `message` event). */
export interface Message<T = unknown> extends MessageMeta {
  data: T;
}

/** Seqs `from..=to` (inclusive) of `room` will not be delivered: history no longer holds them. */
export interface GapNotice {
  room: string;
  from: number;
  to: number;
}

/**
 * The room restarted under a new epoch (its seq began again at 1): state built from the old
 * epoch's messages may be stale. What follows is the new epoch's retained history.
 */
export interface ResetNotice {
  room: string;
  epoch: string;
  previousEpoch: string | null;
}

/** Each confirmation of a subscription (the first, and one per reconnect). */
export interface SubscribedInfo {
  room: string;
  /** The room's last seq when the server confirmed. */
  seq: number;
  epoch: string;
  /**
   * Whether the request continued from a position (`since`). A tracking subscription with a
   * snapshot starts over on each reconnect (false): rebuild the view from what follows.
   */
  resumed: boolean;
}

/** A viewport: `[west, south, east, north]` in degrees (lon, lat, lon, lat); `west > east` crosses the antimeridian. */
export type BBox = [west: number, south: number, east: number, north: number];

/** A key shown by a viewport moved outside it (or a pan left it outside): remove it. */
export interface LeaveNotice {
  room: string;
  /** The message key, as a string. */
  key: string;
}

/** A key sent nothing for the namespace's `liveness_ttl`. Its next message means it is back. */
export interface OfflineNotice {
  room: string;
  key: string;
  /** The seq of its last message. */
  lastSeq: number;
}

/** Who joined and left a room since the last diff (at most one per `presence_window`). */
export interface PresenceDiff {
  room: string;
  /** Subscriptions now. */
  count: number;
  /** Members present now and absent at the last diff (`[]` above `presence_members`). */
  joined: string[];
  left: string[];
}

/** The answer to {@link ShardcastClient.presence}. */
export interface PresenceInfo {
  room: string;
  /** Subscriptions of the room on this server node. */
  count: number;
  /** Distinct member names, sorted; absent above the namespace's `presence_members`. */
  members?: string[];
}

/** The answer to {@link ShardcastClient.view}. */
export interface ViewResult {
  room: string;
  bbox: BBox;
}

/** Per-key pacing of a subscription, as given to subscribe(). */
export interface PacingOptions {
  /** At most this many messages per key per second (sent as `max_rate`); the newest of each interval arrives. Needs a `key`. */
  maxRate?: number;
  /** Skip a message that moved less than this many metres from the last one delivered for its key (`min_move_m`). Needs `geo` and `key`. */
  minMoveM?: number;
  /** With `minMoveM`: a suppressed key is still delivered every this many seconds (`max_silence_s`). */
  maxSilenceS?: number;
}

export interface BackoffOptions {
  /** First delay in ms. Default 250. */
  initial?: number;
  /** Largest delay in ms. Default 30000. */
  max?: number;
  /** Growth per failed attempt. Default 2. */
  factor?: number;
  /** Randomized fraction of each delay, 0..1: a delay is drawn from [base × (1 − jitter), base]. Default 0.5. */
  jitter?: number;
  /** Randomness in [0, 1). Default Math.random. */
  random?: () => number;
}

export interface ClientOptions {
  /**
   * The WebSocket constructor. Default: `globalThis.WebSocket` (browsers, Node ≥ 22). On Node 20
   * pass the `ws` package's default export.
   */
  WebSocket?: new (url: string) => any;
  /** Sent as `?token=` at each handshake (an HS256 JWT for servers with a JWT secret). */
  token?: string;
  /**
   * Supplies a new token. Called when the server closes with 1008 "token expired", when a
   * handshake is refused with 401 (where the runtime reports it), and before connecting
   * with a JWT whose `exp` has passed. The client reconnects with the result and resumes.
   */
  refreshToken?: (info: { reason: string; token: string | null }) => string | Promise<string>;
  /** Reconnect delays; `resetAfter` (ms, default 5000): a connection open that long starts the schedule over. */
  backoff?: BackoffOptions & { resetAfter?: number };
  /** Reconnect after a drop. Default true; false ends in state `closed`. */
  reconnect?: boolean;
  /** Connect on construction (on the next microtask). Default true; else call `connect()`. */
  autoConnect?: boolean;
  /** Longest wait for a `pub`/`unsub`/`ping`/`view`/`presence` reply, counted from the call, in ms. Default 10000. */
  requestTimeout?: number;
  /** After this many ms without a frame the client pings; 0 disables. Default 25000. */
  pingInterval?: number;
  /** No frame this many ms after a heartbeat ping → the connection is dropped and replaced. Default 10000. */
  pingTimeout?: number;
}

export interface SubscribeOptions<T = unknown> {
  /** Deliver the latest message per key first (namespaces with a `key`). */
  snapshot?: boolean;
  /** Resume after this seq (the application already has it and everything before). */
  since?: number;
  /** The epoch `since` belongs to; a different current epoch produces a `reset`. */
  epoch?: string;
  /**
   * A viewport (namespaces with `geo`): only messages positioned inside, one `leave` when a
   * shown key moves out. Move it with `client.view()`. At most 8 per connection.
   */
  bbox?: BBox | null;
  /** See {@link PacingOptions}. */
  maxRate?: number | null;
  minMoveM?: number | null;
  maxSilenceS?: number | null;
  onMessage?: (data: T, meta: MessageMeta) => void;
  onGap?: (gap: GapNotice) => void;
  onReset?: (reset: ResetNotice) => void;
  onSubscribed?: (info: SubscribedInfo) => void;
  onLeave?: (leave: LeaveNotice) => void;
  onOffline?: (offline: OfflineNotice) => void;
  onPresenceDiff?: (diff: PresenceDiff) => void;
  /** A refused resubscription (e.g. after a token refresh), or an exception thrown by a listener. */
  onError?: (err: Error) => void;
}

export interface PublishResult {
  room: string;
  seq: number;
  epoch: string;
}

/** What every promise of the client rejects with (besides TypeError for bad arguments). */
export class ShardcastError extends Error {
  /**
   * The server's code (`bad_json`, `bad_op`, `missing_field`, `bad_field`, `bad_room`,
   * `forbidden`, `rate_limited`, `too_many_rooms`, `not_subscribed`, `too_many_keys` (a
   * viewport is full: a client `error` event), `unavailable`) or the
   * client's: `disconnected` (dropped after sending: a `pub` may have been applied), `timeout`,
   * `closed`, `unsubscribed`.
   */
  code: string;
  op?: string;
  room?: string;
  constructor(code: string, message: string, context?: { op?: string; room?: string });
}

interface SubscriptionEvents<T> {
  message: (data: T, meta: MessageMeta) => void;
  gap: (gap: GapNotice) => void;
  reset: (reset: ResetNotice) => void;
  subscribed: (info: SubscribedInfo) => void;
  leave: (leave: LeaveNotice) => void;
  offline: (offline: OfflineNotice) => void;
  presenceDiff: (diff: PresenceDiff) => void;
  error: (err: Error) => void;
}

/** A followed room and its position (epoch + last seq delivered). */
export class Subscription<T = unknown> {
  readonly room: string;
  readonly snapshot: boolean;
  /** The viewport the server filters by: the last `view` it accepted (or the subscribed box); null without one. */
  readonly bbox: BBox | null;
  /** The pacing asked for (only the options given). */
  readonly pacing: PacingOptions;
  /**
   * A viewport or paced subscription: messages may arrive out of seq order (pacing holds
   * them back, pans replay older entries), so none is dropped by seq and `seq` is the highest.
   */
  readonly tracking: boolean;
  /** Last seq delivered (or given as `since`); null before any. */
  readonly seq: number | null;
  /** Epoch of that position; null until the server told it. */
  readonly epoch: string | null;
  /** False once unsubscribed, refused, or replaced by a new subscribe() of the room. */
  readonly active: boolean;
  /** Messages dropped as duplicates (seq at or below the position). */
  readonly duplicates: number;
  on<E extends keyof SubscriptionEvents<T>>(event: E, listener: SubscriptionEvents<T>[E]): () => void;
  once<E extends keyof SubscriptionEvents<T>>(event: E, listener: SubscriptionEvents<T>[E]): () => void;
  off<E extends keyof SubscriptionEvents<T>>(event: E, listener?: SubscriptionEvents<T>[E]): void;
  /** Stops following the room; resolves when the server confirmed (at once when offline). */
  unsubscribe(): Promise<void>;
}

interface ClientEvents {
  state: (e: StateEvent) => void;
  idle: (e: StateEvent) => void;
  connecting: (e: StateEvent) => void;
  open: (e: StateEvent) => void;
  reconnecting: (e: StateEvent) => void;
  closed: (e: StateEvent) => void;
  message: (m: Message) => void;
  gap: (gap: GapNotice) => void;
  reset: (reset: ResetNotice) => void;
  leave: (leave: LeaveNotice) => void;
  offline: (offline: OfflineNotice) => void;
  presenceDiff: (diff: PresenceDiff) => void;
  /** A new token from `refreshToken`. */
  token: (token: string) => void;
  /** A failed refresh, a refused resubscription, an unattributable server error, a listener's exception. */
  error: (err: Error) => void;
}

/**
 * A connection to a shardcast server's `/ws` that reconnects with backoff and resumes every
 * subscription from its position, announcing gaps and resets instead of hiding them.
 */
export class ShardcastClient {
  /** @param url `ws(s)://host:port` (the path defaults to `/ws`; `http(s)` is accepted). */
  constructor(url: string, options?: ClientOptions);
  readonly state: ConnectionState;
  /** The token the next connection presents. */
  readonly token: string | null;
  readonly subscriptions: Subscription[];
  /** Starts (again, after close()); kept subscriptions resume from their positions. */
  connect(): void;
  /** Closes and stops reconnecting; subscriptions are kept; waiting requests reject with `closed`. */
  close(code?: number, reason?: string): void;
  /** Resolves once the server confirmed; rejects with the server's error code. */
  subscribe<T = unknown>(room: string, options?: SubscribeOptions<T>): Promise<Subscription<T>>;
  publish(room: string, data: JsonValue | unknown): Promise<PublishResult>;
  /**
   * Moves the viewport of a room subscribed with a `bbox`; resolves once the server confirmed
   * (then: a `leave` per shown key now outside, the entries newly inside). Rejects with
   * `not_subscribed`, `bad_op` (no box), `bad_field`. Reconnects resubscribe with the last accepted box.
   */
  view(room: string, bbox: BBox): Promise<ViewResult>;
  /** Who follows `room` (namespaces with `presence = true`); rejects with `bad_op` elsewhere. */
  presence(room: string): Promise<PresenceInfo>;
  /** Round-trip time in ms. */
  ping(): Promise<number>;
  on<E extends keyof ClientEvents>(event: E, listener: ClientEvents[E]): () => void;
  once<E extends keyof ClientEvents>(event: E, listener: ClientEvents[E]): () => void;
  off<E extends keyof ClientEvents>(event: E, listener?: ClientEvents[E]): void;
}

/** Reconnect delays: exponential, capped, jittered. */
export class Backoff {
  constructor(options?: BackoffOptions);
  readonly attempt: number;
  /** The next delay in ms; counts one attempt. */
  next(): number;
  reset(): void;
}

/** A JWT's `exp` (seconds), read without verifying; null if not a JWT or no numeric exp. */
export function tokenExpiry(token: string): number | null;
/** Whether a JWT's `exp` is at or before `nowMs + marginMs`. */
export function tokenExpired(token: string, nowMs?: number, marginMs?: number): boolean;
