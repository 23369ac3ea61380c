/* The pipeline executor: every device interprets its instruction list of a schedule
 * (lib/pipeline.c) over the stages it holds, on its own worker, all devices at once; activations
 * go forward and gradients back through lib/transfer.c links. Both pipeline strategies use it:
 * model parallelism with stages that are one net on one device (clt__stage_net), tensor
 * parallelism with a placement with stages that are a tensor rank's slice of a group's stage
 * (lib/strategy_tensor.c, whose forward and backward all-reduce inside the group). Why the
 * stages' slots suffice is said at the top of lib/strategy_model.c. */
#include "pipeline_exec.h"

#include <stdlib.h>

static clt_status net_forward(void *user, clt__worker *w, clt__net *n, size_t row, size_t count, int training,
                              uint64_t seed)
{
    (void)user, (void)w;
    return clt__net_forward_rows(n, row, count, training, seed);
}

static clt_status net_backward(void *user, clt__worker *w, clt__net *n, size_t row, size_t count, clt__view dout,
                               clt__view din, clt__bwd_part part, uint64_t seed)
{
    (void)user, (void)w;
    return part == CLT__BWD_INPUT ? clt__net_backward_input_rows(n, row, count, dout, din, seed)
                                  : clt__net_backward_rows(n, row, count, dout, din, seed);
}

const clt__stage_kind clt__stage_net = {net_forward, net_backward, NULL};

bool clt__pipe_split(clt_pipeline_schedule kind) { return kind != CLT_PIPELINE_NAIVE; }

/* ---- a stage's buffers and links ------------------------------------------------------------- */

clt_status clt__pipe_stage_buffers(clt__worker *w, clt__pipe_stage *g, bool first, bool last, size_t mrows, bool split)
{
    clt_status st = CLT_OK;
    if (!last) st = clt__alloc(w, mrows * g->out, "gradients from the next stage", &g->gin);
    if (st == CLT_OK && !first)
        st = clt__alloc(w, (size_t)g->gslots * mrows * g->in, "gradients for the previous stage", &g->gout);
    if (st == CLT_OK && split) st = clt__net_split_reserve(g->net);
    if (st == CLT_OK) {
        size_t floats = (last ? 0 : mrows * g->out) + (first ? 0 : (size_t)g->gslots * mrows * g->in);
        w->activation_bytes += g->act_bytes = sizeof(float) * (uint64_t)floats;
    }
    return st;
}

clt_status clt__pipe_stage_free(clt__worker *w, void *stage)
{
    clt__pipe_stage *g = stage;
    w->activation_bytes -= g->act_bytes;
    g->act_bytes = 0;
    if (g->gin) clReleaseMemObject(g->gin);
    if (g->gout) clReleaseMemObject(g->gout);
    clt__net_destroy(g->net);
    g->gin = g->gout = NULL;
    g->net = NULL;
    return CLT_OK;
}

clt_status clt__pipe_link(clt__pipe_stage *a, clt__pipe_stage *b, clt__xfer_group *g, clt__worker *wa,
                          clt__worker *wb, size_t rows)
{
    int slots = rows < 65536 ? (int)rows : 65536;
    clt_status st = clt__link_create(&a->act, g, wa, wb, rows * a->out, slots, 0);
    if (st == CLT_OK) st = clt__link_create(&b->grad, g, wb, wa, rows * b->in, slots, 0);
    b->act_in = a->act, a->grad_in = b->grad;
    return st;
}

void clt__pipe_unlink(clt__pipe_stage *g)
{
    clt__link_destroy(g->act), clt__link_destroy(g->grad);
    g->act = g->grad = g->act_in = g->grad_in = NULL;
}

clt_status clt__pipe_warm_up(clt__worker *w, const clt__stage_kind *kind, void *user, clt__pipe_stage *g, bool first,
                             bool last, size_t rows, bool split, clt_loss loss)
{
    clt__net *n = g->net;
    double unused;
    clt_status st = clt__net_zero_batch(n, rows);
    if (st == CLT_OK && g->gin) st = clt__zero(w, (clt__view){g->gin, 0}, rows * g->out);
    if (st == CLT_OK) st = kind->forward(user, w, n, 0, rows, 1, 0);
    if (st == CLT_OK && last) st = clt__net_loss_rows(n, loss, 0, rows, 1.0f, 1, &unused, NULL);
    clt__view dout = last ? (clt__view){n->gbuf[0], 0} : (clt__view){g->gin, 0};
    clt__view din = {first ? NULL : g->gout, 0};
    if (st == CLT_OK) st = kind->backward(user, w, n, 0, rows, dout, din, split ? CLT__BWD_INPUT : CLT__BWD_ALL, 0);
    if (st == CLT_OK && split) st = clt__net_backward_params_rows(n, 0, rows, 0);
    if (st == CLT_OK) st = clt__zero(w, (clt__view){n->grads, 0}, n->padded);
    return st;
}

