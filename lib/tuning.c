/* Tuned GEMM parameters per device, below the runtime: the file a search (lib/tuning_search.c,
 * clt_gemm_tune) stores in the per-user cache, one per (device, driver, platform, CLBlast
 * version), and its loading, applied with CLBlastOverrideParameters when a worker starts.
 *
 * The file is text (docs/GEMM.md):
 *     cltrain-gemm-tuning 1
 *     device: NAME / driver: VERSION / platform: NAME / clblast: VERSION   (one line each)
 *     Xgemm: GEMMK=0 KREG=1 ...            or "Xgemm: default"
 *     GemmRoutine: XGEMM_MIN_INDIRECT_SIZE=N   or "GemmRoutine: default"
 *     gflops: default=X tuned=Y
 *     checksum: 16 hex digits, FNV-1a 64 of every byte before this line
 * A file that fails any check is ignored with a warning: the device keeps CLBlast's defaults. */
#include "internal.h"

#include <clblast_c.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TUNING_MAGIC "cltrain-gemm-tuning"
#define TUNING_VERSION 1
#define TUNING_MAX_BYTES 65536

const char *const clt__xgemm_names[CLT__XGEMM_NPARAMS] = {
    "GEMMK", "KREG", "KWG", "KWI", "MDIMA", "MDIMC", "MWG", "NDIMB",
    "NDIMC", "NWG", "SA", "SB", "STRM", "STRN", "VWM", "VWN"};

static void key_text(const clt_device_info *info, char *buf, size_t cap)
{
    snprintf(buf, cap, "device: %s\ndriver: %s\nplatform: %s\nclblast: %s\n", info->name,
             info->driver_version, info->platform_name, CLT_CLBLAST_VERSION);
}

bool clt__tuning_path(const clt_device_info *info, char *dir, size_t dcap, char *name, size_t ncap)
{
    if (!clt__cache_dir(dir, dcap)) return false;
    char key[1024];
    key_text(info, key, sizeof key);
    uint64_t h = clt__fnv1a64(CLT__FNV_INIT, key, strlen(key));
    snprintf(name, ncap, "gemm-%016" PRIx64 ".txt", h);
    return true;
}

/* Whether a parameter set is one CLBlast's Xgemm kernel accepts (the tuner's constraints) and
 * fits the device. */
bool clt__xgemm_valid(const size_t *p, size_t local_mem_bytes, size_t max_wg)
{
    for (int i = 0; i < CLT__XGEMM_NPARAMS; i++)
        if (p[i] > 1024) return false;
    size_t kwg = p[CLT__XG_KWG], kwi = p[CLT__XG_KWI], mwg = p[CLT__XG_MWG], nwg = p[CLT__XG_NWG];
    size_t mdima = p[CLT__XG_MDIMA], mdimc = p[CLT__XG_MDIMC], ndimb = p[CLT__XG_NDIMB];
    size_t ndimc = p[CLT__XG_NDIMC], vwm = p[CLT__XG_VWM], vwn = p[CLT__XG_VWN];
    size_t sa = p[CLT__XG_SA], sb = p[CLT__XG_SB];
    if (p[CLT__XG_GEMMK] != 0 || p[CLT__XG_KREG] != 1) return false;   /* the GEMMK=0 kernel only */
    if (sa > 1 || sb > 1 || p[CLT__XG_STRM] > 1 || p[CLT__XG_STRN] > 1) return false;
    size_t vw_ok = (1u << 0) | (1u << 1) | (1u << 2) | (1u << 4) | (1u << 8) | (1u << 16);
    if (vwm > 16 || !((vw_ok >> vwm) & 1) || vwn > 16 || !((vw_ok >> vwn) & 1))
        return false;
    if (!kwg || !kwi || !mdima || !mdimc || !mwg || !ndimb || !ndimc || !nwg)
        return false;
    size_t threads = mdimc * ndimc;
    if (threads > max_wg) return false;
    if (kwg % kwi || mwg % (mdimc * vwm) || nwg % (ndimc * vwn) || mwg % (mdima * vwm) ||
        nwg % (ndimb * vwn) || threads % mdima || threads % ndimb || kwg % (threads / mdima) ||
        kwg % (threads / ndimb))
        return false;
    size_t local = (sa * kwg * mwg + sb * kwg * nwg) * sizeof(float);
    return local <= local_mem_bytes;
}

