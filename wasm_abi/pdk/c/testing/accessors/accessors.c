/* Test plugin for the C kit's typed event access (tests/pdk/test_c_accessors.py): it answers every
 * event.received by rewriting the incoming event's data into a report of what the accessors read. */
#include "eventgateway.h"

void eg_plugin_subscriptions(void) { eg_subscribe("eventgateway.event.received", EG_SYNC); }

static void str_or_nil(eg_str s) {
    if (s.ptr) eg_w_str(s.ptr, s.len);
    else eg_w_nil();
}

static void write_report(eg_value event, eg_value ce, eg_value data) {
    int64_t i;
    uint64_t u;
    double f;
    bool b;
    eg_str s;
    const uint8_t *bytes;
    uint32_t len;
    eg_value system_data = eg_event_data(event);

    eg_w_map(20);
    eg_w_cstr("systemType"); str_or_nil(eg_get_str(event, "type"));
    eg_w_cstr("type"); str_or_nil(eg_ce_type(ce));
    eg_w_cstr("id"); eg_w_value(eg_ce_id(ce));
    eg_w_cstr("source"); str_or_nil(eg_ce_source(ce));
    eg_w_cstr("path"); str_or_nil(eg_get_str(system_data, "path"));
    eg_w_cstr("header"); str_or_nil(eg_get_str(eg_get(system_data, "headers"), "x-probe"));
    eg_w_cstr("countPlusOne");
    if (eg_as_int(eg_get(data, "count"), &i)) eg_w_int(i + 1); else eg_w_nil();
    eg_w_cstr("ratioTimesTwo");
    if (eg_as_float(eg_get(data, "ratio"), &f)) eg_w_float(f * 2); else eg_w_nil();
    eg_w_cstr("notFlag");
    if (eg_as_bool(eg_get(data, "flag"), &b)) eg_w_bool(!b); else eg_w_nil();
    bool has_blob = eg_as_bin(eg_get(data, "blob"), &bytes, &len);
    eg_w_cstr("blobLength");
    if (has_blob) eg_w_int(len); else eg_w_nil();
    eg_w_cstr("blob");
    if (has_blob) eg_w_bin(bytes, len); else eg_w_nil();
    eg_value tags = eg_get(data, "tags");
    eg_w_cstr("tagCount");
    if (eg_type_of(tags) == EG_ARRAY) eg_w_int(eg_len(tags)); else eg_w_nil();
    eg_w_cstr("lastTag"); eg_w_value(eg_at(tags, 2));
    eg_value user = eg_get(data, "user");
    eg_w_cstr("userName"); eg_w_value(eg_get(user, "name"));
    eg_w_cstr("firstRole"); eg_w_value(eg_at(eg_get(user, "roles"), 0));
    eg_w_cstr("nothingIsNil"); eg_w_bool(eg_is_nil(eg_get(data, "nothing")));
    eg_value deeper = eg_get(eg_get(data, "missing"), "deeper");
    eg_w_cstr("missingIsNil"); eg_w_bool(!eg_found(deeper) || eg_is_nil(deeper));
    eg_w_cstr("big");
    if (eg_as_uint(eg_get(data, "big"), &u)) eg_w_uint(u); else eg_w_nil();
    eg_w_cstr("negative");
    if (eg_as_int(eg_get(data, "negative"), &i)) eg_w_int(i); else eg_w_nil();
    eg_w_cstr("countAsString"); eg_w_bool(!eg_as_str(eg_get(data, "count"), &s));
}

eg_reaction eg_plugin_react(eg_value event) {
    eg_value ce = eg_incoming(event);
    eg_value data = eg_ce_data(ce);
    eg_rewrite_begin();
    eg_w_map(eg_len(ce));
    eg_iter it = eg_iterate(ce);
    eg_value key, value;
    eg_str name;
    while (eg_next(&it, &key, &value)) {
        eg_w_value(key);
        if (eg_as_str(key, &name) && eg_str_eq(name, "data")) write_report(event, ce, data);
        else eg_w_value(value);
    }
    return eg_rewrite_end();
}
