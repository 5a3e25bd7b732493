/* The C kit's implementation: ABI exports, a scratch bump allocator, a msgpack reader and writer. */
#include "eventgateway.h"

#define EXPORT(name) __attribute__((export_name(name)))

__attribute__((import_module("eventgateway"), import_name("log"))) void eg_host_log(int32_t level,
                                                                                      const void *ptr,
                                                                                      uint32_t len);

/* ---- freestanding helpers the compiler may call ---- */
void *memcpy(void *dst, const void *src, size_t n) {
    uint8_t *d = dst;
    const uint8_t *s = src;
    while (n--) *d++ = *s++;
    return dst;
}
void *memmove(void *dst, const void *src, size_t n) {
    uint8_t *d = dst;
    const uint8_t *s = src;
    if (d < s) {
        while (n--) *d++ = *s++;
    } else {
        while (n--) d[n] = s[n];
    }
    return dst;
}
void *memset(void *dst, int c, size_t n) {
    uint8_t *d = dst;
    while (n--) *d++ = (uint8_t)c;
    return dst;
}
static size_t cstrlen(const char *s) {
    size_t n = 0;
    while (s[n]) n++;
    return n;
}

/* ---- memory: bump allocation; the scratch part is reset on the first alloc after a call returns,
 * so an instance's memory does not grow with the number of events. Output stays valid until then. */
extern uint8_t __heap_base;
static uintptr_t heap_top;      /* next free byte */
static uintptr_t heap_keep;     /* bytes below survive between calls (the config) */
static bool reset_pending;

static bool ensure(uintptr_t limit) {
    uintptr_t have = __builtin_wasm_memory_size(0) * 65536u;
    if (limit <= have) return true;
    uintptr_t pages = (limit - have + 65535u) / 65536u;
    return __builtin_wasm_memory_grow(0, pages) != (size_t)-1;
}
static void *bump(uint32_t size) {
    if (!heap_top) heap_top = heap_keep = (uintptr_t)&__heap_base;
    uintptr_t p = (heap_top + 7u) & ~(uintptr_t)7u;
    if (!ensure(p + size)) return 0;
    heap_top = p + size;
    return (void *)p;
}

EXPORT("eventgateway_abi_v1") void eg_abi_marker(void) {}

EXPORT("alloc") void *eg_alloc(int32_t size) {
    if (reset_pending) {
        heap_top = heap_keep;
        reset_pending = false;
    }
    if (size < 0) return 0;
    return bump((uint32_t)size);
}

static eg_reaction leave(eg_reaction r) {
    reset_pending = true;
    return r;
}

/* ---- msgpack reader ---- */
static uint32_t be16(const uint8_t *p) { return (uint32_t)p[0] << 8 | p[1]; }
static uint32_t be32(const uint8_t *p) { return be16(p) << 16 | be16(p + 2); }
static uint64_t be64(const uint8_t *p) { return (uint64_t)be32(p) << 32 | be32(p + 4); }

static const eg_value MISSING = {0, 0};

/* The header of the value at v: its size before payload, payload bytes and child count. */
typedef struct {
    eg_type type;
    uint32_t head;     /* header bytes */
    uint32_t payload;  /* bytes after the header (strings, bins, exts, scalars) */
    uint64_t children; /* values that follow (array items; map keys and values) */
} header;

