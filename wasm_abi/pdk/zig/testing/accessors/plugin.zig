//! Test plugin for the Zig kit's typed event access (tests/pdk/test_zig_accessors.py): it answers every
//! event.received by rewriting the incoming event's data into a report of what the accessors read.
const eg = @import("eventgateway");
const w = eg.w;

pub fn subscriptions(s: *eg.Subscriptions) void {
    s.add("eventgateway.event.received", .sync);
}

fn strOrNil(s: ?[]const u8) void {
    if (s) |text| w.str(text) else w.nil();
}

fn writeReport(event: eg.Value, ce: eg.Value, data: eg.Value) void {
    const system_data = eg.eventData(event);
    w.map(20);
    w.str("systemType");
    strOrNil(event.getStr("type"));
    w.str("type");
    strOrNil(eg.ceType(ce));
    w.str("id");
    w.value(eg.ceId(ce));
    w.str("source");
    strOrNil(eg.ceSource(ce));
    w.str("path");
    strOrNil(system_data.getStr("path"));
    w.str("header");
    strOrNil(system_data.get("headers").getStr("x-probe"));
    w.str("countPlusOne");
    if (data.get("count").asInt()) |n| w.int(n + 1) else w.nil();
    w.str("ratioTimesTwo");
    if (data.get("ratio").asFloat()) |f| w.float(f * 2) else w.nil();
    w.str("notFlag");
    if (data.get("flag").asBool()) |b| w.boolean(!b) else w.nil();
    const blob = data.get("blob").asBin();
    w.str("blobLength");
    if (blob) |bytes| w.int(@intCast(bytes.len)) else w.nil();
    w.str("blob");
    if (blob) |bytes| w.bin(bytes) else w.nil();
    const tags = data.get("tags");
    w.str("tagCount");
    if (tags.kind() == .array) w.int(tags.len()) else w.nil();
    w.str("lastTag");
    w.value(tags.at(2));
    const user = data.get("user");
    w.str("userName");
    w.value(user.get("name"));
    w.str("firstRole");
    w.value(user.get("roles").at(0));
    w.str("nothingIsNil");
    w.boolean(data.get("nothing").isNil());
    const deeper = data.get("missing").get("deeper");
    w.str("missingIsNil");
    w.boolean(!deeper.found() or deeper.isNil());
    w.str("big");
    if (data.get("big").asUint()) |u| w.uint(u) else w.nil();
    w.str("negative");
    if (data.get("negative").asInt()) |n| w.int(n) else w.nil();
    w.str("countAsString");
    w.boolean(data.get("count").asStr() == null);
}

pub fn react(event: eg.Value) eg.Reaction {
    const ce = eg.incoming(event);
    const data = eg.ceData(ce);
    eg.rewriteBegin();
    w.map(ce.len());
    var it = ce.iterate();
    while (it.next()) |entry| {
        w.value(entry.key);
        const is_data = if (entry.key.asStr()) |name| eg.eql(name, "data") else false;
        if (is_data) writeReport(event, ce, data) else w.value(entry.value);
    }
    return eg.rewriteEnd();
}

comptime {
    eg.plugin(@This());
}
