/* Tuned GEMM parameters per device: a search over CLBlast's Xgemm parameters timed on the seed
 * MLP's GEMM shapes (clt_gemm_tune), stored in the per-user cache, one file per (device, driver,
 * platform, CLBlast version), and applied with CLBlastOverrideParameters when a worker starts.
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
enum { P_GEMMK, P_KREG, P_KWG, P_KWI, P_MDIMA, P_MDIMC, P_MWG, P_NDIMB, P_NDIMC, P_NWG, P_SA,
       P_SB, P_STRM, P_STRN, P_VWM, P_VWN };

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
    if (p[P_GEMMK] != 0 || p[P_KREG] != 1) return false;   /* the GEMMK=0 kernel only */
    if (p[P_SA] > 1 || p[P_SB] > 1 || p[P_STRM] > 1 || p[P_STRN] > 1) return false;
    size_t vw_ok = (1u << 0) | (1u << 1) | (1u << 2) | (1u << 4) | (1u << 8) | (1u << 16);
    if (p[P_VWM] > 16 || !((vw_ok >> p[P_VWM]) & 1) || p[P_VWN] > 16 || !((vw_ok >> p[P_VWN]) & 1))
        return false;
    if (!p[P_KWG] || !p[P_KWI] || !p[P_MDIMA] || !p[P_MDIMC] || !p[P_MWG] || !p[P_NDIMB] ||
        !p[P_NDIMC] || !p[P_NWG])
        return false;
    size_t threads = p[P_MDIMC] * p[P_NDIMC];
    if (threads > max_wg) return false;
    if (p[P_KWG] % p[P_KWI] || p[P_MWG] % (p[P_MDIMC] * p[P_VWM]) ||
        p[P_NWG] % (p[P_NDIMC] * p[P_VWN]) || p[P_MWG] % (p[P_MDIMA] * p[P_VWM]) ||
        p[P_NWG] % (p[P_NDIMB] * p[P_VWN]) || threads % p[P_MDIMA] || threads % p[P_NDIMB] ||
        p[P_KWG] % (threads / p[P_MDIMA]) || p[P_KWG] % (threads / p[P_NDIMB]))
        return false;
    size_t local = (p[P_SA] * p[P_KWG] * p[P_MWG] + p[P_SB] * p[P_KWG] * p[P_NWG]) * sizeof(float);
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

/* ---- the search ------------------------------------------------------------------------- */

int clt_gemm_seed_shapes(size_t batch, clt_gemm_shape *out, int cap)
{
    static const size_t dims[] = {1024, 512, 256, 128, 10};
    int n = 0;
    for (int l = 0; l < 4; l++) {
        size_t in = dims[l], out_ = dims[l + 1];
        clt_gemm_shape s[3] = {
            {"forward", l, 0, 1, batch, out_, in},   /* y = x W^T */
            {"grad_w", l, 1, 0, out_, in, batch},    /* dW = dy^T x */
            {"grad_x", l, 0, 0, batch, in, out_},    /* dx = dy W */
        };
        for (int i = 0; i < 3; i++) {
            if (out && n < cap) out[n] = s[i];
            n++;
        }
    }
    return n;
}

typedef struct {
    cl_mem a, b, c;
    const clt_gemm_shape *shapes;
    int nshapes;
    clt_gemm_kernel kernel;
} bench_bufs;

static clt_status bufs_make(clt__worker *w, bench_bufs *bb, const clt_gemm_shape *s, int n)
{
    size_t na = 1, nb = 1, nc = 1;
    for (int i = 0; i < n; i++) {
        if (s[i].m * s[i].k > na) na = s[i].m * s[i].k;
        if (s[i].k * s[i].n > nb) nb = s[i].k * s[i].n;
        if (s[i].m * s[i].n > nc) nc = s[i].m * s[i].n;
    }
    bb->shapes = s;
    bb->nshapes = n;
    clt_status st = clt__alloc(w, na, "GEMM benchmark A", &bb->a);
    if (st == CLT_OK) st = clt__alloc(w, nb, "GEMM benchmark B", &bb->b);
    if (st == CLT_OK) st = clt__alloc(w, nc, "GEMM benchmark C", &bb->c);
    float v = 0.5f;
    if (st == CLT_OK && bb->a)
        CLT_CL_TRY(clt__worker_name(w), clEnqueueFillBuffer(w->queue, bb->a, &v, sizeof v, 0, na * sizeof v, 0, NULL, NULL));
    if (st == CLT_OK && bb->b)
        CLT_CL_TRY(clt__worker_name(w), clEnqueueFillBuffer(w->queue, bb->b, &v, sizeof v, 0, nb * sizeof v, 0, NULL, NULL));
    return st;
}

