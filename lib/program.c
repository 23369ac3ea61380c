/* OpenCL programs per worker: cl/ sources embedded at build time (or read from CLT_KERNEL_DIR),
 * built with -D options, cached per (source, options), with their kernels cached by name. */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct kernel_entry {
    char *name;
    cl_kernel kernel;
    struct kernel_entry *next;
} kernel_entry;

typedef struct program_entry {
    char *source_name;   /* cl/ source name, or NULL for text given by the caller */
    char *source;        /* the text built (kept to tell sources apart exactly) */
    char *options;
    cl_program program;
    kernel_entry *kernels;
    struct program_entry *next;
} program_entry;

struct clt__program_cache {
    program_entry *programs;
};

clt__program_cache *clt__program_cache_create(void) { return calloc(1, sizeof(clt__program_cache)); }

void clt__program_cache_destroy(clt__program_cache *c)
{
    if (!c) return;
    for (program_entry *p = c->programs, *pn; p; p = pn) {
        pn = p->next;
        for (kernel_entry *k = p->kernels, *kn; k; k = kn) {
            kn = k->next;
            clReleaseKernel(k->kernel);
            free(k->name);
            free(k);
        }
        clReleaseProgram(p->program);
        free(p->source_name);
        free(p->source);
        free(p->options);
        free(p);
    }
    free(c);
}

static bool same(const char *a, const char *b) { return (!a && !b) || (a && b && !strcmp(a, b)); }

/* Reads NAME.cl from dir; malloc'ed text or NULL with the error set. */
static char *read_kernel_file(const char *dir, const char *name)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.cl", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f) {
        clt__fail(CLT_ERR_IO, "CLT_KERNEL_DIR is set but %s cannot be opened: %s", path,
                  strerror(errno));
        return NULL;
    }
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (cap - len < 4096) {
            size_t nc = cap ? cap * 2 : 16384;
            char *g = realloc(buf, nc);
            if (!g) {
                free(buf);
                fclose(f);
                clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory reading %s", path);
                return NULL;
            }
            buf = g;
            cap = nc;
        }
        size_t got = fread(buf + len, 1, cap - len - 1, f);
        len += got;
        if (got == 0) break;
    }
    bool bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        clt__fail(CLT_ERR_IO, "reading %s failed", path);
        return NULL;
    }
    buf[len] = '\0';
    return buf;
}

/* The compiler's log for w's device, malloc'ed (or NULL). */
static char *build_log(clt__worker *w, cl_program prog)
{
    size_t n = 0;
    if (clGetProgramBuildInfo(prog, w->dev->device, CL_PROGRAM_BUILD_LOG, 0, NULL, &n) != CL_SUCCESS)
        return NULL;
    char *log = malloc(n + 1);
    if (!log) return NULL;
    if (clGetProgramBuildInfo(prog, w->dev->device, CL_PROGRAM_BUILD_LOG, n, log, NULL) != CL_SUCCESS) {
        free(log);
        return NULL;
    }
    log[n] = '\0';
    return log;
}

/* Builds text into a new cache entry. what names the source for messages. */
static clt_status build(clt__worker *w, const char *source_name, char *text, const char *options,
                        cl_program *out)
{
    const char *what = source_name ? source_name : "(caller's source)";
    const char *opts = options ? options : "";
    cl_int err;
    const char *src = text;
    cl_program prog = clCreateProgramWithSource(w->context, 1, &src, NULL, &err);
    if (err != CL_SUCCESS) {
        free(text);
        return clt__fail_cl(err, clt__worker_name(w), "clCreateProgramWithSource");
    }
    double t0 = clt__now();
    err = clBuildProgram(prog, 1, &w->dev->device, opts, NULL, NULL);
    if (err != CL_SUCCESS) {
        char *log = build_log(w, prog);
        clReleaseProgram(prog);
        free(text);
        clt_status st = clt__fail(
            err == CL_BUILD_PROGRAM_FAILURE ? CLT_ERR_BUILD_PROGRAM : clt__status_from_cl(err),
            "building %s.cl for device %d '%s' (%d:%d) with options '%s' failed: %s (%d); "
            "build log:\n%s",
            what, w->index, clt__worker_name(w), w->dev->info.platform, w->dev->info.device, opts,
            clt_cl_error_name(err), (int)err, log && *log ? log : "(empty)");
        free(log);
        return st;
    }
    clt__log(CLT_LOG_DEBUG, "built %s with '%s' for device %d (%s) in %.3f s", what, opts,
             w->index, clt__worker_name(w), clt__now() - t0);

    program_entry *e = calloc(1, sizeof *e);
    if (!e || (source_name && !(e->source_name = strdup(source_name))) ||
        !(e->options = strdup(opts))) {
        if (e) free(e->source_name);
        free(e);
        free(text);
        clReleaseProgram(prog);
        return clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    }
    e->source = text;
    e->program = prog;
    e->next = w->programs->programs;
    w->programs->programs = e;
    *out = prog;
    return CLT_OK;
}

