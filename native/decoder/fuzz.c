/* Stand-alone stress driver for the reference decoder, for sanitizers and valgrind
 * (native/decoder/check.sh). It decodes, deterministically:
 *   - payloads of random bytes framed as blocks with valid checksums (every decode path and
 *     error path of hpxdec_decode_block, with exact-size heap buffers so ASan sees any over-read),
 *   - whole files of well-formed blocks with bytes flipped, cut short and spliced with junk
 *     (the block walker's resynchronisation),
 * and checks the invariants a caller relies on: on success the events fit the count, on error
 * the output length is unchanged and the error offset is inside the payload. Each block decoded
 * is decoded again within a random time range (a subset, the same max trace id), and its events
 * go through the readers' kernels (kernels.c) with exact-size tables holding random slots, so
 * ASan sees any read past what a caller hands them. */
#include "hpxdec.h"
#include "kernels.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint32_t rnd(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return (uint32_t)(rng_state >> 16);
}

static size_t put_varint(uint8_t *p, uint64_t v) {
  size_t n = 0;
  while (v >= 0x80) {
    p[n++] = (uint8_t)(v | 0x80);
    v >>= 7;
  }
  p[n++] = (uint8_t)v;
  return n;
}

static void put_le32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* Frame `payload` as a block at `out`; returns the block size. */
static size_t frame(uint8_t *out, const uint8_t *payload, uint32_t len, uint32_t count, uint64_t time) {
  memcpy(out, "HBLK", 4);
  put_le32(out + 4, len);
  put_le32(out + 8, count);
  put_le32(out + 12, (uint32_t)time);
  put_le32(out + 16, (uint32_t)(time >> 32));
  memcpy(out + 24, payload, len);
  put_le32(out + 20, hpxdec_crc32(hpxdec_crc32(0, out + 4, 16), out + 24, len));
  return 24 + (size_t)len;
}

/* A payload of plausible events; half of them also get raw bytes, wrong lengths and counts. */
static uint32_t make_payload(uint8_t *p, uint32_t cap, uint32_t *count) {
  uint32_t len = 0, n = 1 + rnd() % 40, full = 0; /* full: ALLOC/FREE written so far (REPEAT slots filled) */
  int noisy = rnd() % 2;
  for (uint32_t i = 0; i < n; i++) {
    if (len + 64 >= cap) {
      n = i;
      break;
    }
    switch (rnd() % (noisy ? 7 : 5)) {
      case 4: { /* REPEAT: a slot that may be empty or out of range when noisy */
        uint64_t slot = noisy || !full ? rnd() % 20 : rnd() % (full < 16 ? full : 16);
        len += (uint32_t)put_varint(p + len, (slot * 2 + (rnd() & 1)) * 4 + 2);
        len += (uint32_t)put_varint(p + len, rnd() % 1000);
        break;
      }
      case 0: case 1: case 2: {
        uint64_t id = rnd() % 5000;
        len += (uint32_t)put_varint(p + len, id * 4 + (rnd() & 1));
        full++;
        len += (uint32_t)put_varint(p + len, rnd() % 1000);
        len += (uint32_t)put_varint(p + len, rnd() % 3 ? rnd() % 70000 : ((uint64_t)rnd() << 32 | rnd()));
        break;
      }
      case 3: {
        uint32_t body = rnd() % 6;
        len += (uint32_t)put_varint(p + len, (uint64_t)(rnd() % 5) * 4 + 3);
        len += (uint32_t)put_varint(p + len, rnd() % 100);
        len += (uint32_t)put_varint(p + len, !noisy || rnd() % 8 ? body : body + 3);
        /* RSS/LOST bodies hold a varint: keep the clean ones decodable. */
        for (uint32_t k = 0; k < body; k++) p[len++] = (uint8_t)(noisy ? rnd() : (k + 1 < body ? 0x80 | rnd() : rnd() & 0x7f));
        break;
      }
      default: {
        uint32_t raw = 1 + rnd() % 12;
        for (uint32_t k = 0; k < raw; k++) p[len++] = (uint8_t)(rnd() % 2 ? 0x80 | rnd() : rnd());
      }
    }
  }
  *count = !noisy || rnd() % 3 ? n : n + rnd() % 3 - 1;
  return len;
}

static int failures;
#define CHECK(cond, ...)                  \
  do {                                    \
    if (!(cond)) {                        \
      fprintf(stderr, "fuzz: " __VA_ARGS__); \
      fputc('\n', stderr);                \
      failures++;                         \
    }                                     \
  } while (0)

