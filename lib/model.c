/* Models: a sequential stack of layer descriptions, their shapes, and the flat parameter layout
 * (each layer's weight then bias, layer after layer) that every device's buffers follow. */
#include "internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *clt__layer_kind_name(clt_layer_kind k)
{
    switch (k) {
    case CLT_LAYER_LINEAR: return "linear";
    case CLT_LAYER_CONV2D: return "conv2d";
    case CLT_LAYER_MAXPOOL2D: return "maxpool2d";
    case CLT_LAYER_AVGPOOL2D: return "avgpool2d";
    case CLT_LAYER_FLATTEN: return "flatten";
    case CLT_LAYER_RELU: return "relu";
    case CLT_LAYER_LEAKY_RELU: return "leaky_relu";
    case CLT_LAYER_GELU: return "gelu";
    case CLT_LAYER_TANH: return "tanh";
    case CLT_LAYER_SIGMOID: return "sigmoid";
    case CLT_LAYER_DROPOUT: return "dropout";
    case CLT_LAYER_LAYERNORM: return "layernorm";
    case CLT_LAYER_GELU_TANH: return "gelu_tanh";
    case CLT_LAYER_LAYERNORM_LAST: return "layernorm_last";
    case CLT_LAYER_EMBEDDING: return "embedding";
    case CLT_LAYER_POSITION: return "position";
    case CLT_LAYER_ATTENTION: return "attention";
    case CLT_LAYER_RESIDUAL_BEGIN: return "residual";
    case CLT_LAYER_RESIDUAL_END: return "residual_end";
    case CLT_LAYER_LM_HEAD: return "lm_head";
    }
    return "unknown";
}

static bool shape_valid(clt_shape s) { return clt_shape_numel(s) > 0; }

/* A shape-to-text helper for messages: "(1, 32, 32)". */
static const char *shape_str(clt_shape s, char *buf, size_t cap)
{
    size_t len = (size_t)snprintf(buf, cap, "(");
    for (int i = 0; i < s.rank && len < cap; i++)
        len += (size_t)snprintf(buf + len, cap - len, i ? ", %d" : "%d", s.dims[i]);
    if (len < cap) snprintf(buf + len, cap - len, ")");
    return buf;
}

clt_status clt_model_create(clt_model **out, clt_shape input)
{
    if (!out) return clt__fail(CLT_ERR_INVALID_ARG, "clt_model_create: out is NULL");
    *out = NULL;
    if (!shape_valid(input) || clt_shape_numel(input) > (1u << 30))
        return clt__fail(CLT_ERR_SHAPE, "clt_model_create: invalid input shape (rank %d; every "
                         "dimension must be positive, rank 1..%d, at most 2^30 elements)",
                         input.rank, CLT_MAX_RANK);
    clt_model *m = calloc(1, sizeof *m);
    if (!m) return clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    m->input = input;
    *out = m;
    return CLT_OK;
}

void clt_model_destroy(clt_model *m)
{
    if (!m) return;
    free(m->layers);
    free(m->description);
    free(m);
}

int clt_model_layer_count(const clt_model *m) { return m ? m->nlayers : 0; }

clt_shape clt_model_input_shape(const clt_model *m)
{
    clt_shape none = {0, {0, 0, 0, 0}};
    return m ? m->input : none;
}

clt_shape clt_model_output_shape(const clt_model *m, int layer)
{
    clt_shape none = {0, {0, 0, 0, 0}};
    if (!m) return none;
    if (layer == -1) layer = m->nlayers - 1;
    if (layer == -1) return m->input;
    if (layer < 0 || layer >= m->nlayers) return none;
    return m->layers[layer].out;
}

size_t clt_model_param_count(const clt_model *m) { return m ? m->nparams : 0; }

/* Fills l's output shape and parameter shapes from its input shape; CLT_ERR_SHAPE if it does
 * not fit. */
