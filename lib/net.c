/* One device's share of a model: layers [first, last], their flat parameter, gradient and
 * optimizer buffers, activations, and the loss when the range ends the model. The strategies
 * (one device, data parallel, model parallel) are all built from these. */
#include "internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SUMSQ_PER 4096   /* elements per partial sum of squares */

void clt__net_destroy(clt__net *n)
{
    if (!n) return;
    if (n->w) n->w->activation_bytes -= n->act_bytes;
    cl_mem *all[] = {&n->params, &n->grads, &n->opt[0], &n->opt[1], &n->params_next,
                     &n->opt_next[0], &n->opt_next[1], &n->input, &n->saved,
                     &n->gbuf[0], &n->gbuf[1], &n->scratch, &n->labels, &n->targets,
                     &n->loss_rows, &n->partial, &n->wsave, &n->tie_w, &n->tie_g};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (*all[i]) clReleaseMemObject(*all[i]);
    if (n->acts)
        for (int i = 0; i <= n->last - n->first; i++)
            if (n->acts[i]) clReleaseMemObject(n->acts[i]);
    free(n->acts);
    free(n->saved_off);
    free(n->host_rows);
    free(n);
}

clt_status clt__net_create(clt__worker *w, const clt_model *m, int first, int last,
                           size_t max_batch, size_t pad_multiple, clt__net **out)
{
    CLT_ASSERT(first >= 0 && last < m->nlayers && first <= last && max_batch > 0 && pad_multiple > 0,
               CLT_ERR_STATE);
    *out = NULL;
    clt__net *n = calloc(1, sizeof *n);
    int count = last - first + 1;
    if (!n || !(n->acts = calloc((size_t)count, sizeof *n->acts)) ||
        !(n->saved_off = calloc((size_t)count + 1, sizeof *n->saved_off)) ||
        !(n->host_rows = calloc(2 * max_batch * clt__model_positions(m) + SUMSQ_PER, sizeof *n->host_rows))) {
        clt__net_destroy(n);
        return clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    }
    n->w = w;
    n->m = m;
    n->first = first;
    n->last = last;
    n->max_batch = max_batch;
    const clt__layer *L = m->layers;
    n->param_base = L[first].param_off;
    n->nparams = L[last].param_off + L[last].w_count + L[last].b_count - n->param_base;
    n->padded = (n->nparams + pad_multiple - 1) / pad_multiple * pad_multiple;

    size_t gmax = L[first].in_numel, scratch = 0;
    for (int i = first; i <= last; i++) {
        n->saved_off[i - first + 1] = n->saved_off[i - first] + L[i].saved_per_sample * max_batch;
        if (L[i].out_numel > gmax) gmax = L[i].out_numel;
        size_t s = clt__layer_scratch(&L[i], max_batch);
        if (s > scratch) scratch = s;
    }
    n->gbuf_cap = gmax * max_batch;
    size_t out_numel = L[last].out_numel;
    n->npartial = (n->padded + SUMSQ_PER - 1) / SUMSQ_PER;

    clt_status st = clt__alloc(w, n->padded, "parameters", &n->params);
    if (st == CLT_OK) st = clt__alloc(w, n->padded, "gradients", &n->grads);
    if (st == CLT_OK) st = clt__alloc(w, L[first].in_numel * max_batch, "the input batch", &n->input);
    for (int i = 0; i < count && st == CLT_OK; i++)
        st = clt__alloc(w, L[first + i].out_numel * max_batch, "activations", &n->acts[i]);
    if (st == CLT_OK) st = clt__alloc(w, n->saved_off[count], "saved state", &n->saved);
    if (st == CLT_OK) st = clt__alloc(w, n->gbuf_cap, "activation gradients", &n->gbuf[0]);
    if (st == CLT_OK) st = clt__alloc(w, n->gbuf_cap, "activation gradients", &n->gbuf[1]);
    if (st == CLT_OK) st = clt__alloc(w, scratch, "workspace", &n->scratch);
    size_t rows = max_batch * clt__model_positions(m);   /* a label per position */
    if (st == CLT_OK) st = clt__alloc(w, rows, "labels", &n->labels);   /* int32 = 4 bytes */
    if (st == CLT_OK) st = clt__alloc(w, out_numel * max_batch, "targets", &n->targets);
    if (st == CLT_OK) st = clt__alloc(w, 2 * rows, "losses", &n->loss_rows);
    if (st == CLT_OK) st = clt__alloc(w, n->npartial, "partial sums", &n->partial);
    if (st == CLT_OK) st = clt__zero(w, (clt__view){n->grads, 0}, n->padded);
    if (st == CLT_OK) st = clt__zero(w, (clt__view){n->params, 0}, n->padded);
    for (int i = first; i <= last && st == CLT_OK && !n->tie_w; i++) {
        if (L[i].desc.kind != CLT_LAYER_LM_HEAD || L[i].tie < 0 || L[i].tie >= first) continue;
        n->tie_count = L[L[i].tie].w_count;
        st = clt__alloc(w, n->tie_count, "the tied head's copy of the embedding", &n->tie_w);
        if (st == CLT_OK) st = clt__alloc(w, n->tie_count, "the tied head's gradient", &n->tie_g);
        if (st == CLT_OK) st = clt__zero(w, (clt__view){n->tie_w, 0}, n->tie_count);
        if (st == CLT_OK) st = clt__zero(w, (clt__view){n->tie_g, 0}, n->tie_count);
    }
    if (st != CLT_OK) {
        clt__net_destroy(n);
        return st;
    }
    size_t floats = L[first].in_numel * max_batch + n->saved_off[count] + 2 * n->gbuf_cap;
    for (int i = first; i <= last; i++) floats += L[i].out_numel * max_batch;
    w->activation_bytes += n->act_bytes = sizeof(float) * (uint64_t)floats;
    *out = n;
    return CLT_OK;
}

