/* Pipeline schedules as data: each stage's instruction list from the schedule's rule (naive,
 * GPipe, 1F1B, zero bubble), merged into one list per device by simulating the run; and the
 * automatic partitioning of layers into stages. lib/strategy_model.c interprets the lists. */
#include "internal.h"

#include <float.h>
#include <stdlib.h>
#include <string.h>

const char *clt_pipeline_schedule_name(clt_pipeline_schedule s)
{
    switch (s) {
    case CLT_PIPELINE_NAIVE: return "naive";
    case CLT_PIPELINE_GPIPE: return "gpipe";
    case CLT_PIPELINE_1F1B: return "1f1b";
    case CLT_PIPELINE_ZB: return "zb";
    }
    return "unknown";
}

clt_status clt_pipeline_schedule_parse(const char *name, clt_pipeline_schedule *out)
{
    if (!name || !out)
        return clt__fail(CLT_ERR_INVALID_ARG, "clt_pipeline_schedule_parse: %s is NULL", !name ? "name" : "out");
    for (int s = CLT_PIPELINE_NAIVE; s <= CLT_PIPELINE_ZB; s++) {
        const char *known = clt_pipeline_schedule_name((clt_pipeline_schedule)s);
        if (strlen(name) == strlen(known) && clt__contains_nocase(known, name)) {
            *out = (clt_pipeline_schedule)s;
            return CLT_OK;
        }
    }
    return clt__fail(CLT_ERR_INVALID_ARG, "unknown pipeline schedule '%s' (known: naive, gpipe, 1f1b, zb)", name);
}

const char *clt__op_name(int kind)
{
    static const char *const names[] = {"FWD", "BWD", "SEND_ACT", "RECV_ACT", "SEND_GRAD", "RECV_GRAD", "OUTPUT",
                                        "WGRAD"};
    return kind >= 0 && kind <= CLT__OP_WGRAD ? names[kind] : "?";
}

/* Timeline names of the instructions (the trace keeps the pointer: static strings), by kind
 * and micro-batch; micro-batches from 16 on share the name without a number. */
#define MB16(s) {s " 0", s " 1", s " 2", s " 3", s " 4", s " 5", s " 6", s " 7", s " 8", s " 9", \
                 s " 10", s " 11", s " 12", s " 13", s " 14", s " 15", s}
static const char *const op_names[][17] = {
    [CLT__OP_FWD] = MB16("forward mb"),
    [CLT__OP_BWD] = MB16("backward mb"),
    [CLT__OP_SEND_ACT] = MB16("send activations mb"),
    [CLT__OP_RECV_ACT] = MB16("wait for activations mb"),
    [CLT__OP_SEND_GRAD] = MB16("send gradients mb"),
    [CLT__OP_RECV_GRAD] = MB16("wait for gradients mb"),
    [CLT__OP_OUTPUT] = MB16("read outputs mb"),
    [CLT__OP_WGRAD] = MB16("weight gradients mb"),
    [CLT__OP_WGRAD + 1] = MB16("weight gradients of micro-batches from"),   /* several */
};
#undef MB16

const char *clt__op_span_name(clt__op op)
{
    if (op.kind == CLT__OP_WGRAD && op.mbs > 1) return op_names[CLT__OP_WGRAD + 1][op.mb >= 0 && op.mb < 16 ? op.mb : 16];
    if (op.kind < 0 || op.kind > CLT__OP_WGRAD || !op_names[op.kind][0]) return NULL;
    return op_names[op.kind][op.mb >= 0 && op.mb < 16 ? op.mb : 16];
}

int clt__op_fault_kind(int kind)
{
    return kind == CLT__OP_FWD                           ? CLT__FAULT_FORWARD
           : kind == CLT__OP_BWD || kind == CLT__OP_WGRAD ? CLT__FAULT_BACKWARD
                                                          : CLT__FAULT_COPY;
}

/* ---- one stage's list ------------------------------------------------------------------- */

typedef struct {
    clt__op *ops;
    size_t n;
    int wgroup;     /* split backwards: micro-batches per WGRAD; 0: whole backwards */
    int defer;      /* zero bubble: a WGRAD waits in `held` (see stage_list) */
    int slots;      /* zero bubble: the stage's activation slots (clt__pipeline_slots) */
    bool holding;
    clt__op held;
} op_list;

