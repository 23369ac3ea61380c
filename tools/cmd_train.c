/* cltrain train: trains a named model on Fashion-MNIST (or a generated set when none is found),
 * prints progress and the test accuracy; --json adds one JSON line with the results. With
 * --checkpoint it saves the training state every N steps and after each epoch, and --resume
 * goes on from that file: same shuffle, same batches, same losses (with --epochs beyond the
 * file's cosine schedule, that schedule is stretched to the new length). */
#include "commands.h"
#include "plot.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Saves the state with the data position: the next sample of epoch `epoch`'s order. */
static int save_checkpoint(clt_trainer *t, const char *path, long epoch, long index, uint64_t seed)
{
    clt_data_position pos = {(uint64_t)epoch, (uint64_t)index, seed};
    clt_status st = clt_trainer_set_data_position(t, &pos);
    if (st == CLT_OK) st = clt_trainer_save(t, path);
    return st == CLT_OK ? 0 : tool_fail("saving the checkpoint", st);
}

/* The last step's report from the library (clt_trainer_set_progress), copied. */
typedef struct {
    int devices;
    size_t samples[64];
    double busy[64];
    size_t correct;    /* rows of the batch whose largest output was the label */
} progress_seen;

static void on_progress(const clt_step_info *info, void *user)
{
    progress_seen *p = user;
    p->devices = info->devices < 64 ? info->devices : 64;
    p->correct = info->correct;
    for (int d = 0; d < p->devices; d++) p->samples[d] = info->samples[d], p->busy[d] = info->busy[d];
}

/* Loads Fashion-MNIST padded to 32x32 and normalised, or makes a synthetic set (loudly). */
static int load_data(const char *dir, size_t limit, clt_dataset **train, clt_dataset **test,
                     const char **source)
{
    clt_dataset_options o = clt_dataset_options_default();
    o.pad_to = 32;
    o.normalize = 1;
    o.limit = limit;
    clt_status st = clt_dataset_load_fashion_mnist(train, test, dir, &o);
    if (st == CLT_OK) {
        *source = "fashion-mnist";
        return 0;
    }
    if (st != CLT_ERR_IO || dir) return tool_fail("loading Fashion-MNIST", st);
    fprintf(stderr,
            "cltrain: *** Fashion-MNIST was not found (%s).\n"
            "cltrain: *** Training on a GENERATED data set instead: its accuracy says nothing\n"
            "cltrain: *** about Fashion-MNIST. Install Debian's dataset-fashion-mnist or pass --data DIR.\n",
            clt_last_error());
    size_t ntrain = limit ? limit : 60000, ntest = limit ? (limit < 10000 ? limit : 10000) : 10000;
    st = clt_dataset_synthetic(train, ntrain, clt_shape3(1, 32, 32), 10, 1);
    if (st == CLT_OK) st = clt_dataset_synthetic(test, ntest, clt_shape3(1, 32, 32), 10, 2);
    if (st != CLT_OK) return tool_fail("generating a data set", st);
    *source = "synthetic";
    return 0;
}

static const char *const optim_names[] = {"sgd", "adam", "adamw", NULL};
/* --decay, in clt_decay's order */
static const char *const decay_names[] = {"all", "matrices", NULL};
/* --schedule: the learning rate's (constant, cosine) or the pipeline's, clt_pipeline_schedule's
 * order from PIPELINE_FIRST */
static const char *const schedule_names[] = {"constant", "cosine", "naive", "gpipe", "1f1b", "zb", NULL};
enum { SCHED_CONSTANT, SCHED_COSINE, PIPELINE_FIRST };

typedef struct {
    int lr;                          /* SCHED_CONSTANT or SCHED_COSINE */
    clt_pipeline_schedule pipeline;
    int pipeline_given;
} schedules;

/* TOOL_CUSTOM parser of --schedule: either schedule, so that it may be given once for each. */
static const char *parse_schedule(const char *text, void *dest)
{
    schedules *s = dest;
    for (int k = 0; schedule_names[k]; k++) {
        if (strcmp(text, schedule_names[k])) continue;
        if (k < PIPELINE_FIRST) s->lr = k;
        else s->pipeline = (clt_pipeline_schedule)(k - PIPELINE_FIRST), s->pipeline_given = 1;
        return NULL;
    }
    return "constant or cosine (the learning rate's), or naive, gpipe, 1f1b or zb (the pipeline's)";
}