static clt_status infer(clt__layer *l, int index)
{
    const clt_layer_desc *d = &l->desc;
    clt_shape in = l->in, o = in;
    char sb[64];
    const char *kind = clt__layer_kind_name(d->kind);
    memset(&l->w_shape, 0, sizeof l->w_shape);
    memset(&l->b_shape, 0, sizeof l->b_shape);
    l->saved_per_sample = 0;
    switch (d->kind) {
    case CLT_LAYER_LINEAR:
        if (in.rank != 1 && in.rank != 2)
            return clt__fail(CLT_ERR_SHAPE, "layer %d (linear) needs a vector or a (time, "
                             "features) input, got %s: add clt_flatten() before it", index,
                             shape_str(in, sb, sizeof sb));
        if (d->out <= 0 || d->out > (1 << 24))
            return clt__fail(CLT_ERR_SHAPE, "layer %d (linear): %d output features", index, d->out);
        o = in;
        o.dims[in.rank - 1] = d->out;
        l->w_shape = (clt_shape){2, {d->out, in.dims[in.rank - 1], 0, 0}};
        if (d->bias) l->b_shape = clt_shape1(d->out);
        break;
    case CLT_LAYER_CONV2D:
    case CLT_LAYER_MAXPOOL2D:
    case CLT_LAYER_AVGPOOL2D: {
        if (in.rank != 3)
            return clt__fail(CLT_ERR_SHAPE, "layer %d (%s) needs a (C, H, W) input, got %s", index,
                             kind, shape_str(in, sb, sizeof sb));
        int k = d->kernel, pad = d->kind == CLT_LAYER_CONV2D ? d->padding : 0;
        int s = d->stride ? d->stride : (d->kind == CLT_LAYER_CONV2D ? 0 : k);   /* 0: pools only */
        if (k <= 0 || s <= 0 || pad < 0 || k > 64 || s > 64 || pad > 64)
            return clt__fail(CLT_ERR_SHAPE, "layer %d (%s): kernel %d, stride %d, padding %d "
                             "(kernel and stride 1..64, padding 0..64)", index, kind, k, s, pad);
        if (in.dims[1] + 2 * pad < k || in.dims[2] + 2 * pad < k)
            return clt__fail(CLT_ERR_SHAPE, "layer %d (%s): kernel %d is larger than the input %s "
                             "with padding %d", index, kind, k, shape_str(in, sb, sizeof sb), pad);
        int oh = (in.dims[1] + 2 * pad - k) / s + 1, ow = (in.dims[2] + 2 * pad - k) / s + 1;
        if (d->kind == CLT_LAYER_CONV2D) {
            if (d->out <= 0 || d->out > 65536)
                return clt__fail(CLT_ERR_SHAPE, "layer %d (conv2d): %d output channels", index, d->out);
            o = clt_shape3(d->out, oh, ow);
            l->w_shape = (clt_shape){4, {d->out, in.dims[0], k, k}};
            if (d->bias) l->b_shape = clt_shape1(d->out);
        } else {
            o = clt_shape3(in.dims[0], oh, ow);
            if (d->kind == CLT_LAYER_MAXPOOL2D) l->saved_per_sample = clt_shape_numel(o);
        }
        l->desc.stride = s;
        break;
    }
    case CLT_LAYER_FLATTEN:
        o = clt_shape1((int)clt_shape_numel(in));
        break;
    case CLT_LAYER_RELU:
    case CLT_LAYER_GELU:
    case CLT_LAYER_GELU_TANH:
    case CLT_LAYER_RESIDUAL_BEGIN:
    case CLT_LAYER_TANH:
    case CLT_LAYER_SIGMOID:
        break;
    case CLT_LAYER_LEAKY_RELU:
        if (!isfinite(d->alpha))
            return clt__fail(CLT_ERR_INVALID_ARG, "layer %d (leaky_relu): slope is not finite", index);
        break;
    case CLT_LAYER_DROPOUT:
        if (!(d->alpha >= 0.0f && d->alpha < 1.0f))
            return clt__fail(CLT_ERR_INVALID_ARG, "layer %d (dropout): probability %g is not in "
                             "[0, 1)", index, (double)d->alpha);
        l->saved_per_sample = clt_shape_numel(in);
        break;
    case CLT_LAYER_LAYERNORM:
        if (!(d->alpha > 0.0f) || !isfinite(d->alpha))
            return clt__fail(CLT_ERR_INVALID_ARG, "layer %d (layernorm): eps %g must be positive",
                             index, (double)d->alpha);
        l->w_shape = in;
        l->b_shape = in;
        l->saved_per_sample = 2;   /* mean and 1/std */
        break;
    case CLT_LAYER_LAYERNORM_LAST:
        if (!(d->alpha > 0.0f) || !isfinite(d->alpha))
            return clt__fail(CLT_ERR_INVALID_ARG, "layer %d (layernorm_last): eps %g must be "
                             "positive", index, (double)d->alpha);
        l->w_shape = clt_shape1(in.dims[in.rank - 1]);
        l->b_shape = l->w_shape;
        l->saved_per_sample = 2 * (clt_shape_numel(in) / (size_t)in.dims[in.rank - 1]);
        break;
    case CLT_LAYER_EMBEDDING:
        if (index != 0 || in.rank != 1)
            return clt__fail(CLT_ERR_SHAPE, "layer %d (embedding) takes token ids: it must be the "
                             "first layer of a model whose input is (time), got %s", index,
                             shape_str(in, sb, sizeof sb));
        if (d->count <= 0 || d->count > (1 << 24) || d->out <= 0 || d->out > (1 << 16))
            return clt__fail(CLT_ERR_SHAPE, "layer %d (embedding): vocabulary %d (1..2^24) of %d "
                             "features (1..65536)", index, d->count, d->out);
        o = clt_shape2(in.dims[0], d->out);
        l->w_shape = clt_shape2(d->count, d->out);
        break;
    case CLT_LAYER_POSITION:
        if (in.rank != 2)
            return clt__fail(CLT_ERR_SHAPE, "layer %d (position) needs a (time, features) input, "
                             "got %s", index, shape_str(in, sb, sizeof sb));
        l->w_shape = in;
        break;
    case CLT_LAYER_ATTENTION: {
        if (in.rank != 2 || in.dims[1] % 3)
            return clt__fail(CLT_ERR_SHAPE, "layer %d (attention) needs a (time, 3 x features) "
                             "input (Q, K and V side by side), got %s", index,
                             shape_str(in, sb, sizeof sb));
        int C = in.dims[1] / 3, T = in.dims[0];
        if (d->count <= 0 || C % d->count)
            return clt__fail(CLT_ERR_SHAPE, "layer %d (attention): %d heads do not divide %d "
                             "features", index, d->count, C);
        if (!(d->alpha >= 0.0f && d->alpha < 1.0f))
            return clt__fail(CLT_ERR_INVALID_ARG, "layer %d (attention): dropout %g is not in "
                             "[0, 1)", index, (double)d->alpha);
        if (T > 4096)
            return clt__fail(CLT_ERR_SHAPE, "layer %d (attention): %d positions (4096 at most)",
                             index, T);
        o = clt_shape2(T, C);
        /* the weights, and under dropout its mask */
        l->saved_per_sample = (size_t)d->count * (size_t)T * (size_t)T * (d->alpha > 0.0f ? 2 : 1);
        break;
    }
    case CLT_LAYER_RESIDUAL_END:
        l->saved_per_sample = clt_shape_numel(in);   /* the gradient for the block's input */
        break;
    case CLT_LAYER_LM_HEAD:
        if (in.rank != 1 && in.rank != 2)
            return clt__fail(CLT_ERR_SHAPE, "layer %d (lm_head) needs a (time, features) input, "
                             "got %s", index, shape_str(in, sb, sizeof sb));
        if (d->out <= 0)
            return clt__fail(CLT_ERR_SHAPE, "layer %d (lm_head): vocabulary %d", index, d->out);
        o = in;
        o.dims[in.rank - 1] = d->out;
        break;
    default:
        return clt__fail(CLT_ERR_INVALID_ARG, "layer %d: unknown layer kind %d", index, (int)d->kind);
    }
    l->out = o;
    l->in_numel = clt_shape_numel(in);
    l->out_numel = clt_shape_numel(o);
    l->in_feat = (size_t)in.dims[in.rank - 1];
    l->out_feat = (size_t)o.dims[o.rank - 1];
    l->rows = in.rank == 2 ? (size_t)in.dims[0] : o.rank == 2 ? (size_t)o.dims[0] : 1;   /* embedding: (T) ids */
    l->w_count = l->w_shape.rank ? clt_shape_numel(l->w_shape) : 0;
    l->b_count = l->b_shape.rank ? clt_shape_numel(l->b_shape) : 0;
    if (l->out_numel == 0 || l->out_numel > (1u << 30))
        return clt__fail(CLT_ERR_SHAPE, "layer %d (%s): output %s is empty or too large", index,
                         kind, shape_str(o, sb, sizeof sb));
    return CLT_OK;
}

