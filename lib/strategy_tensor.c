/* Tensor parallelism: Linear layers split across the devices of a group, as in Megatron-LM's MLP.
 * A pair of Linear layers with only elementwise activations between them is split in two ways:
 *
 *   column-parallel first   rank r holds rows [lo, lo + len) of W and of b: a slice of the output
 *                           features; forward needs nothing, backward all-reduces dx
 *   activations             run on the slice
 *   row-parallel second     rank r holds columns [lo, lo + len) of W: a slice of its input
 *                           features; the partial outputs are all-reduced (rank 0 adds the bias
 *                           before, so it counts once)
 *
 * so a pair costs one all-reduce forward and one backward (none when the pair starts the model,
 * whose input gradient nobody needs). Every other layer is replicated: each rank computes it
 * from the same bits and gets the same bits. Each rank runs its own sliced copy of the model (a
 * clt_model with narrower layers, so lib/layers.c needs no change) in one clt__net; the sliced
 * parameters' gradients are complete on their rank, the replicated ones identical everywhere.
 *
 * With several groups (tensor_group < devices), group g is devices g*T .. g*T+T-1, the batch is
 * split between groups, and rank r of every group all-reduces its whole gradient buffer with
 * rank r of the others (the slices match) before every rank updates all it holds. */
#include "internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What a layer is to tensor parallelism (clt_trainer_tensor_slice's kinds). */
enum { PART_REPL = 0, PART_COL = 1, PART_ROW = 2, PART_INSIDE = 3 /* elementwise, on the slice */ };

typedef struct {
    int T, G, n;                /* devices per group, groups, ranks; rank g*T + r is device g*T + r */
    int nlayers;
    int *part;                  /* per layer: PART_* */
    int *lo, *len;              /* [l * T + r]: tensor rank r's feature slice of layer l */
    clt_model **local;          /* per tensor rank: the model with its slices' widths */
    clt__net **nets;            /* per rank */
    clt__comm **tcomm;          /* per group, its T ranks (NULL when T == 1) */
    clt__comm **dcomm;          /* per tensor rank, its G copies (NULL when G == 1) */
    size_t *counts;             /* per group: rows of the last step */
    double *seconds;            /* per rank: compute seconds of the last step */
    clt_collective_options copts;
} tensor_state;

static size_t out_numel(const clt_trainer *t) { return t->model->layers[t->model->nlayers - 1].out_numel; }

static bool elementwise(clt_layer_kind k)
{
    return k == CLT_LAYER_RELU || k == CLT_LAYER_LEAKY_RELU || k == CLT_LAYER_GELU ||
           k == CLT_LAYER_TANH || k == CLT_LAYER_SIGMOID;
}

/* ---- the plan: which layers split, and the slices --------------------------------------------- */

/* len[r] = total * w_r / sum(w) by largest remainders (ties to the lower rank); false when a
 * slice would be empty. */
static bool share(int total, const double *w, int T, int *lo, int *len)
{
    double sum = 0;
    for (int r = 0; r < T; r++) sum += w[r];
    int given = 0;
    double *rem = malloc((size_t)T * sizeof *rem);
    if (!rem) return false;
    for (int r = 0; r < T; r++) {
        double x = (double)total * w[r] / sum;
        len[r] = (int)floor(x);
        rem[r] = x - len[r];
        given += len[r];
    }
    while (given < total) {
        int best = 0;
        for (int r = 1; r < T; r++)
            if (rem[r] > rem[best]) best = r;
        len[best]++, rem[best] = -1, given++;
    }
    free(rem);
    int at = 0;
    for (int r = 0; r < T; r++) {
        if (len[r] < 1) return false;
        lo[r] = at;
        at += len[r];
    }
    return true;
}

/* Pairs Linear layers greedily from the input: a Linear, elementwise layers, a Linear. */
static clt_status plan(tensor_state *s, const clt_model *m, const double *w)
{
    int T = s->T;
    for (int i = 0; i < m->nlayers; i++) {
        s->part[i] = PART_REPL;
        for (int r = 0; r < T; r++) s->lo[i * T + r] = 0, s->len[i * T + r] = (int)m->layers[i].out_numel;
    }
    int *lo = malloc((size_t)T * sizeof *lo), *len = malloc((size_t)T * sizeof *len);
    for (int i = 0; lo && len && T > 1 && i < m->nlayers; i++) {
        if (m->layers[i].desc.kind != CLT_LAYER_LINEAR) continue;
        int j = i + 1;
        while (j < m->nlayers && elementwise(m->layers[j].desc.kind)) j++;
        if (j >= m->nlayers || m->layers[j].desc.kind != CLT_LAYER_LINEAR) continue;
        /* too narrow for a slice on every device: stays replicated */
        if (!share((int)m->layers[i].out_numel, w, T, lo, len)) continue;
        for (int k = i; k <= j; k++) {
            s->part[k] = k == i ? PART_COL : k == j ? PART_ROW : PART_INSIDE;
            memcpy(&s->lo[k * T], lo, (size_t)T * sizeof *lo);
            memcpy(&s->len[k * T], len, (size_t)T * sizeof *len);
        }
        i = j;
    }
    clt_status st = lo && len ? CLT_OK : clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    free(lo), free(len);
    return st;
}

