/* Test plugin for the C kit's capability wrappers: runs the ops of the incoming event's data through
 * eg_kv_*, eg_metric* (labels through eg_label) and eg_http_request, then rewrites the event's data into
 * {"results": [...]}. The contract is the docstring of tests/pdk/test_kit_capabilities.py. */
#include "eventgateway.h"

void eg_plugin_subscriptions(void) { eg_subscribe("eventgateway.event.received", EG_SYNC); }

#define MAX_OPS 64

enum { R_CODE, R_VALUE, R_DELETED, R_NUMBER, R_SWAPPED, R_HTTP };

/* The wrappers use the scratch heap, and so does the writer: every op runs first, the report after. */
static struct {
    int kind;
    eg_status code;
    const uint8_t *bytes;
    uint32_t len;
    int64_t number;
    bool flag;
    eg_http_resp response;
} results[MAX_OPS];

static bool bytes_of(eg_value v, const uint8_t **p, uint32_t *n) {
    if (eg_as_bin(v, p, n)) return true;
    *p = (const uint8_t *)"";
    *n = 0;
    return !eg_found(v);
}

static int64_t int_or(eg_value v, int64_t fallback) {
    int64_t n;
    return eg_as_int(v, &n) ? n : fallback;
}

static void run(eg_value op, uint32_t i) {
    eg_str name = eg_get_str(op, "op");
    const uint8_t *key, *value;
    uint32_t key_len, value_len;
    bytes_of(eg_get(op, "key"), &key, &key_len);
    bytes_of(eg_get(op, "value"), &value, &value_len);
    int64_t ttl = int_or(eg_get(op, "ttlMs"), 0);
    results[i].kind = R_CODE;
    if (eg_str_eq(name, "get")) {
        results[i].code = eg_kv_get(key, key_len, &results[i].bytes, &results[i].len);
        results[i].kind = R_VALUE;
    } else if (eg_str_eq(name, "set")) {
        results[i].code = eg_kv_set(key, key_len, value, value_len, ttl);
    } else if (eg_str_eq(name, "delete")) {
        results[i].code = eg_kv_delete(key, key_len, &results[i].flag);
        results[i].kind = R_DELETED;
    } else if (eg_str_eq(name, "incr")) {
        results[i].code = eg_kv_incr(key, key_len, int_or(eg_get(op, "delta"), 0), ttl, &results[i].number);
        results[i].kind = R_NUMBER;
    } else if (eg_str_eq(name, "cas")) {
        const uint8_t *expected;
        uint32_t expected_len;
        eg_value e = eg_get(op, "expected");
        bool absent = !eg_found(e) || eg_is_nil(e);
        bytes_of(e, &expected, &expected_len);
        results[i].code = eg_kv_cas(key, key_len, absent ? 0 : expected, expected_len, value, value_len, ttl,
                                    &results[i].flag);
        results[i].kind = R_SWAPPED;
    } else if (eg_str_eq(name, "metric")) {
        eg_str kind = eg_get_str(op, "kind");
        eg_labels labels = eg_labels_none();
        eg_iter it = eg_iterate(eg_get(op, "labels"));
        eg_value k, v;
        eg_str ks, vs;
        while (eg_next(&it, &k, &v))
            if (eg_as_str(k, &ks) && eg_as_str(v, &vs)) eg_label(&labels, ks, vs);
        double amount = 0;
        eg_as_float(eg_get(op, "value"), &amount);
        eg_str metric = eg_get_str(op, "name");
        if (eg_str_eq(kind, "counter")) {
            results[i].code = eg_metric(EG_COUNTER_ADD, metric, &labels, amount);
        } else if (eg_str_eq(kind, "gaugeSet")) {
            results[i].code = eg_metric(EG_GAUGE_SET, metric, &labels, amount);
        } else if (eg_str_eq(kind, "gaugeAdd")) {
            results[i].code = eg_metric(EG_GAUGE_ADD, metric, &labels, amount);
        } else if (eg_str_eq(kind, "histogram")) {
            results[i].code = eg_metric(EG_HISTOGRAM_OBSERVE, metric, &labels, amount);
        } else {
            results[i].code = EG_INVALID;
        }
    } else if (eg_str_eq(name, "http")) {
        static eg_header headers[32];
        eg_http_req request = {0};
        request.url = eg_get_str(op, "url");
        request.method = eg_get_str(op, "method");
        request.timeout_ms = (uint32_t)int_or(eg_get(op, "timeoutMs"), 0);
        bytes_of(eg_get(op, "body"), &request.body, &request.body_len);
        eg_iter it = eg_iterate(eg_get(op, "headers"));
        eg_value k, v;
        while (request.n_headers < 32 && eg_next(&it, &k, &v)) {
            eg_as_str(k, &headers[request.n_headers].name);
            eg_as_str(v, &headers[request.n_headers].value);
            request.n_headers++;
        }
        request.headers = headers;
        results[i].code = eg_http_request(&request, &results[i].response);
        results[i].kind = R_HTTP;
    } else {
        results[i].code = EG_INVALID;
    }
}

eg_reaction eg_plugin_react(eg_value event) {
    eg_value incoming = eg_incoming(event);
    eg_value ops = eg_get(eg_ce_data(incoming), "ops");
    if (eg_type_of(ops) != EG_ARRAY) return EG_CONTINUE;
    uint32_t n = eg_len(ops);
    if (n > MAX_OPS) n = MAX_OPS;
    for (uint32_t i = 0; i < n; i++) run(eg_at(ops, i), i);

    eg_rewrite_begin();
    eg_iter it = eg_iterate(incoming);
    eg_value k, v;
    eg_str ks;
    eg_w_map(eg_len(incoming) + !eg_found(eg_ce_data(incoming)));
    while (eg_next(&it, &k, &v)) {
        eg_w_value(k);
        if (!eg_as_str(k, &ks) || !eg_str_eq(ks, "data")) {
            eg_w_value(v);
            continue;
        }
        eg_w_map(1);
        eg_w_cstr("results");
        eg_w_array(n);
        for (uint32_t i = 0; i < n; i++) {
            bool ok = results[i].code == EG_OK;
            int kind = ok ? results[i].kind : R_CODE;
            eg_w_map(kind == R_CODE ? 1 : kind == R_HTTP ? 4 : 2);
            eg_w_cstr("code");
            eg_w_int(results[i].code);
            switch (kind) {
            case R_VALUE: eg_w_cstr("value"); eg_w_bin(results[i].bytes, results[i].len); break;
            case R_DELETED: eg_w_cstr("deleted"); eg_w_bool(results[i].flag); break;
            case R_NUMBER: eg_w_cstr("value"); eg_w_int(results[i].number); break;
            case R_SWAPPED: eg_w_cstr("swapped"); eg_w_bool(results[i].flag); break;
            case R_HTTP:
                eg_w_cstr("status");
                eg_w_int(results[i].response.status);
                eg_w_cstr("headers");
                eg_w_value(results[i].response.headers);
                eg_w_cstr("body");
                eg_w_bin(results[i].response.body, results[i].response.body_len);
                break;
            default: break;
            }
        }
    }
    return eg_rewrite_end();
}