clt_status clt_model_add(clt_model *m, clt_layer_desc desc)
{
    if (!m) return clt__fail(CLT_ERR_INVALID_ARG, "clt_model_add: model is NULL");
    if (m->nlayers >= 4096) return clt__fail(CLT_ERR_INVALID_ARG, "clt_model_add: 4096 layers at most");
    clt__layer l;
    memset(&l, 0, sizeof l);
    l.desc = desc;
    l.in = m->nlayers ? m->layers[m->nlayers - 1].out : m->input;
    l.pair = l.tie = -1;
    l.heads_all = desc.kind == CLT_LAYER_ATTENTION ? desc.count : 0;
    clt_status st = infer(&l, m->nlayers);
    if (st != CLT_OK) return st;
    char a[64], b[64];
    if (desc.kind == CLT_LAYER_RESIDUAL_END) {
        int open = -1;
        for (int i = m->nlayers - 1, depth = 0; i >= 0 && open < 0; i--)
            if (m->layers[i].desc.kind == CLT_LAYER_RESIDUAL_END) depth++;
            else if (m->layers[i].desc.kind == CLT_LAYER_RESIDUAL_BEGIN && depth-- == 0) open = i;
        if (open < 0)
            return clt__fail(CLT_ERR_INVALID_ARG, "layer %d (residual_end): no residual block is "
                             "open (clt_residual_begin() first)", m->nlayers);
        clt_shape x = m->layers[open].in;
        if (x.rank != l.in.rank || memcmp(x.dims, l.in.dims, sizeof x.dims))
            return clt__fail(CLT_ERR_SHAPE, "the residual block of layers %d..%d turns its input "
                             "%s into %s: y = x + f(x) needs f to keep the shape", open,
                             m->nlayers, shape_str(x, a, sizeof a), shape_str(l.in, b, sizeof b));
        l.pair = open;
    }
    if (desc.kind == CLT_LAYER_LM_HEAD) {
        const clt__layer *e = m->nlayers ? &m->layers[0] : NULL;
        if (!e || e->desc.kind != CLT_LAYER_EMBEDDING || e->desc.count != desc.out ||
            e->desc.out != (int)l.in_feat)
            return clt__fail(CLT_ERR_SHAPE, "layer %d (lm_head): a tied head needs the model to "
                             "start with clt_embedding(%d, %zu), the head's vocabulary and width",
                             m->nlayers, desc.out, l.in_feat);
        if (e->tie >= 0)
            return clt__fail(CLT_ERR_INVALID_ARG, "layer %d (lm_head): the embedding is already "
                             "tied to layer %d", m->nlayers, e->tie);
        l.tie = 0;
    }
    size_t np = l.w_count + l.b_count;
    if (m->nparams + np > ((size_t)1 << 34))
        return clt__fail(CLT_ERR_SHAPE, "layer %d: the model would exceed 2^34 parameters", m->nlayers);
    if (m->nlayers == m->cap) {
        int nc = m->cap ? m->cap * 2 : 8;
        clt__layer *g = realloc(m->layers, (size_t)nc * sizeof *g);
        if (!g) return clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
        m->layers = g;
        m->cap = nc;
    }
    l.param_off = m->nparams;
    l.device = -1;
    m->nparams += np;
    if (l.pair >= 0) m->layers[l.pair].pair = m->nlayers;
    if (l.tie >= 0) m->layers[l.tie].tie = m->nlayers;
    m->layers[m->nlayers++] = l;
    return CLT_OK;
}

