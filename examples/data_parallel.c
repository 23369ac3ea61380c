/* The seed MLP (1024-512-256-128-10) trained data-parallel on every selected device: each
 * device holds a replica, every batch is split between them, gradients are summed across
 * devices, and every replica applies the same update. Pick devices with CLT_DEVICES, e.g.
 *
 *     CLT_DEVICES=gpu ./data_parallel               # every GPU, any vendor
 *     POCL_DEVICES="basic basic" ./data_parallel    # two CPU devices through PoCL
 */
#include <cltrain.h>
#include <stdio.h>
#include <stdlib.h>

#define CHECK(call)                                                                             \
    do {                                                                                        \
        clt_status s_ = (call);                                                                 \
        if (s_ != CLT_OK) {                                                                     \
            fprintf(stderr, "%s: %s\n", #call, clt_last_error());                               \
            return 1;                                                                           \
        }                                                                                       \
    } while (0)

enum { BATCH = 256, EPOCHS = 3 };

int main(void)
{
    clt_runtime *rt;
    CHECK(clt_runtime_create(&rt, NULL));   /* $CLT_DEVICES, else every device */

    clt_model *m;
    CHECK(clt_model_create(&m, clt_shape1(1024)));
    const clt_layer_desc layers[] = {clt_linear(512), clt_relu(), clt_linear(256), clt_relu(),
                                     clt_linear(128), clt_relu(), clt_linear(10)};
    for (size_t i = 0; i < sizeof layers / sizeof layers[0]; i++) CHECK(clt_model_add(m, layers[i]));

    clt_dataset *train, *test;
    clt_dataset_options o = clt_dataset_options_default();
    o.pad_to = 32;      /* 28x28 -> 32x32 = 1024 inputs */
    o.normalize = 1;
    CHECK(clt_dataset_load_fashion_mnist(&train, &test, NULL, &o));

    clt_train_params p = clt_train_params_default();
    p.parallel = CLT_PARALLEL_DATA;   /* a replica on every device */
    p.split = CLT_SPLIT_AUTO;         /* faster devices get more of each batch */
    p.optim = clt_adam(1e-3f);
    p.max_batch = BATCH;
    clt_trainer *t;
    CHECK(clt_trainer_create(&t, rt, m, &p));

    size_t n = clt_dataset_size(train);
    uint32_t *order = malloc(n * sizeof *order);
    float *x = malloc((size_t)BATCH * 1024 * sizeof *x);
    int32_t y[BATCH];
    if (!order || !x) return 1;
    for (int epoch = 0; epoch < EPOCHS; epoch++) {
        CHECK(clt_dataset_shuffle(order, n, (uint64_t)epoch));
        for (size_t i = 0; i + BATCH <= n; i += BATCH) {
            CHECK(clt_dataset_batch(train, order, i, BATCH, x, y));
            CHECK(clt_trainer_step(t, x, y, BATCH, NULL));
        }
        float acc;
        CHECK(clt_trainer_evaluate(t, clt_dataset_inputs(test), clt_dataset_labels(test),
                                   clt_dataset_size(test), NULL, &acc));
        size_t split[16] = {0};
        int nd = clt_runtime_device_count(rt);
        CHECK(clt_trainer_split(t, split, nd < 16 ? nd : 16));
        printf("epoch %d: test accuracy %.2f%%, last batch split:", epoch + 1, 100.0 * acc);
        for (int d = 0; d < nd && d < 16; d++) printf(" %zu", split[d]);
        printf("\n");
    }
    free(order), free(x);
    clt_trainer_destroy(t);
    clt_dataset_destroy(train), clt_dataset_destroy(test);
    clt_model_destroy(m);
    clt_runtime_destroy(rt);
    return 0;
}