static void emit(op_list *l, int kind, int stage, int mb) { l->ops[l->n++] = (clt__op){kind, stage, mb, 1}; }

/* Zero bubble: the held WGRAD goes out, if any (and, with at >= 0, only when micro-batch at
 * needs its slot). */
static void release(op_list *l, int at)
{
    if (l->holding && (at < 0 || l->held.mb <= at - l->slots)) l->ops[l->n++] = l->held, l->holding = false;
}

static void emit_forward(op_list *l, int s, int m, int S, int train)
{
    release(l, m);
    if (s > 0) emit(l, CLT__OP_RECV_ACT, s, m);
    emit(l, CLT__OP_FWD, s, m);
    if (s < S - 1) emit(l, CLT__OP_SEND_ACT, s, m);
    else if (!train) emit(l, CLT__OP_OUTPUT, s, m);
}

/* Split: the weight gradients of a group once the group's last backward has sent its input
 * gradient. */
static void emit_backward(op_list *l, int s, int m, int S, int M)
{
    release(l, -1);
    if (s < S - 1) emit(l, CLT__OP_RECV_GRAD, s, m);
    emit(l, CLT__OP_BWD, s, m);
    if (s > 0) emit(l, CLT__OP_SEND_GRAD, s, m);
    if (l->wgroup && ((m + 1) % l->wgroup == 0 || m == M - 1)) {
        clt__op w = {CLT__OP_WGRAD, s, m - m % l->wgroup, m % l->wgroup + 1};
        if (l->defer) l->held = w, l->holding = true;
        else l->ops[l->n++] = w;
    }
}

/* Backwards always run in micro-batch order, so every schedule adds the micro-batches'
 * gradients in the same order and gives the same bits. Zero bubble (ZB-H1, Qi et al., ICLR
 * 2024) is 1F1B's forwards and backwards with each WGRAD held back: it goes out before the
 * stage's next backward, so it fills the wait for that backward's gradient (the next forward's
 * activations leave first; in the cool-down, the waits between backwards), or before a forward
 * that needs one of its slots. The WGRADs are 1F1B's pairs in 1F1B's order: the same bits, in
 * 1F1B's slots. */
static void stage_list(op_list *l, clt_pipeline_schedule kind, int s, int S, int M, int train)
{
    if (!train) {
        for (int m = 0; m < M; m++) emit_forward(l, s, m, S, 0);
        return;
    }
    switch (kind) {
    case CLT_PIPELINE_NAIVE:
        for (int m = 0; m < M; m++) emit_forward(l, s, m, S, 1), emit_backward(l, s, m, S, M);
        break;
    case CLT_PIPELINE_GPIPE:
        for (int m = 0; m < M; m++) emit_forward(l, s, m, S, 1);
        for (int m = 0; m < M; m++) emit_backward(l, s, m, S, M);
        break;
    case CLT_PIPELINE_1F1B:
    case CLT_PIPELINE_ZB: {
        int warm = S - 1 - s < M ? S - 1 - s : M;
        for (int m = 0; m < warm; m++) emit_forward(l, s, m, S, 1);
        for (int i = 0; i < M - warm; i++) emit_forward(l, s, warm + i, S, 1), emit_backward(l, s, i, S, M);
        for (int m = M - warm; m < M; m++) emit_backward(l, s, m, S, M);
        release(l, -1);
        break;
    }
    }
}

/* ---- merging the stages of a device ------------------------------------------------------ */

void clt__schedule_free(clt__schedule *s)
{
    if (!s) return;
    for (int d = 0; s->ops && d < s->ndev; d++) free(s->ops[d]);
    free(s->ops), free(s->nops);
    free(s);
}