clt__view clt__net_output(const clt__net *n) { return (clt__view){n->acts[n->last - n->first], 0}; }

/* The io block of layer i (model index) for rows [row, row + batch) of the buffers. */
static clt__layer_io io_of(clt__net *n, int i, size_t row, size_t batch, int training, uint64_t seed)
{
    const clt__layer *l = &n->m->layers[i];
    int k = i - n->first;
    clt__layer_io io;
    memset(&io, 0, sizeof io);
    io.w = n->w;
    io.batch = batch;
    io.training = training;
    /* Dropout hashes (seed, element index in the whole batch): row0 places a data-parallel
     * rank's rows in the global batch, `row` a micro-batch's rows within this call. */
    io.seed = seed ^ (0xD1B54A32D192ED03ull * (uint64_t)(i + 1));
    io.row0 = n->row0 + row;
    io.in = (clt__view){k ? n->acts[k - 1] : n->input, row * l->in_numel};
    io.out = (clt__view){n->acts[k], row * l->out_numel};
    io.params = (clt__view){n->params, clt__layer_param_off(n->m, l) - n->param_base};
    io.grads = (clt__view){n->grads, clt__layer_param_off(n->m, l) - n->param_base};
    if (l->desc.kind == CLT_LAYER_LM_HEAD && n->tie_w)   /* its embedding is another stage's */
        io.params = (clt__view){n->tie_w, 0}, io.grads = (clt__view){n->tie_g, 0};
    /* a tied embedding adds to what its head (later in the model, so earlier in backward) wrote */
    io.grads_fresh = n->grads_fresh && !(l->desc.kind == CLT_LAYER_EMBEDDING && l->tie >= 0 && l->tie <= n->last);
    io.saved = (clt__view){n->saved, n->saved_off[k] + row * l->saved_per_sample};
    if (l->desc.kind == CLT_LAYER_RESIDUAL_END)   /* the block's input: its begin's copy */
        io.skip = (clt__view){n->acts[l->pair - n->first], row * l->in_numel};
    if (l->desc.kind == CLT_LAYER_RESIDUAL_BEGIN)   /* backward: what the end kept for it */
        io.skip = (clt__view){n->saved, n->saved_off[l->pair - n->first] + row * l->out_numel};
    io.scratch = (clt__view){n->scratch, 0};
    return io;
}

clt_status clt__net_forward(clt__net *n, size_t batch, int training, uint64_t seed)
{
    return clt__net_forward_rows(n, 0, batch, training, seed);
}

