/* cltrain tune: searches CLBlast's GEMM parameters per device and caches them (clt_gemm_tune);
 * cltrain bench gemm: GFLOPS of the seed MLP's GEMMs with CLBlast's own parameters and with the
 * cached ones, in the same run, beside OpenBLAS (one thread) on the same shapes. */
#include "config.h"   /* CLT_HAVE_OPENBLAS */
#include "commands.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef CLT_HAVE_OPENBLAS
#include <cblas.h>
#endif

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* A runtime that starts with CLBlast's own parameters: the cached tuning is what is measured
 * against them, so it must not be applied at start. */
static clt_status open_untuned(clt_runtime **rt, const char *spec)
{
    const char *old = getenv("CLT_GEMM_TUNING");
    char *saved = old ? strdup(old) : NULL;
    setenv("CLT_GEMM_TUNING", "0", 1);
    clt_status st = clt_runtime_create(rt, spec);
    if (saved) setenv("CLT_GEMM_TUNING", saved, 1);
    else unsetenv("CLT_GEMM_TUNING");
    free(saved);
    return st;
}

/* Whether runtime device d is the same physical device as an earlier one: it shares its cache
 * file and CLBlast's parameters, so it is tuned and measured once. */
static int seen_before(clt_runtime *rt, int d)
{
    clt_device_info me, other;
    if (clt_runtime_device_info(rt, d, &me) != CLT_OK) return 0;
    for (int e = 0; e < d; e++)
        if (clt_runtime_device_info(rt, e, &other) == CLT_OK && other.platform == me.platform &&
            other.device == me.device)
            return 1;
    return 0;
}

int cmd_tune(int argc, char **argv)
{
    const char *spec = NULL;
    int json = 0;
    clt_tune_options o = clt_tune_options_default();
    double budget = o.budget_s;
    long seed = (long)o.seed, batch = (long)o.batch;
    tool_opt opts[] = {
        TOOL_DEVICES(&spec),
        TOOL_DOUBLE("budget", "SECONDS", &budget, 0, 86400,
                    "seconds of search per device (default 120; 0: time CLBlast's own parameters only)"),
        TOOL_LONG("seed", "N", &seed, 0, 9.3e18, "random sampling of the candidates (default 1)"),
        TOOL_LONG("batch", "N", &batch, 1, 65536, "batch of the seed MLP's GEMM shapes timed (default 256)"),
        TOOL_JSON(&json),
        TOOL_END};
    const tool_cmd cmd = {"tune", "[OPTIONS]",
                          "Searches CLBlast's GEMM parameters for every selected device, one device at a time,\n"
                          "within the budget, and stores them in the per-user cache when they beat CLBlast's\n"
                          "own by 5%; every later runtime applies them (CLT_GEMM_TUNING=0 turns that off).",
                          NULL, opts};
    int parsed = tool_parse(&cmd, argc, argv);
    if (parsed >= 0) return parsed;
    o.budget_s = budget, o.seed = (uint64_t)seed, o.batch = (size_t)batch;
    clt_runtime *rt;
    clt_status st = open_untuned(&rt, spec);
    if (st != CLT_OK) return tool_fail(tool_opening(spec), st);
    int nd = clt_runtime_device_count(rt);
    clt_device_info *infos = calloc((size_t)nd, sizeof *infos);
    if (!infos) {
        clt_runtime_destroy(rt);
        fprintf(stderr, "cltrain tune: out of host memory\n");
        return 1;
    }
    int rc = 0;
    for (int d = 0; d < nd && st == CLT_OK; d++) st = clt_runtime_device_info(rt, d, &infos[d]);
    /* one device at a time: tuning times the device, and the CPU devices share the cores */
    for (int d = 0; d < nd && st == CLT_OK; d++) {
        if (seen_before(rt, d)) continue;
        if (!json)
            printf("tuning device %d:%d %s (driver %s) for up to %.0f s...\n", infos[d].platform,
                   infos[d].device, infos[d].name, infos[d].driver_version, o.budget_s);
        fflush(stdout);
        clt_tune_result r;
        double t0 = now();
        st = clt_gemm_tune(rt, d, &o, &r);
        if (st != CLT_OK) {
            rc = tool_fail("tuning", st);
            break;
        }
        if (json)
            printf("{\"tune\":\"gemm\",\"device\":\"%d:%d\",\"name\":\"%s\",\"stored\":%d,"
                   "\"candidates\":%d,\"failed\":%d,\"default_gflops\":%.2f,\"tuned_gflops\":%.2f,"
                   "\"seconds\":%.1f,\"cache\":\"%s\"}\n",
                   infos[d].platform, infos[d].device, infos[d].name, r.stored, r.candidates,
                   r.failed, r.default_gflops, r.tuned_gflops, now() - t0, r.path);
        else
            printf("  %d parameter sets timed (%d refused) in %.0f s: %.1f GFLOPS with CLBlast's "
                   "own parameters, %.1f tuned; %s\n  cache: %s\n",
                   r.candidates, r.failed, now() - t0, r.default_gflops, r.tuned_gflops,
                   r.stored ? "tuned parameters stored" : "CLBlast's own kept (not beaten by 5%)",
                   r.path);
    }
    if (st != CLT_OK && rc == 0) rc = tool_fail("tuning", st);
    free(infos);
    clt_runtime_destroy(rt);
    return rc;
}

