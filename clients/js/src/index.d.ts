// Types of @livedrop/client. The wire frames follow docs/protocol.md of the LiveDrop repository.

export declare const VERSION: string;
export declare const SUBPROTOCOL: "livedrop.v1";

// -- wire frames: server -> viewer ------------------------------------------------------------------

export interface Stock {
  available: number;
  held: number;
  sold: number;
  total: number;
}

/** One variant of a drop with variants (a size, a colour): its own SKU, options and stock. */
export interface Variant {
  id: string;
  sku: string;
  /** What a picker shows: {"size": "42"}, {"colour": "red", "size": "M"}. */
  options: Record<string, string>;
  stock: Stock;
  /** Only when they differ from the drop's. */
  prices?: Record<string, number>;
}

export interface Drop {
  id: string;
  sku: string;
  title: string;
  image_url: string;
  /** Minor units per ISO currency: {"EUR": 1900} is 19.00 EUR. */
  prices: Record<string, number>;
  state: "draft" | "live" | "closed" | (string & {});
  /** Epoch ms on the server's clock; count down with `client.remainingMs(drop)`. */
  ends_at?: number | null;
  per_customer_limit: number;
  stock: Stock;
  /** Set by the client from `drop_ended`. */
  end_reason?: DropEndReason;
  /** Only on a drop with variants: reserve and waitlist must then name one. `stock` is their sum. */
  variants?: Variant[];
  /** True when `per_customer_limit` counts in each variant on its own (absent: across them). */
  limit_per_variant?: boolean;
}

export type DropEndReason = "host" | "sold_out" | "time";
export type RejectReason = "sold_out" | "limit_exceeded" | "not_live" | "invalid" | "available";
export type ErrorCode =
  | "bad_json"
  | "bad_frame"
  | "unauthenticated"
  | "rate_limited"
  | "unknown_drop"
  | "unknown_hold"
  | "not_owner"
  | "hold_not_active"
  | "unavailable"
  | "unknown_variant"
  | "variant_required"
  | (string & {});

export interface WelcomeFrame {
  type: "welcome";
  show: string;
  title: string;
  state: string;
  seq: number;
  epoch: string;
  server_time: number;
  viewers: number;
  can_reserve: boolean;
  reset: boolean;
  drops: Drop[];
}
export interface DropFrame { type: "drop"; seq: number; drop: Drop }
export interface StockFrame extends Stock {
  type: "stock";
  drop: string;
  ts?: number;
  /** A drop with variants: each variant's counters, by variant id. */
  variants?: Record<string, Stock>;
}
export interface DropEndedFrame { type: "drop_ended"; seq: number; drop: string; reason: DropEndReason }
export interface ViewersFrame { type: "viewers"; count: number }
export interface ShowFrame { type: "show"; seq: number; show: string; title: string; state: string }
export interface ShowEndedFrame { type: "show_ended"; seq: number }
export interface ReservedFrame {
  type: "reserved";
  /** The request's ref, or "waitlist" for a hold handed out from the waitlist. */
  ref: string;
  drop: string;
  hold: string;
  qty: number;
  expires_at: number;
  from_waitlist: boolean;
  /** The hold's signed reference: what the cart and the checkout carry. */
  hold_ref: string;
  /** A link into the merchant's store that pays for this hold ("" when the show has none; docs/checkout.md). */
  checkout_url?: string;
  /**
   * The hold's state when this answer was sent: "held" for a new hold; a retried ref (a request
   * sent again after a reconnect) may name a hold released, expired or paid since.
   */
  state: "held" | "released" | "expired" | "confirmed";
  /** The variant held (a drop with variants only). */
  variant?: string;
}
export interface RejectedFrame { type: "rejected"; ref: string; drop: string; reason: RejectReason; variant?: string }
export interface ReleasedFrame { type: "released"; hold: string; ref: string | null }
export interface HoldExpiredFrame { type: "hold_expired"; drop: string; hold: string; variant?: string }
export interface ConfirmedFrame { type: "confirmed"; drop: string; hold: string; qty: number; variant?: string }
export interface WaitlistedFrame { type: "waitlisted"; drop: string; position: number; ref: string | null; variant?: string }
export interface ErrorFrame { type: "error"; code: ErrorCode; message: string; ref?: string | null }
export interface PongFrame { type: "pong"; server_time: number; ref: string | null }

// -- chat (docs/protocol.md, "Chat"): text is text, set it with textContent, never as HTML --------------