/* Tensor rank r's model: column layers with len outputs, row layers with len inputs (and the
 * bias on rank 0 only), the rest as they are. */
static clt_status local_model(const tensor_state *s, const clt_model *m, int r, clt_model **out)
{
    clt_model *lm;
    clt_status st = clt_model_create(&lm, m->input);
    for (int i = 0; i < m->nlayers && st == CLT_OK; i++) {
        clt_layer_desc d = m->layers[i].desc;
        if (s->part[i] == PART_COL) d.out = s->len[i * s->T + r];
        if (s->part[i] == PART_ROW && r > 0) d.bias = 0;
        st = clt_model_add(lm, d);
    }
    if (st != CLT_OK) {
        clt_model_destroy(lm);
        return st;
    }
    *out = lm;
    return CLT_OK;
}

/* idx[k] = the element (weight then bias, within layer l's tensors) of local element k of
 * tensor rank r's copy of layer l. Returns the local count. */
static size_t map_layer(const tensor_state *s, const clt_model *m, int l, int r, size_t *idx)
{
    const clt__layer *g = &m->layers[l];
    const clt__layer *loc = &s->local[r]->layers[l];
    size_t n = loc->w_count + loc->b_count, in = g->in_numel, out = g->out_numel;
    size_t lo = (size_t)s->lo[l * s->T + r], len = (size_t)s->len[l * s->T + r];
    for (size_t k = 0; k < n; k++) {
        switch (s->part[l]) {
        case PART_COL:
            idx[k] = k < len * in ? lo * in + k : g->w_count + lo + (k - len * in);
            break;
        case PART_ROW:
            idx[k] = k < out * len ? (k / len) * in + lo + k % len : g->w_count + (k - out * len);
            break;
        default: idx[k] = k;
        }
    }
    return n;
}

/* ---- buffers on the ranks ------------------------------------------------------------------- */

/* Reads or writes a range of one of a rank's flat buffers: `which` 0 parameters, 1 gradients,
 * 2 + k optimizer state k (over all the rank holds; not made yet, it reads as zeros and a write
 * makes it, as clt__net_state_io does for every strategy). */
static clt_status rank_io(clt_trainer *t, int rank, int which, size_t off, size_t count, float *host,
                          int write)
{
    clt__net *n = ((tensor_state *)t->state)->nets[rank];
    if (which >= 2) return clt__net_state_io(n, which - 2, n->nparams, off, count, host, write);
    if (!count) return CLT_OK;
    return clt__buffer_io(&t->rt->workers[rank], which == 0 ? n->params : n->grads, off, count, host, write);
}

/* Layer l's whole tensors (weight then bias, the model's layout) from group 0's ranks. */
static clt_status gather_layer(clt_trainer *t, int l, int which, float *full, float *tmp, size_t *idx)
{
    tensor_state *s = t->state;
    clt_status st = CLT_OK;
    for (int r = 0; r < (s->part[l] == PART_REPL ? 1 : s->T) && st == CLT_OK; r++) {
        size_t n = map_layer(s, t->model, l, r, idx);
        st = rank_io(t, r, which, s->local[r]->layers[l].param_off, n, tmp, 0);
        for (size_t k = 0; k < n && st == CLT_OK; k++) full[idx[k]] = tmp[k];
    }
    return st;
}

/* Layer l's whole tensors to every rank of every group, each its slice. */
static clt_status scatter_layer(clt_trainer *t, int l, int which, const float *full, float *tmp, size_t *idx)
{
    tensor_state *s = t->state;
    clt_status st = CLT_OK;
    for (int q = 0; q < s->n && st == CLT_OK; q++) {
        int r = q % s->T;
        size_t n = map_layer(s, t->model, l, r, idx);
        for (size_t k = 0; k < n; k++) tmp[k] = full[idx[k]];
        st = rank_io(t, q, which, s->local[r]->layers[l].param_off, n, tmp, 1);
    }
    return st;
}

/* Reads or writes `count` floats of buffer `which` in the model's flat numbering, layer by layer
 * through whole-layer copies (a partial write reads the layer first). */
static clt_status flat_io(clt_trainer *t, int which, size_t off, size_t count, float *host, int write)
{
    const clt_model *m = t->model;
    size_t most = 1;
    for (int l = 0; l < m->nlayers; l++)
        if (m->layers[l].w_count + m->layers[l].b_count > most) most = m->layers[l].w_count + m->layers[l].b_count;
    float *full = malloc(most * sizeof *full), *tmp = malloc(most * sizeof *tmp);
    size_t *idx = malloc(most * sizeof *idx);
    clt_status st = full && tmp && idx ? CLT_OK : clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    for (int l = 0; l < m->nlayers && st == CLT_OK; l++) {
        const clt__layer *L = &m->layers[l];
        size_t a = L->param_off, b = a + L->w_count + L->b_count;
        size_t from = off > a ? off : a, to = off + count < b ? off + count : b;
        if (from >= to) continue;
        bool whole = from == a && to == b;
        if (!write || !whole) st = gather_layer(t, l, which, full, tmp, idx);
        if (st != CLT_OK) break;
        if (!write) {
            memcpy(host + (from - off), full + (from - a), (to - from) * sizeof(float));
            continue;
        }
        memcpy(full + (from - a), host + (from - off), (to - from) * sizeof(float));
        st = scatter_layer(t, l, which, full, tmp, idx);
    }
    free(full), free(tmp), free(idx);
    return st;
}

