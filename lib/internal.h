/* Declarations shared by the library's own files: errors, logging, devices, workers, programs,
 * CLBlast. Nothing here is installed. */
#ifndef CLT_INTERNAL_H
#define CLT_INTERNAL_H

#include "config.h"
#define CL_TARGET_OPENCL_VERSION 120
#include "cltrain.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* The few internals that lib/mpi.c, built into libcltrain-mpi, calls across the boundary of the
 * two libraries: exported from libcltrain for it alone, declared in no installed header, and no
 * part of the API (the two libraries come from one build and must match). */
#define CLT_LAYER_API CLT_API

/* ---- errors (lib/error.c) ------------------------------------------------------------------ */

/* Records a failure in the calling thread's last error ("file:line: message") and returns s. */
CLT_LAYER_API clt_status clt__fail_at(const char *file, int line, clt_status s, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
#define clt__fail(s, ...) clt__fail_at(__FILE__, __LINE__, (s), __VA_ARGS__)

/* Reads a caller's public option struct (clt_runtime_options, clt_train_params, ...) into *dst,
 * which holds the library's defaults: its first member, struct_size, set by the struct's
 * _default() function, says how many bytes the caller's version has, and only those are read,
 * so a program compiled against an older header gets the defaults for the fields it lacks. A
 * struct_size of 0 (a struct not made by _default()), below `oldest` (the first version's
 * size) or above `known` (sizeof here) is CLT_ERR_INVALID_ARG naming fn and type. src NULL
 * leaves the defaults. */
/* The size of each option struct's first version with struct_size (0.2.0): the end of its last
 * field then. Fields added later go after it and keep these numbers. */
#define CLT__END_OF(type, field) (offsetof(type, field) + sizeof(((type *)0)->field))
#define CLT__RUNTIME_OPTIONS_V1 CLT__END_OF(clt_runtime_options, fault)
#define CLT__TRAIN_PARAMS_V1 CLT__END_OF(clt_train_params, tensor_split_weights)
#define CLT__TRAIN_PARAMS_V2 CLT__END_OF(clt_train_params, decay)   /* + decay */
#define CLT__GPT_CONFIG_V1 CLT__END_OF(clt_gpt_config, eps)
#define CLT__GENERATE_OPTIONS_V1 CLT__END_OF(clt_generate_options, seed)
#define CLT__DATASET_OPTIONS_V1 CLT__END_OF(clt_dataset_options, classes)
#define CLT__TEXT_OPTIONS_V1 CLT__END_OF(clt_text_options, max_bytes)
#define CLT__TUNE_OPTIONS_V1 CLT__END_OF(clt_tune_options, batch)
#define CLT__COLLECTIVE_OPTIONS_V1 CLT__END_OF(clt_collective_options, timeout_s)
CLT_LAYER_API clt_status clt__options_read(void *dst, const void *src, size_t known, size_t oldest,
                                           const char *fn, const char *type);

/* The clt_status an OpenCL error code maps to: the same number where one exists. */
clt_status clt__status_from_cl(cl_int err);

/* Records an OpenCL failure: "what on DEVICE: CL_NAME (code)". Returns the mapped status. */
clt_status clt__fail_cl_at(const char *file, int line, cl_int err, const char *device,
                           const char *what);
#define clt__fail_cl(err, device, what) clt__fail_cl_at(__FILE__, __LINE__, (err), (device), (what))

/* Evaluates an OpenCL call; on failure records it and returns from the enclosing function. */
#define CLT_CL_TRY(device, call)                                                                 \
    do {                                                                                         \
        cl_int clt__e = (call);                                                                  \
        if (clt__e != CL_SUCCESS) return clt__fail_cl(clt__e, (device), #call);                  \
    } while (0)

/* Replace / copy the calling thread's last-error message (used to carry a worker's message
 * back to the thread that waits for it). */
void clt__error_set_message(const char *msg);
void clt__error_clear(void);

/* Programmer errors inside the library only, never bad user input: logs and returns. */
#define CLT_ASSERT(cond, ret)                                                                    \
    do {                                                                                         \
        if (!(cond)) {                                                                           \
            clt__log(CLT_LOG_ERROR, "internal error: %s:%d: assertion '%s' failed", __FILE__,   \
                     __LINE__, #cond);                                                           \
            return clt__fail(CLT_ERR_STATE, "internal error: assertion '%s' failed", #cond), ret; \
        }                                                                                        \
    } while (0)

/* ---- logging (lib/log.c) ------------------------------------------------------------------- */

CLT_LAYER_API void clt__log(clt_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
bool clt__log_enabled(clt_log_level level);

/* ---- small helpers (lib/util.c) -------------------------------------------------------------- */

/* Case-insensitive substring search. */
bool clt__contains_nocase(const char *haystack, const char *needle);
/* Appends printf output to a growable buffer; keeps *buf NUL-terminated. False on OOM. */
bool clt__sbuf_printf(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Monotonic clock in seconds. */
CLT_LAYER_API double clt__now(void);

/* ---- devices (lib/device.c) ---------------------------------------------------------------- */

typedef struct {
    cl_platform_id platform;
    cl_device_id device;
    clt_device_info info;
} clt__device;

/* Whether two devices are one implementation (platform, device name and driver alike): the
 * same kernels then give the same bits on both; across implementations they may round apart. */
static inline bool clt__device_same_impl(const clt__device *a, const clt__device *b)
{
    return !strcmp(a->info.platform_name, b->info.platform_name) && !strcmp(a->info.name, b->info.name) &&
           !strcmp(a->info.driver_version, b->info.driver_version);
}

/* Discovers every device on every platform. *out is malloc'ed (free it); *count may be 0. */
clt_status clt__devices_discover(clt__device **out, size_t *count);
/* Resolves a spec against discovered devices into indices (malloc'ed, repeats kept). */
clt_status clt__spec_resolve(const char *spec, const clt__device *devs, size_t ndev, int **out,
                             size_t *count);
/* "P:D 'name' (type, platform; select with words)" of what exists, for error messages.
 * Malloc'ed. */
char *clt__devices_describe(const clt__device *devs, size_t ndev);
/* The stable spec words that select a device ("pocl, intel, cpu, basic"), into out (cap). */
void clt__device_words(const clt_device_info *f, char *out, size_t cap);
const char *clt__device_type_str(clt_device_type t);

/* ---- workers (lib/worker.c) ---------------------------------------------------------------- */

typedef struct clt__worker clt__worker;
typedef struct clt__program_cache clt__program_cache;

/* One device's part of a timeline (lib/trace.c): events in host-clock seconds. */
typedef struct {
    const char *name;       /* static string */
    int cat;                /* CLT__EV_KERNEL, CLT__EV_TRANSFER, or CLT__EV_HOST */
    double ts, dur;
} clt__trace_event;

typedef struct clt__trace_buf {
    clt__trace_event *ev;
    size_t n, cap;
    size_t dropped;          /* past the cap: counted, not kept */
    double offset;           /* host seconds = device seconds + offset */
} clt__trace_buf;

/* A task run on a worker's thread. */
typedef clt_status (*clt__task_fn)(clt__worker *w, void *arg);

typedef struct clt__task {
    clt__task_fn fn;
    void *arg;
    clt_status status;     /* set when done */
    char *message;         /* the worker's last error when status != CLT_OK (malloc'ed) */
    bool done;
    struct clt__task *next;
} clt__task;

struct clt__worker {
    int index;                      /* runtime device index */
    const clt__device *dev;         /* discovered device (owned by the runtime) */
    cl_context context;             /* retained */
    cl_command_queue queue;
    cl_command_queue side;          /* a second queue on the device, made on first use: the
                                     * collectives of a bucket overlap the compute on `queue` */
    cl_command_queue comm_queue;    /* where this worker's collectives enqueue now: NULL means
                                     * `queue`; a strategy points it at `side` while it overlaps */
    clt__program_cache *programs;   /* this worker's programs and kernels */
    unsigned blas_warm;             /* bit per CLBlast routine already compiled here */
    cl_mem gemm_scratch;            /* lib/blas.c's own SGEMM: B transposed */
    size_t gemm_scratch_floats;
    bool profiling;                 /* queue has CL_QUEUE_PROFILING_ENABLE: events are kept */
    double slowdown;                /* CLT_SLOW_DEVICES: 1, or how many times slower to act */
    bool row_clock;                 /* CLT_SLOW_CLOCK=rows: measured seconds are counted rows */
    cl_event *events;               /* profiled commands not yet added to the totals */
    int *event_kinds;               /* CLT__EV_KERNEL or CLT__EV_TRANSFER */
    const char **event_names;       /* static strings: what each event was */
    clt__trace_buf *trace;          /* timeline being recorded, or NULL */
    size_t nevents, events_cap;
    clt_device_stats stats;
    uint64_t activation_bytes;    /* what stats reports: the nets' act_bytes and what the
                                   * strategies hold for them (a pipeline's gradient slots) */
    struct clt__fault_state *fault; /* the runtime's injected fault (lib/fault.c) */
    const struct clt__worker_hooks *hooks;   /* what the runtime runs at start and stop */
    double cpu_base;                /* the thread's CPU seconds at the last stats reset */

    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;            /* tasks arrived or stop asked */
    pthread_cond_t done;            /* a task finished */
    clt__task *head, *tail;
    bool stop;
    bool started;
};

/* What the layer above gives a worker to run on its own thread, so that the worker needs
 * nothing of the layers above it: init once its queue exists (the runtime: the program cache
 * and the tuning, before any kernel compiles), fini before its queues are released (also after
 * a failed init). Either may be NULL. */
typedef struct clt__worker_hooks {
    clt__task_fn init;              /* arg NULL; a failure fails the start */
    void (*fini)(clt__worker *w);
} clt__worker_hooks;

/* Timelines (lib/trace.c), on one worker's thread: align its device clock to the host's and
 * start recording; finish its queue and fold in what it recorded (tasks, arg NULL). Then, on any
 * thread, write workers[0..n)'s timelines, from host time t0, as Chrome trace JSON. The runtime
 * runs them on all its workers (trace_path, clt_runtime_trace_write). */
clt_status clt__trace_calibrate(clt__worker *w, void *arg);
clt_status clt__trace_drain(clt__worker *w, void *arg);
clt_status clt__trace_write_json(const clt__worker *workers, int n, double t0, const char *path);

/* Starts a worker thread that creates its queue in `context` for `dev`, then runs hooks->init
 * (hooks NULL: none; the table must outlive the worker). */
clt_status clt__worker_start(clt__worker *w, int index, const clt__device *dev, cl_context context,
                             bool profiling, const clt__worker_hooks *hooks);
/* Finishes queued tasks, releases the worker's objects and joins its thread. */
void clt__worker_stop(clt__worker *w);
/* Queues a task (the caller keeps *t alive until clt__worker_wait returns). */
void clt__worker_submit(clt__worker *w, clt__task *t, clt__task_fn fn, void *arg);
/* Waits for a submitted task; returns its status and carries its message to this thread. */
clt_status clt__worker_wait(clt__worker *w, clt__task *t);
/* Submit and wait; runs inline when called from w's own thread. */
clt_status clt__worker_call(clt__worker *w, clt__task_fn fn, void *arg);
/* The worker whose thread is calling, or NULL. */
clt__worker *clt__worker_self(void);
/* With profiling on, where a command's event should go (NULL when off: no event at all). */
/* A MARK's end opens the span of the kernel recorded right after it: CLBlast returns the event
 * of its last kernel only, so a marker before the call makes the whole call count. */
enum { CLT__EV_KERNEL = 0, CLT__EV_TRANSFER = 1, CLT__EV_MARK = 2, CLT__EV_HOST = 3 };
cl_event *clt__worker_event(clt__worker *w);
/* Keeps the event *clt__worker_event returned, as a kernel, a transfer or a mark; the named
 * form gives the timeline its label (a static string). */
void clt__worker_record(clt__worker *w, int kind);
void clt__worker_record_named(clt__worker *w, int kind, const char *name);
/* With a timeline recording: a host-side phase of this worker, from clt__now() times. */
void clt__worker_span(clt__worker *w, const char *name, double t0, double t1);
/* On w's thread, after the queue finished: adds kept events' durations to w->stats. */
void clt__worker_collect(clt__worker *w);
/* With profiling on, enqueues a marker whose end starts the next kernel's span. */
void clt__worker_mark(clt__worker *w);
/* Benchmarking aid: with CLT_SLOW_DEVICES="D:F[,D:F...]", runtime device D takes F times as
 * long for work that took `elapsed` seconds (the worker sleeps the difference, leaving the
 * core to others), to stand for a slower device. */
void clt__worker_throttle(clt__worker *w, double elapsed);
/* The seconds a measured split records for work of `rows` rows that took `elapsed`: elapsed, or
 * with CLT_SLOW_CLOCK=rows (a test aid) rows x the CLT_SLOW_DEVICES factor x 1 ms, and then
 * clt__worker_throttle sleeps nothing: the split follows the factors whatever the load. */
double clt__worker_seconds(const clt__worker *w, double elapsed, size_t rows);
/* On w's thread: *out = w's second queue, made on first use (same properties as `queue`). */
clt_status clt__worker_side_queue(clt__worker *w, cl_command_queue *out);
/* The queue w's collectives use now. */
static inline cl_command_queue clt__worker_comm_queue(const clt__worker *w)
{
    return w->comm_queue ? w->comm_queue : w->queue;
}
/* The device's name for error messages. */
static inline const char *clt__worker_name(const clt__worker *w) { return w->dev->info.name; }

/* ---- fault injection for tests (lib/fault.c, CLT_FAULT; the grammar is there) ---------------- */

enum {
    CLT__FAULT_ANY = 0, CLT__FAULT_FORWARD, CLT__FAULT_BACKWARD, CLT__FAULT_ALLREDUCE, CLT__FAULT_COPY,
    CLT__FAULT_OPTIMIZER
};

typedef struct {
    int device;          /* runtime device index that fails */
    long step;           /* the training update (1-based) it fails in; 0: every call */
    int op;              /* CLT__FAULT_*: where */
    unsigned at;         /* only the at-th point of that kind in a call; 0: every one */
    cl_int code;         /* CL_DEVICE_NOT_AVAILABLE or CL_OUT_OF_RESOURCES */
} clt__fault;

/* One runtime's fault: its workers point at it (clt__worker.fault), so runtimes never share one. */
typedef struct clt__fault_state {
    pthread_mutex_t lock;
    bool inited;              /* lock made (clt__fault_init got that far) */
    clt__fault armed;
    bool from_env;            /* armed from $CLT_FAULT */
    bool env_source;          /* opts.fault was NULL: $CLT_FAULT is read again at trainer create */
    _Atomic bool active;
    _Atomic long step;        /* the trainer's update in progress (1-based), 0 outside steps */
} clt__fault_state;

/* Parses a CLT_FAULT value; CLT_ERR_INVALID_ARG saying what is wrong (`source` names where it
 * came from: "CLT_FAULT" or "opts.fault"). */
clt_status clt__fault_parse(const char *text, const char *source, clt__fault *out);
/* A runtime's fault from opts.fault (NULL: $CLT_FAULT; "": none), parsed and armed before the
 * devices are opened (a malformed one stops the create there); clt__fault_check then holds its
 * device to the runtime's nworkers. */
clt_status clt__fault_init(clt__fault_state *fs, const char *opt);
clt_status clt__fault_check(clt__fault_state *fs, int nworkers);
void clt__fault_fini(clt__fault_state *fs);
/* At trainer create: a runtime whose fault comes from $CLT_FAULT reads it again (set: armed,
 * the device checked; unset: a fault an earlier value armed goes, a test's stays). */
clt_status clt__fault_reload(clt_runtime *rt);
/* Tests: arms f on rt's devices (NULL: none). */
void clt__fault_arm(clt_runtime *rt, const clt__fault *f);
/* The trainer's update in progress on rt (1-based), 0 outside training steps. */
void clt__fault_set_step(clt_runtime *rt, long step);
const char *clt__fault_op_name(int op);
/* On w's thread, at a point of kind op (its ordinal-th in the call): CLT_OK, or when the armed
 * fault matches, the failure a lost device gives, naming `what`, the device and its index. */
clt_status clt__fault_point(clt__worker *w, int op, unsigned ordinal, const char *what);

/* ---- programs (lib/program.c) -------------------------------------------------------------- */

/* The kernel sources embedded at build time (lib/kernels_gen.c, generated from cl/). */
typedef struct {
    const char *name;     /* file name without ".cl": "smoke" */
    const char *source;
} clt__embedded_source;
extern const clt__embedded_source clt__embedded_sources[];
extern const size_t clt__embedded_source_count;

clt__program_cache *clt__program_cache_create(void);
void clt__program_cache_destroy(clt__program_cache *c);

/* On w's thread: the program for one of cl/'s sources (by name, "smoke"), built with options.
 * CLT_KERNEL_DIR, when set, reads NAME.cl from that folder instead of the embedded copy. */
clt_status clt__program_get(clt__worker *w, const char *source_name, const char *options,
                            cl_program *out);
/* On w's thread: a kernel of that program, cached; the worker owns it. */
clt_status clt__kernel_get(clt__worker *w, const char *source_name, const char *options,
                           const char *kernel_name, cl_kernel *out);
/* What a worker's cache has made: programs built (or loaded from the disk cache), kernel objects
 * created, and launch shapes, a kernel first launched at a work-group size or with a grid wider
 * than before at that size. PoCL's CPU drivers load, and unless their disk cache has it compile,
 * a work-group function per launch shape; PoCL 3.1 can abort when one device does that while
 * another runs the same kernel (README, Limits). So the strategies warm every shape a step runs
 * up before the step, one device at a time, and check that the step made nothing. */
typedef struct {
    unsigned long programs, kernels, shapes;
} clt__program_counts;
clt__program_counts clt__program_made(const clt__worker *w);
/* Everything w's cache made since `before` was taken. */
unsigned long clt__program_made_since(const clt__worker *w, clt__program_counts before);
/* Called after every launch of a cached kernel (dims 1..3): counts a new launch shape. */
void clt__kernel_launched(clt__worker *w, cl_kernel kernel, unsigned dims, const size_t *global,
                          const size_t *local);
/* Programs this cache loaded from the on-disk binary cache, and built from source and stored. */
void clt__program_cache_stats(const clt__program_cache *c, unsigned *hits, unsigned *misses);
/* On w's thread: builds arbitrary source text, cached by (source, options). */
clt_status clt__program_build_source(clt__worker *w, const char *source, const char *options,
                                     cl_program *out);

/* A float tensor inside a device buffer: the buffer and an offset in elements. */
typedef struct {
    cl_mem mem;
    cl_ulong off;
} clt__view;
static inline clt__view clt__at(clt__view v, size_t elems) { v.off += elems; return v; }

/* ---- CLBlast (lib/blas.c) ------------------------------------------------------------------ */

typedef enum { CLT__NOTRANS = 0, CLT__TRANS = 1 } clt__trans;

/* Row-major C = alpha * op(A) * op(B) + beta * C on w's queue, from w's thread. A is (M, K)
 * after op, B (K, N), C (M, N); offsets and leading dimensions in elements. */
clt_status clt__sgemm(clt__worker *w, clt__trans ta, clt__trans tb, size_t m, size_t n, size_t k,
                      float alpha, cl_mem a, size_t a_off, size_t lda, cl_mem b, size_t b_off,
                      size_t ldb, float beta, cl_mem c, size_t c_off, size_t ldc);
/* The same through one implementation: CLBlast, or cltrain's own kernel (CLT_ERR_INVALID_ARG
 * for a call it does not cover). */
clt_status clt__sgemm_clblast(clt__worker *w, clt__trans ta, clt__trans tb, size_t m, size_t n,
                              size_t k, float alpha, cl_mem a, size_t a_off, size_t lda, cl_mem b,
                              size_t b_off, size_t ldb, float beta, cl_mem c, size_t c_off, size_t ldc);
clt_status clt__sgemm_own(clt__worker *w, clt__trans ta, clt__trans tb, size_t m, size_t n,
                          size_t k, float alpha, cl_mem a, size_t a_off, size_t lda, cl_mem b,
                          size_t b_off, size_t ldb, float beta, cl_mem c, size_t c_off, size_t ldc);
/* C = op(A) op(B) (+ bias per column) in one pass, and with relu also R = max(0, C) (R laid out
 * as C): when cltrain's own kernel covers the call it runs and *done is true; otherwise nothing
 * is enqueued, *done is false and the caller runs the separate kernels. */
clt_status clt__sgemm_fused(clt__worker *w, clt__trans ta, clt__trans tb, size_t m, size_t n,
                            size_t k, cl_mem a, size_t a_off, size_t lda, cl_mem b, size_t b_off,
                            size_t ldb, cl_mem c, size_t c_off, size_t ldc, const clt__view *bias,
                            const clt__view *relu, bool *done);
/* Whether clt__sgemm runs cltrain's own kernel (cl/gemm.cl) for this call rather than CLBlast. */
bool clt__own_gemm_covers(const clt__worker *w, clt__trans ta, clt__trans tb, size_t m, size_t n,
                          size_t k);
/* The same over `batch` matrices a fixed stride apart. */
clt_status clt__sgemm_strided_batched(clt__worker *w, clt__trans ta, clt__trans tb, size_t m,
                                      size_t n, size_t k, float alpha, cl_mem a, size_t a_off,
                                      size_t lda, size_t a_stride, cl_mem b, size_t b_off,
                                      size_t ldb, size_t b_stride, float beta, cl_mem c,
                                      size_t c_off, size_t ldc, size_t c_stride, size_t batch);

/* Under the first-use lock: CLBlastOverrideParameters for w's device (single precision). The
 * next call of a routine using `kernel` compiles with these values. */
clt_status clt__blas_override(clt__worker *w, const char *kernel, size_t n, const char *const *names,
                              const size_t *values);

/* ---- the per-user cache folder (lib/cache.c) ------------------------------------------------ */

uint64_t clt__fnv1a64(uint64_t h, const void *data, size_t n);
#define CLT__FNV_INIT 0xcbf29ce484222325ull
/* $CLT_CACHE_DIR, else $XDG_CACHE_HOME/cltrain, else $HOME/.cache/cltrain; false if none. */
bool clt__cache_dir(char *out, size_t cap);
/* A whole file, at most max_bytes, malloc'ed with a NUL after it. */
clt_status clt__cache_read(const char *path, size_t max_bytes, unsigned char **data, size_t *len);
/* Writes dir/name atomically (temporary file, fsync, rename), creating dir. */
clt_status clt__cache_write(const char *dir, const char *name, const void *data, size_t len);

/* ---- GEMM tuning (lib/tuning.c) ------------------------------------------------------------- */

#define CLT__XGEMM_NPARAMS 16
extern const char *const clt__xgemm_names[CLT__XGEMM_NPARAMS];
/* Where each Xgemm parameter sits in a set (clt__xgemm_names order). */
enum { CLT__XG_GEMMK, CLT__XG_KREG, CLT__XG_KWG, CLT__XG_KWI, CLT__XG_MDIMA, CLT__XG_MDIMC,
       CLT__XG_MWG, CLT__XG_NDIMB, CLT__XG_NDIMC, CLT__XG_NWG, CLT__XG_SA, CLT__XG_SB,
       CLT__XG_STRM, CLT__XG_STRN, CLT__XG_VWM, CLT__XG_VWN };

/* One device's tuning: CLBlast parameters to override, each part optional. */
typedef struct {
    int has_xgemm;
    size_t xgemm[CLT__XGEMM_NPARAMS];   /* in clt__xgemm_names order */
    int has_routine;
    size_t min_indirect;                /* GemmRoutine's XGEMM_MIN_INDIRECT_SIZE */
    double default_gflops, tuned_gflops;
} clt__gemm_tuning;

/* The cache folder and the file name of a device's tuning. */
bool clt__tuning_path(const clt_device_info *info, char *dir, size_t dcap, char *name, size_t ncap);
/* Whether an Xgemm parameter set meets CLBlast's constraints and fits the device. */
bool clt__xgemm_valid(const size_t *p, size_t local_mem_bytes, size_t max_wg);
/* The file text for a device (malloc'ed). */
clt_status clt__tuning_format(const clt_device_info *info, const clt__gemm_tuning *t, char **out);
/* Checks a file's text (modified in place) against the device; CLT_ERR_FORMAT saying why. */
clt_status clt__tuning_parse(const clt_device_info *info, char *text, size_t len, const char *what,
                             clt__gemm_tuning *out);
/* On w's thread: applies the cached tuning when there is a good one; a bad one is logged. */
clt_status clt__tuning_load(clt__worker *w, int *applied);

/* ---- kernel launches (lib/launch.c) -------------------------------------------------------- */

/* One kernel argument: its size and a pointer to its value. */
typedef struct {
    size_t size;
    const void *value;
} clt__arg;
#define CLT_ARG(v) ((clt__arg){sizeof(v), &(v)})

/* On w's thread: enqueues kernel `kernel` of cl/`source`.cl over `global` work-items (1D,
 * rounded up to the work-group size the device allows; kernels check their bounds). */
clt_status clt__launch(clt__worker *w, const char *source, const char *kernel, size_t global,
                       const clt__arg *args, int nargs);
#define CLT_LAUNCH(w, source, kernel, global, ...)                                              \
    clt__launch((w), (source), (kernel), (global), (clt__arg[]){__VA_ARGS__},                   \
                (int)(sizeof((clt__arg[]){__VA_ARGS__}) / sizeof(clt__arg)))

/* On w's thread: allocates a float buffer of n elements (n = 0 allocates one), naming the device
 * and the size on failure. */
clt_status clt__alloc(clt__worker *w, size_t n, const char *what, cl_mem *out);
/* On w's thread: enqueues a copy of n floats (nothing when src is dst). */
clt_status clt__copy(clt__worker *w, clt__view src, clt__view dst, size_t n);
/* On w's thread: enqueues a fill of n floats with zero. */
clt_status clt__zero(clt__worker *w, clt__view v, size_t n);

/* ---- models and layers (lib/model.c, lib/layers.c) ----------------------------------------- */

typedef struct {
    clt_layer_desc desc;
    clt_shape in, out;              /* per sample */
    size_t in_numel, out_numel;
    clt_shape w_shape, b_shape;     /* parameter shapes (rank 0: none) */
    size_t w_count, b_count;
    size_t param_off;               /* first parameter in the model's flat numbering */
    size_t saved_per_sample;        /* floats kept from forward for backward, per sample */
    int device;                     /* model parallel: clt_model_place's device, -1 unplaced */
    /* Position-wise layers on a sequence (Linear, LayerNorm-last, embeddings, attention, the
     * head): rows = positions per sample (T; 1 for a vector), in_feat and out_feat the last
     * dimension of the input and output, so a batch of B is B x rows rows of in_feat. */
    size_t rows, in_feat, out_feat;
    int pair;                       /* residual begin / end: the other end's index; -1 */
    int tie;                        /* LM head: its embedding's index; embedding: the tied head's
                                     * (its gradient is then added to, never written); -1 */
    int head0, heads_all;           /* attention: its heads are the model's head0 .. of heads_all
                                     * (a tensor-parallel slice; 0 and desc.count otherwise), for
                                     * dropout masks that follow the head, not the device */
} clt__layer;

struct clt_model {
    clt_shape input;
    int nlayers, cap;
    clt__layer *layers;
    size_t nparams;
    char *description;
    clt_init init;
};

/* The parameters layer l reads (a tied head: its embedding's). */
static inline size_t clt__layer_param_off(const clt_model *m, const clt__layer *l)
{
    return l->tie >= 0 && l->desc.kind == CLT_LAYER_LM_HEAD ? m->layers[l->tie].param_off : l->param_off;
}
/* Positions per sample of the model's output (T for a (T, classes) sequence, else 1) and the
 * classes cross-entropy sees at each. */
size_t clt__model_positions(const clt_model *m);
size_t clt__model_classes(const clt_model *m);
/* 1 when the model takes token ids (its first layer is an embedding). */
bool clt__model_takes_tokens(const clt_model *m);
/* Where a pipeline may cut the model: ok[i] (i = 0..nlayers) for the boundary before layer i,
 * false inside a residual block. A tied head may sit on a later stage than its embedding (its
 * net keeps a copy of the weight: clt__net.tie_w). */
void clt__model_cuts(const clt_model *m, bool *ok);
/* Whether layers first..last can run as a net of their own: no residual block reaching
 * outside, and unless `tie_apart`, no tied head apart from its embedding; otherwise
 * CLT_ERR_INVALID_ARG naming what is cut (fn in the message). */
clt_status clt__model_check_blocks(const clt_model *m, int first, int last, bool tie_apart, const char *fn);
/* clt__model_check_blocks with a tied head and its embedding kept together. */
clt_status clt__model_check_range(const clt_model *m, int first, int last, const char *fn);

const char *clt__layer_kind_name(clt_layer_kind k);
/* Copies a model (the trainer keeps its own). */
clt_status clt__model_clone(const clt_model *m, clt_model **out);
/* PyTorch's default initialisation of every parameter, from a seeded generator, into host
 * memory (nparams floats, the flat layout). */
void clt__model_init_params(const clt_model *m, uint64_t seed, float *params);
/* Finds a parameter tensor: its offset in the flat numbering and its element count. */
clt_status clt__model_find_param(const clt_model *m, int layer, const char *name, size_t *off,
                                 size_t *count);

/* A 64-bit generator (splitmix64): the same numbers on every platform for a seed. */
static inline uint64_t clt__splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Uniform in [0, bound), bound >= 1, from clt__splitmix64: draws below 2^64 mod bound are
 * redrawn, so no value is likelier than another (a plain % would favour the small ones). */
static inline uint64_t clt__splitmix64_below(uint64_t *state, uint64_t bound)
{
    uint64_t threshold = (0 - bound) % bound;
    for (;;) {
        uint64_t v = clt__splitmix64(state);
        if (v >= threshold) return v % bound;
    }
}

/* What a layer's forward and backward see, all on one worker. Batch rows are contiguous. */
typedef struct {
    clt__worker *w;
    size_t batch;
    int training;
    uint64_t seed;        /* dropout: differs per step */
    uint64_t row0;        /* dropout: the first row's index in the whole batch, so a sample
                           * draws the same mask whichever device computes it */
    clt__view in;         /* (B, in_numel) */
    clt__view out;        /* (B, out_numel) */
    clt__view params;     /* the layer's parameters: weight then bias */
    clt__view grads;      /* their gradients, accumulated into (written when grads_fresh) */
    int grads_fresh;      /* backward writes the parameter gradients instead of adding to them:
                           * the first pass of an update, the buffer not zeroed first */
    clt__view saved;      /* (B, saved_per_sample) */
    clt__view skip;       /* residual end: the block's input (its begin's output), rows as `in`;
                           * residual begin, backward: the gradient its end kept for it */
    clt__view scratch;    /* workspace of clt__layer_scratch() floats */
    clt__view dout;       /* backward: (B, out_numel) */
    clt__view din;        /* backward: (B, in_numel); mem NULL when not wanted */
    int part;             /* backward: clt__bwd_part */
} clt__layer_io;

/* A backward in two parts, so a pipeline stage can send its input gradient before it computes
 * its weight gradients: INPUT does everything but a Linear layer's dW and db, PARAMS only those.
 * Each kernel is the one ALL runs, on the same data, so the bits do not change. */
typedef enum { CLT__BWD_ALL = 0, CLT__BWD_INPUT, CLT__BWD_PARAMS } clt__bwd_part;
/* Whether PARAMS has anything to do for the layer (its gradient for the layer's output must
 * then live until PARAMS runs). */
bool clt__layer_splits(const clt__layer *l);

/* Workspace floats a layer needs for a batch. */
size_t clt__layer_scratch(const clt__layer *l, size_t batch);
clt_status clt__layer_forward(const clt__layer *l, const clt__layer_io *io);
/* Linear l followed by a ReLU whose output is relu_out, in one GEMM pass where the device's
 * SGEMM can fuse them (*fused true); otherwise nothing is done (*fused false). */
clt_status clt__linear_relu_forward(const clt__layer *l, const clt__layer_io *io, clt__view relu_out,
                                    bool *fused);
clt_status clt__layer_backward(const clt__layer *l, const clt__layer_io *io);

/* ---- one device's share of a model (lib/net.c) --------------------------------------------- */

/* Layers [first, last] of a model on one worker, with one flat buffer each for parameters,
 * gradients and optimizer state (views per layer), activations sized for max_batch, and the
 * loss buffers when the range ends the model. Every function runs on the worker's thread. */
typedef struct {
    clt__worker *w;
    const clt_model *m;
    int first, last;
    size_t max_batch;
    size_t row0;                  /* the next forward's first row in the whole batch (dropout) */
    size_t param_base, nparams;   /* the range's parameters in the model's flat numbering */
    size_t padded;                /* params and grads hold this many (a multiple of the shards) */
    cl_mem params, grads;
    cl_mem opt[2];                /* optimizer state (momentum; Adam's m and v) of the elements
                                   * this net updates, made on the first update */
    size_t opt_count;
    cl_mem params_next;           /* an update writes the new parameters here (and the data
                                   * strategy's all-gather the other shards), opt_next the new
                                   * state: params and opt stay the last good step's until
                                   * clt__net_commit swaps them in */
    cl_mem opt_next[2];
    bool updating;                /* between clt__net_update_begin and commit or discard */
    bool grads_fresh;             /* the next backward writes every parameter gradient instead of
                                   * adding to it (the caller skips zeroing the buffer) */
    cl_mem input;                 /* (max_batch, input numel of layer first) */
    cl_mem *acts;                 /* acts[i]: output of layer first + i */
    cl_mem saved;                 /* per-layer state kept for backward */
    size_t *saved_off;
    cl_mem gbuf[2];               /* gradient ping-pong between layers */
    size_t gbuf_cap;
    cl_mem wsave;                 /* split backward: the output gradient of every layer that
                                   * splits, max_batch rows each (rows as in the activations),
                                   * kept from INPUT to PARAMS; NULL until reserved */
    cl_mem scratch;
    cl_mem tie_w, tie_g;          /* a tied head whose embedding lies before `first` (another
                                   * stage's): its own copy of the embedding's weight and that
                                   * copy's gradient, tie_count floats each; the strategy keeps
                                   * the copy equal to the embedding's and adds the gradient to
                                   * the embedding's. NULL otherwise */
    size_t tie_count;
    cl_mem labels, targets, loss_rows, partial;
    size_t npartial;
    float *host_rows;             /* (2 max_batch) losses and right-class flags, or partial
                                   * sums, read back */
    uint64_t act_bytes;           /* what it adds to its worker's activation_bytes: the input,
                                   * every layer's output and saved state, the two gradient
                                   * buffers and wsave */
} clt__net;

/* The flat buffers are padded with zeros to a multiple of pad_multiple elements, so that they
 * split into that many equal shards. */
clt_status clt__net_create(clt__worker *w, const clt_model *m, int first, int last,
                           size_t max_batch, size_t pad_multiple, clt__net **out);
void clt__net_destroy(clt__net *n);
/* The output of the range for the last forward: (B, out numel of layer last). */
clt__view clt__net_output(const clt__net *n);
/* Forward from n->input over B rows. */
clt_status clt__net_forward(clt__net *n, size_t batch, int training, uint64_t seed);
/* Backward from dout (B, out numel); din (B, in numel) is written when din.mem is set. */
clt_status clt__net_backward(clt__net *n, size_t batch, clt__view dout, clt__view din,
                             uint64_t seed);
/* The same over rows [row, row + batch) of the activation buffers, which hold max_batch rows:
 * a pipeline keeps several micro-batches alive at once at their own rows. The input rows are
 * read from n->input at that row, din is written where its view says. */
clt_status clt__net_forward_rows(clt__net *n, size_t row, size_t batch, int training, uint64_t seed);
clt_status clt__net_backward_rows(clt__net *n, size_t row, size_t batch, clt__view dout,
                                  clt__view din, uint64_t seed);
/* The same, calling done(user, layer) on the calling thread after each layer's backward is
 * queued (its parameter gradients are complete once the queue gets past that point). */
typedef clt_status (*clt__layer_done_fn)(void *user, int layer);
clt_status clt__net_backward_hook(clt__net *n, size_t row, size_t batch, clt__view dout,
                                  clt__view din, uint64_t seed, clt__layer_done_fn done, void *user);
/* The backward of rows [row, row + batch) in two parts (clt__bwd_part): INPUT as
 * clt__net_backward_rows without the weight gradients, PARAMS those, from the output gradients
 * INPUT kept at the same rows. So PARAMS may come later, and take the rows of several INPUT
 * calls at once (one pass over adjacent micro-batches, as a whole batch). clt__net_split_reserve
 * makes the room first. */
clt_status clt__net_split_reserve(clt__net *n);
clt_status clt__net_backward_input_rows(clt__net *n, size_t row, size_t batch, clt__view dout,
                                        clt__view din, uint64_t seed);
clt_status clt__net_backward_params_rows(clt__net *n, size_t row, size_t batch, uint64_t seed);
/* Tensor parallelism's pieces: forward of layers [first, last] only (rows from 0), the output
 * of one layer, and backward of layers last..first over rows [row, row + batch) of the
 * activation buffers (a pipeline slot) from dout, in part `part` (clt__bwd_part: INPUT keeps
 * the output gradients for a later clt__net_backward_params_rows). Each input gradient goes to
 * the ping-pong buffer dout is not in (rows from 0), or with INPUT to where the layer below keeps
 * it; layer first's goes to din_to when its mem is set, and *din says where it went (mem NULL
 * without want_din), so a caller can all-reduce it and go on below. */
clt_status clt__net_forward_span(clt__net *n, int first, int last, size_t row, size_t batch,
                                 int training, uint64_t seed);
clt__view clt__net_act(const clt__net *n, int layer);
clt_status clt__net_backward_span_rows(clt__net *n, int first, int last, size_t row, size_t batch,
                                       clt__view dout, clt__view din_to, int want_din, clt__view *din,
                                       uint64_t seed, clt__bwd_part part);
/* Loss of the last forward against labels/targets already in n->labels / n->targets. Writes
 * the loss gradient (scaled by grad_scale per row) into n->gbuf[0] when want_grad; *sum is
 * the plain sum of the per-row losses, added in row order in double; *correct (when not NULL)
 * the rows whose largest output is the label (MSE: the target's largest entry). */
clt_status clt__net_loss(clt__net *n, clt_loss loss, size_t batch, float grad_scale,
                         int want_grad, double *sum, size_t *correct);
/* The loss of output rows [row, row + batch); the labels/targets of those rows sit at the start
 * of n->labels / n->targets, and the gradient at the start of n->gbuf[0]. */
clt_status clt__net_loss_rows(clt__net *n, clt_loss loss, size_t row, size_t batch,
                              float grad_scale, int want_grad, double *sum, size_t *correct);
/* Sum of squares of count floats of g from its offset, in a fixed order. */
clt_status clt__net_sumsq(clt__net *n, clt__view g, size_t count, double *out);
/* One optimizer update of params[off, off + count) from the gradients at g (step counts from
 * 1), o->weight_decay applied to the tensors `decay` names (the range may start and end inside
 * tensors: a data-parallel shard). The optimizer state covers those count elements only: every
 * call names the same range. */
clt_status clt__net_optimizer_step(clt__net *n, const clt_optimizer *o, clt_decay decay, float lr,
                                   long step, float grad_scale, size_t off, size_t count, clt__view g);

/* The update is all or nothing (every strategy's second phase): after clt__net_update_begin
 * the optimizer reads params and opt and writes params_next and opt_next (no copy of the old
 * ones is needed, and a device that fails part-way leaves every device's params intact); once
 * every device has finished, the caller swaps them in with clt__net_commit (host side, workers
 * idle); after a failure anywhere, clt__net_discard drops them and drains the queue. Out of
 * an update (warm-up) the optimizer works in place. */
clt_status clt__net_update_begin(clt__net *n);
void clt__net_commit(clt__net *n);
clt_status clt__net_discard(clt__net *n);
/* The optimizer state array `which` the update in progress writes (opt[which] otherwise). */
cl_mem clt__net_new_state(const clt__net *n, int which);
/* Inside an update, after the optimizer (a collective of group c, called alike on each of its
 * ranks): the root rank's new parameters and optimizer state over [off, off + count) replace
 * every other rank's. A parameter held on several devices (a replicated layer of a tensor
 * group, the copies of a pipeline stage) then has one value, computed on one device: the
 * vendors' kernels may round differently (GEMMs, division, sqrt), so the copies' own updates
 * could drift apart by ulps. The state covers the range the optimizer was run over from 0. */
typedef struct clt__comm clt__comm;   /* lib/collective.c, below */
clt_status clt__net_share_update(clt__net *n, clt__comm *c, size_t off, size_t count, int root,
                                 const clt_collective_options *o);
/* After a successful update on every device: nets[0..n) committed. */
void clt__nets_commit(clt__net *const *nets, int n);
/* After a failed update: nets[i] (on runtime device devs[i], or i when devs is NULL) discarded,
 * all at once; the failure's own error message stays the thread's last error. */
void clt__nets_undo(clt_runtime *rt, const int *devs, clt__net *const *nets, int n);

/* From any thread: count floats of optimizer state array `which` of n (size elements: the range
 * its updates cover) from element off, on n's worker. Reading state not made yet gives zeros;
 * writing makes it (zeros, then the floats written). */
clt_status clt__net_state_io(clt__net *n, int which, size_t size, size_t off, size_t count, float *host,
                             int write);
/* Warming up (a step over zeros compiles every kernel): zeros rows of the input, labels and
 * targets; and, with the gradients zeroed, an optimizer step of rate 0 over params[off,
 * off + count) that compiles the optimizer, resets its state and drains the queue. */
clt_status clt__net_zero_batch(clt__net *n, size_t rows);
clt_status clt__net_warm_optimizer(clt__net *n, const clt_optimizer *o, size_t off, size_t count);

/* From any thread: reads or writes count floats of buf (w's) from element off, on w's thread,
 * blocking (parameters and gradients to and from the host). */
clt_status clt__buffer_io(clt__worker *w, cl_mem buf, size_t off, size_t count, float *host, int write);

/* ---- trainer and its strategies (lib/trainer.c, lib/strategy_*.c) -------------------------- */

/* One call's batch as the facade hands it to a strategy: validated, targets made for MSE. */
typedef struct {
    const float *x;           /* (batch, input numel); token ids (int32) for a model that takes
                               * them, only ever copied as bytes */
    const int32_t *labels;    /* (batch, positions) or NULL */
    const float *targets;     /* (batch, output numel) or NULL */
    size_t batch;
} clt__batch;

typedef struct clt__strategy_ops clt__strategy_ops;

/* On n's worker: queues the upload of rows [start, start + count) of the batch's inputs, and of
 * its labels or targets when it has them, to the start of n's buffers (asynchronous: drain the
 * queue before the caller's arrays go). */
clt_status clt__net_upload_rows(clt__net *n, const clt__batch *b, size_t start, size_t count);
/* Its two halves, on n's worker, without a fault point: the input rows to rows [row, row +
 * count) of n->input, and the labels or targets to the start of n's. */
clt_status clt__net_upload_input(clt__net *n, const clt__batch *b, size_t start, size_t count, size_t row);
clt_status clt__net_upload_truth(clt__net *n, const clt__batch *b, size_t start, size_t count);
/* A worker task destroying the clt__net passed as its argument. */
clt_status clt__net_destroy_task(clt__worker *w, void *net);

struct clt_trainer {
    clt_runtime *rt;
    clt_model *model;             /* the trainer's own copy */
    clt_train_params p;
    const clt__strategy_ops *ops;
    void *state;                  /* the strategy's */
    long steps;                   /* completed updates */
    int micro;                    /* steps accumulated since the last update */
    float *onehot;                /* (max_batch, classes) for MSE with labels */
    clt_data_position pos;        /* the caller's, carried by checkpoints */
    clt_progress_fn progress;     /* clt_trainer_set_progress */
    void *progress_user;
    int *dropped, ndropped;       /* elastic: runtime devices dropped, in order */
    size_t *info_samples;         /* per runtime device, for clt_step_info */
    double *info_busy;
    unsigned long late_kernels;   /* what the program caches made while a step ran on several
                                   * devices at once (clt__program_made): 0 unless a warm-up
                                   * missed a shape */
    char *vocab;                  /* clt_trainer_set_vocabulary's bytes, saved in checkpoints */
    size_t vocab_len;
};

/* clt_trainer_create for a concrete mode (lib/plan.c resolves CLT_PARALLEL_AUTO, then calls it). */
clt_status clt__trainer_create_mode(clt_trainer **out, clt_runtime *rt, const clt_model *m,
                                    const clt_train_params *params);

/* How a strategy trains: where the model lives and how a step runs. The facade validates
 * arguments, computes the learning rate and counts steps; a strategy never checks user input. */
struct clt__strategy_ops {
    const char *name;
    /* Places the model, uploads `init` (the flat initial parameters) everywhere it lives. */
    clt_status (*create)(clt_trainer *t, const float *init);
    void (*destroy)(clt_trainer *t);
    /* Forward and backward of one batch; with `update`, also the optimizer step with `lr`
     * (t->steps + 1 is its number). *loss is the batch's mean loss, *correct the rows whose
     * largest output is the right class. */
    clt_status (*step)(clt_trainer *t, const clt__batch *b, int update, float lr, double *loss,
                       size_t *correct);
    /* Forward only: outputs (batch, output numel) into out; with labels, *loss_sum the sum of
     * per-sample losses. */
    clt_status (*forward)(clt_trainer *t, const clt__batch *b, float *out, double *loss_sum);
    /* Reads or writes `count` floats of the flat parameters (or, reading, the gradients of the
     * last step) from element `off`. Writes reach every copy. */
    clt_status (*param_io)(clt_trainer *t, size_t off, size_t count, float *host, int write,
                           int grads);
    /* Optional: samples per device of the last step. */
    clt_status (*split)(const clt_trainer *t, size_t *counts, int n);
    /* Optional (checkpoints need it): reads or writes `count` floats of optimizer state array
     * `which` (0: SGD's momentum or Adam's m, 1: Adam's v) from element `off`, in the model's
     * flat numbering whatever the sharding. Reading state not made yet gives zeros (what it
     * starts as); writing makes it. */
    clt_status (*state_io)(clt_trainer *t, int which, size_t off, size_t count, float *host,
                           int write);
    /* Optional: each runtime device's compute seconds in the last step (0 where idle). */
    void (*busy)(const clt_trainer *t, double *seconds, int n);
    /* Optional: the gradient buckets of the last update and how many overlapped backward. */
    void (*buckets)(const clt_trainer *t, int *buckets, int *overlapped);
};

extern const clt__strategy_ops clt__strategy_data;   /* one device, or a replica on each */
extern const clt__strategy_ops clt__strategy_model;  /* layers in stages on devices, a pipeline */
extern const clt__strategy_ops clt__strategy_tensor; /* Linear layers split across devices */

/* The numbers every strategy shares (lib/step.c): the loss gradient's scale for a global batch
 * and the mean of a loss sum; the clipping factor for a gradient sum of squares (CLT_ERR_NUMERIC
 * when the loss or the gradients are not finite and the trainer checks). */
float clt__loss_grad_scale(const clt_trainer *t, size_t global_batch);
double clt__loss_mean(const clt_trainer *t, double sum, size_t global_batch);
clt_status clt__grad_scale(const clt_trainer *t, double loss, double sumsq, float *gscale);
/* The per-step seed (dropout) of the coming step. */
uint64_t clt__step_seed(const clt_trainer *t);
/* The checks of the run's hyper-parameters that need no runtime: loss, optimizer, schedule,
 * clipping, accumulation (a checkpoint's are checked with them too). */
clt_status clt__check_hyper(const clt_train_params *p);
/* Optimizer state arrays an optimizer keeps: 0 (SGD without momentum), 1 (SGD) or 2 (Adam)
 * (lib/net.c, where the update keeps them). */
int clt__optim_state_arrays(const clt_optimizer *o);

/* ---- checkpoints (lib/checkpoint.c) -------------------------------------------------------- */

/* A checkpoint parsed from bytes and checked (docs/CHECKPOINT.md): everything a load needs,
 * the arrays left in the buffer as little-endian floats. */
typedef struct {
    clt_model *model;             /* rebuilt from the description: a valid model */
    clt_train_params p;           /* loss, optim, schedule, clip_norm, accumulation, seed */
    long steps;
    clt_data_position pos;
    int nstate;                   /* optimizer state arrays stored */
    const uint8_t *params;        /* (nparams) floats, inside the parsed buffer */
    const uint8_t *state[2];      /* (nparams) floats each */
    const char *vocab;            /* the vocabulary section (version 2), vocab_len bytes; NULL */
    size_t vocab_len;
} clt__checkpoint;
/* Keeps a copy of a vocabulary in the trainer (saved with its checkpoints). */
clt_status clt__trainer_keep_vocabulary(clt_trainer *t, const char *vocab, size_t len);

/* Parses and checks a whole checkpoint held in buf (`name` for messages). CLT_ERR_FORMAT with
 * what is wrong; on success free it with clt__checkpoint_free (buf must outlive it). */
clt_status clt__checkpoint_parse(const uint8_t *buf, size_t len, const char *name,
                                 clt__checkpoint *out);
void clt__checkpoint_free(clt__checkpoint *c);

/* The file helpers checkpoints and safetensors files share. `what` names the kind of file in
 * messages ("saving checkpoint PATH: ..."). */
typedef struct {
    const void *data;
    size_t bytes;
} clt__chunk;
/* Writes the chunks in order to PATH.tmp.XXXXXX in path's folder, flushes it to disk, renames
 * it over path and flushes the folder: on failure (CLT_ERR_IO naming the path and the system's
 * reason) the temporary file is removed and path is untouched. */
clt_status clt__file_write_atomic(const char *path, const char *what, const clt__chunk *chunks,
                                  int n);
/* A whole regular file in memory (*out malloc'ed). */
clt_status clt__file_read(const char *path, const char *what, uint8_t **out, size_t *len);
/* n floats from little-endian bytes; and host floats to little-endian in place (nothing to do
 * on a little-endian host). */
void clt__floats_from_le(float *dst, const uint8_t *src, size_t n);
void clt__floats_to_le(float *a, size_t n);
/* Whether `file`'s model is `mine`, layer by layer: CLT_ERR_SHAPE naming the first difference
 * (path names the file, whose mine: "this trainer's"). */
clt_status clt__model_match(const clt_model *mine, const clt_model *file, const char *path,
                            const char *whose);
/* Host copies (malloc'ed, the caller frees) of the trainer's parameters (arrays[0]) and its
 * first nstate optimizer state arrays (arrays[1..nstate]), in the model's flat numbering
 * whatever the strategy. */
clt_status clt__trainer_state_read(clt_trainer *t, int nstate, float *arrays[3]);
/* Writes them all; when a device fails midway, the old values are put back (`path` names the
 * file in the log line when even that fails) and the failure's message is kept. */
clt_status clt__trainer_state_replace(clt_trainer *t, int nstate, float *const fresh[3],
                                      const char *path);

/* ---- safetensors files (lib/safetensors.c) -------------------------------------------------- */

/* One tensor of a safetensors header. */
enum { CLT__ST_MAX_RANK = 8 };
typedef struct {
    char *name;                   /* decoded from JSON, NUL-terminated (malloc'ed) */
    char dtype[8];                /* "F32", "F16", ... (one safetensors knows) */
    int rank;
    uint64_t dims[CLT__ST_MAX_RANK];
    uint64_t begin, end;          /* data_offsets: bytes of the data section */
    const uint8_t *data;          /* begin's byte, inside the parsed buffer */
} clt__st_tensor;

/* A safetensors file parsed from bytes and checked: the header length fits the file, the
 * header is valid JSON of the format's shape, every dtype is one of safetensors', every tensor's
 * bytes are its shape times its dtype's size, and the tensors cover the data section without a
 * gap or an overlap. The tensors are in header order. */
typedef struct {
    clt__st_tensor *t;
    int n;
    char **meta;                  /* __metadata__: key, value, key, value ... (2 nmeta) */
    int nmeta;
} clt__safetensors;

/* Parses buf (len bytes; `name` for messages): CLT_ERR_FORMAT saying what is wrong, and where
 * in the header. Free with clt__safetensors_free (buf must outlive it). */
clt_status clt__safetensors_parse(const uint8_t *buf, size_t len, const char *name,
                                  clt__safetensors *out);
void clt__safetensors_free(clt__safetensors *s);
/* The tensor of that name, or NULL. */
const clt__st_tensor *clt__safetensors_find(const clt__safetensors *s, const char *name);
/* A tensor to write: float32, its data little-endian. */
typedef struct {
    const char *name;
    int rank;
    const uint64_t *dims;
    const void *data_le;
} clt__st_out;
/* Writes F32 tensors (in that order, data contiguous) and string metadata pairs (key, value,
 * key, value ...) atomically. */
clt_status clt__safetensors_write(const char *path, const clt__st_out *t, int n,
                                  const char *const *meta, int nmeta);

/* ---- device-to-device transfers (lib/transfer.c) ------------------------------------------- */

/* A link carries float messages from one worker's buffers to another's. Each side runs its half
 * on its own worker thread: the sender never touches the receiver's queue, nor the receiver the
 * sender's. Inside one context the receiver's queue copies straight from the sender's buffer
 * (clEnqueueCopyBuffer waiting on a marker event of the sender's queue); across contexts the
 * sender's worker reads the message chunk by chunk into a pinned staging buffer (its own,
 * CL_MEM_ALLOC_HOST_PTR, mapped) and the receiver's worker writes each chunk to its buffer as
 * soon as it is posted, so the read of chunk k+1 overlaps the write of chunk k.
 *
 * A send never waits for the receiver, which is what lets a pipeline schedule run without
 * deadlock: messages are numbered by a call tag and a slot (the micro-batch), and each message
 * sits at its own offset `at` of the link's staging (the row offset of its micro-batch), so a
 * slot is written once per tag. The sender's source rows and the staging stay untouched until
 * the receiver's queue has finished with them: the caller reuses a slot with a new tag only
 * after both sides' tasks of the last tag returned (and drained their queues).
 *
 * Links share a group: its abort wakes every waiting receiver (CLT_ERR_ABORTED naming the
 * device that failed), and every wait is bounded by the group's timeout (CLT_ERR_TIMEOUT). */
typedef struct clt__xfer_group clt__xfer_group;
typedef struct clt__link clt__link;

/* timeout_s <= 0: 300 s. */
clt_status clt__xfer_group_create(clt__xfer_group **out, double timeout_s);
void clt__xfer_group_destroy(clt__xfer_group *g);
/* Records the first failure (device index and message) and wakes every waiter. */
void clt__xfer_group_abort(clt__xfer_group *g, int device, clt_status st, const char *msg);
/* Clears an abort; call while no side is inside a send or receive. */
void clt__xfer_group_reset(clt__xfer_group *g);

/* A link from worker `from` to worker `to` with room for cap floats (the largest at + count)
 * and `slots` messages per tag; chunk_floats 0: 256 Ki floats (1 MiB). Staging is made on the
 * sender's first send. Destroy from any thread but the receiver's while a receive runs. */
clt_status clt__link_create(clt__link **out, clt__xfer_group *g, clt__worker *from,
                            clt__worker *to, size_t cap, int slots, size_t chunk_floats);
void clt__link_destroy(clt__link *l);
/* Whether the link copies inside one context (true) or through host staging. */
bool clt__link_direct(const clt__link *l);
/* On the sender's thread: message `slot` of call `tag` is count floats of src. Returns once the
 * data is in staging (or, inside one context, once a marker behind it is queued). */
clt_status clt__link_send(clt__link *l, uint32_t tag, int slot, size_t at, clt__view src,
                          size_t count);
/* On the receiver's thread: waits for that message and enqueues its copy into dst on the
 * receiver's queue (later commands of that queue see it). count and at must match the send. */
clt_status clt__link_recv(clt__link *l, uint32_t tag, int slot, size_t at, clt__view dst,
                          size_t count);

/* ---- pipeline schedules (lib/pipeline.c) ---------------------------------------------------- */

/* One instruction of a pipeline schedule: what stage `stage` does with micro-batch `mb`. */
typedef enum {
    CLT__OP_FWD = 0,          /* forward of the stage's layers (stage 0 uploads the inputs) */
    CLT__OP_BWD,              /* backward (the last stage computes the loss first) */
    CLT__OP_SEND_ACT,         /* output rows to stage + 1 */
    CLT__OP_RECV_ACT,         /* input rows from stage - 1 */
    CLT__OP_SEND_GRAD,        /* input gradient rows to stage - 1 */
    CLT__OP_RECV_GRAD,        /* output gradient rows from stage + 1 */
    CLT__OP_OUTPUT,           /* forward only, last stage: read outputs (and the loss) back */
    CLT__OP_WGRAD             /* split schedules: the weight gradients of backwards (BWD then
                               * computes the input gradient only, sent before these), of mbs
                               * micro-batches from mb at once */
} clt__op_kind;

typedef struct {
    int kind;                 /* clt__op_kind */
    int stage, mb;
    int mbs;                  /* WGRAD: micro-batches mb .. mb + mbs - 1; 1 for the others */
} clt__op;

/* Per-device instruction lists for a pipeline: the generator writes each stage's list from the
 * schedule's rule, then merges the stages that share a device by simulating the run (sends
 * never wait, a receive waits for its send), which also proves the lists deadlock-free. */
typedef struct {
    clt_pipeline_schedule kind;
    int nstages, ndev, micro, train;
    int split;                /* backwards are BWD (input gradient), SEND_GRAD, then WGRAD */
    clt__op **ops;            /* ops[d]: device d's list, in order */
    size_t *nops;
} clt__schedule;

/* stage_dev[s] in 0..ndev-1 is the device of stage s. train 0: forward only (every schedule is
 * then all forwards, with OUTPUT on the last stage). split: each backward is split, its input
 * gradient sent before its weight gradients are computed (WGRAD), so the previous stage starts
 * sooner; and the weight gradients of several micro-batches are one WGRAD, one pass over their
 * rows (GEMMs as thick as the group, not one thin one each): GPipe, which keeps every
 * micro-batch's activations anyway, all of them at the end; 1F1B and zero bubble pairs (one
 * more slot, see clt__pipeline_slots; zero bubble holds a pair's WGRAD back, see stage_list);
 * naive (tests only) each on its own. */
clt_status clt__schedule_build(clt__schedule **out, clt_pipeline_schedule kind, int nstages,
                               const int *stage_dev, int ndev, int micro, int train, int split);
void clt__schedule_free(clt__schedule *s);
/* The schedule kept in *cache (NULL at first; the caller frees it), rebuilt when the kind, the
 * micro-batch count or split changes. */
clt_status clt__schedule_cached(clt__schedule **cache, clt_pipeline_schedule kind, int nstages,
                                const int *stage_dev, int ndev, int micro, int train, int split,
                                const clt__schedule **out);
/* The micro-batches stage k of S holds at once under a schedule of M micro-batches: *slots for
 * its activations, *gslots for the gradient it sends back (lib/strategy_model.c says why).
 * split: the schedule's (clt__schedule_build). */
void clt__pipeline_slots(clt_pipeline_schedule kind, int S, int k, int M, int split, int *slots, int *gslots);
/* Micro-batches per WGRAD of a split schedule of M micro-batches. */
int clt__pipeline_wgroup(clt_pipeline_schedule kind, int M);
const char *clt__op_name(int kind);
/* The timeline name of an instruction ("forward mb 3"; a static string), NULL for none. */
const char *clt__op_span_name(clt__op op);
/* Where CLT_FAULT strikes an instruction of this kind (CLT__FAULT_*). */
int clt__op_fault_kind(int kind);

/* Automatic partitioning: contiguous ranges of layers to devices in order (a device may get
 * none) minimising the slowest device's total of cost[d * nlayers + i] (layer i's measured time
 * on device d), with each device's total of mem[i] within cap[d]. Writes device_of[i].
 * cut_ok (NULL: any) says where a range may start or end: cut_ok[i] for the boundary before
 * layer i (0 and nlayers always may). CLT_ERR_OUT_OF_DEVICE_MEMORY when no split fits. */
clt_status clt__partition(int nlayers, int ndev, const double *cost, const double *mem,
                          const double *cap, const bool *cut_ok, int *device_of);

/* ---- runtime (lib/runtime.c) --------------------------------------------------------------- */

typedef struct clt__comm clt__comm;
typedef struct clt__mpi clt__mpi;
typedef struct clt__mpi_ops clt__mpi_ops;

struct clt_runtime {
    char *trace_path;         /* timeline file written at destroy (CLT_TRACE or the option) */
    double trace_t0;          /* host time the timeline starts at */
    clt__device *devs;        /* every discovered device */
    size_t ndev;
    int nworkers;
    clt__worker *workers;     /* one per runtime device */
    cl_context *contexts;     /* distinct contexts, retained once each */
    int ncontexts;
    clt_runtime_options opts;
    pthread_mutex_t comm_lock;   /* held through each public collective: one at a time */
    clt__comm *comm;             /* the public collectives' group, made on first use */
    void (*comm_destroy)(clt__comm *c);   /* set with comm by lib/collective.c, which sits
                                           * above the runtime: destroy calls it */
    clt__mpi *mpi;               /* the processes the runtime spans (lib/mpi.c), or NULL */
    const clt__mpi_ops *mpi_ops; /* how the core calls that layer: set with mpi */
    clt__fault_state fault;      /* opts.fault / CLT_FAULT, this runtime's alone */
};

/* Runs fn on the workers devs[0..n) (NULL: 0..n-1) at once with args[i] = (char *)args +
 * i * stride; waits for all. Returns CLT_OK or the first failing device's error, a device's own
 * failure preferred over another's CLT_ERR_ABORTED (its message on this thread). */
clt_status clt__run_on(clt_runtime *rt, const int *devs, int n, clt__task_fn fn, void *args,
                       size_t stride);
/* clt__run_on over every worker. */
clt_status clt__runtime_parallel(clt_runtime *rt, clt__task_fn fn, void *args, size_t stride);

/* ---- collectives (lib/collective.c) -------------------------------------------------------- */

/* A group of ranks, one per runtime device, that run collectives together over pinned host
 * staging. The per-rank functions below are called on worker w's own thread, one call per
 * rank, every rank with the same arguments apart from its buffers: a task already running on
 * each worker (a training step) can all-reduce part of a buffer without leaving its thread.
 * Buffers live in w's context; offsets and counts are in floats.
 *
 * Ranks signal each other through per-rank progress counters tagged with a per-call sequence
 * number, so successive calls never mix their signals; no global lock is taken. Every call ends
 * with all ranks having finished (or all failing): when one rank fails it aborts the group,
 * the others return CLT_ERR_ABORTED naming it, and every wait is bounded by the timeout
 * (CLT_ERR_TIMEOUT naming the rank waited for). An aborted group refuses further calls
 * (CLT_ERR_ABORTED) until clt__comm_reset(), which must be called while no rank is inside
 * a collective (the public functions do it after a failed call). */
clt_status clt__comm_create(clt__comm **out, clt_runtime *rt);
/* A group of n ranks over some of the runtime's devices: rank r is device devices[r] (each
 * device at most once; NULL: rank r is device r). Messages name devices by runtime index. */
clt_status clt__comm_create_group(clt__comm **out, clt_runtime *rt, const int *devices, int n);
/* Frees the staging buffers (on their workers' threads) and the group. NULL is fine. */
void clt__comm_destroy(clt__comm *c);
void clt__comm_reset(clt__comm *c);
/* Aborts the group from outside a call: runtime device `device` failed elsewhere (a member or
 * not), so ranks waiting for it, or about to, stop with CLT_ERR_ABORTED. */
void clt__comm_abort(clt__comm *c, int device, clt_status st, const char *msg);
/* The runtime's own group, created on first use; the caller holds rt->comm_lock. */
clt_status clt__runtime_comm(clt_runtime *rt, clt__comm **out);

clt_status clt__comm_allreduce(clt__comm *c, clt__worker *w, cl_mem send, size_t send_off,
                               cl_mem recv, size_t recv_off, size_t count, clt_op op,
                               const clt_collective_options *o);
/* buf holds count floats from off; the root's are copied to every rank's. */
clt_status clt__comm_broadcast(clt__comm *c, clt__worker *w, cl_mem buf, size_t off, size_t count,
                               int root, const clt_collective_options *o);
/* send holds n*count floats from send_off; recv (count floats) receives block w->index. */
clt_status clt__comm_reduce_scatter(clt__comm *c, clt__worker *w, cl_mem send, size_t send_off,
                                    cl_mem recv, size_t recv_off, size_t count, clt_op op,
                                    const clt_collective_options *o);
/* send holds count floats; recv (n*count floats) receives every rank's, in rank order. */
/* In place, segments of any lengths: rank r of the group gets the sum (op) of every rank's
 * buf[off + bounds[r], off + bounds[r + 1]) there; bounds has n + 1 increasing offsets and must
 * be the same on every rank. Ranks outside the group, or an empty vector, return at once. */
clt_status clt__comm_reduce_scatter_v(clt__comm *c, clt__worker *w, cl_mem buf, size_t off,
                                      const size_t *bounds, clt_op op,
                                      const clt_collective_options *o);
clt_status clt__comm_all_gather(clt__comm *c, clt__worker *w, cl_mem send, size_t send_off,
                                cl_mem recv, size_t recv_off, size_t count,
                                const clt_collective_options *o);

/* ---- MPI (lib/mpi.c, in libcltrain-mpi) ------------------------------------------------------ */

/* The MPI layer lives in its own library, libcltrain-mpi, which alone links libmpi, so that a
 * program that never asks for MPI never loads it. The core reaches the layer only through this
 * table, which lib/mpi.c fills: a runtime under MPI holds it beside its clt__mpi handle
 * (rt->mpi_ops, rt->mpi). clt_runtime_create_mpi (libcltrain-mpi) sets both itself; opts.mpi
 * finds the table registered by the layer (clt__mpi_register) when it is linked in, else loads
 * the layer with dlopen and asks clt__mpi_layer (lib/runtime.c).
 *
 * A runtime spans the processes of an MPI communicator: lane r joins local device r of every
 * process (each process has the same device count). Every call is bounded by its timeout and
 * names a process that never reached it (CLT_ERR_TIMEOUT); after any failure the layer refuses
 * further calls (CLT_ERR_ABORTED). No slot is optional. */
struct clt__mpi_ops {
    const char *version;   /* PACKAGE_VERSION of the build it comes from: the core's must match */
    /* opts.mpi: initialises MPI (MPI_THREAD_MULTIPLE) if needed, joins MPI_COMM_WORLD and sets
     * rt->mpi and rt->mpi_ops (even when it fails half way: clt_runtime_destroy closes it). */
    clt_status (*attach_world)(clt_runtime *rt);
    void (*close)(clt__mpi *m);
    int (*size)(const clt__mpi *m);
    int (*rank)(const clt__mpi *m);
    /* On lane `lane`'s worker thread: recv = op over processes of send (count floats; send ==
     * recv in place). CLT_OP_AVG sums: the caller divides. */
    clt_status (*allreduce)(clt__mpi *m, int lane, const float *send, float *recv, size_t count,
                            clt_op op, double timeout);
    /* buf holds size * count floats; block `rank` of the sum over processes lands in
     * buf[0, count). */
    clt_status (*reduce_scatter)(clt__mpi *m, int lane, float *buf, size_t count, clt_op op,
                                 double timeout);
    /* buf holds size * count floats, this process's block at rank * count: every block
     * arrives. */
    clt_status (*all_gather)(clt__mpi *m, int lane, float *buf, size_t count, double timeout);
    /* On the calling thread (no worker inside MPI): every process's k doubles, in process
     * order, into all (size * k); mine is copied to its place. */
    clt_status (*gather_doubles)(clt__mpi *m, const double *mine, int k, double *all);
    /* buf holds every process's rows, process q's counts[q] floats after those of the ones
     * before; this process's are filled in, the others' arrive. */
    clt_status (*gather_rows)(clt__mpi *m, float *buf, const size_t *counts);
    /* On the calling thread: buf (count floats) becomes its sum over the processes. */
    clt_status (*sum_floats)(clt__mpi *m, float *buf, size_t count);
};

/* libcltrain-mpi's entry point for the core when opts.mpi loads it (exported, looked up by
 * dlsym): its table. */
#define CLT_MPI_LAYER_SYMBOL "clt__mpi_layer"
CLT_API const clt__mpi_ops *clt__mpi_layer(void);
/* lib/runtime.c keeps the table lib/mpi.c's constructor hands it, once the layer is in the
 * process (linked in or loaded): opts.mpi uses it, and loads the layer only when it is NULL. */
CLT_LAYER_API void clt__mpi_register(const clt__mpi_ops *ops);

#endif /* CLT_INTERNAL_H */