export type ChatRole = "viewer" | "moderator" | "host" | "system";
export interface ChatMessage {
  id: string;
  /** The show's message number, strictly increasing: `chat_clear` names the last one it removes. */
  n: number;
  at: number;
  name: string;
  role: ChatRole;
  /** A pseudonym of the author, the same in all its messages; never the viewer id. */
  uid: string;
  text: string;
  kind: "text" | "claim";
}
export interface ChatSettings { slow_seconds: number; keyword: string }
export interface ChatHistoryFrame {
  type: "chat_history";
  messages: ChatMessage[];
  pinned: ChatMessage | null;
  settings: ChatSettings;
  /** drop id -> the claim code shown on its card ("A", "B", ... "AA"). */
  codes: Record<string, string>;
  you?: { name: string; role: ChatRole; uid: string } | null;
}
export interface ChatFrame { type: "chat"; messages: ChatMessage[] }
export interface ChatDeleteFrame { type: "chat_delete"; ids: string[] }
export interface ChatClearFrame { type: "chat_clear"; upto: number }
export interface ChatPinFrame { type: "chat_pin"; message: ChatMessage | null }
export interface ChatModeFrame { type: "chat_mode"; settings: ChatSettings; codes: Record<string, string> }
export interface ChatAckFrame { type: "chat_ack"; ref: string; id: string; status: "posted" | "held" | "duplicate" | "done" }
export interface ChatRejectedFrame {
  type: "chat_rejected";
  ref: string | null;
  code: string;
  message: string;
  retry_after?: number | null;
  until?: number | null;
}
export interface HeldMessage { id: string; at: number; name: string; uid: string; text: string; word: string }
export interface ChatHeldFrame { type: "chat_held"; added: HeldMessage[]; gone: string[] }
export type ChatModAction = "delete" | "clear" | "timeout" | "ban" | "unban" | "pin" | "unpin" | "slow" | "approve" | "reject";
export interface ChatModFields { message?: string; uid?: string; held?: string; seconds?: number; reason?: string }

export type ServerFrame =
  | WelcomeFrame
  | DropFrame
  | StockFrame
  | DropEndedFrame
  | ViewersFrame
  | ShowFrame
  | ShowEndedFrame
  | ReservedFrame
  | RejectedFrame
  | ReleasedFrame
  | HoldExpiredFrame
  | ConfirmedFrame
  | WaitlistedFrame
  | ErrorFrame
  | PongFrame
  | ChatHistoryFrame
  | ChatFrame
  | ChatDeleteFrame
  | ChatClearFrame
  | ChatPinFrame
  | ChatModeFrame
  | ChatAckFrame
  | ChatRejectedFrame
  | ChatHeldFrame;

// -- wire frames: viewer -> server -------------------------------------------------------------------

export interface HelloFrame { type: "hello"; resume_from?: number; epoch?: string }
export interface ReserveFrame { type: "reserve"; ref: string; drop: string; qty: number; variant?: string }
export interface ReleaseFrame { type: "release"; hold: string; ref: string }
export interface WaitlistFrame { type: "waitlist"; drop: string; qty: number; ref: string; variant?: string }
export interface PingFrame { type: "ping"; ref: string }
export interface ChatSendFrame { type: "chat_send"; ref: string; text: string }
export interface ChatModFrame extends ChatModFields { type: "chat_mod"; action: ChatModAction; ref: string }
export type RequestFrame = ReserveFrame | ReleaseFrame | WaitlistFrame | PingFrame | ChatSendFrame | ChatModFrame;
export type ClientFrame = HelloFrame | RequestFrame;

// -- snapshot -----------------------------------------------------------------------------------------

export interface Hold {
  hold: string;
  drop: string;
  qty: number;
  /** Epoch ms on the server's clock (0 when only a later push named the hold). */
  expiresAt: number;
  holdRef: string | undefined;
  /** The `reserved` frame's `checkout_url` (an http(s) link into the merchant's store that pays for
   *  this hold), or "" when there is none. The hold timer keeps running while the viewer is there. */
  checkoutUrl: string;
  fromWaitlist: boolean;
  state: "held" | "released" | "expired" | "confirmed";
  /** The variant held (a drop with variants only). */
  variant?: string;
}

export declare const SEQUENCED: ReadonlySet<string>;
export declare const Applied: Readonly<{ APPLIED: "applied"; DUPLICATE: "duplicate"; GAP: "gap"; OTHER: "other" }>;
export type AppliedResult = "applied" | "duplicate" | "gap" | "other";

/** The viewer's picture of the show, built from frames only. */
export declare class Snapshot {
  show: string | null;
  title: string;
  state: string;
  /** The last sequenced event applied. */
  seq: number | null;
  epoch: string | null;
  viewers: number;
  canReserve: boolean;
  drops: Map<string, Drop>;
  /** This viewer's holds by hold id; kept across resets (private answers are not replayed). */
  holds: Map<string, Hold>;
  stockTs: Map<string, number>;
  apply(frame: ServerFrame): AppliedResult;
  holdsOf(dropId: string): Hold[];
  /** A variant of a drop, or undefined. */
  variantOf(dropId: string, variantId: string): Variant | undefined;
}

