/* Device discovery over every platform, the device spec language, and per-device facts. */
#include "internal.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

const char *clt__device_type_str(clt_device_type t)
{
    switch (t) {
    case CLT_DEVICE_CPU: return "CPU";
    case CLT_DEVICE_GPU: return "GPU";
    case CLT_DEVICE_ACCELERATOR: return "accelerator";
    default: return "other";
    }
}

/* clGetDeviceInfo on d, or clGetPlatformInfo on p when d is NULL. */
static cl_int get_info(cl_platform_id p, cl_device_id d, cl_uint what, size_t size, void *out,
                       size_t *got)
{
    return d ? clGetDeviceInfo(d, what, size, out, got) : clGetPlatformInfo(p, what, size, out, got);
}

/* One string of the device d, or of the platform p when d is NULL, trailing spaces dropped. */
static void info_string(cl_platform_id p, cl_device_id d, cl_uint what, char *out, size_t cap)
{
    size_t n = 0;
    out[0] = '\0';
    if (get_info(p, d, what, cap - 1, out, &n) != CL_SUCCESS) {
        /* too long for the field: take what fits */
        char *tmp = NULL;
        if (get_info(p, d, what, 0, NULL, &n) == CL_SUCCESS && (tmp = malloc(n + 1)) &&
            get_info(p, d, what, n, tmp, NULL) == CL_SUCCESS) {
            tmp[n] = '\0';
            snprintf(out, cap, "%s", tmp);
        }
        free(tmp);
    } else {
        out[n < cap ? n : cap - 1] = '\0';
    }
    /* some drivers pad names with spaces */
    size_t len = strlen(out);
    while (len && isspace((unsigned char)out[len - 1])) out[--len] = '\0';
}

static void fill_info(clt__device *d, int p, int i)
{
    clt_device_info *f = &d->info;
    memset(f, 0, sizeof *f);
    f->platform = p;
    f->device = i;
    info_string(d->platform, NULL, CL_PLATFORM_NAME, f->platform_name, sizeof f->platform_name);
    info_string(d->platform, NULL, CL_PLATFORM_VENDOR, f->platform_vendor,
                sizeof f->platform_vendor);
    info_string(d->platform, NULL, CL_PLATFORM_VERSION, f->platform_version,
                sizeof f->platform_version);
    info_string(NULL, d->device, CL_DEVICE_NAME, f->name, sizeof f->name);
    info_string(NULL, d->device, CL_DEVICE_VENDOR, f->vendor, sizeof f->vendor);
    info_string(NULL, d->device, CL_DEVICE_VERSION, f->version, sizeof f->version);
    info_string(NULL, d->device, CL_DRIVER_VERSION, f->driver_version, sizeof f->driver_version);
    if (sscanf(f->version, "OpenCL %d.%d", &f->opencl_major, &f->opencl_minor) != 2)
        f->opencl_major = 1, f->opencl_minor = 0;

    cl_device_type type = 0;
    clGetDeviceInfo(d->device, CL_DEVICE_TYPE, sizeof type, &type, NULL);
    f->type = (type & CL_DEVICE_TYPE_GPU)           ? CLT_DEVICE_GPU
              : (type & CL_DEVICE_TYPE_CPU)         ? CLT_DEVICE_CPU
              : (type & CL_DEVICE_TYPE_ACCELERATOR) ? CLT_DEVICE_ACCELERATOR
                                                    : CLT_DEVICE_OTHER;
    cl_ulong u = 0;
    if (clGetDeviceInfo(d->device, CL_DEVICE_GLOBAL_MEM_SIZE, sizeof u, &u, NULL) == CL_SUCCESS)
        f->global_mem_bytes = u;
    u = 0;
    if (clGetDeviceInfo(d->device, CL_DEVICE_MAX_MEM_ALLOC_SIZE, sizeof u, &u, NULL) == CL_SUCCESS)
        f->max_alloc_bytes = u;
    u = 0;
    if (clGetDeviceInfo(d->device, CL_DEVICE_LOCAL_MEM_SIZE, sizeof u, &u, NULL) == CL_SUCCESS)
        f->local_mem_bytes = u;
    cl_uint v = 0;
    if (clGetDeviceInfo(d->device, CL_DEVICE_MAX_COMPUTE_UNITS, sizeof v, &v, NULL) == CL_SUCCESS)
        f->compute_units = v;
    v = 0;
    if (clGetDeviceInfo(d->device, CL_DEVICE_MAX_CLOCK_FREQUENCY, sizeof v, &v, NULL) == CL_SUCCESS)
        f->max_clock_mhz = v;
    size_t wg = 0;
    if (clGetDeviceInfo(d->device, CL_DEVICE_MAX_WORK_GROUP_SIZE, sizeof wg, &wg, NULL) == CL_SUCCESS)
        f->max_work_group_size = wg;
    cl_bool unified = CL_FALSE;
    if (clGetDeviceInfo(d->device, CL_DEVICE_HOST_UNIFIED_MEMORY, sizeof unified, &unified, NULL) ==
        CL_SUCCESS)
        f->unified_memory = unified == CL_TRUE;

    size_t n = 0;
    if (clGetDeviceInfo(d->device, CL_DEVICE_EXTENSIONS, 0, NULL, &n) == CL_SUCCESS && n) {
        char *ext = malloc(n + 1);
        if (ext && clGetDeviceInfo(d->device, CL_DEVICE_EXTENSIONS, n, ext, NULL) == CL_SUCCESS) {
            ext[n] = '\0';
            f->has_fp16 = strstr(ext, "cl_khr_fp16") != NULL;
            f->has_fp64 = strstr(ext, "cl_khr_fp64") != NULL;
        }
        free(ext);
    }
    clt__device_words(f, f->words, sizeof f->words);
}