static void count_problem(void *ctx, int kind, size_t offset, uint32_t index, const char *message) {
  (void)kind, (void)offset, (void)index, (void)message;
  ++*(int *)ctx;
}

/* The events at [7, ev->length) of a block just decoded: a ranged decode and the kernels. */
static void exercise_range_and_kernels(int r, const uint8_t *payload, uint32_t len, uint32_t count, hpxdec_events *ev) {
  size_t n = ev->length - 7;
  /* Ranged: a subset of the same block, and the same largest trace id. */
  hpxdec_events sub = *ev;
  sub.length = 0;
  int saw_end = 0, saw_end_all = 0;
  uint32_t max_trace = 0, max_all = 0;
  size_t err_at = 0;
  const char *err = NULL;
  double from = 1e6 + (double)(rnd() % 600), to = from + (double)(rnd() % 600);
  uint8_t *op_copy = malloc(n ? n : 1);
  double *time_copy = malloc((n ? n : 1) * sizeof(double));
  uint32_t *trace_copy = malloc((n ? n : 1) * sizeof(uint32_t));
  double *size_copy = malloc((n ? n : 1) * sizeof(double));
  memcpy(op_copy, ev->op + 7, n);
  memcpy(time_copy, ev->time_us + 7, n * sizeof(double));
  memcpy(trace_copy, ev->trace + 7, n * sizeof(uint32_t));
  memcpy(size_copy, ev->size + 7, n * sizeof(double));
  int rc_all = hpxdec_decode_block_range(payload, len, count, 1e6, -1.0 / 0.0, 1.0 / 0.0, &sub, &saw_end_all, &max_all, &err_at, &err);
  sub.length = 0;
  int rc = hpxdec_decode_block_range(payload, len, count, 1e6, from, to, &sub, &saw_end, &max_trace, &err_at, &err);
  CHECK(rc_all == 0 && rc == 0 && sub.length <= n && max_trace == max_all, "round %d: ranged decode differs", r);
  /* Kernels over the copies (exact-size arrays): a direct table of random slots, some past the
   * columns, some ids past the table. */
  size_t direct_len = 1 + rnd() % 8, slots = 1 + rnd() % 4;
  int32_t *direct = malloc(direct_len * sizeof(int32_t));
  for (size_t k = 0; k < direct_len; k++) direct[k] = (int32_t)(rnd() % (slots + 2));
  double *cols[5];
  for (int c = 0; c < 5; c++) cols[c] = calloc(slots, sizeof(double));
  double bounds[2] = {128, 8192}, w[3] = {1e4, 10, 1}, cv[3] = {1e8, 90, 0}, pw[64], pcv[64];
  for (int k = 0; k < 64; k++) pw[k] = k ? 64.0 / k : 0, pcv[k] = k ? pw[k] * pw[k] : 0;
  int8_t bucket[33];
  for (int j = 0; j < 33; j++) bucket[j] = j < 8 ? 0 : j < 14 ? (j == 8 ? -1 : 1) : (j == 14 ? -1 : 2);
  hpx_run_events run = {op_copy, time_copy, trace_copy, size_copy};
  for (int poisson = 0; poisson < 2; poisson++) {
    hpx_live live = {0};
    live.direct = direct;
    live.direct_len = direct_len;
    live.sampled = cols[0], live.bytes = cols[1], live.bytes_var = cols[2], live.count = cols[3], live.count_var = cols[4];
    live.slots_len = slots;
    hpx_weights wt = {0};
    wt.poisson = poisson;
    wt.bounds = bounds, wt.n_bounds = 2, wt.bucket_range = bucket;
    wt.w = poisson ? pw : w, wt.cv = poisson ? pcv : cv, wt.w_len = poisson ? 64 : 3;
    size_t i = 0;
    while (i < n) {
      int why = 0;
      size_t stop = hpx_apply_run(&run, i, n, 1e6 + (double)(rnd() % 1000), &live, &wt, &why);
      CHECK(stop >= i && stop <= n, "round %d: applyRun stopped at %zu of [%zu, %zu)", r, stop, i, n);
      i = stop + 1;
    }
  }
  int32_t *counts = calloc(direct_len, sizeof(int32_t));
  hpx_tally tally = {0};
  size_t i = 0;
  while (i < n) {
    int why = 0;
    size_t stop = hpx_tally_run(&run, i, n, 1, counts, direct_len, &tally, &why);
    CHECK(stop >= i && stop <= n && (stop == n) == (why == HPX_RUN_DONE), "round %d: tally stopped at %zu", r, stop);
    i = stop + 1;
  }
  free(counts);
  /* The split over an exact-size table of 16 entries (so that it fills and hands events back):
   * every run stays inside it and keeps its count of entries in use true. */
  {
    double *tab = calloc(32, sizeof(double));
    uint8_t *halves = malloc(n ? n : 1);
    double *totals = malloc((n ? n : 1) * sizeof(double));
    double q[2] = {0.05, 0.5};
    hpx_split sp = {0, 0, 0, 15, (uint32_t)rnd(), (int)(rnd() % 2)};
    size_t j = 0;
    while (j < n) {
      int why = 0;
      size_t stop = hpx_split_run(&run, j, n, tab, &sp, bounds, q, 2, halves, totals, &why);
      int used = 0;
      for (int e = 0; e < 16; e++) used += tab[2 * e] != 0;
      CHECK(stop >= j && stop <= n && (stop == n) == (why == HPX_RUN_DONE) && used == (int)sp.used && 4 * used <= 3 * 16,
            "round %d: split stopped at %zu with %d entries used (%g counted)", r, stop, used, sp.used);
      j = stop + 1;
    }
    free(tab);
    free(halves);
    free(totals);
  }
  for (int c = 0; c < 5; c++) free(cols[c]);
  free(direct);
  free(op_copy);
  free(time_copy);
  free(trace_copy);
  free(size_copy);
}

