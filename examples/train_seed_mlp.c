/* The README's example: the seed MLP (1024-512-256-128-10) trained on Fashion-MNIST.
 * Keep the two identical. */
#include <cltrain.h>
#include <stdio.h>
#include <stdlib.h>

#define CHECK(call) do { clt_status s_ = (call); if (s_ != CLT_OK) { \
        fprintf(stderr, "%s: %s\n", #call, clt_last_error()); return 1; } } while (0)

int main(void)
{
    clt_runtime *rt;                       /* the devices: NULL means $CLT_DEVICES, else "all" */
    CHECK(clt_runtime_create(&rt, NULL));

    clt_model *m;                          /* a model is a description, built on the host */
    CHECK(clt_model_create(&m, clt_shape1(1024)));
    CHECK(clt_model_add(m, clt_linear(512)));  CHECK(clt_model_add(m, clt_relu()));
    CHECK(clt_model_add(m, clt_linear(256)));  CHECK(clt_model_add(m, clt_relu()));
    CHECK(clt_model_add(m, clt_linear(128)));  CHECK(clt_model_add(m, clt_relu()));
    CHECK(clt_model_add(m, clt_linear(10)));

    clt_dataset *train, *test;             /* 28x28 images padded to 32x32: 1024 inputs */
    clt_dataset_options o = clt_dataset_options_default();
    o.pad_to = 32;
    o.normalize = 1;
    CHECK(clt_dataset_load_fashion_mnist(&train, &test, NULL, &o));

    clt_train_params p = clt_train_params_default();
    p.optim = clt_adam(1e-3f);
    p.max_batch = 128;
    clt_trainer *t;                        /* parameters initialised as PyTorch does */
    CHECK(clt_trainer_create(&t, rt, m, &p));

    size_t n = clt_dataset_size(train);
    uint32_t *order = malloc(n * sizeof *order);
    float *x = malloc(128 * 1024 * sizeof *x);
    int32_t labels[128];
    for (int epoch = 0; epoch < 5; epoch++) {
        CHECK(clt_dataset_shuffle(order, n, epoch));
        for (size_t i = 0; i + 128 <= n; i += 128) {
            float loss;
            CHECK(clt_dataset_batch(train, order, i, 128, x, labels));
            CHECK(clt_trainer_step(t, x, labels, 128, &loss));
        }
        float acc;
        CHECK(clt_trainer_evaluate(t, clt_dataset_inputs(test), clt_dataset_labels(test),
                                   clt_dataset_size(test), NULL, &acc));
        printf("epoch %d: test accuracy %.2f%%\n", epoch + 1, 100 * acc);
    }
    free(order), free(x);
    clt_trainer_destroy(t), clt_dataset_destroy(train), clt_dataset_destroy(test);
    clt_model_destroy(m), clt_runtime_destroy(rt);
    return 0;
}
