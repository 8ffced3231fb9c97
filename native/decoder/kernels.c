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
    /* What the event moves, the site's and the total's alike. */
    double db = sg * b, dbv = sg * bv, dc = sg * w, dcv = sg * cv;
    if (left == 0 && sg < 0) {
      /* Back to nothing live: reset exactly, so rounding never accumulates across cycles; the
       * total loses what the site held (as in live.ts). */
      db = -bytes[slot];
      dbv = -bytes_var[slot];
      dc = -count[slot];
      dcv = -count_var[slot];
      bytes[slot] = 0;
      bytes_var[slot] = 0;
      count[slot] = 0;
      count_var[slot] = 0;
    } else {
      bytes[slot] = bytes[slot] + db;
      bytes_var[slot] = bytes_var[slot] + dbv;
      count[slot] = count[slot] + dc;
      count_var[slot] = count_var[slot] + dcv;
    }
    ts += sg;
    if (ts == 0 && sg < 0) {
      tb = 0;
      tbv = 0;
      tc = 0;
      tcv = 0;
    } else {
      tb += db;
      tbv += dbv;
      tc += dc;
      tcv += dcv;
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

/* ---- HalfSplit.event (lib/model/split.ts): keep in step with it ---- */

#define SPLIT_SIZE_KEYED 2097152.0   /* 2^21 */
#define SPLIT_TRACE_KEYED 2147483648u /* 2^31 */
#define SPLIT_K 131072.0             /* 2^17: one packed count's limit */
#define SPLIT_MASK 131071u           /* K - 1 */
#define SPLIT_A 1
#define SPLIT_B 2
#define SPLIT_PREFETCH 16

static inline uint32_t split_mix32(uint32_t x) {
  x = (x ^ (x >> 16)) * 0x7feb352du;
  x = (x ^ (x >> 15)) * 0x846ca68bu;
  return x ^ (x >> 16);
}

/* uniformOf: mix32((n >>> 0) ^ mix32(((n / 2^32) >>> 0) ^ seed)) / 2^32 (n a whole number). */
static inline double split_uniform(double n, uint32_t seed) {
  const uint64_t k = (uint64_t)n;
  return (double)split_mix32((uint32_t)k ^ split_mix32((uint32_t)(k >> 32) ^ seed)) / 4294967296.0;
}

/* homeOf: the top 32 - shift bits of one multiply of the key's low 32 bits mixed with its high
 * ones (ToUint32 of key and of key / 2^32). */
static inline uint32_t split_home(double key, unsigned shift) {
  const uint32_t lo = (uint32_t)(uint64_t)key, hi = (uint32_t)(uint64_t)(key / 4294967296.0);
  return ((lo ^ (hi * 0x85ebca6bu)) * 0x9e3779b1u) >> shift;
}

static inline double split_q(double s, const double *bounds, const double *q, size_t n_bounds) {
  for (size_t r = 0; r < n_bounds; r++)
    if (s < bounds[r]) return q[r];
  return 1.0;
}

/* A fresh draw: 0 (A only), 1 (B only) or 2 (both), in proportions q(1-q) : q(1-q) : q^2. */
static inline int split_fresh(double u, double q) {
  const double one = (1 - q) / (2 - q);
  return u < one ? 0 : u < 2 * one ? 1 : 2;
}

static inline long split_find(const double *tab, uint32_t mask, unsigned shift, double key) {
  uint32_t i = split_home(key, shift);
  for (;;) {
    const double k = tab[2 * (size_t)i];
    if (k == key) return (long)i;
    if (k == 0) return -1;
    i = (i + 1) & mask;
  }
}

/* remove: empty entry i, moving later entries of its probe run back. */
static void split_remove(double *tab, uint32_t mask, unsigned shift, uint32_t i) {
  uint32_t j = i;
  for (;;) {
    j = (j + 1) & mask;
    const double key = tab[2 * (size_t)j];
    if (key == 0) break;
    const uint32_t home = split_home(key, shift);
    if (i <= j ? (i < home && home <= j) : (i < home || home <= j)) continue;
    tab[2 * (size_t)i] = key;
    tab[2 * (size_t)i + 1] = tab[2 * (size_t)j + 1];
    i = j;
  }
  tab[2 * (size_t)i] = 0;
}

size_t hpx_split_run(const hpx_run_events *ev, size_t from, size_t to, double *tab, hpx_split *sp, const double *bounds,
                     const double *q, size_t n_bounds, uint8_t *halves, double *totals, int *why) {
  static const double step[3] = {1.0, SPLIT_K, SPLIT_K * SPLIT_K};
  const uint8_t *op = ev->op;
  const uint32_t *trace = ev->trace;
  const double *size = ev->size;
  const uint32_t mask = sp->mask;
  const unsigned shift = 32u - (unsigned)__builtin_ctzll((uint64_t)mask + 1);
  double ordinal = sp->ordinal, total_a = sp->total_a, used = sp->used;
  *why = HPX_RUN_DONE;
  size_t i = from;
  for (; i < to; i++) {
    if (i + SPLIT_PREFETCH < to) {
      /* The table is larger than the caches on big profiles: fetch a later event's entry now. */
      const size_t k = i + SPLIT_PREFETCH;
      const double s = size[k];
      if (op[k] <= OP_FREE && s >= 0 && s < SPLIT_SIZE_KEYED && trace[k] < SPLIT_TRACE_KEYED)
        __builtin_prefetch(&tab[2 * (size_t)split_home((double)trace[k] * SPLIT_SIZE_KEYED + s + 1, shift)], 1);
    }
    const unsigned o = op[i];
    if (o > OP_FREE) {
      halves[i] = 0;
      totals[i] = total_a;
      continue;
    }
    const double s = size[i];
    const double qs = split_q(s, bounds, q, n_bounds);
    if (qs >= 1 || qs <= 0) {
      if (qs >= 1) total_a += o == OP_FREE ? -s : s;
      halves[i] = SPLIT_A | SPLIT_B;
      totals[i] = total_a;
      continue;
    }
    const uint32_t t = trace[i];
    if (!(s >= 0 && s < SPLIT_SIZE_KEYED) || t >= SPLIT_TRACE_KEYED) {
      *why = HPX_RUN_NEEDS_JS; /* the caller's map keeps such pairs */
      break;
    }
    const double key = (double)t * SPLIT_SIZE_KEYED + s + 1;
    const double u = split_uniform(ordinal, sp->seed);
    long e = split_find(tab, mask, shift, key);
    if (e < 0 && sp->keyed_others) {
      *why = HPX_RUN_NEEDS_JS; /* the pair may be in the caller's map */
      break;
    }
    int which;
    if (o == OP_FREE) {
      if (e < 0) {
        which = split_fresh(u, qs);
      } else {
        /* The packed counts are a whole number below 2^51: unpacked with integer shifts, which
         * are the floors of the TS divisions by 2^17 and 2^34 exactly (and cheaper than the
         * inline floor that baseline x86-64 gets). */
        const double c = tab[2 * (size_t)e + 1];
        const uint64_t ci = (uint64_t)c;
        const double a = (double)(ci & SPLIT_MASK), b = (double)((ci >> 17) & SPLIT_MASK), both = (double)(ci >> 34);
        const double n = a + b + both;
        const double r = (double)(uint64_t)(u * n); /* floor: 0 <= u * n < n */
        which = r < a ? 0 : r < a + b ? 1 : 2;
        if (n == 1) {
          split_remove(tab, mask, shift, (uint32_t)e);
          used--;
        } else {
          tab[2 * (size_t)e + 1] = c - step[which];
        }
      }
    } else {
      which = split_fresh(u, qs);
      if (e < 0) {
        if (4 * (used + 1) > 3 * ((double)mask + 1)) {
          *why = HPX_RUN_NEEDS_JS; /* the table must grow first */
          break;
        }
        uint32_t j = split_home(key, shift);
        while (tab[2 * (size_t)j] != 0) j = (j + 1) & mask;
        tab[2 * (size_t)j] = key;
        tab[2 * (size_t)j + 1] = 0;
        used++;
        e = (long)j;
      }
      const double c = tab[2 * (size_t)e + 1];
      if ((((uint64_t)c >> (17 * which)) & SPLIT_MASK) == SPLIT_MASK) {
        *why = HPX_RUN_NEEDS_JS; /* this count moves to the caller's map */
        break;
      }
      tab[2 * (size_t)e + 1] = c + step[which];
    }
    ordinal += 1;
    if (which == 1) {
      halves[i] = SPLIT_B;
    } else {
      total_a += (o == OP_FREE ? -s : s) / qs;
      halves[i] = which == 0 ? SPLIT_A : SPLIT_A | SPLIT_B;
    }
    totals[i] = total_a;
  }
  sp->ordinal = ordinal;
  sp->total_a = total_a;
  sp->used = used;
  return i;
}
