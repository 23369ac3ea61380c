/* The subcommands of the cltrain command, each in its own file, and what they share. Options are
 * parsed by tools/options.h; a new command is a function here and a line in tools/cltrain.c. */
#ifndef CLT_COMMANDS_H
#define CLT_COMMANDS_H

#include <cltrain.h>

#include "options.h"

/* Each takes the arguments after `cltrain`: argv[0] is its name. 0 done, 1 failed, 2 bad usage. */
int cmd_info(int argc, char **argv);
int cmd_selftest(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_tune(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_generate(int argc, char **argv);
/* cltrain train --model gpt (tools/cmd_gpt.c): cmd_train hands such a command line over. */
int cmd_train_gpt(int argc, char **argv);
/* cltrain bench gemm (tools/cmd_tune.c). */
int cmd_bench_gemm(int argc, char **argv);

/* How a run shares the work between devices: what `train` and `bench train` read from the same
 * options (TOOL_LAYOUT_OPTS) and give the library through tool_layout_params. */
typedef struct {
    int parallel;                     /* clt_parallel, an index of tool_parallel_names */
    int seed_placement;               /* model, tensor: the seed's layout (tool_model_build);
                                       * 0: the trainer partitions the layers itself */
    clt_pipeline_schedule schedule;   /* model, and tensor with the seed placement */
    long micro_batches;               /* the same, for every schedule */
    long pipelines;                   /* model: data-parallel copies of the pipeline */
    int split;                        /* data, tensor: 0 equal, 1 auto (tool_split_names) */
    long tensor_group;                /* tensor: devices per group, 0 all */
    const float *weights;             /* tensor: slice weights, or NULL */
    int verify;                       /* verify_replicas */
    /* which of them the command line gave (TOOL_LAYOUT_OPTS): train refuses those that would
     * do nothing */
    int placement_given, micro_given, pipelines_given, split_given, tgroup_given;
} tool_layout;

extern const char *const tool_model_names[];       /* what tool_model_build builds */
extern const char *const tool_parallel_names[];    /* none, data, model, tensor, auto: clt_parallel's order */
extern const char *const tool_placement_names[];   /* auto, seed */
extern const char *const tool_split_names[];       /* equal, auto */

/* The defaults of train and bench train: one device, 4 micro-batches whatever the schedule. */
#define TOOL_LAYOUT_DEFAULT \
    {.parallel = CLT_PARALLEL_NONE, .schedule = CLT_PIPELINE_1F1B, .micro_batches = 4, .pipelines = 1}
#define TOOL_LAYOUT_OPTS(l)                                                                         \
    TOOL_CHOICE("parallel", tool_parallel_names, &(l)->parallel,                                    \
                "none: one device (the default); data: a replica on every device, the batch\n"      \
                "split; model: the layers in a pipeline of devices; tensor: Linear layers split\n"   \
                "across the devices; auto: the fastest of those, each tried for a few steps"),      \
    TOOL_GIVEN(TOOL_CHOICE("placement", tool_placement_names, &(l)->seed_placement,                 \
                           "model, tensor: auto (the default) partitions by measured layer\n"      \
                           "times; seed is the seed's layout, fc1 on device 0, fc2 and fc3 on\n"   \
                           "1, fc4 on 0 (tensor: on groups); needs --model seed-mlp"),             \
               &(l)->placement_given),                                                              \
    TOOL_GIVEN(TOOL_LONG("micro-batches", "M", &(l)->micro_batches, 1, 65536,                       \
                         "micro-batches per step, the same for every pipeline schedule\n"          \
                         "(default 4)"),                                                            \
               &(l)->micro_given),                                                                  \
    TOOL_GIVEN(TOOL_LONG("pipelines", "P", &(l)->pipelines, 1, 65536,                               \
                         "model: P data-parallel copies of the pipeline, each on its own\n"        \
                         "devices (default 1)"),                                                    \
               &(l)->pipelines_given),                                                              \
    TOOL_GIVEN(TOOL_CHOICE("split", tool_split_names, &(l)->split,                                  \
                           "data, tensor: equal shares (the default), or auto: by each\n"          \
                           "device's speed"),                                                       \
               &(l)->split_given),                                                                  \
    TOOL_GIVEN(TOOL_LONG("tensor-group", "T", &(l)->tensor_group, 0, 65536,                         \
                         "tensor: devices per tensor-parallel group (default 0: all)"),             \
               &(l)->tgroup_given)

/* --parallel auto: clt_plan_parallel's candidates and times on stdout, then *p the chosen one's
 * parameters (a message on stderr and the status when nothing could run). */
clt_status tool_plan(clt_runtime *rt, const clt_model *m, clt_train_params *p);

/* The vocabulary of `bench train --model gpt`'s GPT (tiny Shakespeare's 65 characters). */
#define TOOL_GPT_VOCAB 65
/* Builds a named model: seed-mlp (1024-512-256-128-10), deep-mlp, cnn or gpt; with seed_placement
 * (seed-mlp only) placed as the seed places it. An unknown name or a placement the model cannot
 * take: a message on stderr and CLT_ERR_INVALID_ARG. */
clt_status tool_model_build(const char *name, int seed_placement, clt_model **out);
/* Copies the layout into training parameters. */
void tool_layout_params(const tool_layout *l, clt_train_params *p);
/* "layers 0..1 on 0, layers 2..5 on 1, layer 6 on 0": where a placed model's layers are. */
const char *tool_placement_text(const clt_model *m, char *buf, size_t cap);
/* Tensor parallel: a line per split layer on stdout, its slice on each of the nd devices (an
 * attention block's QKV projection: the slice of each of Q, K and V). */
void tool_print_tensor_slices(const clt_trainer *t, const clt_model *m, int nd);

/* Prints "cltrain: what: <last error>" to stderr and returns 1. */
int tool_fail(const char *what, clt_status st);
/* What opening a runtime on spec is called in tool_fail's message: it names --devices, whose
 * text the library calls "given as an argument", when the option was given. */
const char *tool_opening(const char *spec);
/* TOOL_CUSTOM parser of "3,1,2": up to 16 weights > 0 into the float[16] at dest (the rest 0). */
const char *tool_parse_weights(const char *text, void *dest);
/* Formats a byte count as "3.6 GiB". */
const char *tool_bytes(uint64_t bytes, char *buf, size_t cap);

#endif
