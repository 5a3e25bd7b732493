//! Event gateway plugin kit for Zig (wasm32-freestanding, no std allocator, no WASI).
//!
//! A plugin is a file with these declarations, ending with `comptime { eg.plugin(@This()); }`:
//!
//!     pub fn subscriptions(s: *eg.Subscriptions) void        // s.add("eventgateway.event.received", .sync)
//!     pub fn react(event: eg.Value) eg.Reaction               // the system event, read in place
//!     pub fn init(config: eg.Value) eg.Reaction               // optional: the plugin's config
//!
//! `eg.plugin` exports the ABI (memory, eventgateway_abi_v1, alloc, subscriptions, react, init). Values
//! are views into the input bytes: nothing is copied, and they stay valid until the plugin returns
//! (the config: for the instance's life).

extern "eventgateway" fn log(level: i32, ptr: [*]const u8, len: usize) void;
extern var __heap_base: u8;

// ---- memory: bump allocation; the scratch part is reset on the first alloc after a call returns ----
var heap_top: usize = 0;
var heap_keep: usize = 0;
var reset_pending = false;

fn ensure(limit: usize) bool {
    const have = @wasmMemorySize(0) * 65536;
    if (limit <= have) return true;
    return @wasmMemoryGrow(0, (limit - have + 65535) / 65536) != -1;
}

fn bump(size: usize) ?[*]u8 {
    if (heap_top == 0) {
        heap_top = @intFromPtr(&__heap_base);
        heap_keep = heap_top;
    }
    const p = (heap_top + 7) & ~@as(usize, 7);
    if (!ensure(p + size)) return null;
    heap_top = p + size;
    return @ptrFromInt(p);
}

fn allocExport(size: i32) callconv(.c) usize {
    if (reset_pending) {
        heap_top = heap_keep;
        reset_pending = false;
    }
    if (size < 0) return 0;
    const p = bump(@intCast(size)) orelse return 0;
    return @intFromPtr(p);
}

// ---- values ----
pub const Type = enum { missing, nil, bool, int, float, str, bin, array, map, ext };

