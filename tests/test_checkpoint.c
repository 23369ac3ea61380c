/* Checkpoints: resuming gives the losses of never stopping (bitwise on one device, with SGD
 * momentum and Adam, dropout and a schedule in play), a checkpoint moves between device counts,
 * a failed save leaves the old file, and every corrupted, truncated or mismatched file is refused
 * with the trainer left as it was; a run resumed past the file's cosine schedule trains on once
 * the schedule is stretched. CLT_WRITE_CORPUS=DIR also writes the fuzz seed corpus. */
#include "internal.h"
#include "scratch.h"
#include "tap.h"

#include <dirent.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

static clt_runtime *rt;
static char dir[256];

enum { IN = 8, CLASSES = 4, B = 6 };

static clt_model *small_model(int hidden, int dropout)
{
    clt_model *m;
    clt_model_create(&m, clt_shape1(IN));
    clt_model_add(m, clt_linear(hidden));
    clt_model_add(m, clt_relu());
    if (dropout) clt_model_add(m, clt_dropout(0.3f));
    clt_model_add(m, clt_linear(CLASSES));
    return m;
}

/* Batch number `i` of a fixed stream: the same on every call. */
static void batch(int i, float *x, int32_t *y)
{
    uint64_t s = 0x1234567ull + (uint64_t)i * 7919u;
    for (int k = 0; k < B * IN; k++) x[k] = (float)((clt__splitmix64(&s) >> 40) % 2001) / 1000.0f - 1.0f;
    for (int k = 0; k < B; k++) y[k] = (int32_t)(clt__splitmix64(&s) % CLASSES);
}

/* Trains batches [from, from + n) and writes their losses. */
static bool train(clt_trainer *t, int from, int n, float *losses)
{
    float x[B * IN];
    int32_t y[B];
    for (int i = 0; i < n; i++) {
        batch(from + i, x, y);
        if (clt_trainer_step(t, x, y, B, &losses[i]) != CLT_OK) {
            diag("step %d: %s", from + i, clt_last_error());
            return false;
        }
    }
    return true;
}

/* Parameters then optimizer state, (1 + nstate) * nparams floats (malloc'ed). */
static float *snapshot(clt_trainer *t, size_t *n)
{
    size_t np = t->model->nparams;
    int ns = clt__optim_state_arrays(&t->p.optim);
    float *s = calloc((size_t)(1 + ns) * np, sizeof *s);
    t->ops->param_io(t, 0, np, s, 0, 0);
    for (int i = 0; i < ns; i++) t->ops->state_io(t, i, 0, np, s + (size_t)(1 + i) * np, 0);
    *n = (size_t)(1 + ns) * np;
    return s;
}

static char *path_of(const char *name) { return test_path(dir, name); }

static uint8_t *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(*len ? *len : 1);
    if (fread(b, 1, *len, f) != *len) *len = 0;
    fclose(f);
    return b;
}

static void spit(const char *path, const uint8_t *b, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f) return;
    fwrite(b, 1, len, f);
    fclose(f);
}

static clt_train_params params_for(clt_optimizer o)
{
    clt_train_params p = clt_train_params_default();
    p.optim = o;
    p.max_batch = B;
    p.seed = 5;
    p.schedule.kind = CLT_SCHED_STEP;
    p.schedule.step_size = 2;
    p.schedule.gamma = 0.7f;
    p.clip_norm = 5.0f;
    return p;
}

/* ---- resuming ----------------------------------------------------------------------------- */

/* Model parallel on the runtime's first three devices: layers 0-1, 2, 3 on devices 0, 1, 2
 * (with dropout, device 1's stage has no parameter), a 1F1B pipeline of 2 micro-batches. */
static void model_parallel(clt_model *m, clt_train_params *p)
{
    int last = clt_model_layer_count(m) - 1;
    clt_model_place(m, 0, last - 2, 0);
    clt_model_place(m, last - 1, last - 1, 1);
    clt_model_place(m, last, last, 2);
    p->parallel = CLT_PARALLEL_MODEL;
    p->pipeline = CLT_PIPELINE_1F1B;
    p->micro_batches = 2;
}

