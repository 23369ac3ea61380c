/* Forward and backward of every layer kind, on one worker: CLBlast for the GEMMs, cl/ kernels
 * for the rest. Gradients of parameters are accumulated (+=) so micro-batches can add up, or
 * written (grads_fresh: the first pass of an update, no zeroing needed); gradients of inputs are
 * overwritten. A layer never knows how many devices there are. */
#include "internal.h"

#include <math.h>

/* Activation kernels take the layer kind number; keep cl/activation.cl's defines in step. */
_Static_assert(CLT_LAYER_RELU == 6 && CLT_LAYER_LEAKY_RELU == 7 && CLT_LAYER_GELU == 8 &&
                   CLT_LAYER_TANH == 9 && CLT_LAYER_SIGMOID == 10,
               "cl/activation.cl numbers the activations as clt_layer_kind does");

size_t clt__layer_scratch(const clt__layer *l, size_t batch)
{
    /* attention: the dropped-out weights (forward); dS and again those weights (backward) */
    if (l->desc.kind == CLT_LAYER_ATTENTION) return l->saved_per_sample * batch;
    if (l->desc.kind != CLT_LAYER_CONV2D) return 0;
    /* col (C*K*K, B*OHW) and the channel-major output or its gradient (OC, B*OHW) */
    size_t ohw = (size_t)l->out.dims[1] * (size_t)l->out.dims[2];
    size_t ckk = (size_t)l->in.dims[0] * (size_t)l->desc.kernel * (size_t)l->desc.kernel;
    return (ckk + (size_t)l->desc.out) * batch * ohw;
}

/* Image geometry of a conv or pool layer, as the kernels take it. */
typedef struct {
    cl_uint B, C, H, W, K, S, P, OH, OW, OC;
} geom;

static geom geometry(const clt__layer *l, size_t batch)
{
    geom g = {(cl_uint)batch, (cl_uint)l->in.dims[0], (cl_uint)l->in.dims[1],
              (cl_uint)l->in.dims[2], (cl_uint)l->desc.kernel, (cl_uint)l->desc.stride,
              (cl_uint)(l->desc.kind == CLT_LAYER_CONV2D ? l->desc.padding : 0),
              (cl_uint)l->out.dims[1], (cl_uint)l->out.dims[2], (cl_uint)l->out.dims[0]};
    return g;
}

/* ---- Linear: y (B, out) = x (B, in) W^T + b --------------------------------------------------- */

/* A Linear (or the head) on a sequence is one GEMM over batch x positions rows of in_feat. */
clt_status clt__linear_relu_forward(const clt__layer *l, const clt__layer_io *io, clt__view relu_out,
                                    bool *fused)
{
    clt__view b = clt__at(io->params, l->w_count);
    return clt__sgemm_fused(io->w, CLT__NOTRANS, CLT__TRANS, io->batch * l->rows, l->out_feat,
                            l->in_feat, io->in.mem, io->in.off, l->in_feat, io->params.mem,
                            io->params.off, l->in_feat, io->out.mem, io->out.off, l->out_feat,
                            l->b_count ? &b : NULL, relu_out.mem ? &relu_out : NULL, fused);
}

static clt_status linear_forward(const clt__layer *l, const clt__layer_io *io)
{
    clt__worker *w = io->w;
    cl_ulong B = io->batch * l->rows, in = l->in_feat, out = l->out_feat;
    bool fused;
    clt_status st = clt__linear_relu_forward(l, io, (clt__view){NULL, 0}, &fused);   /* + bias */
    if (st != CLT_OK || fused) return st;
    st = clt__sgemm(w, CLT__NOTRANS, CLT__TRANS, B, out, in, 1.0f, io->in.mem,
                               io->in.off, in, io->params.mem, io->params.off, in, 0.0f,
                               io->out.mem, io->out.off, out);
    if (st != CLT_OK || !l->b_count) return st;
    clt__view b = clt__at(io->params, l->w_count);
    return CLT_LAUNCH(w, "linear", "bias_add_rows", B * out, CLT_ARG(B), CLT_ARG(out),
                      CLT_ARG(io->out.mem), CLT_ARG(io->out.off), CLT_ARG(b.mem), CLT_ARG(b.off));
}

