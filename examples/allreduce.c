/* Sum one buffer across every device: each device fills its buffer with its own kernel, one
 * clt_allreduce adds them up in place, and the program checks what every device holds.
 *
 *     POCL_DEVICES="basic basic" examples/allreduce [SPEC]      (SPEC: default $CLT_DEVICES, else all)
 *
 * Exits 0 when every device holds the exact sum, 1 otherwise. */
#include <cltrain.h>
#include <stdio.h>
#include <stdlib.h>

#define COUNT 100000

/* buf[i] = (device + 1) * (i % 10): small integers, so the sum is exact. */
static const char *fill_source =
    "__kernel void fill(__global float *buf, const uint n, const float scale) {\n"
    "    uint i = get_global_id(0);\n"
    "    if (i < n) buf[i] = scale * (float)(i % 10);\n"
    "}\n";

typedef struct {
    clt_runtime *rt;
    cl_mem bufs[64];
    float *host;           /* COUNT floats per device, read back for the check */
} job;

/* Runs on device d's worker thread: build (cached per device), then fill its buffer. */
static clt_status fill(const clt_device_ctx *d, void *user)
{
    job *j = user;
    cl_program prog;
    clt_status st = clt_runtime_build(j->rt, d->index, fill_source, NULL, &prog);
    if (st != CLT_OK) return st;
    cl_int err;
    cl_kernel k = clCreateKernel(prog, "fill", &err);   /* ours: one per call, one thread */
    if (err != CL_SUCCESS) return CLT_ERR_OPENCL;
    cl_uint n = COUNT;
    float scale = (float)(d->index + 1);
    size_t global = COUNT;
    clSetKernelArg(k, 0, sizeof(cl_mem), &j->bufs[d->index]);
    clSetKernelArg(k, 1, sizeof n, &n);
    clSetKernelArg(k, 2, sizeof scale, &scale);
    err = clEnqueueNDRangeKernel(d->queue, k, 1, NULL, &global, NULL, 0, NULL, NULL);
    if (err == CL_SUCCESS) err = clFinish(d->queue);
    clReleaseKernel(k);
    return err == CL_SUCCESS ? CLT_OK : CLT_ERR_OPENCL;
}

/* Reads device d's buffer back into its slice of host. */
static clt_status read_back(const clt_device_ctx *d, void *user)
{
    job *j = user;
    cl_int err = clEnqueueReadBuffer(d->queue, j->bufs[d->index], CL_TRUE, 0, COUNT * sizeof(float),
                                     j->host + (size_t)d->index * COUNT, 0, NULL, NULL);
    return err == CL_SUCCESS ? CLT_OK : CLT_ERR_OPENCL;
}

int main(int argc, char **argv)
{
    job j = {0};
    if (clt_runtime_create(&j.rt, argc > 1 ? argv[1] : NULL) != CLT_OK) {
        fprintf(stderr, "allreduce: %s\n", clt_last_error());
        return 1;
    }
    int n = clt_runtime_device_count(j.rt), bad = n > 64;
    j.host = malloc((size_t)n * COUNT * sizeof(float));
    for (int d = 0; d < n && !bad; d++)   /* a buffer in each device's own context */
        bad = !(j.bufs[d] = clCreateBuffer(clt_runtime_context(j.rt, d), CL_MEM_READ_WRITE,
                                           COUNT * sizeof(float), NULL, NULL));
    clt_status st = bad ? CLT_ERR_OUT_OF_DEVICE_MEMORY : clt_runtime_exec_all(j.rt, fill, &j);
    if (st == CLT_OK)   /* recv NULL: in place; NULL options: the defaults (the ring) */
        st = clt_allreduce(j.rt, j.bufs, NULL, COUNT, CLT_OP_SUM, NULL);
    if (st == CLT_OK) st = clt_runtime_exec_all(j.rt, read_back, &j);
    if (st != CLT_OK) {
        fprintf(stderr, "allreduce: %s: %s\n", clt_status_str(st), clt_last_error());
        bad = 1;
    }
    /* Every device must hold sum over d of (d + 1) * (i % 10) = n(n+1)/2 * (i % 10). */
    long wrong = 0;
    for (int d = 0; d < n && !bad; d++)
        for (size_t i = 0; i < COUNT; i++)
            wrong += j.host[(size_t)d * COUNT + i] != (float)(n * (n + 1) / 2) * (float)(i % 10);
    if (!bad)
        printf("allreduce: %d device%s, %d floats each: buf[0..3] = %g %g %g %g on every device: %s\n",
               n, n == 1 ? "" : "s", COUNT, j.host[0], j.host[1], j.host[2], j.host[3],
               wrong ? "WRONG" : "correct");
    for (int d = 0; d < n; d++)
        if (j.bufs[d]) clReleaseMemObject(j.bufs[d]);
    free(j.host);
    clt_runtime_destroy(j.rt);
    return bad || wrong ? 1 : 0;
}