size_t clt__model_positions(const clt_model *m)
{
    clt_shape o = m->layers[m->nlayers - 1].out;
    return o.rank == 2 ? (size_t)o.dims[0] : 1;
}

size_t clt__model_classes(const clt_model *m)
{
    return m->layers[m->nlayers - 1].out_numel / clt__model_positions(m);
}

bool clt__model_takes_tokens(const clt_model *m)
{
    return m->nlayers > 0 && m->layers[0].desc.kind == CLT_LAYER_EMBEDDING;
}

void clt__model_cuts(const clt_model *m, bool *ok)
{
    for (int i = 0; i <= m->nlayers; i++) ok[i] = true;
    for (int i = 0; i < m->nlayers; i++) {
        const clt__layer *l = &m->layers[i];
        int last = l->desc.kind == CLT_LAYER_RESIDUAL_BEGIN ? l->pair : -1;
        for (int j = i + 1; j <= last; j++) ok[j] = false;
    }
}

clt_status clt__model_check_range(const clt_model *m, int first, int last, const char *fn)
{
    return clt__model_check_blocks(m, first, last, false, fn);
}

clt_status clt__model_check_blocks(const clt_model *m, int first, int last, bool tie_apart, const char *fn)
{
    for (int i = first; i <= last; i++) {
        const clt__layer *l = &m->layers[i];
        if (l->desc.kind == CLT_LAYER_RESIDUAL_BEGIN && l->pair < 0)
            return clt__fail(CLT_ERR_INVALID_ARG, "%s: the residual block opened at layer %d is "
                             "never closed (clt_residual_end())", fn, i);
        if ((l->desc.kind == CLT_LAYER_RESIDUAL_BEGIN || l->desc.kind == CLT_LAYER_RESIDUAL_END) &&
            (l->pair < first || l->pair > last))
            return clt__fail(CLT_ERR_INVALID_ARG, "%s: layers %d..%d cut the residual block of "
                             "layers %d..%d in two: a block must stay in one stage", fn, first,
                             last, l->pair < i ? l->pair : i, l->pair < i ? i : l->pair);
        if (!tie_apart && l->tie >= 0 && (l->tie < first || l->tie > last))
            return clt__fail(CLT_ERR_INVALID_ARG, "%s: layers %d..%d separate the head (layer %d) "
                             "from the token embedding it shares its weight with (layer %d)", fn,
                             first, last, l->desc.kind == CLT_LAYER_LM_HEAD ? i : l->tie,
                             l->desc.kind == CLT_LAYER_LM_HEAD ? l->tie : i);
    }
    return CLT_OK;
}

