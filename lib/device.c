/* Device discovery over every platform, the device spec language, and per-device facts. */
#include "internal.h"

#include <ctype.h>
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

static void info_string(cl_device_id d, cl_device_info what, char *out, size_t cap)
{
    size_t n = 0;
    out[0] = '\0';
    if (clGetDeviceInfo(d, what, cap - 1, out, &n) != CL_SUCCESS) {
        /* too long for the field: take what fits */
        char *tmp = NULL;
        if (clGetDeviceInfo(d, what, 0, NULL, &n) == CL_SUCCESS && (tmp = malloc(n + 1)) &&
            clGetDeviceInfo(d, what, n, tmp, NULL) == CL_SUCCESS) {
            tmp[n] = '\0';
            snprintf(out, cap, "%s", tmp);
        }
        free(tmp);
        return;
    }
    out[n < cap ? n : cap - 1] = '\0';
    /* some drivers pad names with spaces */
    size_t len = strlen(out);
    while (len && isspace((unsigned char)out[len - 1])) out[--len] = '\0';
}

static void fill_info(clt__device *d, int p, int i, const char *platform_name)
{
    clt_device_info *f = &d->info;
    memset(f, 0, sizeof *f);
    f->platform = p;
    f->device = i;
    snprintf(f->platform_name, sizeof f->platform_name, "%s", platform_name);
    info_string(d->device, CL_DEVICE_NAME, f->name, sizeof f->name);
    info_string(d->device, CL_DEVICE_VENDOR, f->vendor, sizeof f->vendor);
    info_string(d->device, CL_DEVICE_VERSION, f->version, sizeof f->version);
    info_string(d->device, CL_DRIVER_VERSION, f->driver_version, sizeof f->driver_version);
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
                fill_info(&devs[ndev], (int)p, (int)i, pname);
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
    for (size_t i = 0; i < ndev; i++)
        clt__sbuf_printf(&buf, &len, &cap, " %d:%d '%s' (%s, %s)%s", devs[i].info.platform,
                         devs[i].info.device, devs[i].info.name,
                         clt__device_type_str(devs[i].info.type), devs[i].info.platform_name,
                         i + 1 < ndev ? ";" : "");
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

/* Selects the devices of one entry (already trimmed, NUL-terminated). Returns the number
 * selected, or -1 when the entry does not parse (message set), -2 on OOM. */
static int select_entry(const char *e, const clt__device *devs, size_t ndev, int **sel, size_t *n,
                        size_t *cap)
{
    int type = 0;
    if (!strcasecmp(e, "all")) type = -1;
    else if (!strcasecmp(e, "gpu")) type = CLT_DEVICE_GPU;
    else if (!strcasecmp(e, "cpu")) type = CLT_DEVICE_CPU;
    else if (!strcasecmp(e, "accelerator") || !strcasecmp(e, "acc")) type = CLT_DEVICE_ACCELERATOR;

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
            clt__fail(CLT_ERR_BAD_SPEC, "device spec entry '%s' does not parse: expected P:D or "
                      "P:* with numbers, as `cltrain info` lists them", e);
            return -1;
        }
        for (size_t i = 0; i < ndev; i++)
            if (devs[i].info.platform == p && (any || devs[i].info.device == d))
                if (!push(sel, n, cap, (int)i)) return -2;
    } else {
        for (const char *c = e; *c; c++)
            if (!isalnum((unsigned char)*c) && !strchr(" -_.()+@#/", *c)) {
                clt__fail(CLT_ERR_BAD_SPEC, "device spec entry '%s' does not parse: a name "
                          "substring has letters, digits, spaces and -_.()+@#/ only", e);
                return -1;
            }
        for (size_t i = 0; i < ndev; i++)
            if (clt__contains_nocase(devs[i].info.name, e) ||
                clt__contains_nocase(devs[i].info.vendor, e) ||
                clt__contains_nocase(devs[i].info.platform_name, e))
                if (!push(sel, n, cap, (int)i)) return -2;
    }
    return (int)*n - before;
}

/* One pass over the spec's entries. With check_only, entries are parsed but an entry that
 * selects nothing is not an error: the whole spec's syntax is checked before any selection. */
static clt_status spec_pass(const char *spec, const clt__device *devs, size_t ndev,
                            bool check_only, int **sel, size_t *n)
{
    char *copy = strdup(spec);
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
            st = clt__fail(CLT_ERR_BAD_SPEC, "device spec '%s' has an empty entry (entry %d)",
                           spec, entries);
            break;
        }
        int got = select_entry(e, devs, check_only ? 0 : ndev, sel, n, &cap);
        if (got == -2) {
            st = clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
            break;
        }
        if (got < 0) {
            st = CLT_ERR_BAD_SPEC;
            break;
        }
        if (got == 0 && !check_only) {
            char *desc = clt__devices_describe(devs, ndev);
            st = clt__fail(CLT_ERR_DEVICE_NOT_FOUND, "device spec entry '%s' (of '%s') selects "
                           "no device; %s", e, spec, desc ? desc : "");
            free(desc);
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
    if (!spec) spec = getenv("CLT_DEVICES");
    if (!spec || !*spec) spec = "all";
    size_t speclen = strlen(spec);
    if (speclen > 4096)
        return clt__fail(CLT_ERR_BAD_SPEC, "device spec is %zu characters long; 4096 at most",
                         speclen);

    int *sel = NULL;
    size_t n = 0;
    clt_status st = spec_pass(spec, devs, ndev, true, &sel, &n);
    if (st == CLT_OK) st = spec_pass(spec, devs, ndev, false, &sel, &n);
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
