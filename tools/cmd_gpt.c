/* cltrain train --model gpt and cltrain generate: a character-level GPT (nanoGPT's) on a text,
 * and sampling from its checkpoint. Training runs a number of steps (not epochs) of random
 * windows drawn from a seed and the step number, so a resumed run draws the batches it would
 * have drawn; the train and validation losses are measured every --eval-every steps on fixed
 * windows, so the curves compare run with run. */
#include "commands.h"
#include "plot.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* The vocabulary as a checkpoint keeps it: a line saying how to read it, then its bytes. */
#define VOCAB_UTF8 "cltrain-text utf-8\n"
#define VOCAB_BYTES "cltrain-text bytes\n"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The text named, else Debian's fortunes, else a generated one (loudly). */
static int load_text(const char *path, clt_text **out, const char **source)
{
    clt_status st;
    if (path) {
        if ((st = clt_text_load(out, path, NULL)) != CLT_OK) return tool_fail("loading the text", st);
        *source = path;
        return 0;
    }
    if ((st = clt_text_load_fortunes(out, NULL, NULL)) == CLT_OK) {
        *source = "fortunes";
        return 0;
    }
    if (st != CLT_ERR_IO) return tool_fail("loading the fortunes", st);
    fprintf(stderr,
            "cltrain: *** Debian's fortunes were not found (%s).\n"
            "cltrain: *** Training on GENERATED English-like text instead: install the fortunes\n"
            "cltrain: *** package or pass --text FILE for real text.\n", clt_last_error());
    if ((st = clt_text_synthetic(out, 4u << 20, 1)) != CLT_OK) return tool_fail("generating a text", st);
    *source = "generated";
    return 0;
}

/* The batch of step `step` (1-based), the same for a seed whenever it is drawn. */
static uint64_t batch_seed(uint64_t seed, long step)
{
    return seed * 0x9E3779B97F4A7C15ull + (uint64_t)step * 0xD1B54A32D192ED03ull;
}

/* Mean loss and per-position accuracy over n fixed windows of a part. */
static clt_status measure(clt_trainer *t, const clt_text *text, clt_text_part part, size_t n, int T,
                          int32_t *x, int32_t *y, float *loss, float *acc)
{
    clt_status st = clt_text_batch(text, part, n, T, part == CLT_TEXT_TRAIN ? 0x51ED : 0x7A1, x, y);
    return st == CLT_OK ? clt_trainer_evaluate_tokens(t, x, y, n, loss, acc) : st;
}

/* A line of sampled text after training, to see what it learnt. */
static void print_sample(clt_trainer *t, const clt_text *text, long chars)
{
    int32_t start;
    size_t count;
    if (clt_text_encode(text, "\n", 1, &start, 1, &count) != CLT_OK) start = 0;   /* any token */
    int32_t *ids = malloc((size_t)(chars + 1) * sizeof *ids);
    char *out = malloc(4 * (size_t)chars + 8);
    size_t len;
    clt_generate_options o = clt_generate_options_default();
    o.top_k = 10;
    if (ids && out && clt_trainer_generate(t, &start, 1, (size_t)chars, &o, ids) == CLT_OK &&
        clt_text_decode(text, ids + 1, (size_t)chars, out, 4 * (size_t)chars + 8, &len) == CLT_OK)
        printf("cltrain: a sample (top-k 10):\n%s\n", out);
    free(ids), free(out);
}