clt_status clt__net_forward_rows(clt__net *n, size_t row, size_t batch, int training, uint64_t seed)
{
    return clt__net_forward_span(n, n->first, n->last, row, batch, training, seed);
}

clt_status clt__net_forward_span(clt__net *n, int first, int last, size_t row, size_t batch,
                                 int training, uint64_t seed)
{
    CLT_ASSERT(row + batch <= n->max_batch && first >= n->first && last <= n->last, CLT_ERR_STATE);
    for (int i = first; i <= last; i++) {
        clt__layer_io io = io_of(n, i, row, batch, training, seed);
        const clt__layer *l = &n->m->layers[i];
        /* Linear then ReLU: one pass writes both outputs where the SGEMM can (both are kept:
         * ReLU's backward reads its input) */
        if (i < n->last && l->desc.kind == CLT_LAYER_LINEAR &&
            n->m->layers[i + 1].desc.kind == CLT_LAYER_RELU) {
            bool fused;
            clt__layer_io next = io_of(n, i + 1, row, batch, training, seed);
            clt_status st = clt__linear_relu_forward(l, &io, next.out, &fused);
            if (st != CLT_OK) return st;
            if (fused) {
                i++;
                continue;
            }
        }
        clt_status st = clt__layer_forward(l, &io);
        if (st != CLT_OK) return st;
    }
    return CLT_OK;
}

clt__view clt__net_act(const clt__net *n, int layer)
{
    return (clt__view){n->acts[layer - n->first], 0};
}

/* Layer i's output gradient at `row` in wsave. */
static clt__view wsave_of(const clt__net *n, int i, size_t row)
{
    size_t off = 0;
    for (int k = n->first; k < i; k++)
        if (clt__layer_splits(&n->m->layers[k])) off += n->m->layers[k].out_numel * n->max_batch;
    return (clt__view){n->wsave, off + row * n->m->layers[i].out_numel};
}

clt_status clt__net_split_reserve(clt__net *n)
{
    if (n->wsave) return CLT_OK;
    size_t floats = 0;
    for (int i = n->first; i <= n->last; i++)
        if (clt__layer_splits(&n->m->layers[i])) floats += n->m->layers[i].out_numel * n->max_batch;
    clt_status st = clt__alloc(n->w, floats, "output gradients kept for the weight gradients", &n->wsave);
    if (st == CLT_OK) {
        n->act_bytes += sizeof(float) * (uint64_t)floats;
        n->w->activation_bytes += sizeof(float) * (uint64_t)floats;
    }
    return st;
}

/* Backward of layers last..first over rows [row, row + batch): each layer's input gradient goes
 * to the ping-pong buffer its output gradient is not in (rows from 0), or with part INPUT where
 * the layer below keeps it for PARAMS (wsave, at `row`); layer first's goes to din_to when its
 * mem is set, nowhere without want_din, and *din (when set) says where it went. done (when set)
 * is called after each layer's. */
static clt_status backward_layers(clt__net *n, int first, int last, size_t row, size_t batch, clt__view dout,
                                  clt__view din_to, int want_din, clt__view *din, uint64_t seed,
                                  clt__bwd_part part, clt__layer_done_fn done, void *user)
{
    CLT_ASSERT(row + batch <= n->max_batch && first >= n->first && last <= n->last &&
               (part == CLT__BWD_ALL || n->wsave), CLT_ERR_STATE);
    const clt__layer *L = n->m->layers;
    bool keep = part == CLT__BWD_INPUT;
    for (int i = last; i >= first; i--) {
        clt__layer_io io = io_of(n, i, row, batch, 1, seed);
        io.part = part;
        if (keep && clt__layer_splits(&L[i]) && dout.mem != n->wsave) {
            /* the caller's buffer changes before PARAMS: keep a copy */
            clt_status st = clt__copy(n->w, dout, wsave_of(n, i, row), batch * L[i].out_numel);
            if (st != CLT_OK) return st;
            dout = wsave_of(n, i, row);
        }
        io.dout = dout;
        if (i == first && !want_din)
            io.din = (clt__view){NULL, 0};
        else if (i == first && din_to.mem)
            io.din = din_to;
        else if (keep && i > n->first && clt__layer_splits(&L[i - 1]))
            io.din = wsave_of(n, i - 1, row);
        else
            io.din = (clt__view){n->gbuf[dout.mem == n->gbuf[0] ? 1 : 0], 0};
        clt_status st = clt__layer_backward(&L[i], &io);
        if (st == CLT_OK && done) st = done(user, i);
        if (st != CLT_OK) return st;
        dout = io.din;
    }
    if (din) *din = dout;
    return CLT_OK;
}