static void bufs_free(bench_bufs *bb)
{
    if (bb->a) clReleaseMemObject(bb->a);
    if (bb->b) clReleaseMemObject(bb->b);
    if (bb->c) clReleaseMemObject(bb->c);
}

static clt_status run_shape(clt__worker *w, const bench_bufs *bb, const clt_gemm_shape *s)
{
    size_t lda = s->trans_a ? s->m : s->k, ldb = s->trans_b ? s->k : s->n;
    clt__trans ta = s->trans_a ? CLT__TRANS : CLT__NOTRANS, tb = s->trans_b ? CLT__TRANS : CLT__NOTRANS;
    switch (bb->kernel) {
    case CLT_GEMM_CLBLAST:
        return clt__sgemm_clblast(w, ta, tb, s->m, s->n, s->k, 1.0f, bb->a, 0, lda, bb->b, 0, ldb,
                                  0.0f, bb->c, 0, s->n);
    case CLT_GEMM_CLTRAIN:
        return clt__sgemm_own(w, ta, tb, s->m, s->n, s->k, 1.0f, bb->a, 0, lda, bb->b, 0, ldb,
                              0.0f, bb->c, 0, s->n);
    default:
        return clt__sgemm(w, ta, tb, s->m, s->n, s->k, 1.0f, bb->a, 0, lda, bb->b, 0, ldb, 0.0f,
                          bb->c, 0, s->n);
    }
}

/* Seconds per call of shape s: the best of `iters` timed calls after one untimed one (which
 * compiles when the parameters are new: CLBlast's first call of a parameter set). */
static clt_status time_shape(clt__worker *w, const bench_bufs *bb, const clt_gemm_shape *s,
                             int iters, double *out)
{
    clt_status st = run_shape(w, bb, s);
    if (st == CLT_OK) CLT_CL_TRY(clt__worker_name(w), clFinish(w->queue));
    double best = 1e30;
    for (int i = 0; i < iters && st == CLT_OK; i++) {
        double t0 = clt__now();
        st = run_shape(w, bb, s);
        if (st == CLT_OK) CLT_CL_TRY(clt__worker_name(w), clFinish(w->queue));
        double dt = clt__now() - t0;
        if (dt < best) best = dt;
    }
    *out = best;
    return st;
}

static double shapes_flops(const clt_gemm_shape *s, int n)
{
    double f = 0;
    for (int i = 0; i < n; i++) f += 2.0 * (double)s[i].m * (double)s[i].n * (double)s[i].k;
    return f;
}

/* GFLOPS over all shapes (total flops / total seconds); 0 when a call failed. */
static double measure(clt__worker *w, const bench_bufs *bb, int iters)
{
    double total = 0;
    for (int i = 0; i < bb->nshapes; i++) {
        double t;
        if (time_shape(w, bb, &bb->shapes[i], iters, &t) != CLT_OK) return 0;
        total += t;
    }
    return shapes_flops(bb->shapes, bb->nshapes) / total / 1e9;
}

static size_t pick(uint64_t *rng, const size_t *vals, size_t n) { return vals[clt__splitmix64(rng) % n]; }