static header read_header(eg_value v) {
    header h = {EG_MISSING, 0, 0, 0};
    if (!v.p || v.p >= v.end) return h;
    const uint8_t *p = v.p;
    size_t avail = (size_t)(v.end - p);
    uint8_t b = p[0];
#define NEED(n)                                                                                               \
    if (avail < (n)) return h
    if (b <= 0x7f || b >= 0xe0) return (header){EG_INT, 1, 0, 0};
    if ((b & 0xf0) == 0x80) return (header){EG_MAP, 1, 0, 2u * (b & 15u)};
    if ((b & 0xf0) == 0x90) return (header){EG_ARRAY, 1, 0, b & 15u};
    if ((b & 0xe0) == 0xa0) return (header){EG_STR, 1, b & 31u, 0};
    switch (b) {
    case 0xc0: return (header){EG_NIL, 1, 0, 0};
    case 0xc2:
    case 0xc3: return (header){EG_BOOL, 1, 0, 0};
    case 0xc4: NEED(2); return (header){EG_BIN, 2, p[1], 0};
    case 0xc5: NEED(3); return (header){EG_BIN, 3, be16(p + 1), 0};
    case 0xc6: NEED(5); return (header){EG_BIN, 5, be32(p + 1), 0};
    case 0xc7: NEED(3); return (header){EG_EXT, 3, p[1], 0};
    case 0xc8: NEED(4); return (header){EG_EXT, 4, be16(p + 1), 0};
    case 0xc9: NEED(6); return (header){EG_EXT, 6, be32(p + 1), 0};
    case 0xca: return (header){EG_FLOAT, 1, 4, 0};
    case 0xcb: return (header){EG_FLOAT, 1, 8, 0};
    case 0xcc: case 0xd0: return (header){EG_INT, 1, 1, 0};
    case 0xcd: case 0xd1: return (header){EG_INT, 1, 2, 0};
    case 0xce: case 0xd2: return (header){EG_INT, 1, 4, 0};
    case 0xcf: case 0xd3: return (header){EG_INT, 1, 8, 0};
    case 0xd4: return (header){EG_EXT, 2, 1, 0};
    case 0xd5: return (header){EG_EXT, 2, 2, 0};
    case 0xd6: return (header){EG_EXT, 2, 4, 0};
    case 0xd7: return (header){EG_EXT, 2, 8, 0};
    case 0xd8: return (header){EG_EXT, 2, 16, 0};
    case 0xd9: NEED(2); return (header){EG_STR, 2, p[1], 0};
    case 0xda: NEED(3); return (header){EG_STR, 3, be16(p + 1), 0};
    case 0xdb: NEED(5); return (header){EG_STR, 5, be32(p + 1), 0};
    case 0xdc: NEED(3); return (header){EG_ARRAY, 3, 0, be16(p + 1)};
    case 0xdd: NEED(5); return (header){EG_ARRAY, 5, 0, be32(p + 1)};
    case 0xde: NEED(3); return (header){EG_MAP, 3, 0, 2ull * be16(p + 1)};
    case 0xdf: NEED(5); return (header){EG_MAP, 5, 0, 2ull * be32(p + 1)};
    default: return h; /* 0xc1 is never used */
    }
#undef NEED
}

static bool fits(eg_value v, header h) {
    return h.type != EG_MISSING && (uint64_t)(v.end - v.p) >= (uint64_t)h.head + h.payload;
}

eg_type eg_type_of(eg_value v) {
    header h = read_header(v);
    return fits(v, h) ? h.type : EG_MISSING;
}

eg_value eg_skip(eg_value v) {
    uint64_t todo = 1;
    while (todo) {
        header h = read_header(v);
        if (!fits(v, h)) return MISSING;
        todo = todo - 1 + h.children;
        v.p += h.head + h.payload;
        if (todo > (uint64_t)(v.end - v.p)) return MISSING; /* every value takes at least a byte */
    }
    return v;
}

bool eg_is_nil(eg_value v) { return eg_type_of(v) == EG_NIL; }

bool eg_as_bool(eg_value v, bool *out) {
    if (eg_type_of(v) != EG_BOOL) return false;
    *out = v.p[0] == 0xc3;
    return true;
}

/* The integer at v as a two's complement 64-bit pattern, and whether it is a uint64 above INT64_MAX. */
static bool read_int(eg_value v, uint64_t *bits, bool *is_unsigned) {
    if (eg_type_of(v) != EG_INT) return false;
    const uint8_t *p = v.p;
    uint8_t b = p[0];
    *is_unsigned = false;
    if (b <= 0x7f) *bits = b;
    else if (b >= 0xe0) *bits = (uint64_t)(int64_t)(int8_t)b;
    else switch (b) {
        case 0xcc: *bits = p[1]; break;
        case 0xcd: *bits = be16(p + 1); break;
        case 0xce: *bits = be32(p + 1); break;
        case 0xcf: *bits = be64(p + 1); *is_unsigned = true; break;
        case 0xd0: *bits = (uint64_t)(int64_t)(int8_t)p[1]; break;
        case 0xd1: *bits = (uint64_t)(int64_t)(int16_t)be16(p + 1); break;
        case 0xd2: *bits = (uint64_t)(int64_t)(int32_t)be32(p + 1); break;
        default: *bits = be64(p + 1); break; /* 0xd3 */
        }
    return true;
}