/// A msgpack value read in place: `bytes` runs from its first byte to the end of its buffer.
pub const Value = struct {
    bytes: []const u8,

    pub const missing = Value{ .bytes = &.{} };

    const Header = struct { type: Type, head: usize, payload: usize, children: u64 };

    fn header(v: Value) Header {
        const none = Header{ .type = .missing, .head = 0, .payload = 0, .children = 0 };
        const p = v.bytes;
        if (p.len == 0) return none;
        const b = p[0];
        if (b <= 0x7f or b >= 0xe0) return .{ .type = .int, .head = 1, .payload = 0, .children = 0 };
        if (b & 0xf0 == 0x80) return .{ .type = .map, .head = 1, .payload = 0, .children = 2 * @as(u64, b & 15) };
        if (b & 0xf0 == 0x90) return .{ .type = .array, .head = 1, .payload = 0, .children = b & 15 };
        if (b & 0xe0 == 0xa0) return .{ .type = .str, .head = 1, .payload = b & 31, .children = 0 };
        // Lengths are read only by the markers that have them (after the bounds checks below): reading
        // all three up front for every value made copying an array of ints cost 1.6x as much.
        if ((b == 0xc4 or b == 0xc7 or b == 0xd9) and p.len < 2) return none;
        if ((b == 0xc5 or b == 0xc8 or b == 0xda or b == 0xdc or b == 0xde) and p.len < 3) return none;
        if ((b == 0xc6 or b == 0xc9 or b == 0xdb or b == 0xdd or b == 0xdf) and p.len < 5) return none;
        return switch (b) {
            0xc0 => .{ .type = .nil, .head = 1, .payload = 0, .children = 0 },
            0xc2, 0xc3 => .{ .type = .bool, .head = 1, .payload = 0, .children = 0 },
            0xc4 => .{ .type = .bin, .head = 2, .payload = p[1], .children = 0 },
            0xc5 => .{ .type = .bin, .head = 3, .payload = be(u16, p[1..3]), .children = 0 },
            0xc6 => .{ .type = .bin, .head = 5, .payload = be(u32, p[1..5]), .children = 0 },
            0xc7 => .{ .type = .ext, .head = 3, .payload = p[1], .children = 0 },
            0xc8 => .{ .type = .ext, .head = 4, .payload = be(u16, p[1..3]), .children = 0 },
            0xc9 => .{ .type = .ext, .head = 6, .payload = be(u32, p[1..5]), .children = 0 },
            0xca => .{ .type = .float, .head = 1, .payload = 4, .children = 0 },
            0xcb => .{ .type = .float, .head = 1, .payload = 8, .children = 0 },
            0xcc, 0xd0 => .{ .type = .int, .head = 1, .payload = 1, .children = 0 },
            0xcd, 0xd1 => .{ .type = .int, .head = 1, .payload = 2, .children = 0 },
            0xce, 0xd2 => .{ .type = .int, .head = 1, .payload = 4, .children = 0 },
            0xcf, 0xd3 => .{ .type = .int, .head = 1, .payload = 8, .children = 0 },
            0xd4 => .{ .type = .ext, .head = 2, .payload = 1, .children = 0 },
            0xd5 => .{ .type = .ext, .head = 2, .payload = 2, .children = 0 },
            0xd6 => .{ .type = .ext, .head = 2, .payload = 4, .children = 0 },
            0xd7 => .{ .type = .ext, .head = 2, .payload = 8, .children = 0 },
            0xd8 => .{ .type = .ext, .head = 2, .payload = 16, .children = 0 },
            0xd9 => .{ .type = .str, .head = 2, .payload = p[1], .children = 0 },
            0xda => .{ .type = .str, .head = 3, .payload = be(u16, p[1..3]), .children = 0 },
            0xdb => .{ .type = .str, .head = 5, .payload = be(u32, p[1..5]), .children = 0 },
            0xdc => .{ .type = .array, .head = 3, .payload = 0, .children = be(u16, p[1..3]) },
            0xdd => .{ .type = .array, .head = 5, .payload = 0, .children = be(u32, p[1..5]) },
            0xde => .{ .type = .map, .head = 3, .payload = 0, .children = 2 * @as(u64, be(u16, p[1..3])) },
            0xdf => .{ .type = .map, .head = 5, .payload = 0, .children = 2 * @as(u64, be(u32, p[1..5])) },
            else => none, // 0xc1 is never used
        };
    }

    fn checked(v: Value) ?Header {
        const h = v.header();
        if (h.type == .missing or v.bytes.len < h.head + h.payload) return null;
        return h;
    }

    pub fn kind(v: Value) Type {
        return if (v.checked()) |h| h.type else .missing;
    }
    pub fn found(v: Value) bool {
        return v.kind() != .missing;
    }
    pub fn isNil(v: Value) bool {
        return v.kind() == .nil;
    }

    /// The value right after this one in its buffer (missing at the end or on malformed input).
    pub fn skip(v: Value) Value {
        var rest = v.bytes;
        var todo: u64 = 1;
        while (todo > 0) {
            const h = (Value{ .bytes = rest }).checked() orelse return missing;
            todo = todo - 1 + h.children;
            rest = rest[h.head + h.payload ..];
            if (todo > rest.len) return missing; // every value takes at least a byte
        }
        return .{ .bytes = rest };
    }

    /// The encoded bytes of this value alone.
    pub fn encoded(v: Value) []const u8 {
        const after = v.skip();
        if (after.bytes.len == 0 and !v.found()) return &.{};
        return v.bytes[0 .. v.bytes.len - after.bytes.len];
    }

    pub fn asBool(v: Value) ?bool {
        return if (v.kind() == .bool) v.bytes[0] == 0xc3 else null;
    }

    /// Any integer that fits an i64 (a uint64 above maxInt(i64) gives null: use asUint).
    pub fn asInt(v: Value) ?i64 {
        if (v.kind() != .int) return null;
        const p = v.bytes;
        const b = p[0];
        if (b <= 0x7f) return b;
        if (b >= 0xe0) return @as(i8, @bitCast(b));
        return switch (b) {
            0xcc => p[1],
            0xcd => be(u16, p[1..3]),
            0xce => be(u32, p[1..5]),
            0xcf => if (be(u64, p[1..9]) > 0x7fffffffffffffff) null else @intCast(be(u64, p[1..9])),
            0xd0 => @as(i8, @bitCast(p[1])),
            0xd1 => @as(i16, @bitCast(be(u16, p[1..3]))),
            0xd2 => @as(i32, @bitCast(be(u32, p[1..5]))),
            else => @as(i64, @bitCast(be(u64, p[1..9]))),
        };
    }
    pub fn asUint(v: Value) ?u64 {
        if (v.kind() == .int and v.bytes[0] == 0xcf) return be(u64, v.bytes[1..9]);
        const i = v.asInt() orelse return null;
        return if (i < 0) null else @intCast(i);
    }
    pub fn isFloat32(v: Value) bool {
        return v.kind() == .float and v.bytes[0] == 0xca;
    }
    pub fn asFloat(v: Value) ?f64 {
        if (v.kind() != .float) return null;
        if (v.bytes[0] == 0xca) return @as(f32, @bitCast(be(u32, v.bytes[1..5])));
        return @bitCast(be(u64, v.bytes[1..9]));
    }
    fn payload(v: Value, t: Type) ?[]const u8 {
        const h = v.checked() orelse return null;
        if (h.type != t) return null;
        return v.bytes[h.head .. h.head + h.payload];
    }
    pub fn asStr(v: Value) ?[]const u8 {
        return v.payload(.str);
    }
    pub fn asBin(v: Value) ?[]const u8 {
        return v.payload(.bin);
    }
    pub const Ext = struct { type: i8, data: []const u8 };
    pub fn asExt(v: Value) ?Ext {
        const h = v.checked() orelse return null;
        if (h.type != .ext) return null;
        return .{ .type = @bitCast(v.bytes[h.head - 1]), .data = v.bytes[h.head .. h.head + h.payload] };
    }
    /// Entries of a map, items of an array, 0 otherwise.
    pub fn len(v: Value) u32 {
        const h = v.checked() orelse return 0;
        return switch (h.type) {
            .map => @intCast(h.children / 2),
            .array => @intCast(h.children),
            else => 0,
        };
    }
    /// Iterate a map's entries or an array's items (whose key is missing).
    pub fn iterate(v: Value) Iterator {
        const h = v.checked() orelse return .{ .next_value = missing, .left = 0, .is_map = false };
        if (h.type != .map and h.type != .array) return .{ .next_value = missing, .left = 0, .is_map = false };
        return .{
            .next_value = .{ .bytes = v.bytes[h.head..] },
            .left = if (h.type == .map) h.children / 2 else h.children,
            .is_map = h.type == .map,
        };
    }
    /// The value under a string key; missing when this is not a map or has no such key.
    pub fn get(v: Value, key: []const u8) Value {
        if (v.kind() != .map) return missing;
        var it = v.iterate();
        while (it.next()) |entry| {
            if (entry.key.asStr()) |k| if (eql(k, key)) return entry.value;
        }
        return missing;
    }
    pub fn getStr(v: Value, key: []const u8) ?[]const u8 {
        return v.get(key).asStr();
    }
    pub fn at(v: Value, index: u32) Value {
        if (v.kind() != .array) return missing;
        var it = v.iterate();
        var i: u32 = 0;
        while (it.next()) |entry| : (i += 1) if (i == index) return entry.value;
        return missing;
    }
};