clt_status clt__net_backward_span_rows(clt__net *n, int first, int last, size_t row, size_t batch,
                                       clt__view dout, clt__view din_to, int want_din, clt__view *din,
                                       uint64_t seed, clt__bwd_part part)
{
    return backward_layers(n, first, last, row, batch, dout, din_to, want_din, din, seed, part, NULL, NULL);
}

clt_status clt__net_backward_input_rows(clt__net *n, size_t row, size_t batch, clt__view dout,
                                        clt__view din, uint64_t seed)
{
    return backward_layers(n, n->first, n->last, row, batch, dout, din, din.mem != NULL, NULL, seed, CLT__BWD_INPUT,
                           NULL, NULL);
}

clt_status clt__net_backward_params_rows(clt__net *n, size_t row, size_t batch, uint64_t seed)
{
    CLT_ASSERT(row + batch <= n->max_batch && n->wsave, CLT_ERR_STATE);
    for (int i = n->last; i >= n->first; i--) {
        if (!clt__layer_splits(&n->m->layers[i])) continue;
        clt__layer_io io = io_of(n, i, row, batch, 1, seed);
        io.part = CLT__BWD_PARAMS;
        io.dout = wsave_of(n, i, row);
        clt_status st = clt__layer_backward(&n->m->layers[i], &io);
        if (st != CLT_OK) return st;
    }
    return CLT_OK;
}

clt_status clt__net_backward(clt__net *n, size_t batch, clt__view dout, clt__view din,
                             uint64_t seed)
{
    return clt__net_backward_rows(n, 0, batch, dout, din, seed);
}

clt_status clt__net_backward_rows(clt__net *n, size_t row, size_t batch, clt__view dout,
                                  clt__view din, uint64_t seed)
{
    return clt__net_backward_hook(n, row, batch, dout, din, seed, NULL, NULL);
}

clt_status clt__net_backward_hook(clt__net *n, size_t row, size_t batch, clt__view dout,
                                  clt__view din, uint64_t seed, clt__layer_done_fn done, void *user)
{
    return backward_layers(n, n->first, n->last, row, batch, dout, din, din.mem != NULL, NULL, seed, CLT__BWD_ALL,
                           done, user);
}

clt_status clt__net_loss(clt__net *n, clt_loss loss, size_t batch, float grad_scale,
                         int want_grad, double *sum, size_t *correct)
{
    return clt__net_loss_rows(n, loss, 0, batch, grad_scale, want_grad, sum, correct);
}

