/* Programs: embedded sources built with -D options and cached, the caller's own sources, build
 * failures reported with the device and the compiler's log, and CLT_KERNEL_DIR. */
#include "internal.h"
#include "tap.h"

#include <sys/stat.h>
#include <unistd.h>

typedef struct {
    const char *options;
    cl_program first, second;
    cl_kernel k1, k2;
} cache_job;

static clt_status cache_task(clt__worker *w, void *arg)
{
    cache_job *j = arg;
    clt_status st = clt__program_get(w, "smoke", j->options, &j->first);
    if (st == CLT_OK) st = clt__program_get(w, "smoke", j->options, &j->second);
    if (st == CLT_OK) st = clt__kernel_get(w, "smoke", j->options, "smoke_axpy", &j->k1);
    if (st == CLT_OK) st = clt__kernel_get(w, "smoke", j->options, "smoke_axpy", &j->k2);
    return st;
}

static clt_status missing_kernel(clt__worker *w, void *arg)
{
    cl_kernel k;
    (void)arg;
    return clt__kernel_get(w, "smoke", NULL, "no_such_kernel", &k);
}

static clt_status missing_source(clt__worker *w, void *arg)
{
    cl_program p;
    (void)arg;
    return clt__program_get(w, "no_such_source", NULL, &p);
}

/* Runs smoke_axpy with a = 0 on one element; returns y (starting at 0), i.e. SMOKE_BIAS. */
static clt_status bias_task(clt__worker *w, void *arg)
{
    float *out = arg;
    cl_kernel k;
    clt_status st = clt__kernel_get(w, "smoke", NULL, "smoke_axpy", &k);
    if (st != CLT_OK) return st;
    float zero = 0.0f;
    cl_int err;
    cl_mem b = clCreateBuffer(w->context, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, sizeof zero, &zero, &err);
    if (err != CL_SUCCESS) return clt__fail_cl(err, clt__worker_name(w), "clCreateBuffer");
    cl_uint n = 1;
    size_t g = 1;
    clSetKernelArg(k, 0, sizeof n, &n);
    clSetKernelArg(k, 1, sizeof zero, &zero);
    clSetKernelArg(k, 2, sizeof b, &b);
    clSetKernelArg(k, 3, sizeof b, &b);
    err = clEnqueueNDRangeKernel(w->queue, k, 1, NULL, &g, NULL, 0, NULL, NULL);
    if (err == CL_SUCCESS) err = clEnqueueReadBuffer(w->queue, b, CL_TRUE, 0, sizeof *out, out, 0, NULL, NULL);
    clReleaseMemObject(b);
    return err == CL_SUCCESS ? CLT_OK : clt__fail_cl(err, clt__worker_name(w), "smoke_axpy");
}