pub const Entry = struct { key: Value, value: Value };

pub const Iterator = struct {
    next_value: Value,
    left: u64,
    is_map: bool,
    /// `next_value` is the value last returned, not yet skipped: it is skipped only when the next
    /// entry is asked for, so `get` of the last key never walks that key's value (eagerly, reading the
    /// type of an event whose data holds 100k items walked them twice and ran out of sync fuel).
    pending: bool = false,

    pub fn next(it: *Iterator) ?Entry {
        if (it.left == 0) return null;
        if (it.pending) {
            it.pending = false;
            it.next_value = it.next_value.skip();
        }
        it.left -= 1;
        var key = Value.missing;
        if (it.is_map) {
            key = it.next_value;
            it.next_value = it.next_value.skip();
        }
        const value = it.next_value;
        it.pending = true;
        if (!value.found()) it.left = 0;
        return .{ .key = key, .value = value };
    }
};

fn be(comptime T: type, bytes: []const u8) T {
    var r: T = 0;
    for (bytes[0..@sizeOf(T)]) |b| r = (r << 8) | b;
    return r;
}

pub fn eql(a: []const u8, b: []const u8) bool {
    if (a.len != b.len) return false;
    for (a, b) |x, y| if (x != y) return false;
    return true;
}

// ---- events ----
/// The system event's `data` map.
pub fn eventData(event: Value) Value {
    return event.get("data");
}
/// The user's event (data.event of event.received and function.* system events).
pub fn incoming(event: Value) Value {
    return eventData(event).get("event");
}
/// A CloudEvent's type: `type` (1.0), else `eventType` (0.1).
pub fn ceType(ce: Value) ?[]const u8 {
    return ce.getStr("type") orelse ce.getStr("eventType");
}
/// A CloudEvent's id value: `id` (1.0), else `eventID` (0.1).
pub fn ceId(ce: Value) Value {
    const id = ce.get("id");
    return if (id.found()) id else ce.get("eventID");
}
pub fn ceSource(ce: Value) ?[]const u8 {
    return ce.getStr("source");
}
pub fn ceData(ce: Value) Value {
    return ce.get("data");
}