/* ---- a step on one rank ----------------------------------------------------------------------- */

typedef struct {
    clt_trainer *t;
    tensor_state *s;
    int rank;
    const clt__batch *b;
    size_t start, count;        /* the group's rows of the batch */
    int update, first_micro;
    float lr, gscale;
    double loss_sum, sumsq, seconds;
    size_t correct;
    float *out;                 /* forward: the caller's outputs */
    bool comm;                  /* false while warming up alone */
} rank_job;

static int tensor_rank(const rank_job *j) { return j->rank % j->s->T; }
static int group_of(const rank_job *j) { return j->rank / j->s->T; }

/* Whether a pass stops after layer i: a row-parallel layer's output is all-reduced, and below a
 * column-parallel layer its input gradient is. */
static bool cut_after(const tensor_state *s, int i)
{
    return s->part[i] == PART_ROW || (i + 1 < s->nlayers && s->part[i + 1] == PART_COL);
}

/* All-reduce within the group, counting its time apart from the compute. */
static clt_status group_sum(rank_job *j, clt__worker *w, clt__view v, size_t count, double *t0)
{
    clt__comm *c = j->s->tcomm ? j->s->tcomm[group_of(j)] : NULL;
    if (!c || !j->comm) return CLT_OK;
    cl_int err = clFinish(w->queue);
    if (err != CL_SUCCESS) return clt__fail_cl(err, clt__worker_name(w), "finishing a layer");
    double t1 = clt__now();
    clt__worker_throttle(w, t1 - *t0);
    j->seconds += clt__now() - *t0;
    clt_status st = clt__comm_allreduce(c, w, v.mem, v.off, v.mem, v.off, count, CLT_OP_SUM, &j->s->copts);
    clt__worker_span(w, "tensor all-reduce", t1, clt__now());
    *t0 = clt__now();
    return st;
}

/* Forward through every layer with the row-parallel all-reduces, then the loss when the batch
 * has labels or targets. x, labels and targets are NULL while warming up (already zeros). */
static clt_status rank_forward(rank_job *j, clt__worker *w, int training, int want_grad, double *t0)
{
    clt_trainer *t = j->t;
    tensor_state *s = j->s;
    clt__net *n = s->nets[j->rank];
    const clt__batch *b = j->b;
    size_t B = j->count;
    clt_status st = b ? clt__net_upload_rows(n, b, j->start, B) : CLT_OK;
    n->row0 = j->start;
    uint64_t seed = b ? clt__step_seed(t) : 0;
    for (int i = 0, a = 0; i < s->nlayers && st == CLT_OK; i++) {
        if (!cut_after(s, i) && i + 1 < s->nlayers) continue;
        st = clt__net_forward_span(n, a, i, 0, B, training, seed);
        if (st == CLT_OK && s->part[i] == PART_ROW)
            st = group_sum(j, w, clt__net_act(n, i), B * n->m->layers[i].out_numel, t0);
        a = i + 1;
    }
    if (st == CLT_OK && (!b || b->labels || b->targets)) {
        float scale = b ? clt__loss_grad_scale(t, b->batch) : 1.0f;
        st = clt__net_loss(n, t->p.loss, B, scale, want_grad, &j->loss_sum, &j->correct);
    }
    return st;
}

/* Backward from the loss gradient, all-reducing the input gradient of column-parallel layers. */
static clt_status rank_backward(rank_job *j, clt__worker *w, double *t0)
{
    tensor_state *s = j->s;
    clt__net *n = s->nets[j->rank];
    uint64_t seed = j->b ? clt__step_seed(j->t) : 0;
    clt__view dout = {n->gbuf[0], 0}, din;
    clt_status st = CLT_OK;
    for (int i = s->nlayers - 1, last = s->nlayers - 1; i >= 0 && st == CLT_OK; i--) {
        if (i > 0 && !cut_after(s, i - 1)) continue;
        st = clt__net_backward_span(n, i, last, j->count, dout, i > 0, &din, seed);
        if (st == CLT_OK && i > 0 && s->part[i] == PART_COL)
            st = group_sum(j, w, din, j->count * n->m->layers[i].in_numel, t0);
        dout = din;
        last = i - 1;
    }
    return st;
}

/* The sum of squares of the gradients this rank alone holds: its slices, and on tensor rank 0
 * the replicated layers too, so the group's ranks add up to the whole model once. */
