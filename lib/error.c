/* Status strings, OpenCL error names, and the thread-local last-error message. */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Long enough for a compiler log of a few dozen lines; longer logs are cut with "...". */
#define CLT_ERROR_MAX 8192

static _Thread_local char last_error[CLT_ERROR_MAX];

const char *clt_status_str(clt_status s)
{
    switch (s) {
#define CLT__STATUS_CASE(name, value, text) case name: return text;
        CLT_STATUS_LIST(CLT__STATUS_CASE)
#undef CLT__STATUS_CASE
    }
    return "unknown status";
}

const char *clt_status_name(clt_status s)
{
    switch (s) {
#define CLT__STATUS_CASE(name, value, text) case name: return #name;
        CLT_STATUS_LIST(CLT__STATUS_CASE)
#undef CLT__STATUS_CASE
    }
    return "CLT_UNKNOWN_STATUS";
}

const char *clt_last_error(void) { return last_error; }

const char *clt_version(void) { return PACKAGE_VERSION; }

void clt__error_clear(void) { last_error[0] = '\0'; }

void clt__error_set_message(const char *msg)
{
    size_t n = strlen(msg);
    if (n >= CLT_ERROR_MAX) {
        memcpy(last_error, msg, CLT_ERROR_MAX - 4);
        memcpy(last_error + CLT_ERROR_MAX - 4, "...", 4);
    } else {
        memcpy(last_error, msg, n + 1);
    }
}

clt_status clt__fail_at(const char *file, int line, clt_status s, const char *fmt, ...)
{
    const char *base = strrchr(file, '/');
    base = base ? base + 1 : file;
    char msg[CLT_ERROR_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n < 0) msg[0] = '\0';
    char full[CLT_ERROR_MAX];
    snprintf(full, sizeof full, "%s (%s at %s:%d)", msg, clt_status_name(s), base, line);
    clt__error_set_message(full);
    clt__log(CLT_LOG_DEBUG, "%s", full);
    return s;
}

const char *clt_cl_error_name(cl_int err)
{
    switch (err) {
#define E(x) case x: return #x;
        E(CL_SUCCESS) E(CL_DEVICE_NOT_FOUND) E(CL_DEVICE_NOT_AVAILABLE)
        E(CL_COMPILER_NOT_AVAILABLE) E(CL_MEM_OBJECT_ALLOCATION_FAILURE) E(CL_OUT_OF_RESOURCES)
        E(CL_OUT_OF_HOST_MEMORY) E(CL_PROFILING_INFO_NOT_AVAILABLE) E(CL_MEM_COPY_OVERLAP)
        E(CL_IMAGE_FORMAT_MISMATCH) E(CL_IMAGE_FORMAT_NOT_SUPPORTED) E(CL_BUILD_PROGRAM_FAILURE)
        E(CL_MAP_FAILURE) E(CL_MISALIGNED_SUB_BUFFER_OFFSET)
        E(CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST) E(CL_COMPILE_PROGRAM_FAILURE)
        E(CL_LINKER_NOT_AVAILABLE) E(CL_LINK_PROGRAM_FAILURE) E(CL_DEVICE_PARTITION_FAILED)
        E(CL_KERNEL_ARG_INFO_NOT_AVAILABLE) E(CL_INVALID_VALUE) E(CL_INVALID_DEVICE_TYPE)
        E(CL_INVALID_PLATFORM) E(CL_INVALID_DEVICE) E(CL_INVALID_CONTEXT)
        E(CL_INVALID_QUEUE_PROPERTIES) E(CL_INVALID_COMMAND_QUEUE) E(CL_INVALID_HOST_PTR)
        E(CL_INVALID_MEM_OBJECT) E(CL_INVALID_IMAGE_FORMAT_DESCRIPTOR) E(CL_INVALID_IMAGE_SIZE)
        E(CL_INVALID_SAMPLER) E(CL_INVALID_BINARY) E(CL_INVALID_BUILD_OPTIONS)
        E(CL_INVALID_PROGRAM) E(CL_INVALID_PROGRAM_EXECUTABLE) E(CL_INVALID_KERNEL_NAME)
        E(CL_INVALID_KERNEL_DEFINITION) E(CL_INVALID_KERNEL) E(CL_INVALID_ARG_INDEX)
        E(CL_INVALID_ARG_VALUE) E(CL_INVALID_ARG_SIZE) E(CL_INVALID_KERNEL_ARGS)
        E(CL_INVALID_WORK_DIMENSION) E(CL_INVALID_WORK_GROUP_SIZE) E(CL_INVALID_WORK_ITEM_SIZE)
        E(CL_INVALID_GLOBAL_OFFSET) E(CL_INVALID_EVENT_WAIT_LIST) E(CL_INVALID_EVENT)
        E(CL_INVALID_OPERATION) E(CL_INVALID_GL_OBJECT) E(CL_INVALID_BUFFER_SIZE)
        E(CL_INVALID_MIP_LEVEL) E(CL_INVALID_GLOBAL_WORK_SIZE) E(CL_INVALID_PROPERTY)
        E(CL_INVALID_IMAGE_DESCRIPTOR) E(CL_INVALID_COMPILER_OPTIONS) E(CL_INVALID_LINKER_OPTIONS)
        E(CL_INVALID_DEVICE_PARTITION_COUNT)
#undef E
    case -1001: return "CL_PLATFORM_NOT_FOUND_KHR";
    }
    return "CL_UNKNOWN_ERROR";
}

