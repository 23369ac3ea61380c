/* The one executor of pipeline schedules (lib/pipeline_exec.c), for the model strategy (stages
 * are nets on devices) and the tensor strategy with a placement (stages are tensor groups, each
 * rank holding its slice of the stage). */
#ifndef CLT_PIPELINE_EXEC_H
#define CLT_PIPELINE_EXEC_H

#include "internal.h"

/* One stage of a pipeline as one device holds it: its net (the whole stage, or a tensor rank's
 * slice) with room for `slots` micro-batches of mrows rows (micro-batch m in slot m % slots),
 * and what the pipeline adds: the gradient slots to and from the neighbours and the links. */
typedef struct {
    int dev;                    /* runtime device holding it */
    clt__net *net;              /* NULL where the device holds no part of the stage */
    size_t in, out;             /* numel per sample of the stage's input and output */
    int slots, gslots;          /* micro-batches the net's buffers hold; gout's */
    uint64_t act_bytes;         /* the stage's part of its worker's activation_bytes */
    cl_mem gin;                 /* (mrows, out): gradient from stage + 1; NULL on the last */
    cl_mem gout;                /* (gslots * mrows, in): gradient for stage - 1; NULL on stage 0 */
    clt__link *act, *grad;      /* sends: to stage + 1, to stage - 1 (NULL at the ends) */
    clt__link *act_in, *grad_in;   /* receives: stage - 1's act, stage + 1's grad (not owned) */
    clt__comm *copies;          /* the same part of the stage in the pipeline's copies (not
                                 * owned); NULL without copies */
} clt__pipe_stage;

/* What a kind of stage does itself: the forward and the backward (in part `part`) of its net's
 * layers over rows [row, row + count) of its buffers. user: the executor job's. */
typedef struct {
    clt_status (*forward)(void *user, clt__worker *w, clt__net *n, size_t row, size_t count, int training,
                          uint64_t seed);
    clt_status (*backward)(void *user, clt__worker *w, clt__net *n, size_t row, size_t count, clt__view dout,
                           clt__view din, clt__bwd_part part, uint64_t seed);
    /* optional: the sum of squares of the gradients of n this device alone answers for; NULL:
     * all of them */
    clt_status (*sumsq)(void *user, clt__net *n, double *out);
} clt__stage_kind;

/* A stage that is one net on one device. */
extern const clt__stage_kind clt__stage_net;

/* Whether a schedule's backwards split (send the input gradient, then compute the weight
 * gradients): under GPipe, 1F1B and zero bubble, so the previous stage starts its backward
 * sooner; the naive schedule stays the seed's, one whole backward after the other. */
bool clt__pipe_split(clt_pipeline_schedule kind);

/* On the stage's worker: gin (unless last), gout (unless first), the split backward's room,
 * counted in the worker's activation_bytes. */
clt_status clt__pipe_stage_buffers(clt__worker *w, clt__pipe_stage *g, bool first, bool last, size_t mrows, bool split);
/* Worker task (arg: the stage): its buffers and net freed. */
clt_status clt__pipe_stage_free(clt__worker *w, void *stage);
/* Links a -> b (stage k to stage k + 1 on workers wa, wb): activations forward, their gradients
 * back, each with room for `rows` rows; b and a receive through them. */
clt_status clt__pipe_link(clt__pipe_stage *a, clt__pipe_stage *b, clt__xfer_group *g, clt__worker *wa,
                          clt__worker *wb, size_t rows);
void clt__pipe_unlink(clt__pipe_stage *g);
/* A micro-batch of zeros through the stage alone (forward, loss on the last, backward, weight
 * gradients when split), the gradients back to zero: compiles what a step uses. */
clt_status clt__pipe_warm_up(clt__worker *w, const clt__stage_kind *kind, void *user, clt__pipe_stage *g, bool first,
                             bool last, size_t rows, bool split, clt_loss loss);

/* A run's rows: the batch split between P pipelines as equal as can be (the first ones one
 * more), each share into min(share, Mmax) micro-batches the same way, of which the run takes
 * [m0, m0 + mcap). One allocation: free(*out). *more: some pipeline has micro-batches after. */
typedef struct {
    size_t base, rows;          /* the pipeline's rows of the batch: from base, how many */
    const size_t *start, *count;   /* the run's micro-batches, rows from base */
    int M;                      /* micro-batches in the run (0: none) */
} clt__pipe_share;
clt_status clt__pipe_shares(size_t batch, int P, int Mmax, size_t m0, size_t mcap, clt__pipe_share **out, bool *more);

/* One device's part of a pipeline run: its instruction list interpreted over its stages, then
 * its queue drained. The loss sum and the right-class count add up on the last stage. */
typedef struct {
    const clt__stage_kind *kind;
    void *user;                 /* the kind's */
    clt__pipe_stage *st;        /* the pipeline's S stages as this device holds them */
    int S;
    const clt__schedule *sched; /* NULL: nothing to run */
    int sdev;                   /* the device's list: sched->ops[sdev] */
    const clt__batch *b;
    clt__pipe_share share;      /* the pipeline's rows */
    size_t mrows;               /* rows of a slot */
    uint32_t tag;               /* numbers the run, so links never mix two */
    int train;
    bool split;                 /* BWD is the input gradient alone (the schedule's split) */
    clt_loss loss;
    float loss_scale;           /* per row of the loss gradient: 1/(whole batch) */
    uint64_t seed;
    float *out;                 /* forward only: the caller's (batch, outputs) */
    bool read_out;              /* whether this device reads them back */
    double loss_sum;
    size_t correct;             /* the last stage's rows whose largest output is right */
} clt__pipe_job;
clt_status clt__pipe_run(clt__worker *w, clt__pipe_job *j);
/* Before a step's first run: the gradients of the stages the device holds to zero. */
clt_status clt__pipe_zero_grads(clt__worker *w, const clt__pipe_job *j);
/* After the runs, with an update coming: the copies of each stage the device holds sum their
 * gradients (stage by stage, the same order in every copy); with `norm` (copy 0) the sum of
 * squares of its stages' gradients is added to *sumsq. */
clt_status clt__pipe_reduce(clt__worker *w, const clt__pipe_job *j, bool norm, const clt_collective_options *o,
                            double *sumsq);

#endif