bool eg_as_int(eg_value v, int64_t *out) {
    uint64_t bits;
    bool is_unsigned;
    if (!read_int(v, &bits, &is_unsigned)) return false;
    if (is_unsigned && bits > (uint64_t)INT64_MAX) return false;
    *out = (int64_t)bits;
    return true;
}

bool eg_as_uint(eg_value v, uint64_t *out) {
    uint64_t bits;
    bool is_unsigned;
    if (!read_int(v, &bits, &is_unsigned)) return false;
    if (!is_unsigned && (int64_t)bits < 0) return false;
    *out = bits;
    return true;
}

bool eg_is_float32(eg_value v) { return eg_type_of(v) == EG_FLOAT && v.p[0] == 0xca; }

bool eg_as_float(eg_value v, double *out) {
    if (eg_type_of(v) != EG_FLOAT) return false;
    if (v.p[0] == 0xca) {
        uint32_t bits = be32(v.p + 1);
        float f;
        memcpy(&f, &bits, 4);
        *out = f;
    } else {
        uint64_t bits = be64(v.p + 1);
        memcpy(out, &bits, 8);
    }
    return true;
}

bool eg_as_str(eg_value v, eg_str *out) {
    header h = read_header(v);
    if (!fits(v, h) || h.type != EG_STR) return false;
    out->ptr = (const char *)v.p + h.head;
    out->len = h.payload;
    return true;
}

bool eg_as_bin(eg_value v, const uint8_t **data, uint32_t *len) {
    header h = read_header(v);
    if (!fits(v, h) || h.type != EG_BIN) return false;
    *data = v.p + h.head;
    *len = h.payload;
    return true;
}

bool eg_as_ext(eg_value v, int8_t *type, const uint8_t **data, uint32_t *len) {
    header h = read_header(v);
    if (!fits(v, h) || h.type != EG_EXT) return false;
    *type = (int8_t)v.p[h.head - 1];
    *data = v.p + h.head;
    *len = h.payload;
    return true;
}

uint32_t eg_len(eg_value v) {
    header h = read_header(v);
    if (!fits(v, h)) return 0;
    if (h.type == EG_MAP) return (uint32_t)(h.children / 2);
    if (h.type == EG_ARRAY) return (uint32_t)h.children;
    return 0;
}

eg_iter eg_iterate(eg_value c) {
    header h = read_header(c);
    eg_iter it = {MISSING, 0, false, false};
    if (!fits(c, h) || (h.type != EG_MAP && h.type != EG_ARRAY)) return it;
    it.next = (eg_value){c.p + h.head, c.end};
    it.is_map = h.type == EG_MAP;
    it.left = (uint32_t)(it.is_map ? h.children / 2 : h.children);
    return it;
}

/* The value just returned is skipped lazily, on the next call: eg_get of the last key then costs
 * nothing for that key's value, so reading the type of an event whose data holds 100k items does not
 * walk those items (eagerly, it took two full walks and ran a sync reaction out of fuel). */
bool eg_next(eg_iter *it, eg_value *key, eg_value *value) {
    if (!it->left) return false;
    if (it->pending) {
        it->pending = false;
        it->next = eg_skip(it->next);
        if (!it->next.p) {
            it->left = 0;
            return false;
        }
    }
    it->left--;
    if (it->is_map) {
        if (key) *key = it->next;
        it->next = eg_skip(it->next);
    } else if (key) {
        *key = MISSING;
    }
    if (value) *value = it->next;
    if (it->next.p) it->pending = true;
    else it->left = 0;
    return true;
}

bool eg_str_eq_str(eg_str a, eg_str b) {
    if (!a.ptr || !b.ptr || a.len != b.len) return false;
    for (uint32_t i = 0; i < a.len; i++)
        if (a.ptr[i] != b.ptr[i]) return false;
    return true;
}

bool eg_str_eq(eg_str s, const char *cstr) {
    return eg_str_eq_str(s, (eg_str){cstr, (uint32_t)cstrlen(cstr)});
}

