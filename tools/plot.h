/* SVG training curves for the cltrain command. */
#ifndef CLT_PLOT_H
#define CLT_PLOT_H

#include <stddef.h>

typedef struct {
    const char *label;
    const char *color;    /* any SVG colour */
    const double *x, *y;
    size_t n;
    int markers;          /* dots at the points (sparse series, like per-epoch values) */
} plot_series;

/* Two panels, loss and accuracy (0..1), over steps 0..steps. Returns 0, or -1 when the file
 * cannot be written. */
int plot_write_svg(const char *path, const char *title, const plot_series *loss, int nloss,
                   const plot_series *acc, int nacc, double steps);

#endif