/** Nothing on sale now: of a drop (a drop with variants: of every variant), or of one variant. */
export declare function isSoldOut(drop: Drop | undefined, variantId?: string): boolean;

// -- clock ---------------------------------------------------------------------------------------------

export declare class ServerClock {
  constructor(now?: () => number);
  offset: number;
  /** Round trip of the sample the offset comes from (Infinity before any). */
  rtt: number;
  synced: boolean;
  local: () => number;
  seed(serverTime: number, receivedAt?: number): void;
  sample(serverTime: number, sentAt: number, receivedAt?: number): void;
  restart(): void;
  now(): number;
  remainingMs(deadline: number | undefined): number;
}

export type Countdownable = number | Pick<Hold, "expiresAt"> | { expires_at: number } | { ends_at?: number | null };
/** The server epoch ms `target` counts down to; undefined when none, or when the hold or drop is over. */
export declare function deadlineOf(target: Countdownable | null | undefined): number | undefined;

// -- requests ------------------------------------------------------------------------------------------

export type RequestErrorKind = "rejected" | "error" | "timeout" | "closed";

export declare class RequestError extends Error {
  kind: RequestErrorKind;
  ref: string | undefined;
  request: RequestFrame | undefined;
  /** The answer frame (for `rejected` and `error`). */
  frame: RejectedFrame | ErrorFrame | undefined;
  /** Set when kind is `rejected`. */
  reason: RejectReason | undefined;
  /** Set when kind is `error`. */
  code: ErrorCode | undefined;
  readonly rateLimited: boolean;
}

export declare function newRef(prefix?: string): string;
export declare function checkRef(ref: unknown): string;

export interface PendingRequest {
  ref: string;
  frame: RequestFrame;
  sentAt: number | undefined;
  sends: number;
}

export declare class Requests {
  constructor(options?: { timeoutMs?: number; setTimeout?: TimerSet; clearTimeout?: TimerClear });
  timeoutMs: number;
  add<T extends ServerFrame>(frame: RequestFrame, timeoutMs?: number): { entry: PendingRequest; promise: Promise<T> };
  pending(): PendingRequest[];
  sent(entry: PendingRequest, at: number): void;
  answer(frame: ServerFrame): PendingRequest | undefined;
  failAll(kind?: RequestErrorKind, message?: string): void;
}

// -- the client ----------------------------------------------------------------------------------------

export type TimerSet = (fn: () => void, ms: number) => unknown;
export type TimerClear = (id: unknown) => void;

