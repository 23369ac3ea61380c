/* Status codes, their strings, OpenCL error names, and the thread-local last error. */
#include "internal.h"
#include "tap.h"

#include <pthread.h>

static void *other_thread(void *arg)
{
    (void)arg;
    /* A fresh thread starts with no message, whatever other threads did. */
    bool empty = clt_last_error()[0] == '\0';
    clt__fail(CLT_ERR_IO, "failure in the other thread");
    return (void *)(intptr_t)empty;
}

int main(void)
{
    static const struct { clt_status s; int v; const char *name; } list[] = {
#define ROW(name, value, text) {name, value, #name},
        CLT_STATUS_LIST(ROW)
#undef ROW
    };
    size_t n = sizeof list / sizeof list[0];
    bool good = true;
    for (size_t i = 0; i < n; i++) {
        good &= (int)list[i].s == list[i].v && strcmp(clt_status_name(list[i].s), list[i].name) == 0 &&
                clt_status_str(list[i].s)[0] != '\0';
        for (size_t j = 0; j < i; j++) good &= list[i].v != list[j].v;
    }
    ok(good, "%zu statuses have distinct values, their names and a description", n);
    ok(!strcmp(clt_status_str((clt_status)12345), "unknown status") &&
           !strcmp(clt_status_name((clt_status)12345), "CLT_UNKNOWN_STATUS"),
       "an unknown status still gives a string");

    ok(CLT_ERR_OUT_OF_DEVICE_MEMORY == CL_MEM_OBJECT_ALLOCATION_FAILURE &&
           CLT_ERR_INVALID_ARG == CL_INVALID_VALUE && CLT_ERR_BUILD_PROGRAM == CL_BUILD_PROGRAM_FAILURE &&
           CLT_ERR_INVALID_CONTEXT == CL_INVALID_CONTEXT,
       "statuses shared with OpenCL use OpenCL's numbers");
    ok(clt__status_from_cl(CL_OUT_OF_HOST_MEMORY) == CLT_ERR_OUT_OF_HOST_MEMORY &&
           clt__status_from_cl(CL_INVALID_KERNEL_ARGS) == CLT_ERR_OPENCL &&
           clt__status_from_cl(CL_SUCCESS) == CLT_OK,
       "OpenCL errors map to the same status or to CLT_ERR_OPENCL");
    ok(!strcmp(clt_cl_error_name(CL_INVALID_WORK_GROUP_SIZE), "CL_INVALID_WORK_GROUP_SIZE") &&
           !strcmp(clt_cl_error_name(-1001), "CL_PLATFORM_NOT_FOUND_KHR") &&
           !strcmp(clt_cl_error_name(-9999), "CL_UNKNOWN_ERROR"),
       "OpenCL error names");

    clt__error_clear();
    ok(clt_last_error()[0] == '\0', "no message after clearing");
    clt_status st = clt__fail_cl(CL_OUT_OF_RESOURCES, "gfx1100", "clEnqueueNDRangeKernel");
    const char *m = clt_last_error();
    ok(st == CLT_ERR_OUT_OF_RESOURCES && strstr(m, "clEnqueueNDRangeKernel on gfx1100") &&
           strstr(m, "CL_OUT_OF_RESOURCES (-5)") && strstr(m, "test_errors.c:"),
       "an OpenCL failure names the call, the device, the error and the place: %s", m);

    pthread_t t;
    void *res;
    pthread_create(&t, NULL, other_thread, NULL);
    pthread_join(t, &res);
    ok((intptr_t)res == 1, "another thread does not see this thread's message");
    ok(strstr(clt_last_error(), "clEnqueueNDRangeKernel") != NULL,
       "this thread keeps its message while another thread fails");

    char big[20000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    clt__error_set_message(big);
    size_t len = strlen(clt_last_error());
    ok(len < sizeof big && !strcmp(clt_last_error() + len - 3, "..."),
       "an over-long message is cut and marked");

    ok(strcmp(clt_version(), PACKAGE_VERSION) == 0, "clt_version is the package version");

    /* NULL and out-of-range arguments to the runtime's public functions. */
    ok_error(clt_runtime_create(NULL, "all"), CLT_ERR_INVALID_ARG, "out is NULL", "runtime_create(NULL)");
    clt_runtime_options o = clt_runtime_options_default();
    o.context_mode = (clt_context_mode)7;
    clt_runtime *rt = (clt_runtime *)1;
    ok_error(clt_runtime_create_ex(&rt, &o), CLT_ERR_INVALID_ARG, "context mode", "an unknown context mode");
    ok(rt == NULL, "a failed create sets *out to NULL");
    clt_runtime_destroy(NULL);
    ok(clt_runtime_device_count(NULL) == 0, "device_count(NULL) is 0");
    clt_device_info info;
    ok_error(clt_runtime_device_info(NULL, 0, &info), CLT_ERR_INVALID_ARG, "NULL", "device_info(NULL)");
    ok(clt_runtime_context(NULL, 0) == NULL, "context(NULL) is NULL");
    ok_error(clt_runtime_exec(NULL, 0, NULL, NULL), CLT_ERR_INVALID_ARG, "NULL", "exec(NULL)");
    ok_error(clt_runtime_exec_all(NULL, NULL, NULL), CLT_ERR_INVALID_ARG, "NULL", "exec_all(NULL)");
    cl_program p;
    ok_error(clt_runtime_build(NULL, 0, "", NULL, &p), CLT_ERR_INVALID_ARG, "NULL", "build(NULL)");
    return tap_done();
}
