/* The cltrain command's option parser (getopt_long over a table per command), its --help text
 * and the command tables' dispatch; see options.h. */
#include "options.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* getopt_long's val for table entry i: above every character, so -h stays 'h'. */
enum { VAL_BASE = 256, HELP_COLUMN = 29, WIDTH = 79 };

static const char spec_note[] =
    "SPEC: all | gpu | cpu | accelerator | P:D | P:* | a name word (pocl, rusticl, nvidia,\n"
    "gfx1100; `cltrain info` lists each device's), comma-separated; an entry may repeat to\n"
    "open a device twice. Default: $CLT_DEVICES, else all.\n";

tool_opt tool_opt_given(tool_opt o, int *given)
{
    o.given = given;
    return o;
}

static int count_opts(const tool_opt *o)
{
    int n = 0;
    while (o[n].name) n++;
    return n;
}

/* "N", "X", the choices "a|b|c", or nothing for a flag. */
static void metavar(const tool_opt *o, char *buf, size_t cap)
{
    buf[0] = '\0';
    if (o->kind == TOOL_OPT_FLAG) return;
    if (o->metavar || o->kind != TOOL_OPT_CHOICE) {
        snprintf(buf, cap, "%s", o->metavar ? o->metavar : "X");
        return;
    }
    size_t len = 0;
    for (int i = 0; o->choices[i] && len < cap; i++)
        len += (size_t)snprintf(buf + len, cap - len, "%s%s", i ? "|" : "", o->choices[i]);
}

/* Writes text from column `col` (where the cursor is), wrapped at WIDTH columns, continuation
 * lines starting at column `indent`; a '\n' in the text is a space, "\n\n" a blank line. */
static void wrapped(FILE *f, const char *text, int col, int indent)
{
    int at = col;
    for (const char *p = text; *p;) {
        if (p[0] == '\n' && p[1] == '\n') {
            fprintf(f, "\n\n%*s", indent, "");
            at = indent;
            p += 2;
            continue;
        }
        if (*p == ' ' || *p == '\n') {
            p++;
            continue;
        }
        size_t len = strcspn(p, " \n");
        if (at > indent && at + 1 + (int)len > WIDTH) {
            fprintf(f, "\n%*s", indent, "");
            at = indent;
        } else if (at > indent) {
            fputc(' ', f);
            at++;
        }
        fprintf(f, "%.*s", (int)len, p);
        at += (int)len;
        p += len;
    }
    fputc('\n', f);
}

void tool_usage(const tool_cmd *cmd, FILE *f)
{
    const char *synopsis = cmd->synopsis ? cmd->synopsis : "[OPTIONS]";
    fprintf(f, "usage: cltrain %s%s%s\n", cmd->name, *synopsis ? " " : "", synopsis);
    if (cmd->about) {
        fputc('\n', f);
        wrapped(f, cmd->about, 0, 0);
    }
    fprintf(f, "\noptions:\n  %-*s%s\n", HELP_COLUMN - 2, "-h, --help", "print this help and exit");
    int devices = 0;
    for (const tool_opt *o = cmd->opts; o->name; o++) {
        char meta[256], head[300];
        metavar(o, meta, sizeof meta);
        int len = snprintf(head, sizeof head, "--%s%s%s", o->name, *meta ? " " : "", meta);
        if (len > HELP_COLUMN - 3) fprintf(f, "  %s\n%*s", head, HELP_COLUMN, "");
        else fprintf(f, "  %-*s", HELP_COLUMN - 2, head);
        wrapped(f, o->help ? o->help : "", HELP_COLUMN, HELP_COLUMN);
        devices |= !strcmp(o->name, "devices");
    }
    if (cmd->notes) {
        fputc('\n', f);
        wrapped(f, cmd->notes, 0, 0);
    }
    if (devices) {
        fputc('\n', f);
        wrapped(f, spec_note, 0, 0);
    }
}

static void vmessage(const char *name, const char *fmt, va_list ap)
{
    fprintf(stderr, "cltrain %s: ", name);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\ntry 'cltrain %s --help'\n", name);
}

int tool_usage_error(const tool_cmd *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmessage(cmd->name, fmt, ap);
    va_end(ap);
    return 2;
}

/* What a number of o must be: "an integer in 1..65536", "a number > 0". */
static void range_text(const tool_opt *o, char *buf, size_t cap)
{
    const char *what = o->kind == TOOL_OPT_LONG ? "an integer" : o->kind == TOOL_OPT_BYTES ? "a size" : "a number";
    int unbounded = o->max >= 1e18;
    if (o->min_open && unbounded) snprintf(buf, cap, "%s > %g", what, o->min);
    else if (o->min_open) snprintf(buf, cap, "%s > %g and <= %g", what, o->min, o->max);
    else if (unbounded) snprintf(buf, cap, "%s >= %.17g", what, o->min);
    else snprintf(buf, cap, "%s in %.17g..%.17g", what, o->min, o->max);
}