static clt_status linear_backward(const clt__layer *l, const clt__layer_io *io)
{
    clt__worker *w = io->w;
    cl_ulong B = io->batch * l->rows, in = l->in_feat, out = l->out_feat;
    cl_int acc = !io->grads_fresh;
    clt_status st = CLT_OK;
    /* dW (out, in) += dy^T (out, B) x (B, in) */
    if (io->part != CLT__BWD_INPUT)
        st = clt__sgemm(w, CLT__TRANS, CLT__NOTRANS, out, in, B, 1.0f, io->dout.mem, io->dout.off, out,
                        io->in.mem, io->in.off, in, acc ? 1.0f : 0.0f, io->grads.mem, io->grads.off, in);
    if (st == CLT_OK && l->b_count && io->part != CLT__BWD_INPUT) {
        clt__view db = clt__at(io->grads, l->w_count);
        st = CLT_LAUNCH(w, "linear", "colsum_acc", (out + 15) / 16, CLT_ARG(B), CLT_ARG(out),
                        CLT_ARG(io->dout.mem), CLT_ARG(io->dout.off), CLT_ARG(db.mem), CLT_ARG(db.off),
                        CLT_ARG(acc));
    }
    /* dx (B, in) = dy (B, out) W (out, in) */
    if (st == CLT_OK && io->din.mem && io->part != CLT__BWD_PARAMS)
        st = clt__sgemm(w, CLT__NOTRANS, CLT__NOTRANS, B, in, out, 1.0f, io->dout.mem,
                        io->dout.off, out, io->params.mem, io->params.off, in, 0.0f, io->din.mem,
                        io->din.off, in);
    return st;
}

/* ---- Conv2d: im2col + one GEMM over the batch ------------------------------------------------ */

static clt_status conv_forward(const clt__layer *l, const clt__layer_io *io)
{
    clt__worker *w = io->w;
    geom g = geometry(l, io->batch);
    size_t n = (size_t)g.B * g.OH * g.OW, ckk = (size_t)g.C * g.K * g.K;
    clt__view col = io->scratch, yp = clt__at(io->scratch, ckk * n);
    clt_status st = CLT_LAUNCH(w, "conv", "im2col", ckk * g.B * g.OH, CLT_ARG(g.B), CLT_ARG(g.C), CLT_ARG(g.H),
                               CLT_ARG(g.W), CLT_ARG(g.K), CLT_ARG(g.S), CLT_ARG(g.P), CLT_ARG(g.OH),
                               CLT_ARG(g.OW), CLT_ARG(io->in.mem), CLT_ARG(io->in.off), CLT_ARG(col.mem),
                               CLT_ARG(col.off));
    if (st == CLT_OK)
        st = clt__sgemm(w, CLT__NOTRANS, CLT__NOTRANS, g.OC, n, ckk, 1.0f, io->params.mem,
                        io->params.off, ckk, col.mem, col.off, n, 0.0f, yp.mem, yp.off, n);
    if (st != CLT_OK) return st;
    cl_uint hw = g.OH * g.OW;
    cl_int has_bias = l->b_count != 0;
    clt__view b = clt__at(io->params, l->w_count);
    return CLT_LAUNCH(w, "conv", "conv_unpermute", (size_t)g.B * g.OC * hw, CLT_ARG(g.B),
                      CLT_ARG(g.OC), CLT_ARG(hw), CLT_ARG(yp.mem), CLT_ARG(yp.off),
                      CLT_ARG(io->out.mem), CLT_ARG(io->out.off), CLT_ARG(b.mem), CLT_ARG(b.off),
                      CLT_ARG(has_bias));
}

