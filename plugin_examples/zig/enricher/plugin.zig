//! The enricher: adds a trace id, the function id and configured fields to the data of an event about
//! to be invoked, and counts invocation outcomes. Config: {"fields": {str: str}} (optional).
const eg = @import("eventgateway");

var fields = eg.Value.missing; // the config's fields map, kept by the kit for the instance's life
var ok: i64 = 0;
var failed: i64 = 0;

pub fn subscriptions(s: *eg.Subscriptions) void {
    s.add("eventgateway.function.invoking", .sync);
    s.add("eventgateway.function.invoked", .async);
    s.add("eventgateway.function.invocationFailed", .async);
}

pub fn init(config: eg.Value) eg.Reaction {
    if (config.isNil()) return eg.continue_;
    if (config.kind() != .map) return eg.fail("enricher: invalid config: config must be a map");
    const f = config.get("fields");
    if (!f.found()) return eg.continue_;
    var valid = f.kind() == .map;
    var it = f.iterate();
    while (valid) {
        const entry = it.next() orelse break;
        valid = entry.key.asStr() != null and entry.value.asStr() != null;
    }
    if (!valid) return eg.fail("enricher: invalid config: fields must be a map of strings to strings");
    fields = f;
    return eg.continue_;
}

fn configured(key: []const u8) bool {
    return fields.get(key).found();
}

/// True when the data key is overwritten by traceId, functionId or a configured field.
fn replaced(key: eg.Value) bool {
    const name = key.asStr() orelse return false;
    return eg.eql(name, "traceId") or eg.eql(name, "functionId") or configured(name);
}

fn writeEnrichedData(data: eg.Value, trace_id: eg.Value, function_id: eg.Value) void {
    const own_trace = !configured("traceId");
    const own_function = !configured("functionId");
    var kept: u32 = 0;
    var it = data.iterate();
    while (it.next()) |entry| {
        if (!replaced(entry.key)) kept += 1;
    }
    eg.w.map(kept + @intFromBool(own_trace) + @intFromBool(own_function) + fields.len());
    it = data.iterate();
    while (it.next()) |entry| {
        if (replaced(entry.key)) continue;
        eg.w.value(entry.key);
        eg.w.value(entry.value);
    }
    if (own_trace) {
        eg.w.str("traceId");
        eg.w.value(trace_id);
    }
    if (own_function) {
        eg.w.str("functionId");
        eg.w.value(function_id);
    }
    it = fields.iterate();
    while (it.next()) |entry| {
        eg.w.value(entry.key);
        eg.w.value(entry.value);
    }
}

fn enrich(event: eg.Value) eg.Reaction {
    const system_data = eg.eventData(event);
    const ce = system_data.get("event");
    const data = eg.ceData(ce);
    if (data.kind() != .map) return eg.continue_;
    eg.rewriteBegin();
    eg.w.map(ce.len());
    var it = ce.iterate();
    while (it.next()) |entry| {
        eg.w.value(entry.key);
        const is_data = if (entry.key.asStr()) |name| eg.eql(name, "data") else false;
        if (is_data) {
            writeEnrichedData(data, eg.ceId(ce), system_data.get("functionId"));
        } else {
            eg.w.value(entry.value);
        }
    }
    return eg.rewriteEnd();
}

fn addCounts() void {
    eg.text.addInt(ok);
    eg.text.add(" ok, ");
    eg.text.addInt(failed);
    eg.text.add(" failed");
}

pub fn react(event: eg.Value) eg.Reaction {
    const event_type = event.getStr("type") orelse return eg.continue_;
    if (eg.eql(event_type, "eventgateway.function.invoking")) return enrich(event);
    const data = eg.eventData(event);
    if (eg.eql(event_type, "eventgateway.function.invoked")) {
        ok += 1;
        eg.text.begin();
        eg.text.add("function ");
        eg.text.add(data.getStr("functionId") orelse "");
        eg.text.add(" invoked: ");
        addCounts();
        eg.logAt(.info, eg.text.end());
    } else if (eg.eql(event_type, "eventgateway.function.invocationFailed")) {
        failed += 1;
        eg.text.begin();
        eg.text.add("function ");
        eg.text.add(data.getStr("functionId") orelse "");
        eg.text.add(" failed: ");
        eg.text.add(data.getStr("error") orelse "");
        eg.text.add("; ");
        addCounts();
        eg.logAt(.warn, eg.text.end());
    }
    return eg.continue_;
}

comptime {
    eg.plugin(@This());
}