// ---- msgpack writer (into the scratch heap) ----
pub const w = struct {
    var start: usize = 0;
    var pos: usize = 0;

    pub fn begin() void {
        start = @intFromPtr(bump(0) orelse unreachable);
        pos = start;
    }
    /// The bytes written since begin().
    pub fn endBytes() []const u8 {
        heap_top = pos;
        return @as([*]const u8, @ptrFromInt(start))[0 .. pos - start];
    }
    pub fn raw(data: []const u8) void {
        if (!ensure(pos + data.len)) @trap();
        const dst: [*]u8 = @ptrFromInt(pos);
        for (data, 0..) |b, i| dst[i] = b;
        pos += data.len;
    }
    fn byte(b: u8) void {
        raw(&[_]u8{b});
    }
    fn bigEndian(comptime T: type, v: T) void {
        var buf: [@sizeOf(T)]u8 = undefined;
        var x = v;
        var i: usize = @sizeOf(T);
        while (i > 0) {
            i -= 1;
            buf[i] = @truncate(x);
            x = if (@sizeOf(T) > 1) x >> 8 else 0;
        }
        raw(&buf);
    }
    pub fn nil() void {
        byte(0xc0);
    }
    pub fn boolean(b: bool) void {
        byte(if (b) 0xc3 else 0xc2);
    }
    pub fn uint(v: u64) void {
        if (v < 128) {
            byte(@intCast(v));
        } else if (v < 256) {
            byte(0xcc);
            byte(@intCast(v));
        } else if (v < 65536) {
            byte(0xcd);
            bigEndian(u16, @intCast(v));
        } else if (v < 4294967296) {
            byte(0xce);
            bigEndian(u32, @intCast(v));
        } else {
            byte(0xcf);
            bigEndian(u64, v);
        }
    }
    pub fn int(v: i64) void {
        if (v >= 0) return uint(@intCast(v));
        if (v >= -32) {
            byte(@bitCast(@as(i8, @intCast(v))));
        } else if (v >= -128) {
            byte(0xd0);
            byte(@bitCast(@as(i8, @intCast(v))));
        } else if (v >= -32768) {
            byte(0xd1);
            bigEndian(u16, @bitCast(@as(i16, @intCast(v))));
        } else if (v >= -2147483648) {
            byte(0xd2);
            bigEndian(u32, @bitCast(@as(i32, @intCast(v))));
        } else {
            byte(0xd3);
            bigEndian(u64, @bitCast(v));
        }
    }
    pub fn float(v: f64) void {
        byte(0xcb);
        bigEndian(u64, @bitCast(v));
    }
    pub fn float32(v: f32) void {
        byte(0xca);
        bigEndian(u32, @bitCast(v));
    }
    fn sized(n: usize, b8: u8, b16: u8, b32: u8) void {
        if (n < 256) {
            byte(b8);
            byte(@intCast(n));
        } else if (n < 65536) {
            byte(b16);
            bigEndian(u16, @intCast(n));
        } else {
            byte(b32);
            bigEndian(u32, @intCast(n));
        }
    }
    pub fn str(s: []const u8) void {
        if (s.len < 32) byte(0xa0 | @as(u8, @intCast(s.len))) else sized(s.len, 0xd9, 0xda, 0xdb);
        raw(s);
    }
    pub fn bin(data: []const u8) void {
        sized(data.len, 0xc4, 0xc5, 0xc6);
        raw(data);
    }
    pub fn ext(t: i8, data: []const u8) void {
        switch (data.len) {
            1 => byte(0xd4),
            2 => byte(0xd5),
            4 => byte(0xd6),
            8 => byte(0xd7),
            16 => byte(0xd8),
            else => sized(data.len, 0xc7, 0xc8, 0xc9),
        }
        byte(@bitCast(t));
        raw(data);
    }
    fn container(n: u32, fix: u8, b16: u8) void {
        if (n < 16) {
            byte(fix | @as(u8, @intCast(n)));
        } else if (n < 65536) {
            byte(b16);
            bigEndian(u16, @intCast(n));
        } else {
            byte(b16 + 1);
            bigEndian(u32, n);
        }
    }
    pub fn array(n: u32) void {
        container(n, 0x90, 0xdc);
    }
    pub fn map(n: u32) void {
        container(n, 0x80, 0xde);
    }
    /// Copy an encoded value unchanged (nil when it is missing).
    pub fn value(v: Value) void {
        if (v.found()) raw(v.encoded()) else nil();
    }
};