static clt_status conv_backward(const clt__layer *l, const clt__layer_io *io)
{
    clt__worker *w = io->w;
    geom g = geometry(l, io->batch);
    size_t n = (size_t)g.B * g.OH * g.OW, ckk = (size_t)g.C * g.K * g.K;
    cl_uint hw = g.OH * g.OW;
    clt__view col = io->scratch, dyp = clt__at(io->scratch, ckk * n);
    /* rebuild col from the saved input (cheaper in memory than keeping it per layer) */
    clt_status st = CLT_LAUNCH(w, "conv", "im2col", ckk * g.B * g.OH, CLT_ARG(g.B), CLT_ARG(g.C), CLT_ARG(g.H),
                               CLT_ARG(g.W), CLT_ARG(g.K), CLT_ARG(g.S), CLT_ARG(g.P), CLT_ARG(g.OH),
                               CLT_ARG(g.OW), CLT_ARG(io->in.mem), CLT_ARG(io->in.off), CLT_ARG(col.mem),
                               CLT_ARG(col.off));
    if (st == CLT_OK)
        st = CLT_LAUNCH(w, "conv", "conv_permute", (size_t)g.B * g.OC * hw, CLT_ARG(g.B),
                        CLT_ARG(g.OC), CLT_ARG(hw), CLT_ARG(io->dout.mem), CLT_ARG(io->dout.off),
                        CLT_ARG(dyp.mem), CLT_ARG(dyp.off));
    /* dW (OC, CKK) += dyp (OC, n) col^T (n, CKK) */
    cl_int acc = !io->grads_fresh;
    if (st == CLT_OK)
        st = clt__sgemm(w, CLT__NOTRANS, CLT__TRANS, g.OC, ckk, n, 1.0f, dyp.mem, dyp.off, n,
                        col.mem, col.off, n, acc ? 1.0f : 0.0f, io->grads.mem, io->grads.off, ckk);
    if (st == CLT_OK && l->b_count) {
        clt__view db = clt__at(io->grads, l->w_count);
        cl_ulong rows = g.OC, cols = n;
        st = CLT_LAUNCH(w, "linear", "rowsum_acc", rows, CLT_ARG(rows), CLT_ARG(cols),
                        CLT_ARG(dyp.mem), CLT_ARG(dyp.off), CLT_ARG(db.mem), CLT_ARG(db.off),
                        CLT_ARG(acc));
    }
    if (st != CLT_OK || !io->din.mem) return st;
    /* dcol (CKK, n) = W^T (CKK, OC) dyp (OC, n), into col's place */
    st = clt__sgemm(w, CLT__TRANS, CLT__NOTRANS, ckk, n, g.OC, 1.0f, io->params.mem,
                    io->params.off, ckk, dyp.mem, dyp.off, n, 0.0f, col.mem, col.off, n);
    if (st != CLT_OK) return st;
    return CLT_LAUNCH(w, "conv", "col2im", (size_t)g.B * g.C * g.H * g.W, CLT_ARG(g.B), CLT_ARG(g.C),
                      CLT_ARG(g.H), CLT_ARG(g.W), CLT_ARG(g.K), CLT_ARG(g.S), CLT_ARG(g.P),
                      CLT_ARG(g.OH), CLT_ARG(g.OW), CLT_ARG(col.mem), CLT_ARG(col.off), CLT_ARG(io->din.mem),
                      CLT_ARG(io->din.off));
}

/* ---- pools ------------------------------------------------------------------------------- */

static clt_status pool_forward(const clt__layer *l, const clt__layer_io *io)
{
    geom g = geometry(l, io->batch);
    const char *kernel = l->desc.kind == CLT_LAYER_MAXPOOL2D ? "maxpool_forward" : "avgpool_forward";
    return CLT_LAUNCH(io->w, "pool", kernel, (size_t)g.B * g.C * g.OH * g.OW, CLT_ARG(g.B),
                      CLT_ARG(g.C), CLT_ARG(g.H), CLT_ARG(g.W), CLT_ARG(g.K), CLT_ARG(g.S),
                      CLT_ARG(g.OH), CLT_ARG(g.OW), CLT_ARG(io->in.mem), CLT_ARG(io->in.off),
                      CLT_ARG(io->out.mem), CLT_ARG(io->out.off), CLT_ARG(io->saved.mem),
                      CLT_ARG(io->saved.off));
}

