//! A fixed-window rate limiter on the gateway's shared kv (capability kv): the (limit+1)-th event of a
//! key within windowSeconds is rejected with 429.
//!
//! Config: {"limit": N, "windowSeconds": S, "keyBy": "source" | "type" | "header:<Name>",
//! "onError": "open" | "closed"} (keyBy defaults to "source", onError to "open"). The key's value is the
//! incoming event's source or type, or a request header (name matched in any case); a missing one counts
//! as "". The counter lives at kv key "rl:<value>" ("rl#<FNV-1a 64 in hex>" past 200 bytes), created by
//! eg.kv.incr with the window as its TTL. A kv error lets the event through with a warning (onError
//! open) or rejects it with 503 (closed).
const eg = @import("eventgateway");

const max_window_seconds = 31536000;
const max_plain_key = 200;
const max_quoted = 100;

const By = enum { source, type, header };
var limit: i64 = 0;
var window_seconds: i64 = 0;
var key_by: []const u8 = "source"; // into the config bytes (kept for the instance's life)
var header_name: []const u8 = "";
var by: By = .source;
var fail_closed = false;

pub fn subscriptions(s: *eg.Subscriptions) void {
    s.add("eventgateway.event.received", .sync);
}

fn invalid(what: []const u8) eg.Reaction {
    eg.text.begin();
    eg.text.add("ratelimit: invalid config: ");
    eg.text.add(what);
    return eg.fail(eg.text.end());
}

fn positiveInt(config: eg.Value, field: []const u8, max: i64) ?i64 {
    const n = config.get(field).asInt() orelse return null;
    return if (n >= 1 and n <= max) n else null;
}

pub fn init(config: eg.Value) eg.Reaction {
    if (!config.get("limit").found()) return invalid("limit is required (a positive integer)");
    limit = positiveInt(config, "limit", 0x7fffffffffffffff) orelse return invalid("limit must be a positive integer");
    if (!config.get("windowSeconds").found()) return invalid("windowSeconds is required (an integer from 1 to 31536000)");
    window_seconds = positiveInt(config, "windowSeconds", max_window_seconds) orelse
        return invalid("windowSeconds must be an integer from 1 to 31536000");
    const kb = config.get("keyBy");
    if (kb.found() and !kb.isNil()) {
        key_by = kb.asStr() orelse return invalid("keyBy must be a string");
        if (eg.eql(key_by, "source")) {
            by = .source;
        } else if (eg.eql(key_by, "type")) {
            by = .type;
        } else if (key_by.len > 7 and eg.eql(key_by[0..7], "header:")) {
            by = .header;
            header_name = key_by[7..];
        } else return invalid("keyBy must be \"source\", \"type\" or \"header:<Name>\"");
    }
    const on_error = config.get("onError");
    if (on_error.found() and !on_error.isNil()) {
        const s = on_error.asStr() orelse "";
        if (!eg.eql(s, "open") and !eg.eql(s, "closed")) return invalid("onError must be \"open\" or \"closed\"");
        fail_closed = eg.eql(s, "closed");
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

fn fnv1a64(bytes: []const u8) u64 {
    var h: u64 = 0xcbf29ce484222325;
    for (bytes) |b| h = (h ^ b) *% 0x100000001b3;
    return h;
}

pub fn react(event: eg.Value) eg.Reaction {
    const incoming = eg.incoming(event);
    const value: []const u8 = switch (by) {
        .source => eg.ceSource(incoming),
        .type => eg.ceType(incoming),
        .header => requestHeader(event, header_name),
    } orelse "";

    var key_buf: [3 + max_plain_key]u8 = undefined;
    var key: []const u8 = undefined;
    if (value.len <= max_plain_key) {
        @memcpy(key_buf[0..3], "rl:");
        @memcpy(key_buf[3 .. 3 + value.len], value);
        key = key_buf[0 .. 3 + value.len];
    } else {
        const hex = "0123456789abcdef";
        const h = fnv1a64(value);
        @memcpy(key_buf[0..3], "rl#");
        for (0..16) |i| key_buf[3 + i] = hex[@intCast((h >> @intCast(60 - 4 * i)) & 15)];
        key = key_buf[0..19];
    }

    const count = eg.kv.incr(key, 1, window_seconds * 1000) catch |err| {
        eg.text.begin();
        if (fail_closed) {
            eg.text.add("rate limiter unavailable: kv error ");
            eg.text.addInt(eg.errorCode(err));
            return eg.reject(eg.text.end(), 503);
        }
        eg.text.add("ratelimit: kv error ");
        eg.text.addInt(eg.errorCode(err));
        eg.text.add(" (");
        eg.text.add(@errorName(err));
        eg.text.add("); letting the event through");
        eg.logAt(.warn, eg.text.end());
        return eg.continue_;
    };
    if (count <= limit) return eg.continue_;
    var quoted = value.len;
    if (quoted > max_quoted) {
        quoted = max_quoted;
        while (quoted > 0 and value[quoted] & 0xc0 == 0x80) quoted -= 1; // a whole UTF-8 character
    }
    eg.text.begin();
    eg.text.add("rate limit exceeded for ");
    eg.text.add(key_by);
    eg.text.add(" \"");
    eg.text.add(value[0..quoted]);
    eg.text.add("\": ");
    eg.text.addInt(limit);
    eg.text.add(" events per ");
    eg.text.addInt(window_seconds);
    eg.text.add(" s");
    return eg.reject(eg.text.end(), 429);
}

comptime {
    eg.plugin(@This());
}