clt_status clt_model_set_init(clt_model *m, clt_init init)
{
    if (!m) return clt__fail(CLT_ERR_INVALID_ARG, "clt_model_set_init: model is NULL");
    if (init != CLT_INIT_TORCH && init != CLT_INIT_GPT2)
        return clt__fail(CLT_ERR_INVALID_ARG, "clt_model_set_init: unknown initialisation %d", (int)init);
    m->init = init;
    return CLT_OK;
}

clt_gpt_config clt_gpt_config_default(void)
{
    clt_gpt_config c = {sizeof(clt_gpt_config), 0, 64, 4, 4, 128, 0.0f, 1, 1e-5f};
    return c;
}

clt_status clt_model_create_gpt(clt_model **out, const clt_gpt_config *config)
{
    if (!out) return clt__fail(CLT_ERR_INVALID_ARG, "clt_model_create_gpt: out is NULL");
    *out = NULL;
    clt_gpt_config c = clt_gpt_config_default();
    clt_status st = clt__options_read(&c, config, sizeof c, CLT__GPT_CONFIG_V1, "clt_model_create_gpt",
                                      "clt_gpt_config");
    if (st != CLT_OK) return st;
    const char *bad = c.vocab < 1 || c.vocab > (1 << 24) ? "vocab (1..2^24)"
                      : c.block < 1 || c.block > 4096 ? "block (1..4096)"
                      : c.layers < 1 || c.layers > 256 ? "layers (1..256)"
                      : c.embd < 1 || c.embd > 65536 ? "embd (1..65536)"
                      : c.heads < 1 || c.embd % c.heads ? "heads (a divisor of embd)"
                      : !(c.dropout >= 0.0f && c.dropout < 1.0f) ? "dropout ([0, 1))"
                      : c.tied != 0 && c.tied != 1 ? "tied (0 or 1)"
                      : !(c.eps > 0.0f) || !isfinite(c.eps) ? "eps (positive)" : NULL;
    if (bad) return clt__fail(CLT_ERR_INVALID_ARG, "clt_model_create_gpt: %s is out of range", bad);
    clt_model *m;
    st = clt_model_create(&m, clt_shape1(c.block));
    if (st != CLT_OK) return st;
    clt_layer_desc d[32];
    int n = 0;
    /* nanoGPT's GPT: drop(wte + wpe), blocks, ln_f, lm_head */
    d[n++] = clt_embedding(c.vocab, c.embd);
    d[n++] = clt_position_embedding();
    if (c.dropout > 0.0f) d[n++] = clt_dropout(c.dropout);
    for (int i = 0; i < n && st == CLT_OK; i++) st = clt_model_add(m, d[i]);
    for (int b = 0; b < c.layers && st == CLT_OK; b++) {
        n = 0;
        d[n++] = clt_residual_begin();
        d[n++] = clt_layernorm_last(c.eps);
        d[n++] = clt_linear(3 * c.embd);
        d[n++] = clt_causal_attention(c.heads, c.dropout);
        d[n++] = clt_linear(c.embd);
        if (c.dropout > 0.0f) d[n++] = clt_dropout(c.dropout);
        d[n++] = clt_residual_end();
        d[n++] = clt_residual_begin();
        d[n++] = clt_layernorm_last(c.eps);
        d[n++] = clt_linear(4 * c.embd);
        d[n++] = clt_gelu_tanh();
        d[n++] = clt_linear(c.embd);
        if (c.dropout > 0.0f) d[n++] = clt_dropout(c.dropout);
        d[n++] = clt_residual_end();
        for (int i = 0; i < n && st == CLT_OK; i++) st = clt_model_add(m, d[i]);
    }
    if (st == CLT_OK) st = clt_model_add(m, clt_layernorm_last(c.eps));
    if (st == CLT_OK) st = clt_model_add(m, clt_lm_head(c.vocab, c.tied));
    if (st == CLT_OK) st = clt_model_set_init(m, CLT_INIT_GPT2);
    if (st != CLT_OK) {
        clt_model_destroy(m);
        return st;
    }
    *out = m;
    return CLT_OK;
}