// ---- text (for log lines and messages; shares the scratch heap with the writer) ----
pub const text = struct {
    pub fn begin() void {
        w.begin();
    }
    pub fn add(s: []const u8) void {
        w.raw(s);
    }
    pub fn addInt(v: i64) void {
        var digits: [24]u8 = undefined;
        var n: usize = digits.len;
        var u: u64 = if (v < 0) @as(u64, 0) -% @as(u64, @bitCast(v)) else @intCast(v);
        while (true) {
            n -= 1;
            digits[n] = @intCast('0' + u % 10);
            u /= 10;
            if (u == 0) break;
        }
        if (v < 0) w.raw("-");
        w.raw(digits[n..]);
    }
    pub fn end() []const u8 {
        return w.endBytes();
    }
};

// ---- reactions ----
/// A packed (ptr << 32 | len) encoded reaction; `Reaction.continue_` (0) lets the event through.
pub const Reaction = u64;
pub const continue_: Reaction = 0;

fn pack(bytes: []const u8) Reaction {
    return (@as(u64, @intFromPtr(bytes.ptr)) << 32) | bytes.len;
}
/// Whatever has been written since w.begin(), as the reaction (raw ABI use).
pub fn written() Reaction {
    return pack(w.endBytes());
}
/// {"error": message, "status": status}: reject the event.
pub fn reject(message: []const u8, status: i64) Reaction {
    w.begin();
    w.map(2);
    w.str("error");
    w.str(message);
    w.str("status");
    w.int(status);
    return written();
}
/// {"error": message}: from init, this fails the plugin's load.
pub fn fail(message: []const u8) Reaction {
    w.begin();
    w.map(1);
    w.str("error");
    w.str(message);
    return written();
}
/// Start a rewrite: write the new event (one map) with `w`, then return rewriteEnd().
pub fn rewriteBegin() void {
    w.begin();
    w.map(1);
    w.str("event");
}
pub fn rewriteEnd() Reaction {
    return written();
}

// ---- logging ----
pub const Level = enum(i32) { debug = 0, info = 1, warn = 2, err = 3 };
pub fn logAt(level: Level, message: []const u8) void {
    log(@intFromEnum(level), message.ptr, message.len);
}