clt_status clt__net_loss_rows(clt__net *n, clt_loss loss, size_t row, size_t batch,
                              float grad_scale, int want_grad, double *sum, size_t *correct)
{
    clt__worker *w = n->w;
    /* the losses see batch x positions rows of classes (a sequence: one row per position) */
    size_t P = clt__model_positions(n->m);
    cl_uint B = (cl_uint)(batch * P), C = (cl_uint)(n->m->layers[n->last].out_numel / P);
    CLT_ASSERT(row + batch <= n->max_batch, CLT_ERR_STATE);
    clt__view z = clt__at(clt__net_output(n), row * P * C);
    cl_ulong go = 0;
    cl_int wg = want_grad != 0;
    clt_status st;
    if (loss == CLT_LOSS_CROSS_ENTROPY)
        st = CLT_LAUNCH(w, "loss", "softmax_xent", B, CLT_ARG(B), CLT_ARG(C), CLT_ARG(z.mem),
                        CLT_ARG(z.off), CLT_ARG(n->labels), CLT_ARG(n->loss_rows), CLT_ARG(n->gbuf[0]),
                        CLT_ARG(go), CLT_ARG(grad_scale), CLT_ARG(wg));
    else
        st = CLT_LAUNCH(w, "loss", "mse", B, CLT_ARG(B), CLT_ARG(C), CLT_ARG(z.mem), CLT_ARG(z.off),
                        CLT_ARG(n->targets), CLT_ARG(n->loss_rows), CLT_ARG(n->gbuf[0]), CLT_ARG(go),
                        CLT_ARG(grad_scale), CLT_ARG(wg));
    if (st != CLT_OK) return st;
    /* the losses, then the right-class flags: 2 batch floats in one read */
    cl_int err = clEnqueueReadBuffer(w->queue, n->loss_rows, CL_TRUE, 0, 2 * (size_t)B * sizeof(float),
                                     n->host_rows, 0, NULL, NULL);
    if (err != CL_SUCCESS) return clt__fail_cl(err, clt__worker_name(w), "reading the losses");
    double s = 0;
    size_t hits = 0;
    for (size_t i = 0; i < B; i++) s += n->host_rows[i];
    for (size_t i = 0; i < B; i++) hits += n->host_rows[B + i] != 0.0f;
    *sum = s;
    if (correct) *correct = hits;
    return CLT_OK;
}

clt_status clt__net_sumsq(clt__net *n, clt__view g, size_t count, double *out)
{
    clt__worker *w = n->w;
    cl_ulong total = count, per = SUMSQ_PER;
    size_t parts = (count + SUMSQ_PER - 1) / SUMSQ_PER;
    CLT_ASSERT(parts <= n->npartial, CLT_ERR_STATE);
    clt_status st = CLT_LAUNCH(w, "optim", "sumsq_partial", parts, CLT_ARG(total), CLT_ARG(per),
                               CLT_ARG(g.mem), CLT_ARG(g.off), CLT_ARG(n->partial));
    if (st != CLT_OK) return st;
    float *host = n->host_rows;   /* 2 max_batch + SUMSQ_PER floats; parts may be more */
    double s = 0;
    for (size_t done = 0; done < parts;) {
        size_t chunk = parts - done;
        if (chunk > 2 * n->max_batch + SUMSQ_PER) chunk = 2 * n->max_batch + SUMSQ_PER;
        cl_int err = clEnqueueReadBuffer(w->queue, n->partial, CL_TRUE, done * sizeof(float),
                                         chunk * sizeof(float), host, 0, NULL, NULL);
        if (err != CL_SUCCESS) return clt__fail_cl(err, clt__worker_name(w), "reading partial sums");
        for (size_t i = 0; i < chunk; i++) s += host[i];
        done += chunk;
    }
    *out = s;
    return CLT_OK;
}

/* A zeroed buffer of count floats in *buf, unless it is there already. */
static clt_status ensure_zeroed(clt__worker *w, cl_mem *buf, size_t count, const char *what)
{
    if (*buf) return CLT_OK;
    clt_status st = clt__alloc(w, count, what, buf);
    if (st == CLT_OK) st = clt__zero(w, (clt__view){*buf, 0}, count);
    if (st != CLT_OK && *buf) clReleaseMemObject(*buf), *buf = NULL;
    return st;
}

/* One launch of the optimizer over params[po, po + count), its state from element so, with
 * weight decay wd (the range's share of the caller's: o->weight_decay or 0). */