static clt_status pool_backward(const clt__layer *l, const clt__layer_io *io)
{
    if (!io->din.mem) return CLT_OK;
    geom g = geometry(l, io->batch);
    const char *kernel = l->desc.kind == CLT_LAYER_MAXPOOL2D ? "maxpool_backward" : "avgpool_backward";
    return CLT_LAUNCH(io->w, "pool", kernel, (size_t)g.B * g.C * g.H * g.W, CLT_ARG(g.B),
                      CLT_ARG(g.C), CLT_ARG(g.H), CLT_ARG(g.W), CLT_ARG(g.K), CLT_ARG(g.S),
                      CLT_ARG(g.OH), CLT_ARG(g.OW), CLT_ARG(io->dout.mem), CLT_ARG(io->dout.off),
                      CLT_ARG(io->saved.mem), CLT_ARG(io->saved.off), CLT_ARG(io->din.mem),
                      CLT_ARG(io->din.off));
}

/* ---- elementwise -------------------------------------------------------------------------- */

static clt_status act_forward(const clt__layer *l, const clt__layer_io *io)
{
    cl_ulong n = io->batch * l->in_numel;
    cl_int kind = (cl_int)l->desc.kind;
    cl_float alpha = l->desc.alpha;
    return CLT_LAUNCH(io->w, "activation", "act_forward", n, CLT_ARG(n), CLT_ARG(kind),
                      CLT_ARG(alpha), CLT_ARG(io->in.mem), CLT_ARG(io->in.off),
                      CLT_ARG(io->out.mem), CLT_ARG(io->out.off));
}

static clt_status act_backward(const clt__layer *l, const clt__layer_io *io)
{
    if (!io->din.mem) return CLT_OK;
    cl_ulong n = io->batch * l->in_numel;
    cl_int kind = (cl_int)l->desc.kind;
    cl_float alpha = l->desc.alpha;
    return CLT_LAUNCH(io->w, "activation", "act_backward", n, CLT_ARG(n), CLT_ARG(kind),
                      CLT_ARG(alpha), CLT_ARG(io->in.mem), CLT_ARG(io->in.off),
                      CLT_ARG(io->out.mem), CLT_ARG(io->out.off), CLT_ARG(io->dout.mem),
                      CLT_ARG(io->dout.off), CLT_ARG(io->din.mem), CLT_ARG(io->din.off));
}

static clt_status gelu_tanh_forward(const clt__layer *l, const clt__layer_io *io)
{
    cl_ulong n = io->batch * l->in_numel;
    return CLT_LAUNCH(io->w, "activation", "gelu_tanh_forward", n, CLT_ARG(n), CLT_ARG(io->in.mem),
                      CLT_ARG(io->in.off), CLT_ARG(io->out.mem), CLT_ARG(io->out.off));
}

static clt_status gelu_tanh_backward(const clt__layer *l, const clt__layer_io *io)
{
    if (!io->din.mem) return CLT_OK;
    cl_ulong n = io->batch * l->in_numel;
    return CLT_LAUNCH(io->w, "activation", "gelu_tanh_backward", n, CLT_ARG(n), CLT_ARG(io->in.mem),
                      CLT_ARG(io->in.off), CLT_ARG(io->dout.mem), CLT_ARG(io->dout.off),
                      CLT_ARG(io->din.mem), CLT_ARG(io->din.off));
}

static clt_status dropout_forward(const clt__layer *l, const clt__layer_io *io)
{
    cl_ulong n = io->batch * l->in_numel;
    if (!io->training || l->desc.alpha == 0.0f) return clt__copy(io->w, io->in, io->out, n);
    cl_float p = l->desc.alpha;
    cl_ulong seed = io->seed, first = io->row0 * l->in_numel;
    return CLT_LAUNCH(io->w, "dropout", "dropout_forward", n, CLT_ARG(n), CLT_ARG(p), CLT_ARG(seed),
                      CLT_ARG(first),
                      CLT_ARG(io->in.mem), CLT_ARG(io->in.off), CLT_ARG(io->out.mem),
                      CLT_ARG(io->out.off), CLT_ARG(io->saved.mem), CLT_ARG(io->saved.off));
}

static clt_status dropout_backward(const clt__layer *l, const clt__layer_io *io)
{
    if (!io->din.mem) return CLT_OK;
    cl_ulong n = io->batch * l->in_numel;
    if (l->desc.alpha == 0.0f) return clt__copy(io->w, io->dout, io->din, n);
    return CLT_LAUNCH(io->w, "dropout", "dropout_backward", n, CLT_ARG(n), CLT_ARG(io->dout.mem),
                      CLT_ARG(io->dout.off), CLT_ARG(io->saved.mem), CLT_ARG(io->saved.off),
                      CLT_ARG(io->din.mem), CLT_ARG(io->din.off));
}

