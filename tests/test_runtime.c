/* The runtime: devices opened (also one device twice), one worker thread each that really runs
 * in parallel, a kernel built and run on every device with its result checked, in both context
 * modes, errors carried from a worker to the caller, and two runtimes in one process. */
#include "internal.h"
#include "tap.h"

#include <errno.h>
#include <pthread.h>
#include <time.h>

#define N 1000

/* Runs cl/smoke.cl's smoke_axpy on the worker: y = a*x + y + bias, and reads y back. */
typedef struct {
    float a;
    const char *options;
    float y[N];
} axpy_job;

static clt_status axpy_on_device(clt__worker *w, void *arg)
{
    axpy_job *j = arg;
    float x[N];
    for (int i = 0; i < N; i++) x[i] = (float)i, j->y[i] = 1.0f + (float)w->index;
    cl_kernel k;
    clt_status st = clt__kernel_get(w, "smoke", j->options, "smoke_axpy", &k);
    if (st != CLT_OK) return st;
    cl_int err;
    cl_mem bx = clCreateBuffer(w->context, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, sizeof x, x, &err);
    if (err != CL_SUCCESS) return clt__fail_cl(err, clt__worker_name(w), "clCreateBuffer");
    cl_mem by = clCreateBuffer(w->context, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, sizeof j->y, j->y, &err);
    if (err != CL_SUCCESS) {
        clReleaseMemObject(bx);
        return clt__fail_cl(err, clt__worker_name(w), "clCreateBuffer");
    }
    cl_uint n = N;
    size_t global = 1024;
    clSetKernelArg(k, 0, sizeof n, &n);
    clSetKernelArg(k, 1, sizeof j->a, &j->a);
    clSetKernelArg(k, 2, sizeof bx, &bx);
    clSetKernelArg(k, 3, sizeof by, &by);
    err = clEnqueueNDRangeKernel(w->queue, k, 1, NULL, &global, NULL, 0, NULL, NULL);
    if (err == CL_SUCCESS) err = clEnqueueReadBuffer(w->queue, by, CL_TRUE, 0, sizeof j->y, j->y, 0, NULL, NULL);
    clReleaseMemObject(bx);
    clReleaseMemObject(by);
    if (err != CL_SUCCESS) return clt__fail_cl(err, clt__worker_name(w), "smoke_axpy");
    return CLT_OK;
}

static void check_axpy_everywhere(clt_runtime *rt, const char *what)
{
    int n = clt_runtime_device_count(rt);
    axpy_job *jobs = calloc((size_t)n, sizeof *jobs);
    for (int d = 0; d < n; d++) jobs[d].a = 0.5f + (float)d, jobs[d].options = "-DSMOKE_BIAS=0.25f";
    ok_status(clt__runtime_parallel(rt, axpy_on_device, jobs, sizeof *jobs),
              "%s: smoke_axpy ran on %d devices at once", what, n);
    for (int d = 0; d < n; d++) {
        float ref[N];
        for (int i = 0; i < N; i++) ref[i] = jobs[d].a * (float)i + (1.0f + (float)d) + 0.25f;
        char name[128];
        snprintf(name, sizeof name, "%s: device %d computed a*x + y + bias", what, d);
        ok_close(jobs[d].y, ref, N, 1e-6, 1e-6, name);
    }
    free(jobs);
}

/* Every callback waits (bounded) until all devices' callbacks are running at once: this only
 * passes when the workers are separate threads that run in parallel. */
typedef struct {
    pthread_mutex_t lock;
    pthread_cond_t cv;
    int arrived, expected;
    pthread_t threads[64];
    int index_seen[64];
} rendezvous;

static clt_status meet(const clt_device_ctx *d, void *user)
{
    rendezvous *r = user;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 20;
    pthread_mutex_lock(&r->lock);
    r->threads[d->index] = pthread_self();
    r->index_seen[d->index]++;
    r->arrived++;
    pthread_cond_broadcast(&r->cv);
    int rc = 0;
    while (r->arrived < r->expected && rc != ETIMEDOUT) rc = pthread_cond_timedwait(&r->cv, &r->lock, &until);
    pthread_mutex_unlock(&r->lock);
    if (rc == ETIMEDOUT) return clt__fail(CLT_ERR_TIMEOUT, "device %d waited alone", d->index);
    /* The context handed over is really this device's. */
    cl_context qctx;
    clGetCommandQueueInfo(d->queue, CL_QUEUE_CONTEXT, sizeof qctx, &qctx, NULL);
    return qctx == d->context ? CLT_OK : clt__fail(CLT_ERR_STATE, "queue/context mismatch");
}