// ---- subscriptions ----
pub const Mode = enum { sync, async };
pub const Subscriptions = struct {
    pub fn add(_: *Subscriptions, event_type: []const u8, mode: Mode) void {
        subscription_count += 1;
        w.map(2);
        w.str("eventType");
        w.str(event_type);
        w.str("type");
        w.str(if (mode == .sync) "sync" else "async");
    }
};
var subscription_count: u32 = 0;

// ---- the exported glue ----
fn leave(r: Reaction) Reaction {
    reset_pending = true;
    return r;
}

fn markerExport() callconv(.c) void {}

/// Export the ABI around the plugin's declarations: `comptime { eg.plugin(@This()); }`.
pub fn plugin(comptime P: type) void {
    const glue = struct {
        fn subscriptionsExport() callconv(.c) u64 {
            // Entries are written first, then the array header is put in front of them.
            var s = Subscriptions{};
            subscription_count = 0;
            w.begin();
            P.subscriptions(&s);
            const entries = w.endBytes();
            w.begin();
            w.array(subscription_count);
            w.raw(entries);
            return leave(written());
        }
        fn initExport(ptr: [*]const u8, n: usize) callconv(.c) u64 {
            const r: Reaction = if (@hasDecl(P, "init")) P.init(.{ .bytes = ptr[0..n] }) else continue_;
            heap_keep = heap_top; // the config bytes stay readable for the instance's life
            return leave(r);
        }
        fn reactExport(ptr: [*]const u8, n: usize) callconv(.c) u64 {
            return leave(P.react(.{ .bytes = ptr[0..n] }));
        }
    };
    @export(&markerExport, .{ .name = "eventgateway_abi_v1" });
    @export(&allocExport, .{ .name = "alloc" });
    @export(&glue.subscriptionsExport, .{ .name = "subscriptions" });
    @export(&glue.initExport, .{ .name = "init" });
    @export(&glue.reactExport, .{ .name = "react" });
}

// ---- capabilities (ABI.md 7.1): kv, http, metrics ----
// Each wrapper calls imports of a capability the operator must grant (kv = true, http = [...],
// metrics = true). Zig compiles only what a plugin uses, so a plugin imports (and needs granted) only
// the capabilities whose wrappers it calls. Errors are `eg.Error` (ABI codes -2..-9; "not found" is a
// null instead); `eg.errorCode(err)` gives the ABI code back. Returned bytes live in scratch memory,
// like text and output: valid until the plugin returns (in init: for the instance's life). Do not call
// a wrapper between `w.begin()` / `text.begin()` and their end: they share the scratch memory.

const host = struct {
    extern "eventgateway" fn kv_get(key: [*]const u8, key_len: usize, buf: [*]u8, buf_len: usize) i32;
    extern "eventgateway" fn kv_set(key: [*]const u8, key_len: usize, value: [*]const u8, value_len: usize, ttl_ms: i64) i32;
    extern "eventgateway" fn kv_delete(key: [*]const u8, key_len: usize) i32;
    extern "eventgateway" fn kv_incr(key: [*]const u8, key_len: usize, delta: i64, ttl_ms: i64, out: *[8]u8) i32;
    extern "eventgateway" fn kv_cas(key: [*]const u8, key_len: usize, expected: [*]const u8, expected_len: u32, value: [*]const u8, value_len: usize, ttl_ms: i64) i32;
    extern "eventgateway" fn http_request(req: [*]const u8, req_len: usize) i32;
    extern "eventgateway" fn http_response(buf: [*]u8, buf_len: usize) i32;
    extern "eventgateway" fn metric(kind: i32, name: [*]const u8, name_len: usize, labels: [*]const u8, labels_len: usize, value: f64) i32;
};

/// The ABI's error codes as Zig errors (EG_NOT_FOUND is a null result where it can happen).
pub const Error = error{ Invalid, TooLarge, Quota, Unavailable, Denied, Timeout, NotANumber, NoFuel, Unknown };

/// The ABI code of an error (for messages such as "kv error -4").
pub fn errorCode(err: Error) i32 {
    return switch (err) {
        error.Invalid => -2,
        error.TooLarge => -3,
        error.Quota => -4,
        error.Unavailable => -5,
        error.Denied => -6,
        error.Timeout => -7,
        error.NotANumber => -8,
        error.NoFuel => -9,
        error.Unknown => -100,
    };
}