static void random_params(uint64_t *rng, size_t *p)
{
    static const size_t wg[] = {16, 32, 64, 128}, kwg[] = {16, 32}, dim[] = {2, 4, 8, 16},
                        kwi[] = {2, 8}, vw[] = {1, 2, 4, 8, 16}, bit[] = {0, 1};
    p[P_GEMMK] = 0;
    p[P_KREG] = 1;
    p[P_MWG] = pick(rng, wg, 4);
    p[P_NWG] = pick(rng, wg, 4);
    p[P_KWG] = pick(rng, kwg, 2);
    p[P_MDIMC] = pick(rng, dim, 4);
    p[P_NDIMC] = pick(rng, dim, 4);
    p[P_MDIMA] = clt__splitmix64(rng) % 2 ? p[P_MDIMC] : pick(rng, dim, 4);
    p[P_NDIMB] = clt__splitmix64(rng) % 2 ? p[P_NDIMC] : pick(rng, dim, 4);
    p[P_KWI] = pick(rng, kwi, 2);
    p[P_VWM] = pick(rng, vw, 5);
    p[P_VWN] = pick(rng, vw, 5);
    p[P_SA] = pick(rng, bit, 2);
    p[P_SB] = pick(rng, bit, 2);
    p[P_STRM] = pick(rng, bit, 2);
    p[P_STRN] = pick(rng, bit, 2);
}

/* One parameter of best changed to a neighbouring value: a local step. */
static void neighbour(uint64_t *rng, const size_t *best, size_t *p)
{
    memcpy(p, best, CLT__XGEMM_NPARAMS * sizeof *p);
    static const int tunable[] = {P_KWG, P_KWI, P_MDIMA, P_MDIMC, P_MWG, P_NDIMB, P_NDIMC,
                                  P_NWG, P_SA, P_SB, P_STRM, P_STRN, P_VWM, P_VWN};
    for (int tries = 0; tries < 2; tries++) {
        int i = tunable[clt__splitmix64(rng) % 14];
        if (i == P_SA || i == P_SB || i == P_STRM || i == P_STRN) p[i] ^= 1;
        else p[i] = clt__splitmix64(rng) % 2 ? p[i] * 2 : (p[i] > 1 ? p[i] / 2 : 2);
    }
}

/* Starting points that measured well on PoCL's CPU device (issue 10): wide vectors along N,
 * no local memory, small work-groups. Tried first on CPUs; GPUs start from random points. */
static const size_t cpu_starts[][CLT__XGEMM_NPARAMS] = {
    {0, 1, 32, 8, 4, 4, 32, 4, 4, 128, 0, 0, 1, 1, 8, 16},
    {0, 1, 32, 8, 4, 4, 32, 4, 4, 64, 0, 0, 1, 1, 8, 8},
    {0, 1, 16, 16, 4, 4, 32, 4, 4, 64, 0, 0, 1, 1, 8, 16},
};

typedef struct {
    double budget_s;
    uint64_t seed;
    clt_gemm_shape shapes[16];
    int nshapes;
    clt_tune_result *res;
    clt__gemm_tuning best;
} tune_args;