/* LayerNorm over the whole sample, or over the last dimension of each position (B x T rows). */
static cl_uint norm_rows(const clt__layer *l, size_t batch)
{
    return (cl_uint)(l->desc.kind == CLT_LAYER_LAYERNORM_LAST ? batch * l->rows : batch);
}

static cl_uint norm_width(const clt__layer *l)
{
    return (cl_uint)(l->desc.kind == CLT_LAYER_LAYERNORM_LAST ? l->in_feat : l->in_numel);
}

static clt_status layernorm_forward(const clt__layer *l, const clt__layer_io *io)
{
    cl_uint B = norm_rows(l, io->batch), D = norm_width(l);
    cl_float eps = l->desc.alpha;
    clt__view b = clt__at(io->params, l->w_count);
    return CLT_LAUNCH(io->w, "layernorm", "layernorm_forward", B, CLT_ARG(B), CLT_ARG(D), CLT_ARG(eps),
                      CLT_ARG(io->in.mem), CLT_ARG(io->in.off), CLT_ARG(io->out.mem),
                      CLT_ARG(io->out.off), CLT_ARG(io->params.mem), CLT_ARG(io->params.off),
                      CLT_ARG(b.mem), CLT_ARG(b.off), CLT_ARG(io->saved.mem), CLT_ARG(io->saved.off));
}

static clt_status layernorm_backward(const clt__layer *l, const clt__layer_io *io)
{
    cl_uint B = norm_rows(l, io->batch), D = norm_width(l);
    clt__view db = clt__at(io->grads, l->w_count);
    cl_int acc = !io->grads_fresh;
    clt_status st = CLT_LAUNCH(io->w, "layernorm", "layernorm_backward_params", D, CLT_ARG(B),
                               CLT_ARG(D), CLT_ARG(io->in.mem), CLT_ARG(io->in.off),
                               CLT_ARG(io->dout.mem), CLT_ARG(io->dout.off), CLT_ARG(io->saved.mem),
                               CLT_ARG(io->saved.off), CLT_ARG(io->grads.mem), CLT_ARG(io->grads.off),
                               CLT_ARG(db.mem), CLT_ARG(db.off), CLT_ARG(acc));
    if (st != CLT_OK || !io->din.mem) return st;
    return CLT_LAUNCH(io->w, "layernorm", "layernorm_backward_input", B, CLT_ARG(B), CLT_ARG(D),
                      CLT_ARG(io->in.mem), CLT_ARG(io->in.off), CLT_ARG(io->dout.mem),
                      CLT_ARG(io->dout.off), CLT_ARG(io->params.mem), CLT_ARG(io->params.off),
                      CLT_ARG(io->saved.mem), CLT_ARG(io->saved.off), CLT_ARG(io->din.mem),
                      CLT_ARG(io->din.off));
}

/* ---- sequences: embeddings, attention, residual blocks --------------------------------------- */

static clt_status embedding_forward(const clt__layer *l, const clt__layer_io *io)
{
    cl_ulong n = io->batch * l->rows;
    cl_uint C = (cl_uint)l->out_feat;
    return CLT_LAUNCH(io->w, "sequence", "embedding_forward", n * C, CLT_ARG(n), CLT_ARG(C),
                      CLT_ARG(io->in.mem), CLT_ARG(io->in.off), CLT_ARG(io->params.mem),
                      CLT_ARG(io->params.off), CLT_ARG(io->out.mem), CLT_ARG(io->out.off));
}

static clt_status embedding_backward(const clt__layer *l, const clt__layer_io *io)
{
    cl_ulong n = io->batch * l->rows;
    cl_uint C = (cl_uint)l->out_feat;
    /* the kernel adds the rows' gradients: fresh gradients start from zeros */
    clt_status st = io->grads_fresh ? clt__zero(io->w, io->grads, l->w_count) : CLT_OK;
    if (st != CLT_OK) return st;
    return CLT_LAUNCH(io->w, "sequence", "embedding_backward", C, CLT_ARG(n), CLT_ARG(C),
                      CLT_ARG(io->in.mem), CLT_ARG(io->in.off), CLT_ARG(io->dout.mem),
                      CLT_ARG(io->dout.off), CLT_ARG(io->grads.mem), CLT_ARG(io->grads.off));
}

