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
