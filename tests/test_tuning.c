/* GEMM tuning cache: files written and read back; truncated, corrupt, wrong-version, wrong-key
 * and invalid files refused with a reason (and ignored with a warning at load, the device
 * keeping CLBlast's own parameters); a tuning applied with CLBlastOverrideParameters still gives
 * right SGEMM results (against a double-precision CPU loop) on three devices; clt_gemm_tune with
 * a zero budget and the argument checks. */
#include "internal.h"
#include "tap.h"

#include <unistd.h>

/* float32 GEMM, K up to 300, against a double loop */
#define ATOL 1e-4
#define RTOL 1e-4

static clt_device_info fake_info(const char *name)
{
    clt_device_info i;
    memset(&i, 0, sizeof i);
    snprintf(i.name, sizeof i.name, "%s", name);
    snprintf(i.driver_version, sizeof i.driver_version, "9.9");
    snprintf(i.platform_name, sizeof i.platform_name, "Test Platform");
    i.local_mem_bytes = 65536;
    i.max_work_group_size = 4096;
    return i;
}

/* A parameter set unlike CLBlast's defaults: SA/SB on, odd vector widths, always indirect. */
static clt__gemm_tuning sample(void)
{
    clt__gemm_tuning t;
    memset(&t, 0, sizeof t);
    const size_t p[CLT__XGEMM_NPARAMS] = {0, 1, 16, 2, 8, 8, 32, 8, 8, 32, 1, 1, 0, 1, 4, 2};
    t.has_xgemm = 1;
    memcpy(t.xgemm, p, sizeof p);
    t.has_routine = 1;
    t.min_indirect = 1;
    t.default_gflops = 4.5;
    t.tuned_gflops = 40.25;
    return t;
}

static clt_status parse_copy(const clt_device_info *info, const char *text, size_t len,
                             clt__gemm_tuning *out)
{
    char *buf = malloc(len + 1);
    memcpy(buf, text, len);
    buf[len] = '\0';
    clt_status st = clt__tuning_parse(info, buf, len, "test file", out);
    free(buf);
    return st;
}

/* Re-signs text after an edit (so only the edit is wrong, not the checksum). */
static char *resign(const char *text)
{
    const char *ck = strstr(text, "checksum: ");
    size_t body = (size_t)(ck - text);
    char *out = malloc(body + 64);
    memcpy(out, text, body);
    snprintf(out + body, 64, "checksum: %016llx\n",
             (unsigned long long)clt__fnv1a64(CLT__FNV_INIT, text, body));
    return out;
}

static char *replace(const char *text, const char *from, const char *to)
{
    const char *at = strstr(text, from);
    if (!at) return NULL;
    size_t n = strlen(text) - strlen(from) + strlen(to) + 1;
    char *out = malloc(n);
    snprintf(out, n, "%.*s%s%s", (int)(at - text), text, to, at + strlen(from));
    return out;
}

