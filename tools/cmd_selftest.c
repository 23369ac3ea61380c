/* cltrain selftest: builds a kernel on every selected device, runs them all at once through the
 * runtime's worker threads, and checks every result. */
#include "commands.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define N (1 << 20)

static const char *source =
    "__kernel void saxpy(const uint n, const float a, __global const float *x, __global float *y)\n"
    "{ const size_t i = get_global_id(0); if (i < n) y[i] = a * x[i] + y[i]; }\n";

typedef struct {
    clt_runtime *rt;
    float *y;        /* per device: result */
    double seconds;  /* per device: build + run time */
} job;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static clt_status run(const clt_device_ctx *d, void *user)
{
    job *jobs = user, *j = &jobs[d->index];
    double t0 = now();
    cl_program prog;
    clt_status st = clt_runtime_build(j->rt, d->index, source, NULL, &prog);
    if (st != CLT_OK) return st;
    cl_int err;
    cl_kernel k = clCreateKernel(prog, "saxpy", &err);
    if (err != CL_SUCCESS) return CLT_ERR_OPENCL;
    float *x = malloc(N * sizeof *x);
    for (int i = 0; i < N; i++) x[i] = (float)(i % 1000), j->y[i] = (float)d->index;
    cl_mem bx = clCreateBuffer(d->context, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, N * 4, x, &err);
    cl_mem by = err ? NULL : clCreateBuffer(d->context, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, N * 4, j->y, &err);
    if (err == CL_SUCCESS) {
        cl_uint n = N;
        float a = 2.0f;
        size_t g = N;
        clSetKernelArg(k, 0, sizeof n, &n);
        clSetKernelArg(k, 1, sizeof a, &a);
        clSetKernelArg(k, 2, sizeof bx, &bx);
        clSetKernelArg(k, 3, sizeof by, &by);
        err = clEnqueueNDRangeKernel(d->queue, k, 1, NULL, &g, NULL, 0, NULL, NULL);
        if (err == CL_SUCCESS) err = clEnqueueReadBuffer(d->queue, by, CL_TRUE, 0, N * 4, j->y, 0, NULL, NULL);
    }
    if (bx) clReleaseMemObject(bx);
    if (by) clReleaseMemObject(by);
    clReleaseKernel(k);
    free(x);
    j->seconds = now() - t0;
    return err == CL_SUCCESS ? CLT_OK : CLT_ERR_OPENCL;
}

int cmd_selftest(int argc, char **argv)
{
    const char *spec = NULL;
    tool_opt opts[] = {TOOL_DEVICES(&spec), TOOL_END};
    const tool_cmd cmd = {"selftest", "[--devices SPEC]",
                          "Builds a saxpy kernel on every selected device, runs them all at once through the\n"
                          "runtime's worker threads, and checks every result (exit 1 when one is wrong).",
                          NULL, opts};
    int rc = tool_parse(&cmd, argc, argv);
    if (rc >= 0) return rc;
    clt_runtime *rt;
    clt_status st = clt_runtime_create(&rt, spec);
    if (st != CLT_OK) return tool_fail(tool_opening(spec), st);
    int nd = clt_runtime_device_count(rt);
    job *jobs = calloc((size_t)nd, sizeof *jobs);
    for (int d = 0; d < nd; d++) jobs[d].rt = rt, jobs[d].y = malloc(N * sizeof(float));
    printf("selftest: saxpy on %d elements, on %d device%s at once\n", N, nd, nd == 1 ? "" : "s");
    st = clt_runtime_exec_all(rt, run, jobs);
    int bad = st != CLT_OK;
    if (bad) tool_fail("running the kernel", st);
    for (int d = 0; d < nd && !bad; d++) {
        size_t wrong = 0;
        for (int i = 0; i < N; i++)
            if (jobs[d].y[i] != 2.0f * (float)(i % 1000) + (float)d) wrong++;
        clt_device_info info;
        clt_runtime_device_info(rt, d, &info);
        printf("  device %d (%d:%d %s): %s, %.3f s\n", d, info.platform, info.device, info.name,
               wrong ? "WRONG" : "correct", jobs[d].seconds);
        bad |= wrong != 0;
    }
    for (int d = 0; d < nd; d++) free(jobs[d].y);
    free(jobs);
    clt_runtime_destroy(rt);
    printf("selftest: %s\n", bad ? "FAILED" : "passed");
    return bad;
}