/* A number with no leading space and nothing after it; 0 when there is none. */
static int whole_double(const char *t, double *v)
{
    char *end;
    errno = 0;
    *v = strtod(t, &end);
    return *t && !isspace((unsigned char)*t) && end != t && !*end && isfinite(*v);
}

/* "64M", "4K", "1G", "512KiB", "1.5M" or plain bytes. */
static int parse_bytes(const char *t, double *bytes)
{
    char *end;
    double v = strtod(t, &end);
    if (end == t || isspace((unsigned char)*t) || !isfinite(v) || v < 0) return 0;
    int c = toupper((unsigned char)*end);
    double m = c == 'K' ? 1024.0 : c == 'M' ? 1048576.0 : c == 'G' ? 1073741824.0 : 1.0;
    if (m > 1) end++;
    if (m > 1 && *end == 'i') end++;
    if (*end == 'B') end++;
    *bytes = v * m;
    return !*end && floor(*bytes) == *bytes;
}

/* Stores text as o's value; 0, or 2 after a message naming the option. */
static int store(const tool_cmd *cmd, const tool_opt *o, const char *text)
{
    char range[160];
    double v = 0;
    switch (o->kind) {
    case TOOL_OPT_FLAG:
        *(int *)o->dest = 1;
        return 0;
    case TOOL_OPT_STRING:
        *(const char **)o->dest = text;
        return 0;
    case TOOL_OPT_CHOICE: {
        for (int i = 0; o->choices[i]; i++)
            if (!strcmp(text, o->choices[i])) {
                *(int *)o->dest = i;
                return 0;
            }
        char list[256];
        size_t len = 0;
        int n = 0;
        while (o->choices[n]) n++;
        for (int i = 0; i < n && len < sizeof list; i++)
            len += (size_t)snprintf(list + len, sizeof list - len, "%s%s", i == 0 ? "" : i + 1 < n ? ", " : " or ",
                                    o->choices[i]);
        return tool_usage_error(cmd, "--%s takes %s, not '%s'", o->name, list, text);
    }
    case TOOL_OPT_LONG: {
        char *end;
        errno = 0;
        long l = strtol(text, &end, 10);
        if (*text && !isspace((unsigned char)*text) && end != text && !*end && errno != ERANGE &&
            (double)l >= o->min && (double)l <= o->max) {
            *(long *)o->dest = l;
            return 0;
        }
        break;
    }
    case TOOL_OPT_DOUBLE:
        if (whole_double(text, &v) && (o->min_open ? v > o->min : v >= o->min) && v <= o->max) {
            *(double *)o->dest = v;
            return 0;
        }
        break;
    case TOOL_OPT_BYTES:
        if (parse_bytes(text, &v) && v >= o->min && v <= o->max) {
            *(size_t *)o->dest = (size_t)v;
            return 0;
        }
        range_text(o, range, sizeof range);
        return tool_usage_error(cmd, "--%s takes %s (bytes, or with a K, M or G suffix), not '%s'", o->name,
                                range, text);
    case TOOL_OPT_CUSTOM: {
        const char *why = o->parse(text, o->dest);
        if (!why) return 0;
        return tool_usage_error(cmd, "--%s takes %s, not '%s'", o->name, why, text);
    }
    }
    range_text(o, range, sizeof range);
    return tool_usage_error(cmd, "--%s takes %s, not '%s'", o->name, range, text);
}

/* The message for an option getopt_long did not take: unknown, ambiguous or with a value it
 * does not take. */
static int refused(const tool_cmd *cmd, const char *arg)
{
    const char *name = arg + 2;
    size_t len = strcspn(name, "=");
    if (strncmp(arg, "--", 2)) return tool_usage_error(cmd, "unknown option '%s'", arg);
    int matches = 0;
    char list[512] = "";
    size_t used = 0;
    for (const tool_opt *o = cmd->opts; o->name; o++) {
        if (strncmp(o->name, name, len)) continue;
        if (strlen(o->name) == len && o->kind == TOOL_OPT_FLAG)
            return tool_usage_error(cmd, "--%s takes no value", o->name);
        matches++;
        if (used < sizeof list)
            used += (size_t)snprintf(list + used, sizeof list - used, "%s--%s", used ? ", " : "", o->name);
    }
    if (len == 4 && !strncmp(name, "help", 4)) return tool_usage_error(cmd, "--help takes no value");
    if (matches > 1) return tool_usage_error(cmd, "option '--%.*s' is ambiguous (%s)", (int)len, name, list);
    return tool_usage_error(cmd, "unknown option '--%.*s'", (int)len, name);
}