eg_value eg_get_n(eg_value map, const char *key, uint32_t key_len) {
    if (eg_type_of(map) != EG_MAP) return MISSING;
    eg_iter it = eg_iterate(map);
    eg_value k, v;
    eg_str ks;
    eg_str wanted = {key, key_len};
    while (eg_next(&it, &k, &v))
        if (eg_as_str(k, &ks) && eg_str_eq_str(ks, wanted)) return v;
    return MISSING;
}

eg_value eg_get(eg_value map, const char *key) { return eg_get_n(map, key, (uint32_t)cstrlen(key)); }

eg_str eg_get_str(eg_value map, const char *key) {
    eg_str s = {0, 0};
    if (!eg_as_str(eg_get(map, key), &s)) s = (eg_str){0, 0};
    return s;
}

eg_value eg_at(eg_value array, uint32_t index) {
    if (eg_type_of(array) != EG_ARRAY) return MISSING;
    eg_iter it = eg_iterate(array);
    eg_value v;
    for (uint32_t i = 0; eg_next(&it, 0, &v); i++)
        if (i == index) return v;
    return MISSING;
}

/* ---- events ---- */
eg_value eg_event_data(eg_value event) { return eg_get(event, "data"); }
eg_value eg_incoming(eg_value event) { return eg_get(eg_event_data(event), "event"); }
eg_str eg_ce_type(eg_value ce) {
    eg_str s = eg_get_str(ce, "type");
    return s.ptr ? s : eg_get_str(ce, "eventType");
}
eg_value eg_ce_id(eg_value ce) {
    eg_value v = eg_get(ce, "id");
    return eg_found(v) ? v : eg_get(ce, "eventID");
}
eg_str eg_ce_source(eg_value ce) { return eg_get_str(ce, "source"); }
eg_value eg_ce_data(eg_value ce) { return eg_get(ce, "data"); }

/* ---- writer ---- */
static uint8_t *w_start, *w_pos;

void eg_w_begin(void) {
    w_start = w_pos = bump(0);
}
static void w_need(uint32_t n) {
    if (!ensure((uintptr_t)w_pos + n)) __builtin_trap();
}
void eg_w_raw(const void *data, uint32_t len) {
    w_need(len);
    memcpy(w_pos, data, len);
    w_pos += len;
}
static void w_byte(uint8_t b) {
    w_need(1);
    *w_pos++ = b;
}
static void w_be16(uint32_t v) {
    w_byte((uint8_t)(v >> 8));
    w_byte((uint8_t)v);
}
static void w_be32(uint32_t v) {
    w_be16(v >> 16);
    w_be16(v);
}
static void w_be64(uint64_t v) {
    w_be32((uint32_t)(v >> 32));
    w_be32((uint32_t)v);
}
eg_str eg_w_end_bytes(void) {
    heap_top = (uintptr_t)w_pos;
    return (eg_str){(const char *)w_start, (uint32_t)(w_pos - w_start)};
}
eg_reaction eg_w_end(void) {
    eg_str s = eg_w_end_bytes();
    return (uint64_t)(uintptr_t)s.ptr << 32 | s.len;
}
void eg_w_nil(void) { w_byte(0xc0); }
void eg_w_bool(bool b) { w_byte(b ? 0xc3 : 0xc2); }
void eg_w_uint(uint64_t v) {
    if (v < 128) w_byte((uint8_t)v);
    else if (v < 256) { w_byte(0xcc); w_byte((uint8_t)v); }
    else if (v < 65536) { w_byte(0xcd); w_be16((uint32_t)v); }
    else if (v < 4294967296ull) { w_byte(0xce); w_be32((uint32_t)v); }
    else { w_byte(0xcf); w_be64(v); }
}
void eg_w_int(int64_t v) {
    if (v >= 0) eg_w_uint((uint64_t)v);
    else if (v >= -32) w_byte((uint8_t)v);
    else if (v >= -128) { w_byte(0xd0); w_byte((uint8_t)v); }
    else if (v >= -32768) { w_byte(0xd1); w_be16((uint32_t)v); }
    else if (v >= -2147483648ll) { w_byte(0xd2); w_be32((uint32_t)v); }
    else { w_byte(0xd3); w_be64((uint64_t)v); }
}
void eg_w_float(double v) {
    uint64_t bits;
    memcpy(&bits, &v, 8);
    w_byte(0xcb);
    w_be64(bits);
}
void eg_w_float32(float v) {
    uint32_t bits;
    memcpy(&bits, &v, 4);
    w_byte(0xca);
    w_be32(bits);
}
static void w_sized(uint32_t len, uint8_t b8, uint8_t b16, uint8_t b32) {
    if (len < 256) { w_byte(b8); w_byte((uint8_t)len); }
    else if (len < 65536) { w_byte(b16); w_be16(len); }
    else { w_byte(b32); w_be32(len); }
}
void eg_w_str(const char *s, uint32_t len) {
    if (len < 32) w_byte((uint8_t)(0xa0 | len));
    else w_sized(len, 0xd9, 0xda, 0xdb);
    eg_w_raw(s, len);
}
void eg_w_cstr(const char *s) { eg_w_str(s, (uint32_t)cstrlen(s)); }
void eg_w_bin(const uint8_t *data, uint32_t len) {
    w_sized(len, 0xc4, 0xc5, 0xc6);
    eg_w_raw(data, len);
}
void eg_w_ext(int8_t type, const uint8_t *data, uint32_t len) {
    switch (len) {
    case 1: w_byte(0xd4); break;
    case 2: w_byte(0xd5); break;
    case 4: w_byte(0xd6); break;
    case 8: w_byte(0xd7); break;
    case 16: w_byte(0xd8); break;
    default: w_sized(len, 0xc7, 0xc8, 0xc9);
    }
    w_byte((uint8_t)type);
    eg_w_raw(data, len);
}
static void w_container(uint32_t n, uint8_t fix, uint8_t b16) {
    if (n < 16) w_byte((uint8_t)(fix | n));
    else if (n < 65536) { w_byte(b16); w_be16(n); }
    else { w_byte((uint8_t)(b16 + 1)); w_be32(n); }
}
void eg_w_array(uint32_t n) { w_container(n, 0x90, 0xdc); }
void eg_w_map(uint32_t n) { w_container(n, 0x80, 0xde); }
void eg_w_value(eg_value v) {
    eg_value after = eg_skip(v);
    if (!after.p) {
        eg_w_nil();
        return;
    }
    eg_w_raw(v.p, (uint32_t)(after.p - v.p));
}