static clt_status position_forward(const clt__layer *l, const clt__layer_io *io)
{
    cl_uint B = (cl_uint)io->batch, TC = (cl_uint)l->in_numel;
    return CLT_LAUNCH(io->w, "sequence", "position_forward", (size_t)B * TC, CLT_ARG(B), CLT_ARG(TC),
                      CLT_ARG(io->in.mem), CLT_ARG(io->in.off), CLT_ARG(io->params.mem),
                      CLT_ARG(io->params.off), CLT_ARG(io->out.mem), CLT_ARG(io->out.off));
}

static clt_status position_backward(const clt__layer *l, const clt__layer_io *io)
{
    cl_uint B = (cl_uint)io->batch, TC = (cl_uint)l->in_numel;
    cl_int acc = !io->grads_fresh;
    clt_status st = CLT_LAUNCH(io->w, "sequence", "position_backward", TC, CLT_ARG(B), CLT_ARG(TC),
                               CLT_ARG(io->dout.mem), CLT_ARG(io->dout.off), CLT_ARG(io->grads.mem),
                               CLT_ARG(io->grads.off), CLT_ARG(acc));
    if (st != CLT_OK || !io->din.mem) return st;
    return clt__copy(io->w, io->dout, io->din, (size_t)B * TC);
}

static clt_status add(const clt__layer_io *io, clt__view x, clt__view y, clt__view z, cl_ulong n)
{
    return CLT_LAUNCH(io->w, "sequence", "add", n, CLT_ARG(n), CLT_ARG(x.mem), CLT_ARG(x.off),
                      CLT_ARG(y.mem), CLT_ARG(y.off), CLT_ARG(z.mem), CLT_ARG(z.off));
}

/* Attention's geometry: batch, positions, features, heads. */
typedef struct {
    cl_uint B, T, C, H;
    cl_float scale;   /* 1 / sqrt(features per head) */
} attn_geom;

static attn_geom attn_geometry(const clt__layer *l, size_t batch)
{
    attn_geom g = {(cl_uint)batch, (cl_uint)l->rows, (cl_uint)l->out_feat, (cl_uint)l->desc.count, 0.0f};
    g.scale = (cl_float)(1.0 / sqrt((double)(g.C / g.H)));
    return g;
}

/* Forward keeps, for the call's rows, the weights P (B, H, T, T) and, under dropout, the mask
 * after them (B, H, T, T more); the dropped-out weights live in the scratch meanwhile. */
static clt_status attention_forward(const clt__layer *l, const clt__layer_io *io)
{
    clt__worker *w = io->w;
    attn_geom g = attn_geometry(l, io->batch);
    size_t rows = (size_t)g.B * g.H * g.T;
    clt_status st = CLT_LAUNCH(w, "attention", "attn_weights", rows, CLT_ARG(g.B), CLT_ARG(g.T),
                               CLT_ARG(g.C), CLT_ARG(g.H), CLT_ARG(g.scale), CLT_ARG(io->in.mem),
                               CLT_ARG(io->in.off), CLT_ARG(io->saved.mem), CLT_ARG(io->saved.off));
    clt__view weights = io->saved;
    if (st == CLT_OK && io->training && l->desc.alpha > 0.0f) {
        /* dropout.cl's draws, by element of the whole batch's weights of all the model's heads */
        cl_ulong n = rows * g.T, row0 = io->row0, TT = (cl_ulong)g.T * g.T;
        cl_uint Hg = (cl_uint)l->heads_all, h0 = (cl_uint)l->head0;
        cl_float p = l->desc.alpha;
        cl_ulong seed = io->seed;
        clt__view mask = clt__at(io->saved, n);
        weights = io->scratch;
        st = CLT_LAUNCH(w, "dropout", "dropout_heads_forward", n, CLT_ARG(n), CLT_ARG(p), CLT_ARG(seed),
                        CLT_ARG(row0), CLT_ARG(g.H), CLT_ARG(Hg), CLT_ARG(h0), CLT_ARG(TT),
                        CLT_ARG(io->saved.mem), CLT_ARG(io->saved.off), CLT_ARG(weights.mem),
                        CLT_ARG(weights.off), CLT_ARG(mask.mem), CLT_ARG(mask.off));
    }
    if (st != CLT_OK) return st;
    return CLT_LAUNCH(w, "attention", "attn_values", rows, CLT_ARG(g.B), CLT_ARG(g.T),
                      CLT_ARG(g.C), CLT_ARG(g.H), CLT_ARG(io->in.mem), CLT_ARG(io->in.off),
                      CLT_ARG(weights.mem), CLT_ARG(weights.off), CLT_ARG(io->out.mem),
                      CLT_ARG(io->out.off));
}

