/* golden.h: comparing the C model's tensors with a PyTorch golden fixture's (test_dit_golden.c,
 * test_xattn_golden.c): the worst entry of a group of tensors by err / (GOLD_ATOL + GOLD_RTOL |ref|),
 * and one EXPECT per group naming it. Include after defining GOLD_ATOL and GOLD_RTOL.
 * Return convention: nothing here can fail; the EXPECT records a failed check. */
#pragma once
#include <math.h>
#include <stdio.h>

#include "model.h"
#include "test.h"

#if !defined(GOLD_ATOL) || !defined(GOLD_RTOL)
#error "define GOLD_ATOL and GOLD_RTOL before including golden.h"
#endif

/* Worst entry of one group of tensors, by err / (atol + rtol |ref|). */
typedef struct {
  double ratio, err, c, ref, max_abs_err, max_rel_err;
  char where[MODEL_NAME_MAX + 32];
} Worst;

static inline void compare(Worst *w, const char *name, const float *c, const float *ref, long n) {
  for (long i = 0; i < n; i++) {
    double err = fabs((double)c[i] - ref[i]), ratio = err / (GOLD_ATOL + GOLD_RTOL * fabs(ref[i]));
    w->max_abs_err = fmax(w->max_abs_err, err);
    if (fabs(ref[i]) > 1e-3) w->max_rel_err = fmax(w->max_rel_err, err / fabs(ref[i]));
    if (ratio > w->ratio || !isfinite(c[i])) {
      w->ratio = isfinite(c[i]) ? ratio : INFINITY, w->err = err, w->c = c[i], w->ref = ref[i];
      snprintf(w->where, sizeof w->where, "%s[%ld]", name, i);
    }
  }
}

static inline void expect_worst(const char *group, const Worst *w) {
  printf("  %s: max |err| %.3g, max relative err %.3g (entries above 1e-3), worst at %.3g of the tolerance\n",
         group, w->max_abs_err, w->max_rel_err, w->ratio);
  EXPECT(w->ratio <= 1, "%s: worst %s: C %.9g vs reference %.9g (|err| %.3g, atol %g + rtol %g |ref|)", group,
         w->where, w->c, w->ref, w->err, GOLD_ATOL, GOLD_RTOL);
}
