/* The seed's ModelParallelNN, one to one: fc1 on device 0; fc2 and fc3 on device 1; fc4 back on
 * device 0, activations copied 0 -> 1 -> 0 forward and the gradients back in reverse. Trained on
 * Fashion-MNIST (28x28 padded to 32x32: 1024 inputs), or on a generated data set when Fashion-MNIST
 * is not installed. The PyTorch original is quoted in the comments next to what mirrors it.
 *
 *     examples/seed_model_parallel [naive|gpipe|1f1b] [micro-batches]
 *
 * Needs two devices; with one, it opens device 0 twice (each opening has its own queue and
 * worker thread, so the copies and the schedule run for real). Exits nonzero when training did
 * not learn. */
#include <cltrain.h>
#include <stdio.h>
#include <stdlib.h>

#define CHECK(call) do { clt_status s_ = (call); if (s_ != CLT_OK) { \
        fprintf(stderr, "%s: %s\n", #call, clt_last_error()); return 1; } } while (0)

enum { BATCH = 128, EPOCHS = 3 };

int main(int argc, char **argv)
{
    clt_runtime *rt;
    CHECK(clt_runtime_create(&rt, NULL));          /* "Assume we have two GPUs" */
    if (clt_runtime_device_count(rt) < 2) {
        fprintf(stderr, "one device: opening device 0 twice to stand for cuda:0 and cuda:1\n");
        clt_runtime_destroy(rt);
        CHECK(clt_runtime_create(&rt, "0:0,0:0"));
    }

    /* class ModelParallelNN(nn.Module):
     *     def __init__(self):
     *         self.fc1 = nn.Linear(1024, 512).to('cuda:0')
     *         self.fc2 = nn.Linear(512, 256).to('cuda:1')
     *         self.fc3 = nn.Linear(256, 128).to('cuda:1')
     *         self.fc4 = nn.Linear(128, 10).to('cuda:0')
     * The layers are described first, placed after; torch.relu is a layer of its own here and
     * goes where forward() applies it (relu(fc1(x)) runs on cuda:0, before x.to('cuda:1')). */
    clt_model *m;
    CHECK(clt_model_create(&m, clt_shape1(1024)));
    CHECK(clt_model_add(m, clt_linear(512)));   /* 0 fc1 */
    CHECK(clt_model_add(m, clt_relu()));        /* 1     */
    CHECK(clt_model_add(m, clt_linear(256)));   /* 2 fc2 */
    CHECK(clt_model_add(m, clt_relu()));        /* 3     */
    CHECK(clt_model_add(m, clt_linear(128)));   /* 4 fc3 */
    CHECK(clt_model_add(m, clt_relu()));        /* 5     */
    CHECK(clt_model_add(m, clt_linear(10)));    /* 6 fc4 */

    /* def forward(self, x):
     *     x = x.to('cuda:0')
     *     x = torch.relu(self.fc1(x))      -> layers 0..1 on device 0
     *     x = x.to('cuda:1')               -> the library copies the activations 0 -> 1
     *     x = torch.relu(self.fc2(x))
     *     x = torch.relu(self.fc3(x))      -> layers 2..5 on device 1
     *     x = x.to('cuda:0')               -> copied 1 -> 0
     *     x = self.fc4(x)                  -> layer 6 on device 0
     *     return x */
    CHECK(clt_model_place(m, 0, 1, 0));
    CHECK(clt_model_place(m, 2, 5, 1));
    CHECK(clt_model_place(m, 6, 6, 0));
    printf("%s", clt_model_describe(m));

    clt_dataset *train, *test;
    clt_dataset_options o = clt_dataset_options_default();
    o.pad_to = 32;
    o.normalize = 1;
    clt_status st = clt_dataset_load_fashion_mnist(&train, &test, NULL, &o);
    int synthetic = st == CLT_ERR_IO;
    if (synthetic) {
        fprintf(stderr, "\n*** Fashion-MNIST not found (%s):\n*** training on a GENERATED data set "
                "instead; accuracies below are not Fashion-MNIST's\n\n", clt_last_error());
        CHECK(clt_dataset_synthetic(&train, 20000, clt_shape3(1, 32, 32), 10, 1));
        CHECK(clt_dataset_synthetic(&test, 2000, clt_shape3(1, 32, 32), 10, 2));
    } else if (st != CLT_OK) {
        fprintf(stderr, "loading Fashion-MNIST: %s\n", clt_last_error());
        return 1;
    }

    /* The PyTorch original runs the naive schedule: one batch at a time, each device waiting for
     * the other. GPipe and 1F1B split the batch into micro-batches so the devices overlap;
     * every schedule gives the same update. */
    clt_train_params p = clt_train_params_default();
    p.parallel = CLT_PARALLEL_MODEL;
    p.optim = clt_adam(1e-3f);
    p.max_batch = BATCH;
    p.pipeline = CLT_PIPELINE_NAIVE;
    p.micro_batches = 1;
    if (argc > 1) CHECK(clt_pipeline_schedule_parse(argv[1], &p.pipeline));
    if (argc > 2) p.micro_batches = atoi(argv[2]);
    else if (p.pipeline != CLT_PIPELINE_NAIVE) p.micro_batches = 4;
    clt_trainer *t;
    CHECK(clt_trainer_create(&t, rt, m, &p));
    printf("schedule %s, %d micro-batch(es) of a batch of %d\n", clt_pipeline_schedule_name(p.pipeline),
           p.micro_batches, BATCH);

    size_t n = clt_dataset_size(train);
    uint32_t *order = malloc(n * sizeof *order);
    float *x = malloc((size_t)BATCH * 1024 * sizeof *x);
    int32_t labels[BATCH];
    float first_loss = 0, loss = 0, acc = 0;
    for (int epoch = 0; epoch < EPOCHS; epoch++) {
        CHECK(clt_dataset_shuffle(order, n, (uint64_t)epoch));
        for (size_t i = 0; i + BATCH <= n; i += BATCH) {
            CHECK(clt_dataset_batch(train, order, i, BATCH, x, labels));
            CHECK(clt_trainer_step(t, x, labels, BATCH, &loss));
            if (epoch == 0 && i == 0) first_loss = loss;
        }
        CHECK(clt_trainer_evaluate(t, clt_dataset_inputs(test), clt_dataset_labels(test),
                                   clt_dataset_size(test), NULL, &acc));
        printf("epoch %d: last batch loss %.4f, test accuracy %.2f%%\n", epoch + 1, loss, 100 * acc);
    }
    free(order), free(x);
    clt_trainer_destroy(t), clt_dataset_destroy(train), clt_dataset_destroy(test);
    clt_model_destroy(m), clt_runtime_destroy(rt);
    /* an MLP reaches about 85% on Fashion-MNIST in a few epochs */
    int learned = synthetic ? loss < 0.5f * first_loss : acc > 0.80f;
    if (!learned) fprintf(stderr, "training did not learn (loss %.4f -> %.4f, accuracy %.2f%%)\n", first_loss, loss, 100 * acc);
    return learned ? 0 : 1;
}
