/* cltrain: train neural networks on several OpenCL devices of any vendor in one process.
 *
 * Overview
 * --------
 * A runtime opens a set of OpenCL devices, from any number of platforms (NVIDIA, AMD, Intel,
 * PoCL on the CPU), chosen by a device spec string. Each device gets one host worker thread
 * that owns its context, command queue and kernels; everything that touches a device runs on
 * its worker, so the library's calls are safe to make from any thread.
 *
 * Example: open three devices and run your own code on each one's worker thread.
 *
 *     #include <cltrain.h>
 *
 *     static clt_status fill(void *user, const clt_device_ctx *d) {
 *         float v = (float)d->index;           // runs on device d's worker thread
 *         return clEnqueueFillBuffer(d->queue, ((cl_mem *)user)[d->index], &v, sizeof v,
 *                                    0, 1024 * sizeof v, 0, NULL, NULL) == CL_SUCCESS
 *                    ? CLT_OK : CLT_ERR_OPENCL;
 *     }
 *
 *     clt_runtime *rt;
 *     if (clt_runtime_create(&rt, "cpu,cpu,cpu") != CLT_OK) {
 *         fprintf(stderr, "cltrain: %s\n", clt_last_error());
 *         return 1;
 *     }
 *     printf("%d devices\n", clt_runtime_device_count(rt));
 *     clt_runtime_exec_all(rt, fill, bufs);     // in parallel, one call per device
 *     clt_runtime_destroy(rt);
 *
 * Conventions
 * -----------
 * - Every fallible call returns clt_status; CLT_OK is 0. The values shared with OpenCL use
 *   OpenCL's numbers, so a driver error and a library error speak one language.
 * - clt_last_error() returns a thread-local message for the last failure on the calling thread:
 *   what failed, on which device, the OpenCL error by name, and where. Read it, never free it.
 * - Out parameters come first; an object returned through `**out` is the caller's and is freed
 *   with the matching `_destroy`, which accepts NULL.
 * - The library never exits, aborts or prints on its own. Logging goes to a callback set with
 *   clt_log_set_callback(), or to stderr when the environment sets CLT_LOG=error|warn|info|debug.
 */
#ifndef CLTRAIN_H
#define CLTRAIN_H

#ifndef CL_TARGET_OPENCL_VERSION
#define CL_TARGET_OPENCL_VERSION 120
#endif
#include <CL/cl.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(CLT_BUILDING_LIBRARY) && defined(CLT_HAVE_VISIBILITY)
#define CLT_API __attribute__((visibility("default")))
#else
#define CLT_API
#endif

/* ---------------------------------------------------------------------------------------------
 * Status codes. X(name, value, description): values shared with OpenCL reuse its numbers;
 * the library's own start at -2000.
 */
#define CLT_STATUS_LIST(X)                                                                       \
    X(CLT_OK, 0, "success")                                                                      \
    X(CLT_ERR_DEVICE_NOT_FOUND, -1, "no device matches")                                         \
    X(CLT_ERR_DEVICE_NOT_AVAILABLE, -2, "device not available")                                  \
    X(CLT_ERR_OUT_OF_DEVICE_MEMORY, -4, "out of device memory")                                  \
    X(CLT_ERR_OUT_OF_RESOURCES, -5, "out of device resources")                                   \
    X(CLT_ERR_OUT_OF_HOST_MEMORY, -6, "out of host memory")                                      \
    X(CLT_ERR_BUILD_PROGRAM, -11, "kernel build failed")                                         \
    X(CLT_ERR_INVALID_ARG, -30, "invalid argument")                                              \
    X(CLT_ERR_INVALID_CONTEXT, -34, "buffer or object from a foreign context")                   \
    X(CLT_ERR_INVALID_BUFFER, -38, "invalid buffer")                                             \
    X(CLT_ERR_INVALID_BUFFER_SIZE, -61, "invalid buffer size")                                   \
    X(CLT_ERR_OPENCL, -2000, "OpenCL call failed")                                               \
    X(CLT_ERR_BAD_SPEC, -2001, "device spec does not parse")                                     \
    X(CLT_ERR_BLAS, -2002, "CLBlast call failed")                                                \
    X(CLT_ERR_THREAD, -2003, "thread creation or synchronisation failed")                        \
    X(CLT_ERR_IO, -2004, "file input/output failed")                                             \
    X(CLT_ERR_FORMAT, -2005, "malformed file or data")                                           \
    X(CLT_ERR_SHAPE, -2006, "shape mismatch")                                                    \
    X(CLT_ERR_NUMERIC, -2007, "NaN or Inf detected")                                             \
    X(CLT_ERR_TIMEOUT, -2008, "operation timed out")                                             \
    X(CLT_ERR_ABORTED, -2009, "aborted because another device failed")                           \
    X(CLT_ERR_UNSUPPORTED, -2010, "not supported")                                               \
    X(CLT_ERR_STATE, -2011, "call not valid in the current state")                               \
    X(CLT_ERR_MPI, -2012, "MPI call failed")

