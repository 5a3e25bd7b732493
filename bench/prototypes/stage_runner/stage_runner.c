/* Prototype: run one stage's plugins back to back in one native call.
 * Nothing links against libwasmtime: the C API functions come in as pointers (struct wt_api).
 * Built as a plain .so, called through ctypes (see bench_stage.py). */
#include <stdint.h>
#include <string.h>
#include <stddef.h>

typedef void *(*call_unchecked_fn)(void *ctx, void *func, void *args, size_t nargs, void **trap);
typedef void *(*set_fuel_fn)(void *ctx, uint64_t fuel);
typedef void *(*get_fuel_fn)(void *ctx, uint64_t *fuel);
typedef void (*set_deadline_fn)(void *ctx, uint64_t ticks);
typedef size_t (*memory_data_size_fn)(void *ctx, void *mem);
/* Py_BEGIN/END_ALLOW_THREADS without the headers: PyEval_SaveThread/RestoreThread, passed in too
 * (NULL: keep whatever GIL state the caller has). */
typedef void *(*save_thread_fn)(void);
typedef void (*restore_thread_fn)(void *);

struct wt_api {
    call_unchecked_fn call_unchecked;
    set_fuel_fn set_fuel;
    get_fuel_fn get_fuel;
    set_deadline_fn set_deadline;
    memory_data_size_fn memory_data_size;
    save_thread_fn save_thread;       /* NULL: do not touch the GIL */
    restore_thread_fn restore_thread;
};

/* One per instance, filled once when the instance is made (addresses it already holds). */
struct plugin_call {
    void *ctx;          /* wasmtime_context_t* */
    void *alloc;        /* wasmtime_func_t* */
    void *react;        /* wasmtime_func_t* */
    uint64_t *args;     /* 2 wasmtime_val_raw_t slots (16 bytes each) */
    void **trap;        /* wasm_trap_t** */
    void *mem;          /* wasmtime_memory_t* */
    uint8_t *base;      /* byte 0 of linear memory (never moves: memory_may_move = false) */
    uint64_t mem_size;  /* cached size, re-read only when a check fails (memory only grows) */
    uint64_t max_mem;   /* limits.max_memory_bytes: the size is capped at it */
    uint64_t max_output;
    uint64_t deadline_ticks;
};

enum stage_status {
    ST_CONTINUE = 0,     /* every plugin continued */
    ST_RESULT = 1,       /* plugin `index` returned a non-empty reaction: ptr/len set, Python decodes it */
    ST_ERROR = 2,        /* a call returned a wasmtime_error_t* (err set; phase says which call) */
    ST_TRAP = 3,         /* a call trapped (the trap is in the instance's trap slot, Python takes it) */
    ST_ALLOC_ZERO = 4,   /* alloc returned 0 */
    ST_ALLOC_OOB = 5,    /* alloc returned a pointer past the end of memory */
    ST_OUTPUT_LARGE = 6, /* react returned a buffer over max_output */
    ST_OUTPUT_OOB = 7,   /* react returned a buffer outside memory */
    ST_FUEL_ERROR = 8,   /* set_fuel / get_fuel failed (err set) */
};

struct stage_result {
    int32_t status;
    int32_t index;      /* the plugin that stopped the stage (n when none) */
    int32_t phase;      /* 0 alloc, 1 react */
    int32_t _pad;
    void *err;
    uint64_t ptr, len;  /* ST_RESULT: the reaction's bytes; *_OOB: the offending ptr/len */
    uint64_t size;      /* *_OOB: the memory size checked against */
};

static inline uint64_t mem_size_now(const struct wt_api *api, struct plugin_call *c) {
    uint64_t size = api->memory_data_size(c->ctx, c->mem);
    if (size > c->max_mem) size = c->max_mem;
    return c->mem_size = size;
}

static inline void *wasm_call(const struct wt_api *api, struct plugin_call *c, void *func) {
    void *err;
    if (api->save_thread) {
        void *ts = api->save_thread();
        err = api->call_unchecked(c->ctx, func, c->args, 2, c->trap);
        api->restore_thread(ts);
    } else {
        err = api->call_unchecked(c->ctx, func, c->args, 2, c->trap);
    }
    return err;
}

/* Runs calls[0..n) on payload; fuel_used[i] is written for every plugin that completed react.
 * Returns the number of plugins that completed (== n when all continued). */
int run_stage(const struct wt_api *api, int n, struct plugin_call *const *calls, const uint8_t *payload,
              uint64_t len, uint64_t fuel, uint64_t *fuel_used, struct stage_result *out) {
    out->status = ST_CONTINUE; out->index = n; out->err = NULL; out->ptr = out->len = out->size = 0;
    for (int i = 0; i < n; i++) {
        struct plugin_call *c = calls[i];
        uint64_t *args = c->args;
        void *err = api->set_fuel(c->ctx, fuel);
        if (err) { out->status = ST_FUEL_ERROR; out->index = i; out->err = err; return i; }
        api->set_deadline(c->ctx, c->deadline_ticks);
        out->index = i;
        args[0] = len;
        out->phase = 0;
        err = wasm_call(api, c, c->alloc);
        if (err) { out->status = ST_ERROR; out->err = err; return i; }
        if (*c->trap) { out->status = ST_TRAP; return i; }
        uint64_t ptr = args[0] & 0xFFFFFFFFu;
        if (!ptr) { out->status = ST_ALLOC_ZERO; return i; }
        if (ptr + len > c->mem_size && ptr + len > mem_size_now(api, c)) {
            out->status = ST_ALLOC_OOB; out->ptr = ptr; out->len = len; out->size = c->mem_size; return i;
        }
        memcpy(c->base + ptr, payload, len);
        args[0] = ptr;
        args[2] = len;  /* slot 1 */
        out->phase = 1;
        err = wasm_call(api, c, c->react);
        if (err) { out->status = ST_ERROR; out->err = err; return i; }
        if (*c->trap) { out->status = ST_TRAP; return i; }
        uint64_t packed = args[0];
        uint64_t left = 0;
        err = api->get_fuel(c->ctx, &left);
        if (err) { out->status = ST_FUEL_ERROR; out->err = err; return i; }
        fuel_used[i] = fuel - left;
        if (!packed) continue;
        uint64_t rptr = packed >> 32, rlen = packed & 0xFFFFFFFFu;
        if (!rlen) continue;
        if (rlen == 1 && rptr < c->mem_size && c->base[rptr] == 0x80) continue;  /* empty map: continue */
        out->ptr = rptr; out->len = rlen;
        if (rlen > c->max_output) { out->status = ST_OUTPUT_LARGE; return i; }
        if (rptr + rlen > c->mem_size && rptr + rlen > mem_size_now(api, c)) {
            out->status = ST_OUTPUT_OOB; out->size = c->mem_size; return i;
        }
        out->status = ST_RESULT;
        return i;
    }
    out->index = n;
    return n;
}