/* ---- text ---- */
void eg_text_begin(void) { eg_w_begin(); }
void eg_text_add(const char *cstr) { eg_w_raw(cstr, (uint32_t)cstrlen(cstr)); }
void eg_text_add_str(eg_str s) {
    if (s.ptr) eg_w_raw(s.ptr, s.len);
}
void eg_text_add_int(int64_t v) {
    char digits[24];
    int n = 0;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        digits[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0) w_byte('-');
    while (n) w_byte((uint8_t)digits[--n]);
}
eg_str eg_text_end(void) { return eg_w_end_bytes(); }

/* ---- reactions ---- */
eg_reaction eg_reject(eg_str message, int status) {
    eg_w_begin();
    eg_w_map(2);
    eg_w_cstr("error");
    eg_w_str(message.ptr, message.len);
    eg_w_cstr("status");
    eg_w_int(status);
    return eg_w_end();
}
eg_reaction eg_reject_cstr(const char *message, int status) {
    return eg_reject((eg_str){message, (uint32_t)cstrlen(message)}, status);
}
eg_reaction eg_error(eg_str message) {
    eg_w_begin();
    eg_w_map(1);
    eg_w_cstr("error");
    eg_w_str(message.ptr, message.len);
    return eg_w_end();
}
eg_reaction eg_error_cstr(const char *message) {
    return eg_error((eg_str){message, (uint32_t)cstrlen(message)});
}
void eg_rewrite_begin(void) {
    eg_w_begin();
    eg_w_map(1);
    eg_w_cstr("event");
}
eg_reaction eg_rewrite_end(void) { return eg_w_end(); }

/* ---- logging ---- */
void eg_log(int level, eg_str message) { eg_host_log(level, message.ptr, message.len); }
void eg_log_cstr(int level, const char *message) { eg_host_log(level, message, (uint32_t)cstrlen(message)); }

/* ---- capabilities (ABI.md 7.1). Each import is referenced only by its wrappers: a plugin that calls
 * none of a capability's wrappers does not import it (the linker drops unused functions and imports). */