static clt_status fail_on_two(const clt_device_ctx *d, void *user)
{
    (void)user;
    if (d->index == 2) return clt__fail(CLT_ERR_OUT_OF_RESOURCES, "device %d ran out on purpose", d->index);
    if (d->index == 1) return CLT_ERR_IO;   /* no message: the runtime writes one */
    return CLT_OK;
}

static clt_status fail_quietly(const clt_device_ctx *d, void *user)
{
    (void)user, (void)d;
    return CLT_ERR_IO;
}

static clt_status nested(const clt_device_ctx *d, void *user);
typedef struct {
    clt_runtime *rt;
    int inner_ran;
} nest_args;

static clt_status inner(const clt_device_ctx *d, void *user)
{
    ((nest_args *)user)->inner_ran = d->index + 1;
    return CLT_OK;
}

static clt_status nested(const clt_device_ctx *d, void *user)
{
    /* exec on the device whose worker we are on must run inline, not wait on itself. */
    return clt_runtime_exec(((nest_args *)user)->rt, d->index, inner, user);
}

static void check_threads(clt_runtime *rt, const char *what)
{
    int n = clt_runtime_device_count(rt);
    rendezvous r = {.expected = n};
    pthread_mutex_init(&r.lock, NULL);
    pthread_cond_init(&r.cv, NULL);
    ok_status(clt_runtime_exec_all(rt, meet, &r), "%s: all %d workers ran at the same time", what, n);
    bool distinct = true;
    for (int i = 0; i < n; i++) {
        distinct &= r.index_seen[i] == 1 && !pthread_equal(r.threads[i], pthread_self());
        for (int j = 0; j < i; j++) distinct &= !pthread_equal(r.threads[i], r.threads[j]);
    }
    ok(distinct, "%s: each device ran once, on a thread of its own", what);
    pthread_mutex_destroy(&r.lock);
    pthread_cond_destroy(&r.cv);
}