/* ---- the rows of a run ------------------------------------------------------------------------ */

/* n rows in k shares as equal as can be, the first ones one more. */
static void split_rows(size_t n, size_t k, size_t *start, size_t *count)
{
    for (size_t i = 0, at = 0; i < k; i++) {
        count[i] = n / k + (i < n % k);
        start[i] = at;
        at += count[i];
    }
}

clt_status clt__pipe_shares(size_t batch, int P, int Mmax, size_t m0, size_t mcap, clt__pipe_share **out, bool *more)
{
    size_t np = (size_t)P, mm = (size_t)Mmax;
    clt__pipe_share *sh = malloc(np * sizeof *sh + (2 * np * mm + 2 * np) * sizeof(size_t));
    *out = sh;
    if (!sh) return clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    size_t *rows = (size_t *)(sh + np), *pstart = rows + 2 * np * mm, *pcount = pstart + np;
    split_rows(batch, np, pstart, pcount);
    *more = false;
    for (size_t p = 0; p < np; p++) {
        size_t all = mm < pcount[p] ? mm : pcount[p];
        size_t *start = rows + 2 * p * mm, *count = start + mm;
        split_rows(pcount[p], all, start, count);
        size_t M = all > m0 ? (all - m0 < mcap ? all - m0 : mcap) : 0;
        *more = *more || m0 + M < all;
        sh[p] = (clt__pipe_share){pstart[p], pcount[p], start + (M ? m0 : 0), count + (M ? m0 : 0), (int)M};
    }
    return CLT_OK;
}

/* ---- one device's instruction list ---------------------------------------------------------- */

/* The weight gradients of micro-batches [m, end) at once: one pass over each run of adjacent
 * slots (a single one when the micro-batches are the same size: GPipe then computes them over
 * the rows of the whole share, as one device does). */
static clt_status wgrad(clt__pipe_job *j, clt__pipe_stage *g, int m, int end)
{
    const size_t *count = j->share.count;
    clt_status st = CLT_OK;
    while (m < end && st == CLT_OK) {
        size_t row = (size_t)(m % g->slots) * j->mrows, rows = count[m++];
        for (; m < end && (size_t)(m % g->slots) * j->mrows == row + rows; m++) rows += count[m];
        st = clt__net_backward_params_rows(g->net, row, rows, j->seed);
    }
    return st;
}

static clt_status exec_op(clt__pipe_job *j, clt__worker *w, clt__op op)
{
    clt__pipe_stage *g = &j->st[op.stage];
    clt__net *n = g->net;
    /* r0: the micro-batch's first row in the pipeline's share (links place messages there);
     * g0: in the batch; b0: in the stage's buffers, its slot; gb0: in gout */
    size_t r0 = j->share.start[op.mb], cnt = j->share.count[op.mb], g0 = j->share.base + r0;
    size_t b0 = (size_t)(op.mb % g->slots) * j->mrows, gb0 = (size_t)(op.mb % g->gslots) * j->mrows;
    clt_status st = CLT_OK;
    n->row0 = g0 - b0;   /* dropout: buffer row b0 is row g0 (wraps around, and back, when b0 > g0) */
    switch ((clt__op_kind)op.kind) {
    case CLT__OP_FWD:
        if (op.stage == 0) st = clt__net_upload_input(n, j->b, g0, cnt, b0);
        if (st == CLT_OK) st = j->kind->forward(j->user, w, n, b0, cnt, j->train, j->seed);
        return st;
    case CLT__OP_SEND_ACT:
        return clt__link_send(g->act, j->tag, op.mb, r0 * g->out, clt__at(clt__net_output(n), b0 * g->out),
                              cnt * g->out);
    case CLT__OP_RECV_ACT:
        return clt__link_recv(g->act_in, j->tag, op.mb, r0 * g->in, (clt__view){n->input, b0 * g->in}, cnt * g->in);
    case CLT__OP_BWD: {
        clt__view dout = {g->gin, 0};
        if (op.stage == j->S - 1) {   /* every rank of a tensor group computes the same loss */
            double sum = 0;
            size_t hits = 0;
            st = clt__net_upload_truth(n, j->b, g0, cnt);
            if (st == CLT_OK) st = clt__net_loss_rows(n, j->loss, b0, cnt, j->loss_scale, 1, &sum, &hits);
            j->loss_sum += sum;
            j->correct += hits;
            dout = (clt__view){n->gbuf[0], 0};
        }
        clt__view din = {g->gout, g->gout ? gb0 * g->in : 0};
        if (st == CLT_OK)
            st = j->kind->backward(j->user, w, n, b0, cnt, dout, din, j->split ? CLT__BWD_INPUT : CLT__BWD_ALL,
                                   j->seed);
        return st;
    }
    case CLT__OP_WGRAD:
        return wgrad(j, g, op.mb, op.mb + op.mbs);
    case CLT__OP_SEND_GRAD:
        return clt__link_send(g->grad, j->tag, op.mb, r0 * g->in, (clt__view){g->gout, gb0 * g->in}, cnt * g->in);
    case CLT__OP_RECV_GRAD:   /* the backward right after it on this queue consumes it: one slot */
        return clt__link_recv(g->grad_in, j->tag, op.mb, r0 * g->out, (clt__view){g->gin, 0}, cnt * g->out);
    case CLT__OP_OUTPUT: {
        if (j->b->labels || j->b->targets) {
            double sum = 0;
            st = clt__net_upload_truth(n, j->b, g0, cnt);
            if (st == CLT_OK) st = clt__net_loss_rows(n, j->loss, b0, cnt, 1.0f, 0, &sum, NULL);
            j->loss_sum += sum;
        }
        if (st != CLT_OK || !j->read_out) return st;
        clt__view o = clt__at(clt__net_output(n), b0 * g->out);
        cl_int err = clEnqueueReadBuffer(w->queue, o.mem, CL_TRUE, o.off * sizeof(float), cnt * g->out * sizeof(float),
                                         j->out + g0 * g->out, 0, NULL, NULL);
        return err == CL_SUCCESS ? CLT_OK : clt__fail_cl(err, clt__worker_name(w), "reading the outputs");
    }
    }
    return clt__fail(CLT_ERR_STATE, "internal error: unknown pipeline instruction %d", op.kind);
}