static void check_resume(const char *name, clt_optimizer o, int model)
{
    enum { K = 3, J = 4 };
    clt_model *m = small_model(16, 1);
    clt_train_params p = params_for(o);
    if (model) model_parallel(m, &p);
    clt_trainer *a, *b;
    if (!ok_status(clt_trainer_create(&a, rt, m, &p), "%s: trainer", name)) return;
    float la[K + J], lb[J];
    const char *path = path_of("resume.ckpt");
    ok(train(a, 0, K, la), "%s: %d steps", name, K);
    clt_data_position pos = {2, 42, 77};
    clt_trainer_set_data_position(a, &pos);
    ok_status(clt_trainer_save(a, path), "%s: save after %d steps", name, K);
    ok(train(a, K, J, la + K), "%s: %d more steps", name, J);
    size_t na, nb;
    float *sa = snapshot(a, &na);

    /* another seed and learning rate: the checkpoint's are the ones that count */
    clt_train_params q = p;
    q.seed = 999;
    q.optim.lr *= 3;
    q.schedule.kind = CLT_SCHED_CONSTANT;
    if (ok_status(clt_trainer_create(&b, rt, m, &q), "%s: a fresh trainer", name)) {
        ok_status(clt_trainer_load(b, path), "%s: load", name);
        clt_data_position got;
        clt_trainer_data_position(b, &got);
        ok(clt_trainer_step_count(b) == K && got.epoch == 2 && got.index == 42 && got.seed == 77,
           "%s: the step count (%ld) and the data position come back", name, clt_trainer_step_count(b));
        ok(train(b, K, J, lb), "%s: %d steps after the load", name, J);
        float *sb = snapshot(b, &nb);
        ok(!memcmp(la + K, lb, sizeof lb), "%s: the %d losses after the load are bitwise those of never "
           "stopping (%.7g %.7g ... vs %.7g %.7g ...)", name, J, la[K], la[K + 1], lb[0], lb[1]);
        ok(na == nb && !memcmp(sa, sb, na * sizeof *sa),
           "%s: parameters and optimizer state are bitwise equal after %d more steps", name, J);
        free(sb);
        clt_trainer_destroy(b);
    }
    free(sa);
    clt_trainer_destroy(a);
    clt_model_destroy(m);
}

/* Resuming for longer than the file's cosine schedule: after the load the learning rate is the
 * file's end (0 here, so a fixed batch's loss stays put); clt_trainer_set_schedule with a longer
 * total_steps continues from the file's step on the longer cosine, and the loss falls. */
static void check_stretch(void)
{
    enum { K = 4, W = 1, J = 6 };
    const float lr = 0.1f;
    clt_model *m = small_model(16, 0);
    clt_train_params p = params_for(clt_sgd(lr, 0.9f, 0, 0));
    p.schedule = (clt_schedule){.kind = CLT_SCHED_COSINE, .total_steps = K, .min_lr = 0, .warmup_steps = W};
    clt_trainer *a = NULL, *b = NULL;
    float la[K], lb[J];
    const char *path = path_of("stretch.ckpt");
    if (!ok_status(clt_trainer_create(&a, rt, m, &p), "stretch: trainer")) goto out;
    ok(train(a, 0, K, la), "stretch: %d steps of a %d-step cosine schedule", K, K);
    ok_status(clt_trainer_save(a, path), "stretch: save at the schedule's end");
    for (int stretch = 0; stretch < 2; stretch++) {
        const char *how = stretch ? "stretched to 3x" : "as the file has it";
        if (!ok_status(clt_trainer_create(&b, rt, m, &p), "stretch: a fresh trainer") ||
            !ok_status(clt_trainer_load(b, path), "stretch: load"))
            break;
        clt_schedule s = {0};
        clt_status got = clt_trainer_schedule(b, &s);
        ok(got == CLT_OK && s.kind == CLT_SCHED_COSINE && s.total_steps == K &&
           s.warmup_steps == W, "stretch: the schedule after the load is the file's (total %ld)", s.total_steps);
        if (stretch) {
            s.total_steps = 3 * K;
            ok_status(clt_trainer_set_schedule(b, &s), "stretch: set a %d-step schedule", 3 * K);
        }
        /* the next step's rate: the cosine at step K of the (new) length */
        double T = (double)(s.total_steps - W), tt = (double)(K - W);
        float want = stretch ? (float)(lr * 0.5 * (1.0 + cos(M_PI * tt / T))) : 0.0f;
        ok(clt_trainer_lr(b) == want, "stretch, %s: the next rate is %g (want %g)", how,
           (double)clt_trainer_lr(b), (double)want);
        float x[B * IN];
        int32_t y[B];
        batch(1000, x, y);   /* one fixed batch: its loss moves only when the rate is above 0 */
        bool stepped = true;
        for (int i = 0; i < J && stepped; i++) stepped = clt_trainer_step(b, x, y, B, &lb[i]) == CLT_OK;
        ok(stepped, "stretch, %s: %d steps after the load", how, J);
        if (stretch)
            ok(lb[J - 1] < lb[0] && clt_trainer_lr(b) > 0.0f, "stretch: the loss keeps falling "
               "(%.6g -> %.6g), the rate is still %g", (double)lb[0], (double)lb[J - 1],
               (double)clt_trainer_lr(b));
        else
            ok(lb[J - 1] == lb[0], "stretch: without it nothing trains past the file's schedule "
               "(%.6g -> %.6g)", (double)lb[0], (double)lb[J - 1]);
        clt_trainer_destroy(b);
        b = NULL;
    }
    /* bad schedules are refused and leave the one in use */
    if (ok_status(clt_trainer_create(&b, rt, m, &p), "stretch: a trainer for bad schedules")) {
        clt_schedule bad = p.schedule, got;
        bad.total_steps = W;
        ok(clt_trainer_set_schedule(b, &bad) == CLT_ERR_INVALID_ARG && strstr(clt_last_error(), "total_steps"),
           "stretch: total_steps <= warmup_steps is refused: %s", clt_last_error());
        bad = p.schedule;
        bad.min_lr = NAN;
        ok(clt_trainer_set_schedule(b, &bad) == CLT_ERR_INVALID_ARG && strstr(clt_last_error(), "min_lr"),
           "stretch: a NaN min_lr is refused: %s", clt_last_error());
        ok(clt_trainer_set_schedule(b, NULL) == CLT_ERR_INVALID_ARG &&
           clt_trainer_schedule(NULL, &got) == CLT_ERR_INVALID_ARG, "stretch: NULL is refused");
        got.total_steps = 0;
        clt_status st = clt_trainer_schedule(b, &got);
        ok(st == CLT_OK && got.total_steps == K, "stretch: the schedule stays (total %ld)", got.total_steps);
    }
out:
    clt_trainer_destroy(b);
    clt_trainer_destroy(a);
    clt_model_destroy(m);
}

