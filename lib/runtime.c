/* The runtime: the devices a spec selects, their contexts, and one worker thread each; under
 * opts.mpi, the MPI layer of libcltrain-mpi found or loaded for it. */
#define _GNU_SOURCE   /* dladdr */
#include "internal.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef CLT_HAVE_MPI
#include <dlfcn.h>
#endif

clt_runtime_options clt_runtime_options_default(void)
{
    clt_runtime_options o;
    memset(&o, 0, sizeof o);
    o.struct_size = sizeof o;
    o.devices = NULL;
    o.context_mode = CLT_CONTEXT_PER_PLATFORM;
    o.profiling = 0;
    return o;
}

static void CL_CALLBACK context_notify(const char *errinfo, const void *info, size_t cb, void *user)
{
    (void)info, (void)cb, (void)user;
    clt__log(CLT_LOG_WARN, "OpenCL context: %s", errinfo);
}

static clt_status make_context(clt_runtime *rt, cl_platform_id platform, const cl_device_id *ids,
                               cl_uint n, const char *what, cl_context *out)
{
    cl_context_properties props[] = {CL_CONTEXT_PLATFORM, (cl_context_properties)platform, 0};
    cl_int err;
    cl_context ctx = clCreateContext(props, n, ids, context_notify, NULL, &err);
    if (err != CL_SUCCESS) return clt__fail_cl(err, what, "clCreateContext");
    rt->contexts[rt->ncontexts++] = ctx;
    *out = ctx;
    return CLT_OK;
}

/* Creates the contexts and sets ctx_of[i] for each runtime device i. */
static clt_status make_contexts(clt_runtime *rt, const int *sel, cl_context *ctx_of)
{
    int n = rt->nworkers;
    if (rt->opts.context_mode == CLT_CONTEXT_PER_DEVICE) {
        for (int i = 0; i < n; i++) {
            const clt__device *d = &rt->devs[sel[i]];
            clt_status st = make_context(rt, d->platform, &d->device, 1, d->info.name, &ctx_of[i]);
            if (st != CLT_OK) return st;
        }
        return CLT_OK;
    }
    /* One context per platform with each selected physical device once. */
    cl_device_id *ids = calloc((size_t)n, sizeof *ids);
    if (!ids) return clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    for (int i = 0; i < n; i++) ctx_of[i] = NULL;
    clt_status st = CLT_OK;
    for (int i = 0; i < n && st == CLT_OK; i++) {
        if (ctx_of[i]) continue;
        cl_platform_id plat = rt->devs[sel[i]].platform;
        cl_uint nids = 0;
        for (int j = i; j < n; j++) {
            if (rt->devs[sel[j]].platform != plat) continue;
            bool seen = false;
            for (cl_uint k = 0; k < nids; k++) seen |= ids[k] == rt->devs[sel[j]].device;
            if (!seen) ids[nids++] = rt->devs[sel[j]].device;
        }
        cl_context ctx;
        st = make_context(rt, plat, ids, nids, rt->devs[sel[i]].info.platform_name, &ctx);
        if (st != CLT_OK) break;
        for (int j = i; j < n; j++)
            if (rt->devs[sel[j]].platform == plat) ctx_of[j] = ctx;
    }
    free(ids);
    return st;
}

/* What each worker runs on its thread at start and stop: its program cache, and the tuning
 * applied before the first GEMM compiles its kernels. */
static clt_status worker_init(clt__worker *w, void *arg)
{
    (void)arg;
    w->programs = clt__program_cache_create();
    if (!w->programs) return clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    int tuned;
    return clt__tuning_load(w, &tuned);
}

static void worker_fini(clt__worker *w)
{
    clt__program_cache_destroy(w->programs);
    w->programs = NULL;
}

static const clt__worker_hooks worker_hooks = {worker_init, worker_fini};

/* ---- timelines: recorded by the workers, written by lib/trace.c ----------------------------- */

static clt_status trace_start(clt_runtime *rt)
{
    if (!rt->opts.profiling)
        return clt__fail(CLT_ERR_STATE, "a timeline needs a runtime created with profiling on");
    rt->trace_t0 = clt__now();
    return clt__runtime_parallel(rt, clt__trace_calibrate, NULL, 0);
}