clt_status clt__pipe_run(clt__worker *w, clt__pipe_job *j)
{
    clt_status st = CLT_OK;
    int d = j->sdev;
    for (size_t i = 0; j->sched && i < j->sched->nops[d] && st == CLT_OK; i++) {
        clt__op op = j->sched->ops[d][i];
        st = clt__fault_point(w, clt__op_fault_kind(op.kind), (unsigned)i + 1, clt__op_name(op.kind));
        double t0 = clt__now();
        if (st == CLT_OK) st = exec_op(j, w, op);
        /* the timeline shows the time the device's thread spent on each instruction (enqueueing,
         * or waiting for a neighbour's rows), so pipeline bubbles show on the host rows */
        if (w->trace && clt__op_span_name(op)) clt__worker_span(w, clt__op_span_name(op), t0, clt__now());
    }
    double t0 = clt__now();
    if (st == CLT_OK) {
        cl_int err = clFinish(w->queue);
        if (err != CL_SUCCESS) st = clt__fail_cl(err, clt__worker_name(w), "finishing the pipeline");
    }
    clt__worker_span(w, "finish the pipeline", t0, clt__now());
    return st;
}

/* ---- around the runs: the stages' gradients -------------------------------------------------- */

/* Whether device w holds (its part of) stage g. */
static bool held(const clt__pipe_stage *g, const clt__worker *w) { return g->net && g->dev == w->index; }

clt_status clt__pipe_zero_grads(clt__worker *w, const clt__pipe_job *j)
{
    clt_status st = CLT_OK;
    for (int k = 0; k < j->S && st == CLT_OK; k++)
        if (held(&j->st[k], w)) st = clt__zero(w, (clt__view){j->st[k].net->grads, 0}, j->st[k].net->padded);
    return st;
}

clt_status clt__pipe_reduce(clt__worker *w, const clt__pipe_job *j, bool norm, const clt_collective_options *o,
                            double *sumsq)
{
    clt_status st = CLT_OK;
    bool copies = false;
    double t0 = clt__now();
    for (int k = 0; k < j->S && st == CLT_OK; k++) {
        clt__net *n = j->st[k].net;
        if (!held(&j->st[k], w) || !j->st[k].copies) continue;
        copies = true;
        if (n->nparams)
            st = clt__comm_allreduce(j->st[k].copies, w, n->grads, 0, n->grads, 0, n->nparams, CLT_OP_SUM, o);
    }
    if (copies) clt__worker_span(w, "all-reduce gradients (copies)", t0, clt__now());
    if (st != CLT_OK || !norm) return st;
    t0 = clt__now();
    for (int k = 0; k < j->S && st == CLT_OK; k++) {
        clt__net *n = j->st[k].net;
        double part = 0;
        if (!held(&j->st[k], w)) continue;
        if (j->kind->sumsq) st = j->kind->sumsq(j->user, n, &part);
        else if (n->nparams) st = clt__net_sumsq(n, (clt__view){n->grads, 0}, n->nparams, &part);
        *sumsq += part;
    }
    clt__worker_span(w, "gradient norm", t0, clt__now());
    return st;
}
