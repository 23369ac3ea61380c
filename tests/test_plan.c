/* CLT_PARALLEL_AUTO and clt_plan_parallel: the candidates tried on 3 devices (and 1), each with
 * a time or the reason it could not run, the choice the fastest of those that ran; a trainer
 * created with AUTO trains as one device does; a mode that cannot split the model is listed with
 * its refusal, never chosen; elastic limits the candidates to data parallelism and one device;
 * bad arguments and a placed model are refused. Which mode wins depends on the machine, so no
 * check here names one. */
#include "devices.h"
#include "ref.h"
#include "tap.h"

#include <math.h>
#include <string.h>

#define BATCH 24
#define STEPS 3
#define CAP 32

static bool has(const clt_plan_option *o, int n, clt_parallel mode)
{
    for (int i = 0; i < n; i++)
        if (o[i].params.parallel == mode) return true;
    return false;
}

/* Every option has a name, a mode other than AUTO, and either a time or a failure status; the
 * choice ran and is the fastest that did. */
static void check_options(const clt_plan_option *o, int n, int chosen, const char *what)
{
    int bad = 0, ran = 0;
    for (int i = 0; i < n; i++) {
        bad += !o[i].what[0] || o[i].params.parallel == CLT_PARALLEL_AUTO;
        bad += o[i].status == CLT_OK ? !(o[i].step_seconds > 0) : o[i].step_seconds != 0;
        ran += o[i].status == CLT_OK;
    }
    ok(bad == 0, "%s: every option named, concrete, timed or failed (%d ran of %d)", what, ran, n);
    bool fastest = chosen >= 0 && chosen < n && o[chosen].status == CLT_OK;
    for (int i = 0; i < n && fastest; i++)
        fastest = o[i].status != CLT_OK || o[i].step_seconds >= o[chosen].step_seconds;
    ok(fastest, "%s: the choice (%s) ran and is the fastest of those that did", what,
       chosen >= 0 && chosen < n ? o[chosen].what : "none");
    for (int i = 0; i < n; i++)
        diag("%s: %-52s %s %.2f ms", what, o[i].what, clt_status_name(o[i].status), 1e3 * o[i].step_seconds);
}

static clt_train_params params(void)
{
    clt_train_params p = clt_train_params_default();
    p.optim = clt_sgd(0.05f, 0.9f, 0.0f, 0);
    p.max_batch = BATCH;
    p.seed = 7;
    return p;
}

static float xs[STEPS][BATCH * 1024];
static int32_t ys[STEPS][BATCH];

/* STEPS steps of the seed MLP on spec under p: the losses, and the mode the trainer ran. */
static clt_status train(const char *spec, clt_train_params p, float *loss, clt_parallel *mode)
{
    clt_runtime *rt = NULL;
    clt_trainer *t = NULL;
    clt_model *m = ref_seed_mlp(0.0f);
    clt_status st = clt_runtime_create(&rt, spec);
    if (st == CLT_OK) st = clt_trainer_create(&t, rt, m, &p);
    if (st == CLT_OK) *mode = clt_trainer_parallel(t);
    for (int s = 0; s < STEPS && st == CLT_OK; s++) st = clt_trainer_step(t, xs[s], ys[s], BATCH, &loss[s]);
    clt_trainer_destroy(t);
    clt_runtime_destroy(rt);
    clt_model_destroy(m);
    return st;
}