/* A checkpoint written by `from` devices (data parallel, or with from_model model parallel)
 * loads on `to` devices (data parallel, or model parallel): the format does not depend on
 * where the parameters lived. */
static void check_devices(clt_runtime *from_rt, int from_model, clt_runtime *to_rt, int to_model)
{
    enum { K = 3, J = 3 };
    int nf = clt_runtime_device_count(from_rt), nt = clt_runtime_device_count(to_rt);
    clt_model *m = small_model(13, 0);   /* 169 parameters: shards of unequal fill */
    clt_train_params p = params_for(clt_adam(0.01f)), p0 = p;
    clt_trainer *a, *b;
    if (from_model || to_model) model_parallel(m, &p);   /* places the layers (data ignores it) */
    p.parallel = from_model ? CLT_PARALLEL_MODEL : nf > 1 ? CLT_PARALLEL_DATA : CLT_PARALLEL_NONE;
    if (!ok_status(clt_trainer_create(&a, from_rt, m, &p), "%s trainer on %d device(s)",
                   from_model ? "model-parallel" : "data-parallel", nf)) goto out_model;
    float la[K + J], lb[J];
    const char *path = path_of("devices.ckpt");
    train(a, 0, K, la);
    ok_status(clt_trainer_save(a, path), "save on %d device(s)", nf);
    train(a, K, J, la + K);
    size_t na, nb;
    float *sa = snapshot(a, &na);
    if (!to_model) p.micro_batches = p0.micro_batches, p.pipeline = p0.pipeline;
    p.parallel = to_model ? CLT_PARALLEL_MODEL : nt > 1 ? CLT_PARALLEL_DATA : CLT_PARALLEL_NONE;
    if (ok_status(clt_trainer_create(&b, to_rt, m, &p), "%s trainer on %d device(s)",
                  to_model ? "model-parallel" : "data-parallel", nt)) {
        ok_status(clt_trainer_load(b, path), "load a %d-device %s checkpoint on %d device(s) (%s)", nf,
                  from_model ? "model-parallel" : "data-parallel", nt, to_model ? "model parallel" : "data parallel");
        train(b, K, J, lb);
        float *sb = snapshot(b, &nb);
        ok_close(lb, la + K, J, 1e-6, 1e-5, "losses after the load match never stopping");
        ok(na == nb, "the same state size");
        ok_close(sb, sa, na, 1e-6, 1e-5, "parameters and Adam's m and v match");
        free(sb);
        clt_trainer_destroy(b);
    }
    free(sa);
    clt_trainer_destroy(a);
out_model:
    clt_model_destroy(m);
}

/* ---- saving that fails -------------------------------------------------------------------- */

static int temp_files_left(void)
{
    int n = 0;
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d)))
        n += strstr(e->d_name, ".tmp.") != NULL;
    if (d) closedir(d);
    return n;
}