static clt_status trace_write(clt_runtime *rt, const char *path)
{
    clt_status st = clt__runtime_parallel(rt, clt__trace_drain, NULL, 0);
    if (st != CLT_OK) return st;
    return clt__trace_write_json(rt->workers, rt->nworkers, rt->trace_t0, path);
}

clt_status clt_runtime_trace_write(clt_runtime *rt, const char *path)
{
    if (!rt || !path) return clt__fail(CLT_ERR_INVALID_ARG, "clt_runtime_trace_write: %s is NULL", !rt ? "runtime" : "path");
    for (int d = 0; d < rt->nworkers; d++)
        if (!rt->workers[d].trace)
            return clt__fail(CLT_ERR_STATE, "clt_runtime_trace_write: no timeline is being recorded "
                             "(set trace_path in clt_runtime_options, or CLT_TRACE)");
    return trace_write(rt, path);
}

/* ---- MPI: the layer in libcltrain-mpi ------------------------------------------------------ */

int clt_have_mpi(void)
{
#ifdef CLT_HAVE_MPI
    return 1;
#else
    return 0;
#endif
}

int clt_runtime_process_count(const clt_runtime *rt)
{
    return rt && rt->mpi ? rt->mpi_ops->size(rt->mpi) : 1;
}

int clt_runtime_process_rank(const clt_runtime *rt)
{
    return rt && rt->mpi ? rt->mpi_ops->rank(rt->mpi) : 0;
}

/* The MPI layer's table once lib/mpi.c is in the process: linked in (a static build, a program
 * linked with libcltrain-mpi, the tests) or loaded, its constructor hands it down here, so that
 * the runtime names no symbol of the layer above it. NULL until then: opts.mpi loads the layer. */
static _Atomic(const clt__mpi_ops *) linked_layer;

void clt__mpi_register(const clt__mpi_ops *ops) { atomic_store(&linked_layer, ops); }

#ifdef CLT_HAVE_MPI

/* Opens libcltrain-mpi: by its soname first (LD_LIBRARY_PATH, ldconfig's cache, the system
 * folders), then from the folder this library was loaded from, where make install puts both (a
 * program's RUNPATH does not reach what a library opens). Never closed: the layer finalises
 * MPI at exit. RTLD_GLOBAL: Open MPI's own plugins look for libmpi's symbols. */
static void *open_layer(char *why, size_t cap)
{
    void *h = dlopen(CLT_MPI_LAYER_SONAME, RTLD_NOW | RTLD_GLOBAL);
    if (h) return h;
    const char *e = dlerror();
    int len = snprintf(why, cap, "%s", e ? e : "not found");
    Dl_info self;
    const char *slash;
    if (!dladdr((void *)clt_have_mpi, &self) || !self.dli_fname ||
        !(slash = strrchr(self.dli_fname, '/')))
        return NULL;
    char path[4096];
    if (snprintf(path, sizeof path, "%.*s/%s", (int)(slash - self.dli_fname), self.dli_fname,
                 CLT_MPI_LAYER_SONAME) >= (int)sizeof path)
        return NULL;
    if ((h = dlopen(path, RTLD_NOW | RTLD_GLOBAL))) return h;
    e = dlerror();
    if (len >= 0 && (size_t)len < cap) snprintf(why + len, cap - (size_t)len, "; %s", e ? e : "not found");
    return NULL;
}
#endif

/* The table of the MPI layer for opts.mpi: linked in, or loaded with dlopen. */
static clt_status mpi_layer(const clt__mpi_ops **out)
{
#ifndef CLT_HAVE_MPI
    (void)out;
    return clt__fail(CLT_ERR_UNSUPPORTED,
                     "clt_runtime_create: opts.mpi asks for MPI, but this cltrain was built "
                     "without it (install Open MPI, e.g. Debian's libopenmpi-dev openmpi-bin, and "
                     "run configure --with-mpi)");
#else
    const clt__mpi_ops *ops = atomic_load(&linked_layer);
    if (!ops) {
        char why[1024] = "";
        void *h = open_layer(why, sizeof why);
        if (!h)
            return clt__fail(CLT_ERR_UNSUPPORTED,
                             "clt_runtime_create: opts.mpi needs cltrain's MPI layer, "
                             "%s, which cannot be loaded (%s): install it beside libcltrain, or "
                             "link the program with it (pkg-config cltrain-mpi)",
                             CLT_MPI_LAYER_SONAME, why);
        const clt__mpi_ops *(*entry)(void) = (const clt__mpi_ops *(*)(void))dlsym(h, CLT_MPI_LAYER_SYMBOL);
        if (!entry)
            return clt__fail(CLT_ERR_UNSUPPORTED, "clt_runtime_create: opts.mpi: %s has no %s: "
                             "not cltrain's MPI layer", CLT_MPI_LAYER_SONAME, CLT_MPI_LAYER_SYMBOL);
        ops = entry();
    }
    if (strcmp(ops->version, PACKAGE_VERSION) != 0)
        return clt__fail(CLT_ERR_UNSUPPORTED,
                         "clt_runtime_create: opts.mpi: %s comes from cltrain %s, this libcltrain "
                         "from %s: install the two from one build", CLT_MPI_LAYER_SONAME,
                         ops->version, PACKAGE_VERSION);
    *out = ops;
    return CLT_OK;
#endif
}