/** A WebSocket constructor: the browser's, Node 22's, or the `ws` package's. */
export interface WebSocketLike {
  readonly readyState: number;
  onopen: ((event: unknown) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
  onerror: ((event: unknown) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}
export type WebSocketConstructor = new (url: string, protocols?: string[]) => WebSocketLike;

/** A token, or a hook asked before every connection attempt ("" or null: watch without one). */
export type TokenSource = string | null | undefined | (() => string | null | undefined | Promise<string | null | undefined>);

export interface BackoffOptions {
  /** First delay's ceiling (ms); the delay is half fixed, half random. Default 500. */
  initialMs?: number;
  /** Cap (ms). Default 15000. */
  maxMs?: number;
  /** Growth per attempt. Default 2. */
  factor?: number;
}

export interface ClientOptions {
  token?: TokenSource;
  /** Needed where there is no global WebSocket (Node 20 without --experimental-websocket). */
  WebSocket?: WebSocketConstructor;
  backoff?: BackoffOptions;
  /** Default timeout of a request, across reconnects (ms). Default 10000; 0: none. */
  requestTimeoutMs?: number;
  /** Ping every so often to refine the server clock (ms). Default 30000; 0: only when you call ping(). */
  clockSyncMs?: number;
  /** Asks why a handshake failed (default: the global fetch). */
  fetch?: (url: string, init?: { headers?: Record<string, string>; cache?: string }) => Promise<{ status: number; json(): Promise<unknown> }>;
  /** Injectables, for tests. */
  random?: () => number;
  now?: () => number;
  setTimeout?: TimerSet;
  clearTimeout?: TimerClear;
}

export type ClientState = "idle" | "connecting" | "open" | "reconnecting" | "closed";

export type CloseMeaning =
  | "normal"
  | "going_away"
  | "network"
  | "bad_data"
  | "unauthorized"
  | "too_big"
  | "keepalive_timeout"
  | "restart"
  | "slow"
  | "unknown_show"
  | "token_expired"
  | "token_hook"
  | "unknown";

export interface CloseInfo {
  /** The WebSocket close code (0 when no socket could be made, or the token hook threw). */
  code: number;
  reason: string;
  meaning: CloseMeaning;
  willReconnect: boolean;
  /**
   * True when the connection never opened: the handshake failed. The client then asked the server
   * why over plain HTTP (a browser hides a refused handshake's status): `status` is what it
   * answered (401 a bad or expired token, 403 a token that does not open the show, 404 an unknown
   * show, 204 nothing against this connection, 0 could not ask), `problem` its problem body.
   */
  handshake?: boolean;
  status?: number;
  problem?: { type: string; title: string; status: number; detail?: string; code?: string } | null;
}

export declare const CloseCode: Readonly<{
  NORMAL: 1000;
  GOING_AWAY: 1001;
  ABNORMAL: 1006;
  BAD_DATA: 1007;
  POLICY: 1008;
  TOO_BIG: 1009;
  KEEPALIVE_TIMEOUT: 1011;
  RESTART: 1012;
  TRY_AGAIN: 1013;
  TOKEN_EXPIRED: 4401;
  UNKNOWN_SHOW: 4404;
}>;

export declare function closeMeaning(code: number): { meaning: CloseMeaning; reconnect: boolean };
export declare function backoffDelay(attempt: number, options?: BackoffOptions, random?: () => number): number;

export interface ClientEvents {
  welcome: WelcomeFrame;
  drop: DropFrame;
  stock: StockFrame;
  drop_ended: DropEndedFrame;
  viewers: ViewersFrame;
  show: ShowFrame;
  show_ended: ShowEndedFrame;
  reserved: ReservedFrame;
  rejected: RejectedFrame;
  released: ReleasedFrame;
  hold_expired: HoldExpiredFrame;
  confirmed: ConfirmedFrame;
  waitlisted: WaitlistedFrame;
  /** Every error frame, whether or not it answered one of this client's requests. */
  error: ErrorFrame;
  pong: PongFrame;
  chat_history: ChatHistoryFrame;
  chat: ChatFrame;
  chat_delete: ChatDeleteFrame;
  chat_clear: ChatClearFrame;
  chat_pin: ChatPinFrame;
  chat_mode: ChatModeFrame;
  chat_ack: ChatAckFrame;
  chat_rejected: ChatRejectedFrame;
  chat_held: ChatHeldFrame;
  /** The connection's state changed. */
  state: { state: ClientState; previous: ClientState };
  /** A connection closed (or could not be made); `willReconnect` says what happens next. */
  close: CloseInfo;
  /** A welcome with `reset: true`: events were missed and the snapshot was replaced. */
  reset: WelcomeFrame;
  /** The snapshot changed, because of this frame. */
  change: ServerFrame;
  /** A frame that is not JSON or has no type. */
  protocol_error: { message: string; data: unknown };
}

export interface RequestOptions {
  /** Your own ref (1-64 of A-Z a-z 0-9 _ . : -): to retry a request that timed out. */
  ref?: string;
  timeoutMs?: number;
  /** The variant to reserve or to wait for: required on a drop with variants. */
  variant?: string;
}

export declare class LiveDropClient {
  constructor(url: string | URL, options?: ClientOptions);
  readonly state: ClientState;
  readonly snapshot: Snapshot;
  readonly clock: ServerClock;
  readonly requests: Requests;
  /** The WebSocket URL (without resume parameters). */
  readonly url: string;
  start(): void;
  close(): void;
  reconnect(): void;
  setToken(token: TokenSource): void;
  connectUrl(resume?: boolean): string;
  reserve(drop: string, qty?: number, options?: RequestOptions): Promise<ReservedFrame>;
  release(hold: string | Pick<Hold, "hold">, options?: RequestOptions): Promise<ReleasedFrame>;
  waitlist(drop: string, qty?: number, options?: RequestOptions): Promise<WaitlistedFrame>;
  ping(options?: { timeoutMs?: number }): Promise<PongFrame>;
  /** Post a chat message; a claim (`SOLD A 2`) is also answered with `reserved`/`rejected`/`waitlisted`. */
  chat(text: string, options?: RequestOptions): Promise<ChatAckFrame>;
  /** A moderator's action (a token minted with role `moderator`). */
  moderate(action: ChatModAction, fields?: ChatModFields, options?: RequestOptions): Promise<ChatAckFrame>;
  serverNow(): number;
  remainingMs(target: Countdownable | null | undefined): number;
  countdown(target: Countdownable, onTick: (remainingMs: number) => void, options?: { intervalMs?: number }): () => void;
  on<K extends keyof ClientEvents>(type: K, listener: (payload: ClientEvents[K]) => void): () => void;
  off<K extends keyof ClientEvents>(type: K, listener: (payload: ClientEvents[K]) => void): void;
}

/** Open a client on `url` (ws(s)://host/ws/shows/<show>; http(s) or a path in a browser work too). */
export declare function connect(url: string | URL, options?: ClientOptions): LiveDropClient;