static clt_status attention_backward(const clt__layer *l, const clt__layer_io *io)
{
    if (!io->din.mem) return CLT_OK;
    clt__worker *w = io->w;
    attn_geom g = attn_geometry(l, io->batch);
    size_t rows = (size_t)g.B * g.H * g.T;
    cl_ulong n = rows * g.T;
    cl_int masked = l->desc.alpha > 0.0f;
    /* the scratch holds dS, and under dropout the weights the forward used (P times its mask,
     * dropout.cl's backward made again) after it */
    clt__view mask = masked ? clt__at(io->saved, n) : io->saved;   /* unread unmasked */
    clt__view ds = io->scratch, weights = masked ? clt__at(io->scratch, n) : io->saved;
    clt_status st = CLT_OK;
    if (masked)
        st = CLT_LAUNCH(w, "dropout", "dropout_backward", n, CLT_ARG(n), CLT_ARG(io->saved.mem),
                        CLT_ARG(io->saved.off), CLT_ARG(mask.mem), CLT_ARG(mask.off),
                        CLT_ARG(weights.mem), CLT_ARG(weights.off));
    if (st == CLT_OK)
        st = CLT_LAUNCH(w, "attention", "attn_backward_scores", rows, CLT_ARG(g.B), CLT_ARG(g.T),
                        CLT_ARG(g.C), CLT_ARG(g.H), CLT_ARG(io->in.mem), CLT_ARG(io->in.off),
                        CLT_ARG(io->saved.mem), CLT_ARG(io->saved.off), CLT_ARG(mask.mem),
                        CLT_ARG(mask.off), CLT_ARG(masked), CLT_ARG(io->dout.mem),
                        CLT_ARG(io->dout.off), CLT_ARG(ds.mem), CLT_ARG(ds.off));
    if (st != CLT_OK) return st;
    return CLT_LAUNCH(w, "attention", "attn_backward_input", rows, CLT_ARG(g.B), CLT_ARG(g.T),
                      CLT_ARG(g.C), CLT_ARG(g.H), CLT_ARG(g.scale), CLT_ARG(io->in.mem),
                      CLT_ARG(io->in.off), CLT_ARG(weights.mem), CLT_ARG(weights.off), CLT_ARG(ds.mem),
                      CLT_ARG(ds.off), CLT_ARG(io->dout.mem), CLT_ARG(io->dout.off),
                      CLT_ARG(io->din.mem), CLT_ARG(io->din.off));
}

/* A residual block: its begin copies the input through (the copy is what its end adds back);
 * backward, its end keeps the output gradient for the begin, which adds it to the gradient
 * that came back through the block. */
static clt_status residual_forward(const clt__layer *l, const clt__layer_io *io)
{
    size_t n = io->batch * l->in_numel;
    if (l->desc.kind == CLT_LAYER_RESIDUAL_BEGIN) return clt__copy(io->w, io->in, io->out, n);
    return add(io, io->in, io->skip, io->out, n);
}

static clt_status residual_backward(const clt__layer *l, const clt__layer_io *io)
{
    size_t n = io->batch * l->in_numel;
    if (l->desc.kind == CLT_LAYER_RESIDUAL_BEGIN)
        return io->din.mem ? add(io, io->dout, io->skip, io->din, n) : CLT_OK;
    clt_status st = clt__copy(io->w, io->dout, io->saved, n);
    if (st == CLT_OK && io->din.mem) st = clt__copy(io->w, io->dout, io->din, n);
    return st;
}