/* Whether the command line asks for the GPT, whose run has options of its own (cmd_gpt.c). */
static bool wants_gpt(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--")) break;
        if (!strcmp(argv[i], "--model=gpt") || (!strcmp(argv[i], "--model") && i + 1 < argc && !strcmp(argv[i + 1], "gpt")))
            return true;
    }
    return false;
}

int cmd_train(int argc, char **argv)
{
    if (wants_gpt(argc, argv)) return cmd_train_gpt(argc, argv);
    const char *spec = NULL, *data = NULL, *metrics_path = NULL, *plot_path = NULL, *ckpt = NULL;
    int model = 0, optim_kind = 1, decay = CLT_DECAY_ALL;
    long epochs = 10, batch = 128, seed = 1, limit = 0, every = 0;
    double lr = 0, momentum = 0.9, wd = 0;
    int json = 0, resume = 0;
    int lr_given = 0, wd_given = 0, every_given = 0;
    tool_layout lay = TOOL_LAYOUT_DEFAULT;
    schedules sched = {SCHED_COSINE, lay.schedule, 0};
    tool_opt opts[] = {
        TOOL_CHOICE("model", tool_model_names, &model,
                    "seed-mlp (the default: 1024-512-256-128-10), deep-mlp (eight hidden\n"
                    "Linear(1024) layers) or cnn (a small Conv-ReLU-Pool network); gpt, a\n"
                    "character-level GPT on a text, has options of its own: cltrain train\n"
                    "--model gpt --help"),
        TOOL_DEVICES(&spec),
        TOOL_STRING("data", "DIR", &data,
                    "Fashion-MNIST's IDX files (default: Debian's dataset-fashion-mnist, else a\n"
                    "generated set, said loudly)"),
        TOOL_LONG("epochs", "N", &epochs, 1, 1000000, "passes over the training set (default 10)"),
        TOOL_LONG("batch", "N", &batch, 1, 65536, "samples per step (default 128)"),
        TOOL_CHOICE("optim", optim_names, &optim_kind, "the optimizer (default adam)"),
        TOOL_GIVEN(TOOL_ABOVE("lr", "X", &lr, 0, 1000, "learning rate > 0 (default 0.05 for sgd, 0.001 for adam and adamw)"),
                   &lr_given),
        TOOL_DOUBLE("momentum", "X", &momentum, 0, 1, "sgd: momentum in 0..1 (default 0.9)"),
        TOOL_GIVEN(TOOL_DOUBLE("weight-decay", "X", &wd, 0, 1000,
                               "L2 (sgd, adam) or decoupled (adamw) weight decay in 0..1000\n"
                               "(default 0; adamw 0.01)"),
                   &wd_given),
        TOOL_CHOICE("decay", decay_names, &decay,
                    "the tensors weight decay applies to: all (the default), or matrices: Linear\n"
                    "and Conv2d weights only, not biases or LayerNorm (nanoGPT's AdamW groups)"),
        TOOL_CUSTOM("schedule", "constant|cosine|naive|gpipe|1f1b|zb", &sched, parse_schedule,
                    "constant or cosine (the default): the learning rate's, from lr down to\n"
                    "0 over the run; naive, gpipe, 1f1b or zb (zero bubble: 1f1b's weight\n"
                    "gradients moved into its waits): the pipeline's, with --parallel model\n"
                    "(default 1f1b); given twice, one of each"),
        TOOL_LONG("seed", "N", &seed, 0, 9.3e18, "parameter initialisation and shuffling (default 1)"),
        TOOL_LONG("limit", "N", &limit, 0, 1e15, "use the first N training samples (default 0: all)"),
        TOOL_LAYOUT_OPTS(&lay),
        TOOL_FLAG("verify-replicas", &lay.verify,
                  "after every update, check that the copies of the parameters hold the same\n"
                  "bits (data, tensor, model with --pipelines 2 or more; slow: a debugging aid)"),
        TOOL_STRING("metrics", "FILE.csv", &metrics_path, "write every step's loss, learning rate and accuracies"),
        TOOL_STRING("plot", "FILE.svg", &plot_path, "draw the loss and accuracy curves"),
        TOOL_STRING("checkpoint", "PATH", &ckpt, "save the training state after each epoch"),
        TOOL_GIVEN(TOOL_LONG("checkpoint-every", "N", &every, 1, 1e15, "and every N steps (needs --checkpoint)"),
                   &every_given),
        TOOL_FLAG("resume", &resume, "go on from --checkpoint PATH when it exists: same shuffle, same batches; its optimizer and schedule hold, a cosine shorter than --epochs stretched to it"),
        TOOL_JSON(&json),
        TOOL_END};
    const tool_cmd cmd = {"train", "[OPTIONS]",
                          "Trains a model on Fashion-MNIST (28x28 padded to 32x32) and reports the test accuracy\n"
                          "after every epoch; --json adds one JSON line with the results.",
                          "--parallel model runs the layers as a pipeline: --placement seed is the seed's\n"
                          "ModelParallelNN (fc1 on device 0, fc2 and fc3 on 1, fc4 on 0); --schedule naive,\n"
                          "gpipe, 1f1b or zb moves --micro-batches M through it, and --pipelines P runs P copies,\n"
                          "the batch split between them. Every schedule gives the update of the whole batch.",
                          opts};
    int parsed = tool_parse(&cmd, argc, argv);
    if (parsed >= 0) return parsed;
    lay.schedule = sched.pipeline;
    int piped = lay.parallel == CLT_PARALLEL_MODEL || (lay.parallel == CLT_PARALLEL_TENSOR && lay.seed_placement);
    if ((every_given || resume) && !ckpt)
        return tool_usage_error(&cmd, "--checkpoint-every and --resume need --checkpoint PATH");
    /* each layout option is refused where it would do nothing */
    if (lay.placement_given && lay.parallel != CLT_PARALLEL_MODEL && lay.parallel != CLT_PARALLEL_TENSOR)
        return tool_usage_error(&cmd, "--placement needs --parallel model or tensor");
    if ((lay.micro_given || sched.pipeline_given) && !piped)
        return tool_usage_error(&cmd, "--micro-batches and --schedule naive|gpipe|1f1b|zb need a pipeline: "
                                      "--parallel model, or tensor with --placement seed");
    if (lay.seed_placement && model != 0)
        return tool_usage_error(&cmd, "--placement seed needs --model seed-mlp (the seed's four Linear layers)");
    if (lay.pipelines_given && lay.parallel != CLT_PARALLEL_MODEL)
        return tool_usage_error(&cmd, "--pipelines needs --parallel model");
    if (lay.split_given && lay.parallel != CLT_PARALLEL_DATA && lay.parallel != CLT_PARALLEL_TENSOR)
        return tool_usage_error(&cmd, "--split needs --parallel data or tensor");
    if (lay.tgroup_given && lay.parallel != CLT_PARALLEL_TENSOR)
        return tool_usage_error(&cmd, "--tensor-group needs --parallel tensor");
    if (lay.verify && (lay.parallel == CLT_PARALLEL_NONE || (lay.parallel == CLT_PARALLEL_MODEL && lay.pipelines < 2)))
        return tool_usage_error(&cmd, "--verify-replicas compares copies of the parameters: it needs --parallel "
                                      "data or tensor, or model with --pipelines 2 or more");
    const char *model_name = tool_model_names[model], *optim = optim_names[optim_kind];
    const char *sched_name = schedule_names[sched.lr];
    clt_train_params p = clt_train_params_default();
    if (optim_kind == 0) p.optim = clt_sgd(lr_given ? (float)lr : 0.05f, (float)momentum, (float)wd, 0);
    else if (optim_kind == 1) { p.optim = clt_adam(lr_given ? (float)lr : 0.001f); p.optim.weight_decay = (float)wd; }
    else p.optim = clt_adamw(lr_given ? (float)lr : 0.001f, wd_given ? (float)wd : 0.01f);
    p.decay = (clt_decay)decay;
    tool_layout_params(&lay, &p);

    clt_dataset *train = NULL, *test = NULL;
    const char *source = "none";
    if (load_data(data, (size_t)limit, &train, &test, &source)) return 1;
    size_t ntrain = clt_dataset_size(train), ntest = clt_dataset_size(test);
    long steps_per_epoch = (long)(ntrain / (size_t)batch);
    if (steps_per_epoch < 1) {
        fprintf(stderr, "cltrain train: the batch (%ld) is larger than the training set (%zu)\n", batch, ntrain);
        clt_dataset_destroy(train), clt_dataset_destroy(test);
        return 2;
    }
    if (sched.lr == SCHED_COSINE) {
        p.schedule.kind = CLT_SCHED_COSINE;
        p.schedule.total_steps = epochs * steps_per_epoch;
        p.schedule.min_lr = 0;
    }
    p.max_batch = (size_t)batch;
    p.seed = (uint64_t)seed;

    int rc = 1;
    clt_runtime *rt = NULL;
    clt_model *m = NULL;
    clt_trainer *t = NULL;
    float *x = NULL;
    int32_t *labels = NULL;
    uint32_t *order = NULL;
    clt_status st = clt_runtime_create(&rt, spec);
    if (st != CLT_OK) { tool_fail(tool_opening(spec), st); goto out; }
    if ((st = tool_model_build(model_name, piped && lay.seed_placement, &m)) != CLT_OK) {
        if (st != CLT_ERR_INVALID_ARG) tool_fail("building the model", st);
        goto out;
    }
    if (p.parallel == CLT_PARALLEL_AUTO) {   /* then as if the chosen mode had been asked for */
        if ((st = tool_plan(rt, m, &p)) != CLT_OK) goto out;
        lay.parallel = (int)p.parallel, lay.schedule = p.pipeline, lay.micro_batches = p.micro_batches;
        lay.pipelines = p.pipelines;
        piped = lay.parallel == CLT_PARALLEL_MODEL;
    }
    const char *parallel = tool_parallel_names[lay.parallel];
    if ((st = clt_trainer_create(&t, rt, m, &p)) != CLT_OK) { tool_fail("creating the trainer", st); goto out; }
    progress_seen seen = {0, {0}, {0}, 0};
    clt_trainer_set_progress(t, on_progress, &seen);
    /* --resume: the checkpoint's state, hyper-parameters and place in the data */
    long first_epoch = 0, first_step = 0;
    int resumed = 0;
    uint64_t order_seed = (uint64_t)seed;
    if (resume && access(ckpt, F_OK) == 0) {
        clt_data_position pos;
        if ((st = clt_trainer_load(t, ckpt)) != CLT_OK) { tool_fail("loading the checkpoint", st); goto out; }
        clt_trainer_data_position(t, &pos);
        if (pos.index % (uint64_t)batch || pos.index / (uint64_t)batch > (uint64_t)steps_per_epoch ||
            pos.epoch > (uint64_t)epochs) {
            fprintf(stderr, "cltrain train: %s stopped at sample %llu of epoch %llu, which does not fit "
                    "batch %ld and %ld epochs: resume with the batch size it was written with\n", ckpt,
                    (unsigned long long)pos.index, (unsigned long long)pos.epoch + 1, batch, epochs);
            goto out;
        }
        first_epoch = (long)pos.epoch;
        first_step = (long)(pos.index / (uint64_t)batch);
        order_seed = pos.seed;
        printf("cltrain: resumed from %s at epoch %ld, step %ld (%ld steps done)\n", ckpt, first_epoch + 1,
               first_step, clt_trainer_step_count(t));
        /* the file's hyper-parameters hold; a cosine shorter than this run is stretched to it */
        clt_schedule fs;
        long run_steps = epochs * steps_per_epoch;
        clt_trainer_schedule(t, &fs);
        sched_name = fs.kind == CLT_SCHED_COSINE ? "cosine" : fs.kind == CLT_SCHED_STEP ? "step" : "constant";
        resumed = 1;
        if (fs.kind == CLT_SCHED_COSINE && fs.total_steps < run_steps) {
            long was = fs.total_steps;
            fs.total_steps = run_steps;
            if ((st = clt_trainer_set_schedule(t, &fs)) != CLT_OK) { tool_fail("stretching the schedule", st); goto out; }
            printf("cltrain: the checkpoint's cosine schedule ended at step %ld: stretched to the %ld steps "
                   "of %ld epochs, the learning rate at step %ld now %g\n", was, run_steps, epochs,
                   clt_trainer_step_count(t), (double)clt_trainer_lr(t));
        }
    } else if (resume) {
        printf("cltrain: %s does not exist yet: starting afresh\n", ckpt);
    }
    int nd = p.parallel != CLT_PARALLEL_NONE ? clt_runtime_device_count(rt) : 1;
    printf("cltrain: %s, %s, on", model_name,
           nd == 1 ? "one device" : p.parallel == CLT_PARALLEL_TENSOR ? "tensor parallel"
           : p.parallel == CLT_PARALLEL_MODEL ? "model parallel" : "data parallel");
    for (int d = 0; d < clt_runtime_device_count(rt); d++) {
        clt_device_info info;
        if (nd == 1 && d != p.device) continue;
        clt_runtime_device_info(rt, d, &info);
        printf("%s %d:%d %s", d && nd > 1 ? "," : "", info.platform, info.device, info.name);
    }
    printf("\n");
    if (piped) {   /* what runs: the pipeline's stages, schedule and micro-batches */
        char where[512];
        printf("cltrain: a pipeline, %s placement%s%s%s, %s schedule, %ld micro-batch%s", lay.seed_placement ? "seed" : "auto",
               lay.seed_placement ? " (" : " (the layers partitioned by their measured times",
               lay.seed_placement ? tool_placement_text(m, where, sizeof where) : "", ")",
               clt_pipeline_schedule_name(lay.schedule), lay.micro_batches, lay.micro_batches == 1 ? "" : "es");
        if (lay.pipelines > 1) printf(", %ld copies of it, the batch split between them", lay.pipelines);
        printf("\n");
    }
    if (p.parallel == CLT_PARALLEL_TENSOR) tool_print_tensor_slices(t, m, nd);
    printf("cltrain: %zu training and %zu test samples from %s\n", ntrain, ntest, source);
    char lr_text[64];
    snprintf(lr_text, sizeof lr_text, resumed ? "with the checkpoint's settings" : "lr %g", (double)p.optim.lr);
    printf("cltrain: %zu parameters, %s %s, %s schedule, batch %ld, %ld epochs\n",
           clt_model_param_count(m), optim, lr_text, sched_name, batch, epochs);
    fflush(stdout);

    size_t numel = clt_shape_numel(clt_dataset_shape(train));
    x = malloc((size_t)batch * numel * sizeof *x);
    labels = malloc((size_t)batch * sizeof *labels);
    order = malloc(ntrain * sizeof *order);
    if (!x || !labels || !order) { tool_fail("allocating batches", CLT_ERR_OUT_OF_HOST_MEMORY); goto out; }

    double train_time = 0, t_start = now();
    long samples = 0, total_steps = epochs * steps_per_epoch;
    float test_loss = NAN, test_acc = NAN;
    /* curves: the loss of every step, accuracies and test loss at each epoch's end */
    double *step_x = calloc((size_t)total_steps, sizeof(double)), *step_loss = calloc((size_t)total_steps, sizeof(double));
    double *ep_x = calloc((size_t)epochs, sizeof(double)), *ep_test_loss = calloc((size_t)epochs, sizeof(double));
    double *ep_test_acc = calloc((size_t)epochs, sizeof(double)), *ep_train_acc = calloc((size_t)epochs, sizeof(double));
    FILE *csv = NULL;
    int tty = isatty(STDOUT_FILENO) && !json;
    if (!step_x || !step_loss || !ep_x || !ep_test_loss || !ep_test_acc || !ep_train_acc) {
        tool_fail("allocating metrics", CLT_ERR_OUT_OF_HOST_MEMORY);
        goto out_curves;
    }
    if (metrics_path) {
        if (!(csv = fopen(metrics_path, "w"))) {
            perror(metrics_path);
            goto out_curves;
        }
        fprintf(csv, "step,epoch,loss,lr,samples_per_s,train_accuracy,test_loss,test_accuracy,"
                "train_batch_accuracy\n");
    }
    for (long e = first_epoch; e < epochs; e++) {
        clt_dataset_shuffle(order, ntrain, order_seed * 1000003u + (uint64_t)e);
        double loss_sum = 0, t0 = now(), last_print = t0;
        size_t correct_sum = 0;   /* the epoch's running training accuracy, from each step */
        float batch_acc = NAN;
        long s0 = e == first_epoch ? first_step : 0;
        for (long s = s0; s < steps_per_epoch; s++) {
            clt_dataset_batch(train, order, (size_t)(s * batch), (size_t)batch, x, labels);
            float loss, step_lr = clt_trainer_lr(t);
            if ((st = clt_trainer_step(t, x, labels, (size_t)batch, &loss)) != CLT_OK) {
                tool_fail("training step", st);
                goto out_curves;
            }
            loss_sum += loss;
            correct_sum += seen.correct;
            batch_acc = (float)((double)seen.correct / (double)batch);
            samples += batch;
            long g = e * steps_per_epoch + s;
            step_x[g] = (double)(g + 1);
            step_loss[g] = loss;
            if (every && clt_trainer_step_count(t) % every == 0 && s + 1 < steps_per_epoch &&
                save_checkpoint(t, ckpt, e, (s + 1) * batch, order_seed))
                goto out_curves;
            double tn = now();
            double sps_now = (double)((s + 1 - s0) * batch) / (tn - t0);
            if (csv && s + 1 < steps_per_epoch)
                fprintf(csv, "%ld,%ld,%.6f,%.6g,%.1f,,,,%.4f\n", g + 1, e + 1, (double)loss, (double)step_lr,
                        sps_now, (double)batch_acc);
            if (csv && s + 1 == steps_per_epoch)   /* completed below with the epoch's accuracies */
                fprintf(csv, "%ld,%ld,%.6f,%.6g,%.1f,", g + 1, e + 1, (double)loss, (double)step_lr, sps_now);
            /* on a terminal: one line redrawn at most 5 times a second; else a line every 5 s */
            if (!json && (tn - last_print > (tty ? 0.2 : 5.0) || s + 1 == steps_per_epoch)) {
                long done_here = g + 1 - (first_epoch * steps_per_epoch + first_step);
                double left = (double)(total_steps - g - 1) * (tn - t_start) / (double)(done_here > 0 ? done_here : 1);
                if (tty) {
                    int width = 24, done = (int)((double)width * (double)(s + 1) / (double)steps_per_epoch);
                    printf("\r\033[Kepoch %ld/%ld [", e + 1, epochs);
                    for (int k = 0; k < width; k++) putchar(k < done ? '#' : '.');
                    printf("] %ld/%ld", s + 1, steps_per_epoch);
                } else {
                    printf("epoch %ld/%ld  step %5ld/%ld", e + 1, epochs, s + 1, steps_per_epoch);
                }
                printf("  loss %.4f  accuracy %.2f%%  %.0f samples/s  %.0f s left", loss_sum / (double)(s + 1 - s0),
                       100.0 * (double)correct_sum / (double)((s + 1 - s0) * batch), sps_now, left);
                if (nd > 1 && seen.devices && p.parallel != CLT_PARALLEL_MODEL) {   /* each device's share and busy fraction */
                    printf("  devices");
                    for (int d = 0; d < seen.devices && d < 64; d++)
                        printf(" %zu@%.0f%%", seen.samples[d], 100.0 * seen.busy[d]);
                }
                if (!tty) printf("\n");
                fflush(stdout);
                last_print = tn;
            }
        }
        train_time += now() - t0;
        if (tty) printf("\n");
        float train_acc = NAN;
        size_t nsub = ntrain < 10000 ? ntrain : 10000;   /* train accuracy on the first 10000 */
        if ((st = clt_trainer_evaluate(t, clt_dataset_inputs(test), clt_dataset_labels(test), ntest,
                                       &test_loss, &test_acc)) != CLT_OK ||
            (st = clt_trainer_evaluate(t, clt_dataset_inputs(train), clt_dataset_labels(train), nsub,
                                       NULL, &train_acc)) != CLT_OK) {
            tool_fail("evaluating", st);
            goto out_curves;
        }
        ep_x[e] = (double)((e + 1) * steps_per_epoch);
        ep_test_loss[e] = test_loss, ep_test_acc[e] = test_acc, ep_train_acc[e] = train_acc;
        if (csv)
            fprintf(csv, "%.4f,%.6f,%.4f,%.4f\n", (double)train_acc, (double)test_loss, (double)test_acc,
                    (double)batch_acc);
        printf("epoch %ld/%ld  train loss %.4f  train accuracy %.2f%%  test loss %.4f  test accuracy %.2f%%  (%.0f s)\n",
               e + 1, epochs, s0 < steps_per_epoch ? loss_sum / (double)(steps_per_epoch - s0) : 0.0,
               100.0 * train_acc, (double)test_loss,
               100.0 * test_acc, now() - t_start);
        fflush(stdout);
        if (ckpt && save_checkpoint(t, ckpt, e + 1, 0, order_seed)) goto out_curves;
    }
    if (plot_path) {
        char title[256];
        snprintf(title, sizeof title, "cltrain: %s on %s, batch %ld, %s, %d device%s", model_name, source, batch,
                 optim, nd, nd == 1 ? "" : "s");
        plot_series loss_s[] = {{"train (each step)", "#4878d0", step_x, step_loss, (size_t)total_steps, 0},
                                {"test (each epoch)", "#d65f5f", ep_x, ep_test_loss, (size_t)epochs, 1}};
        plot_series acc_s[] = {{"train (each epoch)", "#4878d0", ep_x, ep_train_acc, (size_t)epochs, 1},
                               {"test (each epoch)", "#d65f5f", ep_x, ep_test_acc, (size_t)epochs, 1}};
        if (plot_write_svg(plot_path, title, loss_s, 2, acc_s, 2, (double)total_steps)) {
            perror(plot_path);
            goto out_curves;
        }
        printf("cltrain: curves written to %s\n", plot_path);
    }
    if (first_epoch >= epochs) {   /* resumed after the last epoch: nothing left but the score */
        if ((st = clt_trainer_evaluate(t, clt_dataset_inputs(test), clt_dataset_labels(test), ntest,
                                       &test_loss, &test_acc)) != CLT_OK) {
            tool_fail("evaluating", st);
            goto out_curves;
        }
    }
    double sps = train_time > 0 ? (double)samples / train_time : 0.0;
    printf("cltrain: test accuracy %.2f%% after %ld epochs, %.0f samples/s\n", 100.0 * test_acc, epochs, sps);
    if (json)
        printf("{\"model\":\"%s\",\"dataset\":\"%s\",\"test_accuracy\":%.4f,\"test_loss\":%.4f,"
               "\"samples_per_s\":%.1f,\"epochs\":%ld,\"batch\":%ld,\"devices\":%d,\"parallel\":\"%s\","
               "\"seconds\":%.1f}\n",
               model_name, source, (double)test_acc, (double)test_loss, sps, epochs, batch, nd, parallel,
               now() - t_start);
    rc = 0;
out_curves:
    if (csv && fclose(csv)) {
        perror(metrics_path);
        rc = 1;
    }
    free(step_x), free(step_loss), free(ep_x), free(ep_test_loss), free(ep_test_acc), free(ep_train_acc);
out:
    free(x), free(labels), free(order);
    clt_trainer_destroy(t);
    clt_model_destroy(m);
    clt_runtime_destroy(rt);
    clt_dataset_destroy(train), clt_dataset_destroy(test);
    return rc;
}