clt_status clt_runtime_create_ex(clt_runtime **out, const clt_runtime_options *opts)
{
    if (!out) return clt__fail(CLT_ERR_INVALID_ARG, "clt_runtime_create: out is NULL");
    *out = NULL;
    clt_runtime_options o = clt_runtime_options_default();
    clt_status rst = clt__options_read(&o, opts, sizeof o, CLT__RUNTIME_OPTIONS_V1, "clt_runtime_create",
                                       "clt_runtime_options");
    if (rst != CLT_OK) return rst;
    const char *trace = o.trace_path ? o.trace_path : getenv("CLT_TRACE");
    if (trace && !*trace) trace = NULL;
    if (trace) o.profiling = 1;   /* a timeline is made of profiling events */
    if (o.context_mode != CLT_CONTEXT_PER_PLATFORM && o.context_mode != CLT_CONTEXT_PER_DEVICE)
        return clt__fail(CLT_ERR_INVALID_ARG, "clt_runtime_create: unknown context mode %d",
                         (int)o.context_mode);
    clt_status fst;
    const clt__mpi_ops *mpi = NULL;   /* before any device is opened: the layer may be missing */
    if (o.mpi && (fst = mpi_layer(&mpi)) != CLT_OK) return fst;

    clt_runtime *rt = calloc(1, sizeof *rt);
    if (!rt) return clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    pthread_mutex_init(&rt->comm_lock, NULL);
    rt->opts = o;
    rt->opts.devices = NULL;   /* the caller's strings are not ours to keep */
    rt->opts.trace_path = NULL;
    rt->opts.fault = NULL;
    if (trace && !(rt->trace_path = strdup(trace))) {
        free(rt);
        return clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    }

    int *sel = NULL;
    size_t nsel = 0;
    cl_context *ctx_of = NULL;
    /* a malformed fault stops here, before any device is opened (its device is checked later) */
    clt_status st = clt__fault_init(&rt->fault, o.fault);
    if (st != CLT_OK) goto fail;
    st = clt__devices_discover(&rt->devs, &rt->ndev);
    if (st != CLT_OK) goto fail;
    if (rt->ndev == 0) {
        char *desc = clt__devices_describe(rt->devs, 0);
        st = clt__fail(CLT_ERR_DEVICE_NOT_FOUND, "%s", desc ? desc : "no OpenCL device");
        free(desc);
        goto fail;
    }
    st = clt__spec_resolve(o.devices, rt->devs, rt->ndev, &sel, &nsel);
    if (st != CLT_OK) goto fail;
    if (nsel > 1024) {
        st = clt__fail(CLT_ERR_INVALID_ARG, "device spec selects %zu devices; 1024 at most", nsel);
        goto fail;
    }

    rt->nworkers = (int)nsel;
    rt->workers = calloc(nsel, sizeof *rt->workers);
    rt->contexts = calloc(nsel, sizeof *rt->contexts);
    ctx_of = calloc(nsel, sizeof *ctx_of);
    if (!rt->workers || !rt->contexts || !ctx_of) {
        st = clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
        goto fail;
    }
    st = make_contexts(rt, sel, ctx_of);
    if (st != CLT_OK) goto fail;
    for (int i = 0; i < rt->nworkers; i++) {
        st = clt__worker_start(&rt->workers[i], i, &rt->devs[sel[i]], ctx_of[i], o.profiling != 0,
                               &worker_hooks);
        if (st != CLT_OK) goto fail;
        clt__log(CLT_LOG_INFO, "device %d: %d:%d %s (%s, %s)", i, rt->devs[sel[i]].info.platform,
                 rt->devs[sel[i]].info.device, rt->devs[sel[i]].info.name,
                 clt__device_type_str(rt->devs[sel[i]].info.type),
                 rt->devs[sel[i]].info.platform_name);
    }
    if ((st = clt__fault_check(&rt->fault, rt->nworkers)) != CLT_OK) goto fail;
    for (int i = 0; i < rt->nworkers; i++) rt->workers[i].fault = &rt->fault;
    if (rt->trace_path && (st = trace_start(rt)) != CLT_OK) goto fail;
    if (mpi && (st = mpi->attach_world(rt)) != CLT_OK) goto fail;
    free(sel);
    free(ctx_of);
    *out = rt;
    return CLT_OK;

fail:
    free(sel);
    free(ctx_of);
    clt_runtime_destroy(rt);   /* keeps the thread's last error: destroy does not fail */
    return st;
}

