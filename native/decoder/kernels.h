/* The readers' per-event loops in C, run by the addon when it is built (the TypeScript loops
 * stay the reference and the fallback, and the tests compare the two):
 *   hpx_apply_run  LiveHeap.applyRun (lib/model/live.ts)
 *   hpx_tally_run  EventTally.add (lib/format/tally.ts)
 *   hpx_split_run  HalfSplit.event (lib/model/split.ts), for a table sampler
 *
 * hpx_apply_run: the live heap's per-event update over a run of decoded events, with the same arithmetic in the same order, so that every sum comes out
 * bit-identical to the TypeScript loop's (built with -ffp-contract=off: a fused multiply-add
 * would round differently). Readers call it through the addon when it is built; the TS loop
 * stays the reference and the fallback, and the tests compare the two.
 *
 * Events it cannot apply alone stop it, and the caller applies them: a trace that has no slot
 * yet (slots are allocated and grown by the caller) and, with byte-Poisson sampling, a size
 * beyond the weight table (its weight comes from Math.exp, which C's exp need not match). */
#ifndef HPX_KERNELS_H
#define HPX_KERNELS_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
  const uint8_t *op;
  const double *time_us;
  const uint32_t *trace;
  const double *size;
} hpx_run_events;

typedef struct {
  /* trace id -> slot + 1 (0: no slot), for ids below direct_len. */
  const int32_t *direct;
  size_t direct_len;
  /* Per-slot columns, slots_len long (a slot in direct past it stops the run, for the caller). */
  double *sampled, *bytes, *bytes_var, *count, *count_var;
  size_t slots_len;
  /* Totals and the rest of the heap's scalar state, read and written back. */
  double total_bytes, total_bytes_var, total_count, total_count_var, total_sampled;
  double last_us;
  double unmatched_frees;
} hpx_live;

typedef struct {
  int poisson;
  /* Table sampler: range bounds, and the range of each power-of-two bucket (-1 where a bound
   * splits it). Byte-Poisson: w and cv per size below w_len. */
  const double *bounds;
  size_t n_bounds;
  const int8_t *bucket_range; /* 33 entries (table sampler) */
  const double *w, *cv;
  size_t w_len;
} hpx_weights;

/* Why hpx_apply_run stopped. */
enum {
  HPX_RUN_DONE = 0,      /* at `to`, at an event that is not an ALLOC or FREE, or later than until_us */
  HPX_RUN_NEEDS_JS = 1,  /* the event at the returned index needs the caller (see above) */
};

/* Apply events [from, to) as LiveHeap.applyRun does; returns the index it stopped at and sets *why. */
size_t hpx_apply_run(const hpx_run_events *ev, size_t from, size_t to, double until_us, hpx_live *heap,
                     const hpx_weights *wt, int *why);

/* EventTally's counts (lib/format/tally.ts), read and written back. */
typedef struct {
  double unmatched, first_unmatched_us, first_unmatched_trace, lost, first_lost_us;
} hpx_tally;

/* Count events [from, to) as EventTally.add does: frees of a trace with no live allocation (per
 * trace live counts in `live`, indexed by id, when check_frees), and LOST events. Returns the
 * index it stopped at: `to`, or (with *why = HPX_RUN_NEEDS_JS) an ALLOC or FREE whose id is
 * past live_len, which the caller counts (its table grows). */
size_t hpx_tally_run(const hpx_run_events *ev, size_t from, size_t to, int check_frees, int32_t *live, size_t live_len,
                     hpx_tally *tally, int *why);

/* HalfSplit's scalar state (lib/model/split.ts), read and written back. */
typedef struct {
  double ordinal; /* events drawn so far (the next one's uniform draw) */
  double total_a; /* half A's estimate of the live bytes */
  double used;    /* table entries in use */
  uint32_t mask;  /* entries - 1 (a power of two minus one) */
  uint32_t seed;
  int keyed_others; /* the caller's map holds pairs of the keyed range (their counts outgrew the table) */
} hpx_split;

/* Split events [from, to) as HalfSplit.event does, with the same arithmetic in the same order:
 * halves[i] gets the halves that hold event i (1 A, 2 B, 3 both; 0 for an event that is not an
 * ALLOC or FREE) and totals[i] half A's total after it. tab is HalfSplit's table (2 doubles per
 * entry: key, packed counts), changed in place; q[r] is the half probability below bounds[r]
 * (1 past the last). Returns the index it stopped at: `to`, or (*why = HPX_RUN_NEEDS_JS) an
 * event the caller splits itself: a pair outside the keyed range (a size past 2^21 or
 * negative, a trace id past 2^31), a count about to outgrow its packed field, an insertion
 * that needs the table grown, or a missing pair while keyed_others is set. */
size_t hpx_split_run(const hpx_run_events *ev, size_t from, size_t to, double *tab, hpx_split *sp, const double *bounds,
                     const double *q, size_t n_bounds, uint8_t *halves, double *totals, int *why);

#endif