#define IMPORT(name) __attribute__((import_module("eventgateway"), import_name(name)))
IMPORT("kv_get") int32_t eg_host_kv_get(const void *key, uint32_t key_len, void *buf, uint32_t buf_len);
IMPORT("kv_set") int32_t eg_host_kv_set(const void *key, uint32_t key_len, const void *value, uint32_t value_len,
                                        int64_t ttl_ms);
IMPORT("kv_delete") int32_t eg_host_kv_delete(const void *key, uint32_t key_len);
IMPORT("kv_incr") int32_t eg_host_kv_incr(const void *key, uint32_t key_len, int64_t delta, int64_t ttl_ms,
                                          void *out);
IMPORT("kv_cas") int32_t eg_host_kv_cas(const void *key, uint32_t key_len, const void *expected,
                                        uint32_t expected_len, const void *value, uint32_t value_len,
                                        int64_t ttl_ms);
IMPORT("http_request") int32_t eg_host_http_request(const void *req, uint32_t req_len);
IMPORT("http_response") int32_t eg_host_http_response(void *buf, uint32_t buf_len);
IMPORT("metric") int32_t eg_host_metric(int32_t kind, const void *name, uint32_t name_len, const void *labels,
                                        uint32_t labels_len, double value);

const char *eg_status_name(eg_status status) {
    switch (status) {
    case EG_OK: return "EG_OK";
    case EG_NOT_FOUND: return "EG_NOT_FOUND";
    case EG_INVALID: return "EG_INVALID";
    case EG_TOO_LARGE: return "EG_TOO_LARGE";
    case EG_QUOTA: return "EG_QUOTA";
    case EG_UNAVAILABLE: return "EG_UNAVAILABLE";
    case EG_DENIED: return "EG_DENIED";
    case EG_TIMEOUT: return "EG_TIMEOUT";
    case EG_NOT_A_NUMBER: return "EG_NOT_A_NUMBER";
    case EG_NO_FUEL: return "EG_NO_FUEL";
    default: return "EG_UNKNOWN";
    }
}

/* The scratch heap's top now, to give back what a wrapper allocated and no longer needs. */
static uintptr_t heap_mark(void) {
    if (!heap_top) heap_top = heap_keep = (uintptr_t)&__heap_base;
    return heap_top;
}

/* Calls `fill(buf, cap)` (kv_get or http_response) with a scratch buffer of `cap` bytes; when the host
 * answers a length over cap (nothing written), grows the buffer to that length and calls again. Only
 * the bytes the host says it wrote are handed out. */
typedef int32_t (*fill_fn)(const void *key, uint32_t key_len, void *buf, uint32_t cap);
static int32_t fill_kv(const void *key, uint32_t key_len, void *buf, uint32_t cap) {
    return eg_host_kv_get(key, key_len, buf, cap);
}
static int32_t fill_http(const void *key, uint32_t key_len, void *buf, uint32_t cap) {
    (void)key;
    (void)key_len;
    return eg_host_http_response(buf, cap);
}
static eg_status fill_growing(fill_fn fill, const void *key, uint32_t key_len, uint32_t cap, const uint8_t **out,
                              uint32_t *out_len) {
    uintptr_t mark = heap_mark();
    for (;;) {
        uint8_t *buf = bump(cap);
        if (!buf) {
            heap_top = mark;
            return EG_TOO_LARGE; /* the plugin's memory cannot hold it */
        }
        int32_t r = fill(key, key_len, buf, cap);
        if (r < 0) {
            heap_top = mark;
            return r;
        }
        if ((uint32_t)r <= cap) {
            heap_top = (uintptr_t)buf + (uint32_t)r;
            *out = buf;
            *out_len = (uint32_t)r;
            return EG_OK;
        }
        heap_top = mark; /* the length grew: every round asks for more, up to the host's limit */
        cap = (uint32_t)r;
    }
}

#define KV_FIRST_GUESS 256u

eg_status eg_kv_get(const void *key, uint32_t key_len, const uint8_t **out, uint32_t *out_len) {
    return fill_growing(fill_kv, key, key_len, KV_FIRST_GUESS, out, out_len);
}

eg_status eg_kv_set(const void *key, uint32_t key_len, const void *value, uint32_t value_len, int64_t ttl_ms) {
    return eg_host_kv_set(key, key_len, value, value_len, ttl_ms);
}