clt_status clt_runtime_create(clt_runtime **out, const char *spec)
{
    clt_runtime_options o = clt_runtime_options_default();
    o.devices = spec;
    return clt_runtime_create_ex(out, &o);
}

void clt_runtime_destroy(clt_runtime *rt)
{
    if (!rt) return;
    if (rt->trace_path && rt->workers && rt->workers[0].trace) {
        char keep[512];   /* destroy does not fail: a timeline that cannot be written is logged */
        snprintf(keep, sizeof keep, "%s", clt_last_error());
        if (trace_write(rt, rt->trace_path) != CLT_OK)
            clt__log(CLT_LOG_ERROR, "timeline not written: %s", clt_last_error());
        else
            clt__log(CLT_LOG_INFO, "timeline written to %s", rt->trace_path);
        clt__error_set_message(keep);
    }
    free(rt->trace_path);
    if (rt->comm) rt->comm_destroy(rt->comm);   /* its staging is unmapped on the workers' threads */
    if (rt->mpi) rt->mpi_ops->close(rt->mpi);
    for (int i = 0; i < rt->nworkers && rt->workers; i++) clt__worker_stop(&rt->workers[i]);
    pthread_mutex_destroy(&rt->comm_lock);
    clt__fault_fini(&rt->fault);
    for (int i = 0; i < rt->ncontexts; i++) clReleaseContext(rt->contexts[i]);
    free(rt->contexts);
    free(rt->workers);
    free(rt->devs);
    free(rt);
}

int clt_runtime_device_count(const clt_runtime *rt) { return rt ? rt->nworkers : 0; }

static clt_status check_device(const clt_runtime *rt, int device, const char *fn)
{
    if (!rt) return clt__fail(CLT_ERR_INVALID_ARG, "%s: runtime is NULL", fn);
    if (device < 0 || device >= rt->nworkers)
        return clt__fail(CLT_ERR_INVALID_ARG, "%s: device %d out of range (the runtime has %d)",
                         fn, device, rt->nworkers);
    return CLT_OK;
}

clt_status clt_runtime_device_info(const clt_runtime *rt, int device, clt_device_info *out)
{
    clt_status st = check_device(rt, device, "clt_runtime_device_info");
    if (st != CLT_OK) return st;
    if (!out) return clt__fail(CLT_ERR_INVALID_ARG, "clt_runtime_device_info: out is NULL");
    *out = rt->workers[device].dev->info;
    return CLT_OK;
}

cl_context clt_runtime_context(const clt_runtime *rt, int device)
{
    if (check_device(rt, device, "clt_runtime_context") != CLT_OK) return NULL;
    return rt->workers[device].context;
}

typedef struct {
    clt_device_fn fn;
    void *user;
} exec_args;

static clt_status exec_task(clt__worker *w, void *arg)
{
    const exec_args *a = arg;
    clt_device_ctx d = {w->index, w->context, w->dev->device, w->queue};
    clt_status st = a->fn(&d, a->user);
    if (st != CLT_OK && !*clt_last_error())
        clt__fail(st, "callback on device %d '%s' returned %s", w->index, clt__worker_name(w),
                  clt_status_name(st));
    return st;
}

