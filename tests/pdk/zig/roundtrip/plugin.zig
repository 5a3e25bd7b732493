//! Decodes the react input through the Zig kit's typed accessors and re-encodes it with its writer, so
//! the msgpack reference vectors can check both halves (tests/pdk/test_msgpack_vectors.py).
const eg = @import("eventgateway");

pub fn subscriptions(_: *eg.Subscriptions) void {}

fn copy(v: eg.Value) void {
    switch (v.kind()) {
        .nil => eg.w.nil(),
        .bool => eg.w.boolean(v.asBool().?),
        .int => if (v.asInt()) |i| eg.w.int(i) else eg.w.uint(v.asUint().?),
        .float => if (v.isFloat32()) eg.w.float32(@floatCast(v.asFloat().?)) else eg.w.float(v.asFloat().?),
        .str => eg.w.str(v.asStr().?),
        .bin => eg.w.bin(v.asBin().?),
        .ext => {
            const e = v.asExt().?;
            eg.w.ext(e.type, e.data);
        },
        .array => {
            eg.w.array(v.len());
            var it = v.iterate();
            while (it.next()) |entry| copy(entry.value);
        },
        .map => {
            eg.w.map(v.len());
            var it = v.iterate();
            while (it.next()) |entry| {
                copy(entry.key);
                copy(entry.value);
            }
        },
        .missing => @trap(),
    }
}

pub fn react(input: eg.Value) eg.Reaction {
    eg.w.begin();
    copy(input);
    return eg.written();
}

comptime {
    eg.plugin(@This());
}
