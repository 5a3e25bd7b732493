/* Event gateway plugin kit for C (freestanding wasm32, no libc needed).
 *
 * A plugin defines two functions, and optionally a third:
 *
 *     void eg_plugin_subscriptions(void);            // call eg_subscribe() for each event type
 *     eg_reaction eg_plugin_react(eg_value event);   // the system event (a msgpack map, read in place)
 *     eg_reaction eg_plugin_init(eg_value config);   // optional: the plugin's config (nil when none)
 *
 * and returns EG_CONTINUE, eg_reject(...), eg_error(...) or a rewrite built between eg_rewrite_begin()
 * and eg_rewrite_end(). The kit exports the ABI (memory, eventgateway_abi_v1, alloc, subscriptions,
 * react, init) from eventgateway.c; compile both files together. Values are views into the input
 * bytes: nothing is copied, and they stay valid until the plugin returns (config: for the instance's life).
 */
#ifndef EVENTGATEWAY_H
#define EVENTGATEWAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- values: a msgpack value read in place ---- */
typedef enum {
    EG_MISSING = 0, /* a lookup that found nothing, or malformed input */
    EG_NIL,
    EG_BOOL,
    EG_INT, /* any integer; read it with eg_as_int (or eg_as_uint above INT64_MAX) */
    EG_FLOAT,
    EG_STR,
    EG_BIN,
    EG_ARRAY,
    EG_MAP,
    EG_EXT,
} eg_type;

typedef struct {
    const uint8_t *p;   /* first byte of the value; NULL when missing */
    const uint8_t *end; /* end of the buffer it lives in (bounds checks) */
} eg_value;

typedef struct {
    const char *ptr;
    uint32_t len;
} eg_str; /* not NUL-terminated */

eg_type eg_type_of(eg_value v);
static inline bool eg_found(eg_value v) { return eg_type_of(v) != EG_MISSING; }
bool eg_is_nil(eg_value v);
bool eg_as_bool(eg_value v, bool *out);
bool eg_as_int(eg_value v, int64_t *out);   /* false for non-integers and for uint64 above INT64_MAX */
bool eg_as_uint(eg_value v, uint64_t *out); /* false for non-integers and negative integers */
bool eg_as_float(eg_value v, double *out);  /* float32 or float64 */
bool eg_is_float32(eg_value v);
bool eg_as_str(eg_value v, eg_str *out);
bool eg_as_bin(eg_value v, const uint8_t **data, uint32_t *len);
bool eg_as_ext(eg_value v, int8_t *type, const uint8_t **data, uint32_t *len);
uint32_t eg_len(eg_value v); /* entries of a map or items of an array; 0 otherwise */
eg_value eg_skip(eg_value v); /* the value right after v in its buffer */

/* Map lookup by string key; EG_MISSING when v is not a map or has no such key. */
eg_value eg_get(eg_value map, const char *key);
eg_value eg_get_n(eg_value map, const char *key, uint32_t key_len);
/* The string under key, or {NULL, 0} (check .ptr) when absent or not a string. */
eg_str eg_get_str(eg_value map, const char *key);
eg_value eg_at(eg_value array, uint32_t index);

/* Iterate a map (key and value) or an array (value only; key is left missing). */
typedef struct {
    eg_value next;  /* the next entry, or the last value returned while `pending` */
    uint32_t left;
    bool is_map;
    bool pending;   /* the last value returned is skipped only when the next entry is asked for */
} eg_iter;
eg_iter eg_iterate(eg_value container);
bool eg_next(eg_iter *it, eg_value *key, eg_value *value);

bool eg_str_eq(eg_str s, const char *cstr);
bool eg_str_eq_str(eg_str a, eg_str b);

/* ---- events ---- */
/* The system event's `data`, and the user's event inside it (data.event; missing for other events). */
eg_value eg_event_data(eg_value event);
eg_value eg_incoming(eg_value event);
/* A CloudEvent's fields, reading 1.0 names first and falling back to 0.1 names. */
eg_str eg_ce_type(eg_value ce);   /* type, else eventType */
eg_value eg_ce_id(eg_value ce);   /* id, else eventID */
eg_str eg_ce_source(eg_value ce); /* source */
eg_value eg_ce_data(eg_value ce); /* data */