static void check_failed_save(void)
{
    clt_model *m = small_model(2048, 0);   /* ~25k parameters: about 300 KB with Adam */
    clt_train_params p = params_for(clt_adam(0.01f));
    clt_trainer *t;
    if (!ok_status(clt_trainer_create(&t, rt, m, &p), "a larger trainer")) return;
    float l[2];
    const char *path = path_of("full.ckpt");
    train(t, 0, 1, l);
    ok_status(clt_trainer_save(t, path), "a first checkpoint");
    size_t len0, len1;
    uint8_t *before = slurp(path, &len0);
    train(t, 1, 1, l);

    /* a full disk: the file size limit stops the write midway (EFBIG instead of ENOSPC) */
    struct rlimit old, lim;
    getrlimit(RLIMIT_FSIZE, &old);
    lim = old;
    lim.rlim_cur = 128 * 1024;
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    setrlimit(RLIMIT_FSIZE, &lim);
    clt_status st = clt_trainer_save(t, path);
    setrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, prev);
    ok(st == CLT_ERR_IO && strstr(clt_last_error(), "full.ckpt"),
       "a save that runs out of space fails with CLT_ERR_IO naming the file (%s)", clt_last_error());
    uint8_t *after = slurp(path, &len1);
    ok(before && after && len0 == len1 && !memcmp(before, after, len0),
       "the previous checkpoint is intact (%zu bytes)", len0);
    ok(temp_files_left() == 0, "no temporary file is left behind");
    clt_trainer *u;
    if (clt_trainer_create(&u, rt, m, &p) == CLT_OK) {
        ok_status(clt_trainer_load(u, path), "the previous checkpoint still loads");
        ok(clt_trainer_step_count(u) == 1, "at its step count (1)");
        clt_trainer_destroy(u);
    }
    ok_error(clt_trainer_save(t, path_of("no/such/folder/x.ckpt")), CLT_ERR_IO, "no/such/folder",
             "a save into a missing folder: CLT_ERR_IO naming the path");
    ok_error(clt_trainer_save(t, dir), CLT_ERR_IO, "cltrain-ckpt-", "a save over a folder fails");
    ok(temp_files_left() == 0, "still no temporary file");
    ok_status(clt_trainer_save(t, path), "with space again, the save succeeds");
    free(before), free(after);
    clt_trainer_destroy(t);
    clt_model_destroy(m);
}

/* ---- corrupted files ---------------------------------------------------------------------- */