clt_status clt__devices_discover(clt__device **out, size_t *count)
{
    *out = NULL;
    *count = 0;
    cl_uint np = 0;
    cl_int err = clGetPlatformIDs(0, NULL, &np);
    /* The ICD loader reports "no platform" as -1001; that is an empty machine, not a failure. */
    if (err == -1001 || (err == CL_SUCCESS && np == 0)) return CLT_OK;
    if (err != CL_SUCCESS) return clt__fail_cl(err, NULL, "clGetPlatformIDs");

    cl_platform_id *plats = calloc(np, sizeof *plats);
    if (!plats) return clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    err = clGetPlatformIDs(np, plats, NULL);
    if (err != CL_SUCCESS) {
        free(plats);
        return clt__fail_cl(err, NULL, "clGetPlatformIDs");
    }

    clt__device *devs = NULL;
    size_t ndev = 0;
    for (cl_uint p = 0; p < np; p++) {
        char pname[128] = "";
        clGetPlatformInfo(plats[p], CL_PLATFORM_NAME, sizeof pname - 1, pname, NULL);
        cl_uint nd = 0;
        err = clGetDeviceIDs(plats[p], CL_DEVICE_TYPE_ALL, 0, NULL, &nd);
        if (err == CL_DEVICE_NOT_FOUND || nd == 0) continue;   /* a platform with no device */
        if (err != CL_SUCCESS) {
            /* One broken platform must not hide the others: log it and go on. */
            clt__log(CLT_LOG_WARN, "platform %u (%s): clGetDeviceIDs: %s", p, pname,
                     clt_cl_error_name(err));
            continue;
        }
        cl_device_id *ids = calloc(nd, sizeof *ids);
        clt__device *grown = realloc(devs, (ndev + nd) * sizeof *devs);
        if (!ids || !grown) {
            free(ids);
            free(grown ? grown : devs);
            free(plats);
            return clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
        }
        devs = grown;
        if (clGetDeviceIDs(plats[p], CL_DEVICE_TYPE_ALL, nd, ids, NULL) == CL_SUCCESS) {
            for (cl_uint i = 0; i < nd; i++) {
                devs[ndev].platform = plats[p];
                devs[ndev].device = ids[i];
                fill_info(&devs[ndev], (int)p, (int)i);
                ndev++;
            }
        }
        free(ids);
    }
    free(plats);
    *out = devs;
    *count = ndev;
    return CLT_OK;
}