fn check(code: i32) Error!i32 {
    if (code >= 0) return code;
    return switch (code) {
        -2 => error.Invalid,
        -3 => error.TooLarge,
        -4 => error.Quota,
        -5 => error.Unavailable,
        -6 => error.Denied,
        -7 => error.Timeout,
        -8 => error.NotANumber,
        -9 => error.NoFuel,
        else => error.Unknown,
    };
}

const not_found: i32 = -1;

/// Calls `fill(buf)` with a scratch buffer of `guess` bytes; when the host answers a length over it
/// (nothing written), grows the buffer to that length and asks again. Only the bytes the host says it
/// wrote are handed out. null when the host answers EG_NOT_FOUND.
fn fillGrowing(comptime fill: anytype, args: anytype, guess: usize) Error!?[]const u8 {
    const mark = heapMark();
    var cap = guess;
    while (true) {
        const buf = bump(cap) orelse {
            heap_top = mark;
            return error.TooLarge; // the plugin's memory cannot hold it
        };
        const r = @call(.auto, fill, args ++ .{ buf, cap });
        if (r == not_found) {
            heap_top = mark;
            return null;
        }
        const n: usize = @intCast(check(r) catch |err| {
            heap_top = mark;
            return err;
        });
        if (n <= cap) {
            heap_top = @intFromPtr(buf) + n;
            return buf[0..n];
        }
        heap_top = mark; // the length grew: every round asks for more, up to the host's limit
        cap = n;
    }
}

fn heapMark() usize {
    if (heap_top == 0) {
        heap_top = @intFromPtr(&__heap_base);
        heap_keep = heap_top;
    }
    return heap_top;
}

/// kv: a namespace of the plugin's own (kv = true). TTLs in ms: 0 = never expires, else 1..31536000000.
pub const kv = struct {
    /// The first buffer kv.get offers the host; a longer value costs one more call.
    pub const first_guess: usize = 256;

    /// The value under key (in scratch memory), or null when absent.
    pub fn get(key: []const u8) Error!?[]const u8 {
        return fillGrowing(host.kv_get, .{ key.ptr, key.len }, first_guess);
    }
    pub fn set(key: []const u8, value: []const u8, ttl_ms: i64) Error!void {
        _ = try check(host.kv_set(key.ptr, key.len, value.ptr, value.len, ttl_ms));
    }
    /// Whether a key was there.
    pub fn delete(key: []const u8) Error!bool {
        return try check(host.kv_delete(key.ptr, key.len)) == 1;
    }
    /// Adds delta to the integer at key (absent = 0) and returns the new value; ttl_ms applies only
    /// when this call creates the key.
    pub fn incr(key: []const u8, delta: i64, ttl_ms: i64) Error!i64 {
        var out: [8]u8 = @splat(0);
        _ = try check(host.kv_incr(key.ptr, key.len, delta, ttl_ms, &out));
        var v: u64 = 0;
        var i: usize = 8;
        while (i > 0) {
            i -= 1;
            v = (v << 8) | out[i];
        }
        return @bitCast(v);
    }
    /// Replaces the value by `value` only if it equals `expected` (null: only if the key is absent);
    /// whether it swapped.
    pub fn cas(key: []const u8, expected: ?[]const u8, value: []const u8, ttl_ms: i64) Error!bool {
        const e = expected orelse "";
        const e_len: u32 = if (expected) |x| @intCast(x.len) else 0xFFFFFFFF;
        return try check(host.kv_cas(key.ptr, key.len, e.ptr, e_len, value.ptr, value.len, ttl_ms)) == 1;
    }
};

