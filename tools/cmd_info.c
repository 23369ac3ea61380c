/* cltrain info: every platform and device, and which ones the device spec selects. */
#include "commands.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *type_name(clt_device_type t)
{
    return t == CLT_DEVICE_GPU ? "GPU" : t == CLT_DEVICE_CPU ? "CPU"
         : t == CLT_DEVICE_ACCELERATOR ? "accelerator" : "other";
}

/* Writes s as a JSON string. */
static void json_str(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') printf("\\%c", *s);
        else if ((unsigned char)*s < 0x20) printf("\\u%04x", *s);
        else putchar(*s);
    }
    putchar('"');
}

int cmd_info(int argc, char **argv)
{
    const char *spec = NULL;
    int json = 0;
    tool_opt opts[] = {TOOL_DEVICES(&spec), TOOL_JSON(&json), TOOL_END};
    const tool_cmd cmd = {"info", "[--devices SPEC] [--json]",
                          "Lists every OpenCL platform and device, the words that select each one, and\n"
                          "which devices SPEC selects (a spec that selects none: exit 1, the error on stderr).",
                          NULL, opts};
    int rc = tool_parse(&cmd, argc, argv);
    if (rc >= 0) return rc;
    /* NULL lets the library read $CLT_DEVICES itself, so its errors name the variable. */
    const char *env = getenv("CLT_DEVICES");
    const char *eff = spec ? spec : env ? env : "all";
    const char *from = spec ? "--devices" : env ? "$CLT_DEVICES" : "default";

    size_t n = 0;
    clt_status st = clt_devices_list(NULL, 0, &n);
    if (st != CLT_OK) return tool_fail("listing OpenCL devices", st);
    clt_device_info *infos = calloc(n ? n : 1, sizeof *infos);
    if (!infos) return tool_fail("listing OpenCL devices", CLT_ERR_OUT_OF_HOST_MEMORY);
    clt_devices_list(infos, n, &n);

    int *sel = NULL;
    size_t nsel = 0;
    clt_status sst = clt_devices_select(spec, NULL, 0, &nsel);
    char sel_err[8192] = "";
    if (sst == CLT_OK) {
        sel = calloc(nsel ? nsel : 1, sizeof *sel);
        clt_devices_select(spec, sel, nsel, &nsel);
    } else {
        snprintf(sel_err, sizeof sel_err, "%s", clt_last_error());
    }

    if (json) {
        printf("{\"version\":");
        json_str(clt_version());
        printf(",\"spec\":");
        json_str(eff);
        printf(",\"devices\":[");
        for (size_t i = 0; i < n; i++) {
            const clt_device_info *d = &infos[i];
            printf("%s{\"id\":\"%d:%d\",\"name\":", i ? "," : "", d->platform, d->device);
            json_str(d->name);
            printf(",\"vendor\":");
            json_str(d->vendor);
            printf(",\"platform\":");
            json_str(d->platform_name);
            printf(",\"platform_vendor\":");
            json_str(d->platform_vendor);
            printf(",\"platform_version\":");
            json_str(d->platform_version);
            printf(",\"words\":[");
            /* d->words is "a, b, c": one JSON string per word */
            for (const char *w = d->words; *w;) {
                size_t len = strcspn(w, ",");
                printf("%s\"%.*s\"", w == d->words ? "" : ",", (int)len, w);
                w += len;
                w += strspn(w, ", ");
            }
            printf("],\"type\":\"%s\",\"global_mem_bytes\":%llu,\"compute_units\":%u,"
                   "\"opencl\":\"%d.%d\",\"driver\":",
                   type_name(d->type), (unsigned long long)d->global_mem_bytes, d->compute_units,
                   d->opencl_major, d->opencl_minor);
            json_str(d->driver_version);
            printf("}");
        }
        printf("],\"selected\":[");
        for (size_t i = 0; i < nsel && sel; i++)
            printf("%s\"%d:%d\"", i ? "," : "", infos[sel[i]].platform, infos[sel[i]].device);
        printf("]");
        if (sst != CLT_OK) {
            printf(",\"error\":");
            json_str(sel_err);
        }
        printf("}\n");
    } else {
        printf("cltrain %s\n", clt_version());
        if (n == 0) printf("no OpenCL device on this machine (for the CPU: apt-get install pocl-opencl-icd)\n");
        int last_platform = -1;
        for (size_t i = 0; i < n; i++) {
            const clt_device_info *d = &infos[i];
            if (d->platform != last_platform) {
                printf("\nplatform %d: %s (%s)\n", d->platform, d->platform_name,
                       d->platform_vendor);
                last_platform = d->platform;
            }
            char mem[32];
            printf("  %d:%d  %s\n        %s, %s, %s global memory, %u compute units, %s, driver %s\n",
                   d->platform, d->device, d->name, type_name(d->type), d->vendor,
                   tool_bytes(d->global_mem_bytes, mem, sizeof mem), d->compute_units, d->version,
                   d->driver_version);
            printf("        select with: %s\n", d->words);
            if (sst != CLT_OK) continue;
            printf("        selected as runtime device:");
            int any = 0;
            for (size_t k = 0; k < nsel && sel; k++)
                if ((size_t)sel[k] == i) printf(" %zu", k), any = 1;
            printf("%s\n", any ? "" : " no");
        }
        if (n)
            printf("\nWords in a spec select the same devices when implementations come and go; "
                   "P:D numbers\nfollow the ICD loader's order and shift.\n");
        if (sst == CLT_OK) {
            printf("\ndevice spec '%s' (%s) selects %zu device%s:", eff, from, nsel,
                   nsel == 1 ? "" : "s");
            for (size_t k = 0; k < nsel; k++) printf(" %d:%d", infos[sel[k]].platform, infos[sel[k]].device);
            printf("\n");
        }
    }
    /* The spec's error goes to stderr whatever the format, so a script sees it and the status. */
    if (sst != CLT_OK)
        fprintf(stderr, "cltrain info%s: %s\n", spec ? " --devices" : "", sel_err);
    free(sel);
    free(infos);
    return sst == CLT_OK ? 0 : 1;
}
