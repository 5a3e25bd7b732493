//! The guard: rejects events whose type or a data field matches the rules of its init config.
//! Config: {"denyTypes": [str...], "denyData": {field: str...}, "status": 400..599 (default 403)}.
const eg = @import("eventgateway");

// The rules point into the config bytes, which the kit keeps for the instance's life.
var deny_types = eg.Value.missing;
var deny_data = eg.Value.missing;
var status: i64 = 403;

pub fn subscriptions(s: *eg.Subscriptions) void {
    s.add("eventgateway.event.received", .sync);
}

fn invalid(what: []const u8) eg.Reaction {
    eg.text.begin();
    eg.text.add("guard: invalid config: ");
    eg.text.add(what);
    return eg.fail(eg.text.end());
}

fn allStrings(container: eg.Value) bool {
    var it = container.iterate();
    while (it.next()) |entry| {
        if (it.is_map and entry.key.asStr() == null) return false;
        if (entry.value.asStr() == null) return false;
    }
    return true;
}

pub fn init(config: eg.Value) eg.Reaction {
    if (config.isNil()) return eg.continue_;
    if (config.kind() != .map) return invalid("config must be a map");
    const types = config.get("denyTypes");
    if (types.found()) {
        if (types.kind() != .array or !allStrings(types)) return invalid("denyTypes must be an array of strings");
        deny_types = types;
    }
    const data = config.get("denyData");
    if (data.found()) {
        if (data.kind() != .map or !allStrings(data)) return invalid("denyData must be a map of strings to strings");
        deny_data = data;
    }
    const code = config.get("status");
    if (code.found()) {
        const n = code.asInt() orelse return invalid("status must be an integer from 400 to 599");
        if (n < 400 or n > 599) return invalid("status must be an integer from 400 to 599");
        status = n;
    }
    return eg.continue_;
}

fn denied(what: []const u8, name: []const u8) eg.Reaction {
    eg.text.begin();
    eg.text.add("guard: ");
    eg.text.add(what);
    eg.text.add(" ");
    eg.text.add(name);
    eg.text.add(" is denied");
    return eg.reject(eg.text.end(), status);
}

pub fn react(event: eg.Value) eg.Reaction {
    const ce = eg.incoming(event);
    if (eg.ceType(ce)) |event_type| {
        var it = deny_types.iterate();
        while (it.next()) |entry| {
            if (eg.eql(entry.value.asStr().?, event_type)) return denied("event type", event_type);
        }
    }
    const data = eg.ceData(ce);
    if (data.kind() != .map) return eg.continue_;
    var it = deny_data.iterate();
    while (it.next()) |rule| {
        const field = rule.key.asStr().?;
        if (data.get(field).asStr()) |actual| {
            if (eg.eql(actual, rule.value.asStr().?)) return denied("data field", field);
        }
    }
    return eg.continue_;
}

comptime {
    eg.plugin(@This());
}
