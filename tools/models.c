/* The named models of the cltrain command, and how `train` and `bench train` lay them out on the
 * devices (one function for both, from the same options). */
#include "commands.h"

#include <stdio.h>
#include <string.h>

const char *const tool_model_names[] = {"seed-mlp", "deep-mlp", "cnn", "gpt", NULL};
const char *const tool_parallel_names[] = {"none", "data", "model", "tensor", "auto", NULL};
const char *const tool_placement_names[] = {"auto", "seed", NULL};
const char *const tool_split_names[] = {"equal", "auto", NULL};

static clt_status add_all(clt_model *m, const clt_layer_desc *layers, int n)
{
    for (int i = 0; i < n; i++) {
        clt_status st = clt_model_add(m, layers[i]);
        if (st != CLT_OK) return st;
    }
    return CLT_OK;
}

clt_status tool_model_build(const char *name, int seed_placement, clt_model **out)
{
    *out = NULL;
    clt_model *m = NULL;
    clt_status st;
    if (seed_placement && strcmp(name, "seed-mlp")) {
        fprintf(stderr, "cltrain: --placement seed needs --model seed-mlp (the seed's four Linear layers)\n");
        return CLT_ERR_INVALID_ARG;
    }
    if (!strcmp(name, "seed-mlp")) {
        /* The seed: 1024-512-256-128-10 with ReLU, on 28x28 images padded to 32x32. */
        const clt_layer_desc l[] = {clt_linear(512), clt_relu(), clt_linear(256), clt_relu(),
                                    clt_linear(128), clt_relu(), clt_linear(10)};
        st = clt_model_create(&m, clt_shape1(1024));
        if (st == CLT_OK) st = add_all(m, l, (int)(sizeof l / sizeof l[0]));
        /* PyTorch's ModelParallelNN: fc1 (and its relu) on 0; fc2, fc3 on 1; fc4 on 0 (tensor
         * parallel: on groups 0 and 1) */
        if (st == CLT_OK && seed_placement) st = clt_model_place(m, 0, 1, 0);
        if (st == CLT_OK && seed_placement) st = clt_model_place(m, 2, 5, 1);
        if (st == CLT_OK && seed_placement) st = clt_model_place(m, 6, 6, 0);
    } else if (!strcmp(name, "deep-mlp")) {
        /* For model parallelism: 1024 inputs, eight hidden Linear(1024)+ReLU, 10 outputs. */
        st = clt_model_create(&m, clt_shape1(1024));
        for (int i = 0; i < 8 && st == CLT_OK; i++) {
            st = clt_model_add(m, clt_linear(1024));
            if (st == CLT_OK) st = clt_model_add(m, clt_relu());
        }
        if (st == CLT_OK) st = clt_model_add(m, clt_linear(10));
    } else if (!strcmp(name, "cnn")) {
        /* A small Conv-ReLU-Pool network on 1x32x32. */
        const clt_layer_desc l[] = {clt_conv2d(16, 5, 1, 2), clt_relu(), clt_maxpool2d(2, 2),
                                    clt_conv2d(32, 5, 1, 2), clt_relu(), clt_maxpool2d(2, 2),
                                    clt_flatten(), clt_linear(128), clt_relu(), clt_linear(10)};
        st = clt_model_create(&m, clt_shape3(1, 32, 32));
        if (st == CLT_OK) st = add_all(m, l, (int)(sizeof l / sizeof l[0]));
    } else if (!strcmp(name, "gpt")) {
        /* nanoGPT's CPU configuration on a 65-character vocabulary (tiny Shakespeare's) */
        clt_gpt_config g = clt_gpt_config_default();
        g.vocab = TOOL_GPT_VOCAB;
        st = clt_model_create_gpt(&m, &g);
    } else {
        fprintf(stderr, "cltrain: unknown model '%s' (known: seed-mlp, deep-mlp, cnn, gpt)\n", name);
        return CLT_ERR_INVALID_ARG;
    }
    if (st != CLT_OK) {
        clt_model_destroy(m);
        return st;
    }
    *out = m;
    return CLT_OK;
}

