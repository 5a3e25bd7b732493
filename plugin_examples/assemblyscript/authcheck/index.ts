// Ask a token service whether an event may pass (capability http, and kv for the cache: the module
// imports both, so it needs both granted even with cacheSeconds 0).
//
// Config: {"url": "<token service>", "header": "Authorization", "cacheSeconds": N} (header defaults to
// "Authorization", cacheSeconds to 0: no cache). The header is read from the request's headers in the
// system event (data.headers, name matched in any case; the plugin needs sensitiveHeaders to see
// Authorization). Missing: 401. Otherwise the plugin POSTs to url with the same header and an empty
// body: a 2xx answer lets the event through, anything else (or a call error) rejects it with 401. With
// cacheSeconds > 0, an allow is cached in kv at auth:<FNV-1a 64 of the value, hex> holding the whole
// header value; a cache hit counts only when that stored value equals the presented one.
import { Event, http, kv, Plugin, Reaction, register, Subscription, Value } from "./pdk";
export * from "./pdk/exports";

const MAX_CACHE_SECONDS: i64 = 31536000;

function invalid(what: string): string {
  return "authcheck: invalid config: " + what;
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

function sameBytes(a: Uint8Array, b: Uint8Array): bool {
  if (a.length != b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] != b[i]) return false;
  return true;
}

class AuthCheck extends Plugin {
  url: string = "";
  headerName: string = "Authorization";
  cacheSeconds: i64 = 0;

  subscriptions(): Subscription[] {
    return [Subscription.sync("eventgateway.event.received")];
  }

  init(config: Value): string {
    const url = config.get("url");
    if (url.isNil()) return invalid("url is required");
    if (!url.isString() || url.asString().length == 0) return invalid("url must be a non-empty string");
    this.url = url.asString();
    this.headerName = "Authorization";
    const name = config.get("header");
    if (!name.isNil()) {
      if (!name.isString() || name.asString().length == 0) return invalid("header must be a non-empty string");
      this.headerName = name.asString();
    }
    this.cacheSeconds = 0;
    const cache = config.get("cacheSeconds");
    if (!cache.isNil()) {
      if (!cache.isInt() || cache.asInt() < 0 || cache.asInt() > MAX_CACHE_SECONDS) {
        return invalid("cacheSeconds must be an integer from 0 to 31536000");
      }
      this.cacheSeconds = cache.asInt();
    }
    return "";
  }

  react(event: Event): Reaction {
    // The header, its name matched in any case.
    const wanted = this.headerName.toLowerCase();
    const entries = event.data.get("headers").asEntries();
    let found = false;
    let presented = "";
    for (let i = 0; i < entries.length; i++) {
      if (entries[i].key.isString() && entries[i].value.isString() && entries[i].key.asString().toLowerCase() == wanted) {
        found = true;
        presented = entries[i].value.asString();
        break;
      }
    }
    if (!found) return Reaction.reject("missing " + this.headerName + " header", 401);
    const utf8 = Uint8Array.wrap(String.UTF8.encode(presented));
    const cacheKey = "auth:" + fnv1a64Hex(utf8);
    if (this.cacheSeconds > 0) {
      // A kv error is a miss: the token service decides.
      const stored = kv.get(cacheKey);
      if (stored.ok) {
        const value = stored.value;
        if (value !== null && sameBytes(value, utf8)) return Reaction.continue();
      }
    }
    const answer = http.request(new http.Request("POST", this.url).header(this.headerName, presented));
    if (!answer.ok) {
      return Reaction.reject("unauthorized: token service error " + (<i32>answer.error).toString(), 401);
    }
    if (!answer.value!.isSuccess) return Reaction.reject("unauthorized", 401);
    if (this.cacheSeconds > 0) {
      // Best effort: a failed write only costs a call next time.
      kv.set(cacheKey, utf8, this.cacheSeconds * 1000);
    }
    return Reaction.continue();
  }
}

register(new AuthCheck());