clt_status clt__status_from_cl(cl_int err)
{
    switch (err) {
    case CL_SUCCESS: return CLT_OK;
    case CL_DEVICE_NOT_FOUND: return CLT_ERR_DEVICE_NOT_FOUND;
    case CL_DEVICE_NOT_AVAILABLE: return CLT_ERR_DEVICE_NOT_AVAILABLE;
    case CL_MEM_OBJECT_ALLOCATION_FAILURE: return CLT_ERR_OUT_OF_DEVICE_MEMORY;
    case CL_OUT_OF_RESOURCES: return CLT_ERR_OUT_OF_RESOURCES;
    case CL_OUT_OF_HOST_MEMORY: return CLT_ERR_OUT_OF_HOST_MEMORY;
    case CL_BUILD_PROGRAM_FAILURE: return CLT_ERR_BUILD_PROGRAM;
    case CL_INVALID_VALUE: return CLT_ERR_INVALID_ARG;
    case CL_INVALID_CONTEXT: return CLT_ERR_INVALID_CONTEXT;
    case CL_INVALID_MEM_OBJECT: return CLT_ERR_INVALID_BUFFER;
    case CL_INVALID_BUFFER_SIZE: return CLT_ERR_INVALID_BUFFER_SIZE;
    default: return CLT_ERR_OPENCL;
    }
}

clt_status clt__fail_cl_at(const char *file, int line, cl_int err, const char *device,
                           const char *what)
{
    return clt__fail_at(file, line, clt__status_from_cl(err), "%s%s%s: %s (%d)", what,
                        device ? " on " : "", device ? device : "", clt_cl_error_name(err),
                        (int)err);
}

clt_status clt__options_read(void *dst, const void *src, size_t known, size_t oldest, const char *fn,
                             const char *type)
{
    if (!src) return CLT_OK;
    size_t size;
    memcpy(&size, src, sizeof size);   /* struct_size is every option struct's first member */
    if (size == 0 || size < oldest || size > known)
        return clt__fail(CLT_ERR_INVALID_ARG, "%s: %s.struct_size is %zu, not a size this library "
                         "knows (%zu..%zu): start from %s_default() and set the fields you need",
                         fn, type, size, oldest, known, type);
    memcpy(dst, src, size);
    return CLT_OK;
}