static void test_parse(void)
{
    clt_device_info info = fake_info("Test Device");
    clt__gemm_tuning t = sample(), back;
    char *text = NULL;
    ok_status(clt__tuning_format(&info, &t, &text), "a tuning formats");
    size_t len = strlen(text);
    ok_status(parse_copy(&info, text, len, &back), "and parses back");
    ok(back.has_xgemm && !memcmp(back.xgemm, t.xgemm, sizeof t.xgemm) && back.has_routine &&
           back.min_indirect == 1 && fabs(back.tuned_gflops - 40.25) < 1e-9 &&
           fabs(back.default_gflops - 4.5) < 1e-9,
       "every value survives the round trip");

    clt__gemm_tuning none = {0};
    char *dtext = NULL;
    ok_status(clt__tuning_format(&info, &none, &dtext), "a 'keep CLBlast's own' record formats");
    ok(strstr(dtext, "Xgemm: default\n") && strstr(dtext, "GemmRoutine: default\n"), "it says default");
    ok_status(parse_copy(&info, dtext, strlen(dtext), &back), "and parses");
    ok(!back.has_xgemm && !back.has_routine, "with nothing to override");
    free(dtext);

    /* truncated anywhere: refused */
    int refused = 0, cuts = 0;
    for (size_t cut = 0; cut < len; cut += 7, cuts++)
        refused += parse_copy(&info, text, cut, &back) == CLT_ERR_FORMAT;
    ok(refused == cuts, "every truncation refused (%d of %d)", refused, cuts);
    ok_error(parse_copy(&info, text, len - 1, &back), CLT_ERR_FORMAT, "checksum",
             "a file missing its last newline is refused");

    /* one byte changed: the checksum catches it */
    char *bad = strdup(text);
    bad[strstr(bad, "KWG=16") - bad + 4] = '3';
    ok_error(parse_copy(&info, bad, len, &back), CLT_ERR_FORMAT, "checksum mismatch",
             "a corrupt value is refused");
    free(bad);
    ok_error(parse_copy(&info, "\x01\x02\0garbage", 10, &back), CLT_ERR_FORMAT, "not a text file",
             "binary garbage is refused");
    ok_error(parse_copy(&info, "", 0, &back), CLT_ERR_FORMAT, "checksum", "an empty file is refused");

    char *e = replace(text, "cltrain-gemm-tuning 1", "cltrain-gemm-tuning 2"), *s = resign(e);
    ok_error(parse_copy(&info, s, strlen(s), &back), CLT_ERR_FORMAT, "version 2",
             "another version is refused, named");
    free(e), free(s);
    e = replace(text, "cltrain-gemm-tuning 1", "something-else 1"), s = resign(e);
    ok_error(parse_copy(&info, s, strlen(s), &back), CLT_ERR_FORMAT, "not a cltrain GEMM tuning",
             "another magic is refused");
    free(e), free(s);

    /* the key: another device, driver or CLBlast */
    clt_device_info other = fake_info("Other Device");
    ok_error(parse_copy(&other, text, len, &back), CLT_ERR_FORMAT, "another device",
             "a file made for another device is refused");
    clt_device_info drv = fake_info("Test Device");
    snprintf(drv.driver_version, sizeof drv.driver_version, "10.0");
    ok_error(parse_copy(&drv, text, len, &back), CLT_ERR_FORMAT, "driver 10.0",
             "a file made with another driver version is refused");
    e = replace(text, "clblast: " CLT_CLBLAST_VERSION, "clblast: 0.0.1"), s = resign(e);
    ok_error(parse_copy(&info, s, strlen(s), &back), CLT_ERR_FORMAT, "another device, driver or CLBlast",
             "a file made with another CLBlast is refused");
    free(e), free(s);

    /* well signed but not a parameter set CLBlast accepts */
    e = replace(text, "MWG=32", "MWG=48"), s = resign(e);
    ok_error(parse_copy(&info, s, strlen(s), &back), CLT_ERR_FORMAT, "not a valid set",
             "parameters breaking CLBlast's constraints are refused");
    free(e), free(s);
    e = replace(text, "KWG=16", "KWG=x6"), s = resign(e);
    ok_error(parse_copy(&info, s, strlen(s), &back), CLT_ERR_FORMAT, "bad value for Xgemm KWG",
             "a non-number is refused, named");
    free(e), free(s);
    e = replace(text, "GEMMK=0 KREG", "GEMMK=0 KRAG"), s = resign(e);
    ok_error(parse_copy(&info, s, strlen(s), &back), CLT_ERR_FORMAT, "is not KREG",
             "a misnamed parameter is refused");
    free(e), free(s);
    e = replace(text, "gflops:", "extra: 1\ngflops:"), s = resign(e);
    ok_error(parse_copy(&info, s, strlen(s), &back), CLT_ERR_FORMAT, "bad gflops line",
             "an unexpected line is refused");
    free(e), free(s);
    free(text);

    /* the constraints themselves */
    size_t p[CLT__XGEMM_NPARAMS];
    memcpy(p, t.xgemm, sizeof p);
    ok(clt__xgemm_valid(p, 65536, 1024), "the sample set is valid");
    ok(!clt__xgemm_valid(p, 1024, 1024), "not with 1 KiB of local memory (SA, SB need 4 KiB)");
    ok(!clt__xgemm_valid(p, 65536, 32), "not with work-groups of 32 (it needs 64)");
    p[14] = 3;
    ok(!clt__xgemm_valid(p, 65536, 1024), "a vector width of 3 is not valid");
}

static const char *warned;
static char warning[1024];

static void catch_log(clt_log_level level, const char *msg, void *user)
{
    (void)user;
    if (level == CLT_LOG_WARN && !warned) {
        snprintf(warning, sizeof warning, "%s", msg);
        warned = warning;
    }
}

