/* Checks each event's credentials with a token service (capability http), caching allows in kv
 * (capability kv) when cacheSeconds > 0.
 *
 * Config: {"url": "<token service>", "header": "Authorization", "cacheSeconds": N} (header defaults to
 * "Authorization", cacheSeconds to 0: no cache; url is required). The header is read from the system
 * event's data.headers (name matched in any case); without it the event is rejected with 401. With it,
 * the plugin POSTs to url with the same header (same name, same value) and an empty body: a 2xx answer
 * lets the event through, anything else (or an error code) rejects it with 401. An allow is cached at kv
 * key "auth:<FNV-1a 64 of the value in hex>" holding the whole value, and a cache hit counts only when
 * the stored value equals the presented one byte for byte (a hash collision is a miss, never a bypass).
 * The gateway shows a plugin the Authorization header only with sensitiveHeaders = ["Authorization"]. */
#include "eventgateway.h"

#define MAX_CACHE_SECONDS 31536000

static eg_str url;
static eg_str header = {"Authorization", 13};
static int64_t cache_seconds;

void eg_plugin_subscriptions(void) { eg_subscribe("eventgateway.event.received", EG_SYNC); }

static eg_reaction invalid(const char *what) {
    eg_text_begin();
    eg_text_add("authcheck: invalid config: ");
    eg_text_add(what);
    return eg_error(eg_text_end());
}

eg_reaction eg_plugin_init(eg_value config) {
    if (!eg_found(eg_get(config, "url"))) return invalid("url is required (the token service's URL)");
    if (!eg_as_str(eg_get(config, "url"), &url) || !url.len) return invalid("url must be a non-empty string");
    eg_value h = eg_get(config, "header");
    if (eg_found(h) && !eg_is_nil(h) && (!eg_as_str(h, &header) || !header.len))
        return invalid("header must be a non-empty string");
    eg_value c = eg_get(config, "cacheSeconds");
    if (eg_found(c) && !eg_is_nil(c) &&
        (!eg_as_int(c, &cache_seconds) || cache_seconds < 0 || cache_seconds > MAX_CACHE_SECONDS))
        return invalid("cacheSeconds must be an integer from 0 to 31536000");
    return EG_CONTINUE;
}

static uint8_t lower(uint8_t c) { return c >= 'A' && c <= 'Z' ? (uint8_t)(c + 32) : c; }

/* A request header of the system event (data.headers), its name matched in any case. */
static bool request_header(eg_value event, eg_str name, eg_str *out) {
    eg_iter it = eg_iterate(eg_get(eg_event_data(event), "headers"));
    eg_value k, v;
    eg_str ks;
    while (eg_next(&it, &k, &v)) {
        if (!eg_as_str(k, &ks) || ks.len != name.len) continue;
        uint32_t i = 0;
        while (i < name.len && lower((uint8_t)ks.ptr[i]) == lower((uint8_t)name.ptr[i])) i++;
        if (i == name.len && eg_as_str(v, out)) return true;
    }
    return false;
}

static bool same(const uint8_t *a, uint32_t a_len, eg_str b) {
    if (a_len != b.len) return false;
    for (uint32_t i = 0; i < a_len; i++)
        if (a[i] != (uint8_t)b.ptr[i]) return false;
    return true;
}

eg_reaction eg_plugin_react(eg_value event) {
    eg_str value;
    if (!request_header(event, header, &value)) {
        eg_text_begin();
        eg_text_add("missing ");
        eg_text_add_str(header);
        eg_text_add(" header");
        return eg_reject(eg_text_end(), 401);
    }

    char key[5 + 16] = {'a', 'u', 't', 'h', ':'};
    if (cache_seconds > 0) {
        static const char hex[] = "0123456789abcdef";
        uint64_t h = 0xcbf29ce484222325ull;
        for (uint32_t i = 0; i < value.len; i++) h = (h ^ (uint8_t)value.ptr[i]) * 0x100000001b3ull;
        for (int i = 0; i < 16; i++) key[5 + i] = hex[(h >> (60 - 4 * i)) & 15];
        const uint8_t *cached;
        uint32_t cached_len;
        if (eg_kv_get(key, sizeof key, &cached, &cached_len) == EG_OK && same(cached, cached_len, value))
            return EG_CONTINUE; /* a kv error is a miss: the token service decides */
    }

    eg_header forwarded = {header, value};
    eg_http_req request = {EG_STR("POST"), url, &forwarded, 1, 0, 0, 0};
    eg_http_resp response;
    eg_status status = eg_http_request(&request, &response);
    if (status != EG_OK) {
        eg_text_begin();
        eg_text_add("unauthorized: token service error ");
        eg_text_add_int(status);
        return eg_reject(eg_text_end(), 401);
    }
    if (response.status < 200 || response.status > 299) return eg_reject_cstr("unauthorized", 401);
    if (cache_seconds > 0) eg_kv_set(key, sizeof key, value.ptr, value.len, cache_seconds * 1000);
    return EG_CONTINUE;
}