clt_status clt__model_find_param(const clt_model *m, int layer, const char *name, size_t *off,
                                 size_t *count)
{
    if (!m || !name) return clt__fail(CLT_ERR_INVALID_ARG, "model or parameter name is NULL");
    if (layer < 0 || layer >= m->nlayers)
        return clt__fail(CLT_ERR_INVALID_ARG, "layer %d out of range (the model has %d)", layer,
                         m->nlayers);
    const clt__layer *l = &m->layers[layer];
    if (!strcmp(name, "weight") && l->w_count) {
        *off = l->param_off;
        *count = l->w_count;
        return CLT_OK;
    }
    if (!strcmp(name, "bias") && l->b_count) {
        *off = l->param_off + l->w_count;
        *count = l->b_count;
        return CLT_OK;
    }
    return clt__fail(CLT_ERR_INVALID_ARG, "layer %d (%s) has no parameter '%s'%s", layer,
                     clt__layer_kind_name(l->desc.kind), name,
                     l->w_count ? (l->b_count ? " (it has weight and bias)" : " (it has weight)") : "");
}

clt_status clt_model_param_shape(const clt_model *m, int layer, const char *name, clt_shape *out)
{
    size_t off, count;
    if (!out) return clt__fail(CLT_ERR_INVALID_ARG, "clt_model_param_shape: out is NULL");
    clt_status st = clt__model_find_param(m, layer, name, &off, &count);
    if (st != CLT_OK) return st;
    *out = !strcmp(name, "weight") ? m->layers[layer].w_shape : m->layers[layer].b_shape;
    return CLT_OK;
}