/* ---- bench gemm ------------------------------------------------------------------------- */

#ifdef CLT_HAVE_OPENBLAS
/* Seconds per cblas_sgemm of s on one thread: the best of iters after one untimed. */
static double openblas_time(const clt_gemm_shape *s, int iters, float *a, float *b, float *c)
{
    int lda = s->trans_a ? (int)s->m : (int)s->k, ldb = s->trans_b ? (int)s->k : (int)s->n;
    double best = 1e30;
    for (int i = 0; i <= iters; i++) {
        double t0 = now();
        cblas_sgemm(CblasRowMajor, s->trans_a ? CblasTrans : CblasNoTrans,
                    s->trans_b ? CblasTrans : CblasNoTrans, (int)s->m, (int)s->n, (int)s->k, 1.0f,
                    a, lda, b, ldb, 0.0f, c, (int)s->n);
        double dt = now() - t0;
        if (i > 0 && dt < best) best = dt;
    }
    return best;
}
#endif

static int bench_gemm(const char *spec, size_t batch, int iters, int json)
{
    clt_gemm_shape shapes[16];
    int ns = clt_gemm_seed_shapes(batch, shapes, 16);
    clt_runtime *rt;
    clt_status st = open_untuned(&rt, spec);
    if (st != CLT_OK) return tool_fail(tool_opening(spec), st);
    int nd = clt_runtime_device_count(rt);
    float *a = NULL, *b = NULL, *c = NULL;
#ifdef CLT_HAVE_OPENBLAS
    openblas_set_num_threads(1);
    size_t most = 1024 * 1024 + batch * 1024;
    a = malloc(most * sizeof *a), b = malloc(most * sizeof *b), c = malloc(most * sizeof *c);
    if (!a || !b || !c) {
        free(a), free(b), free(c);
        clt_runtime_destroy(rt);
        fprintf(stderr, "cltrain bench: out of host memory\n");
        return 1;
    }
    for (size_t i = 0; i < most; i++) a[i] = b[i] = c[i] = 0.5f;
    const int have_blas = 1;
#else
    const int have_blas = 0;
    if (!json) printf("# OpenBLAS was not found at configure time (Debian's libopenblas-dev): no CPU column\n");
#endif
    enum { DEF, BLAS1, TUNED, BLAS2, OWN, NT };
    double *t = calloc((size_t)ns * NT, sizeof *t);   /* seconds per shape; 0: not measured */
    for (int d = 0; d < nd && st == CLT_OK && t; d++) {
        clt_device_info info;
        clt_runtime_device_info(rt, d, &info);
        if (seen_before(rt, d)) continue;   /* its tuning is applied already */
        memset(t, 0, (size_t)ns * NT * sizeof *t);
        /* CLBlast with its own parameters and cltrain's kernel, then the cache applied; OpenBLAS
         * beside each phase. */
        for (int i = 0; i < ns && st == CLT_OK; i++) {
            double *ti = t + i * NT;
            st = clt_gemm_time(rt, d, &shapes[i], CLT_GEMM_CLBLAST, iters, &ti[DEF]);
            if (st == CLT_OK && clt_gemm_time(rt, d, &shapes[i], CLT_GEMM_CLTRAIN, iters, &ti[OWN]) != CLT_OK)
                ti[OWN] = 0;   /* a shape the own kernel does not cover */
#ifdef CLT_HAVE_OPENBLAS
            ti[BLAS1] = openblas_time(&shapes[i], iters, a, b, c);
#endif
        }
        int applied = 0;
        if (st == CLT_OK) st = clt_gemm_tuning_load(rt, d, &applied);
        for (int i = 0; i < ns && st == CLT_OK; i++) {
            double *ti = t + i * NT;
            if (applied) st = clt_gemm_time(rt, d, &shapes[i], CLT_GEMM_CLBLAST, iters, &ti[TUNED]);
#ifdef CLT_HAVE_OPENBLAS
            ti[BLAS2] = openblas_time(&shapes[i], iters, a, b, c);
#endif
        }
        if (st != CLT_OK) break;
        /* what a training step runs: the own kernel where it is picked, else CLBlast as set */
        double flops = 0, tot_def = 0, tot_tuned = 0, tot_used = 0, tot_blas = 0;
        if (!json) {
            printf("# bench gemm: device %d:%d %s, batch %zu, best of %d. GFLOPS: CLBlast with its own "
                   "parameters, CLBlast with the cached tuning (%s), cltrain's kernel (- where it does "
                   "not apply), what clt__sgemm uses, OpenBLAS on 1 thread%s\n",
                   info.platform, info.device, info.name, batch, iters,
                   applied ? "applied" : "none cached: cltrain tune", have_blas ? "" : " (missing)");
            printf("%-5s %-7s %5s %5s %5s %8s %8s %8s %8s %8s %9s\n", "layer", "product", "M", "N",
                   "K", "default", "tuned", "cltrain", "used", "openblas", "used/blas");
        }
        for (int i = 0; i < ns; i++) {
            const clt_gemm_shape *s = &shapes[i];
            const double *ti = t + i * NT;
            double f = 2.0 * (double)s->m * (double)s->n * (double)s->k;
            int own = clt_gemm_uses_own_kernel(rt, d, s);
            double t_tuned = applied ? ti[TUNED] : ti[DEF];
            double t_used = own && ti[OWN] > 0 ? ti[OWN] : t_tuned;
            double t_blas = have_blas ? (ti[BLAS1] + ti[BLAS2]) / 2 : 0;
            flops += f, tot_def += ti[DEF], tot_tuned += t_tuned, tot_used += t_used, tot_blas += t_blas;
            double g_def = f / ti[DEF] / 1e9, g_tun = applied ? f / ti[TUNED] / 1e9 : 0;
            double g_own = ti[OWN] > 0 ? f / ti[OWN] / 1e9 : 0, g_used = f / t_used / 1e9;
            double g_blas = have_blas ? f / t_blas / 1e9 : 0;
            if (json)
                printf("{\"bench\":\"gemm\",\"device\":\"%d:%d\",\"layer\":%d,\"product\":\"%s\","
                       "\"m\":%zu,\"n\":%zu,\"k\":%zu,\"clblast_default_gflops\":%.2f,"
                       "\"clblast_tuned_gflops\":%.2f,\"cltrain_gflops\":%.2f,\"used\":\"%s\","
                       "\"used_gflops\":%.2f,\"openblas_gflops\":%.2f,\"used_vs_openblas\":%.3f}\n",
                       info.platform, info.device, s->layer, s->what, s->m, s->n, s->k, g_def, g_tun,
                       g_own, own ? "cltrain" : applied ? "clblast-tuned" : "clblast", g_used, g_blas,
                       g_blas > 0 ? g_used / g_blas : 0);
            else {
                char own_s[16] = "-";
                if (g_own > 0) snprintf(own_s, sizeof own_s, "%.1f", g_own);
                printf("%-5d %-7s %5zu %5zu %5zu %8.1f %8.1f %8s %8.1f %8.1f %9.2f\n", s->layer,
                       s->what, s->m, s->n, s->k, g_def, g_tun, own_s, g_used, g_blas,
                       g_blas > 0 ? g_used / g_blas : 0);
            }
        }
        double g_def = flops / tot_def / 1e9, g_tun = flops / tot_tuned / 1e9;
        double g_used = flops / tot_used / 1e9, g_blas = have_blas ? flops / tot_blas / 1e9 : 0;
        if (json)
            printf("{\"bench\":\"gemm\",\"device\":\"%d:%d\",\"name\":\"%s\",\"total\":true,"
                   "\"batch\":%zu,\"tuned\":%d,\"clblast_default_gflops\":%.2f,"
                   "\"clblast_tuned_gflops\":%.2f,\"used_gflops\":%.2f,\"openblas\":%s,"
                   "\"openblas_gflops\":%.2f,\"used_vs_openblas\":%.3f}\n",
                   info.platform, info.device, info.name, batch, applied, g_def, g_tun, g_used,
                   have_blas ? "true" : "false", g_blas, g_blas > 0 ? g_used / g_blas : 0);
        else
            printf("%-5s %-7s %17s %8.1f %8.1f %8s %8.1f %8.1f %9.2f\n", "all", "", "", g_def,
                   g_tun, "", g_used, g_blas, g_blas > 0 ? g_used / g_blas : 0);
    }
    if (!t) fprintf(stderr, "cltrain bench: out of host memory\n");
    free(t);
    free(a), free(b), free(c);
    clt_runtime_destroy(rt);
    if (st != CLT_OK) return tool_fail("bench gemm", st);
    return t ? 0 : 1;
}

int cmd_bench_gemm(int argc, char **argv)
{
    const char *spec = NULL;
    long batch = 256, iters = 3;
    int json = 0;
    tool_opt opts[] = {
        TOOL_DEVICES(&spec),
        TOOL_LONG("batch", "N", &batch, 1, 65536, "batch of the seed MLP's GEMM shapes (default 256)"),
        TOOL_LONG("iters", "N", &iters, 1, 1000000, "the best of N timed runs per shape (default 3)"),
        TOOL_JSON(&json),
        TOOL_END};
    const tool_cmd cmd = {"bench gemm", "[OPTIONS]",
                          "GFLOPS of the seed MLP's twelve GEMMs per device: CLBlast with its own parameters,\n"
                          "with the cached tuning (cltrain tune), cltrain's own kernel, what a training step\n"
                          "uses, and OpenBLAS on one thread when configure found it.",
                          NULL, opts};
    int rc = tool_parse(&cmd, argc, argv);
    if (rc >= 0) return rc;
    return bench_gemm(spec, (size_t)batch, (int)iters, json);
}
