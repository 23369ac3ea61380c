/* Device faults (CLT_FAULT): a device lost mid-step makes the step fail on the calling thread
 * within a bounded time naming the device, releases every other worker, and leaves the model
 * as it was after the last good step; elastic data parallelism drops the device and goes on;
 * each runtime has its own fault (opts.fault, $CLT_FAULT by default). A watchdog thread ends the test if anything hangs. */
#include "internal.h"
#include "tap.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define IN 16
#define CLASSES 4
#define BATCH 24
#define STEPS 10

static float xs[STEPS][BATCH * IN];
static int32_t ys[STEPS][BATCH];

/* ---- the watchdog: a hang fails the run instead of stalling it ------------------------------ */

static pthread_mutex_t wd_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wd_cv = PTHREAD_COND_INITIALIZER;
static double wd_deadline;      /* clt__now() seconds; 0: disarmed */
static char wd_what[320];
static bool wd_quit;

static void *watchdog(void *unused)
{
    (void)unused;
    pthread_mutex_lock(&wd_lock);
    while (!wd_quit) {
        if (wd_deadline > 0 && clt__now() > wd_deadline) {
            printf("not ok %d - %s did not return within its bound (a thread hangs)\nBail out! hang\n",
                   tap_count + 1, wd_what);
            fflush(stdout);
            _exit(1);
        }
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += 100000000L;
        if (until.tv_nsec >= 1000000000L) until.tv_sec++, until.tv_nsec -= 1000000000L;
        pthread_cond_timedwait(&wd_cv, &wd_lock, &until);
    }
    pthread_mutex_unlock(&wd_lock);
    return NULL;
}

static void wd_arm(double seconds, const char *what)
{
    pthread_mutex_lock(&wd_lock);
    wd_deadline = clt__now() + seconds;
    snprintf(wd_what, sizeof wd_what, "%s", what);
    pthread_mutex_unlock(&wd_lock);
}

static void wd_disarm(void)
{
    pthread_mutex_lock(&wd_lock);
    wd_deadline = 0;
    pthread_mutex_unlock(&wd_lock);
}

/* Three devices of the test selection (repeating where it has fewer), the two that stay when
 * the middle one drops out, and four. */
static const char *three, *two, *four;
static char two_buf[TEST_SPEC_CAP];

static void pick_devices(void)
{
    three = test_spec_n(3), four = test_spec_n(4);
    two = test_spec_of(two_buf, 2, (const int[]){0, 2});
}

/* ---- a small problem that learns ---------------------------------------------------------- */

static void make_data(void)
{
    uint64_t r = 42;
    for (int s = 0; s < STEPS; s++)
        for (int i = 0; i < BATCH; i++) {
            float best = -1e30f;
            for (int k = 0; k < IN; k++)
                xs[s][i * IN + k] = (float)((double)(clt__splitmix64(&r) >> 40) / 16777216.0 * 2.0 - 1.0);
            for (int c = 0; c < CLASSES; c++) {   /* the class of the largest of 4 sums */
                float v = xs[s][i * IN + 4 * c] + xs[s][i * IN + 4 * c + 1] - xs[s][i * IN + 4 * c + 2];
                if (v > best) best = v, ys[s][i] = c;
            }
        }
}

/* 16-32-32-4 MLP; with place 1, layers 0-1 on device 0, 2-3 on 1, 4 on 2; with place 2,
 * layers 0-1 on device 0, 2-4 on 1 (two stages, for two pipelines on four devices). */
static clt_model *mlp(int place)
{
    clt_model *m = NULL;
    clt_model_create(&m, clt_shape1(IN));
    clt_model_add(m, clt_linear(32));
    clt_model_add(m, clt_relu());
    clt_model_add(m, clt_linear(32));
    clt_model_add(m, clt_relu());
    clt_model_add(m, clt_linear(CLASSES));
    if (place == 1) clt_model_place(m, 0, 1, 0), clt_model_place(m, 2, 3, 1), clt_model_place(m, 4, 4, 2);
    if (place == 2) clt_model_place(m, 0, 1, 0), clt_model_place(m, 2, 4, 1);
    return m;
}

