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
 * whose input gradient nobody needs). On a sequence (T, features) a Linear is one GEMM over
 * batch x T rows, so slicing its features slices every position alike. An attention block,
 * Linear(3C) (c_attn), causal attention, Linear(C) (c_proj), is a pair too, split by whole heads
 * (Megatron-LM's layout): rank r's heads' rows of Q, of K and of V, three pieces of c_attn's
 * output, lie side by side on the rank (Q_r|K_r|V_r: its copy of the weight is the rows
 * permuted, map_layer says where each came from), its attention layer runs on those heads
 * alone, and c_proj is row-parallel over their features. Every other layer is replicated: each rank computes it
 * from the same inputs, and after each update tensor rank 0's new parameters of it replace the
 * others' (on devices of different vendors its activations and gradients may differ by a few
 * ulps, its parameters never). Each rank runs its own sliced copy of the model (a
 * clt_model with narrower layers, so lib/layers.c needs no change) in one clt__net; the sliced
 * parameters' gradients are complete on their rank, the replicated ones identical everywhere.
 *
 * With several groups (tensor_group < devices), group g is devices g*T .. g*T+T-1, the batch is
 * split between groups, and rank r of every group all-reduces its whole gradient buffer with
 * rank r of the others (the slices match) before every rank updates all it holds; group 0's
 * new parameters and state then replace the other groups' (share_update).
 *
 * With a placement (clt_model_place naming groups, not devices), the groups are pipeline stages
 * instead: the runs of layers on one group are stages, each tensor-parallel inside its group (a
 * pair never crosses a stage), run by lib/pipeline.c's schedules with the group as the
 * schedule's device: every rank of a group interprets its group's instruction list, so the
 * group's all-reduces come in the same order everywhere. A stage's output and its input
 * gradient are the same bits on every rank of its group, so tensor rank r sends them to tensor
 * rank r of the next (previous) stage's group through its own lib/transfer.c link. Micro-batch
 * slots are the model strategy's (lib/strategy_model.c says why they suffice). */
#include "pipeline_exec.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


typedef struct {
    int T, G, n;                /* devices per group, groups, ranks; rank g*T + r is device g*T + r */
    int nlayers;
    clt_slice_kind *part;       /* per layer: what it is to tensor parallelism */
    int *lo, *len;              /* [l * T + r]: tensor rank r's feature slice of layer l */
    int *pieces;                /* per layer: 3 for an attention block's c_attn (the slice is of
                                   each of Q, K and V), else 1 */
    clt_model **local;          /* per tensor rank: the model with its slices' widths */
    clt__net **nets;            /* per rank */
    clt__comm **tcomm;          /* per group, its T ranks (NULL when T == 1) */
    clt__comm **dcomm;          /* the copies of a rank's slice (NULL without copies): per tensor
                                 * rank, its G groups; with stages, per group of a copy and
                                 * tensor rank (g * T + r), its P pipelines (copies_comm) */
    int ndcomm;
    size_t *counts;             /* per group: rows of the last step */
    double *seconds;            /* per rank: compute seconds of the last step */
    clt_collective_options copts;
    /* pipeline stages (a placement); S == 0 without one */
    int S;
    int used;                   /* groups up to the last one placed (the schedule's devices): a
                                 * copy of the pipeline; copy p on groups p * used .. */
    int P;                      /* copies of the pipeline (pipelines; 1 without stages) */
    int *layer_group;           /* per layer: its group (0 without a placement) */
    int *stage_first, *stage_last, *stage_group;   /* per stage */
    clt__pipe_stage *st;        /* st[q * S + k]: stage k on rank q */
    size_t mrows;               /* rows of the largest micro-batch */
    int round;                  /* forward only: micro-batches per run, the fewest slots */
    clt__xfer_group *xg;
    uint32_t tag;               /* numbers the pipeline runs, so links never mix two */
    clt__schedule **sched[2];   /* [train][p]: the last built */
} tensor_state;

static size_t out_numel(const clt_trainer *t) { return t->model->layers[t->model->nlayers - 1].out_numel; }

static bool elementwise(clt_layer_kind k)
{
    return k == CLT_LAYER_RELU || k == CLT_LAYER_LEAKY_RELU || k == CLT_LAYER_GELU ||
           k == CLT_LAYER_GELU_TANH || k == CLT_LAYER_TANH || k == CLT_LAYER_SIGMOID;
}

/* How many nets a rank may hold, and its k-th (NULL where it holds none). */
static int nstages(const tensor_state *s) { return s->S ? s->S : 1; }
static clt__net *rank_net(const tensor_state *s, int q, int k)
{
    return s->S ? s->st[q * s->S + k].net : s->nets[q];
}

/* The copy of the pipeline rank q works in (-1: its group is past the copies, idle), and its
 * group within the copy (the schedule's device). Without stages: copy 0, its group. */
static int copy_of(const tensor_state *s, int q) { return q / s->T < s->P * s->used ? q / s->T / s->used : -1; }
static int sgroup_of(const tensor_state *s, int q) { return (q / s->T) % s->used; }

/* Whether rank q holds layer l. */
static bool holds(const tensor_state *s, int q, int l)
{
    return !s->S || (copy_of(s, q) >= 0 && sgroup_of(s, q) == s->layer_group[l]);
}

/* The group of rank q's copies of what it holds (NULL: none). */
static clt__comm *copies_comm(const tensor_state *s, int q)
{
    if (!s->dcomm || copy_of(s, q) < 0) return NULL;
    return s->dcomm[s->S ? sgroup_of(s, q) * s->T + q % s->T : q % s->T];
}

/* ---- the plan: which layers split, and the slices --------------------------------------------- */

/* With a placement: every layer placed, on a group the runtime has; the stages are the runs of
 * layers on one group. Without one, every layer is in group 0 and S stays 0. */
