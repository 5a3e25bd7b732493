/* Decodes the react input through the C kit's typed accessors and re-encodes it with its writer, so the
 * msgpack reference vectors can check both halves (tests/pdk/test_msgpack_vectors.py). */
#include "eventgateway.h"

void eg_plugin_subscriptions(void) {}

static void copy(eg_value v) {
    bool b;
    int64_t i;
    uint64_t u;
    double f;
    eg_str s;
    const uint8_t *data;
    uint32_t len;
    int8_t ext_type;
    switch (eg_type_of(v)) {
    case EG_NIL: eg_w_nil(); return;
    case EG_BOOL: eg_as_bool(v, &b); eg_w_bool(b); return;
    case EG_INT:
        if (eg_as_int(v, &i)) eg_w_int(i);
        else if (eg_as_uint(v, &u)) eg_w_uint(u);
        else __builtin_trap();
        return;
    case EG_FLOAT:
        eg_as_float(v, &f);
        if (eg_is_float32(v)) eg_w_float32((float)f);
        else eg_w_float(f);
        return;
    case EG_STR: eg_as_str(v, &s); eg_w_str(s.ptr, s.len); return;
    case EG_BIN: eg_as_bin(v, &data, &len); eg_w_bin(data, len); return;
    case EG_EXT: eg_as_ext(v, &ext_type, &data, &len); eg_w_ext(ext_type, data, len); return;
    case EG_ARRAY: {
        eg_w_array(eg_len(v));
        eg_iter it = eg_iterate(v);
        eg_value item;
        while (eg_next(&it, 0, &item)) copy(item);
        return;
    }
    case EG_MAP: {
        eg_w_map(eg_len(v));
        eg_iter it = eg_iterate(v);
        eg_value key, value;
        while (eg_next(&it, &key, &value)) {
            copy(key);
            copy(value);
        }
        return;
    }
    default: __builtin_trap();
    }
}

eg_reaction eg_plugin_react(eg_value input) {
    eg_w_begin();
    copy(input);
    return eg_w_end();
}