int main(void)
{
    tap_require_device();
    clt_runtime *rt = NULL;
    if (!ok_status(clt_runtime_create(&rt, test_spec_repeat(2)), "runtime with one device twice (%s)", test_spec_repeat(2))) return tap_done();
    clt_device_info info;
    clt_runtime_device_info(rt, 1, &info);

    cache_job a = {.options = "-DSMOKE_BIAS=1.0f"}, b = {.options = "-DSMOKE_BIAS=2.0f"};
    ok_status(clt__worker_call(&rt->workers[0], cache_task, &a), "embedded smoke.cl builds with -D");
    ok(a.first == a.second && a.k1 == a.k2, "the program and kernel are cached per (source, options)");
    ok_status(clt__worker_call(&rt->workers[0], cache_task, &b), "the same source with other options");
    ok(a.first != b.first, "other options give another program");
    cache_job c = {.options = "-DSMOKE_BIAS=1.0f"};
    ok_status(clt__worker_call(&rt->workers[1], cache_task, &c), "the second opening of the device builds too");
    ok(c.k1 != a.k1, "kernels are per worker, never shared between threads");

    ok_error(clt__worker_call(&rt->workers[0], missing_kernel, NULL), CLT_ERR_OPENCL,
             "no_such_kernel", "a missing kernel name is an error naming it");
    ok_error(clt__worker_call(&rt->workers[0], missing_source, NULL), CLT_ERR_INVALID_ARG,
             "no_such_source", "a missing source name is an error naming it");

    /* The caller's own source, through the public API. */
    const char *good = "__kernel void twice(__global float *x) { x[get_global_id(0)] *= 2.0f; }\n";
    cl_program p1 = NULL, p2 = NULL;
    ok_status(clt_runtime_build(rt, 1, good, NULL, &p1), "clt_runtime_build with a good source");
    ok_status(clt_runtime_build(rt, 1, good, NULL, &p2), "built again");
    ok(p1 && p1 == p2, "the caller's source is cached too");

    const char *bad = "__kernel void broken(__global float *x) {\n"
                      "    x[0] = undeclared_thing + 1.0f;\n"
                      "}\n";
    cl_program p3 = NULL;
    clt_status st = clt_runtime_build(rt, 1, bad, "-DWHATEVER=1", &p3);
    const char *msg = clt_last_error();
    diag("build error message: %.300s", msg);
    ok(st == CLT_ERR_BUILD_PROGRAM, "a bad source returns CLT_ERR_BUILD_PROGRAM");
    ok(strstr(msg, info.name) != NULL, "the message names the device");
    ok(strstr(msg, "undeclared_thing") != NULL, "the message carries the compiler's log");
    ok(strstr(msg, "-DWHATEVER=1") != NULL, "the message gives the build options");
    ok(strstr(msg, "device 1") != NULL, "the message gives the runtime device index");
    ok_error(clt_runtime_build(rt, 0, "this is not OpenCL C", NULL, &p3), CLT_ERR_BUILD_PROGRAM,
             "build log", "text that is not OpenCL C is a build error too");
    ok_error(clt_runtime_build(rt, 0, NULL, NULL, &p3), CLT_ERR_INVALID_ARG, "source is NULL", "NULL source");
    ok_error(clt_runtime_build(rt, 5, good, NULL, &p3), CLT_ERR_INVALID_ARG, "out of range", "bad device");
    clt_runtime_destroy(rt);

    /* CLT_KERNEL_DIR: sources read from a folder instead of the embedded copies. */
    char dir[] = "/tmp/clt-kernels-XXXXXX";
    ok(mkdtemp(dir) != NULL, "a temporary kernel folder");
    char path[512];
    snprintf(path, sizeof path, "%s/smoke.cl", dir);
    FILE *f = fopen(path, "w");
    fputs("__kernel void smoke_axpy(const uint n, const float a, __global const float *x,\n"
          "                         __global float *y)\n"
          "{ const size_t i = get_global_id(0); if (i < n) y[i] = a * x[i] + y[i] + 42.0f; }\n", f);
    fclose(f);
    setenv("CLT_KERNEL_DIR", dir, 1);
    float y = 0;
    ok_status(clt_runtime_create(&rt, test_spec_one()), "runtime with CLT_KERNEL_DIR set");
    ok_status(clt__worker_call(&rt->workers[0], bias_task, &y), "the kernel from the folder runs");
    ok(y == 42.0f, "the folder's copy was built, not the embedded one (y = %g)", y);
    clt_runtime_destroy(rt);

    setenv("CLT_KERNEL_DIR", "/nonexistent/cltrain-kernels", 1);
    ok_status(clt_runtime_create(&rt, test_spec_one()), "runtime with a CLT_KERNEL_DIR that does not exist");
    ok_error(clt__worker_call(&rt->workers[0], bias_task, &y), CLT_ERR_IO,
             "/nonexistent/cltrain-kernels/smoke.cl", "a missing kernel file is an I/O error naming the path");
    clt_runtime_destroy(rt);
    unsetenv("CLT_KERNEL_DIR");

    ok_status(clt_runtime_create(&rt, test_spec_one()), "runtime with CLT_KERNEL_DIR unset");
    ok_status(clt__worker_call(&rt->workers[0], bias_task, &y), "the embedded kernel runs");
    ok(y == 0.0f, "the embedded copy has SMOKE_BIAS 0 by default (y = %g)", y);
    clt_runtime_destroy(rt);
    unlink(path);
    rmdir(dir);
    return tap_done();
}