typedef enum {
#define CLT__STATUS_ENUM(name, value, text) name = value,
    CLT_STATUS_LIST(CLT__STATUS_ENUM)
#undef CLT__STATUS_ENUM
} clt_status;

/* A short constant description of a status ("out of device memory"); never NULL. */
CLT_API const char *clt_status_str(clt_status s);
/* The enum name of a status ("CLT_ERR_OUT_OF_DEVICE_MEMORY"); never NULL. */
CLT_API const char *clt_status_name(clt_status s);
/* The calling thread's message for its last failed call; "" when none. Owned by the library. */
CLT_API const char *clt_last_error(void);
/* The name of an OpenCL error code ("CL_INVALID_VALUE"); never NULL. */
CLT_API const char *clt_cl_error_name(cl_int err);
/* The package version, "MAJOR.MINOR.PATCH". */
CLT_API const char *clt_version(void);

/* ---------------------------------------------------------------------------------------------
 * Logging. Off by default. CLT_LOG=error|warn|info|debug in the environment sends messages at
 * that level and above to stderr; a callback, when set, receives them instead.
 */
typedef enum { CLT_LOG_ERROR = 0, CLT_LOG_WARN = 1, CLT_LOG_INFO = 2, CLT_LOG_DEBUG = 3 } clt_log_level;
typedef void (*clt_log_fn)(clt_log_level level, const char *message, void *user);
/* Process-wide: set fn = NULL to go back to the CLT_LOG behaviour. max_level filters. */
CLT_API void clt_log_set_callback(clt_log_fn fn, clt_log_level max_level, void *user);

/* ---------------------------------------------------------------------------------------------
 * Shapes of one sample, without the batch dimension: {1024} for a vector, {C, H, W} for an image
 * (row-major, W fastest, as PyTorch's NCHW without N).
 */
#define CLT_MAX_RANK 4
typedef struct {
    int rank;                     /* 1..CLT_MAX_RANK */
    int dims[CLT_MAX_RANK];
} clt_shape;

static inline clt_shape clt_shape1(int n) { clt_shape s = {1, {n, 0, 0, 0}}; return s; }
static inline clt_shape clt_shape3(int c, int h, int w) { clt_shape s = {3, {c, h, w, 0}}; return s; }
/* Number of elements of one sample; 0 for an invalid shape. */
static inline size_t clt_shape_numel(clt_shape s)
{
    if (s.rank < 1 || s.rank > CLT_MAX_RANK) return 0;
    size_t n = 1;
    for (int i = 0; i < s.rank; i++) {
        if (s.dims[i] <= 0) return 0;
        n *= (size_t)s.dims[i];
    }
    return n;
}

/* ---------------------------------------------------------------------------------------------
 * Devices. Discovery covers every platform of the ICD loader. A device spec selects devices:
 *
 *   all | gpu | cpu | accelerator    every device (of that type), platform by platform
 *   P:D                              device D of platform P, as `cltrain info` numbers them
 *   P:*                              every device of platform P
 *   any other word                   devices whose name, vendor or platform name contains it,
 *                                    case-insensitively ("nvidia", "gfx1100", "pocl")
 *
 * Entries are separated by commas and taken in order. An entry may repeat ("0:0,0:0"): each
 * occurrence opens the device again as a separate runtime device, with its own worker thread
 * and queue, so multi-device code runs on a one-device machine. A spec, or any entry of it,
 * that selects nothing is an error whose message lists the devices that exist.
 */