/* The keyword an entry is: -1 for "all", a clt_device_type, or 0 for none. */
static int type_keyword(const char *e)
{
    if (!strcasecmp(e, "all")) return -1;
    if (!strcasecmp(e, "gpu")) return CLT_DEVICE_GPU;
    if (!strcasecmp(e, "cpu")) return CLT_DEVICE_CPU;
    if (!strcasecmp(e, "accelerator") || !strcasecmp(e, "acc")) return CLT_DEVICE_ACCELERATOR;
    return 0;
}

/* Whether s holds word, ignoring case, with no letter or digit touching it on either side. */
static bool has_word(const char *s, const char *word)
{
    size_t n = strlen(word);
    if (n == 0) return false;
    for (const char *h = s; *h; h++) {
        if (h > s && isalnum((unsigned char)h[-1])) continue;
        if (!strncasecmp(h, word, n) && !isalnum((unsigned char)h[n])) return true;
    }
    return false;
}

/* Whether a name entry selects the device. The platform version only by whole words: it is
 * full of numbers ("OpenCL 3.0 PoCL 3.1+debian ... LLVM 15.0.6") that a substring would hit. */
static bool name_selects(const clt_device_info *f, const char *e)
{
    return clt__contains_nocase(f->name, e) || clt__contains_nocase(f->vendor, e) ||
           clt__contains_nocase(f->platform_name, e) ||
           clt__contains_nocase(f->platform_vendor, e) || has_word(f->platform_version, e);
}

/* Implementations and hardware vendors users name a device by; a device's words list the ones
 * that select it. */
static const char *const known_words[] = {"pocl",   "rusticl", "clover", "mesa", "oclgrind",
                                          "nvidia", "amd",     "intel",  "apple"};

/* Appends w unless it is there already or does not fit whole: a cut word would select
 * something else. */
static void add_word(char *out, size_t cap, const char *w)
{
    size_t len = strlen(out);
    if (has_word(out, w) || len + (len ? 2 : 0) + strlen(w) >= cap) return;
    snprintf(out + len, cap - len, "%s%s", len ? ", " : "", w);
}

void clt__device_words(const clt_device_info *f, char *out, size_t cap)
{
    out[0] = '\0';
    for (size_t i = 0; i < sizeof known_words / sizeof *known_words; i++)
        if (name_selects(f, known_words[i])) add_word(out, cap, known_words[i]);
    if (f->type == CLT_DEVICE_CPU) add_word(out, cap, "cpu");
    else if (f->type == CLT_DEVICE_GPU) add_word(out, cap, "gpu");
    else if (f->type == CLT_DEVICE_ACCELERATOR) add_word(out, cap, "accelerator");
    /* The name's first word tells devices of one implementation apart: PoCL's "basic" and
     * "pthread", "llvmpipe", "gfx1100". */
    char first[32];
    size_t n = 0;
    bool letter = false;
    while (n + 1 < sizeof first && isalnum((unsigned char)f->name[n])) {
        first[n] = (char)tolower((unsigned char)f->name[n]);
        letter |= isalpha((unsigned char)first[n]) != 0;
        n++;
    }
    first[n] = '\0';
    if (n >= 3 && letter && !isalnum((unsigned char)f->name[n]) && !type_keyword(first))
        add_word(out, cap, first);
}

char *clt__devices_describe(const clt__device *devs, size_t ndev)
{
    char *buf = NULL;
    size_t len = 0, cap = 0;
    if (ndev == 0) {
        clt__sbuf_printf(&buf, &len, &cap, "no OpenCL device exists on this machine "
                         "(for the CPU, install Debian's pocl-opencl-icd)");
        return buf;
    }
    clt__sbuf_printf(&buf, &len, &cap, "devices that exist:");
    for (size_t i = 0; i < ndev; i++) {
        const clt_device_info *f = &devs[i].info;
        char words[sizeof f->words];
        clt__device_words(f, words, sizeof words);
        clt__sbuf_printf(&buf, &len, &cap, " %d:%d '%s' (%s, %s; select with %s)%s", f->platform,
                         f->device, f->name, clt__device_type_str(f->type), f->platform_name,
                         words, i + 1 < ndev ? ";" : "");
    }
    return buf;
}