clt_status clt_model_place(clt_model *m, int first_layer, int last_layer, int device)
{
    if (!m) return clt__fail(CLT_ERR_INVALID_ARG, "clt_model_place: model is NULL");
    if (first_layer < 0 || last_layer < first_layer || last_layer >= m->nlayers)
        return clt__fail(CLT_ERR_INVALID_ARG, "clt_model_place: layers %d..%d are not a range of "
                         "the model's layers 0..%d", first_layer, last_layer, m->nlayers - 1);
    if (device < 0)
        return clt__fail(CLT_ERR_INVALID_ARG, "clt_model_place: device %d is negative", device);
    for (int i = first_layer; i <= last_layer; i++)
        if (m->layers[i].device >= 0)
            return clt__fail(CLT_ERR_INVALID_ARG, "clt_model_place: layer %d (%s) is already placed "
                             "on device %d: ranges %d..%d and an earlier one overlap", i,
                             clt__layer_kind_name(m->layers[i].desc.kind), m->layers[i].device,
                             first_layer, last_layer);
    for (int i = first_layer; i <= last_layer; i++) m->layers[i].device = device;
    return CLT_OK;
}

int clt_model_placement(const clt_model *m, int layer)
{
    if (!m || layer < 0 || layer >= m->nlayers) return -1;
    return m->layers[layer].device;
}

clt_status clt__model_clone(const clt_model *m, clt_model **out)
{
    clt_model *c = calloc(1, sizeof *c);
    if (!c) return clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    *c = *m;
    c->description = NULL;
    c->cap = m->nlayers;
    c->layers = NULL;
    if (m->nlayers) {
        c->layers = malloc((size_t)m->nlayers * sizeof *c->layers);
        if (!c->layers) {
            free(c);
            return clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
        }
        memcpy(c->layers, m->layers, (size_t)m->nlayers * sizeof *c->layers);
    }
    *out = c;
    return CLT_OK;
}