/* ---- subscriptions ---- */
typedef enum { EG_SYNC = 0, EG_ASYNC = 1 } eg_mode;
void eg_subscribe(const char *event_type, eg_mode mode);

/* ---- msgpack writer: writes into the plugin's scratch memory ---- */
void eg_w_begin(void);
eg_str eg_w_end_bytes(void); /* the bytes written since eg_w_begin */
void eg_w_nil(void);
void eg_w_bool(bool b);
void eg_w_int(int64_t v);
void eg_w_uint(uint64_t v);
void eg_w_float(double v);
void eg_w_float32(float v);
void eg_w_str(const char *s, uint32_t len);
void eg_w_cstr(const char *s);
void eg_w_bin(const uint8_t *data, uint32_t len);
void eg_w_ext(int8_t type, const uint8_t *data, uint32_t len);
void eg_w_array(uint32_t n);
void eg_w_map(uint32_t n);
void eg_w_value(eg_value v); /* copy an encoded value unchanged */
void eg_w_raw(const void *data, uint32_t len);

/* ---- text (for log lines and messages) ---- */
void eg_text_begin(void);
void eg_text_add(const char *cstr);
void eg_text_add_str(eg_str s);
void eg_text_add_int(int64_t v);
eg_str eg_text_end(void);

/* ---- reactions ---- */
typedef uint64_t eg_reaction; /* packed (ptr << 32 | len) of the encoded reaction; 0 = continue */
#define EG_CONTINUE ((eg_reaction)0)
eg_reaction eg_reject(eg_str message, int status); /* {"error": message, "status": status} */
eg_reaction eg_reject_cstr(const char *message, int status);
eg_reaction eg_error(eg_str message);               /* {"error": message}: from init, fails the load */
eg_reaction eg_error_cstr(const char *message);
void eg_rewrite_begin(void);        /* then write the new event (one map) with eg_w_* */
eg_reaction eg_rewrite_end(void);
eg_reaction eg_w_end(void);         /* any other written value as a reaction (raw ABI use) */

/* ---- logging ---- */
enum { EG_DEBUG = 0, EG_INFO = 1, EG_WARN = 2, EG_ERROR = 3 };
void eg_log(int level, eg_str message);
void eg_log_cstr(int level, const char *message);

/* ---- capabilities (ABI.md 7.1): kv, http, metrics ----
 * Each wrapper calls one import of a capability the operator must grant (kv = true, http = [...],
 * metrics = true). A wrapper the plugin never calls is dropped by the linker with its import, so a
 * plugin imports (and needs granted) only what it uses. Results are eg_status codes: EG_OK (0) or a
 * negative error. Returned bytes live in scratch memory, like text and output: valid until the plugin
 * returns (in init: for the instance's life). Do not call a wrapper between eg_w_begin / eg_text_begin
 * and their end: the wrappers use the same scratch memory. */
typedef enum {
    EG_OK = 0,
    EG_NOT_FOUND = -1,    /* kv: no such key (or it expired) */
    EG_INVALID = -2,      /* a malformed argument: empty key, TTL out of range, bad metric name or label ... */
    EG_TOO_LARGE = -3,    /* a key, value, request or response over its limit (or over the plugin's memory) */
    EG_QUOTA = -4,        /* the plugin's kv keys or bytes, or metric series, are used up */
    EG_UNAVAILABLE = -5,  /* the backend cannot answer now (Redis down, connection refused ...) */
    EG_DENIED = -6,       /* http: the URL is under no grant of this plugin */
    EG_TIMEOUT = -7,      /* the call ran out of time */
    EG_NOT_A_NUMBER = -8, /* kv incr: the stored value is not a decimal int64, or the sum overflows */
    EG_NO_FUEL = -9,      /* the remaining fuel cannot pay for the call */
} eg_status_code;
typedef int32_t eg_status;
#define EG_STR(literal) ((eg_str){(literal), (uint32_t)(sizeof(literal) - 1)})
const char *eg_status_name(eg_status status); /* "EG_QUOTA", ... ("EG_UNKNOWN" for anything else) */

