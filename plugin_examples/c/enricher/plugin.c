/* The enricher: adds a trace id, the function id and configured fields to the data of an event about
 * to be invoked, and counts invocation outcomes. Config: {"fields": {str: str}} (optional). */
#include "eventgateway.h"

static eg_value fields; /* the config's fields map, kept by the kit for the instance's life */
static int64_t ok, failed;

void eg_plugin_subscriptions(void) {
    eg_subscribe("eventgateway.function.invoking", EG_SYNC);
    eg_subscribe("eventgateway.function.invoked", EG_ASYNC);
    eg_subscribe("eventgateway.function.invocationFailed", EG_ASYNC);
}

eg_reaction eg_plugin_init(eg_value config) {
    if (eg_is_nil(config)) return EG_CONTINUE;
    if (eg_type_of(config) != EG_MAP) return eg_error_cstr("enricher: invalid config: config must be a map");
    eg_value f = eg_get(config, "fields");
    if (!eg_found(f)) return EG_CONTINUE;
    eg_iter it = eg_iterate(f);
    eg_value key, value;
    eg_str s;
    bool valid = eg_type_of(f) == EG_MAP;
    while (valid && eg_next(&it, &key, &value)) valid = eg_as_str(key, &s) && eg_as_str(value, &s);
    if (!valid) return eg_error_cstr("enricher: invalid config: fields must be a map of strings to strings");
    fields = f;
    return EG_CONTINUE;
}

static bool configured(eg_str key) { return key.ptr && eg_found(eg_get_n(fields, key.ptr, key.len)); }

/* True when the data key is overwritten by traceId, functionId or a configured field. */
static bool replaced(eg_value key) {
    eg_str s;
    if (!eg_as_str(key, &s)) return false;
    return eg_str_eq(s, "traceId") || eg_str_eq(s, "functionId") || configured(s);
}

static void write_or_nil(eg_value v) {
    if (eg_found(v)) eg_w_value(v);
    else eg_w_nil();
}

static void write_enriched_data(eg_value data, eg_value trace_id, eg_value function_id) {
    bool own_trace = !configured((eg_str){"traceId", 7});
    bool own_function = !configured((eg_str){"functionId", 10});
    uint32_t kept = 0;
    eg_iter it = eg_iterate(data);
    eg_value key, value;
    while (eg_next(&it, &key, &value)) kept += !replaced(key);
    eg_w_map(kept + own_trace + own_function + eg_len(fields));
    it = eg_iterate(data);
    while (eg_next(&it, &key, &value)) {
        if (replaced(key)) continue;
        eg_w_value(key);
        eg_w_value(value);
    }
    if (own_trace) {
        eg_w_cstr("traceId");
        write_or_nil(trace_id);
    }
    if (own_function) {
        eg_w_cstr("functionId");
        write_or_nil(function_id);
    }
    it = eg_iterate(fields);
    while (eg_next(&it, &key, &value)) {
        eg_w_value(key);
        eg_w_value(value);
    }
}

static eg_reaction enrich(eg_value event) {
    eg_value system_data = eg_event_data(event);
    eg_value ce = eg_get(system_data, "event");
    eg_value data = eg_ce_data(ce);
    if (eg_type_of(data) != EG_MAP) return EG_CONTINUE;
    eg_rewrite_begin();
    eg_w_map(eg_len(ce));
    eg_iter it = eg_iterate(ce);
    eg_value key, value;
    eg_str name;
    while (eg_next(&it, &key, &value)) {
        eg_w_value(key);
        if (eg_as_str(key, &name) && eg_str_eq(name, "data"))
            write_enriched_data(data, eg_ce_id(ce), eg_get(system_data, "functionId"));
        else
            eg_w_value(value);
    }
    return eg_rewrite_end();
}

static void add_counts(void) {
    eg_text_add_int(ok);
    eg_text_add(" ok, ");
    eg_text_add_int(failed);
    eg_text_add(" failed");
}

eg_reaction eg_plugin_react(eg_value event) {
    eg_str type = eg_get_str(event, "type");
    if (eg_str_eq(type, "eventgateway.function.invoking")) return enrich(event);
    eg_value data = eg_event_data(event);
    if (eg_str_eq(type, "eventgateway.function.invoked")) {
        ok++;
        eg_text_begin();
        eg_text_add("function ");
        eg_text_add_str(eg_get_str(data, "functionId"));
        eg_text_add(" invoked: ");
        add_counts();
        eg_log(EG_INFO, eg_text_end());
    } else if (eg_str_eq(type, "eventgateway.function.invocationFailed")) {
        failed++;
        eg_text_begin();
        eg_text_add("function ");
        eg_text_add_str(eg_get_str(data, "functionId"));
        eg_text_add(" failed: ");
        eg_text_add_str(eg_get_str(data, "error"));
        eg_text_add("; ");
        add_counts();
        eg_log(EG_WARN, eg_text_end());
    }
    return EG_CONTINUE;
}