static clt_status owned_sumsq(rank_job *j, double *out)
{
    tensor_state *s = j->s;
    clt__net *n = s->nets[j->rank];
    const clt_model *lm = n->m;
    int r = tensor_rank(j);
    *out = 0;
    size_t a = 0, b = 0;   /* the range being gathered */
    clt_status st = CLT_OK;
    for (int l = 0; l <= lm->nlayers && st == CLT_OK; l++) {
        bool own = l < lm->nlayers && (r == 0 || s->part[l] != PART_REPL);
        size_t lo = l < lm->nlayers ? lm->layers[l].param_off : lm->nparams;
        size_t cnt = l < lm->nlayers ? lm->layers[l].w_count + lm->layers[l].b_count : 0;
        if (own && lo == b) {
            b = lo + cnt;
            continue;
        }
        if (b > a) {
            double part;
            st = clt__net_sumsq(n, (clt__view){n->grads, a}, b - a, &part);
            *out += part;
        }
        a = lo, b = own ? lo + cnt : lo;
    }
    return st;
}

/* A rank that failed, or was stopped by a failure in one of its groups, stops both: a rank of
 * another group waiting for it across groups must not wait out the timeout. */
static void abort_peers(rank_job *j, clt_status st)
{
    if (st == CLT_OK) return;
    tensor_state *s = j->s;
    int dev = j->rank;
    if (s->tcomm) clt__comm_abort(s->tcomm[group_of(j)], dev, st, clt_last_error());
    if (s->dcomm) clt__comm_abort(s->dcomm[tensor_rank(j)], dev, st, clt_last_error());
}

/* Phase A: forward and backward (gradients accumulate); with an update coming, the gradients
 * summed across groups and this rank's share of the sum of squares. */
static clt_status phase_a_body(clt__worker *w, rank_job *j)
{
    clt_trainer *t = j->t;
    tensor_state *s = j->s;
    clt__net *n = s->nets[j->rank];
    clt_status st = CLT_OK;
    double t0 = clt__now();
    j->seconds = 0;
    if (j->first_micro) st = clt__zero(w, (clt__view){n->grads, 0}, n->padded);
    if (st == CLT_OK && j->count) {
        st = clt__fault_point(w, CLT__FAULT_FORWARD, 1, "the forward");
        if (st == CLT_OK) st = rank_forward(j, w, 1, 1, &t0);
        if (st == CLT_OK) st = clt__fault_point(w, CLT__FAULT_BACKWARD, 1, "the backward");
        if (st == CLT_OK) st = rank_backward(j, w, &t0);
    }
    if (st == CLT_OK) {
        cl_int err = clFinish(w->queue);
        if (err != CL_SUCCESS) st = clt__fail_cl(err, clt__worker_name(w), "finishing backward");
    }
    if (j->count) clt__worker_throttle(w, clt__now() - t0);
    j->seconds += clt__now() - t0;
    if (st != CLT_OK || !j->update) return st;
    double t1 = clt__now();
    if (s->dcomm)
        st = clt__comm_allreduce(s->dcomm[tensor_rank(j)], w, n->grads, 0, n->grads, 0, n->nparams,
                                 CLT_OP_SUM, &s->copts);
    if (s->dcomm) clt__worker_span(w, "all-reduce gradients across groups", t1, clt__now());
    if (st == CLT_OK && group_of(j) == 0 && (t->p.clip_norm > 0.0f || t->p.check_numerics))
        st = owned_sumsq(j, &j->sumsq);
    return st;
}

/* Phase B: every rank updates all it holds (slices and replicated layers alike). */
static clt_status phase_b_body(clt__worker *w, rank_job *j)
{
    clt_trainer *t = j->t;
    clt__net *n = j->s->nets[j->rank];
    double t0 = clt__now();
    clt_status st = clt__net_update_begin(n);   /* the update is all or nothing (tensor_step) */
    if (st == CLT_OK) st = clt__fault_point(w, CLT__FAULT_OPTIMIZER, 1, "the optimizer");
    if (st == CLT_OK)
        st = clt__net_optimizer_step(n, &t->p.optim, j->lr, t->steps + 1, j->gscale, 0, n->nparams,
                                     (clt__view){n->grads, 0});
    if (st == CLT_OK) {
        cl_int err = clFinish(w->queue);
        if (err != CL_SUCCESS) st = clt__fail_cl(err, clt__worker_name(w), "finishing the update");
        clt__worker_collect(w);
    }
    j->seconds += clt__now() - t0;
    clt__worker_span(w, "optimizer", t0, clt__now());
    return st;
}

/* Uploads read the caller's arrays asynchronously: the queue is drained before returning; a
 * failure stops the rank's peers instead of leaving them waiting in an all-reduce. */
static clt_status phase_a(clt__worker *w, void *arg)
{
    clt_status st = phase_a_body(w, arg);
    if (st != CLT_OK) clFinish(w->queue), abort_peers(arg, st);
    return st;
}

static clt_status phase_b(clt__worker *w, void *arg)
{
    clt_status st = phase_b_body(w, arg);
    if (st != CLT_OK) clFinish(w->queue), abort_peers(arg, st);
    return st;
}