void tool_layout_params(const tool_layout *l, clt_train_params *p)
{
    p->parallel = (clt_parallel)l->parallel;
    clt_split split = l->split ? CLT_SPLIT_AUTO : CLT_SPLIT_EQUAL;   /* --split: the mode's own */
    if (p->parallel == CLT_PARALLEL_TENSOR) p->tensor_split = split;
    else if (p->parallel == CLT_PARALLEL_DATA) p->split = split;
    p->pipeline = l->schedule;
    p->micro_batches = (int)l->micro_batches;
    p->pipelines = (int)l->pipelines;
    p->tensor_group = (int)l->tensor_group;
    p->verify_replicas = l->verify;
    if (p->parallel == CLT_PARALLEL_TENSOR && l->weights)
        p->tensor_split = CLT_SPLIT_WEIGHTS, p->tensor_split_weights = l->weights;
}

const char *tool_placement_text(const clt_model *m, char *buf, size_t cap)
{
    size_t len = 0;
    int n = clt_model_layer_count(m);
    buf[0] = '\0';
    for (int first = 0, last; first < n && len < cap; first = last + 1) {
        int dev = clt_model_placement(m, first);
        for (last = first; last + 1 < n && clt_model_placement(m, last + 1) == dev;) last++;
        len += (size_t)snprintf(buf + len, cap - len, "%slayer%s %d", first ? ", " : "", first == last ? "" : "s", first);
        if (last > first && len < cap) len += (size_t)snprintf(buf + len, cap - len, "..%d", last);
        if (len < cap) len += (size_t)snprintf(buf + len, cap - len, " on %d", dev);
    }
    return buf;
}

void tool_print_tensor_slices(const clt_trainer *t, const clt_model *m, int nd)
{
    for (int l = 0, f, c; l < clt_model_layer_count(m); l++) {
        clt_slice_kind k;
        if (clt_trainer_tensor_slice(t, l, 0, &k, &f, &c) != CLT_OK || (k != CLT_SLICE_COLUMN && k != CLT_SLICE_ROW))
            continue;
        int col = k == CLT_SLICE_COLUMN;
        /* c_attn: its 3C outputs become the attention's C */
        clt_shape o = clt_model_output_shape(m, l), next = clt_model_output_shape(m, l + 1);
        int qkv = col && next.rank && 3 * next.dims[next.rank - 1] == o.dims[o.rank - 1];
        printf("cltrain: layer %d %s-parallel, %s features", l, col ? "column" : "row",
               qkv ? "Q, K and V" : col ? "output" : "input");
        for (int d = 0; d < nd && clt_trainer_tensor_slice(t, l, d, &k, &f, &c) == CLT_OK; d++)
            printf("%s %d..%d on %d", d ? "," : "", f, f + c - 1, d);
        printf("\n");
    }
}

clt_status tool_plan(clt_runtime *rt, const clt_model *m, clt_train_params *p)
{
    clt_plan_option o[64];
    int n = 0, chosen = -1;
    printf("cltrain: --parallel auto: trying each way to train on these devices (%zu samples a step)\n",
           p->max_batch);
    clt_status st = clt_plan_parallel(rt, m, p, o, 64, &n, &chosen);
    for (int i = 0; i < n && i < 64; i++) {
        if (o[i].status == CLT_OK)
            printf("cltrain:   %-58s %9.2f ms a step%s\n", o[i].what, 1e3 * o[i].step_seconds,
                   i == chosen ? "  <- chosen" : "");
        else
            printf("cltrain:   %-58s cannot run (%s)\n", o[i].what, clt_status_name(o[i].status));
    }
    if (st != CLT_OK) {
        tool_fail("planning the parallel mode", st);
        return st;
    }
    *p = o[chosen].params;
    return CLT_OK;
}