/* Parameters and Adam's two state arrays, in the flat numbering (the host's view of the model). */
static float *snapshot(clt_trainer *t)
{
    size_t np = t->model->nparams;
    float *s = calloc(3 * np, sizeof *s);
    if (t->ops->param_io(t, 0, np, s, 0, 0) != CLT_OK) diag("reading parameters: %s", clt_last_error());
    for (int i = 0; i < 2 && t->ops->state_io; i++)
        if (t->ops->state_io(t, i, 0, np, s + (size_t)(i + 1) * np, 0) != CLT_OK)
            diag("reading optimizer state: %s", clt_last_error());
    return s;
}

/* ---- CLT_FAULT's grammar ------------------------------------------------------------------ */

static void check_parse(void)
{
    static const struct { const char *text, *needle; } bad[] = {
        {"device=1,step=3,op=sideways", "bad value 'sideways' for op"},
        {"step=3", "no device"},
        {"device=x", "bad value 'x' for device"},
        {"device=1,when=3", "unknown key 'when'"},
        {"device=1,step", "is not key=value"},
        {"device=1,step=-2", "bad value '-2' for step"},
        {"device=1,code=melted", "bad value 'melted' for code"},
        {"device=99999", "bad value"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        setenv("CLT_FAULT", bad[i].text, 1);
        clt_runtime *rt = (clt_runtime *)1;
        ok_error(clt_runtime_create(&rt, test_spec_one()), CLT_ERR_INVALID_ARG, bad[i].needle,
                 "CLT_FAULT='%s' is refused at runtime create, saying why", bad[i].text);
        ok(rt == NULL, "and leaves no runtime");
    }
    clt__fault f;
    ok(clt__fault_parse("device=2,step=7,op=allreduce,at=4,code=resources", "CLT_FAULT", &f) == CLT_OK && f.device == 2 &&
       f.step == 7 && f.op == CLT__FAULT_ALLREDUCE && f.at == 4 && f.code == CL_OUT_OF_RESOURCES,
       "a full CLT_FAULT parses into its fields");
    ok(clt__fault_parse("device=0", "CLT_FAULT", &f) == CLT_OK && f.step == 0 && f.op == CLT__FAULT_ANY &&
       f.code == CL_DEVICE_NOT_AVAILABLE, "device alone: every step, any point, a lost device");

    /* a device the runtime does not have: the trainer says so */
    unsetenv("CLT_FAULT");
    clt_runtime *rt;
    if (!ok_status(clt_runtime_create(&rt, two), "runtime of 2 devices")) return;
    setenv("CLT_FAULT", "device=5,step=1", 1);
    clt_model *m = mlp(0);
    clt_trainer *t = (clt_trainer *)1;
    ok_error(clt_trainer_create(&t, rt, m, NULL), CLT_ERR_INVALID_ARG, "device 5, but the runtime has 2",
             "a fault on a device the runtime lacks is refused at trainer create");
    unsetenv("CLT_FAULT");
    clt_train_params p = clt_train_params_default();
    p.elastic = 1;
    p.parallel = CLT_PARALLEL_MODEL;
    ok_error(clt_trainer_create(&t, rt, m, &p), CLT_ERR_INVALID_ARG, "elastic mode needs data parallelism",
             "elastic mode with model parallelism is refused");
    p.parallel = CLT_PARALLEL_NONE;
    ok_error(clt_trainer_create(&t, rt, m, &p), CLT_ERR_INVALID_ARG, "elastic",
             "elastic mode on one device is refused");
    ok(clt_trainer_dropped_devices(NULL, NULL, 0) == 0, "clt_trainer_dropped_devices(NULL) is 0");
    clt_model_destroy(m);
    clt_runtime_destroy(rt);
}

/* ---- a fault in each strategy at each point ------------------------------------------------ */

static const char *const strategy_names[] = {"one device", "data parallel", "model parallel",
                                             "two pipelines of two stages", "tensor parallel"};

static void check_fault(clt_runtime *rt, int strategy, const char *op, const char *code)
{
    char spec[128], what[256];
    snprintf(spec, sizeof spec, "device=1,step=3,op=%s%s%s", op, code ? ",code=" : "", code ? code : "");
    snprintf(what, sizeof what, "%s, CLT_FAULT=%s", strategy_names[strategy], spec);
    setenv("CLT_FAULT", spec, 1);
    clt_model *m = mlp(strategy == 2 ? 1 : strategy == 3 ? 2 : 0);
    clt_train_params p = clt_train_params_default();
    p.optim = clt_adam(0.01f);
    p.max_batch = BATCH;
    p.parallel = strategy == 0   ? CLT_PARALLEL_NONE
                 : strategy == 1 ? CLT_PARALLEL_DATA
                 : strategy == 4 ? CLT_PARALLEL_TENSOR
                                 : CLT_PARALLEL_MODEL;
    p.pipelines = strategy == 3 ? 2 : 1;
    p.device = strategy == 0 ? 1 : 0;
    p.micro_batches = 3;
    p.pipeline = CLT_PIPELINE_1F1B;
    clt_trainer *t;
    clt_status st = clt_trainer_create(&t, rt, m, &p);
    clt_model_destroy(m);
    if (!ok(st == CLT_OK, "%s: trainer", what)) {
        diag("%s", clt_last_error());
        return;
    }
    float loss;
    bool good = true;
    for (int s = 0; s < 2; s++) good &= clt_trainer_step(t, xs[s], ys[s], BATCH, &loss) == CLT_OK;
    ok(good, "%s: steps 1 and 2 run", what);
    float *before = snapshot(t);
    wd_arm(30, what);
    double t0 = clt__now();
    st = clt_trainer_step(t, xs[2], ys[2], BATCH, &loss);
    double took = clt__now() - t0;
    wd_disarm();
    clt_status want = code ? CLT_ERR_OUT_OF_RESOURCES : CLT_ERR_DEVICE_NOT_AVAILABLE;
    const char *msg = clt_last_error();
    char where[64];
    snprintf(where, sizeof where, "op %s", op);   /* the point that failed is the one asked for */
    bool right = st == want && strstr(msg, "device 1") && strstr(msg, "CLT_FAULT") &&
                 (!strcmp(op, "any") || strstr(msg, where));
    if (!right) diag("got %s: %s", clt_status_name(st), msg);
    ok(right, "%s: step 3 returns %s naming device 1 and the point", what, clt_status_name(want));
    /* the collective's timeout is 60 s and a link's 300 s: nobody waited for them */
    ok(took < 10.0, "%s: within %.2f s (no worker waited for the failed one)", what, took);
    float *after = snapshot(t);
    size_t np = t->model->nparams;
    ok(!memcmp(before, after, 3 * np * sizeof(float)) && clt_trainer_step_count(t) == 2,
       "%s: parameters and optimizer state are those of step 2, bit for bit", what);
    free(after);
    unsetenv("CLT_FAULT");
    clt__fault_arm(rt, NULL);
    wd_arm(30, what);
    st = clt_trainer_step(t, xs[2], ys[2], BATCH, &loss);
    wd_disarm();
    after = snapshot(t);
    ok(st == CLT_OK && clt_trainer_step_count(t) == 3 && memcmp(before, after, np * sizeof(float)) &&
       isfinite(loss), "%s: with the fault gone, step 3 runs and updates (loss %.4f)", what, loss);
    free(before), free(after);
    wd_arm(10, "clt_trainer_destroy after a fault");
    clt_trainer_destroy(t);
    wd_disarm();
}

static void check_faults(void)
{
    clt_runtime *rt;
    if (!ok_status(clt_runtime_create(&rt, three), "runtime of 3 devices")) return;
    static const char *const ops[5][5] = {
        {"forward", "backward", "copy", "optimizer", NULL},
        {"forward", "backward", "allreduce", "copy", "optimizer"},
        {"forward", "backward", "copy", "optimizer", "any"},
        {NULL},   /* two pipelines: on four devices, below */
        {"forward", "backward", "allreduce", "copy", "optimizer"},
    };
    for (int s = 0; s < 5; s++)
        for (int i = 0; i < 5 && ops[s][i]; i++) check_fault(rt, s, ops[s][i], NULL);
    check_fault(rt, 1, "any", "resources");
    wd_arm(10, "clt_runtime_destroy after faults");
    clt_runtime_destroy(rt);
    wd_disarm();
    /* hybrid: device 1 (pipeline 0's second stage) fails in the all-reduce with its copy on 3 */
    if (!ok_status(clt_runtime_create(&rt, four), "runtime of 4 devices")) return;
    check_fault(rt, 3, "allreduce", NULL);
    check_fault(rt, 3, "optimizer", NULL);
    clt_runtime_destroy(rt);
}

/* ---- elastic ------------------------------------------------------------------------------ */

typedef struct {
    size_t samples[3];
    long step;
} seen;

static void on_progress(const clt_step_info *info, void *user)
{
    seen *s = user;
    s->step = info->step;
    for (int d = 0; d < info->devices && d < 3; d++) s->samples[d] = info->samples[d];
}

/* 3 devices, device 1 lost at step 3 (at `op`): the trainer drops it and goes on with 2. The
 * reference: a 2-device trainer loading a checkpoint of step 2 and taking the same batches. */
static void check_elastic(const char *op, const char *path)
{
    char spec[128];
    snprintf(spec, sizeof spec, "device=1,step=3,op=%s", op);
    clt_runtime *rt3 = NULL, *rt2 = NULL;
    clt_trainer *t = NULL, *ref = NULL;
    clt_model *m = mlp(0);
    clt_train_params p = clt_train_params_default();
    p.optim = clt_adam(0.05f);
    p.max_batch = BATCH;
    p.parallel = CLT_PARALLEL_DATA;
    p.elastic = 1;
    float got[STEPS], want[STEPS];
    if (!ok_status(clt_runtime_create(&rt3, three), "elastic (%s): runtime of 3 devices", op)) goto out;
    setenv("CLT_FAULT", spec, 1);
    if (!ok_status(clt_trainer_create(&t, rt3, m, &p), "elastic (%s): trainer on 3 devices", op)) goto out;
    seen info = {{0}, 0};
    clt_trainer_set_progress(t, on_progress, &info);
    bool good = true;
    for (int s = 0; s < 2; s++) good &= clt_trainer_step(t, xs[s], ys[s], BATCH, &got[s]) == CLT_OK;
    good &= clt_trainer_save(t, path) == CLT_OK;
    ok(good && info.samples[1] == 8, "elastic (%s): steps 1 and 2 on 3 devices (8 rows each), checkpoint saved", op);
    wd_arm(60, "an elastic step");
    clt_status st = CLT_OK;
    for (int s = 2; s < STEPS && st == CLT_OK; s++) st = clt_trainer_step(t, xs[s], ys[s], BATCH, &got[s]);
    wd_disarm();
    if (st != CLT_OK) diag("%s", clt_last_error());
    ok(st == CLT_OK && clt_trainer_step_count(t) == STEPS,
       "elastic (%s): step 3 fails on device 1, is retried on the other two, and %d steps complete", op, STEPS);
    int dropped[4] = {-1, -1, -1, -1};
    ok(clt_trainer_dropped_devices(t, dropped, 4) == 1 && dropped[0] == 1,
       "elastic (%s): clt_trainer_dropped_devices reports device 1", op);
    size_t counts[3];
    clt_trainer_split(t, counts, 3);
    ok(info.samples[0] == 12 && info.samples[1] == 0 && info.samples[2] == 12 && counts[1] == 0,
       "elastic (%s): the batch is split 12 / 0 / 12 (progress info and clt_trainer_split)", op);
    ok(got[STEPS - 1] < 0.8f * got[0], "elastic (%s): the loss falls (%.4f at step 1, %.4f at step %d)", op,
       got[0], got[STEPS - 1], STEPS);

    unsetenv("CLT_FAULT");
    if (!ok_status(clt_runtime_create(&rt2, two), "elastic (%s): reference runtime of 2 devices", op)) goto out;
    p.elastic = 0;
    if (!ok_status(clt_trainer_create(&ref, rt2, m, &p), "elastic (%s): reference trainer", op)) goto out;
    st = clt_trainer_load(ref, path);
    for (int s = 2; s < STEPS && st == CLT_OK; s++) st = clt_trainer_step(ref, xs[s], ys[s], BATCH, &want[s]);
    if (!ok_status(st, "elastic (%s): the reference trains steps 3..%d from the checkpoint of step 2", op, STEPS))
        goto out;
    ok_close(got + 2, want + 2, STEPS - 2, 0, 1e-5, "elastic: the losses after the drop equal a 2-device run from step 2's state");
    float *a = snapshot(t), *b = snapshot(ref);
    ok_close(a, b, 3 * t->model->nparams, 1e-6, 1e-4, "elastic: and so do the parameters and Adam's state");
    free(a), free(b);
out:
    unsetenv("CLT_FAULT");
    if (rt3) clt__fault_arm(rt3, NULL);
    clt_trainer_destroy(ref);
    clt_trainer_destroy(t);
    clt_runtime_destroy(rt2);
    clt_runtime_destroy(rt3);
    clt_model_destroy(m);
}

/* With accumulation, a device lost in the second micro-step: the step reports the error (the
 * gradients of the first were lost with it), the device is dropped, and the next steps run. */
static void check_elastic_accumulation(void)
{
    clt_runtime *rt;
    if (!ok_status(clt_runtime_create(&rt, three), "elastic accumulation: runtime")) return;
    clt_model *m = mlp(0);
    clt_train_params p = clt_train_params_default();
    p.max_batch = BATCH;
    p.parallel = CLT_PARALLEL_DATA;
    p.elastic = 1;
    p.accumulation = 2;
    setenv("CLT_FAULT", "device=2,step=1,op=allreduce", 1);
    clt_trainer *t;
    if (ok_status(clt_trainer_create(&t, rt, m, &p), "elastic accumulation: trainer")) {
        float loss;
        ok_status(clt_trainer_step(t, xs[0], ys[0], BATCH, &loss), "the first micro-step runs");
        ok_error(clt_trainer_step(t, xs[1], ys[1], BATCH, &loss), CLT_ERR_DEVICE_NOT_AVAILABLE,
                 "device 2 was dropped", "the second fails in the gradient reduction: reported, not retried");
        int d = -1;
        ok(clt_trainer_dropped_devices(t, &d, 1) == 1 && d == 2 && clt_trainer_step_count(t) == 0,
           "device 2 is dropped and no update was made");
        bool good = clt_trainer_step(t, xs[0], ys[0], BATCH, &loss) == CLT_OK &&
                    clt_trainer_step(t, xs[1], ys[1], BATCH, &loss) == CLT_OK;
        ok(good && clt_trainer_step_count(t) == 1, "the next two micro-steps make an update on 2 devices");
        clt_trainer_destroy(t);
    }
    unsetenv("CLT_FAULT");
    clt__fault_arm(rt, NULL);
    clt_model_destroy(m);
    clt_runtime_destroy(rt);
}

/* ---- one fault per runtime ------------------------------------------------------------------ */

typedef struct {
    clt_trainer *t;
    clt_status st[3];   /* steps 1..3 */
} stepper;

static void *three_steps(void *arg)
{
    stepper *s = arg;
    float loss;
    for (int i = 0; i < 3; i++) s->st[i] = clt_trainer_step(s->t, xs[i], ys[i], BATCH, &loss);
    return NULL;
}

/* Two runtimes in one process, each with its own fault: $CLT_FAULT for the one whose
 * opts.fault is NULL, "" (none) for one beside it, and an opts.fault of a third's own. Their
 * trainers step at once from two threads: a step-numbered fault fails its runtime's step alone,
 * whatever the other's steps do (with one process-wide fault the other's device 0 failed too). */
static void check_per_runtime(void)
{
    clt_runtime *env = NULL, *none = NULL, *own = NULL;
    clt_trainer *te = NULL, *tn = NULL, *to = NULL;
    clt_model *m = mlp(0);
    clt_train_params p = clt_train_params_default();
    p.optim = clt_adam(0.05f);
    p.max_batch = BATCH;
    p.parallel = CLT_PARALLEL_DATA;
    clt_runtime_options o = clt_runtime_options_default();
    o.devices = two;
    setenv("CLT_FAULT", "device=0,step=3,op=allreduce", 1);
    bool made = ok_status(clt_runtime_create_ex(&env, &o), "per runtime: a runtime with $CLT_FAULT");
    o.fault = "";
    made &= ok_status(clt_runtime_create_ex(&none, &o), "per runtime: one with opts.fault \"\" beside it");
    o.fault = "device=1,op=allreduce,code=resources";
    made &= ok_status(clt_runtime_create_ex(&own, &o), "per runtime: one with an opts.fault of its own");
    made = made && ok_status(clt_trainer_create(&te, env, m, &p), "per runtime: trainer on the first") &&
           ok_status(clt_trainer_create(&tn, none, m, &p), "per runtime: trainer on the second, "
                     "$CLT_FAULT still set") &&
           ok_status(clt_trainer_create(&to, own, m, &p), "per runtime: trainer on the third");
    if (made) {
        wd_arm(120, "two runtimes stepping at once");
        stepper a = {te, {0}}, b = {tn, {0}};
        pthread_t ta, tb;
        pthread_create(&ta, NULL, three_steps, &a);
        pthread_create(&tb, NULL, three_steps, &b);
        pthread_join(ta, NULL);
        pthread_join(tb, NULL);
        wd_disarm();
        ok(a.st[0] == CLT_OK && a.st[1] == CLT_OK && a.st[2] == CLT_ERR_DEVICE_NOT_AVAILABLE &&
           clt_trainer_step_count(te) == 2,
           "per runtime: $CLT_FAULT's runtime fails its step 3 alone (%s, %s, %s)", clt_status_name(a.st[0]),
           clt_status_name(a.st[1]), clt_status_name(a.st[2]));
        ok(b.st[0] == CLT_OK && b.st[1] == CLT_OK && b.st[2] == CLT_OK && clt_trainer_step_count(tn) == 3,
           "per runtime: the runtime beside it, stepping at the same time, never fails (%s, %s, %s)",
           clt_status_name(b.st[0]), clt_status_name(b.st[1]), clt_status_name(b.st[2]));
        float loss;
        ok_error(clt_trainer_step(to, xs[0], ys[0], BATCH, &loss), CLT_ERR_OUT_OF_RESOURCES, "opts.fault",
                 "per runtime: the third fails as its own opts.fault says, naming it");
        ok(strstr(clt_last_error(), "device 1") != NULL, "per runtime: on its device 1: %s", clt_last_error());
        unsetenv("CLT_FAULT");
        clt_trainer *t2 = NULL;
        ok(clt_trainer_create(&t2, own, m, &p) == CLT_OK &&
           clt_trainer_step(t2, xs[0], ys[0], BATCH, &loss) == CLT_ERR_OUT_OF_RESOURCES,
           "per runtime: opts.fault holds for the runtime's life, $CLT_FAULT or not");
        clt_trainer_destroy(t2);
    }
    clt_trainer_destroy(te), clt_trainer_destroy(tn), clt_trainer_destroy(to);
    clt_runtime_destroy(env), clt_runtime_destroy(none), clt_runtime_destroy(own);
    unsetenv("CLT_FAULT");
    /* a bad opts.fault is refused at create, naming the option */
    clt_runtime *bad = (clt_runtime *)1;
    o.fault = "device=1,when=3";
    ok_error(clt_runtime_create_ex(&bad, &o), CLT_ERR_INVALID_ARG, "opts.fault='device=1,when=3': unknown key",
             "per runtime: a malformed opts.fault is refused, naming it");
    ok(bad == NULL, "and leaves no runtime");
    o.fault = "device=2";
    ok_error(clt_runtime_create_ex(&bad, &o), CLT_ERR_INVALID_ARG, "device 2, but the runtime has 2",
             "per runtime: an opts.fault on a device the runtime lacks is refused");
    clt_model_destroy(m);
}

int main(void)
{
    tap_require_device();
    pick_devices();
    make_data();
    pthread_t wd;
    pthread_create(&wd, NULL, watchdog, NULL);
    char path[] = "/tmp/clt-faults-XXXXXX";
    int fd = mkstemp(path);
    if (fd >= 0) close(fd);
    check_parse();
    check_faults();
    check_elastic("any", path);
    check_elastic("optimizer", path);
    check_elastic("allreduce", path);
    check_elastic_accumulation();
    check_per_runtime();
    unlink(path);
    pthread_mutex_lock(&wd_lock);
    wd_quit = true;
    pthread_cond_broadcast(&wd_cv);
    pthread_mutex_unlock(&wd_lock);
    pthread_join(wd, NULL);
    return tap_done();
}