clt_status clt__schedule_build(clt__schedule **out, clt_pipeline_schedule kind, int nstages,
                               const int *stage_dev, int ndev, int micro, int train, int split)
{
    *out = NULL;
    CLT_ASSERT(nstages > 0 && ndev > 0 && micro > 0, CLT_ERR_STATE);
    for (int s = 0; s < nstages; s++) CLT_ASSERT(stage_dev[s] >= 0 && stage_dev[s] < ndev, CLT_ERR_STATE);
    if (kind != CLT_PIPELINE_NAIVE && kind != CLT_PIPELINE_GPIPE && kind != CLT_PIPELINE_1F1B &&
        kind != CLT_PIPELINE_ZB)
        return clt__fail(CLT_ERR_INVALID_ARG, "unknown pipeline schedule %d", (int)kind);
    int S = nstages, M = micro;
    size_t per_stage = (size_t)7 * (size_t)M;
    clt__schedule *sc = calloc(1, sizeof *sc);
    op_list *lists = calloc((size_t)S, sizeof *lists);
    size_t *head = calloc((size_t)S, sizeof *head);
    bool *sent = calloc((size_t)S * (size_t)M * 2, sizeof *sent);   /* [act|grad][stage][mb] */
    bool ok = sc && lists && head && sent;
    if (ok) {
        sc->kind = kind, sc->nstages = S, sc->ndev = ndev, sc->micro = M, sc->train = train;
        sc->split = split && train;
        ok = (sc->ops = calloc((size_t)ndev, sizeof *sc->ops)) && (sc->nops = calloc((size_t)ndev, sizeof *sc->nops));
    }
    for (int d = 0; ok && d < ndev; d++) ok = (sc->ops[d] = malloc(per_stage * (size_t)S * sizeof **sc->ops)) != NULL;
    for (int s = 0; ok && s < S; s++) ok = (lists[s].ops = malloc(per_stage * sizeof *lists[s].ops)) != NULL;
    clt_status st = ok ? CLT_OK : clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    for (int s = 0; st == CLT_OK && s < S; s++) {
        int gslots;
        lists[s].wgroup = sc->split ? clt__pipeline_wgroup(kind, M) : 0;
        lists[s].defer = kind == CLT_PIPELINE_ZB && lists[s].wgroup;
        clt__pipeline_slots(kind, S, s, M, sc->split, &lists[s].slots, &gslots);
        stage_list(&lists[s], kind, s, S, M, train);
    }

    /* Rounds of a simulated run: each device takes one ready instruction per round, the latest
     * stage's first (it drains the pipeline). A receive is ready once its send was taken. */
    size_t left = 0;
    for (int s = 0; st == CLT_OK && s < S; s++) left += lists[s].n;
    while (st == CLT_OK && left) {
        bool progress = false;
        for (int d = 0; d < ndev; d++)
            for (int s = S - 1; s >= 0; s--) {
                if (stage_dev[s] != d || head[s] == lists[s].n) continue;
                clt__op op = lists[s].ops[head[s]];
                if ((op.kind == CLT__OP_RECV_ACT && !sent[((size_t)0 * S + (size_t)(s - 1)) * M + op.mb]) ||
                    (op.kind == CLT__OP_RECV_GRAD && !sent[((size_t)1 * S + (size_t)(s + 1)) * M + op.mb]))
                    continue;
                if (op.kind == CLT__OP_SEND_ACT) sent[((size_t)0 * S + (size_t)s) * M + op.mb] = true;
                if (op.kind == CLT__OP_SEND_GRAD) sent[((size_t)1 * S + (size_t)s) * M + op.mb] = true;
                sc->ops[d][sc->nops[d]++] = op;
                head[s]++, left--;
                progress = true;
                break;
            }
        if (!progress)
            st = clt__fail(CLT_ERR_STATE, "internal error: the %s schedule of %d stages and %d "
                           "micro-batches deadlocks", clt_pipeline_schedule_name(kind), S, M);
    }
    for (int s = 0; lists && s < S; s++) free(lists[s].ops);
    free(lists), free(head), free(sent);
    if (st != CLT_OK) {
        clt__schedule_free(sc);
        return st;
    }
    *out = sc;
    return CLT_OK;
}

clt_status clt__schedule_cached(clt__schedule **cache, clt_pipeline_schedule kind, int nstages,
                                const int *stage_dev, int ndev, int micro, int train, int split,
                                const clt__schedule **out)
{
    if (!*cache || (*cache)->micro != micro || (*cache)->kind != kind || (*cache)->split != (split && train)) {
        clt__schedule_free(*cache);
        *cache = NULL;
        clt_status st = clt__schedule_build(cache, kind, nstages, stage_dev, ndev, micro, train, split);
        if (st != CLT_OK) return st;
    }
    *out = *cache;
    return CLT_OK;
}