static clt_status optimizer_launch(clt__net *n, const clt_optimizer *o, float lr, long step,
                                   float grad_scale, size_t po, size_t so, size_t count, clt__view g,
                                   float wd)
{
    clt__worker *w = n->w;
    /* inside an update the new values go to the _next buffers (clt__net_update_begin) */
    cl_mem pn = n->updating ? n->params_next : n->params;
    cl_mem on[2] = {n->updating ? n->opt_next[0] : n->opt[0], n->updating ? n->opt_next[1] : n->opt[1]};
    cl_ulong cnt = count, p_off = po, s_off = so;
    if (o->kind == CLT_OPTIM_SGD) {
        cl_mem buf = n->opt[0] ? n->opt[0] : n->params, bufn = on[0] ? on[0] : pn;   /* unused without momentum */
        cl_int nesterov = o->nesterov != 0, first = step == 1;
        return CLT_LAUNCH(w, "optim", "sgd_step", count, CLT_ARG(cnt), CLT_ARG(n->params), CLT_ARG(p_off),
                          CLT_ARG(pn), CLT_ARG(g.mem), CLT_ARG(g.off), CLT_ARG(buf), CLT_ARG(bufn),
                          CLT_ARG(s_off), CLT_ARG(lr), CLT_ARG(o->momentum), CLT_ARG(o->dampening),
                          CLT_ARG(wd), CLT_ARG(nesterov), CLT_ARG(first), CLT_ARG(grad_scale));
    }
    cl_int decoupled = o->kind == CLT_OPTIM_ADAMW;
    cl_float bc1 = (float)(1.0 - pow((double)o->beta1, (double)step));
    cl_float bc2s = (float)sqrt(1.0 - pow((double)o->beta2, (double)step));
    return CLT_LAUNCH(w, "optim", "adam_step", count, CLT_ARG(cnt), CLT_ARG(n->params), CLT_ARG(p_off),
                      CLT_ARG(pn), CLT_ARG(g.mem), CLT_ARG(g.off), CLT_ARG(n->opt[0]), CLT_ARG(n->opt[1]),
                      CLT_ARG(on[0]), CLT_ARG(on[1]), CLT_ARG(s_off), CLT_ARG(lr), CLT_ARG(o->beta1),
                      CLT_ARG(o->beta2), CLT_ARG(o->eps), CLT_ARG(wd), CLT_ARG(decoupled), CLT_ARG(bc1),
                      CLT_ARG(bc2s), CLT_ARG(grad_scale));
}

/* The end (by `end`) of the run of elements from `at` (both net-local) whose tensors all take
 * weight decay under CLT_DECAY_MATRICES, or all do not; *decayed says which. A tensor decays
 * when its rank is 2 or more (nanoGPT's p.dim() >= 2), read from the model's shapes, so every
 * layer kind falls out without a list. Neighbouring tensors of one kind share a run (one
 * launch), and the zero padding past nparams joins the run before it. */
static size_t decay_run(const clt__net *n, size_t at, size_t end, bool *decayed)
{
    const clt__layer *L = n->m->layers;
    bool started = false;
    *decayed = false;
    for (int i = n->first; i <= n->last; i++)
        for (int k = 0; k < 2; k++) {
            size_t lo = L[i].param_off - n->param_base + (k ? L[i].w_count : 0);
            size_t len = k ? L[i].b_count : L[i].w_count;
            bool d = (k ? L[i].b_shape.rank : L[i].w_shape.rank) >= 2;
            if (!len || lo + len <= at) continue;
            if (lo >= end) return end;
            if (!started) *decayed = d, started = true;
            else if (d != *decayed) return lo;
        }
    return end;
}

/* Here, beside the update that keeps them: the trainer, the strategies and checkpoints ask. */
int clt__optim_state_arrays(const clt_optimizer *o)
{
    return o->kind == CLT_OPTIM_SGD ? (o->momentum != 0.0f) : 2;
}

clt_status clt__net_optimizer_step(clt__net *n, const clt_optimizer *o, clt_decay decay, float lr,
                                   long step, float grad_scale, size_t off, size_t count, clt__view g)
{
    clt__worker *w = n->w;
    if (count == 0) return CLT_OK;
    CLT_ASSERT(off + count <= n->padded && (!n->opt_count || n->opt_count == count), CLT_ERR_STATE);
    int nstate = clt__optim_state_arrays(o);
    for (int i = 0; i < nstate; i++) {
        clt_status st = ensure_zeroed(w, &n->opt[i], count, "optimizer state");
        if (st == CLT_OK && n->updating)
            st = ensure_zeroed(w, &n->opt_next[i], count, "the update's optimizer state");
        if (st != CLT_OK) return st;
    }
    n->opt_count = count;
    if (decay == CLT_DECAY_ALL || o->weight_decay == 0.0f)
        return optimizer_launch(n, o, lr, step, grad_scale, off, 0, count, g, o->weight_decay);
    /* as PyTorch's param groups, the undecayed ones with weight_decay 0: one launch a run */
    clt_status st = CLT_OK;
    for (size_t at = off, end; at < off + count && st == CLT_OK; at = end) {
        bool decayed;
        end = decay_run(n, at, off + count, &decayed);
        st = optimizer_launch(n, o, lr, step, grad_scale, at, at - off, end - at,
                              (clt__view){g.mem, g.off + (at - off)}, decayed ? o->weight_decay : 0.0f);
    }
    return st;
}