/* Writes text as the tuning file of runtime device 0's physical device. */
static void write_for(clt_runtime *rt, const char *text)
{
    char dir[4096], name[64];
    clt__tuning_path(&rt->workers[0].dev->info, dir, sizeof dir, name, sizeof name);
    clt__cache_write(dir, name, text, strlen(text));
}

typedef struct {
    clt__trans ta, tb;
    size_t m, n, k;
} gcase;

static const gcase gcases[] = {
    {CLT__NOTRANS, CLT__TRANS, 256, 128, 300},   /* Linear forward */
    {CLT__TRANS, CLT__NOTRANS, 64, 96, 256},     /* weight gradient */
    {CLT__NOTRANS, CLT__NOTRANS, 37, 53, 19},    /* no multiple of any tile */
    {CLT__TRANS, CLT__TRANS, 5, 7, 3},
};

typedef struct {
    float *a, *b, *c;
    clt_status st;
} gjob;

static void fill(float *v, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        v[i] = (float)((seed >> 8) & 0xffff) / 32768.0f - 1.0f;
    }
}

static const gcase *current;

static clt_status gemm_task(clt__worker *w, void *arg)
{
    gjob *j = arg;
    const gcase *c = current;
    cl_int e1, e2, e3;
    cl_mem a = clCreateBuffer(w->context, CL_MEM_COPY_HOST_PTR, c->m * c->k * 4, j->a, &e1);
    cl_mem b = clCreateBuffer(w->context, CL_MEM_COPY_HOST_PTR, c->k * c->n * 4, j->b, &e2);
    cl_mem cm = clCreateBuffer(w->context, CL_MEM_READ_WRITE, c->m * c->n * 4, NULL, &e3);
    clt_status st = (e1 || e2 || e3) ? clt__fail_cl(e1 ? e1 : e2 ? e2 : e3, "test", "clCreateBuffer") : CLT_OK;
    if (st == CLT_OK)
        st = clt__sgemm(w, c->ta, c->tb, c->m, c->n, c->k, 1.0f, a, 0, c->ta ? c->m : c->k, b, 0,
                        c->tb ? c->k : c->n, 0.0f, cm, 0, c->n);
    if (st == CLT_OK && clEnqueueReadBuffer(w->queue, cm, CL_TRUE, 0, c->m * c->n * 4, j->c, 0, NULL, NULL))
        st = clt__fail(CLT_ERR_OPENCL, "read back failed");
    if (a) clReleaseMemObject(a);
    if (b) clReleaseMemObject(b);
    if (cm) clReleaseMemObject(cm);
    return st;
}

static void check_gemms(clt_runtime *rt, const char *what)
{
    int nd = clt_runtime_device_count(rt);
    for (size_t ci = 0; ci < sizeof gcases / sizeof gcases[0]; ci++) {
        const gcase *c = current = &gcases[ci];
        gjob *jobs = calloc((size_t)nd, sizeof *jobs);
        float *ref = malloc(c->m * c->n * 4);
        for (int d = 0; d < nd; d++) {
            jobs[d].a = malloc(c->m * c->k * 4), jobs[d].b = malloc(c->k * c->n * 4);
            jobs[d].c = calloc(c->m * c->n, 4);
            fill(jobs[d].a, c->m * c->k, 3 + (unsigned)d), fill(jobs[d].b, c->k * c->n, 50 + (unsigned)ci);
        }
        ok_status(clt__runtime_parallel(rt, gemm_task, jobs, sizeof *jobs),
                  "%s: %s%s M=%zu N=%zu K=%zu on %d devices", what, c->ta ? "T" : "N",
                  c->tb ? "T" : "N", c->m, c->n, c->k, nd);
        for (int d = 0; d < nd; d++) {
            for (size_t i = 0; i < c->m; i++)
                for (size_t j = 0; j < c->n; j++) {
                    double acc = 0;
                    for (size_t p = 0; p < c->k; p++)
                        acc += (double)(c->ta ? jobs[d].a[p * c->m + i] : jobs[d].a[i * c->k + p]) *
                               (double)(c->tb ? jobs[d].b[j * c->k + p] : jobs[d].b[p * c->n + j]);
                    ref[i * c->n + j] = (float)acc;
                }
            char name[160];
            snprintf(name, sizeof name, "%s: case %zu on device %d matches the CPU loop", what, ci, d);
            ok_close(jobs[d].c, ref, c->m * c->n, ATOL, RTOL, name);
            free(jobs[d].a), free(jobs[d].b), free(jobs[d].c);
        }
        free(jobs);
        free(ref);
    }
}