int main(int argc, char **argv) {
  int rounds = argc > 1 ? atoi(argv[1]) : 20000;
  uint8_t scratch[4096];
  size_t ok = 0, bad = 0;
  hpxdec_events ev = {0};
  ev.capacity = 4096;
  ev.op = malloc(ev.capacity);
  ev.time_us = malloc(ev.capacity * sizeof(double));
  ev.trace = malloc(ev.capacity * sizeof(uint32_t));
  ev.size = malloc(ev.capacity * sizeof(double));
  for (int r = 0; r < rounds; r++) {
    uint32_t count;
    uint32_t len = make_payload(scratch, sizeof scratch, &count);
    uint8_t *exact = malloc(len ? len : 1); /* exact size: any over-read is an ASan error */
    memcpy(exact, scratch, len);
    ev.length = 7;
    int saw_end = 0;
    size_t err_at = 0;
    const char *err = NULL;
    if (count <= len / HPXDEC_MIN_EVENT_BYTES + 1 && count < ev.capacity - 8) {
      int rc = hpxdec_decode_block(exact, len, count, 1e6, &ev, &saw_end, &err_at, &err);
      if (rc == 0) {
        ok++;
        CHECK(ev.length >= 7 && ev.length <= 7 + count, "round %d: %zu events from a count of %u", r, ev.length - 7, count);
        exercise_range_and_kernels(r, exact, len, count, &ev);
      } else {
        bad++;
        CHECK(ev.length == 7, "round %d: output changed on error", r);
        CHECK(err_at <= len + 2 && err != NULL, "round %d: error offset %zu outside a payload of %u", r, err_at, len);
      }
    }
    free(exact);
  }
  /* Whole files: good blocks, then damage; the walker must never read out of bounds. */
  for (int r = 0; r < rounds / 20; r++) {
    size_t cap = 32 + 40 * (24 + sizeof scratch);
    uint8_t *file = malloc(cap);
    memset(file, 0, 32);
    memcpy(file, "HPXD", 4);
    size_t size = 32;
    int blocks = 1 + rnd() % 30;
    for (int b = 0; b < blocks; b++) {
      uint32_t count;
      uint32_t len = make_payload(scratch, 512, &count);
      size += frame(file + size, scratch, len, count, (uint64_t)b * 1000);
    }
    int flips = rnd() % 4;
    for (int k = 0; k < flips; k++) file[32 + rnd() % (size - 32)] ^= (uint8_t)(1 + rnd() % 255);
    if (rnd() % 3 == 0) size = 32 + rnd() % (size - 32);
    uint8_t *exact = malloc(size);
    memcpy(exact, file, size);
    free(file);
    int problems = 0;
    hpxdec_walker w;
    hpxdec_walker_init(&w, exact, size, 32, count_problem, &problems);
    hpxdec_block b;
    size_t last_end = 32;
    while (hpxdec_next_block(&w, &b)) {
      CHECK(b.offset >= last_end && b.offset + 24 + b.length <= size, "file %d: block outside the file", r);
      last_end = b.offset + 24 + b.length;
    }
    free(exact);
  }
  free(ev.op);
  free(ev.time_us);
  free(ev.trace);
  free(ev.size);
  printf("fuzz: %d rounds: %zu blocks decoded, %zu rejected, %d failures\n", rounds, ok, bad, failures);
  return failures ? 1 : 0;
}