typedef enum {
    CLT_DEVICE_CPU = 1,
    CLT_DEVICE_GPU = 2,
    CLT_DEVICE_ACCELERATOR = 4,
    CLT_DEVICE_OTHER = 8
} clt_device_type;

typedef struct {
    int platform;              /* P in "P:D" */
    int device;                /* D in "P:D" */
    clt_device_type type;
    char name[128];
    char vendor[128];
    char platform_name[128];
    char version[96];          /* CL_DEVICE_VERSION, "OpenCL 3.0 ..." */
    char driver_version[64];
    int opencl_major, opencl_minor;   /* parsed from version */
    uint64_t global_mem_bytes;
    uint64_t max_alloc_bytes;
    uint64_t local_mem_bytes;
    unsigned compute_units;
    unsigned max_clock_mhz;
    size_t max_work_group_size;
    int has_fp16, has_fp64;
    int unified_memory;        /* host and device share memory (CPUs, integrated GPUs) */
} clt_device_info;

/* Every device on every platform, in "P:D" order. With infos = NULL only *count is set; else up
 * to cap entries are written and *count is the total. No platform at all gives *count = 0 and
 * CLT_OK; a broken ICD gives an error. */
CLT_API clt_status clt_devices_list(clt_device_info *infos, size_t cap, size_t *count);

/* Resolves a spec (NULL: $CLT_DEVICES, else "all") to indices into clt_devices_list()'s order,
 * repeats included; same cap/count convention. */
CLT_API clt_status clt_devices_select(const char *spec, int *indices, size_t cap, size_t *count);

/* ---------------------------------------------------------------------------------------------
 * Runtime: a set of opened devices, each with its worker thread.
 */
typedef struct clt_runtime clt_runtime;

typedef enum {
    /* One context per platform holding all its selected devices: copies between devices of one
     * platform use clEnqueueCopyBuffer. The default. */
    CLT_CONTEXT_PER_PLATFORM = 0,
    /* One context per runtime device: every inter-device copy goes through host staging. */
    CLT_CONTEXT_PER_DEVICE = 1
} clt_context_mode;

typedef struct {
    const char *devices;           /* spec; NULL: $CLT_DEVICES, else "all" */
    clt_context_mode context_mode;
    int profiling;                 /* queues with CL_QUEUE_PROFILING_ENABLE */
} clt_runtime_options;

/* Defaults: devices NULL, CLT_CONTEXT_PER_PLATFORM, no profiling. */
CLT_API clt_runtime_options clt_runtime_options_default(void);

/* Opens the devices that spec selects (NULL: $CLT_DEVICES, else "all"). */
CLT_API clt_status clt_runtime_create(clt_runtime **out, const char *spec);
CLT_API clt_status clt_runtime_create_ex(clt_runtime **out, const clt_runtime_options *opts);
/* Stops the workers and releases everything. NULL is fine. */
CLT_API void clt_runtime_destroy(clt_runtime *rt);

/* Number of runtime devices (repeats counted); 0 for NULL. */
CLT_API int clt_runtime_device_count(const clt_runtime *rt);
CLT_API clt_status clt_runtime_device_info(const clt_runtime *rt, int device, clt_device_info *out);
/* The context that runtime device `device` lives in, for creating your own buffers there.
 * The runtime owns it: retain it if you keep it past clt_runtime_destroy. NULL on bad input. */
CLT_API cl_context clt_runtime_context(const clt_runtime *rt, int device);

/* What a callback run on a device's worker thread may use. Valid during the call only. */
typedef struct {
    int index;                 /* runtime device index */
    cl_context context;
    cl_device_id device;
    cl_command_queue queue;    /* in order; the worker's own: do not release it */
} clt_device_ctx;

typedef clt_status (*clt_device_fn)(void *user, const clt_device_ctx *d);

/* Runs fn on device `device`'s worker thread and waits for it. The callback's status is
 * returned; its clt_last_error() message is carried over to the calling thread. */
CLT_API clt_status clt_runtime_exec(clt_runtime *rt, int device, clt_device_fn fn, void *user);
/* Runs fn on every device's worker at once and waits for all of them. Returns CLT_OK or the
 * error of the lowest-numbered device that failed. */
CLT_API clt_status clt_runtime_exec_all(clt_runtime *rt, clt_device_fn fn, void *user);