/* Appends index i to the growing selection. */
static bool push(int **sel, size_t *n, size_t *cap, int i)
{
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 8;
        int *g = realloc(*sel, nc * sizeof *g);
        if (!g) return false;
        *sel = g;
        *cap = nc;
    }
    (*sel)[(*n)++] = i;
    return true;
}

static bool parse_uint(const char *s, size_t len, int *out)
{
    if (len == 0 || len > 6) return false;
    int v = 0;
    for (size_t i = 0; i < len; i++) {
        if (!isdigit((unsigned char)s[i])) return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

/* A spec being resolved: its text, where it came from, and the devices it chooses from. */
typedef struct {
    const char *spec;
    const char *source;   /* "given as an argument", "from the CLT_DEVICES environment variable" */
    const clt__device *devs;
    size_t ndev;
} spec_ctx;

/* Fails with "device spec 'S' (source) <problem>; devices that exist: ...". */
static clt_status spec_fail(const spec_ctx *c, clt_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static clt_status spec_fail(const spec_ctx *c, clt_status st, const char *fmt, ...)
{
    char problem[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(problem, sizeof problem, fmt, ap);
    va_end(ap);
    char *desc = clt__devices_describe(c->devs, c->ndev);
    int shown = strlen(c->spec) > 80 ? 80 : (int)strlen(c->spec);   /* a long spec, cut */
    clt__fail(st, "device spec '%.*s%s' (%s) %s; %s", shown, c->spec,
              c->spec[shown] ? "..." : "", c->source, problem, desc ? desc : "");
    free(desc);
    return st;
}

/* Selects the devices of one entry (already trimmed, NUL-terminated) when ndev > 0. Returns
 * the number selected, -1 when the entry does not parse (message set), -2 on OOM. */
static int select_entry(const spec_ctx *c, const char *e, size_t ndev, int **sel, size_t *n,
                        size_t *cap)
{
    const clt__device *devs = c->devs;
    int type = type_keyword(e);
    int before = (int)*n;
    const char *colon = strchr(e, ':');
    if (type) {
        for (size_t i = 0; i < ndev; i++)
            if (type == -1 || (int)devs[i].info.type == type)
                if (!push(sel, n, cap, (int)i)) return -2;
    } else if (colon && isdigit((unsigned char)e[0])) {
        int p, d = -1;
        const char *rest = colon + 1;
        bool any = !strcmp(rest, "*");
        if (!parse_uint(e, (size_t)(colon - e), &p) || (!any && !parse_uint(rest, strlen(rest), &d))) {
            spec_fail(c, CLT_ERR_BAD_SPEC, "does not parse: entry '%s' is not P:D or P:* with "
                      "numbers, as `cltrain info` lists them", e);
            return -1;
        }
        for (size_t i = 0; i < ndev; i++)
            if (devs[i].info.platform == p && (any || devs[i].info.device == d))
                if (!push(sel, n, cap, (int)i)) return -2;
    } else {
        for (const char *ch = e; *ch; ch++)
            if (!isalnum((unsigned char)*ch) && !strchr(" -_.()+@#/", *ch)) {
                spec_fail(c, CLT_ERR_BAD_SPEC, "does not parse: entry '%s' is neither a keyword "
                          "nor P:D, and a name word has only letters, digits, spaces and "
                          "-_.()+@#/", e);
                return -1;
            }
        for (size_t i = 0; i < ndev; i++)
            if (name_selects(&devs[i].info, e))
                if (!push(sel, n, cap, (int)i)) return -2;
    }
    return (int)*n - before;
}

/* One pass over the spec's entries. With check_only, entries are parsed but an entry that
 * selects nothing is not an error: the whole spec's syntax is checked before any selection. */
static clt_status spec_pass(const spec_ctx *c, bool check_only, int **sel, size_t *n)
{
    char *copy = strdup(c->spec);
    if (!copy) return clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    size_t cap = 0;
    clt_status st = CLT_OK;
    int entries = 0;
    /* strtok_r would skip empty entries; walk commas by hand so "0:0,,0:1" is an error. */
    for (char *start = copy;;) {
        char *comma = strchr(start, ',');
        if (comma) *comma = '\0';
        char *e = start;
        while (isspace((unsigned char)*e)) e++;
        char *end = e + strlen(e);
        while (end > e && isspace((unsigned char)end[-1])) *--end = '\0';
        entries++;
        if (!*e) {
            st = spec_fail(c, CLT_ERR_BAD_SPEC, "has an empty entry (entry %d)", entries);
            break;
        }
        int got = select_entry(c, e, check_only ? 0 : c->ndev, sel, n, &cap);
        if (got == -2) {
            st = clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
            break;
        }
        if (got < 0) {
            st = CLT_ERR_BAD_SPEC;
            break;
        }
        if (got == 0 && !check_only) {
            st = spec_fail(c, CLT_ERR_DEVICE_NOT_FOUND, "has entry '%s', which selects no device",
                           e);
            break;
        }
        if (!comma) break;
        start = comma + 1;
    }
    free(copy);
    return st;
}

clt_status clt__spec_resolve(const char *spec, const clt__device *devs, size_t ndev, int **out,
                             size_t *count)
{
    *out = NULL;
    *count = 0;
    spec_ctx c = {spec, "given as an argument", devs, ndev};
    if (!spec) {
        c.spec = getenv("CLT_DEVICES");
        c.source = "from the CLT_DEVICES environment variable";
    }
    if (!c.spec) c.spec = "all", c.source = "the default";
    size_t speclen = strlen(c.spec);
    if (speclen > 4096)
        return spec_fail(&c, CLT_ERR_BAD_SPEC, "is %zu characters long; 4096 at most", speclen);
    const char *t = c.spec;
    while (isspace((unsigned char)*t)) t++;
    /* "" is refused rather than read as "all": an empty variable or option is more often a
     * script's mistake than a wish for every device. */
    if (!*t)
        return spec_fail(&c, CLT_ERR_BAD_SPEC, "is empty: say \"all\" for every device%s, or "
                         "name the devices", spec ? "" : " (or unset CLT_DEVICES)");

    int *sel = NULL;
    size_t n = 0;
    clt_status st = spec_pass(&c, true, &sel, &n);
    if (st == CLT_OK) st = spec_pass(&c, false, &sel, &n);
    if (st != CLT_OK) {
        free(sel);
        return st;
    }
    *out = sel;
    *count = n;
    return CLT_OK;
}

clt_status clt_devices_list(clt_device_info *infos, size_t cap, size_t *count)
{
    if (!count) return clt__fail(CLT_ERR_INVALID_ARG, "clt_devices_list: count is NULL");
    if (!infos && cap) return clt__fail(CLT_ERR_INVALID_ARG, "clt_devices_list: infos is NULL but cap is %zu", cap);
    clt__device *devs;
    size_t n;
    clt_status st = clt__devices_discover(&devs, &n);
    if (st != CLT_OK) return st;
    for (size_t i = 0; i < n && i < cap; i++) infos[i] = devs[i].info;
    *count = n;
    free(devs);
    return CLT_OK;
}

clt_status clt_devices_select(const char *spec, int *indices, size_t cap, size_t *count)
{
    if (!count) return clt__fail(CLT_ERR_INVALID_ARG, "clt_devices_select: count is NULL");
    if (!indices && cap)
        return clt__fail(CLT_ERR_INVALID_ARG, "clt_devices_select: indices is NULL but cap is %zu", cap);
    clt__device *devs;
    size_t n;
    clt_status st = clt__devices_discover(&devs, &n);
    if (st != CLT_OK) return st;
    int *sel;
    size_t nsel;
    st = clt__spec_resolve(spec, devs, n, &sel, &nsel);
    free(devs);
    if (st != CLT_OK) return st;
    for (size_t i = 0; i < nsel && i < cap; i++) indices[i] = sel[i];
    *count = nsel;
    free(sel);
    return CLT_OK;
}