const char *clt_model_describe(clt_model *m)
{
    if (!m) return "";
    free(m->description);
    m->description = NULL;
    char *buf = NULL;
    size_t len = 0, cap = 0;
    char a[64], b[64];
    clt__sbuf_printf(&buf, &len, &cap, "input %s\n", shape_str(m->input, a, sizeof a));
    for (int i = 0; i < m->nlayers; i++) {
        const clt__layer *l = &m->layers[i];
        clt__sbuf_printf(&buf, &len, &cap, "%3d %-10s %s -> %s", i, clt__layer_kind_name(l->desc.kind),
                         shape_str(l->in, a, sizeof a), shape_str(l->out, b, sizeof b));
        if (l->w_count + l->b_count)
            clt__sbuf_printf(&buf, &len, &cap, ", %zu params", l->w_count + l->b_count);
        if (l->device >= 0) clt__sbuf_printf(&buf, &len, &cap, ", on device %d", l->device);
        clt__sbuf_printf(&buf, &len, &cap, "\n");
    }
    clt__sbuf_printf(&buf, &len, &cap, "%zu parameters\n", m->nparams);
    m->description = buf;
    return buf ? buf : "";
}

/* Uniform in [-bound, bound) from the generator, 24 random bits. */
static float uniform(uint64_t *st, float bound)
{
    float u = (float)(clt__splitmix64(st) >> 40) * (1.0f / 16777216.0f);
    return (2.0f * u - 1.0f) * bound;
}

/* N(0, std) from the generator: Box-Muller on two 24-bit uniforms in (0, 1]. */
static float normal(uint64_t *st, float std)
{
    double u1 = ((double)(clt__splitmix64(st) >> 40) + 1.0) / 16777216.0;
    double u2 = (double)(clt__splitmix64(st) >> 40) / 16777216.0;
    return (float)(sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2) * (double)std);
}

void clt__model_init_params(const clt_model *m, uint64_t seed, float *params)
{
    uint64_t st = seed;
    int blocks = 0;
    for (int i = 0; i < m->nlayers; i++) blocks += m->layers[i].desc.kind == CLT_LAYER_RESIDUAL_END;
    bool gpt2 = m->init == CLT_INIT_GPT2;
    for (int i = 0; i < m->nlayers; i++) {
        const clt__layer *l = &m->layers[i];
        float *w = params + l->param_off, *b = w + l->w_count;
        switch (l->desc.kind) {
        case CLT_LAYER_LINEAR:
        case CLT_LAYER_CONV2D:
            if (gpt2) {
                /* nanoGPT: c_proj (a Linear that ends a residual block, with or without a
                 * dropout before the end) 0.02 / sqrt(2 n_layer) */
                int next = i + 1;
                while (next < m->nlayers && m->layers[next].desc.kind == CLT_LAYER_DROPOUT) next++;
                bool proj = next < m->nlayers && m->layers[next].desc.kind == CLT_LAYER_RESIDUAL_END;
                float std = proj && blocks ? 0.02f / sqrtf((float)blocks) : 0.02f;
                for (size_t j = 0; j < l->w_count; j++) w[j] = normal(&st, std);
                for (size_t j = 0; j < l->b_count; j++) b[j] = 0.0f;
            } else {
                /* PyTorch: kaiming_uniform_(a=sqrt(5)) gives U(-1/sqrt(fan_in), 1/sqrt(fan_in))
                 * for the weight, and the bias uses the same bound. */
                size_t fan_in = l->w_count / (size_t)l->w_shape.dims[0];
                float bound = 1.0f / sqrtf((float)fan_in);
                for (size_t j = 0; j < l->w_count; j++) w[j] = uniform(&st, bound);
                for (size_t j = 0; j < l->b_count; j++) b[j] = uniform(&st, bound);
            }
            break;
        case CLT_LAYER_EMBEDDING:
        case CLT_LAYER_POSITION:   /* nn.Embedding: N(0, 1) */
            for (size_t j = 0; j < l->w_count; j++) w[j] = normal(&st, gpt2 ? 0.02f : 1.0f);
            break;
        case CLT_LAYER_LAYERNORM:
        case CLT_LAYER_LAYERNORM_LAST:
            for (size_t j = 0; j < l->w_count; j++) w[j] = 1.0f;
            for (size_t j = 0; j < l->b_count; j++) b[j] = 0.0f;
            break;
        default:
            break;
        }
    }
}