static clt_status tune_task(clt__worker *w, void *arg)
{
    tune_args *a = arg;
    clt_tune_result *r = a->res;
    bench_bufs bb = {0};
    bb.kernel = CLT_GEMM_CLBLAST;   /* the parameters searched are CLBlast's */
    clt_status st = bufs_make(w, &bb, a->shapes, a->nshapes);
    if (st != CLT_OK) {
        bufs_free(&bb);
        return st;
    }
    double t0 = clt__now();
    /* CLBlast's parameters first (database or defaults): what tuning has to beat. */
    r->default_gflops = measure(w, &bb, 2);
    /* the closing phase times three direct-kernel thresholds, each a new program for CLBlast
     * (the threshold is one of its parameters): about three candidates' time, reserved */
    double per = clt__now() - t0;
    if (r->default_gflops <= 0) {
        bufs_free(&bb);
        return clt__fail(CLT_ERR_BLAS, "SGEMM with CLBlast's own parameters failed on device %d "
                         "'%s': %s", w->index, clt__worker_name(w), clt_last_error());
    }
    size_t local = w->dev->info.local_mem_bytes, maxwg = w->dev->info.max_work_group_size;
    const char *rn[] = {"XGEMM_MIN_INDIRECT_SIZE"};
    size_t always_indirect = 1;
    /* every shape through the Xgemm kernel while its parameters are searched */
    st = clt__blas_override(w, "GemmRoutine", 1, rn, &always_indirect);
    double best = 0;
    size_t bestp[CLT__XGEMM_NPARAMS] = {0};
    uint64_t rng = a->seed;
    int ncpu = (w->dev->info.type & CLT_DEVICE_CPU) ? 3 : 0;
    for (int c = 0; st == CLT_OK && clt__now() - t0 + 3 * per < a->budget_s && c < 100000; c++) {
        size_t p[CLT__XGEMM_NPARAMS];
        if (c < ncpu) memcpy(p, cpu_starts[c], sizeof p);
        else if (best > 0 && clt__splitmix64(&rng) % 2) neighbour(&rng, bestp, p);
        else random_params(&rng, p);
        if (!clt__xgemm_valid(p, local, maxwg)) {
            c--;   /* not a candidate: costs nothing */
            continue;
        }
        r->candidates++;
        double g = 0, c0 = clt__now();
        if (clt__blas_override(w, "Xgemm", CLT__XGEMM_NPARAMS, clt__xgemm_names, p) == CLT_OK)
            g = measure(w, &bb, 2);
        clt__error_clear();
        if (clt__now() - c0 > per) per = clt__now() - c0;
        if (g <= 0) r->failed++;
        clt__log(CLT_LOG_INFO, "tune device %d: candidate %d: %.1f GFLOPS", w->index, r->candidates, g);
        if (g > best) {
            best = g;
            memcpy(bestp, p, sizeof p);
        }
    }
    memset(&a->best, 0, sizeof a->best);
    a->best.default_gflops = r->default_gflops;
    if (st == CLT_OK && best > 0) {
        /* which shapes go to the direct kernel: the threshold on cbrt(m n k) */
        st = clt__blas_override(w, "Xgemm", CLT__XGEMM_NPARAMS, clt__xgemm_names, bestp);
        static const size_t thresholds[] = {1, 128, 256};
        size_t best_t = 1;
        double best_g = 0;
        for (int i = 0; st == CLT_OK && i < 3; i++) {
            st = clt__blas_override(w, "GemmRoutine", 1, rn, &thresholds[i]);
            double g = st == CLT_OK ? measure(w, &bb, 2) : 0;
            if (g > best_g) {
                best_g = g;
                best_t = thresholds[i];
            }
        }
        if (st == CLT_OK) st = clt__blas_override(w, "GemmRoutine", 1, rn, &best_t);
        best = best_g;
        /* kept only when clearly better than CLBlast's own (noise is a few percent) */
        if (best > 1.05 * r->default_gflops) {
            a->best.has_xgemm = a->best.has_routine = 1;
            memcpy(a->best.xgemm, bestp, sizeof bestp);
            a->best.min_indirect = best_t;
        }
    }
    a->best.tuned_gflops = a->best.has_xgemm ? best : r->default_gflops;
    bufs_free(&bb);
    return st;
}

static clt_status check_device(clt_runtime *rt, int device, const char *fn)
{
    if (!rt) return clt__fail(CLT_ERR_INVALID_ARG, "%s: runtime is NULL", fn);
    if (device < 0 || device >= rt->nworkers)
        return clt__fail(CLT_ERR_INVALID_ARG, "%s: device %d out of range (runtime has %d)", fn,
                         device, rt->nworkers);
    return CLT_OK;
}

clt_tune_options clt_tune_options_default(void)
{
    clt_tune_options o = {0};
    o.struct_size = sizeof o;
    o.budget_s = 120;
    o.seed = 1;
    o.batch = 256;
    return o;
}