int cmd_train_gpt(int argc, char **argv)
{
    const char *spec = NULL, *text_path = NULL, *metrics_path = NULL, *plot_path = NULL, *ckpt = NULL;
    const char *init_path = NULL;
    long layers = 4, heads = 4, embd = 128, block = 64, batch = 12, steps = 2000, seed = 1;
    long eval_every = 250, eval_batches = 20, every = 0, warmup = 100, sample = 200;
    double lr = 1e-3, min_lr = 1e-4, wd = 0.1, beta2 = 0.99, clip = 1.0, dropout = 0.0;
    int model = 0, json = 0, resume = 0, untied = 0, every_given = 0;
    static const char *const gpt_names[] = {"gpt", NULL};
    static const char *const parallel_names[] = {"none", "data", "tensor", "model", "auto", NULL};
    static const char *const schedule_names[] = {"cosine", "constant", NULL};
    static const char *const pipeline_names[] = {"naive", "gpipe", "1f1b", "zb", NULL};   /* clt_pipeline_schedule's */
    enum { P_NONE, P_DATA, P_TENSOR, P_MODEL, P_AUTO };
    int parallel = P_NONE, constant = 0, tgroup_given = 0, pipeline = CLT_PIPELINE_1F1B, pipe_given = 0;
    long tensor_group = 0, micro = 4, pipelines = 1;
    tool_opt opts[] = {
        TOOL_CHOICE("model", gpt_names, &model, "gpt: this command's model"),
        TOOL_DEVICES(&spec),
        TOOL_CHOICE("parallel", parallel_names, &parallel,
                    "none: one device (the default); data: a replica on every device, the batch split;\n"
                    "tensor: attention split by heads and the MLPs by features across the devices;\n"
                    "model: the blocks in a pipeline of devices; auto: the fastest of those, each\n"
                    "tried for a few steps"),
        TOOL_GIVEN(TOOL_CHOICE("pipeline", pipeline_names, &pipeline,
                               "model: the pipeline's schedule (default 1f1b), with --micro-batches"),
                   &pipe_given),
        TOOL_LONG("micro-batches", "M", &micro, 1, 65536, "model: micro-batches per step (default 4)"),
        TOOL_LONG("pipelines", "P", &pipelines, 1, 65536,
                  "model: P data-parallel copies of the pipeline, each on its own devices (default 1)"),
        TOOL_GIVEN(TOOL_LONG("tensor-group", "T", &tensor_group, 0, 65536,
                             "tensor: devices per tensor-parallel group, the groups data parallel\n"
                             "(default 0: all)"),
                   &tgroup_given),
        TOOL_STRING("text", "FILE", &text_path,
                    "a UTF-8 (or byte) text to learn (default: Debian's fortunes, else a\n"
                    "generated text, said loudly)"),
        TOOL_LONG("layers", "N", &layers, 1, 256, "transformer blocks (default 4)"),
        TOOL_LONG("heads", "N", &heads, 1, 4096, "attention heads; --embd must be a multiple (default 4)"),
        TOOL_LONG("embd", "N", &embd, 1, 65536, "features (default 128)"),
        TOOL_LONG("block", "N", &block, 1, 4096, "context length in tokens (default 64)"),
        TOOL_DOUBLE("dropout", "P", &dropout, 0, 0.99, "dropout in the model (default 0)"),
        TOOL_FLAG("untied", &untied, "a head of its own instead of the token embedding's weight"),
        TOOL_LONG("batch", "N", &batch, 1, 65536, "sequences per step (default 12)"),
        TOOL_LONG("steps", "N", &steps, 1, 1e9, "optimizer steps (default 2000)"),
        TOOL_ABOVE("lr", "X", &lr, 0, 1000, "AdamW's peak learning rate (default 1e-3)"),
        TOOL_DOUBLE("min-lr", "X", &min_lr, 0, 1000, "the cosine's end (default 1e-4)"),
        TOOL_LONG("warmup", "N", &warmup, 0, 1e9, "linear warm-up steps (default 100)"),
        TOOL_CHOICE("schedule", schedule_names, &constant,
                    "cosine (the default): from lr down to --min-lr over the run after the\n"
                    "warm-up; constant: lr throughout"),
        TOOL_DOUBLE("weight-decay", "X", &wd, 0, 1000, "AdamW's decoupled weight decay (default 0.1)"),
        TOOL_DOUBLE("beta2", "X", &beta2, 0, 0.999999, "AdamW's beta2 (default 0.99)"),
        TOOL_DOUBLE("clip", "X", &clip, 0, 1e9, "clip gradients to this global norm; 0 off (default 1)"),
        TOOL_LONG("seed", "N", &seed, 0, 9.3e18, "initialisation, batches and dropout (default 1)"),
        TOOL_LONG("eval-every", "N", &eval_every, 1, 1e9, "steps between loss measurements (default 250)"),
        TOOL_LONG("eval-batches", "N", &eval_batches, 1, 1e6,
                  "batches of fixed windows each measurement averages (default 20)"),
        TOOL_LONG("sample", "N", &sample, 0, 1e6, "characters to sample at the end (default 200)"),
        TOOL_STRING("metrics", "FILE.csv", &metrics_path, "write every step's loss and learning rate"),
        TOOL_STRING("plot", "FILE.svg", &plot_path, "draw the train and validation loss curves"),
        TOOL_STRING("checkpoint", "PATH", &ckpt, "save the training state after each measurement"),
        TOOL_GIVEN(TOOL_LONG("checkpoint-every", "N", &every, 1, 1e15, "and every N steps (needs --checkpoint)"),
                   &every_given),
        TOOL_FLAG("resume", &resume, "go on from --checkpoint PATH when it exists: the same batches follow"),
        TOOL_STRING("save-init", "FILE", &init_path,
                    "write the initial parameters as safetensors (nanoGPT's names) before the\n"
                    "first step, for a baseline that starts from the same weights"),
        TOOL_JSON(&json),
        TOOL_END};
    const tool_cmd cmd = {"train --model gpt", "[OPTIONS]",
                          "Trains a character-level GPT (nanoGPT's: pre-LayerNorm blocks of causal\n"
                          "self-attention and a GELU MLP) on a text, with AdamW, warm-up and a cosine\n"
                          "schedule, and prints the train and validation losses.",
                          "The defaults are nanoGPT's CPU configuration: 4 layers, 4 heads, 128 wide,\n"
                          "block 64, batch 12, 2000 steps. `cltrain generate --checkpoint PATH` samples\n"
                          "from the checkpoint it writes.",
                          opts};
    int parsed = tool_parse(&cmd, argc, argv);
    if (parsed >= 0) return parsed;
    if ((every_given || resume) && !ckpt)
        return tool_usage_error(&cmd, "--checkpoint-every and --resume need --checkpoint PATH");
    if (embd % heads) return tool_usage_error(&cmd, "--embd must be a multiple of --heads");
    if (tgroup_given && parallel != P_TENSOR) return tool_usage_error(&cmd, "--tensor-group needs --parallel tensor");
    if ((pipe_given || micro != 4 || pipelines != 1) && parallel != P_MODEL)
        return tool_usage_error(&cmd, "--pipeline, --micro-batches and --pipelines need --parallel model");
    if (warmup >= steps) return tool_usage_error(&cmd, "--warmup must be below --steps");

    int rc = 1;
    clt_text *text = NULL;
    clt_runtime *rt = NULL;
    clt_model *m = NULL;
    clt_trainer *t = NULL;
    int32_t *x = NULL, *y = NULL, *ex = NULL, *ey = NULL;
    double *sx = NULL, *sl = NULL, *ev[5] = {NULL, NULL, NULL, NULL, NULL};
    FILE *csv = NULL;
    const char *source = NULL;
    if (load_text(text_path, &text, &source)) return 1;
    clt_status st;
    size_t need = (size_t)block + 1;
    if (clt_text_tokens(text, CLT_TEXT_TRAIN) < need || clt_text_tokens(text, CLT_TEXT_VAL) < need) {
        fprintf(stderr, "cltrain: the text's training and validation parts (%zu and %zu tokens) must "
                "each hold a window of --block %ld + 1\n", clt_text_tokens(text, CLT_TEXT_TRAIN),
                clt_text_tokens(text, CLT_TEXT_VAL), block);
        clt_text_destroy(text);
        return 2;
    }
    clt_gpt_config g = clt_gpt_config_default();
    g.vocab = clt_text_vocab_size(text);
    g.block = (int)block, g.layers = (int)layers, g.heads = (int)heads, g.embd = (int)embd;
    g.dropout = (float)dropout, g.tied = !untied;
    clt_train_params p = clt_train_params_default();
    p.optim = clt_adamw((float)lr, (float)wd);
    p.optim.beta2 = (float)beta2;
    p.decay = CLT_DECAY_MATRICES;   /* nanoGPT: embeddings and Linear weights only */
    p.clip_norm = (float)clip;
    p.schedule.kind = constant ? CLT_SCHED_CONSTANT : CLT_SCHED_COSINE;
    p.schedule.total_steps = steps;
    p.schedule.warmup_steps = warmup;
    p.schedule.min_lr = (float)min_lr;
    p.max_batch = (size_t)batch;
    p.seed = (uint64_t)seed;
    p.parallel = parallel == P_TENSOR ? CLT_PARALLEL_TENSOR : parallel == P_MODEL ? CLT_PARALLEL_MODEL
                 : parallel == P_DATA ? CLT_PARALLEL_DATA : parallel == P_AUTO ? CLT_PARALLEL_AUTO
                 : CLT_PARALLEL_NONE;
    p.tensor_group = (int)tensor_group;
    p.pipeline = (clt_pipeline_schedule)pipeline;
    p.micro_batches = (int)micro;
    p.pipelines = (int)pipelines;
    if ((st = clt_model_create_gpt(&m, &g)) != CLT_OK) { tool_fail("building the model", st); goto out; }
    if ((st = clt_runtime_create(&rt, spec)) != CLT_OK) { tool_fail(tool_opening(spec), st); goto out; }
    if (parallel == P_AUTO) {   /* then as if the chosen mode had been asked for */
        if ((st = tool_plan(rt, m, &p)) != CLT_OK) goto out;
        parallel = p.parallel == CLT_PARALLEL_TENSOR ? P_TENSOR : p.parallel == CLT_PARALLEL_MODEL ? P_MODEL
                   : p.parallel == CLT_PARALLEL_DATA ? P_DATA : P_NONE;
        micro = p.micro_batches, pipelines = p.pipelines;
    }
    if ((st = clt_trainer_create(&t, rt, m, &p)) != CLT_OK) { tool_fail("creating the trainer", st); goto out; }
    {   /* the vocabulary travels with every checkpoint, for generate */
        size_t vlen, hl = strlen(VOCAB_UTF8);
        const char *v = clt_text_vocabulary(text, &vlen);
        char *kept = malloc(hl + vlen);
        if (!kept) { tool_fail("keeping the vocabulary", CLT_ERR_OUT_OF_HOST_MEMORY); goto out; }
        memcpy(kept, clt_text_byte_tokens(text) ? VOCAB_BYTES : VOCAB_UTF8, hl);
        memcpy(kept + hl, v, vlen);
        st = clt_trainer_set_vocabulary(t, kept, hl + vlen);
        free(kept);
        if (st != CLT_OK) { tool_fail("keeping the vocabulary", st); goto out; }
    }
    if (resume && access(ckpt, F_OK) == 0) {
        if ((st = clt_trainer_load(t, ckpt)) != CLT_OK) { tool_fail("loading the checkpoint", st); goto out; }
        printf("cltrain: resumed from %s at step %ld\n", ckpt, clt_trainer_step_count(t));
        /* the file's settings hold; a cosine shorter than this run is stretched to it */
        clt_schedule fs;
        clt_trainer_schedule(t, &fs);
        if (fs.kind == CLT_SCHED_COSINE && fs.total_steps < steps) {
            long was = fs.total_steps;
            fs.total_steps = steps;
            if ((st = clt_trainer_set_schedule(t, &fs)) != CLT_OK) { tool_fail("stretching the schedule", st); goto out; }
            printf("cltrain: the checkpoint's cosine schedule ended at step %ld: stretched to %ld steps, the "
                   "learning rate now %g\n", was, steps, (double)clt_trainer_lr(t));
        }
    } else if (resume) {
        printf("cltrain: %s does not exist yet: starting afresh\n", ckpt);
    }
    if (init_path && (st = clt_trainer_save_safetensors(t, init_path)) != CLT_OK) {
        tool_fail("writing the initial parameters", st);
        goto out;
    }
    int nd = parallel ? clt_runtime_device_count(rt) : 1;
    printf("cltrain: gpt, %d layers, %d heads, %d wide, block %d, %s head, on %d device%s%s\n", g.layers,
           g.heads, g.embd, g.block, g.tied ? "tied" : "untied", nd, nd == 1 ? "" : "s",
           nd == 1 ? "" : parallel == P_TENSOR ? " (tensor parallel)" : parallel == P_MODEL ? " (a pipeline)"
                    : " (data parallel)");
    if (parallel == P_TENSOR) tool_print_tensor_slices(t, m, nd);
    if (parallel == P_MODEL)
        printf("cltrain: the blocks partitioned by their measured times, %s schedule, %ld micro-batch%s%s\n",
               clt_pipeline_schedule_name(p.pipeline), micro, micro == 1 ? "" : "es",
               pipelines > 1 ? ", copies of the pipeline the batch split between them" : "");
    printf("cltrain: %zu training and %zu validation tokens from %s, a vocabulary of %d %s\n",
           clt_text_tokens(text, CLT_TEXT_TRAIN), clt_text_tokens(text, CLT_TEXT_VAL), source, g.vocab,
           clt_text_byte_tokens(text) ? "bytes" : "characters");
    char sched[96];
    snprintf(sched, sizeof sched, constant ? "warm-up %ld, then constant" : "warm-up %ld, cosine to %g", warmup, min_lr);
    printf("cltrain: %zu parameters, adamw lr %g (%s), weight decay %g on matrices, batch %ld, %ld steps\n",
           clt_model_param_count(m), lr, sched, wd, batch, steps);
    fflush(stdout);

    size_t T = (size_t)block, en = (size_t)(eval_batches * batch);
    long first = clt_trainer_step_count(t), nev = steps / eval_every + 2;
    x = malloc((size_t)batch * T * sizeof *x), y = malloc((size_t)batch * T * sizeof *y);
    ex = malloc(en * T * sizeof *ex), ey = malloc(en * T * sizeof *ey);
    sx = calloc((size_t)steps, sizeof *sx), sl = calloc((size_t)steps, sizeof *sl);
    for (int k = 0; k < 5; k++) ev[k] = calloc((size_t)nev, sizeof(double));
    if (!x || !y || !ex || !ey || !sx || !sl || !ev[0] || !ev[1] || !ev[2] || !ev[3] || !ev[4]) {
        tool_fail("allocating batches", CLT_ERR_OUT_OF_HOST_MEMORY);
        goto out;
    }
    if (metrics_path) {
        if (!(csv = fopen(metrics_path, "w"))) {
            perror(metrics_path);
            goto out;
        }
        fprintf(csv, "step,loss,lr,tokens_per_s,train_loss,val_loss,val_accuracy\n");
    }
    int tty = isatty(STDOUT_FILENO) && !json;
    long ne = 0;
    float train_loss = NAN, val_loss = NAN, val_acc = NAN, acc;
    double t_start = now(), busy = 0, last_print = 0;
    long done = 0;
    for (long s = first + 1; s <= steps; s++) {
        float loss, step_lr = clt_trainer_lr(t);
        double t0 = now();
        if ((st = clt_text_batch(text, CLT_TEXT_TRAIN, (size_t)batch, (int)block, batch_seed((uint64_t)seed, s), x, y)) != CLT_OK ||
            (st = clt_trainer_step_tokens(t, x, y, (size_t)batch, &loss)) != CLT_OK) {
            tool_fail("training step", st);
            goto out;
        }
        double tn = now();
        busy += tn - t0;
        done++;
        sx[s - 1] = (double)s, sl[s - 1] = loss;
        double tps = (double)(done * batch * block) / busy;
        bool measure_now = s % eval_every == 0 || s == steps;
        if (csv) fprintf(csv, "%ld,%.6f,%.6g,%.0f", s, (double)loss, (double)step_lr, tps);
        if (measure_now) {
            if ((st = measure(t, text, CLT_TEXT_TRAIN, en, (int)block, ex, ey, &train_loss, &acc)) != CLT_OK ||
                (st = measure(t, text, CLT_TEXT_VAL, en, (int)block, ex, ey, &val_loss, &val_acc)) != CLT_OK) {
                tool_fail("measuring the losses", st);
                goto out;
            }
            ev[0][ne] = (double)s, ev[1][ne] = train_loss, ev[2][ne] = val_loss, ev[3][ne] = acc, ev[4][ne] = val_acc;
            ne++;
            if (csv) fprintf(csv, ",%.6f,%.6f,%.4f", (double)train_loss, (double)val_loss, (double)val_acc);
        }
        if (csv) fprintf(csv, measure_now ? "\n" : ",,,\n");
        if (!json && (measure_now || tn - last_print > (tty ? 0.2 : 5.0))) {
            double left = (double)(steps - s) * busy / (double)done;
            printf(tty ? "\r\033[Kstep %ld/%ld  loss %.4f  lr %.2e  %.0f tokens/s  %.0f s left"
                       : "step %ld/%ld  loss %.4f  lr %.2e  %.0f tokens/s  %.0f s left\n",
                   s, steps, (double)loss, (double)step_lr, tps, left);
            if (measure_now)
                printf("%sstep %ld: train loss %.4f, val loss %.4f, val accuracy %.2f%% (%.0f s)\n", tty ? "\n" : "",
                       s, (double)train_loss, (double)val_loss, 100.0 * (double)val_acc, now() - t_start);
            fflush(stdout);
            last_print = tn;
        }
        if (ckpt && (measure_now || (every && s % every == 0)) && (st = clt_trainer_save(t, ckpt)) != CLT_OK) {
            tool_fail("saving the checkpoint", st);
            goto out;
        }
    }
    if (plot_path && ne) {
        char title[256];
        snprintf(title, sizeof title, "cltrain: gpt on %s, batch %ld, %d device%s", source, batch, nd, nd == 1 ? "" : "s");
        plot_series loss_s[] = {{"train (each step)", "#4878d0", sx + first, sl + first, (size_t)(steps - first), 0},
                                {"train (measured)", "#1f3f8f", ev[0], ev[1], (size_t)ne, 1},
                                {"validation (measured)", "#d65f5f", ev[0], ev[2], (size_t)ne, 1}};
        plot_series acc_s[] = {{"train (next character)", "#4878d0", ev[0], ev[3], (size_t)ne, 1},
                               {"validation (next character)", "#d65f5f", ev[0], ev[4], (size_t)ne, 1}};
        if (plot_write_svg(plot_path, title, loss_s, 3, acc_s, 2, (double)steps)) {
            perror(plot_path);
            goto out;
        }
        printf("cltrain: curves written to %s\n", plot_path);
    }
    double tps = busy > 0 ? (double)(done * batch * block) / busy : 0.0;
    if (sample && !json) print_sample(t, text, sample);
    printf("cltrain: val loss %.4f after %ld steps, %.0f tokens/s\n", (double)val_loss, steps, tps);
    if (json)
        printf("{\"model\":\"gpt\",\"text\":\"%s\",\"train_loss\":%.4f,\"val_loss\":%.4f,\"val_accuracy\":%.4f,"
               "\"tokens_per_s\":%.1f,\"steps\":%ld,\"batch\":%ld,\"block\":%ld,\"devices\":%d,\"seconds\":%.1f}\n",
               text_path ? "file" : source, (double)train_loss, (double)val_loss, (double)val_acc, tps, steps,
               batch, block, nd, now() - t_start);
    rc = 0;
out:
    if (csv && fclose(csv)) {
        perror(metrics_path);
        rc = 1;
    }
    free(x), free(y), free(ex), free(ey), free(sx), free(sl);
    for (int k = 0; k < 5; k++) free(ev[k]);
    clt_trainer_destroy(t);
    clt_model_destroy(m);
    clt_runtime_destroy(rt);
    clt_text_destroy(text);
    return rc;
}