eg_status eg_kv_delete(const void *key, uint32_t key_len, bool *deleted) {
    int32_t r = eg_host_kv_delete(key, key_len);
    if (r < 0) return r;
    if (deleted) *deleted = r == 1;
    return EG_OK;
}

eg_status eg_kv_incr(const void *key, uint32_t key_len, int64_t delta, int64_t ttl_ms, int64_t *out) {
    uint8_t le[8] = {0};
    int32_t r = eg_host_kv_incr(key, key_len, delta, ttl_ms, le);
    if (r < 0) return r;
    if (out) {
        uint64_t v = 0;
        for (int i = 7; i >= 0; i--) v = v << 8 | le[i];
        *out = (int64_t)v;
    }
    return EG_OK;
}

eg_status eg_kv_cas(const void *key, uint32_t key_len, const void *expected, uint32_t expected_len,
                    const void *value, uint32_t value_len, int64_t ttl_ms, bool *swapped) {
    int32_t r = eg_host_kv_cas(key, key_len, expected ? expected : "", expected ? expected_len : 0xFFFFFFFFu,
                               value, value_len, ttl_ms);
    if (r < 0) return r;
    if (swapped) *swapped = r == 1;
    return EG_OK;
}

/* ---- metrics ---- */
void eg_label(eg_labels *labels, eg_str name, eg_str value) {
    if (labels->count == EG_MAX_LABELS) {
        labels->overflow = true;
        return;
    }
    labels->names[labels->count] = name;
    labels->values[labels->count] = value;
    labels->count++;
}

void eg_label_cstr(eg_labels *labels, const char *name, const char *value) {
    eg_label(labels, (eg_str){name, (uint32_t)cstrlen(name)}, (eg_str){value, (uint32_t)cstrlen(value)});
}

eg_status eg_metric(eg_metric_kind kind, eg_str name, const eg_labels *labels, double value) {
    if (labels && labels->overflow) return EG_INVALID; /* the host takes at most 8 labels */
    if (!labels || !labels->count) return eg_host_metric((int32_t)kind, name.ptr, name.len, 0, 0, value);
    uintptr_t mark = heap_mark();
    eg_w_begin();
    eg_w_map(labels->count);
    for (uint32_t i = 0; i < labels->count; i++) {
        eg_w_str(labels->names[i].ptr, labels->names[i].len);
        eg_w_str(labels->values[i].ptr, labels->values[i].len);
    }
    eg_str encoded = eg_w_end_bytes();
    int32_t r = eg_host_metric((int32_t)kind, name.ptr, name.len, encoded.ptr, encoded.len, value);
    heap_top = mark;
    return r;
}

static eg_str cstr(const char *s) { return (eg_str){s, (uint32_t)cstrlen(s)}; }
eg_status eg_metric_counter_add(const char *name, const eg_labels *labels, double value) {
    return eg_metric(EG_COUNTER_ADD, cstr(name), labels, value);
}
eg_status eg_metric_gauge_set(const char *name, const eg_labels *labels, double value) {
    return eg_metric(EG_GAUGE_SET, cstr(name), labels, value);
}
eg_status eg_metric_gauge_add(const char *name, const eg_labels *labels, double value) {
    return eg_metric(EG_GAUGE_ADD, cstr(name), labels, value);
}
eg_status eg_metric_histogram_observe(const char *name, const eg_labels *labels, double value) {
    return eg_metric(EG_HISTOGRAM_OBSERVE, cstr(name), labels, value);
}