static uint32_t crc(const uint8_t *p, size_t n) { return (uint32_t)crc32(0L, p, (uInt)n); }

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static void check_corruption(void)
{
    clt_model *m = small_model(16, 1);
    clt_train_params p = params_for(clt_sgd(0.05f, 0.9f, 0, 0));
    clt_trainer *t;
    if (!ok_status(clt_trainer_create(&t, rt, m, &p), "trainer for the corruption checks")) return;
    float l[2];
    const char *good = path_of("good.ckpt"), *bad = path_of("bad.ckpt");
    train(t, 0, 2, l);
    ok_status(clt_trainer_save(t, good), "a valid checkpoint");
    train(t, 2, 1, l);   /* the trainer moves on: a load that went through would show */
    size_t len, n0, n1;
    uint8_t *b = slurp(good, &len);
    float *s0 = snapshot(t, &n0);
    long steps0 = clt_trainer_step_count(t);
    float lr0 = clt_trainer_lr(t);
    diag("the checkpoint has %zu bytes", len);

    bool all = true;
    for (size_t cut = 0; cut < len; cut++) {
        spit(bad, b, cut);
        clt_status st = clt_trainer_load(t, bad);
        if (st != CLT_ERR_FORMAT) diag("truncated to %zu: %s %s", cut, clt_status_name(st), clt_last_error());
        all &= st == CLT_ERR_FORMAT;
    }
    ok(all, "truncated at each of %zu lengths: CLT_ERR_FORMAT", len);
    all = true;
    for (size_t i = 0; i < len; i++) {
        b[i] ^= 0xFF;
        spit(bad, b, len);
        b[i] ^= 0xFF;
        clt_status st = clt_trainer_load(t, bad);
        if (st != CLT_ERR_FORMAT) diag("byte %zu flipped: %s %s", i, clt_status_name(st), clt_last_error());
        all &= st == CLT_ERR_FORMAT;
    }
    ok(all, "each of the %zu bytes flipped: CLT_ERR_FORMAT", len);
    uint8_t *c = malloc(len + 8);
    memcpy(c, b, len);
    memcpy(c + len, "trailing", 8);
    spit(bad, c, len + 8);
    ok_error(clt_trainer_load(t, bad), CLT_ERR_FORMAT, "after the last section", "bytes after the end");
    memcpy(c, b, len);
    c[0] = 'X';
    spit(bad, c, len);
    ok_error(clt_trainer_load(t, bad), CLT_ERR_FORMAT, "not a cltrain checkpoint", "a wrong magic");
    memcpy(c, b, len);
    put32(c + 8, 3);
    put32(c + 20, crc(c, 20));
    spit(bad, c, len);
    ok_error(clt_trainer_load(t, bad), CLT_ERR_FORMAT, "format version 3", "a newer version");
    memcpy(c, b, len);
    put32(c + 12, 0xFFFFFFFFu);
    put32(c + 20, crc(c, 20));
    spit(bad, c, len);
    ok_error(clt_trainer_load(t, bad), CLT_ERR_FORMAT, "sections", "an absurd section count");
    /* the first section's size (bytes 32..39): not under its CRC, so checked against the file */
    for (int k = 0; k < 3; k++) {
        static const uint64_t sizes[3] = {~0ull, 1ull << 62, 0};
        memcpy(c, b, len);
        for (int i = 0; i < 8; i++) c[32 + i] = (uint8_t)(sizes[k] >> (8 * i));
        spit(bad, c, len);
        clt_status st = clt_trainer_load(t, bad);
        ok(st == CLT_ERR_FORMAT, "a model section size of %llu: %s", (unsigned long long)sizes[k], clt_last_error());
    }
    /* a valid file of a huge model: layer 0 made 2^24 wide, every CRC made right */
    memcpy(c, b, len);
    put32(c + 24 + 16 + 24 + 4, 1u << 24);
    put32(c + 24 + 4, crc(c + 40, (size_t)c[32] | (size_t)c[33] << 8));
    spit(bad, c, len);
    ok_error(clt_trainer_load(t, bad), CLT_ERR_FORMAT, "parameters", "a model of absurd size with valid CRCs");
    free(c);
    spit(bad, b, 0);
    ok_error(clt_trainer_load(t, bad), CLT_ERR_FORMAT, "header", "an empty file");
    ok_error(clt_trainer_load(t, path_of("missing.ckpt")), CLT_ERR_IO, "missing.ckpt", "a missing file: CLT_ERR_IO");
    ok_error(clt_trainer_load(t, dir), CLT_ERR_IO, "not a regular file", "a folder: CLT_ERR_IO");

    /* valid files of something else */
    clt_model *other = small_model(17, 1);
    clt_trainer *u;
    if (clt_trainer_create(&u, rt, other, &p) == CLT_OK) {
        ok_error(clt_trainer_load(u, good), CLT_ERR_SHAPE, "layer 0 differs in its size", "another model: CLT_ERR_SHAPE naming the layer");
        clt_trainer_destroy(u);
    }
    clt_model_destroy(other);
    other = small_model(16, 0);
    if (clt_trainer_create(&u, rt, other, &p) == CLT_OK) {
        ok_error(clt_trainer_load(u, good), CLT_ERR_SHAPE, "4 layers", "a layer fewer");
        clt_trainer_destroy(u);
    }
    clt_model_destroy(other);
    clt_train_params q = params_for(clt_adam(0.01f));
    if (clt_trainer_create(&u, rt, m, &q) == CLT_OK) {
        ok_error(clt_trainer_load(u, good), CLT_ERR_FORMAT, "adam", "another optimizer: CLT_ERR_FORMAT naming both");
        clt_trainer_destroy(u);
    }
    q = params_for(clt_sgd(0.05f, 0, 0, 0));
    if (clt_trainer_create(&u, rt, m, &q) == CLT_OK) {
        ok_error(clt_trainer_load(u, good), CLT_ERR_FORMAT, "without momentum", "SGD without momentum against SGD with");
        clt_trainer_destroy(u);
    }
    q = params_for(clt_sgd(0.05f, 0.9f, 0, 0));
    q.loss = CLT_LOSS_MSE;
    if (clt_trainer_create(&u, rt, m, &q) == CLT_OK) {
        ok_error(clt_trainer_load(u, good), CLT_ERR_FORMAT, "loss", "another loss");
        clt_trainer_destroy(u);
    }

    float *s1 = snapshot(t, &n1);
    ok(n0 == n1 && !memcmp(s0, s1, n0 * sizeof *s0) && clt_trainer_step_count(t) == steps0 &&
       clt_trainer_lr(t) == lr0, "after all of these the trainer's parameters, momentum, step count and "
       "learning rate are unchanged");
    ok_status(clt_trainer_load(t, good), "the valid file still loads");
    ok(clt_trainer_step_count(t) == 2, "back at step 2");

    /* the parser alone, byte by byte (what the fuzz target runs) */
    clt__checkpoint ck;
    ok_status(clt__checkpoint_parse(b, len, "memory", &ck), "the parser takes the valid bytes");
    ok(ck.steps == 2 && ck.nstate == 1 && ck.model && ck.model->nparams == t->model->nparams,
       "and reads the step count, one momentum array and the model");
    clt__checkpoint_free(&ck);
    free(s0), free(s1), free(b);
    clt_trainer_destroy(t);
    clt_model_destroy(m);
}

/* ---- bad arguments and states -------------------------------------------------------------- */