/* The tokenizer a checkpoint's vocabulary section describes. */
static clt_status text_of(const char *vocab, size_t len, const char *path, clt_text **out)
{
    size_t hl = strlen(VOCAB_UTF8);
    int bytes = len >= hl && !memcmp(vocab, VOCAB_BYTES, hl);
    if (!bytes && (len < hl || memcmp(vocab, VOCAB_UTF8, hl))) {
        fprintf(stderr, "cltrain generate: %s holds no vocabulary of `cltrain train --model gpt`\n", path);
        return CLT_ERR_FORMAT;
    }
    clt_status st = clt_text_from_vocabulary(out, vocab + hl, len - hl, bytes);
    if (st != CLT_OK) tool_fail("reading the checkpoint's vocabulary", st);
    return st;
}

int cmd_generate(int argc, char **argv)
{
    const char *spec = NULL, *ckpt = NULL, *prompt = "\n";
    long tokens = 200, top_k = 0, seed = 1;
    double temperature = 1.0;
    tool_opt opts[] = {
        TOOL_STRING("checkpoint", "FILE", &ckpt, "a checkpoint of `cltrain train --model gpt` (required)"),
        TOOL_STRING("prompt", "TEXT", &prompt, "the text to go on from (default a newline)"),
        TOOL_LONG("tokens", "N", &tokens, 1, 1e7, "characters to generate (default 200)"),
        TOOL_DOUBLE("temperature", "X", &temperature, 0, 100, "softmax temperature; 0 takes the likeliest (default 1)"),
        TOOL_LONG("top-k", "K", &top_k, 0, 1 << 24, "draw among the K likeliest only; 0 all (default 0)"),
        TOOL_LONG("seed", "N", &seed, 0, 9.3e18, "the draws' generator (default 1)"),
        TOOL_DEVICES(&spec),
        TOOL_END};
    const tool_cmd cmd = {"generate", "--checkpoint FILE [OPTIONS]",
                          "Samples text from a character-level GPT's checkpoint and prints the prompt\n"
                          "and what follows it.", NULL, opts};
    int parsed = tool_parse(&cmd, argc, argv);
    if (parsed >= 0) return parsed;
    if (!ckpt) return tool_usage_error(&cmd, "--checkpoint FILE is required");
    if (!*prompt) return tool_usage_error(&cmd, "--prompt must hold at least one character");
    int rc = 1;
    clt_model *m = NULL;
    char *vocab = NULL;
    size_t vlen = 0, n = 0, len = strlen(prompt), outlen;
    clt_text *text = NULL;
    clt_runtime *rt = NULL;
    clt_trainer *t = NULL;
    int32_t *ids = NULL;
    char *out = NULL;
    clt_train_params p;
    clt_status st = clt_checkpoint_read_model(ckpt, &m, &vocab, &vlen);
    if (st == CLT_OK) st = clt_checkpoint_read_params(ckpt, &p);
    if (st != CLT_OK) { tool_fail("reading the checkpoint", st); goto out; }
    if (!vocab) {
        fprintf(stderr, "cltrain generate: %s holds no vocabulary: it was not written by `cltrain train --model gpt`\n", ckpt);
        goto out;
    }
    if (text_of(vocab, vlen, ckpt, &text) != CLT_OK) goto out;
    ids = malloc((len + (size_t)tokens) * sizeof *ids);
    out = malloc(4 * (len + (size_t)tokens) + 1);
    if (!ids || !out) { tool_fail("allocating", CLT_ERR_OUT_OF_HOST_MEMORY); goto out; }
    if ((st = clt_text_encode(text, prompt, len, ids, len, &n)) != CLT_OK) { tool_fail("encoding the prompt", st); goto out; }
    p.max_batch = 1;
    if ((st = clt_runtime_create(&rt, spec)) != CLT_OK) { tool_fail(tool_opening(spec), st); goto out; }
    if ((st = clt_trainer_create(&t, rt, m, &p)) != CLT_OK || (st = clt_trainer_load(t, ckpt)) != CLT_OK) {
        tool_fail("loading the model", st);
        goto out;
    }
    clt_generate_options o = clt_generate_options_default();
    o.temperature = (float)temperature, o.top_k = (int)top_k, o.seed = (uint64_t)seed;
    if ((st = clt_trainer_generate(t, ids, n, (size_t)tokens, &o, ids)) != CLT_OK ||
        (st = clt_text_decode(text, ids, n + (size_t)tokens, out, 4 * (len + (size_t)tokens) + 1, &outlen)) != CLT_OK) {
        tool_fail("generating", st);
        goto out;
    }
    fwrite(out, 1, outlen, stdout);
    printf("\n");
    rc = 0;
out:
    free(ids), free(out), free(vocab);
    clt_trainer_destroy(t);
    clt_runtime_destroy(rt);
    clt_text_destroy(text);
    clt_model_destroy(m);
    return rc;
}