int tool_parse(const tool_cmd *cmd, int argc, char **argv)
{
    int n = count_opts(cmd->opts);
    struct option *lo = calloc((size_t)n + 2, sizeof *lo);
    if (!lo) {
        fprintf(stderr, "cltrain %s: out of host memory\n", cmd->name);
        return 1;
    }
    for (int i = 0; i < n; i++) {
        const tool_opt *o = &cmd->opts[i];
        lo[i] = (struct option){o->name, o->kind == TOOL_OPT_FLAG ? no_argument : required_argument, NULL,
                                VAL_BASE + i};
    }
    lo[n] = (struct option){"help", no_argument, NULL, 'h'};
    int rc = -1, c;
    opterr = 0;   /* the messages below name the command and the option */
#ifdef __GLIBC__
    optind = 0;   /* glibc: a full restart, whatever parsed before */
#else
    optind = 1;
#endif
    while (rc < 0 && (c = getopt_long(argc, argv, ":h", lo, NULL)) != -1) {
        if (c == 'h') {
            tool_usage(cmd, stdout);
            rc = 0;
        } else if (c == ':') {
            if (optopt >= VAL_BASE) rc = tool_usage_error(cmd, "--%s needs a value", cmd->opts[optopt - VAL_BASE].name);
            else rc = tool_usage_error(cmd, "'%s' needs a value", argv[optind - 1]);
        } else if (c == '?') {
            if (optopt >= VAL_BASE) rc = tool_usage_error(cmd, "--%s takes no value", cmd->opts[optopt - VAL_BASE].name);
            else if (optopt == 'h' && !strncmp(argv[optind - 1], "--", 2)) rc = tool_usage_error(cmd, "--help takes no value");
            else if (optopt) rc = tool_usage_error(cmd, "unknown option '-%c'", optopt);
            else rc = refused(cmd, argv[optind - 1]);
        } else {
            const tool_opt *o = &cmd->opts[c - VAL_BASE];
            if (o->given) *o->given = 1;
            if (store(cmd, o, optarg)) rc = 2;
        }
    }
    if (rc < 0 && optind < argc) rc = tool_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    free(lo);
    return rc;
}

/* ---- tables of commands ------------------------------------------------------------------ */

static void list_commands(const char *prog, const char *what, const tool_command *table, const char *notes,
                          FILE *f)
{
    char upper[32];
    size_t i = 0;
    for (; what[i] && i + 1 < sizeof upper; i++) upper[i] = (char)toupper((unsigned char)what[i]);
    upper[i] = '\0';
    fprintf(f, "usage: %s %s [OPTIONS]\n       %s %s --help   (the options of one %s)\n\n%ss:\n", prog, upper,
            prog, upper, what, what);
    for (const tool_command *t = table; t->name; t++) fprintf(f, "  %-11s%s\n", t->name, t->summary);
    if (notes) fprintf(f, "\n%s", notes);
}

static const tool_command *find_command(const tool_command *table, const char *name)
{
    for (const tool_command *t = table; t->name; t++)
        if (!strcmp(t->name, name)) return t;
    return NULL;
}

static int unknown_command(const char *prog, const char *what, const tool_command *table, const char *name)
{
    fprintf(stderr, "%s: unknown %s '%s' (known:", prog, what, name);
    for (const tool_command *t = table; t->name; t++) fprintf(stderr, "%s %s", t == table ? "" : ",", t->name);
    fprintf(stderr, ")\ntry '%s --help'\n", prog);
    return 2;
}

int tool_dispatch(const char *prog, const char *what, const tool_command *table, const char *notes,
                  int argc, char **argv)
{
    if (argc < 2) {
        list_commands(prog, what, table, notes, stderr);
        return 2;
    }
    const char *name = argv[1];
    if (!strcmp(name, "help") && argc > 2) {   /* help NAME: NAME --help */
        const tool_command *t = find_command(table, argv[2]);
        if (!t) return unknown_command(prog, what, table, argv[2]);
        char *args[] = {argv[2], "--help", NULL};
        return t->run(2, args);
    }
    if (!strcmp(name, "help") || !strcmp(name, "-h") || !strcmp(name, "--help")) {
        list_commands(prog, what, table, notes, stdout);
        return 0;
    }
    if (name[0] == '-') {
        fprintf(stderr, "%s: unknown option '%s'\ntry '%s --help'\n", prog, name, prog);
        return 2;
    }
    const tool_command *t = find_command(table, name);
    if (!t) return unknown_command(prog, what, table, name);
    return t->run(argc - 1, argv + 1);
}
