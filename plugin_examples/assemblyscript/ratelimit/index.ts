// A fixed-window rate limiter on the gateway's shared kv (capability kv): the (limit+1)-th event of a
// key within windowSeconds is rejected with 429.
//
// Config: {"limit": N, "windowSeconds": S, "keyBy": "source" | "type" | "header:<Name>",
// "onError": "open" | "closed"} (keyBy defaults to "source", onError to "open"). The key's value is the
// incoming event's source or type, or a request header (name matched in any case); a missing one counts
// as "". The counter lives at kv key rl:<value> (rl#<FNV-1a 64 in hex> past 200 bytes, counted in UTF-8
// bytes), created by kv incr with the window as its TTL. A kv error lets the event through with a
// warning (onError open) or rejects it with 503 (closed).
import { Event, kv, Plugin, Reaction, register, Subscription, Value, warn } from "./pdk";
export * from "./pdk/exports";

/** The longest TTL the host accepts (a year), in seconds. */
const MAX_WINDOW_SECONDS: i64 = 31536000;
/** Longer key values (in UTF-8 bytes) are hashed into the kv key. */
const MAX_PLAIN_KEY: i32 = 200;
/** How much of the key value (in UTF-8 bytes) a rejection message quotes. */
const MAX_QUOTED: i32 = 100;

const KEY_SOURCE = 0;
const KEY_TYPE = 1;
const KEY_HEADER = 2;

function invalid(what: string): string {
  return "ratelimit: invalid config: " + what;
}

/** FNV-1a 64 of the bytes, as 16 lowercase hex digits. */
function fnv1a64Hex(bytes: Uint8Array): string {
  let hash: u64 = 0xcbf29ce484222325;
  for (let i = 0; i < bytes.length; i++) {
    hash ^= <u64>bytes[i];
    hash *= 0x100000001b3;
  }
  let hex = "";
  for (let shift = 60; shift >= 0; shift -= 4) {
    hex += "0123456789abcdef".charAt(<i32>((hash >> (<u64>shift)) & 0xf));
  }
  return hex;
}

/** The longest prefix of `utf8` of at most `max` bytes that ends on a character boundary, as a string. */
function cut(utf8: Uint8Array, max: i32): string {
  let end = utf8.length;
  if (end > max) {
    end = max;
    while (end > 0 && (utf8[end] & 0xc0) == 0x80) end--;
  }
  return String.UTF8.decodeUnsafe(utf8.dataStart, <usize>end);
}

/** A request header of the system event (the first string under a name matching in any case; "" when absent). */
function header(event: Event, name: string): string {
  const wanted = name.toLowerCase();
  const entries = event.data.get("headers").asEntries();
  for (let i = 0; i < entries.length; i++) {
    if (entries[i].key.isString() && entries[i].value.isString() && entries[i].key.asString().toLowerCase() == wanted) {
      return entries[i].value.asString();
    }
  }
  return "";
}

class RateLimit extends Plugin {
  limit: i64 = 0;
  windowSeconds: i64 = 0;
  keyBy: i32 = KEY_SOURCE;
  headerName: string = "";
  /** The configured keyBy, as the rejection message names it. */
  keyByText: string = "source";
  failClosed: bool = false;

  subscriptions(): Subscription[] {
    return [Subscription.sync("eventgateway.event.received")];
  }

  init(config: Value): string {
    const limit = config.get("limit");
    if (limit.isNil()) return invalid("limit is required (a positive integer)");
    if (!limit.isInt() || limit.asInt() < 1) return invalid("limit must be a positive integer");
    this.limit = limit.asInt();
    const window = config.get("windowSeconds");
    if (window.isNil()) return invalid("windowSeconds is required (an integer from 1 to 31536000)");
    if (!window.isInt() || window.asInt() < 1 || window.asInt() > MAX_WINDOW_SECONDS) {
      return invalid("windowSeconds must be an integer from 1 to 31536000");
    }
    this.windowSeconds = window.asInt();
    this.keyByText = "source";
    const keyBy = config.get("keyBy");
    if (!keyBy.isNil()) {
      if (!keyBy.isString()) return invalid("keyBy must be a string, got " + keyBy.typeName);
      this.keyByText = keyBy.asString();
    }
    if (this.keyByText == "source") {
      this.keyBy = KEY_SOURCE;
    } else if (this.keyByText == "type") {
      this.keyBy = KEY_TYPE;
    } else if (this.keyByText.startsWith("header:") && this.keyByText.length > 7) {
      this.keyBy = KEY_HEADER;
      this.headerName = this.keyByText.substring(7);
    } else {
      return invalid('keyBy must be "source", "type" or "header:<Name>", got "' + this.keyByText + '"');
    }
    this.failClosed = false;
    const onError = config.get("onError");
    if (!onError.isNil()) {
      if (onError.isString() && onError.asString() == "closed") this.failClosed = true;
      else if (!(onError.isString() && onError.asString() == "open")) return invalid('onError must be "open" or "closed"');
    }
    return "";
  }

  react(event: Event): Reaction {
    let value: string;
    if (this.keyBy == KEY_SOURCE) value = event.incoming().source;
    else if (this.keyBy == KEY_TYPE) value = event.incoming().type;
    else value = header(event, this.headerName);
    const utf8 = Uint8Array.wrap(String.UTF8.encode(value));
    const key = utf8.length <= MAX_PLAIN_KEY ? "rl:" + value : "rl#" + fnv1a64Hex(utf8);
    const count = kv.incr(key, 1, this.windowSeconds * 1000);
    if (!count.ok) {
      const code = (<i32>count.error).toString();
      if (this.failClosed) return Reaction.reject("rate limiter unavailable: kv error " + code, 503);
      warn("ratelimit: kv error " + code + " (" + count.errorName + "); letting the event through");
      return Reaction.continue();
    }
    if (count.value > this.limit) {
      return Reaction.reject(
        "rate limit exceeded for " + this.keyByText + ' "' + cut(utf8, MAX_QUOTED) + '": ' +
          this.limit.toString() + " events per " + this.windowSeconds.toString() + " s",
        429,
      );
    }
    return Reaction.continue();
  }
}

register(new RateLimit());