static void check_bad_input(void)
{
    clt_model *m = small_model(4, 0);
    clt_train_params p = params_for(clt_sgd(0.1f, 0, 0, 0));
    p.accumulation = 2;
    clt_trainer *t;
    if (!ok_status(clt_trainer_create(&t, rt, m, &p), "trainer with accumulation 2")) return;
    const char *path = path_of("bad_input.ckpt");
    ok_error(clt_trainer_save(NULL, path), CLT_ERR_INVALID_ARG, "trainer is NULL", "save: NULL trainer");
    ok_error(clt_trainer_save(t, NULL), CLT_ERR_INVALID_ARG, "path is NULL", "save: NULL path");
    ok_error(clt_trainer_save(t, ""), CLT_ERR_INVALID_ARG, "empty", "save: empty path");
    ok_error(clt_trainer_load(NULL, path), CLT_ERR_INVALID_ARG, "trainer is NULL", "load: NULL trainer");
    ok_error(clt_trainer_load(t, NULL), CLT_ERR_INVALID_ARG, "path is NULL", "load: NULL path");
    ok_error(clt_trainer_load(t, ""), CLT_ERR_INVALID_ARG, "empty", "load: empty path");
    clt_data_position pos = {1, 2, 3};
    ok_error(clt_trainer_set_data_position(NULL, &pos), CLT_ERR_INVALID_ARG, "NULL", "set position: NULL trainer");
    ok_error(clt_trainer_set_data_position(t, NULL), CLT_ERR_INVALID_ARG, "NULL", "set position: NULL position");
    ok_error(clt_trainer_data_position(NULL, &pos), CLT_ERR_INVALID_ARG, "NULL", "position: NULL trainer");
    ok_error(clt_trainer_data_position(t, NULL), CLT_ERR_INVALID_ARG, "NULL", "position: NULL out");
    clt_trainer_data_position(t, &pos);
    ok(pos.epoch == 0 && pos.index == 0 && pos.seed == 0, "a new trainer's data position is zero");

    float l[2];
    ok_status(clt_trainer_save(t, path), "save before any step (no optimizer state yet)");
    train(t, 0, 1, l);
    ok_error(clt_trainer_save(t, path), CLT_ERR_STATE, "accumulation", "save halfway through accumulation: CLT_ERR_STATE");
    train(t, 1, 1, l);
    ok_status(clt_trainer_save(t, path), "save after the update");
    ok_status(clt_trainer_load(t, path), "load it back");
    clt_trainer_destroy(t);

    /* a model without parameters */
    clt_model *none;
    clt_model_create(&none, clt_shape1(CLASSES));
    clt_model_add(none, clt_relu());
    p.accumulation = 1;
    if (ok_status(clt_trainer_create(&t, rt, none, &p), "a model without parameters")) {
        ok_status(clt_trainer_save(t, path), "saves");
        ok_status(clt_trainer_load(t, path), "and loads");
        clt_trainer_destroy(t);
    }
    clt_model_destroy(none);
    clt_model_destroy(m);
}

/* A version 1 file (the fuzz corpus was written by the library before version 2) still loads:
 * its model is read without a device, a trainer of that model takes its state, and a save
 * writes version 2 with the same parameters. */
static void check_version1(void)
{
    char path[1024], out[600];
    const char *src = getenv("CLT_TEST_SRCDIR");
    snprintf(path, sizeof path, "%s/tests/corpus/checkpoint/sgd_momentum.ckpt", src ? src : ".");
    size_t len = 0;
    uint8_t *b = slurp(path, &len);
    if (!ok(b && len > 24 && b[8] == 1, "%s is a version 1 checkpoint", path)) {
        free(b);
        return;
    }
    free(b);
    clt_model *m = NULL;
    char *vocab = (char *)1;
    size_t vlen = 7;
    if (!ok_status(clt_checkpoint_read_model(path, &m, &vocab, &vlen), "its model is read without a device"))
        return;
    ok(vocab == NULL && vlen == 0 && clt_model_layer_count(m) == 4, "4 layers (dropout among them), no vocabulary");
    clt_train_params p = params_for(clt_sgd(0.1f, 0.9f, 0, 0));
    clt_trainer *t;
    if (ok_status(clt_trainer_create(&t, rt, m, &p), "a trainer of that model")) {
        ok_status(clt_trainer_load(t, path), "the version 1 file loads");
        ok(clt_trainer_step_count(t) == 1, "at step 1");
        snprintf(out, sizeof out, "%s/v2.ckpt", dir);
        ok_status(clt_trainer_save(t, out), "saved again");
        uint8_t *c = slurp(out, &len);
        ok(c && len > 24 && c[8] == 2, "as version 2");
        free(c);
        clt_trainer *u;
        if (clt_trainer_create(&u, rt, m, &p) == CLT_OK) {
            ok_status(clt_trainer_load(u, out), "which loads");
            size_t np = clt_model_param_count(m);
            float *x = malloc(np * sizeof *x), *y = malloc(np * sizeof *y);
            bool same = true;
            for (int l = 0; l < 4; l++) {
                clt_shape sh;
                const char *names[2] = {"weight", "bias"};
                for (int k = 0; k < 2; k++)
                    if (clt_model_param_shape(m, l, names[k], &sh) == CLT_OK) {
                        size_t n = clt_shape_numel(sh);
                        same = same && clt_trainer_get_param(t, l, names[k], x, n) == CLT_OK &&
                               clt_trainer_get_param(u, l, names[k], y, n) == CLT_OK &&
                               !memcmp(x, y, n * sizeof *x);
                    }
            }
            ok(same, "with the same parameters");
            free(x), free(y);
            clt_trainer_destroy(u);
        }
        clt_trainer_destroy(t);
    }
    clt_model_destroy(m);
}