static clt_status stages(tensor_state *s, const clt_model *m)
{
    int placed = 0, L = m->nlayers;
    for (int i = 0; i < L; i++) placed += m->layers[i].device >= 0;
    if (!placed) return CLT_OK;
    s->used = 0;
    for (int i = 0; i < L; i++) {
        const clt__layer *l = &m->layers[i];
        if (l->device < 0)
            return clt__fail(CLT_ERR_INVALID_ARG, "clt_trainer_create: layer %d (%s) is not placed: "
                             "with tensor parallelism a placement names tensor groups, and every "
                             "layer needs one (or place none)", i, clt__layer_kind_name(l->desc.kind));
        if (l->device >= s->G)
            return clt__fail(CLT_ERR_INVALID_ARG, "clt_trainer_create: layer %d (%s) is placed on "
                             "tensor group %d, but the runtime's %d devices in groups of %d "
                             "(tensor_group) make %d group%s", i, clt__layer_kind_name(l->desc.kind),
                             l->device, s->n, s->T, s->G, s->G == 1 ? "" : "s");
        s->layer_group[i] = l->device;
        s->S += i == 0 || l->device != m->layers[i - 1].device;
        if (l->device + 1 > s->used) s->used = l->device + 1;
    }
    s->stage_first = calloc((size_t)s->S, sizeof *s->stage_first);
    s->stage_last = calloc((size_t)s->S, sizeof *s->stage_last);
    s->stage_group = calloc((size_t)s->S, sizeof *s->stage_group);
    s->st = calloc((size_t)s->S * (size_t)s->n, sizeof *s->st);
    if (!s->stage_first || !s->stage_last || !s->stage_group || !s->st)
        return clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    for (int i = 0, k = -1; i < L; i++) {
        if (i == 0 || s->layer_group[i] != s->layer_group[i - 1]) {
            s->stage_first[++k] = i;
            s->stage_group[k] = s->layer_group[i];
        }
        s->stage_last[k] = i;
    }
    clt_status st = CLT_OK;   /* a residual block, or the tied embedding and head, in one stage */
    for (int k = 0; k < s->S && st == CLT_OK; k++)
        st = clt__model_check_range(m, s->stage_first[k], s->stage_last[k], "clt_trainer_create (tensor "
                                    "parallel placement)");
    return st;
}

/* len[r] = total * w_r / sum(w) by largest remainders (ties to the lower rank), lo[r] where it
 * starts; false when a slice would be empty (or out of host memory). */
static bool share(int total, const double *w, int T, int *lo, int *len)
{
    double sum = 0;
    for (int r = 0; r < T; r++) sum += w[r], lo[r] = len[r] = 0;
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
    bool full = true;
    for (int r = 0, at = 0; r < T; r++) {
        full &= len[r] >= 1;
        lo[r] = at;
        at += len[r];
    }
    return full;
}

/* An attention block's heads over the T ranks, in features (lo, len of its C): by the weights,
 * or where they would leave a rank without a head, one head each and the rest by the weights (a
 * rank with no heads would hold empty Linear slices, which the layers do not have). Fewer heads
 * than ranks is refused. */
static clt_status share_heads(const clt_model *m, int a, const double *w, int T, int *lo, int *len)
{
    const clt__layer *l = &m->layers[a];
    int H = l->desc.count, D = (int)l->out_feat / H;
    if (H < T)
        return clt__fail(CLT_ERR_UNSUPPORTED, "clt_trainer_create: layer %d (attention) has %d head%s for "
                         "the %d devices of a tensor group: every device needs a whole head (tensor_group "
                         "%d at most)", a, H, H == 1 ? "" : "s", T, H);
    if (!share(H, w, T, lo, len)) {
        share(H - T, w, T, lo, len);
        for (int r = 0, at = 0; r < T; r++) lo[r] = at, at += ++len[r];
    }
    for (int r = 0; r < T; r++) lo[r] *= D, len[r] *= D;
    return CLT_OK;
}

/* Pairs Linear layers greedily from the input: a Linear, elementwise layers, a Linear; or a
 * Linear, causal attention, a Linear (an attention block, split by heads). */
static clt_status plan(tensor_state *s, const clt_model *m, const double *w)
{
    int T = s->T;
    for (int i = 0; i < m->nlayers; i++) {
        s->part[i] = CLT_SLICE_REPLICATED;
        s->pieces[i] = 1;
        for (int r = 0; r < T; r++) s->lo[i * T + r] = 0, s->len[i * T + r] = (int)m->layers[i].out_feat;
    }
    int *lo = malloc((size_t)T * sizeof *lo), *len = malloc((size_t)T * sizeof *len);
    clt_status st = lo && len ? CLT_OK : clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    for (int i = 0; st == CLT_OK && T > 1 && i < m->nlayers; i++) {
        if (m->layers[i].desc.kind != CLT_LAYER_LINEAR) continue;
        int j = i + 1;
        bool attn = j < m->nlayers && m->layers[j].desc.kind == CLT_LAYER_ATTENTION;
        if (attn) j++;
        else
            while (j < m->nlayers && elementwise(m->layers[j].desc.kind)) j++;
        if (j >= m->nlayers || m->layers[j].desc.kind != CLT_LAYER_LINEAR) continue;
        bool one_stage = true;   /* a pair never crosses a stage boundary */
        for (int k = i; k <= j; k++) one_stage &= s->layer_group[k] == s->layer_group[i];
        if (!one_stage) continue;
        if (attn) {
            if ((st = share_heads(m, i + 1, w, T, lo, len)) != CLT_OK) break;
        } else if (!share((int)m->layers[i].out_feat, w, T, lo, len)) {
            continue;   /* too narrow for a slice on every device: stays replicated */
        }
        for (int k = i; k <= j; k++) {
            s->part[k] = k == i ? CLT_SLICE_COLUMN : k == j ? CLT_SLICE_ROW : CLT_SLICE_ELEMENTWISE;
            memcpy(&s->lo[k * T], lo, (size_t)T * sizeof *lo);
            memcpy(&s->len[k * T], len, (size_t)T * sizeof *len);
        }
        s->pieces[i] = attn ? 3 : 1;
        i = j;
    }
    free(lo), free(len);
    return st;
}

/* Tensor rank r's model: column layers with len outputs (of each piece), row layers with len
 * inputs (and the bias on rank 0 only), attention with its heads, the rest as they are. */
static clt_status local_model(const tensor_state *s, const clt_model *m, int r, clt_model **out)
{
    clt_model *lm;
    clt_status st = clt_model_create(&lm, m->input);
    for (int i = 0; i < m->nlayers && st == CLT_OK; i++) {
        clt_layer_desc d = m->layers[i].desc;
        const clt__layer *g = &m->layers[i];
        if (s->part[i] == CLT_SLICE_COLUMN) d.out = s->pieces[i] * s->len[i * s->T + r];
        if (s->part[i] == CLT_SLICE_ROW && r > 0) d.bias = 0;
        if (s->part[i] == CLT_SLICE_ELEMENTWISE && d.kind == CLT_LAYER_ATTENTION)
            d.count = s->len[i * s->T + r] / ((int)g->out_feat / d.count);
        st = clt_model_add(lm, d);
        if (st == CLT_OK && d.kind == CLT_LAYER_ATTENTION) {   /* dropout draws as the model's heads */
            lm->layers[i].head0 = s->lo[i * s->T + r] / ((int)g->out_feat / g->desc.count);
            lm->layers[i].heads_all = g->desc.count;
        }
    }
    if (st != CLT_OK) {
        clt_model_destroy(lm);
        return st;
    }
    *out = lm;
    return CLT_OK;
}