static program_entry *find(clt__worker *w, const char *source_name, const char *source,
                           const char *options)
{
    const char *opts = options ? options : "";
    for (program_entry *p = w->programs->programs; p; p = p->next)
        if (same(p->source_name, source_name) && !strcmp(p->options, opts) &&
            (source_name || !strcmp(p->source, source)))
            return p;
    return NULL;
}

static const char *embedded(const char *name)
{
    for (size_t i = 0; i < clt__embedded_source_count; i++)
        if (!strcmp(clt__embedded_sources[i].name, name)) return clt__embedded_sources[i].source;
    return NULL;
}

clt_status clt__program_get(clt__worker *w, const char *source_name, const char *options,
                            cl_program *out)
{
    CLT_ASSERT(clt__worker_self() == w, CLT_ERR_STATE);
    program_entry *p = find(w, source_name, NULL, options);
    if (p) {
        *out = p->program;
        return CLT_OK;
    }
    const char *dir = getenv("CLT_KERNEL_DIR");
    char *text;
    if (dir && *dir) {
        text = read_kernel_file(dir, source_name);
        if (!text) return CLT_ERR_IO;
    } else {
        const char *src = embedded(source_name);
        if (!src)
            return clt__fail(CLT_ERR_INVALID_ARG, "no kernel source named '%s' is embedded",
                             source_name);
        text = strdup(src);
        if (!text) return clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    }
    return build(w, source_name, text, options, out);
}

clt_status clt__program_build_source(clt__worker *w, const char *source, const char *options,
                                     cl_program *out)
{
    CLT_ASSERT(clt__worker_self() == w, CLT_ERR_STATE);
    program_entry *p = find(w, NULL, source, options);
    if (p) {
        *out = p->program;
        return CLT_OK;
    }
    char *text = strdup(source);
    if (!text) return clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    return build(w, NULL, text, options, out);
}

clt_status clt__kernel_get(clt__worker *w, const char *source_name, const char *options,
                           const char *kernel_name, cl_kernel *out)
{
    cl_program prog;
    clt_status st = clt__program_get(w, source_name, options, &prog);
    if (st != CLT_OK) return st;
    program_entry *p = find(w, source_name, NULL, options);
    for (kernel_entry *k = p->kernels; k; k = k->next)
        if (!strcmp(k->name, kernel_name)) {
            *out = k->kernel;
            return CLT_OK;
        }
    cl_int err;
    cl_kernel kern = clCreateKernel(prog, kernel_name, &err);
    if (err != CL_SUCCESS)
        return clt__fail(clt__status_from_cl(err), "kernel '%s' of %s.cl on device %d '%s': %s (%d)",
                         kernel_name, source_name, w->index, clt__worker_name(w),
                         clt_cl_error_name(err), (int)err);
    kernel_entry *k = calloc(1, sizeof *k);
    if (!k || !(k->name = strdup(kernel_name))) {
        free(k);
        clReleaseKernel(kern);
        return clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    }
    k->kernel = kern;
    k->next = p->kernels;
    p->kernels = k;
    *out = kern;
    return CLT_OK;
}
