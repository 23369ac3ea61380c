/* A small SVG line plot for training curves: two panels side by side (loss, accuracy), each
 * with axes, ticks, a legend and any number of series, readable in any browser. */
#include "plot.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define PANEL_W 460
#define PANEL_H 320
#define MARGIN_L 64
#define MARGIN_R 16
#define MARGIN_T 36
#define MARGIN_B 48

/* A "nice" tick step for a range: 1, 2 or 5 times a power of ten. */
static double nice_step(double range, int want)
{
    if (!(range > 0)) return 1;
    double raw = range / want, p = pow(10, floor(log10(raw))), f = raw / p;
    return p * (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10);
}

static void panel(FILE *f, double x0, const char *title, const char *ylabel, const plot_series *s,
                  int ns, double xmax, int y_is_fraction)
{
    double ymin = INFINITY, ymax = -INFINITY;
    for (int i = 0; i < ns; i++)
        for (size_t k = 0; k < s[i].n; k++)
            if (isfinite(s[i].y[k])) ymin = fmin(ymin, s[i].y[k]), ymax = fmax(ymax, s[i].y[k]);
    if (!isfinite(ymin)) ymin = 0, ymax = 1;
    if (y_is_fraction) ymin = fmax(0, floor(ymin * 10) / 10), ymax = fmin(1, ceil(ymax * 10) / 10);
    else ymin = fmin(0, ymin);
    if (ymax - ymin < 1e-9) ymax = ymin + 1;
    if (!(xmax > 0)) xmax = 1;
    double pw = PANEL_W - MARGIN_L - MARGIN_R, ph = PANEL_H - MARGIN_T - MARGIN_B;
    double ox = x0 + MARGIN_L, oy = MARGIN_T + ph;
#define PX(v) (ox + (v) / xmax * pw)
#define PY(v) (oy - ((v) - ymin) / (ymax - ymin) * ph)
    fprintf(f, "<text x=\"%.1f\" y=\"22\" font-size=\"15\" font-weight=\"bold\">%s</text>\n", x0 + MARGIN_L, title);
    fprintf(f, "<rect x=\"%.1f\" y=\"%d\" width=\"%.1f\" height=\"%.1f\" fill=\"white\" stroke=\"#888\"/>\n",
            ox, MARGIN_T, pw, ph);
    double ys = nice_step(ymax - ymin, 5);
    for (double v = ceil(ymin / ys) * ys; v <= ymax + 1e-9; v += ys) {
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e4e4e4\"/>\n", ox, PY(v), ox + pw, PY(v));
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\" text-anchor=\"end\">%g</text>\n", ox - 6, PY(v) + 4,
                fabs(v) < 1e-12 ? 0.0 : v);
    }
    double xs = nice_step(xmax, 6);
    for (double v = 0; v <= xmax + 1e-9; v += xs) {
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e4e4e4\"/>\n", PX(v), oy, PX(v), (double)MARGIN_T);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\" text-anchor=\"middle\">%g</text>\n", PX(v), oy + 16, v);
    }
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"12\" text-anchor=\"middle\">step</text>\n", ox + pw / 2, oy + 36);
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"12\" text-anchor=\"middle\" transform=\"rotate(-90 %.1f %.1f)\">%s</text>\n",
            x0 + 16, oy - ph / 2, x0 + 16, oy - ph / 2, ylabel);
    for (int i = 0; i < ns; i++) {
        if (!s[i].n) continue;
        fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"%s\" points=\"", s[i].color,
                s[i].markers ? "2" : "1.2");
        for (size_t k = 0; k < s[i].n; k++)
            if (isfinite(s[i].y[k])) fprintf(f, "%.1f,%.1f ", PX(s[i].x[k]), PY(s[i].y[k]));
        fprintf(f, "\"/>\n");
        for (size_t k = 0; s[i].markers && k < s[i].n; k++)
            if (isfinite(s[i].y[k]))
                fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" fill=\"%s\"/>\n", PX(s[i].x[k]), PY(s[i].y[k]), s[i].color);
        double ly = MARGIN_T + 14 + 16 * i;
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"3\"/>\n",
                ox + pw - 120, ly - 4, ox + pw - 100, ly - 4, s[i].color);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\">%s</text>\n", ox + pw - 95, ly, s[i].label);
    }
#undef PX
#undef PY
}

int plot_write_svg(const char *path, const char *title, const plot_series *loss, int nloss,
                   const plot_series *acc, int nacc, double steps)
{
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
               "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
               "font-family=\"sans-serif\">\n<title>%s</title>\n"
               "<rect width=\"100%%\" height=\"100%%\" fill=\"#fafafa\"/>\n",
            2 * PANEL_W, PANEL_H + 20, title);
    panel(f, 0, "loss", "loss", loss, nloss, steps, 0);
    panel(f, PANEL_W, "accuracy", "accuracy", acc, nacc, steps, 1);
    fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"11\" fill=\"#555\">%s</text>\n</svg>\n", MARGIN_L,
            PANEL_H + 12, title);
    int bad = ferror(f);
    return (fclose(f) || bad) ? -1 : 0;
}