static clt_status forward_task(clt__worker *w, void *arg)
{
    rank_job *j = arg;
    double t0 = clt__now();
    clt_status st = j->count ? rank_forward(j, w, 0, 0, &t0) : CLT_OK;
    if (st == CLT_OK && j->count && tensor_rank(j) == 0) {
        clt__view o = clt__net_output(j->s->nets[j->rank]);
        size_t C = out_numel(j->t);
        cl_int err = clEnqueueReadBuffer(w->queue, o.mem, CL_TRUE, o.off * sizeof(float),
                                         j->count * C * sizeof(float), j->out + j->start * C, 0, NULL, NULL);
        if (err != CL_SUCCESS) st = clt__fail_cl(err, clt__worker_name(w), "reading the outputs");
    }
    if (st != CLT_OK) clFinish(w->queue), abort_peers(j, st);
    return st;
}

static void reset_comms(tensor_state *s)
{
    for (int g = 0; s->tcomm && g < s->G; g++) clt__comm_reset(s->tcomm[g]);
    for (int r = 0; s->dcomm && r < s->T; r++) clt__comm_reset(s->dcomm[r]);
}

static clt_status run_ranks(clt_trainer *t, tensor_state *s, clt__task_fn fn, rank_job *jobs)
{
    clt_status st = clt__run_on(t->rt, NULL, s->n, fn, jobs, sizeof *jobs);
    if (st != CLT_OK) reset_comms(s);
    return st;
}

/* Equal shares of the batch between the groups, the first ones getting one more. */
static void split_groups(const tensor_state *s, size_t batch, size_t *counts)
{
    for (int g = 0; g < s->G; g++) counts[g] = batch / (size_t)s->G + ((size_t)g < batch % (size_t)s->G);
}

static clt_status make_jobs(clt_trainer *t, const clt__batch *b, size_t *counts, rank_job **out)
{
    tensor_state *s = t->state;
    rank_job *jobs = calloc((size_t)s->n, sizeof *jobs);
    if (!jobs) return clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    split_groups(s, b->batch, counts);
    for (int q = 0; q < s->n; q++) {
        int g = q / s->T;
        size_t start = 0;
        for (int k = 0; k < g; k++) start += counts[k];
        jobs[q] = (rank_job){t, s, q, b, start, counts[g], 0, t->micro == 0, 0, 1.0f, 0, 0, 0, 0, NULL, true};
    }
    *out = jobs;
    return CLT_OK;
}

/* With verify_replicas: what should be the same bits is. Every layer a rank holds equals the
 * same layer on group 0's rank of its slice (replicated layers: on device 0), and the last
 * step's outputs on every rank of a group equal its first rank's. */
static clt_status verify(clt_trainer *t, tensor_state *s)
{
    size_t most = 1, C = out_numel(t);
    for (int q = 0; q < s->n; q++) {
        size_t np = s->nets[q]->nparams, rows = s->counts[q / s->T] * C;
        if (np > most) most = np;
        if (rows > most) most = rows;
    }
    float *ref = malloc(most * sizeof *ref), *got = malloc(most * sizeof *got);
    clt_status st = ref && got ? CLT_OK : clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    for (int q = 1; q < s->n && st == CLT_OK; q++) {
        const clt_model *lm = s->local[q % s->T];
        for (int l = 0; l < lm->nlayers && st == CLT_OK; l++) {
            int from = s->part[l] == PART_REPL ? 0 : q % s->T;
            size_t off = lm->layers[l].param_off, cnt = lm->layers[l].w_count + lm->layers[l].b_count;
            if (from == q || !cnt) continue;
            st = rank_io(t, from, 0, s->local[from]->layers[l].param_off, cnt, ref, 0);
            if (st == CLT_OK) st = rank_io(t, q, 0, off, cnt, got, 0);
            for (size_t i = 0; i < cnt && st == CLT_OK; i++)
                if (memcmp(&ref[i], &got[i], sizeof(float)))
                    st = clt__fail(CLT_ERR_STATE, "replica check after step %ld: layer %d's parameter "
                                   "%zu (of this device's copy) is %.9g on device %d, %.9g on device %d",
                                   t->steps + 1, l, i, (double)got[i], q, (double)ref[i], from);
        }
        size_t rows = s->counts[q / s->T] * C;
        int first = q - q % s->T;
        if (st != CLT_OK || q == first || !rows) continue;
        clt__view o = clt__net_output(s->nets[first]);
        st = clt__buffer_io(&t->rt->workers[first], o.mem, o.off, rows, ref, 0);
        o = clt__net_output(s->nets[q]);
        if (st == CLT_OK) st = clt__buffer_io(&t->rt->workers[q], o.mem, o.off, rows, got, 0);
        if (st == CLT_OK && memcmp(ref, got, rows * sizeof(float)))
            st = clt__fail(CLT_ERR_STATE, "replica check after step %ld: the outputs of device %d "
                           "differ from device %d's", t->steps + 1, q, first);
    }
    free(ref), free(got);
    return st;
}