/* ---- dispatch ----------------------------------------------------------------------------- */

clt_status clt__layer_forward(const clt__layer *l, const clt__layer_io *io)
{
    if (io->batch == 0) return CLT_OK;
    switch (l->desc.kind) {
    case CLT_LAYER_LINEAR: return linear_forward(l, io);
    case CLT_LAYER_CONV2D: return conv_forward(l, io);
    case CLT_LAYER_MAXPOOL2D:
    case CLT_LAYER_AVGPOOL2D: return pool_forward(l, io);
    case CLT_LAYER_FLATTEN: return clt__copy(io->w, io->in, io->out, io->batch * l->in_numel);
    case CLT_LAYER_RELU:
    case CLT_LAYER_LEAKY_RELU:
    case CLT_LAYER_GELU:
    case CLT_LAYER_TANH:
    case CLT_LAYER_SIGMOID: return act_forward(l, io);
    case CLT_LAYER_DROPOUT: return dropout_forward(l, io);
    case CLT_LAYER_LAYERNORM:
    case CLT_LAYER_LAYERNORM_LAST: return layernorm_forward(l, io);
    case CLT_LAYER_GELU_TANH: return gelu_tanh_forward(l, io);
    case CLT_LAYER_EMBEDDING: return embedding_forward(l, io);
    case CLT_LAYER_POSITION: return position_forward(l, io);
    case CLT_LAYER_ATTENTION: return attention_forward(l, io);
    case CLT_LAYER_RESIDUAL_BEGIN:
    case CLT_LAYER_RESIDUAL_END: return residual_forward(l, io);
    case CLT_LAYER_LM_HEAD: return linear_forward(l, io);
    }
    return clt__fail(CLT_ERR_INVALID_ARG, "unknown layer kind %d", (int)l->desc.kind);
}

/* The head is a Linear too (linear_backward): its weight gradient waits for PARAMS like theirs. */
bool clt__layer_splits(const clt__layer *l)
{
    return l->desc.kind == CLT_LAYER_LINEAR || l->desc.kind == CLT_LAYER_LM_HEAD;
}

clt_status clt__layer_backward(const clt__layer *l, const clt__layer_io *io)
{
    /* a layer that does not split does all its work in INPUT */
    if (io->batch == 0 || (io->part == CLT__BWD_PARAMS && !clt__layer_splits(l))) return CLT_OK;
    switch (l->desc.kind) {
    case CLT_LAYER_LINEAR: return linear_backward(l, io);
    case CLT_LAYER_CONV2D: return conv_backward(l, io);
    case CLT_LAYER_MAXPOOL2D:
    case CLT_LAYER_AVGPOOL2D: return pool_backward(l, io);
    case CLT_LAYER_FLATTEN:
        return io->din.mem ? clt__copy(io->w, io->dout, io->din, io->batch * l->in_numel) : CLT_OK;
    case CLT_LAYER_RELU:
    case CLT_LAYER_LEAKY_RELU:
    case CLT_LAYER_GELU:
    case CLT_LAYER_TANH:
    case CLT_LAYER_SIGMOID: return act_backward(l, io);
    case CLT_LAYER_DROPOUT: return dropout_backward(l, io);
    case CLT_LAYER_LAYERNORM:
    case CLT_LAYER_LAYERNORM_LAST: return layernorm_backward(l, io);
    case CLT_LAYER_GELU_TANH: return gelu_tanh_backward(l, io);
    case CLT_LAYER_EMBEDDING: return embedding_backward(l, io);
    case CLT_LAYER_POSITION: return position_backward(l, io);
    case CLT_LAYER_ATTENTION: return attention_backward(l, io);
    case CLT_LAYER_RESIDUAL_BEGIN:
    case CLT_LAYER_RESIDUAL_END: return residual_backward(l, io);
    case CLT_LAYER_LM_HEAD: return linear_backward(l, io);
    }
    return clt__fail(CLT_ERR_INVALID_ARG, "unknown layer kind %d", (int)l->desc.kind);
}
