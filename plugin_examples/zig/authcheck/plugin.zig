//! Checks each event's credentials with a token service (capability http), caching allows in kv
//! (capability kv) when cacheSeconds > 0.
//!
//! Config: {"url": "<token service>", "header": "Authorization", "cacheSeconds": N} (header defaults to
//! "Authorization", cacheSeconds to 0: no cache; url is required). The header is read from the system
//! event's data.headers (name matched in any case); without it the event is rejected with 401. With it,
//! the plugin POSTs to url with the same header (same name, same value) and an empty body: a 2xx answer
//! lets the event through, anything else (or an error) rejects it with 401. An allow is cached at kv key
//! "auth:<FNV-1a 64 of the value in hex>" holding the whole value, and a cache hit counts only when the
//! stored value equals the presented one byte for byte (a hash collision is a miss, never a bypass).
//! The gateway shows a plugin the Authorization header only with sensitiveHeaders = ["Authorization"].
const eg = @import("eventgateway");

const max_cache_seconds = 31536000;

var url: []const u8 = "";
var header: []const u8 = "Authorization";
var cache_seconds: i64 = 0;

pub fn subscriptions(s: *eg.Subscriptions) void {
    s.add("eventgateway.event.received", .sync);
}

fn invalid(what: []const u8) eg.Reaction {
    eg.text.begin();
    eg.text.add("authcheck: invalid config: ");
    eg.text.add(what);
    return eg.fail(eg.text.end());
}

pub fn init(config: eg.Value) eg.Reaction {
    if (!config.get("url").found()) return invalid("url is required (the token service's URL)");
    url = config.getStr("url") orelse "";
    if (url.len == 0) return invalid("url must be a non-empty string");
    const h = config.get("header");
    if (h.found() and !h.isNil()) {
        header = h.asStr() orelse "";
        if (header.len == 0) return invalid("header must be a non-empty string");
    }
    const c = config.get("cacheSeconds");
    if (c.found() and !c.isNil()) {
        cache_seconds = c.asInt() orelse -1;
        if (cache_seconds < 0 or cache_seconds > max_cache_seconds)
            return invalid("cacheSeconds must be an integer from 0 to 31536000");
    }
    return eg.continue_;
}

/// A request header of the system event (data.headers), its name matched in any case.
fn requestHeader(event: eg.Value, name: []const u8) ?[]const u8 {
    var it = eg.eventData(event).get("headers").iterate();
    while (it.next()) |entry| {
        const k = entry.key.asStr() orelse continue;
        if (eg.eqlIgnoreCase(k, name)) return entry.value.asStr();
    }
    return null;
}

pub fn react(event: eg.Value) eg.Reaction {
    const value = requestHeader(event, header) orelse {
        eg.text.begin();
        eg.text.add("missing ");
        eg.text.add(header);
        eg.text.add(" header");
        return eg.reject(eg.text.end(), 401);
    };

    var key: [5 + 16]u8 = undefined;
    if (cache_seconds > 0) {
        const hex = "0123456789abcdef";
        var h: u64 = 0xcbf29ce484222325;
        for (value) |b| h = (h ^ b) *% 0x100000001b3;
        @memcpy(key[0..5], "auth:");
        for (0..16) |i| key[5 + i] = hex[@intCast((h >> @intCast(60 - 4 * i)) & 15)];
        // a kv error is a miss: the token service decides
        if (eg.kv.get(&key) catch null) |cached| {
            if (eg.eql(cached, value)) return eg.continue_;
        }
    }

    const response = eg.http.request(.{
        .method = "POST",
        .url = url,
        .headers = &.{.{ .name = header, .value = value }},
    }) catch |err| {
        eg.text.begin();
        eg.text.add("unauthorized: token service error ");
        eg.text.addInt(eg.errorCode(err));
        return eg.reject(eg.text.end(), 401);
    };
    if (response.status < 200 or response.status > 299) return eg.reject("unauthorized", 401);
    if (cache_seconds > 0) eg.kv.set(&key, value, cache_seconds * 1000) catch {};
    return eg.continue_;
}

comptime {
    eg.plugin(@This());
}