static clt_status tensor_step(clt_trainer *t, const clt__batch *b, int update, float lr, double *loss,
                              size_t *correct)
{
    tensor_state *s = t->state;
    rank_job *jobs;
    clt_status st = make_jobs(t, b, s->counts, &jobs);
    if (st != CLT_OK) return st;
    for (int q = 0; q < s->n; q++) jobs[q].update = update, jobs[q].lr = lr;
    st = run_ranks(t, s, phase_a, jobs);
    double loss_sum = 0, sumsq = 0;
    *correct = 0;
    for (int q = 0; q < s->n; q++) {
        if (q % s->T) continue;   /* the group's ranks computed the same loss */
        loss_sum += jobs[q].loss_sum, *correct += jobs[q].correct;
    }
    for (int q = 0; q < s->T; q++) sumsq += jobs[q].sumsq;   /* group 0 */
    *loss = clt__loss_mean(t, loss_sum, b->batch);
    if (st == CLT_OK && t->p.check_numerics && !isfinite(*loss))
        st = clt__grad_scale(t, *loss, 0, &jobs[0].gscale);   /* says which: the loss */
    if (st == CLT_OK && update) {
        float gscale;
        st = clt__grad_scale(t, *loss, sumsq, &gscale);
        for (int q = 0; q < s->n; q++) jobs[q].gscale = gscale;
        if (st == CLT_OK) st = run_ranks(t, s, phase_b, jobs);
        if (st != CLT_OK && st != CLT_ERR_NUMERIC) {
            /* some ranks may have updated: all back to the last good step */
            clt__nets_undo(t->rt, NULL, s->nets, s->n);
        }
        if (st == CLT_OK) clt__nets_commit(s->nets, s->n);
        if (st == CLT_OK && t->p.verify_replicas && s->n > 1) st = verify(t, s);
    }
    if (st == CLT_OK)
        for (int q = 0; q < s->n; q++) s->seconds[q] = jobs[q].count ? jobs[q].seconds : 0.0;
    free(jobs);
    return st;
}

static clt_status tensor_forward(clt_trainer *t, const clt__batch *b, float *out, double *loss_sum)
{
    tensor_state *s = t->state;
    size_t *counts = calloc((size_t)s->G, sizeof *counts);
    rank_job *jobs = NULL;
    clt_status st = counts ? make_jobs(t, b, counts, &jobs)
                           : clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    if (st == CLT_OK) {
        for (int q = 0; q < s->n; q++) jobs[q].out = out;
        st = run_ranks(t, s, forward_task, jobs);
        *loss_sum = 0;
        for (int q = 0; q < s->n; q += s->T) *loss_sum += jobs[q].loss_sum;
    }
    free(jobs);
    free(counts);
    return st;
}

/* ---- create and destroy ---------------------------------------------------------------------- */

typedef struct {
    clt_trainer *t;
    int rank;
    const float *init;
    bool measure;           /* CLT_SPLIT_AUTO: time one more warm-up step */
    double seconds;
} create_job;

/* One step over `rows` rows of zeros with learning rate 0 on this rank alone, without the
 * all-reduces, then the gradients and optimizer state back to zero: every kernel a step uses
 * is compiled while no other device runs (PoCL 3.1's CPU driver can abort when one device
 * compiles while another runs a kernel). */
static clt_status warm_up(clt__worker *w, clt_trainer *t, int rank, size_t rows)
{
    tensor_state *s = t->state;
    clt__net *n = s->nets[rank];
    rank_job j = {t, s, rank, NULL, 0, rows, 0, 1, 0, 1.0f, 0, 0, 0, 0, NULL, false};
    double t0 = clt__now(), unused;
    clt_status st = clt__net_zero_batch(n, rows);
    if (st == CLT_OK) st = rank_forward(&j, w, 1, 1, &t0);
    if (st == CLT_OK) st = rank_backward(&j, w, &t0);
    if (st == CLT_OK) st = clt__zero(w, (clt__view){n->grads, 0}, n->padded);
    if (st == CLT_OK) st = owned_sumsq(&j, &unused);
    if (st == CLT_OK) st = clt__net_warm_optimizer(n, &t->p.optim, 0, n->nparams);
    return st;
}