clt_status clt_runtime_exec(clt_runtime *rt, int device, clt_device_fn fn, void *user)
{
    clt_status st = check_device(rt, device, "clt_runtime_exec");
    if (st != CLT_OK) return st;
    if (!fn) return clt__fail(CLT_ERR_INVALID_ARG, "clt_runtime_exec: fn is NULL");
    exec_args a = {fn, user};
    return clt__worker_call(&rt->workers[device], exec_task, &a);
}

clt_status clt__run_on(clt_runtime *rt, const int *devs, int n, clt__task_fn fn, void *args,
                       size_t stride)
{
    clt__task stack_tasks[16];
    clt__task *tasks = n <= 16 ? stack_tasks : calloc((size_t)n, sizeof *tasks);
    if (!tasks) return clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    for (int i = 0; i < n; i++)
        clt__worker_submit(&rt->workers[devs ? devs[i] : i], &tasks[i], fn, (char *)args + (size_t)i * stride);
    clt_status first = CLT_OK;
    char *msg = NULL;
    for (int i = 0; i < n; i++) {
        clt_status st = clt__worker_wait(&rt->workers[devs ? devs[i] : i], &tasks[i]);
        /* a device's own failure says more than another's "aborted because of it" */
        bool better = first == CLT_OK || (first == CLT_ERR_ABORTED && st != CLT_ERR_ABORTED);
        if (st != CLT_OK && better) {
            first = st;
            free(msg);
            msg = strdup(clt_last_error());
        }
    }
    if (first != CLT_OK && msg) clt__error_set_message(msg);
    free(msg);
    if (tasks != stack_tasks) free(tasks);
    return first;
}

clt_status clt__runtime_parallel(clt_runtime *rt, clt__task_fn fn, void *args, size_t stride)
{
    return clt__run_on(rt, NULL, rt->nworkers, fn, args, stride);
}

clt_status clt_runtime_exec_all(clt_runtime *rt, clt_device_fn fn, void *user)
{
    if (!rt) return clt__fail(CLT_ERR_INVALID_ARG, "clt_runtime_exec_all: runtime is NULL");
    if (!fn) return clt__fail(CLT_ERR_INVALID_ARG, "clt_runtime_exec_all: fn is NULL");
    exec_args a = {fn, user};
    return clt__runtime_parallel(rt, exec_task, &a, 0);
}

typedef struct {
    const char *source;
    const char *options;
    cl_program program;
} build_args;

static clt_status build_task(clt__worker *w, void *arg)
{
    build_args *a = arg;
    return clt__program_build_source(w, a->source, a->options, &a->program);
}

clt_status clt_runtime_build(clt_runtime *rt, int device, const char *source, const char *options,
                             cl_program *out)
{
    clt_status st = check_device(rt, device, "clt_runtime_build");
    if (st != CLT_OK) return st;
    if (!source || !out) return clt__fail(CLT_ERR_INVALID_ARG, "clt_runtime_build: %s is NULL",
                                          !source ? "source" : "out");
    build_args a = {source, options, NULL};
    st = clt__worker_call(&rt->workers[device], build_task, &a);
    if (st == CLT_OK) *out = a.program;
    return st;
}

typedef struct {
    clt_device_stats *out;
    int reset;
} stats_args;

static clt_status stats_task(clt__worker *w, void *arg)
{
    stats_args *a = arg;
    cl_int err = clFinish(w->queue);
    if (err != CL_SUCCESS) return clt__fail_cl(err, clt__worker_name(w), "clFinish");
    clt__worker_collect(w);
    *a->out = w->stats;
    a->out->activation_bytes = w->activation_bytes;   /* a level, not a total: never reset */
    struct timespec ts;   /* on the worker's own thread: its CPU clock */
    double cpu = clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) == 0 ? (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9 : 0.0;
    a->out->worker_cpu_s = cpu - w->cpu_base;
    if (a->reset) memset(&w->stats, 0, sizeof w->stats), w->cpu_base = cpu;
    return CLT_OK;
}

clt_status clt_runtime_device_stats(clt_runtime *rt, int device, clt_device_stats *out, int reset)
{
    clt_status st = check_device(rt, device, "clt_runtime_device_stats");
    if (st != CLT_OK) return st;
    if (!out) return clt__fail(CLT_ERR_INVALID_ARG, "clt_runtime_device_stats: out is NULL");
    stats_args a = {out, reset};
    return clt__worker_call(&rt->workers[device], stats_task, &a);
}
