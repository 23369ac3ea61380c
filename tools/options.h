/* Command-line parsing for the cltrain command: each command describes its options in a table,
 * tool_parse reads argv with getopt_long (`--opt value`, `--opt=value`, `-h`/`--help`) and
 * checks every value, and tool_dispatch runs a command named by argv[1] from a table.
 *
 * How a command uses it (cmd_selftest.c is the shortest whole example):
 *
 *     int cmd_export(int argc, char **argv)      // argv[0] is "export"
 *     {
 *         const char *ckpt = NULL, *out = NULL;
 *         long limit = 10;
 *         int json = 0;
 *         tool_opt opts[] = {
 *             TOOL_STRING("checkpoint", "FILE", &ckpt, "the checkpoint to read (required)"),
 *             TOOL_LONG("limit", "N", &limit, 1, 1000, "at most N tensors (default 10)"),
 *             TOOL_JSON(&json),
 *             TOOL_END};
 *         const tool_cmd cmd = {"export", "[OPTIONS]", "Writes a checkpoint's weights.", NULL, opts};
 *         int rc = tool_parse(&cmd, argc, argv);
 *         if (rc >= 0) return rc;                 // --help (0) or a bad option (2), printed
 *         if (!ckpt) return tool_usage_error(&cmd, "--checkpoint FILE is required");
 *         ...                                      // library failures: return tool_fail(...) (1)
 *     }
 *
 * and one line in the table of tools/cltrain.c: {"export", cmd_export, "a summary line"}.
 * Defaults are the variables' values before tool_parse; an option's `given` (TOOL_GIVEN) says
 * whether the command line set it, where a default depends on other options. Exit statuses:
 * 0 done (and --help), 1 the library or the system failed, 2 the command line is wrong. */
#ifndef CLT_TOOLS_OPTIONS_H
#define CLT_TOOLS_OPTIONS_H

#include <stddef.h>
#include <stdio.h>

typedef enum {
    TOOL_OPT_FLAG,     /* no value: *(int *)dest = 1 */
    TOOL_OPT_STRING,   /* any text: *(const char **)dest points into argv */
    TOOL_OPT_CHOICE,   /* one of choices (NULL-terminated): *(int *)dest = its index */
    TOOL_OPT_LONG,     /* an integer in [min, max]: *(long *)dest */
    TOOL_OPT_DOUBLE,   /* a finite number in [min, max], min excluded with min_open: *(double *)dest */
    TOOL_OPT_BYTES,    /* a size, K, M or G suffixed (powers of 1024), in [min, max]: *(size_t *)dest */
    TOOL_OPT_CUSTOM    /* parse(text, dest): NULL, or what the value must be ("up to 16 weights") */
} tool_opt_kind;

typedef struct {
    const char *name;       /* the long name, without "--"; NULL ends a table */
    tool_opt_kind kind;
    void *dest;
    const char *metavar;    /* "N", "SPEC"; for a choice, NULL writes the choices a|b|c */
    const char *help;       /* what it does and its default; '\n' starts an indented line */
    double min, max;        /* LONG, DOUBLE, BYTES */
    int min_open;           /* DOUBLE: the value must be greater than min */
    const char *const *choices;                       /* CHOICE */
    const char *(*parse)(const char *text, void *dest);   /* CUSTOM */
    int *given;             /* optional: set to 1 when the option is on the command line */
} tool_opt;

#define TOOL_FLAG(n, d, h) {.name = (n), .kind = TOOL_OPT_FLAG, .dest = (d), .help = (h)}
#define TOOL_STRING(n, meta, d, h) \
    {.name = (n), .kind = TOOL_OPT_STRING, .dest = (d), .metavar = (meta), .help = (h)}
#define TOOL_CHOICE(n, list, d, h) \
    {.name = (n), .kind = TOOL_OPT_CHOICE, .dest = (d), .choices = (list), .help = (h)}
#define TOOL_LONG(n, meta, d, lo, hi, h) \
    {.name = (n), .kind = TOOL_OPT_LONG, .dest = (d), .metavar = (meta), .min = (lo), .max = (hi), .help = (h)}
#define TOOL_DOUBLE(n, meta, d, lo, hi, h) \
    {.name = (n), .kind = TOOL_OPT_DOUBLE, .dest = (d), .metavar = (meta), .min = (lo), .max = (hi), .help = (h)}
/* A number > lo (a learning rate: 0 is as meaningless as -5). */
#define TOOL_ABOVE(n, meta, d, lo, hi, h) \
    {.name = (n), .kind = TOOL_OPT_DOUBLE, .dest = (d), .metavar = (meta), .min = (lo), .max = (hi), \
     .min_open = 1, .help = (h)}
#define TOOL_BYTES(n, meta, d, lo, hi, h) \
    {.name = (n), .kind = TOOL_OPT_BYTES, .dest = (d), .metavar = (meta), .min = (lo), .max = (hi), .help = (h)}
#define TOOL_CUSTOM(n, meta, d, fn, h) \
    {.name = (n), .kind = TOOL_OPT_CUSTOM, .dest = (d), .metavar = (meta), .parse = (fn), .help = (h)}
/* Any of the above with a `given` flag: TOOL_GIVEN(TOOL_ABOVE("lr", ...), &lr_given). */
#define TOOL_GIVEN(opt, flag) tool_opt_given((tool_opt)opt, (flag))
/* The options every device-using command shares. */
#define TOOL_DEVICES(d) \
    TOOL_STRING("devices", "SPEC", (d), "the devices to open (see SPEC below; default $CLT_DEVICES, else all)")
#define TOOL_JSON(d) TOOL_FLAG("json", (d), "write the results as JSON, one object a line")
#define TOOL_END {.name = NULL}

/* A command (or a bench subcommand) as its --help shows it. */
typedef struct {
    const char *name;       /* "train", "bench train": usage says "cltrain <name>" */
    const char *synopsis;   /* after the name: "[OPTIONS]" */
    const char *about;      /* a paragraph before the options */
    const char *notes;      /* after the options, or NULL */
    tool_opt *opts;         /* ends with TOOL_END */
} tool_cmd;

/* Reads argv[1..] (argv[0] is the command's name) into the options' variables. -1: go on;
 * otherwise the status to exit with, after printing: 0 for -h/--help (the usage on stdout), 2 for
 * an unknown option, a missing or bad value, or a stray argument (one line naming it, and where
 * to read the usage, on stderr). */
int tool_parse(const tool_cmd *cmd, int argc, char **argv);
/* Prints the usage of cmd to f. */
void tool_usage(const tool_cmd *cmd, FILE *f);
/* A command-line error found after parsing ("--resume needs --checkpoint"): prints
 * "cltrain <name>: <message>" and the pointer to --help on stderr; returns 2. */
int tool_usage_error(const tool_cmd *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
tool_opt tool_opt_given(tool_opt o, int *given);

/* A table of commands: name, what runs it (argv[0] is the name), a line for the list. */
typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} tool_command;

/* Runs the command argv[1] names (argv[0] is the group: "cltrain", "bench"). No name: the list
 * on stderr, 2; -h, --help or help: the list on stdout, 0 (`help NAME`: NAME's --help); an
 * unknown name: 2. `prog` is how usage names the group ("cltrain", "cltrain bench"), `what` one
 * entry ("COMMAND", "BENCHMARK"), `notes` text after the list (or NULL). */
int tool_dispatch(const char *prog, const char *what, const tool_command *table, const char *notes,
                  int argc, char **argv);

#endif