static clt_status create_rank(clt__worker *w, void *arg)
{
    create_job *j = arg;
    clt_trainer *t = j->t;
    tensor_state *s = t->state;
    int r = j->rank % s->T;
    const clt_model *lm = s->local[r];
    clt__net *n;
    clt_status st = clt__net_create(w, lm, 0, lm->nlayers - 1, t->p.max_batch, 1, &n);
    if (st != CLT_OK) return st;
    s->nets[j->rank] = n;
    /* this rank's slices of the initial parameters, in its own numbering */
    size_t most = 1;
    for (int l = 0; l < lm->nlayers; l++)
        if (lm->layers[l].w_count + lm->layers[l].b_count > most) most = lm->layers[l].w_count + lm->layers[l].b_count;
    float *mine = malloc((lm->nparams ? lm->nparams : 1) * sizeof *mine);
    size_t *idx = malloc(most * sizeof *idx);
    if (!mine || !idx) st = clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    for (int l = 0; l < lm->nlayers && st == CLT_OK; l++) {
        size_t cnt = map_layer(s, t->model, l, r, idx);
        for (size_t k = 0; k < cnt; k++)
            mine[lm->layers[l].param_off + k] = j->init[t->model->layers[l].param_off + idx[k]];
    }
    if (st == CLT_OK && lm->nparams) {
        cl_int err = clEnqueueWriteBuffer(w->queue, n->params, CL_TRUE, 0, lm->nparams * sizeof(float),
                                          mine, 0, NULL, NULL);
        if (err != CL_SUCCESS) st = clt__fail_cl(err, clt__worker_name(w), "uploading the parameters");
    }
    free(mine), free(idx);
    size_t per_group = (t->p.max_batch + (size_t)s->G - 1) / (size_t)s->G;
    if (st == CLT_OK) st = warm_up(w, t, j->rank, t->p.max_batch);
    if (st == CLT_OK && per_group != t->p.max_batch) st = warm_up(w, t, j->rank, per_group);
    if (st == CLT_OK && j->measure) {   /* compiled by now: this is the device's speed */
        double t0 = clt__now();
        st = warm_up(w, t, j->rank, per_group);
        clt__worker_throttle(w, clt__now() - t0);
        j->seconds = clt__now() - t0;
    }
    return st;
}

/* Plans the slices for weights w (one per tensor rank), builds each rank's model and net with
 * its slices of init; with `measure`, times each rank's step into seconds[rank]. */
static clt_status build_ranks(clt_trainer *t, const float *init, const double *w, bool measure,
                              double *seconds)
{
    tensor_state *s = t->state;
    clt_status st = plan(s, t->model, w);
    for (int r = 0; r < s->T && st == CLT_OK; r++) st = local_model(s, t->model, r, &s->local[r]);
    /* one rank at a time: each allocates its own buffers and compiles alone */
    for (int q = 0; q < s->n && st == CLT_OK; q++) {
        create_job j = {t, q, init, measure, 0};
        st = clt__worker_call(&t->rt->workers[q], create_rank, &j);
        if (seconds) seconds[q] = j.seconds;
    }
    return st;
}

static void free_ranks(clt_trainer *t)
{
    tensor_state *s = t->state;
    for (int q = 0; s->nets && q < s->n; q++)
        if (s->nets[q]) clt__worker_call(&t->rt->workers[q], clt__net_destroy_task, s->nets[q]);
    for (int r = 0; s->local && r < s->T; r++) clt_model_destroy(s->local[r]), s->local[r] = NULL;
    if (s->nets) memset(s->nets, 0, (size_t)s->n * sizeof *s->nets);
}

static void tensor_destroy(clt_trainer *t)
{
    tensor_state *s = t->state;
    if (!s) return;
    for (int g = 0; s->tcomm && g < s->G; g++) clt__comm_destroy(s->tcomm[g]);
    for (int r = 0; s->dcomm && r < s->T; r++) clt__comm_destroy(s->dcomm[r]);
    free_ranks(t);
    free(s->tcomm), free(s->dcomm), free(s->nets), free(s->local);
    free(s->part), free(s->lo), free(s->len), free(s->counts), free(s->seconds);
    free(s);
    t->state = NULL;
}