/* A character GPT: token steps resume bit for bit, and the vocabulary travels with the file. */
static void check_gpt(void)
{
    clt_gpt_config g = clt_gpt_config_default();
    g.vocab = 11, g.block = 6, g.layers = 2, g.heads = 2, g.embd = 8, g.dropout = 0.1f;
    clt_model *m;
    if (!ok_status(clt_model_create_gpt(&m, &g), "a small GPT")) return;
    clt_train_params p = clt_train_params_default();
    p.optim = clt_adamw(0.01f, 0.1f);
    p.max_batch = 3;
    p.seed = 9;
    p.decay = CLT_DECAY_MATRICES;
    enum { N = 3 * 6 };
    int32_t x[4][N], y[4][N];
    uint64_t r = 77;
    for (int i = 0; i < 4; i++)
        for (int k = 0; k < N; k++) {
            r = r * 6364136223846793005ull + 1442695040888963407ull;
            x[i][k] = (int32_t)((r >> 33) % 11);
            y[i][k] = (x[i][k] + 1) % 11;
        }
    clt_trainer *a, *b2;
    float la[4], lb[4];
    char path[600];
    snprintf(path, sizeof path, "%s/gpt.ckpt", dir);
    static const char vocab[] = "\n !,.aehlo\xc3\xa9";   /* bytes, kept as they are */
    bool good = clt_trainer_create(&a, rt, m, &p) == CLT_OK;
    if (!ok(good, "its trainer")) {
        clt_model_destroy(m);
        return;
    }
    ok_status(clt_trainer_set_vocabulary(a, vocab, sizeof vocab - 1), "a vocabulary set");
    for (int i = 0; i < 2; i++) good = good && clt_trainer_step_tokens(a, x[i], y[i], 3, &la[i]) == CLT_OK;
    good = good && clt_trainer_save(a, path) == CLT_OK;
    for (int i = 2; i < 4; i++) good = good && clt_trainer_step_tokens(a, x[i], y[i], 3, &la[i]) == CLT_OK;
    ok(good, "4 steps, saved after 2: %s", good ? "" : clt_last_error());
    clt_train_params rp;
    ok(clt_checkpoint_read_params(path, &rp) == CLT_OK && rp.decay == CLT_DECAY_MATRICES &&
           rp.optim.kind == CLT_OPTIM_ADAMW && rp.optim.lr == 0.01f && rp.seed == 9 && rp.max_batch == 256,
       "clt_checkpoint_read_params gives the file's settings (decay on matrices, AdamW, seed) over the defaults");
    clt_model *read = NULL;
    char *v = NULL;
    size_t vl = 0;
    ok_status(clt_checkpoint_read_model(path, &read, &v, &vl), "the model is read back");
    ok(read && clt_model_layer_count(read) == clt_model_layer_count(m) &&
           clt_model_param_count(read) == clt_model_param_count(m),
       "with the same layers and parameters");
    ok(v && vl == sizeof vocab - 1 && !memcmp(v, vocab, vl) && v[vl] == '\0', "and the vocabulary");
    free(v);
    if (read && clt_trainer_create(&b2, rt, read, &p) == CLT_OK) {
        const char *bv;
        size_t bl;
        ok_status(clt_trainer_load(b2, path), "a trainer of the read model loads the file");
        ok(clt_trainer_vocabulary(b2, &bv, &bl) == CLT_OK && bl == vl && !memcmp(bv, vocab, bl),
           "the load sets the vocabulary");
        good = true;
        for (int i = 2; i < 4; i++) good = good && clt_trainer_step_tokens(b2, x[i], y[i], 3, &lb[i]) == CLT_OK;
        ok(good && !memcmp(la + 2, lb + 2, 2 * sizeof(float)), "steps 3 and 4 after the load: the "
           "same losses bit for bit (%.9g %.9g vs %.9g %.9g)", la[2], la[3], lb[2], lb[3]);
        clt_trainer_destroy(b2);
    }
    ok_error(clt_trainer_set_vocabulary(a, NULL, 3), CLT_ERR_INVALID_ARG, "NULL", "a NULL vocabulary");
    ok_status(clt_trainer_set_vocabulary(a, NULL, 0), "clearing it");
    const char *bv = "x";
    size_t bl = 5;
    ok(clt_trainer_vocabulary(a, &bv, &bl) == CLT_OK && !bv && !bl, "none after clearing");
    clt_model_destroy(read);
    clt_trainer_destroy(a);
    clt_model_destroy(m);
}