clt_status clt_gemm_tune(clt_runtime *rt, int device, const clt_tune_options *o, clt_tune_result *out)
{
    clt_status st = check_device(rt, device, "clt_gemm_tune");
    if (st != CLT_OK) return st;
    if (!out) return clt__fail(CLT_ERR_INVALID_ARG, "clt_gemm_tune: result is NULL");
    memset(out, 0, sizeof *out);
    clt_tune_options d = clt_tune_options_default();
    st = clt__options_read(&d, o, sizeof d, CLT__TUNE_OPTIONS_V1, "clt_gemm_tune", "clt_tune_options");
    if (st != CLT_OK) return st;
    o = &d;
    if (!(o->budget_s >= 0 && o->budget_s <= 86400) || o->batch == 0 || o->batch > 65536)
        return clt__fail(CLT_ERR_INVALID_ARG, "clt_gemm_tune: budget %.0f s (0..86400) or batch "
                         "%zu (1..65536) out of range", o->budget_s, o->batch);
    tune_args *a = calloc(1, sizeof *a);
    if (!a) return clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    a->budget_s = o->budget_s;
    a->seed = o->seed ? o->seed : 1;
    a->nshapes = clt_gemm_seed_shapes(o->batch, a->shapes, 16);
    a->res = out;
    st = clt__run_on(rt, &device, 1, tune_task, a, 0);
    clt__worker *w = &rt->workers[device];
    char dir[4096], name[64];
    char *text = NULL;
    if (st == CLT_OK && !clt__tuning_path(&w->dev->info, dir, sizeof dir, name, sizeof name))
        st = clt__fail(CLT_ERR_IO, "no cache folder: set CLT_CACHE_DIR, XDG_CACHE_HOME or HOME");
    if (st == CLT_OK) st = clt__tuning_format(&w->dev->info, &a->best, &text);
    if (st == CLT_OK) st = clt__cache_write(dir, name, text, strlen(text));
    if (st == CLT_OK) {
        out->stored = a->best.has_xgemm;
        out->tuned_gflops = a->best.tuned_gflops;
        snprintf(out->path, sizeof out->path, "%s/%s", dir, name);
    }
    free(text);
    free(a);
    return st;
}

typedef struct {
    int applied;
} load_args;

static clt_status load_task(clt__worker *w, void *arg)
{
    return clt__tuning_load(w, &((load_args *)arg)->applied);
}

clt_status clt_gemm_tuning_load(clt_runtime *rt, int device, int *applied)
{
    clt_status st = check_device(rt, device, "clt_gemm_tuning_load");
    if (st != CLT_OK) return st;
    load_args a = {0};
    st = clt__run_on(rt, &device, 1, load_task, &a, 0);
    if (applied) *applied = a.applied;
    return st;
}

typedef struct {
    const clt_gemm_shape *s;
    clt_gemm_kernel kernel;
    int iters;
    double seconds;
} time_args;

static clt_status time_task(clt__worker *w, void *arg)
{
    time_args *a = arg;
    bench_bufs bb = {0};
    bb.kernel = a->kernel;
    clt_status st = bufs_make(w, &bb, a->s, 1);
    if (st == CLT_OK) st = time_shape(w, &bb, a->s, a->iters, &a->seconds);
    bufs_free(&bb);
    return st;
}

clt_status clt_gemm_time(clt_runtime *rt, int device, const clt_gemm_shape *s,
                         clt_gemm_kernel kernel, int iters, double *seconds)
{
    clt_status st = check_device(rt, device, "clt_gemm_time");
    if (st != CLT_OK) return st;
    if (!s || !seconds) return clt__fail(CLT_ERR_INVALID_ARG, "clt_gemm_time: shape or result is NULL");
    if (iters < 1 || iters > 100000 || !s->m || !s->n || !s->k || s->m > (1u << 20) ||
        s->n > (1u << 20) || s->k > (1u << 20))
        return clt__fail(CLT_ERR_INVALID_ARG, "clt_gemm_time: iters %d (1..100000) or shape "
                         "%zux%zux%zu (1..2^20 each) out of range", iters, s->m, s->n, s->k);
    if (kernel != CLT_GEMM_AUTO && kernel != CLT_GEMM_CLBLAST && kernel != CLT_GEMM_CLTRAIN)
        return clt__fail(CLT_ERR_INVALID_ARG, "clt_gemm_time: unknown kernel choice %d", (int)kernel);
    time_args a = {s, kernel, iters, 0};
    st = clt__run_on(rt, &device, 1, time_task, &a, 0);
    *seconds = a.seconds;
    return st;
}

int clt_gemm_uses_own_kernel(clt_runtime *rt, int device, const clt_gemm_shape *s)
{
    if (!rt || device < 0 || device >= rt->nworkers || !s) return 0;
    return clt__own_gemm_covers(&rt->workers[device], s->trans_a ? CLT__TRANS : CLT__NOTRANS,
                                s->trans_b ? CLT__TRANS : CLT__NOTRANS, s->m, s->n, s->k);
}