/* kv: a namespace of the plugin's own. ttl_ms: 0 = never expires, else 1..31536000000. */
/* The value under key, in scratch memory (*out, *out_len; *out_len may be 0). The kit starts with a
 * 256-byte buffer and, when the host answers the length it needs, grows it and asks again.
 * EG_NOT_FOUND when absent. */
eg_status eg_kv_get(const void *key, uint32_t key_len, const uint8_t **out, uint32_t *out_len);
eg_status eg_kv_set(const void *key, uint32_t key_len, const void *value, uint32_t value_len, int64_t ttl_ms);
/* *deleted (may be NULL): whether a key was there. */
eg_status eg_kv_delete(const void *key, uint32_t key_len, bool *deleted);
/* Adds delta to the integer at key (absent = 0) and writes the new value to *out (may be NULL);
 * ttl_ms applies only when this call creates the key. */
eg_status eg_kv_incr(const void *key, uint32_t key_len, int64_t delta, int64_t ttl_ms, int64_t *out);
/* Replaces the value by `value` only if it equals `expected`; expected == NULL means "only if the key
 * is absent" (an empty expected value is a non-NULL pointer with length 0). *swapped may be NULL. */
eg_status eg_kv_cas(const void *key, uint32_t key_len, const void *expected, uint32_t expected_len,
                    const void *value, uint32_t value_len, int64_t ttl_ms, bool *swapped);

/* metrics: labels are built on the stack, then encoded as the msgpack map the host expects. */
#define EG_MAX_LABELS 8
typedef struct {
    uint32_t count;
    bool overflow; /* a 9th label was added: the metric call answers EG_INVALID without calling the host */
    eg_str names[EG_MAX_LABELS];
    eg_str values[EG_MAX_LABELS];
} eg_labels;
static inline eg_labels eg_labels_none(void) { return (eg_labels){0}; }
void eg_label(eg_labels *labels, eg_str name, eg_str value);
void eg_label_cstr(eg_labels *labels, const char *name, const char *value);
typedef enum { EG_COUNTER_ADD = 0, EG_GAUGE_SET = 1, EG_GAUGE_ADD = 2, EG_HISTOGRAM_OBSERVE = 3 } eg_metric_kind;
/* name: [a-zA-Z_][a-zA-Z0-9_]*, at most 64 bytes; labels may be NULL (none). */
eg_status eg_metric(eg_metric_kind kind, eg_str name, const eg_labels *labels, double value);
eg_status eg_metric_counter_add(const char *name, const eg_labels *labels, double value);
eg_status eg_metric_gauge_set(const char *name, const eg_labels *labels, double value);
eg_status eg_metric_gauge_add(const char *name, const eg_labels *labels, double value);
eg_status eg_metric_histogram_observe(const char *name, const eg_labels *labels, double value);

/* http: one request to a URL under the plugin's grants; any HTTP status is a successful call. */
typedef struct {
    eg_str name;
    eg_str value;
} eg_header;
typedef struct {
    eg_str method;            /* {NULL, 0}: GET */
    eg_str url;
    const eg_header *headers; /* n_headers of them (may be NULL when 0) */
    uint32_t n_headers;
    const uint8_t *body;      /* body_len bytes (none when 0) */
    uint32_t body_len;
    uint32_t timeout_ms;      /* 0: no timeoutMs (the host's http_timeout, within the reaction's budget) */
} eg_http_req;
typedef struct {
    int64_t status;
    eg_value headers;     /* a map str -> str, canonical names; read it with eg_http_header or eg_iterate */
    const uint8_t *body;  /* body_len bytes, in scratch memory */
    uint32_t body_len;
} eg_http_resp;
eg_status eg_http_request(const eg_http_req *request, eg_http_resp *response);
/* A response header by name, matched case-insensitively; {NULL, 0} when absent. */
eg_str eg_http_header(const eg_http_resp *response, const char *name);

/* ---- what the plugin defines ---- */
void eg_plugin_subscriptions(void);
eg_reaction eg_plugin_react(eg_value event);
eg_reaction eg_plugin_init(eg_value config); /* optional (a weak default accepts any config) */

#endif