/* CLT_WRITE_CORPUS=DIR: small valid checkpoints and truncated ones, the fuzz seed corpus. */
static void write_corpus(const char *out)
{
    static const struct { const char *name; int hidden, dropout; clt_optim_kind kind; float momentum; } c[] = {
        {"sgd", 3, 0, CLT_OPTIM_SGD, 0.0f},
        {"sgd_momentum", 4, 1, CLT_OPTIM_SGD, 0.9f},
        {"adam", 2, 0, CLT_OPTIM_ADAM, 0.0f},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        clt_model *m = small_model(c[i].hidden, c[i].dropout);
        clt_optimizer o = c[i].kind == CLT_OPTIM_ADAM ? clt_adam(0.01f) : clt_sgd(0.1f, c[i].momentum, 0, 0);
        clt_train_params p = params_for(o);
        clt_trainer *t;
        char path[512];
        float l[1];
        if (clt_trainer_create(&t, rt, m, &p) == CLT_OK) {
            train(t, 0, 1, l);
            snprintf(path, sizeof path, "%s/%s.ckpt", out, c[i].name);
            if (clt_trainer_save(t, path) == CLT_OK) {
                size_t len;
                uint8_t *b = slurp(path, &len);
                snprintf(path, sizeof path, "%s/%s_truncated.ckpt", out, c[i].name);
                spit(path, b, len / 2);
                free(b);
            }
            clt_trainer_destroy(t);
        }
        clt_model_destroy(m);
    }
    diag("wrote the fuzz corpus to %s", out);
}

static void remove_dir(void)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) unlink(path_of(e->d_name));
    if (d) closedir(d);
    rmdir(dir);
}

int main(void)
{
    tap_require_device();
    snprintf(dir, sizeof dir, "%s/cltrain-ckpt-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!ok(mkdtemp(dir) != NULL, "a scratch folder")) return tap_done();
    /* at least 3 devices (repeating where the selection has fewer) for the model-parallel
     * resume, unless they cannot run at once */
    const char *spec = test_ndev() >= 3 || !test_parallel_ok(3) ? test_spec_all() : test_spec_n(3);
    if (!ok_status(clt_runtime_create(&rt, spec), "runtime on %s", spec)) return tap_done();
    if (getenv("CLT_WRITE_CORPUS")) write_corpus(getenv("CLT_WRITE_CORPUS"));
    check_failed_save();   /* first: the TAP log must stay under the file size limit it sets */
    check_resume("SGD with momentum", clt_sgd(0.05f, 0.9f, 0.01f, 0), 0);
    check_resume("Nesterov", clt_sgd(0.05f, 0.8f, 0, 1), 0);
    check_resume("Adam", clt_adam(0.01f), 0);
    check_resume("AdamW", clt_adamw(0.01f, 0.1f), 0);
    check_stretch();
    int nd = clt_runtime_device_count(rt);
    if (nd >= 3) {
        check_resume("model parallel, SGD with momentum", clt_sgd(0.05f, 0.9f, 0.01f, 0), 1);
        check_resume("model parallel, Adam", clt_adam(0.01f), 1);
    } else {
        skip(TEST_NO_PARALLEL, "model-parallel resume");
    }
    clt_runtime *one = NULL, *two = NULL;
    if (nd >= 3 && clt_runtime_create(&one, test_spec_one()) == CLT_OK &&
        clt_runtime_create(&two, test_spec_n(2)) == CLT_OK) {
        check_devices(rt, 0, one, 0);   /* all devices (3 under make check) -> 1 */
        check_devices(one, 0, two, 0);  /* 1 -> 2 */
        check_devices(two, 0, rt, 1);   /* data parallel on 2 -> model parallel on 3 */
        check_devices(rt, 1, rt, 0);    /* model parallel on 3 -> data parallel on 3 */
        check_devices(rt, 1, one, 0);   /* model parallel -> one device */
    } else {
        skip(TEST_NO_PARALLEL, "moving a checkpoint between device counts");
    }
    clt_runtime_destroy(one);
    clt_runtime_destroy(two);
    check_corruption();
    check_bad_input();
    check_version1();
    check_gpt();
    clt_runtime_destroy(rt);
    remove_dir();
    return tap_done();
}