/* idx[k] = the element (weight then bias, within layer l's tensors) of local element k of
 * tensor rank r's copy of layer l. Returns the local count. A column layer's local output
 * feature f is piece f / len's feature lo + f % len (c_attn: Q_r|K_r|V_r from Q|K|V). */
static size_t map_layer(const tensor_state *s, const clt_model *m, int l, int r, size_t *idx)
{
    const clt__layer *g = &m->layers[l];
    const clt__layer *loc = &s->local[r]->layers[l];
    size_t n = loc->w_count + loc->b_count, in = g->in_feat, out = g->out_feat;
    size_t lo = (size_t)s->lo[l * s->T + r], len = (size_t)s->len[l * s->T + r];
    size_t width = out / (size_t)s->pieces[l], lw = loc->w_count;   /* a piece's features; local weights */
    for (size_t k = 0; k < n; k++) {
        switch (s->part[l]) {
        case CLT_SLICE_COLUMN: {
            size_t f = k < lw ? k / in : k - lw, gf = (f / len) * width + lo + f % len;
            idx[k] = k < lw ? gf * in + k % in : g->w_count + gf;
            break;
        }
        case CLT_SLICE_ROW:
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
    tensor_state *s = t->state;
    if (!count) return CLT_OK;
    clt__net *n = NULL;   /* the net (of the rank's stages) holding the range */
    for (int k = 0; k < nstages(s) && !n; k++) {
        clt__net *c = rank_net(s, rank, k);
        if (c && off >= c->param_base && off + count <= c->param_base + c->nparams) n = c;
    }
    CLT_ASSERT(n, CLT_ERR_STATE);
    off -= n->param_base;
    if (which >= 2) return clt__net_state_io(n, which - 2, n->nparams, off, count, host, write);
    return clt__buffer_io(&t->rt->workers[rank], which == 0 ? n->params : n->grads, off, count, host, write);
}

/* Layer l's whole tensors (weight then bias, the model's layout) from the ranks of its group
 * (group 0 without a placement). */
static clt_status gather_layer(clt_trainer *t, int l, int which, float *full, float *tmp, size_t *idx)
{
    tensor_state *s = t->state;
    clt_status st = CLT_OK;
    for (int r = 0; r < (s->part[l] == CLT_SLICE_REPLICATED ? 1 : s->T) && st == CLT_OK; r++) {
        size_t n = map_layer(s, t->model, l, r, idx);
        st = rank_io(t, s->layer_group[l] * s->T + r, which, s->local[r]->layers[l].param_off, n, tmp, 0);
        for (size_t k = 0; k < n && st == CLT_OK; k++) full[idx[k]] = tmp[k];
    }
    return st;
}

/* Layer l's whole tensors to every rank holding it, each its slice. */
static clt_status scatter_layer(clt_trainer *t, int l, int which, const float *full, float *tmp, size_t *idx)
{
    tensor_state *s = t->state;
    clt_status st = CLT_OK;
    for (int q = 0; q < s->n && st == CLT_OK; q++) {
        int r = q % s->T;
        if (!holds(s, q, l)) continue;
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
    clt__pipe_job pj;           /* with stages: the executor's part (user: this job) */
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
    double t0;                  /* with stages: when the compute being timed started */
} rank_job;

static int tensor_rank(const rank_job *j) { return j->rank % j->s->T; }
static int group_of(const rank_job *j) { return j->rank / j->s->T; }

/* Whether a pass stops after layer i: a row-parallel layer's output is all-reduced, and below a
 * column-parallel layer its input gradient is. */
static bool cut_after(const tensor_state *s, int i)
{
    return s->part[i] == CLT_SLICE_ROW || (i + 1 < s->nlayers && s->part[i + 1] == CLT_SLICE_COLUMN);
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

/* Forward of n's layers over rows [row, row + B) of its buffers, all-reducing the outputs of
 * row-parallel layers within the group. */
static clt_status span_forward(rank_job *j, clt__worker *w, clt__net *n, size_t row, size_t B, int training,
                               uint64_t seed, double *t0)
{
    tensor_state *s = j->s;
    clt_status st = CLT_OK;
    for (int i = n->first, a = n->first; i <= n->last && st == CLT_OK; i++) {
        if (!cut_after(s, i) && i < n->last) continue;
        st = clt__net_forward_span(n, a, i, row, B, training, seed);
        size_t C = n->m->layers[i].out_numel;
        if (st == CLT_OK && s->part[i] == CLT_SLICE_ROW) st = group_sum(j, w, clt__at(clt__net_act(n, i), row * C), B * C, t0);
        a = i + 1;
    }
    return st;
}

/* Backward of n's layers over rows [row, row + B) from dout, all-reducing the input gradient of
 * column-parallel layers; layer n->first's input gradient (computed above the model's first
 * layer only) goes to din_to when its mem is set. */
static clt_status span_backward(rank_job *j, clt__worker *w, clt__net *n, size_t row, size_t B, clt__view dout,
                                clt__view din_to, clt__bwd_part part, uint64_t seed, double *t0)
{
    tensor_state *s = j->s;
    clt__view din;
    clt_status st = CLT_OK;
    for (int i = n->last, last = n->last; i >= n->first && st == CLT_OK; i--) {
        if (i > n->first && !cut_after(s, i - 1)) continue;
        clt__view to = i == n->first ? din_to : (clt__view){NULL, 0};
        st = clt__net_backward_span_rows(n, i, last, row, B, dout, to, i > 0, &din, seed, part);
        if (st == CLT_OK && i > 0 && s->part[i] == CLT_SLICE_COLUMN)
            st = group_sum(j, w, din, B * n->m->layers[i].in_numel, t0);
        dout = din;
        last = i - 1;
    }
    return st;
}

/* Forward through every layer with the row-parallel all-reduces, then the loss when the batch
 * has labels or targets. x, labels and targets are NULL while warming up (already zeros). */
static clt_status rank_forward(rank_job *j, clt__worker *w, int training, int want_grad, double *t0)
{
    clt_trainer *t = j->t;
    clt__net *n = j->s->nets[j->rank];
    const clt__batch *b = j->b;
    size_t B = j->count;
    clt_status st = b ? clt__net_upload_rows(n, b, j->start, B) : CLT_OK;
    n->row0 = j->start;
    uint64_t seed = b ? clt__step_seed(t) : 0;
    if (st == CLT_OK) st = span_forward(j, w, n, 0, B, training, seed, t0);
    if (st == CLT_OK && (!b || b->labels || b->targets)) {
        float scale = b ? clt__loss_grad_scale(t, b->batch) : 1.0f;
        st = clt__net_loss(n, t->p.loss, B, scale, want_grad, &j->loss_sum, &j->correct);
    }
    return st;
}

/* Backward from the loss gradient, all-reducing the input gradient of column-parallel layers. */
static clt_status rank_backward(rank_job *j, clt__worker *w, double *t0)
{
    clt__net *n = j->s->nets[j->rank];
    uint64_t seed = j->b ? clt__step_seed(j->t) : 0;
    return span_backward(j, w, n, 0, j->count, (clt__view){n->gbuf[0], 0}, (clt__view){NULL, 0}, CLT__BWD_ALL, seed,
                         t0);
}

/* The sum of squares of the gradients of net n this rank alone holds: its slices, and on tensor
 * rank 0 the replicated layers too, so the group's ranks add up to n's layers once. */
static clt_status owned_sumsq(rank_job *j, clt__net *n, double *out)
{
    tensor_state *s = j->s;
    const clt_model *lm = n->m;
    int r = tensor_rank(j);
    *out = 0;
    size_t a = 0, b = 0;   /* the range being gathered, from n's first parameter */
    clt_status st = CLT_OK;
    for (int l = n->first; l <= n->last + 1 && st == CLT_OK; l++) {
        bool in = l <= n->last, own = in && (r == 0 || s->part[l] != CLT_SLICE_REPLICATED);
        size_t lo = in ? lm->layers[l].param_off - n->param_base : n->nparams;
        size_t cnt = in ? lm->layers[l].w_count + lm->layers[l].b_count : 0;
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

/* ---- a tensor group's stage (lib/pipeline_exec.c runs the instructions) ---------------------- */

/* Whether a tensor stage's backward splits into the input gradient and WGRAD: under zero bubble
 * only, which needs it. Under GPipe and 1F1B the model strategy splits too, but here the split's
 * copies of the output gradients (wsave) and its extra slot measured slower on the seed
 * placement (cltrain bench train, 0.59x one device against 0.70x whole), so they stay whole. */
static bool split_backward(const clt_trainer *t) { return t->p.pipeline == CLT_PIPELINE_ZB; }

static clt_status stage_forward(void *user, clt__worker *w, clt__net *n, size_t row, size_t count, int training,
                                uint64_t seed)
{
    rank_job *j = user;
    return span_forward(j, w, n, row, count, training, seed, &j->t0);
}

static clt_status stage_backward(void *user, clt__worker *w, clt__net *n, size_t row, size_t count, clt__view dout,
                                 clt__view din, clt__bwd_part part, uint64_t seed)
{
    rank_job *j = user;
    return span_backward(j, w, n, row, count, dout, din, part, seed, &j->t0);
}

static clt_status stage_sumsq(void *user, clt__net *n, double *out) { return owned_sumsq(user, n, out); }

/* A tensor rank's slice of a stage: its spans between the group's all-reduces. */
static const clt__stage_kind tensor_stage = {stage_forward, stage_backward, stage_sumsq};

/* Phase A with stages (and forward-only runs): the group's instruction list; with an update
 * coming, the copies of each of its stages sum their gradients (stage by stage, in the same
 * order on every copy), and copy 0's ranks their share of the sum of squares (every group's:
 * each holds its layers). */
static clt_status pipe_a_body(clt__worker *w, rank_job *j)
{
    clt_trainer *t = j->t;
    j->t0 = clt__now();
    j->seconds = 0;
    clt_status st = j->pj.train && j->first_micro ? clt__pipe_zero_grads(w, &j->pj) : CLT_OK;
    if (st == CLT_OK) st = clt__pipe_run(w, &j->pj);
    if (j->pj.sched) clt__worker_throttle(w, clt__now() - j->t0);
    j->seconds += clt__now() - j->t0;
    bool norm = (t->p.clip_norm > 0.0f || t->p.check_numerics) && copy_of(j->s, j->rank) == 0;
    if (st == CLT_OK && j->update) st = clt__pipe_reduce(w, &j->pj, norm, &j->s->copts, &j->sumsq);
    return st;
}

/* A rank that failed, or was stopped by a failure in one of its groups, stops both: a rank of
 * another group waiting for it across groups must not wait out the timeout. With stages, every
 * group and link stops: a rank of another stage may wait for this one's rows. */
static void abort_peers(rank_job *j, clt_status st)
{
    if (st == CLT_OK) return;
    tensor_state *s = j->s;
    int dev = j->rank;
    for (int g = 0; s->tcomm && g < s->G; g++)
        if (s->S || g == group_of(j)) clt__comm_abort(s->tcomm[g], dev, st, clt_last_error());
    for (int c = 0; s->dcomm && c < s->ndcomm; c++)
        if (s->S || s->dcomm[c] == copies_comm(s, dev)) clt__comm_abort(s->dcomm[c], dev, st, clt_last_error());
    if (s->xg) clt__xfer_group_abort(s->xg, dev, st, clt_last_error());
}

/* Phase A: forward and backward (gradients accumulate); with an update coming, the gradients
 * summed across groups and this rank's share of the sum of squares. */
static clt_status phase_a_body(clt__worker *w, rank_job *j)
{
    clt_trainer *t = j->t;
    tensor_state *s = j->s;
    if (s->S) return pipe_a_body(w, j);
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
        st = clt__comm_allreduce(copies_comm(s, j->rank), w, n->grads, 0, n->grads, 0, n->nparams, CLT_OP_SUM,
                                 &s->copts);
    if (s->dcomm) clt__worker_span(w, "all-reduce gradients across groups", t1, clt__now());
    if (st == CLT_OK && group_of(j) == 0 && (t->p.clip_norm > 0.0f || t->p.check_numerics))
        st = owned_sumsq(j, n, &j->sumsq);
    return st;
}

/* After the optimizer, what several ranks hold gets one rank's bits (clt__net_share_update):
 * the replicated layers, which every rank of the group holds (each computed their gradients
 * from its own activations, which devices of other vendors round differently), come from tensor
 * rank 0, then the whole net of group 0's rank r replaces rank r's of the other groups. In the
 * same order on every rank: the group's runs of layers from the first, then the groups. */
static clt_status share_update(rank_job *j, clt__net *n)
{
    tensor_state *s = j->s;
    clt_status st = CLT_OK;
    size_t a = 0, b = 0;   /* a run of shared parameters, from n's first: layers are contiguous */
    for (int l = n->first; s->tcomm && l <= n->last && st == CLT_OK; l++) {
        const clt__layer *L = &n->m->layers[l];
        size_t lo = L->param_off - n->param_base, hi = lo + L->w_count + L->b_count;
        if (s->part[l] != CLT_SLICE_COLUMN && s->part[l] != CLT_SLICE_ROW) {
            b = hi;   /* replicated, or elementwise without parameters */
            continue;
        }
        /* A slice is this rank's alone, a row-parallel layer's bias tensor rank 0's: the run
         * before it ends here on every rank (a slice's length differs between ranks). */
        st = clt__net_share_update(n, s->tcomm[group_of(j)], a, b - a, 0, &s->copts);
        a = b = hi;
    }
    if (st == CLT_OK && s->tcomm) st = clt__net_share_update(n, s->tcomm[group_of(j)], a, b - a, 0, &s->copts);
    if (st == CLT_OK && copies_comm(s, j->rank))
        st = clt__net_share_update(n, copies_comm(s, j->rank), 0, n->nparams, 0, &s->copts);
    return st;
}

/* Phase B: every rank updates all it holds (slices and replicated layers alike), then what
 * several ranks hold is made one version (share_update). */
static clt_status phase_b_body(clt__worker *w, rank_job *j)
{
    clt_trainer *t = j->t;
    tensor_state *s = j->s;
    double t0 = clt__now();
    clt_status st = CLT_OK;
    for (int k = 0; k < nstages(s) && st == CLT_OK; k++) {
        clt__net *n = rank_net(s, j->rank, k);
        if (!n) continue;
        st = clt__net_update_begin(n);   /* the update is all or nothing (tensor_step) */
        if (st == CLT_OK) st = clt__fault_point(w, CLT__FAULT_OPTIMIZER, 1, "the optimizer");
        if (st == CLT_OK)
            st = clt__net_optimizer_step(n, &t->p.optim, t->p.decay, j->lr, t->steps + 1, j->gscale, 0, n->nparams,
                                         (clt__view){n->grads, 0});
        if (st == CLT_OK) st = share_update(j, n);
    }
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
    for (int c = 0; s->dcomm && c < s->ndcomm; c++) clt__comm_reset(s->dcomm[c]);
    if (s->xg) clt__xfer_group_reset(s->xg);
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
        jobs[q] = (rank_job){.t = t, .s = s, .rank = q, .b = b, .start = start, .count = counts[g],
                             .first_micro = t->micro == 0, .gscale = 1.0f, .comm = true};
    }
    *out = jobs;
    return CLT_OK;
}

/* With stages: one run of the pipelines over micro-batches [m0, m0 + mcap) of their shares
 * (clt__pipe_shares); *more says whether some come after. *rows holds the shares (the caller
 * frees it with the jobs). */
static clt_status pipe_jobs(clt_trainer *t, const clt__batch *b, int train, size_t m0, size_t mcap,
                            rank_job **out, clt__pipe_share **rows_out, bool *more)
{
    tensor_state *s = t->state;
    rank_job *jobs = calloc((size_t)s->n, sizeof *jobs);
    clt__pipe_share *sh = NULL;
    clt_status st = clt__pipe_shares(b->batch, s->P, t->p.micro_batches, m0, mcap, &sh, more);
    *out = jobs, *rows_out = sh;
    if (st == CLT_OK && !jobs) st = clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    bool split = split_backward(t);
    uint32_t tag = ++s->tag;
    for (int q = 0; q < s->n && st == CLT_OK; q++) {
        int p = copy_of(s, q);
        const clt__schedule *sched = NULL;
        if (p >= 0 && sh[p].M)
            st = clt__schedule_cached(&s->sched[train ? 1 : 0][p], t->p.pipeline, s->S, s->stage_group, s->used,
                                      sh[p].M, train, split, &sched);
        size_t rows = p >= 0 ? sh[p].rows : 0;
        if (train) s->counts[q / s->T] = rows;   /* the step's split */
        jobs[q] = (rank_job){.t = t, .s = s, .rank = q, .b = b, .count = rows, .first_micro = t->micro == 0,
                             .gscale = 1.0f, .comm = true};
        jobs[q].pj = (clt__pipe_job){.kind = &tensor_stage, .user = &jobs[q], .st = &s->st[q * s->S], .S = s->S,
                                     .sched = sched, .sdev = sgroup_of(s, q), .b = b, .share = p >= 0 ? sh[p] : sh[0],
                                     .mrows = s->mrows, .tag = tag, .train = train, .split = split,
                                     .loss = t->p.loss, .loss_scale = clt__loss_grad_scale(t, b->batch),
                                     .seed = clt__step_seed(t), .read_out = q % s->T == 0};
    }
    return st;
}

/* With verify_replicas: what should be the same bits is. Every layer a rank holds equals the
 * same layer on group 0's rank of its slice (replicated layers: on device 0), and the last
 * step's outputs on every rank of a group equal its first rank's where both devices are one
 * implementation. */
static clt_status verify(clt_trainer *t, tensor_state *s)
{
    size_t most = 1, C = out_numel(t);
    for (int q = 0; q < s->n; q++) {
        size_t np = s->local[q % s->T]->nparams, rows = s->counts[q / s->T] * C;
        if (np > most) most = np;
        if (rows > most) most = rows;
    }
    float *ref = malloc(most * sizeof *ref), *got = malloc(most * sizeof *got);
    clt_status st = ref && got ? CLT_OK : clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    for (int q = 1; q < s->n && st == CLT_OK; q++) {
        const clt_model *lm = s->local[q % s->T];
        for (int l = 0; l < lm->nlayers && st == CLT_OK; l++) {
            int from = s->layer_group[l] * s->T + (s->part[l] == CLT_SLICE_REPLICATED ? 0 : q % s->T);
            size_t off = lm->layers[l].param_off, cnt = lm->layers[l].w_count + lm->layers[l].b_count;
            if (from == q || !cnt || !holds(s, q, l)) continue;
            st = rank_io(t, from, 0, s->local[from % s->T]->layers[l].param_off, cnt, ref, 0);
            if (st == CLT_OK) st = rank_io(t, q, 0, off, cnt, got, 0);
            for (size_t i = 0; i < cnt && st == CLT_OK; i++)
                if (memcmp(&ref[i], &got[i], sizeof(float)))
                    st = clt__fail(CLT_ERR_STATE, "replica check after step %ld: layer %d's parameter "
                                   "%zu (of this device's copy) is %.9g on device %d, %.9g on device %d",
                                   t->steps + 1, l, i, (double)got[i], q, (double)ref[i], from);
        }
        size_t rows = s->counts[q / s->T] * C;
        int first = q - q % s->T;
        /* stages: outputs are in slots; a replicated layer's outputs are the same bits on one
         * implementation only (the parameters are on any: share_update) */
        if (st != CLT_OK || q == first || !rows || s->S ||
            !clt__device_same_impl(t->rt->workers[q].dev, t->rt->workers[first].dev))
            continue;
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

/* After a successful update on every rank: every net's new parameters and state swapped in. */
static void commit_all(tensor_state *s)
{
    for (int q = 0; q < s->n; q++)
        for (int i = 0; i < nstages(s); i++)
            if (rank_net(s, q, i)) clt__net_commit(rank_net(s, q, i));
}

/* After a failed update: every net of every rank keeps the last good step. */
static void undo_all(clt_trainer *t, tensor_state *s)
{
    int cap = s->n * nstages(s), k = 0;
    int *devs = malloc((size_t)cap * sizeof *devs);
    clt__net **nets = malloc((size_t)cap * sizeof *nets);
    for (int q = 0; devs && nets && q < s->n; q++)
        for (int i = 0; i < nstages(s); i++)
            if (rank_net(s, q, i)) devs[k] = q, nets[k++] = rank_net(s, q, i);
    if (devs && nets) clt__nets_undo(t->rt, devs, nets, k);
    free(devs), free(nets);
}

static clt_status tensor_step(clt_trainer *t, const clt__batch *b, int update, float lr, double *loss,
                              size_t *correct)
{
    tensor_state *s = t->state;
    rank_job *jobs;
    clt__pipe_share *rows = NULL;
    bool more;
    clt_status st = s->S ? pipe_jobs(t, b, 1, 0, (size_t)t->p.micro_batches, &jobs, &rows, &more)
                         : make_jobs(t, b, s->counts, &jobs);
    if (st != CLT_OK) {
        free(jobs), free(rows);
        return st;
    }
    for (int q = 0; q < s->n; q++) jobs[q].update = update, jobs[q].lr = lr;
    st = run_ranks(t, s, phase_a, jobs);
    double loss_sum = 0, sumsq = 0;
    *correct = 0;
    for (int q = 0; q < s->n; q++) {
        if (q % s->T) continue;   /* the group's ranks computed the same loss */
        loss_sum += s->S ? jobs[q].pj.loss_sum : jobs[q].loss_sum;
        *correct += s->S ? jobs[q].pj.correct : jobs[q].correct;
    }
    for (int q = 0; q < s->n; q++) sumsq += jobs[q].sumsq;   /* group 0's, or every stage's */
    *loss = clt__loss_mean(t, loss_sum, b->batch);
    if (st == CLT_OK && t->p.check_numerics && !isfinite(*loss))
        st = clt__grad_scale(t, *loss, 0, &jobs[0].gscale);   /* says which: the loss */
    if (st == CLT_OK && update) {
        float gscale;
        st = clt__grad_scale(t, *loss, sumsq, &gscale);
        for (int q = 0; q < s->n; q++) jobs[q].gscale = gscale;
        if (st == CLT_OK) st = run_ranks(t, s, phase_b, jobs);
        if (st != CLT_OK && st != CLT_ERR_NUMERIC) undo_all(t, s);
        if (st == CLT_OK) commit_all(s);
        if (st == CLT_OK && t->p.verify_replicas && s->n > 1) st = verify(t, s);
    }
    if (st == CLT_OK)
        for (int q = 0; q < s->n; q++) s->seconds[q] = jobs[q].count ? jobs[q].seconds : 0.0;
    free(jobs), free(rows);
    return st;
}

/* With stages: in runs of s->round micro-batches, at most the fewest slots of a stage (a
 * forward-only run has no backwards to order the reuse of a slot); each rank's loss sum carries
 * on from run to run. */
static clt_status pipe_forward(clt_trainer *t, const clt__batch *b, float *out, double *loss_sum)
{
    tensor_state *s = t->state;
    double *sums = calloc((size_t)s->n, sizeof *sums);
    clt_status st = sums ? CLT_OK : clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    bool more = true;
    for (size_t m0 = 0; more && st == CLT_OK; m0 += (size_t)s->round) {
        rank_job *jobs;
        clt__pipe_share *rows;
        st = pipe_jobs(t, b, 0, m0, (size_t)s->round, &jobs, &rows, &more);
        for (int q = 0; q < s->n && st == CLT_OK; q++) jobs[q].pj.out = out, jobs[q].pj.loss_sum = sums[q];
        if (st == CLT_OK) st = run_ranks(t, s, phase_a, jobs);
        for (int q = 0; jobs && q < s->n && st == CLT_OK; q++) sums[q] = jobs[q].pj.loss_sum;
        free(jobs), free(rows);
    }
    *loss_sum = 0;
    for (int q = 0; sums && q < s->n; q += s->T) *loss_sum += sums[q];
    free(sums);
    return st;
}

static clt_status tensor_forward(clt_trainer *t, const clt__batch *b, float *out, double *loss_sum)
{
    tensor_state *s = t->state;
    if (s->S) return pipe_forward(t, b, out, loss_sum);
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

/* CLT_SPLIT_AUTO: warm-up steps timed per device, the fastest counting. */
#define MEASURE_PASSES 3

typedef struct {
    clt_trainer *t;
    int rank;
    const float *init;
    bool measure;           /* CLT_SPLIT_AUTO: time MEASURE_PASSES more warm-up steps */
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
    rank_job j = {.t = t, .s = s, .rank = rank, .count = rows, .first_micro = 1, .gscale = 1.0f};
    double t0 = clt__now(), unused;
    clt_status st = clt__net_zero_batch(n, rows);
    if (st == CLT_OK) st = rank_forward(&j, w, 1, 1, &t0);
    if (st == CLT_OK) st = rank_backward(&j, w, &t0);
    if (st == CLT_OK) st = clt__zero(w, (clt__view){n->grads, 0}, n->padded);
    if (st == CLT_OK) st = owned_sumsq(&j, n, &unused);
    if (st == CLT_OK) st = clt__net_warm_optimizer(n, &t->p.optim, 0, n->nparams);
    return st;
}

/* With stages: rank q's nets, one per stage of its group, and the buffers the pipeline adds. */
static clt_status make_stages(clt__worker *w, clt_trainer *t, int q)
{
    tensor_state *s = t->state;
    const clt_model *lm = s->local[q % s->T];
    clt_status st = CLT_OK;
    for (int k = 0; k < s->S && st == CLT_OK; k++) {
        clt__pipe_stage *x = &s->st[q * s->S + k];
        int first = s->stage_first[k], last = s->stage_last[k];
        x->dev = q;
        if (copy_of(s, q) < 0 || s->stage_group[k] != sgroup_of(s, q)) continue;
        x->in = lm->layers[first].in_numel, x->out = lm->layers[last].out_numel;
        st = clt__net_create(w, lm, first, last, (size_t)x->slots * s->mrows, 1, &x->net);
        if (st == CLT_OK)
            st = clt__pipe_stage_buffers(w, x, k == 0, k == s->S - 1, s->mrows, split_backward(t));
    }
    return st;
}

/* warm_up for stage k on rank q: a micro-batch of zeros through the stage alone. */
static clt_status stage_warm_up(clt__worker *w, clt_trainer *t, int q, int k)
{
    tensor_state *s = t->state;
    clt__pipe_stage *x = &s->st[q * s->S + k];
    clt__net *n = x->net;
    rank_job j = {.t = t, .s = s, .rank = q, .gscale = 1.0f};   /* comm false: no all-reduces */
    double unused;
    clt_status st = clt__pipe_warm_up(w, &tensor_stage, &j, x, k == 0, k == s->S - 1, s->mrows,
                                      split_backward(t), t->p.loss);
    if (st == CLT_OK) st = owned_sumsq(&j, n, &unused);
    if (st == CLT_OK) st = clt__net_warm_optimizer(n, &t->p.optim, 0, n->nparams);
    return st;
}

/* Every stage of the rank warmed up; with `measure`, timed MEASURE_PASSES times more into
 * j->seconds (see create_rank). */
static clt_status warm_stages(clt__worker *w, create_job *j)
{
    tensor_state *s = j->t->state;
    clt_status st = CLT_OK;
    for (int pass = 0; pass <= (j->measure ? MEASURE_PASSES : 0) && st == CLT_OK; pass++) {
        double t0 = clt__now();
        size_t rows = 0;
        for (int k = 0; k < s->S && st == CLT_OK; k++)
            if (rank_net(s, j->rank, k)) st = stage_warm_up(w, j->t, j->rank, k), rows += s->mrows;
        if (pass) clt__worker_throttle(w, clt__now() - t0);
        double e = clt__worker_seconds(w, clt__now() - t0, rows);
        if (pass && (pass == 1 || e < j->seconds)) j->seconds = e;
    }
    return st;
}

static clt_status create_rank(clt__worker *w, void *arg)
{
    create_job *j = arg;
    clt_trainer *t = j->t;
    tensor_state *s = t->state;
    int r = j->rank % s->T;
    const clt_model *lm = s->local[r];
    clt__net *n = NULL;
    clt_status st = s->S ? make_stages(w, t, j->rank) : clt__net_create(w, lm, 0, lm->nlayers - 1, t->p.max_batch, 1, &n);
    if (st != CLT_OK) return st;
    if (!s->S) s->nets[j->rank] = n;
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
    for (int k = 0; k < nstages(s) && st == CLT_OK; k++) {   /* each net its range */
        clt__net *c = rank_net(s, j->rank, k);
        if (!c || !c->nparams) continue;
        cl_int err = clEnqueueWriteBuffer(w->queue, c->params, CL_TRUE, 0, c->nparams * sizeof(float),
                                          mine + c->param_base, 0, NULL, NULL);
        if (err != CL_SUCCESS) st = clt__fail_cl(err, clt__worker_name(w), "uploading the parameters");
    }
    free(mine), free(idx);
    if (s->S) return st == CLT_OK ? warm_stages(w, j) : st;
    size_t per_group = (t->p.max_batch + (size_t)s->G - 1) / (size_t)s->G;
    if (st == CLT_OK) st = warm_up(w, t, j->rank, t->p.max_batch);
    if (st == CLT_OK && per_group != t->p.max_batch) st = warm_up(w, t, j->rank, per_group);
    /* compiled by now: this is the device's speed, the fastest of a few steps (the one least
     * disturbed by whatever else the machine runs) */
    for (int pass = 0; pass < (j->measure ? MEASURE_PASSES : 0) && st == CLT_OK; pass++) {
        double t0 = clt__now();
        st = warm_up(w, t, j->rank, per_group);
        clt__worker_throttle(w, clt__now() - t0);
        double e = clt__worker_seconds(w, clt__now() - t0, per_group);
        if (!pass || e < j->seconds) j->seconds = e;
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
    for (int i = 0; s->st && i < s->n * s->S; i++) {
        clt__pipe_stage *x = &s->st[i];
        clt__pipe_unlink(x);
        if (x->net || x->gin || x->gout) clt__worker_call(&t->rt->workers[i / s->S], clt__pipe_stage_free, x);
    }
    for (int r = 0; s->local && r < s->T; r++) clt_model_destroy(s->local[r]), s->local[r] = NULL;
    if (s->nets) memset(s->nets, 0, (size_t)s->n * sizeof *s->nets);
}

static void tensor_destroy(clt_trainer *t)
{
    tensor_state *s = t->state;
    if (!s) return;
    for (int g = 0; s->tcomm && g < s->G; g++) clt__comm_destroy(s->tcomm[g]);
    for (int c = 0; s->dcomm && c < s->ndcomm; c++) clt__comm_destroy(s->dcomm[c]);
    free_ranks(t);
    clt__xfer_group_destroy(s->xg);
    for (int i = 0; i < 2; i++) {
        for (int p = 0; s->sched[i] && p < s->P; p++) clt__schedule_free(s->sched[i][p]);
        free(s->sched[i]);
    }
    free(s->tcomm), free(s->dcomm), free(s->nets), free(s->local);
    free(s->part), free(s->lo), free(s->len), free(s->pieces), free(s->counts), free(s->seconds);
    free(s->layer_group), free(s->stage_first), free(s->stage_last), free(s->stage_group), free(s->st);
    free(s);
    t->state = NULL;
}

/* With stages: in each copy, tensor rank r of each stage's group to tensor rank r of the next,
 * activations forward and their gradients back, each link with room for a copy's share. */
static clt_status make_links(clt_trainer *t, tensor_state *s)
{
    size_t rows = (t->p.max_batch + (size_t)s->P - 1) / (size_t)s->P;   /* a copy's share */
    clt_status st = clt__xfer_group_create(&s->xg, 0);
    for (int p = 0; p < s->P && st == CLT_OK; p++)
        for (int k = 0; k + 1 < s->S && st == CLT_OK; k++)
            for (int r = 0; r < s->T && st == CLT_OK; r++) {
                int qa = (p * s->used + s->stage_group[k]) * s->T + r;
                int qb = (p * s->used + s->stage_group[k + 1]) * s->T + r;
                st = clt__pipe_link(&s->st[qa * s->S + k], &s->st[qb * s->S + k + 1], s->xg, &t->rt->workers[qa],
                                    &t->rt->workers[qb], rows);
            }
    return st;
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
    s->pieces = calloc((size_t)L, sizeof *s->pieces);
    s->local = calloc((size_t)T, sizeof *s->local);
    s->nets = calloc((size_t)s->n, sizeof *s->nets);
    s->counts = calloc((size_t)s->G, sizeof *s->counts);
    s->seconds = calloc((size_t)s->n, sizeof *s->seconds);
    s->layer_group = calloc((size_t)L, sizeof *s->layer_group);
    s->used = s->G;
    double *w = calloc((size_t)T, sizeof *w), *secs = calloc((size_t)s->n, sizeof *secs);
    if (!s->part || !s->lo || !s->len || !s->pieces || !s->local || !s->nets || !s->counts || !s->seconds || !s->layer_group ||
        !w || !secs) {
        free(w), free(secs);
        return clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    }
    clt_status st = stages(s, m);
    s->P = s->S ? t->p.pipelines : 1;
    if (st == CLT_OK && s->P * s->used > s->G)
        st = clt__fail(CLT_ERR_INVALID_ARG, "clt_trainer_create: %d copies of a placement on tensor groups 0..%d "
                       "need %d groups, but the runtime's %d devices in groups of %d (tensor_group) make %d",
                       s->P, s->used - 1, s->P * s->used, s->n, s->T, s->G);
    if (st == CLT_OK && s->S) {
        s->sched[0] = calloc((size_t)s->P, sizeof *s->sched[0]);
        s->sched[1] = calloc((size_t)s->P, sizeof *s->sched[1]);
        if (!s->sched[0] || !s->sched[1]) st = clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    }
    if (st != CLT_OK) {
        free(w), free(secs);
        return st;
    }
    if (s->S) {   /* the model strategy's slots, the same on every rank (lib/strategy_model.c) */
        int M = t->p.micro_batches, S = s->S;
        size_t rows = (t->p.max_batch + (size_t)s->P - 1) / (size_t)s->P;   /* a copy's share */
        s->mrows = (rows + (size_t)M - 1) / (size_t)M;
        s->round = M;
        for (int k = 0; k < S; k++) {
            int slots, gslots;
            clt__pipeline_slots(t->p.pipeline, S, k, M, split_backward(t), &slots, &gslots);
            for (int q = 0; q < s->n; q++) s->st[q * S + k].slots = slots, s->st[q * S + k].gslots = gslots;
            if (slots < s->round) s->round = slots;
        }
    }
    for (int r = 0; r < T; r++)
        w[r] = t->p.tensor_split == CLT_SPLIT_WEIGHTS ? (double)t->p.tensor_split_weights[r] : 1.0;
    s->copts = clt_collective_options_default();
    bool measure = t->p.tensor_split == CLT_SPLIT_AUTO && T > 1;
    st = build_ranks(t, init, w, measure, secs);
    if (st == CLT_OK && measure) {
        /* CLT_SPLIT_AUTO: slices in proportion to each device's speed on equal slices (tensor
         * rank r's mean over the groups, so that every group slices alike), measured once */
        int *old = malloc((size_t)L * (size_t)T * sizeof *old);
        if (!old) st = clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
        for (int r = 0; r < T && st == CLT_OK; r++) {
            double sum = 0;
            int timed = 0;   /* with stages, the groups holding one */
            for (int g = 0; g < s->G; g++) sum += secs[g * T + r], timed += secs[g * T + r] > 0;
            w[r] = sum > 0 ? (double)timed / sum : 1.0;
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
    /* the copies of each slice: of the whole net in every group, or of each group's stages in
     * every copy of the pipeline */
    int copies = s->S ? s->P : s->G;
    if (st == CLT_OK && copies > 1) {
        s->ndcomm = s->S ? s->used * T : T;
        if (!(s->dcomm = calloc((size_t)s->ndcomm, sizeof *s->dcomm)))
            return clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
        int *devs = malloc((size_t)s->n * sizeof *devs);
        if (!devs) return clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
        for (int c = 0; c < s->ndcomm && st == CLT_OK; c++) {
            for (int i = 0; i < copies; i++) devs[i] = s->S ? (i * s->used + c / T) * T + c % T : i * T + c;
            st = clt__comm_create_group(&s->dcomm[c], t->rt, devs, copies);
        }
        free(devs);
        for (int i = 0; i < s->n * s->S; i++) s->st[i].copies = copies_comm(s, i / s->S);
    }
    if (st == CLT_OK && s->S) st = make_links(t, s);
    if (st == CLT_OK && clt__log_enabled(CLT_LOG_INFO)) {
        for (int l = 0; l < L; l++)
            if (s->part[l] != CLT_SLICE_REPLICATED)
                clt__log(CLT_LOG_INFO, "tensor parallel: layer %d %s-parallel over %d devices, "
                         "tensor rank 0 has %d features", l, s->part[l] == CLT_SLICE_COLUMN ? "column" : "row",
                         T, s->len[l * T]);
        for (int k = 0; k < s->S; k++)
            clt__log(CLT_LOG_INFO, "tensor parallel: stage %d: layers %d..%d on group %d (devices %d..%d), "
                     "%s schedule, %d micro-batch%s", k, s->stage_first[k], s->stage_last[k], s->stage_group[k],
                     s->stage_group[k] * T, s->stage_group[k] * T + T - 1,
                     clt_pipeline_schedule_name(t->p.pipeline), t->p.micro_batches,
                     t->p.micro_batches == 1 ? "" : "es");
        if (s->P > 1)
            clt__log(CLT_LOG_INFO, "tensor parallel: %d copies of the pipeline, copy p on groups p * %d ..", s->P,
                     s->used);
    }
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

clt_status clt_trainer_tensor_slice(const clt_trainer *t, int layer, int device, clt_slice_kind *kind,
                                    int *first, int *count)
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
    *first = s->part[layer] == CLT_SLICE_REPLICATED ? 0 : s->lo[layer * s->T + r];
    *count = s->part[layer] == CLT_SLICE_REPLICATED ? (int)t->model->layers[layer].out_feat : s->len[layer * s->T + r];
    if (s->part[layer] == CLT_SLICE_ROW) *first = s->lo[layer * s->T + r];
    return CLT_OK;
}