clt_status clt__tuning_format(const clt_device_info *info, const clt__gemm_tuning *t, char **out)
{
    char *buf = NULL;
    size_t len = 0, cap = 0;
    char key[1024];
    key_text(info, key, sizeof key);
    bool ok = clt__sbuf_printf(&buf, &len, &cap, "%s %d\n%s", TUNING_MAGIC, TUNING_VERSION, key);
    ok = ok && clt__sbuf_printf(&buf, &len, &cap, "Xgemm:");
    for (int i = 0; ok && i < CLT__XGEMM_NPARAMS; i++)
        ok = t->has_xgemm ? clt__sbuf_printf(&buf, &len, &cap, " %s=%zu", clt__xgemm_names[i], t->xgemm[i])
                          : (i ? true : clt__sbuf_printf(&buf, &len, &cap, " default"));
    ok = ok && (t->has_routine
                    ? clt__sbuf_printf(&buf, &len, &cap, "\nGemmRoutine: XGEMM_MIN_INDIRECT_SIZE=%zu\n",
                                       t->min_indirect)
                    : clt__sbuf_printf(&buf, &len, &cap, "\nGemmRoutine: default\n"));
    ok = ok && clt__sbuf_printf(&buf, &len, &cap, "gflops: default=%.2f tuned=%.2f\n",
                                t->default_gflops, t->tuned_gflops);
    uint64_t h = ok ? clt__fnv1a64(CLT__FNV_INIT, buf, len) : 0;
    ok = ok && clt__sbuf_printf(&buf, &len, &cap, "checksum: %016" PRIx64 "\n", h);
    if (!ok) {
        free(buf);
        return clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    }
    *out = buf;
    return CLT_OK;
}

/* The next line of text (NUL-terminated in place); NULL at the end. */
static char *next_line(char **cur, char *end)
{
    if (*cur >= end) return NULL;
    char *s = *cur, *nl = memchr(s, '\n', (size_t)(end - s));
    if (!nl) return NULL;   /* every line ends with a newline: a missing one is truncation */
    *nl = '\0';
    *cur = nl + 1;
    return s;
}

static bool parse_size(const char *s, size_t *out)
{
    if (*s < '0' || *s > '9') return false;
    char *e;
    errno = 0;
    unsigned long long v = strtoull(s, &e, 10);
    if (errno || *e || v > 1u << 20) return false;
    *out = (size_t)v;
    return true;
}

clt_status clt__tuning_parse(const clt_device_info *info, char *text, size_t len, const char *what,
                             clt__gemm_tuning *out)
{
    memset(out, 0, sizeof *out);
    if (memchr(text, '\0', len)) return clt__fail(CLT_ERR_FORMAT, "%s: not a text file", what);
    const char *ck = "\nchecksum: ";
    char *cks = NULL;
    for (char *p = text; (p = strstr(p, ck)); p++) cks = p;
    if (!cks) return clt__fail(CLT_ERR_FORMAT, "%s: no checksum line (truncated?)", what);
    uint64_t want = clt__fnv1a64(CLT__FNV_INIT, text, (size_t)(cks + 1 - text));
    char hex[32];
    snprintf(hex, sizeof hex, "%016" PRIx64 "\n", want);
    if (strcmp(cks + strlen(ck), hex))
        return clt__fail(CLT_ERR_FORMAT, "%s: checksum mismatch (corrupt or truncated)", what);

    char *cur = text, *end = cks + 1;
    char *line = next_line(&cur, end);
    int version = 0, used = 0;
    if (!line || sscanf(line, TUNING_MAGIC " %d%n", &version, &used) != 1 || line[used])
        return clt__fail(CLT_ERR_FORMAT, "%s: not a cltrain GEMM tuning file", what);
    if (version != TUNING_VERSION)
        return clt__fail(CLT_ERR_FORMAT, "%s: version %d, this cltrain reads version %d", what,
                         version, TUNING_VERSION);
    /* the key: four lines that must match this device exactly */
    char key[1024];
    key_text(info, key, sizeof key);
    size_t klen = strlen(key);
    if ((size_t)(end - cur) < klen || memcmp(cur, key, klen)) {
        char *nl = memchr(cur, '\n', (size_t)(end - cur));
        if (nl) *nl = '\0';
        return clt__fail(CLT_ERR_FORMAT, "%s: made for another device, driver or CLBlast "
                         "(\"%s\"; this is \"%s\", driver %s, CLBlast %s)", what, cur, info->name,
                         info->driver_version, CLT_CLBLAST_VERSION);
    }
    cur += klen;

    line = next_line(&cur, end);
    if (!line || strncmp(line, "Xgemm: ", 7))
        return clt__fail(CLT_ERR_FORMAT, "%s: no Xgemm line", what);
    if (!strcmp(line + 7, "default")) {
        out->has_xgemm = 0;
    } else {
        char *s = line + 7;
        for (int i = 0; i < CLT__XGEMM_NPARAMS; i++) {
            size_t nl = strlen(clt__xgemm_names[i]);
            if (strncmp(s, clt__xgemm_names[i], nl) || s[nl] != '=')
                return clt__fail(CLT_ERR_FORMAT, "%s: Xgemm parameter %d is not %s", what, i,
                                 clt__xgemm_names[i]);
            s += nl + 1;
            char *sp = strchr(s, ' ');
            if (sp) *sp = '\0';
            if (!parse_size(s, &out->xgemm[i]) || (i + 1 < CLT__XGEMM_NPARAMS) != (sp != NULL))
                return clt__fail(CLT_ERR_FORMAT, "%s: bad value for Xgemm %s", what,
                                 clt__xgemm_names[i]);
            if (sp) s = sp + 1;
        }
        if (!clt__xgemm_valid(out->xgemm, info->local_mem_bytes ? info->local_mem_bytes : 32768,
                              info->max_work_group_size ? info->max_work_group_size : 256))
            return clt__fail(CLT_ERR_FORMAT, "%s: the Xgemm parameters are not a valid set for "
                             "this device", what);
        out->has_xgemm = 1;
    }
    line = next_line(&cur, end);
    if (!line || strncmp(line, "GemmRoutine: ", 13))
        return clt__fail(CLT_ERR_FORMAT, "%s: no GemmRoutine line", what);
    if (!strcmp(line + 13, "default")) {
        out->has_routine = 0;
    } else {
        const char *pre = "XGEMM_MIN_INDIRECT_SIZE=";
        if (strncmp(line + 13, pre, strlen(pre)) ||
            !parse_size(line + 13 + strlen(pre), &out->min_indirect) || out->min_indirect == 0 ||
            out->min_indirect > 65536)
            return clt__fail(CLT_ERR_FORMAT, "%s: bad GemmRoutine line", what);
        out->has_routine = 1;
    }
    line = next_line(&cur, end);
    if (!line || sscanf(line, "gflops: default=%lf tuned=%lf%n", &out->default_gflops,
                        &out->tuned_gflops, &used) != 2 || line[used])
        return clt__fail(CLT_ERR_FORMAT, "%s: bad gflops line", what);
    if (cur != end) return clt__fail(CLT_ERR_FORMAT, "%s: unexpected lines before the checksum", what);
    return CLT_OK;
}

