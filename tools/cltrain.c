/* cltrain: the command-line face of the library. One line of the table below per command; each
 * command parses its own options (tools/options.h). */
#include "commands.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmd_version(int argc, char **argv)
{
    tool_opt opts[] = {TOOL_END};
    const tool_cmd cmd = {"version", "", "Prints the version of cltrain (the library's).", NULL, opts};
    int rc = tool_parse(&cmd, argc, argv);
    if (rc >= 0) return rc;
    printf("cltrain %s\n", clt_version());
    return 0;
}

static const tool_command commands[] = {
    {"info", cmd_info, "list every OpenCL platform and device, and what a device spec selects"},
    {"selftest", cmd_selftest, "build and run a kernel on every selected device, check it"},
    {"train", cmd_train, "train a model on Fashion-MNIST (or a GPT on a text) and report how it does"},
    {"generate", cmd_generate, "sample text from a GPT's checkpoint"},
    {"tune", cmd_tune, "search CLBlast's GEMM parameters per device and cache them"},
    {"export", cmd_export, "a checkpoint's parameters as safetensors for PyTorch"},
    {"bench", cmd_bench, "benchmarks: dispatch, train, gemm, allreduce (cltrain bench --help)"},
    {"version", cmd_version, "print the version (also: cltrain --version)"},
    {NULL, NULL, NULL}};

int tool_fail(const char *what, clt_status st)
{
    fprintf(stderr, "cltrain: %s: %s\n  %s\n", what, clt_status_str(st), clt_last_error());
    return 1;
}

const char *tool_opening(const char *spec)
{
    return spec ? "opening the devices --devices names" : "opening devices";
}

const char *tool_parse_weights(const char *text, void *dest)
{
    float *out = dest;
    int n = 0;
    for (int i = 0; i < 16; i++) out[i] = 0.0f;   /* missing weights are refused as 0 */
    while (*text && n < 16) {
        char *end;
        double v = strtod(text, &end);
        if (end == text || !(v > 0) || !isfinite(v) || (*end && *end != ',')) break;
        out[n++] = (float)v;
        text = *end ? end + 1 : end;
    }
    return *text || n == 0 ? "up to 16 weights > 0, comma-separated (3,1)" : NULL;
}

const char *tool_bytes(uint64_t bytes, char *buf, size_t cap)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)bytes;
    int u = 0;
    while (v >= 1024 && u < 4) v /= 1024, u++;
    snprintf(buf, cap, u ? "%.1f %s" : "%.0f %s", v, units[u]);
    return buf;
}

int main(int argc, char **argv)
{
    if (argc == 2 && !strcmp(argv[1], "--version")) {
        printf("cltrain %s\n", clt_version());
        return 0;
    }
    argv[0] = "cltrain";
    return tool_dispatch("cltrain", "command", commands,
                         "man cltrain, or the README, says more; exit status: 0 done, 1 failed, 2 bad usage.\n",
                         argc, argv);
}
