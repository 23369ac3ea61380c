/* The subcommands of the cltrain command, each in its own file. */
#ifndef CLT_COMMANDS_H
#define CLT_COMMANDS_H

#include <cltrain.h>

int cmd_info(int argc, char **argv);
int cmd_selftest(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_tune(int argc, char **argv);
int cmd_export(int argc, char **argv);
/* cltrain bench gemm (tools/cmd_tune.c). */
int bench_gemm(const char *spec, size_t batch, int iters, int json);

/* Builds a named model: seed-mlp (1024-512-256-128-10) or cnn. */
clt_status tool_model_build(const char *name, clt_model **out);

/* Prints "cltrain: what: <last error>" to stderr and returns 1. */
int tool_fail(const char *what, clt_status st);
/* What opening a runtime on spec is called in tool_fail's message: it names --devices, whose
 * text the library calls "given as an argument", when the option was given. */
const char *tool_opening(const char *spec);
/* Parses "3,1,2" into up to cap weights > 0 (the rest of out set to 0); the count, or -1. */
int tool_parse_weights(const char *text, float *out, int cap);
/* Formats a byte count as "3.6 GiB". */
const char *tool_bytes(uint64_t bytes, char *buf, size_t cap);

#endif
