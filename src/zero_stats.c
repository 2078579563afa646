/* zero_stats.c: the communication columns of /train, the /memory row and the summary line. */
#include "zero_stats.h"

#include <stdio.h>
#include <string.h>

#include "common.h"

/* What a network's collectives moved so far: its optimizer's and, at stage 3, its units'. */
static DistTraffic net_traffic(const ZeroNet *n) {
  DistTraffic t = {0};
  const DistTraffic *parts[2] = {n->zo ? &n->zo->traffic : NULL, n->model ? model_traffic(n->model) : NULL};
  for (int i = 0; i < 2; i++) {
    if (!parts[i]) continue;
    t.sent += parts[i]->sent, t.received += parts[i]->received, t.seconds += parts[i]->seconds;
    t.gather_wait += parts[i]->gather_wait, t.gather_span += parts[i]->gather_span;
  }
  return t;
}

void zero_stats_init(ZeroStats *s, const ZeroNet *nets, int nnets, int stage) {
  CHECK(nnets >= 1 && nnets <= ZERO_STATS_MAX_NETS, "zero_stats: %d networks", nnets);
  memset(s, 0, sizeof *s);
  s->nnets = nnets;
  memcpy(s->nets, nets, sizeof *nets * (size_t)nnets);
  static const char *const head[3] = {"step", "ranks", "zero"};
  static const char *const parts[5] = {"params", "gradients", "moments", "ema", "gathered"};
  for (int c = 0; c < 3; c++) snprintf(s->memory_names[c], sizeof s->memory_names[c], "%s", head[c]);
  s->memory_row[1] = dist_size(), s->memory_row[2] = stage;
  int c = 3;
  for (int i = 0; i < nnets; i++) {
    const ZeroNet *n = &nets[i];
    ZeroMemory b = {0};
    if (n->model && n->zo) b = zero_memory(n->zo, model_gathered_bytes(n->model), n->ema);
    if (n->model && !n->zo) /* frozen: parameters and gathered buffers only */
      b.params = (long)sizeof(float) * model_stored_n(n->model), b.gathered = model_gathered_bytes(n->model);
    const long v[5] = {b.params, b.gradients, b.moments, b.ema, b.gathered};
    for (int k = 0; k < 5; k++, c++) {
      snprintf(s->memory_names[c], sizeof s->memory_names[c], "%s_%s", n->name, parts[k]);
      s->memory_row[c] = (double)v[k];
    }
  }
  s->nmemory = c;
  for (int k = 0; k < c; k++) s->memory_cols[k] = s->memory_names[k];
}

void zero_stats_step_begin(ZeroStats *s) {
  for (int i = 0; i < s->nnets; i++) s->at_step[i] = net_traffic(&s->nets[i]);
}

int zero_stats_step_end(ZeroStats *s, double *out) {
  double bytes = 0, seconds = 0;
  int k = 1;
  for (int i = 0; i < s->nnets; i++) {
    DistTraffic now = net_traffic(&s->nets[i]), *then = &s->at_step[i];
    long b = now.sent - then->sent + now.received - then->received;
    bytes += (double)b, seconds += now.seconds - then->seconds;
    s->run.sent += now.sent - then->sent, s->run.received += now.received - then->received;
    s->run.seconds += now.seconds - then->seconds;
    s->run.gather_wait += now.gather_wait - then->gather_wait;
    s->run.gather_span += now.gather_span - then->gather_span;
    if (s->nnets > 1) out[k++] = (double)b;
  }
  out[0] = bytes, out[k++] = seconds;
  s->steps++;
  return k;
}

void zero_stats_summary(const ZeroStats *s, double wall) {
  if (s->steps == 0) return;
  const DistTraffic *t = &s->run;
  double n = (double)s->steps;
  amd_log("  ZeRO communication per step (rank 0, %ld steps): %.0f bytes sent and received, %.4f s inside the "
          "collectives (%.1f%% of the run's wall time)", s->steps, (double)(t->sent + t->received) / n, t->seconds / n,
          wall > 0 ? 100 * t->seconds / wall : 0.0);
  if (t->gather_span > 0)
    amd_log("; unit gathers %.4f s in flight, %.4f s waited for", t->gather_span / n, t->gather_wait / n);
  amd_log("\n");
}