/* Applies t to w's device. */
static clt_status apply(clt__worker *w, const clt__gemm_tuning *t)
{
    clt_status st = CLT_OK;
    if (t->has_xgemm) st = clt__blas_override(w, "Xgemm", CLT__XGEMM_NPARAMS, clt__xgemm_names, t->xgemm);
    if (st == CLT_OK && t->has_routine) {
        const char *names[] = {"XGEMM_MIN_INDIRECT_SIZE"};
        st = clt__blas_override(w, "GemmRoutine", 1, names, &t->min_indirect);
    }
    return st;
}

clt_status clt__tuning_load(clt__worker *w, int *applied)
{
    *applied = 0;
    const char *env = getenv("CLT_GEMM_TUNING");
    if (env && !strcmp(env, "0")) return CLT_OK;
    char dir[4096], name[64], path[4200];
    if (!clt__tuning_path(&w->dev->info, dir, sizeof dir, name, sizeof name)) return CLT_OK;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    unsigned char *data;
    size_t len;
    FILE *probe = fopen(path, "rb");
    if (!probe) return CLT_OK;   /* never tuned: CLBlast's own parameters */
    fclose(probe);
    clt__gemm_tuning t;
    clt_status st = clt__cache_read(path, TUNING_MAX_BYTES, &data, &len);
    if (st == CLT_OK) {
        st = clt__tuning_parse(&w->dev->info, (char *)data, len, path, &t);
        free(data);
    }
    if (st != CLT_OK) {
        clt__log(CLT_LOG_WARN, "ignoring the GEMM tuning cache for device %d (%s): %s", w->index,
                 clt__worker_name(w), clt_last_error());
        clt__error_clear();
        return CLT_OK;
    }
    st = apply(w, &t);
    if (st != CLT_OK) {
        clt__log(CLT_LOG_WARN, "GEMM tuning for device %d (%s) not applied: %s", w->index,
                 clt__worker_name(w), clt_last_error());
        clt__error_clear();
        return CLT_OK;
    }
    *applied = t.has_xgemm || t.has_routine;
    clt__log(CLT_LOG_INFO, "device %d (%s): GEMM tuning from %s (%.1f GFLOPS tuned, %.1f default)",
             w->index, clt__worker_name(w), path, t.tuned_gflops, t.default_gflops);
    return CLT_OK;
}