/// metrics: counters, gauges and histograms of the plugin's own (metrics = true). A name matches
/// [a-zA-Z_][a-zA-Z0-9_]* (at most 64 bytes); at most 8 labels.
pub const metrics = struct {
    pub const Label = struct { name: []const u8, value: []const u8 };
    pub const Kind = enum(i32) { counter_add = 0, gauge_set = 1, gauge_add = 2, histogram_observe = 3 };

    pub fn record(kind: Kind, name: []const u8, labels: []const Label, value: f64) Error!void {
        if (labels.len > 8) return error.Invalid; // the host takes at most 8
        if (labels.len == 0) {
            _ = try check(host.metric(@intFromEnum(kind), name.ptr, name.len, name.ptr, 0, value));
            return;
        }
        const mark = heapMark();
        defer heap_top = mark;
        w.begin();
        w.map(@intCast(labels.len));
        for (labels) |l| {
            w.str(l.name);
            w.str(l.value);
        }
        const encoded = w.endBytes();
        _ = try check(host.metric(@intFromEnum(kind), name.ptr, name.len, encoded.ptr, encoded.len, value));
    }
    pub fn counterAdd(name: []const u8, labels: []const Label, value: f64) Error!void {
        return record(.counter_add, name, labels, value);
    }
    pub fn gaugeSet(name: []const u8, labels: []const Label, value: f64) Error!void {
        return record(.gauge_set, name, labels, value);
    }
    pub fn gaugeAdd(name: []const u8, labels: []const Label, value: f64) Error!void {
        return record(.gauge_add, name, labels, value);
    }
    pub fn histogramObserve(name: []const u8, labels: []const Label, value: f64) Error!void {
        return record(.histogram_observe, name, labels, value);
    }
};

/// http: one request to a URL under the plugin's grants (http = [...]); any HTTP status is a success.
pub const http = struct {
    pub const Header = struct { name: []const u8, value: []const u8 };
    pub const Request = struct {
        method: []const u8 = "GET",
        url: []const u8,
        headers: []const Header = &.{},
        body: []const u8 = "",
        /// 0: no timeoutMs (the host's http_timeout, within the reaction's budget)
        timeout_ms: u32 = 0,
    };
    pub const Response = struct {
        status: i64,
        /// A map str -> str with canonical names; `header(name)` looks one up in any case.
        headers: Value,
        body: []const u8,

        pub fn header(r: Response, name: []const u8) ?[]const u8 {
            var it = r.headers.iterate();
            while (it.next()) |entry| {
                const k = entry.key.asStr() orelse continue;
                if (eqlIgnoreCase(k, name)) return entry.value.asStr();
            }
            return null;
        }
    };

    pub fn request(req: Request) Error!Response {
        const mark = heapMark();
        w.begin();
        const n: u32 = 2 + @as(u32, @intFromBool(req.headers.len > 0)) + @intFromBool(req.body.len > 0) +
            @intFromBool(req.timeout_ms > 0);
        w.map(n);
        w.str("url");
        w.str(req.url);
        w.str("method");
        w.str(req.method);
        if (req.headers.len > 0) {
            w.str("headers");
            w.map(@intCast(req.headers.len));
            for (req.headers) |h| {
                w.str(h.name);
                w.str(h.value);
            }
        }
        if (req.body.len > 0) {
            w.str("body");
            w.bin(req.body);
        }
        if (req.timeout_ms > 0) {
            w.str("timeoutMs");
            w.uint(req.timeout_ms);
        }
        const encoded = w.endBytes();
        const length = host.http_request(encoded.ptr, encoded.len);
        heap_top = mark;
        const size: usize = @intCast(try check(length));
        const bytes = (try fillGrowing(host.http_response, .{}, size)) orelse return error.Unknown;
        // The host's answer: {"status": int, "headers": {str: str}, "body": bin}, read with bounds checks.
        const answer = Value{ .bytes = bytes };
        const status = answer.get("status").asInt() orelse return error.Invalid;
        const headers = answer.get("headers");
        if (headers.kind() != .map) return error.Invalid;
        const body_value = answer.get("body");
        const body = body_value.asBin() orelse body_value.asStr() orelse
            if (body_value.found()) return error.Invalid else "";
        return .{ .status = status, .headers = headers, .body = body };
    }
};

/// ASCII case-insensitive comparison (header names).
pub fn eqlIgnoreCase(a: []const u8, b: []const u8) bool {
    if (a.len != b.len) return false;
    for (a, b) |x, y| if (lower(x) != lower(y)) return false;
    return true;
}
fn lower(c: u8) u8 {
    return if (c >= 'A' and c <= 'Z') c + 32 else c;
}