clt_status clt__net_update_begin(clt__net *n)
{
    /* zeros: the padding past nparams is never written and must stay zero on both sides */
    clt_status st = ensure_zeroed(n->w, &n->params_next, n->padded, "the update's parameters");
    n->updating = st == CLT_OK;
    return st;
}

void clt__net_commit(clt__net *n)
{
    if (!n->updating) return;
    n->updating = false;
    cl_mem p = n->params;
    n->params = n->params_next, n->params_next = p;
    for (int i = 0; i < 2; i++) {
        cl_mem o = n->opt[i];
        if (n->opt_next[i]) n->opt[i] = n->opt_next[i], n->opt_next[i] = o;
    }
}

cl_mem clt__net_new_state(const clt__net *n, int which)
{
    return n->updating && n->opt_next[which] ? n->opt_next[which] : n->opt[which];
}

clt_status clt__net_share_update(clt__net *n, clt__comm *c, size_t off, size_t count, int root,
                                 const clt_collective_options *o)
{
    CLT_ASSERT(n->updating && off + count <= n->nparams, CLT_ERR_STATE);
    if (!count) return CLT_OK;
    /* on the worker's queue, behind the optimizer's kernels that wrote the _next buffers */
    clt_status st = clt__comm_broadcast(c, n->w, n->params_next, off, count, root, o);
    for (int i = 0; i < 2 && st == CLT_OK; i++)
        if (n->opt_next[i]) {
            CLT_ASSERT(off + count <= n->opt_count, CLT_ERR_STATE);
            st = clt__comm_broadcast(c, n->w, n->opt_next[i], off, count, root, o);
        }
    return st;
}

clt_status clt__net_discard(clt__net *n)
{
    clt__worker *w = n->w;
    n->updating = false;
    cl_int err = clFinish(w->queue);   /* nothing may still write the _next buffers */
    return err == CL_SUCCESS ? CLT_OK : clt__fail_cl(err, clt__worker_name(w), "dropping the failed update");
}

typedef struct {
    cl_mem buf;
    size_t off, count;
    float *host;
    int write;
} io_job;

static clt_status io_task(clt__worker *w, void *arg)
{
    io_job *a = arg;
    size_t bytes = a->count * sizeof(float), at = a->off * sizeof(float);
    cl_int err = a->write ? clEnqueueWriteBuffer(w->queue, a->buf, CL_TRUE, at, bytes, a->host, 0, NULL, NULL)
                          : clEnqueueReadBuffer(w->queue, a->buf, CL_TRUE, at, bytes, a->host, 0, NULL, NULL);
    return err == CL_SUCCESS ? CLT_OK
                             : clt__fail_cl(err, clt__worker_name(w), a->write ? "writing parameters" : "reading parameters");
}

clt_status clt__buffer_io(clt__worker *w, cl_mem buf, size_t off, size_t count, float *host, int write)
{
    io_job a = {buf, off, count, host, write};
    return clt__worker_call(w, io_task, &a);
}

typedef struct {
    clt__net *n;
    int which;
    size_t size, off, count;
    float *host;
    int write;
} state_job;

static clt_status state_task(clt__worker *w, void *arg)
{
    state_job *j = arg;
    clt__net *n = j->n;
    if (!n->opt[j->which]) {
        if (!j->write) {
            memset(j->host, 0, j->count * sizeof(float));
            return CLT_OK;
        }
        clt_status st = ensure_zeroed(w, &n->opt[j->which], j->size, "optimizer state");
        if (st != CLT_OK) return st;
        n->opt_count = j->size;
    }
    if (!j->count) return CLT_OK;   /* a write of nothing still makes the state */
    return clt__buffer_io(w, n->opt[j->which], j->off, j->count, j->host, j->write);
}

