/* The guard: rejects events whose type or a data field matches the rules of its init config.
 * Config: {"denyTypes": [str...], "denyData": {field: str...}, "status": 400..599 (default 403)}. */
#include "eventgateway.h"

/* The rules point into the config bytes, which the kit keeps for the instance's life. */
static eg_value deny_types, deny_data;
static int status = 403;

void eg_plugin_subscriptions(void) { eg_subscribe("eventgateway.event.received", EG_SYNC); }

static eg_reaction invalid(const char *what) {
    eg_text_begin();
    eg_text_add("guard: invalid config: ");
    eg_text_add(what);
    return eg_error(eg_text_end());
}

static bool all_strings(eg_value container) {
    eg_iter it = eg_iterate(container);
    eg_value key, value;
    eg_str s;
    while (eg_next(&it, &key, &value)) {
        if (it.is_map && !eg_as_str(key, &s)) return false;
        if (!eg_as_str(value, &s)) return false;
    }
    return true;
}

eg_reaction eg_plugin_init(eg_value config) {
    if (eg_is_nil(config)) return EG_CONTINUE;
    if (eg_type_of(config) != EG_MAP) return invalid("config must be a map");
    eg_value types = eg_get(config, "denyTypes");
    if (eg_found(types)) {
        if (eg_type_of(types) != EG_ARRAY || !all_strings(types))
            return invalid("denyTypes must be an array of strings");
        deny_types = types;
    }
    eg_value data = eg_get(config, "denyData");
    if (eg_found(data)) {
        if (eg_type_of(data) != EG_MAP || !all_strings(data))
            return invalid("denyData must be a map of strings to strings");
        deny_data = data;
    }
    eg_value code = eg_get(config, "status");
    if (eg_found(code)) {
        int64_t n;
        if (!eg_as_int(code, &n) || n < 400 || n > 599)
            return invalid("status must be an integer from 400 to 599");
        status = (int)n;
    }
    return EG_CONTINUE;
}

static eg_reaction denied(const char *what, eg_str name) {
    eg_text_begin();
    eg_text_add("guard: ");
    eg_text_add(what);
    eg_text_add(" ");
    eg_text_add_str(name);
    eg_text_add(" is denied");
    return eg_reject(eg_text_end(), status);
}

eg_reaction eg_plugin_react(eg_value event) {
    eg_value ce = eg_incoming(event);
    eg_str type = eg_ce_type(ce);
    eg_iter it = eg_iterate(deny_types);
    eg_value key, value;
    eg_str s;
    while (eg_next(&it, 0, &value))
        if (eg_as_str(value, &s) && eg_str_eq_str(s, type)) return denied("event type", type);

    eg_value data = eg_ce_data(ce);
    if (eg_type_of(data) != EG_MAP) return EG_CONTINUE;
    it = eg_iterate(deny_data);
    while (eg_next(&it, &key, &value)) {
        eg_str field, wanted, actual;
        eg_as_str(key, &field);
        eg_as_str(value, &wanted);
        if (eg_as_str(eg_get_n(data, field.ptr, field.len), &actual) && eg_str_eq_str(actual, wanted))
            return denied("data field", field);
    }
    return EG_CONTINUE;
}