int main(void)
{
    ref_seed_batches(xs[0], ys[0], STEPS, BATCH);
    clt_plan_option o[CAP];
    int n = 0, chosen = -1;

    /* 3 devices: 3 alone, data parallel twice, tensor parallel, pipelines of 6 and 12 micro-batches */
    clt_runtime *rt = NULL;
    clt_model *m = ref_seed_mlp(0.0f);
    clt_train_params p = params();
    if (ok_status(clt_runtime_create(&rt, test_spec_n(3)), "a runtime on 3 devices")) {
        if (ok_status(clt_plan_parallel(rt, m, &p, o, CAP, &n, &chosen), "seed MLP, 3 devices: a plan")) {
            ok(n == 8 && has(o, n, CLT_PARALLEL_NONE) && has(o, n, CLT_PARALLEL_DATA) &&
                   has(o, n, CLT_PARALLEL_TENSOR) && has(o, n, CLT_PARALLEL_MODEL),
               "seed MLP, 3 devices: 8 candidates of every mode (%d)", n);
            check_options(o, n, chosen, "seed MLP, 3 devices");
        }
        /* a cap below the count: the first cap options, the count and the choice all the same */
        clt_plan_option few[2];
        int n2 = 0, c2 = -1;
        clt_status st2 = clt_plan_parallel(rt, m, &p, few, 2, &n2, &c2);
        ok(st2 == CLT_OK && n2 == n && c2 >= 0 && !strcmp(few[0].what, o[0].what) && !strcmp(few[1].what, o[1].what),
           "room for 2 options: the first 2 written, %d counted, a choice (%d)", n2, c2);
        /* elastic: one device or data parallel only */
        clt_train_params e = p;
        e.elastic = 1;
        if (ok_status(clt_plan_parallel(rt, m, &e, o, CAP, &n, &chosen), "elastic: a plan"))
            ok(n == 5 && o[chosen].params.parallel == CLT_PARALLEL_DATA && !has(o, n, CLT_PARALLEL_TENSOR) &&
                   !has(o, n, CLT_PARALLEL_MODEL),
               "elastic: 5 candidates (one device refuses elastic), data parallel chosen (%s)", o[chosen].what);

        /* a GPT with 2 heads: tensor parallelism on 3 devices refuses it, listed so */
        clt_gpt_config g = clt_gpt_config_default();
        g.vocab = 11, g.block = 8, g.layers = 1, g.heads = 2, g.embd = 16;
        clt_model *gpt = NULL;
        clt_train_params gp = params();
        gp.optim = clt_adamw(1e-3f, 0.1f);
        gp.max_batch = 6;
        if (ok_status(clt_model_create_gpt(&gpt, &g), "a GPT with 2 heads") &&
            ok_status(clt_plan_parallel(rt, gpt, &gp, o, CAP, &n, &chosen), "GPT, 3 devices: a plan")) {
            int tensor = -1;
            for (int i = 0; i < n; i++)
                if (o[i].params.parallel == CLT_PARALLEL_TENSOR) tensor = i;
            ok(tensor >= 0 && o[tensor].status == CLT_ERR_UNSUPPORTED && chosen != tensor,
               "GPT, 3 devices: tensor parallelism listed as refused (%s), not chosen",
               tensor >= 0 ? clt_status_name(o[tensor].status) : "missing");
            ok(n == 7, "GPT, 3 devices: 7 candidates (a pipeline of 12 micro-batches exceeds the batch of 6): %d", n);
            check_options(o, n, chosen, "GPT, 3 devices");
        }
        clt_model_destroy(gpt);

        /* refusals */
        clt_model *placed = ref_seed_mlp(0.0f);
        clt_model_place(placed, 0, 6, 0);
        ok_error(clt_plan_parallel(rt, placed, &p, o, CAP, &n, &chosen), CLT_ERR_INVALID_ARG, "is placed",
                 "a placed model is refused");
        clt_trainer *t = NULL;
        clt_train_params a = p;
        a.parallel = CLT_PARALLEL_AUTO;
        ok_error(clt_trainer_create(&t, rt, placed, &a), CLT_ERR_INVALID_ARG, "is placed",
                 "clt_trainer_create with AUTO refuses a placed model too");
        clt_model_destroy(placed);
        ok_error(clt_plan_parallel(rt, m, &p, o, CAP, NULL, &chosen), CLT_ERR_INVALID_ARG, "count and chosen",
                 "no count: refused");
        ok_error(clt_plan_parallel(rt, m, &p, NULL, 3, &n, &chosen), CLT_ERR_INVALID_ARG, "options is NULL",
                 "no options with room for 3: refused");
        ok_error(clt_plan_parallel(NULL, m, &p, o, CAP, &n, &chosen), CLT_ERR_INVALID_ARG, "runtime is NULL",
                 "no runtime: refused");
        ok_error(clt_trainer_create(NULL, rt, m, &a), CLT_ERR_INVALID_ARG, "out is NULL", "AUTO without out: refused");
    }
    clt_runtime_destroy(rt);

    /* one device: one candidate */
    if (ok_status(clt_runtime_create(&rt, test_spec_one()), "a runtime on one device") &&
        ok_status(clt_plan_parallel(rt, m, &p, o, CAP, &n, &chosen), "one device: a plan"))
        ok(n == 1 && chosen == 0 && o[0].params.parallel == CLT_PARALLEL_NONE && o[0].step_seconds > 0,
           "one device: one candidate, chosen (%.2f ms)", 1e3 * o[0].step_seconds);
    clt_runtime_destroy(rt);
    clt_model_destroy(m);

    /* AUTO trains as one device does, whichever mode it chose */
    float want[STEPS], got[STEPS];
    clt_parallel mode = CLT_PARALLEL_AUTO, one;
    clt_train_params a = params();
    a.parallel = CLT_PARALLEL_AUTO;
    if (ok_status(train(test_spec_one(), params(), want, &one), "one device: %d steps", STEPS) &&
        ok_status(train(test_spec_n(3), a, got, &mode), "AUTO on 3 devices: %d steps", STEPS)) {
        ok(mode != CLT_PARALLEL_AUTO, "AUTO: the trainer says the mode it runs (%d)", (int)mode);
        ok_close(got, want, STEPS, 1e-5, 1e-5, "AUTO on 3 devices: the losses match one device's");
    }
    return tap_done();
}