int clt__pipeline_wgroup(clt_pipeline_schedule kind, int M)
{
    return kind == CLT_PIPELINE_GPIPE ? M : kind == CLT_PIPELINE_1F1B || kind == CLT_PIPELINE_ZB ? 2 : 1;
}

/* A split 1F1B keeps a pair's first micro-batch until the second's backward: one slot more,
 * rounded up to even so a pair always sits in adjacent slots (one pass over its rows). Zero
 * bubble has 1F1B's slots (its WGRADs wait for no more than they allow) and forwards and
 * backwards, so 1F1B's gout slots too. */
void clt__pipeline_slots(clt_pipeline_schedule kind, int S, int k, int M, int split, int *slots, int *gslots)
{
    if (kind == CLT_PIPELINE_ZB) kind = CLT_PIPELINE_1F1B;
    int in_flight = kind == CLT_PIPELINE_NAIVE ? 1 : kind == CLT_PIPELINE_GPIPE ? M : S - k;
    int held = kind == CLT_PIPELINE_1F1B && split ? (in_flight + 2) / 2 * 2 : in_flight;
    *slots = held < M ? held : M;
    *gslots = kind == CLT_PIPELINE_GPIPE ? M : (in_flight + 1 < M ? in_flight + 1 : M);
}

/* ---- automatic partitioning ------------------------------------------------------------- */

clt_status clt__partition(int nlayers, int ndev, const double *cost, const double *mem,
                          const double *cap, const bool *cut_ok, int *device_of)
{
    CLT_ASSERT(nlayers > 0 && ndev > 0, CLT_ERR_STATE);
    size_t L = (size_t)nlayers, rows = (size_t)ndev + 1;
    /* best[k][i]: the smallest slowest-device time placing layers [0, i) on devices [0, k);
     * cut[k][i]: where device k-1's range starts in that best split. */
    double *best = malloc(rows * (L + 1) * sizeof *best);
    int *cut = malloc(rows * (L + 1) * sizeof *cut);
    if (!best || !cut) {
        free(best), free(cut);
        return clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    }
    for (size_t i = 0; i <= L; i++) best[i] = i ? DBL_MAX : 0.0;
    for (size_t k = 1; k < rows; k++) {
        const double *c = cost + (k - 1) * L;
        for (size_t i = 0; i <= L; i++) {
            double b = DBL_MAX, t = 0, m = 0;
            int at = (int)i;
            if (cut_ok && i > 0 && i < L && !cut_ok[i]) {   /* no range ends inside a block */
                best[k * (L + 1) + i] = DBL_MAX;
                cut[k * (L + 1) + i] = at;
                continue;
            }
            /* device k-1 takes [j, i), j from i down (empty range first) */
            for (size_t j = i + 1; j-- > 0;) {
                if (j < i) t += c[j], m += mem[j];
                if (m > cap[k - 1]) break;
                double prev = best[(k - 1) * (L + 1) + j];
                if (prev == DBL_MAX) continue;
                double v = prev > t ? prev : t;
                /* on a tie the later device keeps the shorter range */
                if (v < b) b = v, at = (int)j;
            }
            best[k * (L + 1) + i] = b;
            cut[k * (L + 1) + i] = at;
        }
    }
    clt_status st = CLT_OK;
    if (best[(rows - 1) * (L + 1) + L] == DBL_MAX) {
        st = clt__fail(CLT_ERR_OUT_OF_DEVICE_MEMORY, "automatic partitioning: the model's %d layers "
                       "do not fit in the memory of the %d devices", nlayers, ndev);
    } else {
        size_t i = L;
        for (size_t k = rows - 1; k > 0; k--) {
            size_t j = (size_t)cut[k * (L + 1) + i];
            for (size_t x = j; x < i; x++) device_of[x] = (int)k - 1;
            i = j;
        }
    }
    free(best), free(cut);
    return st;
}