static clt_status discard_task(clt__worker *w, void *arg)
{
    (void)w;
    return clt__net_discard(*(clt__net *const *)arg);
}

void clt__nets_commit(clt__net *const *nets, int n)
{
    for (int i = 0; i < n; i++) clt__net_commit(nets[i]);
}

void clt__nets_undo(clt_runtime *rt, const int *devs, clt__net *const *nets, int n)
{
    char keep[512];
    snprintf(keep, sizeof keep, "%s", clt_last_error());
    clt__run_on(rt, devs, n, discard_task, (void *)nets, sizeof *nets);
    clt__error_set_message(keep);
}

clt_status clt__net_state_io(clt__net *n, int which, size_t size, size_t off, size_t count, float *host,
                             int write)
{
    state_job j = {n, which, size, off, count, host, write};
    return clt__worker_call(n->w, state_task, &j);
}

static clt_status upload(clt__worker *w, cl_mem dst, size_t at_bytes, const void *src, size_t bytes)
{
    if (!bytes) return CLT_OK;
    cl_int err = clEnqueueWriteBuffer(w->queue, dst, CL_FALSE, at_bytes, bytes, src, 0, NULL,
                                      clt__worker_event(w));
    if (err != CL_SUCCESS) return clt__fail_cl(err, clt__worker_name(w), "uploading the batch");
    clt__worker_record_named(w, CLT__EV_TRANSFER, "upload");
    return CLT_OK;
}

clt_status clt__net_upload_input(clt__net *n, const clt__batch *b, size_t start, size_t count, size_t row)
{
    size_t in = n->m->layers[n->first].in_numel;
    return upload(n->w, n->input, row * in * sizeof(float), b->x + start * in, count * in * sizeof(float));
}

clt_status clt__net_upload_truth(clt__net *n, const clt__batch *b, size_t start, size_t count)
{
    size_t C = n->m->layers[n->last].out_numel, P = clt__model_positions(n->m);
    clt_status st = CLT_OK;
    if (b->labels) st = upload(n->w, n->labels, 0, b->labels + start * P, count * P * sizeof(int32_t));
    if (st == CLT_OK && b->targets) st = upload(n->w, n->targets, 0, b->targets + start * C, count * C * sizeof(float));
    return st;
}

clt_status clt__net_upload_rows(clt__net *n, const clt__batch *b, size_t start, size_t count)
{
    clt_status st = clt__fault_point(n->w, CLT__FAULT_COPY, 1, "uploading the batch");
    if (st == CLT_OK) st = clt__net_upload_input(n, b, start, count, 0);
    if (st == CLT_OK) st = clt__net_upload_truth(n, b, start, count);
    return st;
}

clt_status clt__net_destroy_task(clt__worker *w, void *net)
{
    (void)w;
    clt__net_destroy(net);
    return CLT_OK;
}

clt_status clt__net_zero_batch(clt__net *n, size_t rows)
{
    clt__worker *w = n->w;
    clt_status st = clt__zero(w, (clt__view){n->input, 0}, rows * n->m->layers[n->first].in_numel);
    if (st == CLT_OK) st = clt__zero(w, (clt__view){n->labels, 0}, rows * clt__model_positions(n->m));   /* class 0 */
    if (st == CLT_OK) st = clt__zero(w, (clt__view){n->targets, 0}, rows * n->m->layers[n->last].out_numel);
    return st;
}

clt_status clt__net_warm_optimizer(clt__net *n, const clt_optimizer *o, size_t off, size_t count)
{
    clt__worker *w = n->w;
    /* zero gradients and rate: the parameters stay as they are; the optimizer state is reset */
    clt_status st = clt__net_optimizer_step(n, o, CLT_DECAY_ALL, 0.0f, 1, 1.0f, off, count, (clt__view){n->grads, off});
    for (int i = 0; i < 2 && st == CLT_OK; i++)
        if (n->opt[i]) st = clt__zero(w, (clt__view){n->opt[i], 0}, n->opt_count);
    if (st == CLT_OK) {
        cl_int err = clFinish(w->queue);
        if (err != CL_SUCCESS) st = clt__fail_cl(err, clt__worker_name(w), "warming up");
    }
    return st;
}
