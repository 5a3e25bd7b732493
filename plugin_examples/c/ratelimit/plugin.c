/* A fixed-window rate limiter on the gateway's shared kv (capability kv): the (limit+1)-th event of a
 * key within windowSeconds is rejected with 429.
 *
 * Config: {"limit": N, "windowSeconds": S, "keyBy": "source" | "type" | "header:<Name>",
 * "onError": "open" | "closed"} (keyBy defaults to "source", onError to "open"). The key's value is the
 * incoming event's source or type, or a request header (name matched in any case); a missing one counts
 * as "". The counter lives at kv key "rl:<value>" ("rl#<FNV-1a 64 in hex>" past 200 bytes), created by
 * eg_kv_incr with the window as its TTL. A kv error lets the event through with a warning (onError
 * open) or rejects it with 503 (closed). */
#include "eventgateway.h"

#define MAX_WINDOW_SECONDS 31536000
#define MAX_PLAIN_KEY 200
#define MAX_QUOTED 100

static int64_t limit, window_seconds;
static eg_str key_by = {"source", 6}; /* into the config bytes (kept for the instance's life) */
static eg_str header_name;            /* keyBy "header:<Name>": the name */
static enum { BY_SOURCE, BY_TYPE, BY_HEADER } by = BY_SOURCE;
static bool fail_closed;

void eg_plugin_subscriptions(void) { eg_subscribe("eventgateway.event.received", EG_SYNC); }

static eg_reaction invalid(const char *what) {
    eg_text_begin();
    eg_text_add("ratelimit: invalid config: ");
    eg_text_add(what);
    return eg_error(eg_text_end());
}

/* A required integer from 1 to max; 0 when missing or invalid. */
static int64_t positive_int(eg_value config, const char *field, int64_t max) {
    int64_t n;
    if (!eg_as_int(eg_get(config, field), &n) || n < 1 || n > max) return 0;
    return n;
}

eg_reaction eg_plugin_init(eg_value config) {
    if (!eg_found(eg_get(config, "limit"))) return invalid("limit is required (a positive integer)");
    if (!(limit = positive_int(config, "limit", INT64_MAX))) return invalid("limit must be a positive integer");
    if (!eg_found(eg_get(config, "windowSeconds")))
        return invalid("windowSeconds is required (an integer from 1 to 31536000)");
    if (!(window_seconds = positive_int(config, "windowSeconds", MAX_WINDOW_SECONDS)))
        return invalid("windowSeconds must be an integer from 1 to 31536000");
    eg_value kb = eg_get(config, "keyBy");
    if (eg_found(kb) && !eg_is_nil(kb)) {
        if (!eg_as_str(kb, &key_by)) return invalid("keyBy must be a string");
        if (eg_str_eq(key_by, "source")) by = BY_SOURCE;
        else if (eg_str_eq(key_by, "type")) by = BY_TYPE;
        else if (key_by.len > 7 && eg_str_eq((eg_str){key_by.ptr, 7}, "header:")) {
            by = BY_HEADER;
            header_name = (eg_str){key_by.ptr + 7, key_by.len - 7};
        } else {
            return invalid("keyBy must be \"source\", \"type\" or \"header:<Name>\"");
        }
    }
    eg_value on_error = eg_get(config, "onError");
    if (eg_found(on_error) && !eg_is_nil(on_error)) {
        eg_str s;
        if (!eg_as_str(on_error, &s) || !(eg_str_eq(s, "open") || eg_str_eq(s, "closed")))
            return invalid("onError must be \"open\" or \"closed\"");
        fail_closed = eg_str_eq(s, "closed");
    }
    return EG_CONTINUE;
}

static uint8_t lower(uint8_t c) { return c >= 'A' && c <= 'Z' ? (uint8_t)(c + 32) : c; }

/* A request header of the system event (data.headers), its name matched in any case. */
static eg_str request_header(eg_value event, eg_str name) {
    eg_iter it = eg_iterate(eg_get(eg_event_data(event), "headers"));
    eg_value k, v;
    eg_str ks, vs;
    while (eg_next(&it, &k, &v)) {
        if (!eg_as_str(k, &ks) || ks.len != name.len) continue;
        uint32_t i = 0;
        while (i < name.len && lower((uint8_t)ks.ptr[i]) == lower((uint8_t)name.ptr[i])) i++;
        if (i == name.len && eg_as_str(v, &vs)) return vs;
    }
    return (eg_str){"", 0};
}

static uint64_t fnv1a64(eg_str s) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (uint32_t i = 0; i < s.len; i++) h = (h ^ (uint8_t)s.ptr[i]) * 0x100000001b3ull;
    return h;
}

eg_reaction eg_plugin_react(eg_value event) {
    eg_value incoming = eg_incoming(event);
    eg_str value = by == BY_SOURCE ? eg_ce_source(incoming) : by == BY_TYPE ? eg_ce_type(incoming)
                                                                           : request_header(event, header_name);
    if (!value.ptr) value = (eg_str){"", 0};

    char key[3 + MAX_PLAIN_KEY];
    uint32_t key_len;
    if (value.len <= MAX_PLAIN_KEY) {
        key[0] = 'r', key[1] = 'l', key[2] = ':';
        for (uint32_t i = 0; i < value.len; i++) key[3 + i] = value.ptr[i];
        key_len = 3 + value.len;
    } else {
        static const char hex[] = "0123456789abcdef";
        uint64_t h = fnv1a64(value);
        key[0] = 'r', key[1] = 'l', key[2] = '#';
        for (int i = 0; i < 16; i++) key[3 + i] = hex[(h >> (60 - 4 * i)) & 15];
        key_len = 19;
    }

    int64_t count;
    eg_status status = eg_kv_incr(key, key_len, 1, window_seconds * 1000, &count);
    if (status != EG_OK) {
        eg_text_begin();
        if (fail_closed) {
            eg_text_add("rate limiter unavailable: kv error ");
            eg_text_add_int(status);
            return eg_reject(eg_text_end(), 503);
        }
        eg_text_add("ratelimit: kv error ");
        eg_text_add_int(status);
        eg_text_add(" (");
        eg_text_add(eg_status_name(status));
        eg_text_add("); letting the event through");
        eg_log(EG_WARN, eg_text_end());
        return EG_CONTINUE;
    }
    if (count <= limit) return EG_CONTINUE;
    uint32_t quoted = value.len;
    if (quoted > MAX_QUOTED) {
        quoted = MAX_QUOTED;
        while (quoted && ((uint8_t)value.ptr[quoted] & 0xc0) == 0x80) quoted--; /* a whole UTF-8 character */
    }
    eg_text_begin();
    eg_text_add("rate limit exceeded for ");
    eg_text_add_str(key_by);
    eg_text_add(" \"");
    eg_text_add_str((eg_str){value.ptr, quoted});
    eg_text_add("\": ");
    eg_text_add_int(limit);
    eg_text_add(" events per ");
    eg_text_add_int(window_seconds);
    eg_text_add(" s");
    return eg_reject(eg_text_end(), 429);
}
