/* Stand-alone stress driver for the reference decoder, for sanitizers and valgrind
 * (native/decoder/check.sh). It decodes, deterministically:
 *   - payloads of random bytes framed as blocks with valid checksums (every decode path and
 *     error path of hpxdec_decode_block, with exact-size heap buffers so ASan sees any over-read),
 *   - whole files of well-formed blocks with bytes flipped, cut short and spliced with junk
 *     (the block walker's resynchronisation),
 * and checks the invariants a caller relies on: on success the events fit the count, on error
 * the output length is unchanged and the error offset is inside the payload. */
#include "hpxdec.h"

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
