/* The named models of the cltrain command. */
#include "commands.h"

#include <stdio.h>
#include <string.h>

static clt_status add_all(clt_model *m, const clt_layer_desc *layers, int n)
{
    for (int i = 0; i < n; i++) {
        clt_status st = clt_model_add(m, layers[i]);
        if (st != CLT_OK) return st;
    }
    return CLT_OK;
}

clt_status tool_model_build(const char *name, clt_model **out)
{
    *out = NULL;
    clt_model *m = NULL;
    clt_status st;
    if (!strcmp(name, "seed-mlp")) {
        /* The seed: 1024-512-256-128-10 with ReLU, on 28x28 images padded to 32x32. */
        const clt_layer_desc l[] = {clt_linear(512), clt_relu(), clt_linear(256), clt_relu(),
                                    clt_linear(128), clt_relu(), clt_linear(10)};
        st = clt_model_create(&m, clt_shape1(1024));
        if (st == CLT_OK) st = add_all(m, l, (int)(sizeof l / sizeof l[0]));
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
    } else {
        fprintf(stderr, "cltrain: unknown model '%s' (known: seed-mlp, deep-mlp, cnn)\n", name);
        return CLT_ERR_INVALID_ARG;
    }
    if (st != CLT_OK) {
        clt_model_destroy(m);
        return st;
    }
    *out = m;
    return CLT_OK;
}
