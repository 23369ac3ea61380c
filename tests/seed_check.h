/* Five steps of the seed MLP on a trainer, and the result held to one device's: shared by the
 * tests of the strategies that split the model (tests/test_tensor_parallel.c,
 * tests/test_tensor_pipeline.c). Tolerance: |got - ref| <= 1e-6 + 1e-5*|ref|. */
#ifndef CLT_SEED_CHECK_H
#define CLT_SEED_CHECK_H

#include "internal.h"
#include "ref.h"
#include "tap.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SEED_ATOL 1e-6
#define SEED_RTOL 1e-5
#define SEED_STEPS 5
#define SEED_BATCH 16
#define SEED_NPARAMS (1024 * 512 + 512 + 512 * 256 + 256 + 256 * 128 + 128 + 1290)

typedef struct {
    float loss[SEED_STEPS];
    float params[SEED_NPARAMS];
    float grads[SEED_NPARAMS];
    float out[SEED_BATCH * 10];   /* predict on batch 0 after training */
    float eval_loss, eval_acc;    /* evaluate on batch 1 */
} seed_result;

/* Every Linear's weight and bias (or their gradients) into the flat numbering. */
static inline clt_status seed_gather(clt_trainer *t, const clt_model *m, float *flat, int grads)
{
    clt_status st = CLT_OK;
    for (int l = 0; l < clt_model_layer_count(m) && st == CLT_OK; l++) {
        if (m->layers[l].desc.kind != CLT_LAYER_LINEAR) continue;
        size_t off = m->layers[l].param_off, w = m->layers[l].w_count, b = m->layers[l].b_count;
        st = (grads ? clt_trainer_get_grad : clt_trainer_get_param)(t, l, "weight", flat + off, w);
        if (st == CLT_OK) st = (grads ? clt_trainer_get_grad : clt_trainer_get_param)(t, l, "bias", flat + off + w, b);
    }
    return st;
}

/* SEED_STEPS steps on batches xs/ys, then the parameters, the last step's gradients, predict
 * and evaluate. */
static inline clt_status seed_run(clt_trainer *t, const clt_model *m, float xs[][SEED_BATCH * 1024],
                                  int32_t ys[][SEED_BATCH], seed_result *out)
{
    clt_status st = CLT_OK;
    for (int s = 0; s < SEED_STEPS && st == CLT_OK; s++) st = clt_trainer_step(t, xs[s], ys[s], SEED_BATCH, &out->loss[s]);
    if (st == CLT_OK) st = seed_gather(t, m, out->params, 0);
    if (st == CLT_OK) st = seed_gather(t, m, out->grads, 1);
    if (st == CLT_OK) st = clt_trainer_predict(t, xs[0], SEED_BATCH, out->out);
    if (st == CLT_OK) st = clt_trainer_evaluate(t, xs[1], ys[1], SEED_BATCH, &out->eval_loss, &out->eval_acc);
    return st;
}

/* Five test points: losses, parameters (within patol absolute), gradients, predict, evaluate. */
static inline void seed_compare(const seed_result *ref, const seed_result *got, const char *what, double patol)
{
    char w[240];
    snprintf(w, sizeof w, "%s: losses of %d steps", what, SEED_STEPS);
    ok_close(got->loss, ref->loss, SEED_STEPS, SEED_ATOL, SEED_RTOL, w);
    snprintf(w, sizeof w, "%s: parameters gathered back after %d steps", what, SEED_STEPS);
    ok_close(got->params, ref->params, SEED_NPARAMS, patol, SEED_RTOL, w);
    snprintf(w, sizeof w, "%s: gradients of the last step gathered back", what);
    ok_close(got->grads, ref->grads, SEED_NPARAMS, SEED_ATOL, SEED_RTOL, w);
    snprintf(w, sizeof w, "%s: predict", what);
    ok_close(got->out, ref->out, SEED_BATCH * 10, SEED_ATOL, SEED_RTOL, w);
    ok(fabsf(got->eval_loss - ref->eval_loss) <= SEED_ATOL + SEED_RTOL * fabsf(ref->eval_loss) &&
       got->eval_acc == ref->eval_acc, "%s: evaluate gives loss %g (one device %g), accuracy %g (%g)",
       what, (double)got->eval_loss, (double)ref->eval_loss, (double)got->eval_acc, (double)ref->eval_acc);
}

/* Save after 3 steps of m on `spec` with p, go on 2; a new trainer with p loads the file and goes
 * on 2 with the same losses bit for bit; one device loads it too and goes on with the same
 * losses within the tolerance (the file is placement-independent). `what` names the setting. */
static inline void seed_checkpoint(const char *spec, clt_train_params p, const clt_model *m, float xs[][SEED_BATCH * 1024],
                                   int32_t ys[][SEED_BATCH], const char *what)
{
    char path[] = "/tmp/clt-seed-ckpt-XXXXXX";
    int fd = mkstemp(path);
    if (fd >= 0) close(fd);
    clt_runtime *rt = NULL, *rt1 = NULL;
    clt_trainer *a = NULL, *b = NULL, *c = NULL;
    float la[2], lb[2], lc[2];
    p.max_batch = SEED_BATCH;
    clt_status st = clt_runtime_create(&rt, spec);
    if (st == CLT_OK) st = clt_runtime_create(&rt1, test_spec_one());
    if (st == CLT_OK) st = clt_trainer_create(&a, rt, m, &p);
    for (int s = 0; s < 3 && st == CLT_OK; s++) st = clt_trainer_step(a, xs[s], ys[s], SEED_BATCH, NULL);
    if (ok_status(st == CLT_OK ? clt_trainer_save(a, path) : st, "checkpoint (%s): 3 steps, saved", what)) {
        for (int s = 0; s < 2 && st == CLT_OK; s++) st = clt_trainer_step(a, xs[3 + s], ys[3 + s], SEED_BATCH, &la[s]);
        clt_train_params q = p;
        q.seed = 99;   /* other initial parameters: the load must replace them */
        if (st == CLT_OK) st = clt_trainer_create(&b, rt, m, &q);
        if (st == CLT_OK) st = clt_trainer_load(b, path);
        for (int s = 0; s < 2 && st == CLT_OK; s++) st = clt_trainer_step(b, xs[3 + s], ys[3 + s], SEED_BATCH, &lb[s]);
        if (ok_status(st, "checkpoint (%s): a new trainer like it loads the file and trains 2 steps", what))
            ok(!memcmp(la, lb, sizeof la), "checkpoint (%s): the same losses bit for bit (%.9g %.9g / %.9g %.9g)",
               what, (double)la[0], (double)la[1], (double)lb[0], (double)lb[1]);
        clt_train_params one = q;
        one.parallel = CLT_PARALLEL_NONE;
        one.verify_replicas = 0;
        one.tensor_group = 0;
        st = clt_trainer_create(&c, rt1, m, &one);
        if (st == CLT_OK) st = clt_trainer_load(c, path);
        for (int s = 0; s < 2 && st == CLT_OK; s++) st = clt_trainer_step(c, xs[3 + s], ys[3 + s], SEED_BATCH, &lc[s]);
        if (ok_status(st, "checkpoint (%s): one device loads the file and trains 2 steps", what))
            ok_close(lc, la, 2, SEED_ATOL, SEED_RTOL, "checkpoint: one device goes on with the same losses");
    }
    clt_trainer_destroy(a), clt_trainer_destroy(b), clt_trainer_destroy(c);
    clt_runtime_destroy(rt), clt_runtime_destroy(rt1);
    remove(path);
}

#endif