static clt_status tensor_create(clt_trainer *t, const float *init)
{
    tensor_state *s = calloc(1, sizeof *s);
    if (!s) return clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    t->state = s;
    const clt_model *m = t->model;
    s->n = t->rt->nworkers;
    s->T = t->p.tensor_group ? t->p.tensor_group : s->n;
    s->G = s->n / s->T;
    s->nlayers = m->nlayers;
    int T = s->T, L = m->nlayers;
    s->part = calloc((size_t)L, sizeof *s->part);
    s->lo = calloc((size_t)L * (size_t)T, sizeof *s->lo);
    s->len = calloc((size_t)L * (size_t)T, sizeof *s->len);
    s->local = calloc((size_t)T, sizeof *s->local);
    s->nets = calloc((size_t)s->n, sizeof *s->nets);
    s->counts = calloc((size_t)s->G, sizeof *s->counts);
    s->seconds = calloc((size_t)s->n, sizeof *s->seconds);
    double *w = calloc((size_t)T, sizeof *w), *secs = calloc((size_t)s->n, sizeof *secs);
    if (!s->part || !s->lo || !s->len || !s->local || !s->nets || !s->counts || !s->seconds || !w || !secs) {
        free(w), free(secs);
        return clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    }
    for (int r = 0; r < T; r++)
        w[r] = t->p.split == CLT_SPLIT_WEIGHTS ? (double)t->p.split_weights[r] : 1.0;
    s->copts = clt_collective_options_default();
    bool measure = t->p.split == CLT_SPLIT_AUTO && T > 1;
    clt_status st = build_ranks(t, init, w, measure, secs);
    if (st == CLT_OK && measure) {
        /* CLT_SPLIT_AUTO: slices in proportion to each device's speed on equal slices (tensor
         * rank r's mean over the groups, so that every group slices alike), measured once */
        int *old = malloc((size_t)L * (size_t)T * sizeof *old);
        if (!old) st = clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
        for (int r = 0; r < T && st == CLT_OK; r++) {
            double sum = 0;
            for (int g = 0; g < s->G; g++) sum += secs[g * T + r];
            w[r] = sum > 0 ? (double)s->G / sum : 1.0;
        }
        if (st == CLT_OK) {
            memcpy(old, s->len, (size_t)L * (size_t)T * sizeof *old);
            st = plan(s, m, w);
        }
        if (st == CLT_OK && memcmp(old, s->len, (size_t)L * (size_t)T * sizeof *old)) {
            clt__log(CLT_LOG_INFO, "tensor parallel: slices re-sized to the measured speeds");
            free_ranks(t);
            st = build_ranks(t, init, w, false, NULL);
        }
        free(old);
    }
    free(w), free(secs);
    if (st == CLT_OK && T > 1) {
        if (!(s->tcomm = calloc((size_t)s->G, sizeof *s->tcomm)))
            return clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
        int *devs = malloc((size_t)s->n * sizeof *devs);
        if (!devs) return clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
        for (int g = 0; g < s->G && st == CLT_OK; g++) {
            for (int r = 0; r < T; r++) devs[r] = g * T + r;
            st = clt__comm_create_group(&s->tcomm[g], t->rt, devs, T);
        }
        free(devs);
    }
    if (st == CLT_OK && s->G > 1) {
        if (!(s->dcomm = calloc((size_t)T, sizeof *s->dcomm)))
            return clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
        int *devs = malloc((size_t)s->n * sizeof *devs);
        if (!devs) return clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
        for (int r = 0; r < T && st == CLT_OK; r++) {
            for (int g = 0; g < s->G; g++) devs[g] = g * T + r;
            st = clt__comm_create_group(&s->dcomm[r], t->rt, devs, s->G);
        }
        free(devs);
    }
    if (st == CLT_OK && clt__log_enabled(CLT_LOG_INFO))
        for (int l = 0; l < L; l++)
            if (s->part[l] != PART_REPL)
                clt__log(CLT_LOG_INFO, "tensor parallel: layer %d %s-parallel over %d devices, "
                         "tensor rank 0 has %d features", l, s->part[l] == PART_COL ? "column" : "row",
                         T, s->len[l * T]);
    return st;
}

/* ---- the rest of the interface ------------------------------------------------------------- */

static clt_status tensor_param_io(clt_trainer *t, size_t off, size_t count, float *host, int write, int grads)
{
    return flat_io(t, grads ? 1 : 0, off, count, host, write);
}

static clt_status tensor_state_io(clt_trainer *t, int which, size_t off, size_t count, float *host, int write)
{
    return flat_io(t, 2 + which, off, count, host, write);
}

/* Every device of a group takes that group's rows. */
static clt_status tensor_split(const clt_trainer *t, size_t *counts, int n)
{
    const tensor_state *s = t->state;
    for (int i = 0; i < n; i++) counts[i] = i < s->n ? s->counts[i / s->T] : 0;
    return CLT_OK;
}

static void tensor_busy(const clt_trainer *t, double *seconds, int n)
{
    const tensor_state *s = t->state;
    for (int i = 0; i < n; i++) seconds[i] = i < s->n ? s->seconds[i] : 0;
}

const clt__strategy_ops clt__strategy_tensor = {
    "tensor parallel", tensor_create, tensor_destroy, tensor_step, tensor_forward, tensor_param_io,
    tensor_split, tensor_state_io, tensor_busy, NULL,
};

clt_status clt_trainer_tensor_slice(const clt_trainer *t, int layer, int device, int *kind, int *first,
                                    int *count)
{
    if (!t || !kind || !first || !count)
        return clt__fail(CLT_ERR_INVALID_ARG, "clt_trainer_tensor_slice: %s is NULL",
                         !t ? "trainer" : !kind ? "kind" : !first ? "first" : "count");
    if (t->ops != &clt__strategy_tensor)
        return clt__fail(CLT_ERR_UNSUPPORTED, "clt_trainer_tensor_slice: the trainer is %s, not "
                         "tensor parallel", t->ops->name);
    const tensor_state *s = t->state;
    if (layer < 0 || layer >= s->nlayers)
        return clt__fail(CLT_ERR_INVALID_ARG, "clt_trainer_tensor_slice: layer %d out of range (the "
                         "model has %d)", layer, s->nlayers);
    if (device < 0 || device >= s->n)
        return clt__fail(CLT_ERR_INVALID_ARG, "clt_trainer_tensor_slice: device %d out of range (the "
                         "runtime has %d)", device, s->n);
    int r = device % s->T;
    *kind = s->part[layer];
    *first = s->part[layer] == PART_REPL ? 0 : s->lo[layer * s->T + r];
    *count = s->part[layer] == PART_REPL ? (int)t->model->layers[layer].out_numel : s->len[layer * s->T + r];
    if (s->part[layer] == PART_ROW) *first = s->lo[layer * s->T + r];
    return CLT_OK;
}