int main(void)
{
    tap_require_device();
    int ndev = test_ndev();

    /* Every device, per-platform contexts (the default). */
    clt_runtime *rt = NULL;
    ok_status(clt_runtime_create(&rt, test_spec_all()), "runtime on all devices (%s)", test_spec_all());
    ok(clt_runtime_device_count(rt) == ndev, "it opened all %d devices", ndev);
    check_threads(rt, "all");
    check_axpy_everywhere(rt, "all, per-platform contexts");
    if (ndev >= 2 && test_device(0)->platform == test_device(1)->platform)
        ok(clt_runtime_context(rt, 0) == clt_runtime_context(rt, 1),
           "devices of one platform share a context by default");
    else
        skip("the first two devices are not of one platform", "devices of one platform share a context by default");

    /* Errors from workers. */
    if (clt_runtime_device_count(rt) >= 3) {
        ok_error(clt_runtime_exec_all(rt, fail_on_two, NULL), CLT_ERR_IO, "returned CLT_ERR_IO",
                 "exec_all returns the lowest-numbered device's error, with a message");
        ok_error(clt_runtime_exec(rt, 2, fail_on_two, NULL), CLT_ERR_OUT_OF_RESOURCES,
                 "device 2 ran out on purpose", "a worker's message reaches the calling thread");
    }
    ok_error(clt_runtime_exec(rt, 0, fail_quietly, NULL), CLT_ERR_IO, "device 0",
             "a callback failing without a message gets one naming the device");
    ok_error(clt_runtime_exec(rt, 99, meet, NULL), CLT_ERR_INVALID_ARG, "out of range",
             "a device index out of range");
    ok_error(clt_runtime_exec(rt, -1, meet, NULL), CLT_ERR_INVALID_ARG, "out of range",
             "a negative device index");
    ok_error(clt_runtime_exec(rt, 0, NULL, NULL), CLT_ERR_INVALID_ARG, "fn is NULL", "a NULL callback");
    nest_args na = {rt, 0};
    ok_status(clt_runtime_exec(rt, 0, nested, &na), "exec from inside a callback on the same device");
    ok(na.inner_ran == 1, "the nested callback ran inline");
    clt_device_info info;
    ok_status(clt_runtime_device_info(rt, 0, &info), "device_info");
    ok(info.name[0] != '\0' && info.global_mem_bytes > 0, "device_info describes device 0 (%s)", info.name);
    ok_error(clt_runtime_device_info(rt, 0, NULL), CLT_ERR_INVALID_ARG, "NULL", "device_info with NULL out");

    /* A second runtime alive at the same time: one device opened twice, separate contexts. */
    clt_runtime_options o = clt_runtime_options_default();
    o.devices = test_spec_repeat(2);
    o.context_mode = CLT_CONTEXT_PER_DEVICE;
    clt_runtime *twice = NULL;
    ok_status(clt_runtime_create_ex(&twice, &o), "a second runtime: one device opened twice (%s)", o.devices);
    ok(clt_runtime_device_count(twice) == 2, "it has two devices");
    ok(clt_runtime_context(twice, 0) != clt_runtime_context(twice, 1),
       "per-device mode gives each its own context");
    check_threads(twice, "one device twice");
    check_axpy_everywhere(twice, "one device twice, per-device contexts");
    check_axpy_everywhere(rt, "all again, while the second runtime lives");
    clt_runtime_destroy(twice);

    /* Three times, one shared context, profiling queues. */
    o.devices = test_spec_repeat(3);
    o.context_mode = CLT_CONTEXT_PER_PLATFORM;
    o.profiling = 1;
    ok_status(clt_runtime_create_ex(&twice, &o), "one device opened three times, one context");
    ok(clt_runtime_context(twice, 0) == clt_runtime_context(twice, 2), "the three share a context");
    check_axpy_everywhere(twice, "one device three times, shared context");
    clt_runtime_destroy(twice);
    clt_runtime_destroy(rt);

    /* Bad specs through the public entry point. */
    rt = (clt_runtime *)1;
    ok_error(clt_runtime_create(&rt, "0:999"), CLT_ERR_DEVICE_NOT_FOUND, "devices that exist",
             "a spec selecting nothing lists what exists");
    ok(rt == NULL, "and leaves *out NULL");
    ok_error(clt_runtime_create(&rt, "gpu,,"), CLT_ERR_BAD_SPEC, "empty entry", "a spec that does not parse");
    setenv("CLT_DEVICES", test_spec_n(3), 1);
    /* Outside MPI a runtime is one process; asking for MPI in a build without it says how to
     * get it (in a build with it, tests/test_mpi.sh runs the MPI runtimes under mpirun). */
    ok_status(clt_runtime_create(&rt, test_spec_one()), "a runtime for the MPI queries");
    ok(clt_runtime_process_count(rt) == 1 && clt_runtime_process_rank(rt) == 0 &&
           clt_runtime_process_count(NULL) == 1 && clt_runtime_process_rank(NULL) == 0,
       "without opts.mpi: one process, rank 0 (and for NULL)");
    clt_runtime_destroy(rt);
    rt = NULL;
#ifdef CLT_HAVE_MPI
    ok(clt_have_mpi() == 1, "clt_have_mpi() says what configure built: with MPI");
#else
    ok(clt_have_mpi() == 0, "clt_have_mpi() says what configure built: without MPI");
    clt_runtime_options mo = clt_runtime_options_default();
    mo.devices = test_spec_one();
    mo.mpi = 1;
    ok_error(clt_runtime_create_ex(&rt, &mo), CLT_ERR_UNSUPPORTED, "--with-mpi",
             "opts.mpi in a build without MPI: CLT_ERR_UNSUPPORTED naming configure --with-mpi");
    ok(rt == NULL, "  ... and no runtime");
#endif
    ok_status(clt_runtime_create(&rt, NULL), "a NULL spec takes $CLT_DEVICES");
    ok(clt_runtime_device_count(rt) == 3, "$CLT_DEVICES=%s gives three devices", test_spec_n(3));
    clt_runtime_destroy(rt);
    rt = (clt_runtime *)1;
    ok_error(clt_runtime_create(&rt, ""), CLT_ERR_BAD_SPEC, "(given as an argument) is empty",
             "an empty spec is refused, not read as all");
    ok(rt == NULL, "  ... and no runtime");
    setenv("CLT_DEVICES", "", 1);
    ok_error(clt_runtime_create(&rt, NULL), CLT_ERR_BAD_SPEC, "CLT_DEVICES environment variable",
             "an empty $CLT_DEVICES is refused, naming the variable");
    unsetenv("CLT_DEVICES");
    ok_status(clt_runtime_create(&rt, NULL), "a NULL spec with CLT_DEVICES unset opens all");
    clt_runtime_destroy(rt);

    /* Create and destroy in a loop: no thread or object is left behind to pile up. */
    bool loop_ok = true;
    for (int i = 0; i < 20 && loop_ok; i++) {
        loop_ok = clt_runtime_create(&rt, test_spec_n(2)) == CLT_OK;
        clt_runtime_destroy(rt);
    }
    ok(loop_ok, "20 create/destroy cycles");
    return tap_done();
}
