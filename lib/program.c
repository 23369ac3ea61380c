/* OpenCL programs per worker: cl/ sources embedded at build time (or read from CLT_KERNEL_DIR),
 * built with -D options, cached per (source, options), with their kernels cached by name; built
 * programs' binaries are also kept on disk per device, so a second start does not recompile. */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A work-group size a kernel was launched with, and the widest grid dimension so far. */
typedef struct {
    size_t local[3];
    size_t width;
} launch_shape;

typedef struct kernel_entry {
    char *name;
    cl_kernel kernel;
    launch_shape *shapes;
    size_t nshapes;
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
    unsigned binary_hits, binary_misses;   /* programs loaded from / stored to the disk cache */
    clt__program_counts made;
};

static clt_status keep(clt__worker *w, const char *source_name, char *text, const char *opts,
                       cl_program prog, cl_program *out);

clt__program_cache *clt__program_cache_create(void) { return calloc(1, sizeof(clt__program_cache)); }

void clt__program_cache_destroy(clt__program_cache *c)
{
    if (!c) return;
    for (program_entry *p = c->programs, *pn; p; p = pn) {
        pn = p->next;
        for (kernel_entry *k = p->kernels, *kn; k; k = kn) {
            kn = k->next;
            clReleaseKernel(k->kernel);
            free(k->shapes);
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

/* ---- the binary cache on disk ---------------------------------------------------------------
 * One file per (platform, device, driver, device version, build options, source text):
 *     "CLTKBIN1", u32 version, u32 key length, key text, u64 binary length, binary,
 *     u64 FNV-1a of every byte before it        (integers little-endian as the host writes them)
 * The key text is stored whole and compared, not only hashed into the file name. Anything that
 * does not check out, and any failure to create or build from the binary, falls back to the
 * source. */

#define KBIN_MAGIC "CLTKBIN1"
#define KBIN_VERSION 1u
#define KBIN_MAX_BYTES (256u << 20)

/* CLT_KERNEL_CACHE=1: on; 0: off; unset: on unless the platform keeps a cache of its own that
 * is on. PoCL's (~/.cache/pocl, POCL_KERNEL_CACHE) also keeps the per-launch compiled
 * work-group functions, which a program binary does not carry: measured on PoCL 3.1, a second
 * start took 1.4 s with PoCL's cache alone and 2.6 s with ours in front of it (ours alone: 18 s,
 * nothing: 24 s; docs/PERFORMANCE.md). NVIDIA's driver caches too (~/.nv/ComputeCache,
 * CUDA_CACHE_DISABLE). */
static bool kbin_enabled(const clt__worker *w)
{
    const char *e = getenv("CLT_KERNEL_CACHE");
    if (e && !strcmp(e, "0")) return false;
    if (e && !strcmp(e, "1")) return true;
    const char *plat = w->dev->info.platform_name;
    if (clt__contains_nocase(plat, "Portable Computing Language")) {
        const char *p = getenv("POCL_KERNEL_CACHE");
        return p && !strcmp(p, "0");
    }
    if (clt__contains_nocase(plat, "NVIDIA")) {
        const char *c = getenv("CUDA_CACHE_DISABLE");
        return c && !strcmp(c, "1");
    }
    return true;
}

/* The key text and the file's folder and name; false when there is no cache folder. */
static bool kbin_key(clt__worker *w, const char *text, const char *opts, char **key, char *dir,
                     size_t dcap, char *name, size_t ncap)
{
    char base[4096];
    if (!clt__cache_dir(base, sizeof base)) return false;
    const clt_device_info *i = &w->dev->info;
    uint64_t src = clt__fnv1a64(CLT__FNV_INIT, text, strlen(text));
    size_t len = 0, cap = 0;
    *key = NULL;
    if (!clt__sbuf_printf(key, &len, &cap, "platform: %s\ndevice: %s\ndriver: %s\nversion: %s\n"
                          "options: %s\nsource: %016llx %zu\n", i->platform_name, i->name,
                          i->driver_version, i->version, opts, (unsigned long long)src,
                          strlen(text))) {
        free(*key);
        *key = NULL;
        return false;
    }
    int n = snprintf(dir, dcap, "%s/kernels", base);
    snprintf(name, ncap, "%016llx.bin",
             (unsigned long long)clt__fnv1a64(CLT__FNV_INIT, *key, len));
    return n > 0 && (size_t)n < dcap;
}

/* A program created from the cached binary and built, or NULL (the reason logged). */
static cl_program kbin_load(clt__worker *w, const char *key, const char *dir, const char *name,
                            const char *opts)
{
    char path[4400];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *probe = fopen(path, "rb");
    if (!probe) return NULL;   /* a miss */
    fclose(probe);
    unsigned char *data;
    size_t len;
    if (clt__cache_read(path, KBIN_MAX_BYTES, &data, &len) != CLT_OK) {
        clt__log(CLT_LOG_WARN, "kernel cache: %s", clt_last_error());
        clt__error_clear();
        return NULL;
    }
    const char *why = NULL;
    uint32_t version, klen;
    uint64_t blen = 0, sum;
    size_t klen_s = strlen(key), at = 8 + 4 + 4;
    if (len < at + 8 + 8 || memcmp(data, KBIN_MAGIC, 8)) why = "not a cltrain kernel binary";
    if (!why) {
        memcpy(&version, data + 8, 4);
        memcpy(&klen, data + 12, 4);
        if (version != KBIN_VERSION) why = "another version";
        else if (klen != klen_s || len < at + klen + 8 + 8 || memcmp(data + at, key, klen))
            why = "made for another device, driver, options or source";
    }
    if (!why) {
        memcpy(&blen, data + at + klen, 8);
        if (blen == 0 || blen != len - (at + klen + 8 + 8)) why = "truncated or too long";
    }
    if (!why) {
        memcpy(&sum, data + len - 8, 8);
        if (sum != clt__fnv1a64(CLT__FNV_INIT, data, len - 8)) why = "checksum mismatch";
    }
    cl_program prog = NULL;
    if (!why) {
        const unsigned char *bin = data + at + klen + 8;
        size_t bl = (size_t)blen;
        cl_int bst = CL_SUCCESS, err;
        prog = clCreateProgramWithBinary(w->context, 1, &w->dev->device, &bl, &bin, &bst, &err);
        if (err != CL_SUCCESS || bst != CL_SUCCESS) {
            why = "the driver refused the binary";
            if (err == CL_SUCCESS) clReleaseProgram(prog);
            prog = NULL;
        } else if (clBuildProgram(prog, 1, &w->dev->device, opts, NULL, NULL) != CL_SUCCESS) {
            why = "building from the binary failed";
            clReleaseProgram(prog);
            prog = NULL;
        }
    }
    free(data);
    if (why) clt__log(CLT_LOG_WARN, "kernel cache: ignoring %s: %s; building from source", path, why);
    return prog;
}

/* Stores prog's binary for w's device; failures only logged. */
static void kbin_store(clt__worker *w, cl_program prog, const char *key, const char *dir,
                       const char *name)
{
    cl_uint ndev = 0;
    if (clGetProgramInfo(prog, CL_PROGRAM_NUM_DEVICES, sizeof ndev, &ndev, NULL) != CL_SUCCESS ||
        ndev == 0 || ndev > 4096)
        return;
    cl_device_id *devs = calloc(ndev, sizeof *devs);
    size_t *sizes = calloc(ndev, sizeof *sizes);
    unsigned char **bins = calloc(ndev, sizeof *bins);
    unsigned char *file = NULL;
    cl_uint me = ndev;
    if (!devs || !sizes || !bins ||
        clGetProgramInfo(prog, CL_PROGRAM_DEVICES, ndev * sizeof *devs, devs, NULL) != CL_SUCCESS ||
        clGetProgramInfo(prog, CL_PROGRAM_BINARY_SIZES, ndev * sizeof *sizes, sizes, NULL) != CL_SUCCESS)
        goto out;
    for (cl_uint i = 0; i < ndev; i++)
        if (devs[i] == w->dev->device) me = i;
    if (me == ndev || sizes[me] == 0 || sizes[me] > KBIN_MAX_BYTES / 2) goto out;
    /* only our device's slot gets memory: the others stay NULL, which the call skips */
    uint32_t klen = (uint32_t)strlen(key), version = KBIN_VERSION;
    uint64_t blen = sizes[me];
    size_t at = 8 + 4 + 4 + klen + 8, total = at + sizes[me] + 8;
    if (!(file = malloc(total))) goto out;
    bins[me] = file + at;
    if (clGetProgramInfo(prog, CL_PROGRAM_BINARIES, ndev * sizeof *bins, bins, NULL) != CL_SUCCESS)
        goto out;
    memcpy(file, KBIN_MAGIC, 8);
    memcpy(file + 8, &version, 4);
    memcpy(file + 12, &klen, 4);
    memcpy(file + 16, key, klen);
    memcpy(file + 16 + klen, &blen, 8);
    uint64_t sum = clt__fnv1a64(CLT__FNV_INIT, file, total - 8);
    memcpy(file + total - 8, &sum, 8);
    if (clt__cache_write(dir, name, file, total) != CLT_OK) {
        clt__log(CLT_LOG_WARN, "kernel cache: %s", clt_last_error());
        clt__error_clear();
    }
out:
    free(file);
    free(bins);
    free(sizes);
    free(devs);
}

/* Builds text into a new cache entry. what names the source for messages. */
static clt_status build(clt__worker *w, const char *source_name, char *text, const char *options,
                        cl_program *out)
{
    const char *what = source_name ? source_name : "(caller's source)";
    const char *opts = options ? options : "";
    cl_int err;
    char *key = NULL, dir[4200], name[64];
    bool cached = kbin_enabled(w) && kbin_key(w, text, opts, &key, dir, sizeof dir, name, sizeof name);
    double t0 = clt__now();
    cl_program prog = cached ? kbin_load(w, key, dir, name, opts) : NULL;
    if (prog) {
        clt__log(CLT_LOG_DEBUG, "loaded %s with '%s' for device %d (%s) from the kernel cache in "
                 "%.3f s", what, opts, w->index, clt__worker_name(w), clt__now() - t0);
        w->programs->binary_hits++;
        free(key);
        return keep(w, source_name, text, opts, prog, out);
    }
    const char *src = text;
    prog = clCreateProgramWithSource(w->context, 1, &src, NULL, &err);
    if (err != CL_SUCCESS) {
        free(text);
        free(key);
        return clt__fail_cl(err, clt__worker_name(w), "clCreateProgramWithSource");
    }
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
        free(key);
        return st;
    }
    clt__log(CLT_LOG_DEBUG, "built %s with '%s' for device %d (%s) in %.3f s", what, opts,
             w->index, clt__worker_name(w), clt__now() - t0);
    if (cached) {
        w->programs->binary_misses++;
        kbin_store(w, prog, key, dir, name);
    }
    free(key);
    return keep(w, source_name, text, opts, prog, out);
}

/* Adds a built program to w's cache (taking text and prog). */
static clt_status keep(clt__worker *w, const char *source_name, char *text, const char *opts,
                       cl_program prog, cl_program *out)
{
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
    w->programs->made.programs++;
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
    w->programs->made.kernels++;
    *out = kern;
    return CLT_OK;
}

void clt__kernel_launched(clt__worker *w, cl_kernel kernel, unsigned dims, const size_t *global,
                          const size_t *local)
{
    kernel_entry *k = NULL;
    for (program_entry *p = w->programs->programs; p && !k; p = p->next)
        for (kernel_entry *e = p->kernels; e && !k; e = e->next)
            if (e->kernel == kernel) k = e;
    if (!k) return;   /* not one of the cache's (CLBlast's own) */
    launch_shape s = {{1, 1, 1}, 0};
    for (unsigned d = 0; d < dims && d < 3; d++) {
        s.local[d] = local[d];
        if (global[d] > s.width) s.width = global[d];
    }
    for (size_t i = 0; i < k->nshapes; i++)
        if (!memcmp(k->shapes[i].local, s.local, sizeof s.local)) {
            if (s.width > k->shapes[i].width) k->shapes[i].width = s.width, w->programs->made.shapes++;
            return;
        }
    launch_shape *g = realloc(k->shapes, (k->nshapes + 1) * sizeof *g);
    if (!g) return;   /* only bookkeeping: the next launch counts it */
    k->shapes = g;
    k->shapes[k->nshapes++] = s;
    w->programs->made.shapes++;
}

clt__program_counts clt__program_made(const clt__worker *w)
{
    clt__program_counts none = {0, 0, 0};
    return w->programs ? w->programs->made : none;
}

unsigned long clt__program_made_since(const clt__worker *w, clt__program_counts before)
{
    clt__program_counts now = clt__program_made(w);
    return (now.programs - before.programs) + (now.kernels - before.kernels) +
           (now.shapes - before.shapes);
}

void clt__program_cache_stats(const clt__program_cache *c, unsigned *hits, unsigned *misses)
{
    *hits = c ? c->binary_hits : 0;
    *misses = c ? c->binary_misses : 0;
}