int main(void)
{
    char dir[] = "/tmp/clt-tuning-XXXXXX";
    if (!mkdtemp(dir)) return 1;
    setenv("CLT_CACHE_DIR", dir, 1);
    unsetenv("CLT_GEMM_TUNING");
    test_parse();

    tap_require_device();
    clt_log_set_callback(catch_log, CLT_LOG_WARN, NULL);
    clt_runtime *rt = NULL;
    if (!ok_status(clt_runtime_create(&rt, test_spec_one()), "runtime on %s", test_spec_one())) return tap_done();
    int applied = -1;
    ok_status(clt_gemm_tuning_load(rt, 0, &applied), "loading with no cache file");
    ok(applied == 0 && !warned, "nothing applied, nothing warned");

    clt__gemm_tuning t = sample();
    clt_device_info info = rt->workers[0].dev->info;
    char *good = NULL;
    clt__tuning_format(&info, &t, &good);
    clt_device_info other = info;
    snprintf(other.driver_version, sizeof other.driver_version, "not-this-driver");
    char *foreign = NULL;
    clt__tuning_format(&other, &t, &foreign);
    char *wrong_version = replace(good, "cltrain-gemm-tuning 1", "cltrain-gemm-tuning 7");
    char *wv = resign(wrong_version);
    char *truncated = strndup(good, strlen(good) / 2);
    char *corrupt = strdup(good);
    corrupt[strlen(corrupt) / 3] ^= 0x20;
    struct {
        const char *what, *text, *needle;
    } bad[] = {{"truncated", truncated, "checksum"},
               {"corrupt", corrupt, "checksum mismatch"},
               {"wrong version", wv, "version 7"},
               {"wrong key", foreign, "another device, driver"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_for(rt, bad[i].text);
        warned = NULL;
        applied = -1;
        ok_status(clt_gemm_tuning_load(rt, 0, &applied), "a %s file is not an error", bad[i].what);
        ok(applied == 0, "a %s file is not applied", bad[i].what);
        ok(warned && strstr(warned, "ignoring the GEMM tuning cache") && strstr(warned, bad[i].needle),
           "a %s file is ignored with a warning saying why (%s)", bad[i].what, warned ? warned : "none");
    }
    clt_runtime_destroy(rt);
    free(foreign), free(wrong_version), free(wv), free(truncated), free(corrupt);

    /* a bad file at worker start: the runtime still opens */
    warned = NULL;
    ok_status(clt_runtime_create(&rt, test_spec_one()), "a runtime opens over a bad cache file");
    ok(warned != NULL, "with a warning");
    clt_runtime_destroy(rt);

    /* The good file: applied at worker start on three devices, then SGEMM still right. */
    char dpath[4096], dname[64];
    clt__tuning_path(&info, dpath, sizeof dpath, dname, sizeof dname);
    ok_status(clt__cache_write(dpath, dname, good, strlen(good)), "the good file written");
    warned = NULL;
    if (ok_status(clt_runtime_create(&rt, test_spec_all()), "runtime on all devices with the tuning cached")) {
        int nd = clt_runtime_device_count(rt), all_applied = 1;
        /* a device of another kind (a mixed selection) gets a file made for it: a record is
         * keyed to its device and driver, and another kind's would be refused, rightly */
        for (int d = 0; d < nd; d++) {
            char dd[4096], dn[64];
            const clt_device_info *di = &rt->workers[d].dev->info;
            clt__tuning_path(di, dd, sizeof dd, dn, sizeof dn);
            if (!strcmp(dn, dname)) continue;
            char *theirs = NULL;
            clt__tuning_format(di, &t, &theirs);
            if (theirs) clt__cache_write(dd, dn, theirs, strlen(theirs));
            free(theirs);
        }
        for (int d = 0; d < nd; d++) {
            applied = 0;
            clt_status st = clt_gemm_tuning_load(rt, d, &applied);
            all_applied &= st == CLT_OK && applied == 1;
        }
        ok(all_applied, "the tuning applies on every device, each with the record of its kind");
        ok(!warned, "without a warning (%s)", warned ? warned : "none");
        diag("%d devices", nd);
        /* CLBlast for every shape, or CPU devices would run cltrain's kernel for most */
        setenv("CLT_GEMM_KERNEL", "clblast", 1);
        check_gemms(rt, "tuned parameters");
        unsetenv("CLT_GEMM_KERNEL");
        clt_runtime_destroy(rt);
    }
    free(good);

    /* clt_gemm_tune with a zero budget: CLBlast's own measured, a record written */
    setenv("CLT_GEMM_TUNING", "0", 1);
    if (ok_status(clt_runtime_create(&rt, test_spec_one()), "runtime without the cached tuning")) {
        clt_tune_options o = clt_tune_options_default();
        o.budget_s = 0;
        o.batch = 16;
        clt_tune_result r;
        ok_status(clt_gemm_tune(rt, 0, &o, &r), "tuning with a zero budget");
        ok(r.default_gflops > 0 && r.candidates == 0 && !r.stored &&
               r.tuned_gflops == r.default_gflops, "CLBlast's own measured (%.1f GFLOPS) and kept",
           r.default_gflops);
        unsigned char *data = NULL;
        size_t len = 0;
        clt__gemm_tuning back;
        ok(clt__cache_read(r.path, 65536, &data, &len) == CLT_OK &&
               clt__tuning_parse(&rt->workers[0].dev->info, (char *)data, len, r.path, &back) == CLT_OK &&
               !back.has_xgemm, "the record it wrote says 'default' and reads back");
        free(data);
        clt_gemm_shape s = {"forward", 0, 0, 1, 16, 32, 64};
        double sec = 0;
        ok_status(clt_gemm_time(rt, 0, &s, CLT_GEMM_CLBLAST, 2, &sec), "clt_gemm_time through CLBlast");
        ok(sec > 0 && sec < 10, "a small GEMM takes %.6f s", sec);
        double own = 0;
        ok_status(clt_gemm_time(rt, 0, &s, CLT_GEMM_CLTRAIN, 2, &own), "and through cltrain's kernel");
        ok(own > 0 && own < 10, "which takes %.6f s", own);
        clt_gemm_shape odd = {"forward", 3, 0, 1, 16, 10, 64};
        ok_status(clt_gemm_time(rt, 0, &odd, CLT_GEMM_CLTRAIN, 2, &own), "N = 10 through cltrain's "
                  "kernel (padded)");
        clt_gemm_shape tt = {"none", 3, 1, 1, 16, 16, 64};
        ok_error(clt_gemm_time(rt, 0, &tt, CLT_GEMM_CLTRAIN, 2, &own), CLT_ERR_INVALID_ARG,
                 "does not cover", "cltrain's kernel refuses both operands transposed, saying so");
        ok(!clt_gemm_uses_own_kernel(rt, 0, &tt), "and is not picked for it");
        ok_error(clt_gemm_time(rt, 0, &s, (clt_gemm_kernel)7, 2, &own), CLT_ERR_INVALID_ARG,
                 "unknown kernel", "an unknown kernel choice");
        ok_error(clt_gemm_tune(rt, 3, &o, &r), CLT_ERR_INVALID_ARG, "out of range", "a bad device");
        ok_error(clt_gemm_tune(rt, 0, &o, NULL), CLT_ERR_INVALID_ARG, "NULL", "a NULL result");
        o.budget_s = -1;
        ok_error(clt_gemm_tune(rt, 0, &o, &r), CLT_ERR_INVALID_ARG, "budget", "a negative budget");
        s.m = 0;
        ok_error(clt_gemm_time(rt, 0, &s, CLT_GEMM_AUTO, 2, &sec), CLT_ERR_INVALID_ARG, "shape", "an empty shape");
        ok_error(clt_gemm_tuning_load(NULL, 0, NULL), CLT_ERR_INVALID_ARG, "NULL", "a NULL runtime");
        clt_runtime_destroy(rt);
    }
    unsetenv("CLT_GEMM_TUNING");
    clt_gemm_shape shapes[16];
    ok(clt_gemm_seed_shapes(256, shapes, 16) == 12 && shapes[0].m == 256 && shapes[0].n == 512 &&
           shapes[0].k == 1024 && shapes[1].trans_a == 1 && shapes[1].m == 512 && shapes[1].k == 256,
       "the seed MLP's 12 GEMMs at batch 256, forward first");
    clt_log_set_callback(NULL, CLT_LOG_ERROR, NULL);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) diag("could not remove %s", dir);
    return tap_done();
}
