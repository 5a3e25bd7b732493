//! The logger: logs the type of every incoming event and lets it through.
const eg = @import("eventgateway");

pub fn subscriptions(s: *eg.Subscriptions) void {
    s.add("eventgateway.event.received", .sync);
}

pub fn react(event: eg.Value) eg.Reaction {
    eg.text.begin();
    eg.text.add("received event ");
    eg.text.add(eg.ceType(eg.incoming(event)) orelse "");
    eg.logAt(.info, eg.text.end());
    return eg.continue_;
}

comptime {
    eg.plugin(@This());
}