/* ---- http ---- */
eg_status eg_http_request(const eg_http_req *request, eg_http_resp *response) {
    uintptr_t mark = heap_mark();
    bool has_method = request->method.ptr && request->method.len;
    bool has_headers = request->n_headers > 0;
    bool has_body = request->body_len > 0;
    bool has_timeout = request->timeout_ms > 0;
    eg_w_begin();
    eg_w_map(1u + has_method + has_headers + has_body + has_timeout);
    eg_w_cstr("url");
    eg_w_str(request->url.ptr, request->url.len);
    if (has_method) {
        eg_w_cstr("method");
        eg_w_str(request->method.ptr, request->method.len);
    }
    if (has_headers) {
        eg_w_cstr("headers");
        eg_w_map(request->n_headers);
        for (uint32_t i = 0; i < request->n_headers; i++) {
            eg_w_str(request->headers[i].name.ptr, request->headers[i].name.len);
            eg_w_str(request->headers[i].value.ptr, request->headers[i].value.len);
        }
    }
    if (has_body) {
        eg_w_cstr("body");
        eg_w_bin(request->body, request->body_len);
    }
    if (has_timeout) {
        eg_w_cstr("timeoutMs");
        eg_w_uint(request->timeout_ms);
    }
    eg_str encoded = eg_w_end_bytes();
    int32_t length = eg_host_http_request(encoded.ptr, encoded.len);
    heap_top = mark;
    if (length < 0) return length;
    const uint8_t *bytes;
    uint32_t n;
    eg_status got = fill_growing(fill_http, 0, 0, (uint32_t)length, &bytes, &n);
    if (got != EG_OK) return got;
    /* The host's answer: {"status": int, "headers": {str: str}, "body": bin}, read with bounds checks. */
    eg_value map = {bytes, bytes + n};
    eg_value headers = eg_get(map, "headers");
    eg_value body = eg_get(map, "body");
    eg_str text;
    if (!eg_as_int(eg_get(map, "status"), &response->status) || eg_type_of(headers) != EG_MAP) {
        heap_top = mark;
        return EG_INVALID;
    }
    if (eg_as_bin(body, &response->body, &response->body_len)) {
    } else if (eg_as_str(body, &text)) {
        response->body = (const uint8_t *)text.ptr;
        response->body_len = text.len;
    } else if (!eg_found(body)) {
        response->body = bytes;
        response->body_len = 0;
    } else {
        heap_top = mark;
        return EG_INVALID;
    }
    response->headers = headers;
    return EG_OK;
}

static uint8_t ascii_lower(uint8_t c) { return c >= 'A' && c <= 'Z' ? (uint8_t)(c + 32) : c; }

eg_str eg_http_header(const eg_http_resp *response, const char *name) {
    uint32_t len = (uint32_t)cstrlen(name);
    eg_iter it = eg_iterate(response->headers);
    eg_value k, v;
    eg_str ks, vs;
    while (eg_next(&it, &k, &v)) {
        if (!eg_as_str(k, &ks) || ks.len != len) continue;
        uint32_t i = 0;
        while (i < len && ascii_lower((uint8_t)ks.ptr[i]) == ascii_lower((uint8_t)name[i])) i++;
        if (i == len && eg_as_str(v, &vs)) return vs;
    }
    return (eg_str){0, 0};
}

/* ---- subscriptions and the exported glue ---- */
#define MAX_SUBSCRIPTIONS 64
static struct {
    const char *type;
    eg_mode mode;
} subscriptions[MAX_SUBSCRIPTIONS];
static uint32_t n_subscriptions;

void eg_subscribe(const char *event_type, eg_mode mode) {
    if (n_subscriptions == MAX_SUBSCRIPTIONS) __builtin_trap();
    subscriptions[n_subscriptions].type = event_type;
    subscriptions[n_subscriptions].mode = mode;
    n_subscriptions++;
}

EXPORT("subscriptions") eg_reaction eg_export_subscriptions(void) {
    n_subscriptions = 0;
    eg_plugin_subscriptions();
    eg_w_begin();
    eg_w_array(n_subscriptions);
    for (uint32_t i = 0; i < n_subscriptions; i++) {
        eg_w_map(2);
        eg_w_cstr("eventType");
        eg_w_cstr(subscriptions[i].type);
        eg_w_cstr("type");
        eg_w_cstr(subscriptions[i].mode == EG_ASYNC ? "async" : "sync");
    }
    return leave(eg_w_end());
}

__attribute__((weak)) eg_reaction eg_plugin_init(eg_value config) {
    (void)config;
    return EG_CONTINUE;
}

EXPORT("init") eg_reaction eg_export_init(const uint8_t *ptr, uint32_t len) {
    eg_reaction r = eg_plugin_init((eg_value){ptr, ptr + len});
    heap_keep = heap_top; /* the config bytes and what init built stay for the instance's life */
    return leave(r);
}

EXPORT("react") eg_reaction eg_export_react(const uint8_t *ptr, uint32_t len) {
    return leave(eg_plugin_react((eg_value){ptr, ptr + len}));
}
