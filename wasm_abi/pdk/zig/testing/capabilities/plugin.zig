//! Test plugin for the Zig kit's capability wrappers: runs the ops of the incoming event's data through
//! eg.kv, eg.metrics and eg.http, then rewrites the event's data into {"results": [...]}. The contract
//! is the docstring of tests/pdk/test_kit_capabilities.py.
const eg = @import("eventgateway");

pub fn subscriptions(s: *eg.Subscriptions) void {
    s.add("eventgateway.event.received", .sync);
}

const max_ops = 64;
const Kind = enum { code, value, deleted, number, swapped, http };
const Result = struct {
    kind: Kind = .code,
    code: i32 = 0,
    bytes: []const u8 = "",
    number: i64 = 0,
    flag: bool = false,
    response: eg.http.Response = undefined,
};
// The wrappers use the scratch heap, and so does the writer: every op runs first, the report after.
var results: [max_ops]Result = undefined;

fn bytesOf(v: eg.Value) []const u8 {
    return v.asBin() orelse "";
}

fn code(err: eg.Error) i32 {
    return eg.errorCode(err);
}

fn run(op: eg.Value) Result {
    const name = op.getStr("op") orelse "";
    const key = bytesOf(op.get("key"));
    const value = bytesOf(op.get("value"));
    const ttl = op.get("ttlMs").asInt() orelse 0;
    if (eg.eql(name, "get")) {
        const got = eg.kv.get(key) catch |err| return .{ .code = code(err) };
        const bytes = got orelse return .{ .code = -1 };
        return .{ .kind = .value, .bytes = bytes };
    } else if (eg.eql(name, "set")) {
        eg.kv.set(key, value, ttl) catch |err| return .{ .code = code(err) };
        return .{};
    } else if (eg.eql(name, "delete")) {
        const deleted = eg.kv.delete(key) catch |err| return .{ .code = code(err) };
        return .{ .kind = .deleted, .flag = deleted };
    } else if (eg.eql(name, "incr")) {
        const n = eg.kv.incr(key, op.get("delta").asInt() orelse 0, ttl) catch |err| return .{ .code = code(err) };
        return .{ .kind = .number, .number = n };
    } else if (eg.eql(name, "cas")) {
        const e = op.get("expected");
        const expected: ?[]const u8 = if (!e.found() or e.isNil()) null else bytesOf(e);
        const swapped = eg.kv.cas(key, expected, value, ttl) catch |err| return .{ .code = code(err) };
        return .{ .kind = .swapped, .flag = swapped };
    } else if (eg.eql(name, "metric")) {
        var labels: [16]eg.metrics.Label = undefined;
        var n: usize = 0;
        var it = op.get("labels").iterate();
        while (it.next()) |entry| {
            if (n == labels.len) break;
            labels[n] = .{ .name = entry.key.asStr() orelse "", .value = entry.value.asStr() orelse "" };
            n += 1;
        }
        const kind = op.getStr("kind") orelse "";
        const metric = op.getStr("name") orelse "";
        const amount = op.get("value").asFloat() orelse 0;
        const done = if (eg.eql(kind, "counter"))
            eg.metrics.counterAdd(metric, labels[0..n], amount)
        else if (eg.eql(kind, "gaugeSet"))
            eg.metrics.gaugeSet(metric, labels[0..n], amount)
        else if (eg.eql(kind, "gaugeAdd"))
            eg.metrics.gaugeAdd(metric, labels[0..n], amount)
        else if (eg.eql(kind, "histogram"))
            eg.metrics.histogramObserve(metric, labels[0..n], amount)
        else
            error.Invalid;
        done catch |err| return .{ .code = code(err) };
        return .{};
    } else if (eg.eql(name, "http")) {
        const H = struct {
            var headers: [32]eg.http.Header = undefined;
        };
        var n: usize = 0;
        var it = op.get("headers").iterate();
        while (it.next()) |entry| {
            if (n == H.headers.len) break;
            H.headers[n] = .{ .name = entry.key.asStr() orelse "", .value = entry.value.asStr() orelse "" };
            n += 1;
        }
        const response = eg.http.request(.{
            .url = op.getStr("url") orelse "",
            .method = op.getStr("method") orelse "GET",
            .headers = H.headers[0..n],
            .body = bytesOf(op.get("body")),
            .timeout_ms = @intCast(op.get("timeoutMs").asInt() orelse 0),
        }) catch |err| return .{ .code = code(err) };
        return .{ .kind = .http, .response = response };
    }
    return .{ .code = -2 };
}

pub fn react(event: eg.Value) eg.Reaction {
    const incoming = eg.incoming(event);
    const ops = eg.ceData(incoming).get("ops");
    if (ops.kind() != .array) return eg.continue_;
    var n: u32 = 0;
    var ops_it = ops.iterate();
    while (ops_it.next()) |entry| {
        if (n == max_ops) break;
        results[n] = run(entry.value);
        n += 1;
    }

    eg.rewriteBegin();
    eg.w.map(incoming.len());
    var it = incoming.iterate();
    while (it.next()) |field| {
        eg.w.value(field.key);
        if (!eg.eql(field.key.asStr() orelse "", "data")) {
            eg.w.value(field.value);
            continue;
        }
        eg.w.map(1);
        eg.w.str("results");
        eg.w.array(n);
        for (results[0..n]) |r| {
            const kind: Kind = if (r.code == 0) r.kind else .code;
            eg.w.map(switch (kind) {
                .code => 1,
                .http => 4,
                else => 2,
            });
            eg.w.str("code");
            eg.w.int(r.code);
            switch (kind) {
                .code => {},
                .value => {
                    eg.w.str("value");
                    eg.w.bin(r.bytes);
                },
                .deleted => {
                    eg.w.str("deleted");
                    eg.w.boolean(r.flag);
                },
                .number => {
                    eg.w.str("value");
                    eg.w.int(r.number);
                },
                .swapped => {
                    eg.w.str("swapped");
                    eg.w.boolean(r.flag);
                },
                .http => {
                    eg.w.str("status");
                    eg.w.int(r.response.status);
                    eg.w.str("headers");
                    eg.w.value(r.response.headers);
                    eg.w.str("body");
                    eg.w.bin(r.response.body);
                },
            }
        }
    }
    return eg.rewriteEnd();
}

comptime {
    eg.plugin(@This());
}