/* Builds OpenCL C source for one runtime device (from inside or outside a worker callback).
 * Programs are cached per (device, source, options); the runtime owns *out. A build failure
 * returns CLT_ERR_BUILD_PROGRAM with the device name and the compiler's log in the message. */
CLT_API clt_status clt_runtime_build(clt_runtime *rt, int device, const char *source,
                                     const char *options, cl_program *out);

/* ---------------------------------------------------------------------------------------------
 * Collectives across the runtime's devices, on float32 device buffers: all-reduce, broadcast,
 * reduce-scatter, all-gather. Buffer i (one per runtime device, in device order) lives in
 * clt_runtime_context(rt, i): the runtime's own buffers or ones you created there. Offsets are
 * not taken: pass a sub-buffer to work on part of a buffer.
 *
 * The data moves through pinned host staging: each device's worker thread copies its data to
 * the host, the workers run a ring (reduce-scatter then all-gather, N-1 steps each, chunked and
 * pipelined) over the staging buffers, and copy the result back; on devices that all share host
 * memory, the all-reduce maps the device buffers instead (see clt_algo). Every device ends with the
 * same bits, and the same inputs give the same bits on every run: each element is reduced by
 * one thread, in a fixed order of devices. Calls on one runtime run one at a time; they return
 * when the results are in the device buffers. Call them from any thread but not from inside a
 * clt_runtime_exec callback of the same runtime (CLT_ERR_STATE).
 *
 * When a device fails during a collective every device stops within the timeout; the call
 * returns the failing device's error and the runtime stays usable. A device that makes no
 * progress for timeout_s seconds gives CLT_ERR_TIMEOUT naming it.
 */
typedef enum {
    CLT_OP_SUM = 0,
    CLT_OP_AVG = 1,   /* the sum divided by the device count */
    CLT_OP_MAX = 2,   /* a NaN anywhere gives NaN, as for SUM */
    CLT_OP_MIN = 3
} clt_op;

typedef enum {
    CLT_ALGO_AUTO = 0,        /* the ring */
    CLT_ALGO_RING = 1,        /* ring reduce-scatter + all-gather; on devices that all share host
                                 memory (CPUs, integrated GPUs) an all-reduce maps the device
                                 buffers instead of copying them to staging */
    CLT_ALGO_NAIVE = 2,       /* device 0's thread reduces everything; a baseline for benchmarks */
    CLT_ALGO_RING_STAGED = 3  /* the ring, always through host staging */
} clt_algo;

typedef struct {
    clt_algo algo;
    size_t chunk_bytes;   /* pipeline chunk; 0: the default (1 MiB) */
    double timeout_s;     /* longest wait for another device; 0: the default (60 s) */
} clt_collective_options;

/* Defaults: CLT_ALGO_AUTO, chunk_bytes 0, timeout_s 0. */
CLT_API clt_collective_options clt_collective_options_default(void);

/* recv[i] = op over all devices of send[i], count floats each. recv NULL (or recv[i] ==
 * send[i]) works in place. opts NULL: defaults. count 0 only validates. */
CLT_API clt_status clt_allreduce(clt_runtime *rt, cl_mem const send[], cl_mem const recv[],
                                 size_t count, clt_op op, const clt_collective_options *opts);
/* Copies count floats of bufs[root] into every other bufs[i]. */
CLT_API clt_status clt_broadcast(clt_runtime *rt, cl_mem const bufs[], size_t count, int root,
                                 const clt_collective_options *opts);
/* send[i] holds n*count floats (n devices); recv[i] receives op over all devices of block i
 * (count floats). recv NULL: in place, block i of send[i] receives it. */
CLT_API clt_status clt_reduce_scatter(clt_runtime *rt, cl_mem const send[], cl_mem const recv[],
                                      size_t count, clt_op op,
                                      const clt_collective_options *opts);
/* send[i] holds count floats; recv[i] receives all n blocks in device order (n*count floats).
 * send NULL: in place, recv[i]'s block i is device i's input. */
CLT_API clt_status clt_all_gather(clt_runtime *rt, cl_mem const send[], cl_mem const recv[],
                                  size_t count, const clt_collective_options *opts);

#ifdef __cplusplus
}
#endif
#endif /* CLTRAIN_H */
