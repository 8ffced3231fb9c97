/* The readers' per-event loops in C: see kernels.h. Each mirrors its TypeScript loop line by line; keep them in step. */
#include "kernels.h"

#define OP_FREE 1
#define OP_LOST 4
/* Byte-Poisson: sizes below this have their weights in the table (POISSON_TABLE_SIZES in live.ts). */
#define UINT32_LIMIT 4294967295.0

/* The range of a table sampler a size (not negative; NaN allowed) falls in: its power-of-two
 * bucket's (the integer part's, as Math.clz32 takes it), unless a bound splits that bucket or
 * the size is past 2^32-1, then the number of bounds at or below it (comparisons, as in TS). */
static inline size_t table_range(const hpx_weights *wt, double s) {
  int r = -1;
  if (s <= UINT32_LIMIT) {
    uint32_t u = (uint32_t)s; /* sizes are integers: exact */
    int j = u == 0 ? 0 : 32 - __builtin_clz(u);
    r = wt->bucket_range[j];
  }
  if (r >= 0) return (size_t)r;
  size_t k = 0;
  for (size_t b = 0; b < wt->n_bounds; b++) k += s >= wt->bounds[b] ? 1 : 0;
  return k;
}

size_t hpx_apply_run(const hpx_run_events *ev, size_t from, size_t to, double until_us, hpx_live *heap,
                     const hpx_weights *wt, int *why) {
  const uint8_t *op = ev->op;
  const double *time_us = ev->time_us;
  const uint32_t *trace = ev->trace;
  const double *size = ev->size;
  const int32_t *direct = heap->direct;
  const size_t direct_len = heap->direct_len;
  double *sampled = heap->sampled, *bytes = heap->bytes, *bytes_var = heap->bytes_var;
  double *count = heap->count, *count_var = heap->count_var;
  double tb = heap->total_bytes, tbv = heap->total_bytes_var, tc = heap->total_count, tcv = heap->total_count_var;
  double ts = heap->total_sampled;
  double last = heap->last_us;
  double unmatched = heap->unmatched_frees;
  const int poisson = wt->poisson;
  *why = HPX_RUN_DONE;
  size_t i = from;
  for (; i < to; i++) {
    const unsigned o = op[i];
    if (o > OP_FREE) break;
    const double t = time_us[i];
    if (t > until_us) break;
    const uint32_t id = trace[i];
    const int32_t known = id < direct_len ? direct[id] : 0;
    if (known <= 0 || (size_t)known > heap->slots_len) {
      *why = HPX_RUN_NEEDS_JS; /* a trace without a slot, or a far id: the caller allocates it */
      break;
    }
    const size_t slot = (size_t)known - 1;
    const double s = size[i];
    double w, cv;
    if (!(s >= 0) && s == s) {
      *why = HPX_RUN_NEEDS_JS; /* a negative size (hostile NDJSON): JS's ToUint32 decides its range */
      break;
    }
    if (!poisson) {
      size_t r = table_range(wt, s);
      w = wt->w[r];
      cv = wt->cv[r];
    } else if (s < (double)wt->w_len && (double)(size_t)s == s) {
      w = wt->w[(size_t)s];
      cv = wt->cv[(size_t)s];
    } else {
      *why = HPX_RUN_NEEDS_JS; /* weight from the probability formula, in JS */
      break;
    }
    if (t > last) last = t;
    if (w == 0) continue; /* cannot have been sampled: carries no estimate */
    const double had = sampled[slot];
    if (!(had > 0) && o == OP_FREE) {
      unmatched++; /* a free of a block never allocated: never a negative count */
      continue;
    }
    const double b = s * w;
    const double bv = s * s * cv;
    const double sg = 1 - 2 * (double)o; /* +1 for an ALLOC, -1 for a FREE */
    const double left = had + sg;
    sampled[slot] = left;
    if (left == 0 && sg < 0) {
      /* Back to nothing live: reset exactly, so rounding never accumulates across cycles. */
      bytes[slot] = 0;
      bytes_var[slot] = 0;
      count[slot] = 0;
      count_var[slot] = 0;
    } else {
      bytes[slot] = bytes[slot] + sg * b;
      bytes_var[slot] = bytes_var[slot] + sg * bv;
      count[slot] = count[slot] + sg * w;
      count_var[slot] = count_var[slot] + sg * cv;
    }
    ts += sg;
    if (ts == 0 && sg < 0) {
      tb = 0;
      tbv = 0;
      tc = 0;
      tcv = 0;
    } else {
      tb += sg * b;
      tbv += sg * bv;
      tc += sg * w;
      tcv += sg * cv;
    }
  }
  heap->total_bytes = tb;
  heap->total_bytes_var = tbv;
  heap->total_count = tc;
  heap->total_count_var = tcv;
  heap->total_sampled = ts;
  heap->last_us = last;
  heap->unmatched_frees = unmatched;
  return i;
}

size_t hpx_tally_run(const hpx_run_events *ev, size_t from, size_t to, int check_frees, int32_t *live, size_t live_len,
                     hpx_tally *tally, int *why) {
  const uint8_t *op = ev->op;
  const uint32_t *trace = ev->trace;
  double unmatched = tally->unmatched, lost = tally->lost;
  *why = HPX_RUN_DONE;
  size_t i = from;
  for (; i < to; i++) {
    const unsigned o = op[i];
    if (o <= OP_FREE) {
      if (!check_frees) continue;
      const uint32_t id = trace[i];
      if (id >= live_len) {
        *why = HPX_RUN_NEEDS_JS;
        break;
      }
      /* +1 for an ALLOC, -1 for a FREE, without a branch on which (they interleave unpredictably). */
      const int64_t left = (int64_t)live[id] + 1 - 2 * (int64_t)o;
      if (left >= 0) {
        live[id] = (int32_t)(uint32_t)left; /* wraps as a store into an Int32Array does */
        continue;
      }
      if (unmatched == 0) {
        tally->first_unmatched_us = ev->time_us[i];
        tally->first_unmatched_trace = id;
      }
      unmatched++;
      continue;
    }
    if (o != OP_LOST) continue;
    if (lost == 0) tally->first_lost_us = ev->time_us[i];
    lost += ev->size[i];
  }
  tally->unmatched = unmatched;
  tally->lost = lost;
  return i;
}
