/* Reference decoder of hpx v2 .hpd files: see hpxdec.h for what it promises. */
#include "hpxdec.h"

#include <math.h>
#include <string.h>

/* ---- CRC-32, slicing by 8 (tables built once, on first use, by the loading thread) ---- */

static uint32_t crc_table[8][256];
static int crc_ready;

static void crc_init(void) {
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = i;
    for (int k = 0; k < 8; k++) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    crc_table[0][i] = c;
  }
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = crc_table[0][i];
    for (int t = 1; t < 8; t++) {
      c = crc_table[0][c & 0xff] ^ (c >> 8);
      crc_table[t][i] = c;
    }
  }
  crc_ready = 1;
}

static inline uint32_t load_le32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t load_le64(const uint8_t *p) {
  return (uint64_t)load_le32(p) | (uint64_t)load_le32(p + 4) << 32;
}

uint32_t hpxdec_crc32(uint32_t crc, const uint8_t *p, size_t n) {
  if (!crc_ready) crc_init();
  uint32_t c = ~crc;
  while (n >= 8) {
    uint32_t lo = load_le32(p) ^ c;
    uint32_t hi = load_le32(p + 4);
    c = crc_table[7][lo & 0xff] ^ crc_table[6][(lo >> 8) & 0xff] ^ crc_table[5][(lo >> 16) & 0xff] ^
        crc_table[4][lo >> 24] ^ crc_table[3][hi & 0xff] ^ crc_table[2][(hi >> 8) & 0xff] ^
        crc_table[1][(hi >> 16) & 0xff] ^ crc_table[0][hi >> 24];
    p += 8;
    n -= 8;
  }
  while (n--) c = crc_table[0][(c ^ *p++) & 0xff] ^ (c >> 8);
  return ~c;
}

/* ---- events ---- */

#define KIND_ALLOC 0
#define KIND_FREE 1
#define KIND_REPEAT 2
#define KIND_EXT 3
_Static_assert(KIND_ALLOC == HPXDEC_OP_ALLOC && KIND_FREE == HPXDEC_OP_FREE, "the fast path writes kinds as op codes");
#define REPEAT_SLOTS 16
#define EXT_RSS 0
#define EXT_END 1
#define EXT_LOST 2
#define MAX_SAFE 9007199254740991.0 /* 2^53 - 1, Number.MAX_SAFE_INTEGER */

/* One varint at *pos (the caller has checked *pos < end). Up to 7 bytes (49 bits, exact in a
 * double) it is decoded in integers into *u and 0 is returned; longer ones continue in doubles,
 * summed in the same order as the TS loop so that even values past 2^53 come out identical,
 * into *d, returning 1. -1: more than 10 bytes or past the end (*pos at the failing byte). */
static inline int read_varint(const uint8_t *p, size_t end, size_t *pos, uint64_t *u, double *d) {
  size_t q = *pos;
  unsigned b = p[q++];
  if (b < 0x80) {
    *u = b;
    *pos = q;
    return 0;
  }
  uint64_t v = b & 0x7f;
  for (int k = 1; k < 7; k++) {
    if (q >= end) {
      *pos = q;
      return -1;
    }
    b = p[q++];
    v |= (uint64_t)(b & 0x7f) << (7 * k);
    if (b < 0x80) {
      *u = v;
      *pos = q;
      return 0;
    }
  }
  double dv = (double)v;
  double scale = 562949953421312.0; /* 128^7 */
  for (int k = 7;; k++) {
    if (k >= 10 || q >= end) {
      *pos = q;
      return -1;
    }
    b = p[q++];
    dv += (double)(b & 0x7f) * scale;
    if (b < 0x80) break;
    scale *= 128.0;
  }
  *d = dv;
  *pos = q;
  return 1;
}

static inline uint64_t le64_to_host(uint64_t x) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  return __builtin_bswap64(x);
#else
  return x;
#endif
}

/* The varint of `len` (1 to 3) bytes starting at byte `at` of the little-endian word x. */
static inline uint32_t small_varint_at(uint64_t x, unsigned at, unsigned len) {
  uint32_t y = (uint32_t)(x >> (8 * at));
  uint32_t all = (y & 0x7fu) | ((y >> 1) & 0x3f80u) | ((y >> 2) & 0x1fc000u);
  return all & ((1u << (7 * len)) - 1);
}

#define FAIL(msg, at) \
  do {                \
    *err_msg = (msg); \
    *err_at = (at);   \
    return -1;        \
  } while (0)

int hpxdec_decode_block(const uint8_t *payload, size_t len, uint32_t count, double block_time_us,
                        hpxdec_events *out, int *saw_end, size_t *err_at, const char **err_msg) {
  uint32_t max_trace = 0;
  return hpxdec_decode_block_range(payload, len, count, block_time_us, -INFINITY, INFINITY, out, saw_end, &max_trace,
                                   err_at, err_msg);
}

int hpxdec_decode_block_range(const uint8_t *payload, size_t len, uint32_t count, double block_time_us,
                              double from_us, double to_us, hpxdec_events *out, int *saw_end,
                              uint32_t *max_trace, size_t *err_at, const char **err_msg) {
  const int ranged = from_us > -INFINITY || to_us < INFINITY;
  uint32_t max_id = 0;
  const size_t end = len;
  size_t pos = 0;
  size_t n = out->length;
  double t = block_time_us;
  if (block_time_us > MAX_SAFE) FAIL("block time past the 2^53-1 us limit", 0);
  uint8_t *op = out->op;
  double *time_us = out->time_us;
  uint32_t *trace = out->trace;
  double *size = out->size;
  int end_seen = 0;
  /* The block's REPEAT cache (man/hpx.5, EVENTS): every ALLOC and FREE takes the next slot. */
  uint32_t rep_trace[REPEAT_SLOTS];
  double rep_size[REPEAT_SLOTS];
  uint32_t full = 0; /* ALLOCs and FREEs written in full so far: slot k holds the last with full % 16 == k */
  for (uint32_t i = 0; i < count; i++) {
    if (pos >= end) FAIL("block holds fewer events than it says", pos);
    /* Fast path for nearly every event: an ALLOC, FREE or valid REPEAT whose varints take at
     * most three bytes each, read from one 8-byte load. Where each varint ends comes from the
     * load's stop bits (bytes below 0x80), so the next event's position does not wait for a
     * chain of byte-by-byte branches. Anything else is decoded from its first byte below. */
    if (end - pos >= 8) {
      uint64_t x;
      memcpy(&x, payload + pos, 8);
      x = le64_to_host(x);
      uint64_t stops = ~x & 0x8080808080808080ull;
      uint64_t s2 = stops & (stops - 1);
      uint64_t s3 = s2 & (s2 - 1);
      if (s2) {
        unsigned e1 = (unsigned)__builtin_ctzll(stops) >> 3; /* last byte of the header */
        unsigned e2 = (unsigned)__builtin_ctzll(s2) >> 3;    /* last byte of dt */
        if (e1 < 3 && e2 - e1 <= 3) {
          uint32_t h = small_varint_at(x, 0, e1 + 1);
          uint32_t dt = small_varint_at(x, e1 + 1, e2 - e1);
          uint32_t kind = h & 3;
          uint32_t id = h >> 2;
          if (kind == KIND_REPEAT) {
            if (id < 2 * REPEAT_SLOTS && (id >> 1) < full) {
              pos += e2 + 1;
              t += (double)dt;
              if (ranged && (t < from_us || t >= to_us)) continue;
              unsigned slot = id >> 1;
              op[n] = (uint8_t)(id & 1); /* HPXDEC_OP_ALLOC or HPXDEC_OP_FREE */
              time_us[n] = t;
              trace[n] = rep_trace[slot];
              size[n] = rep_size[slot];
              n++;
              continue;
            }
          } else if (kind <= KIND_FREE && s3) {
            unsigned e3 = (unsigned)__builtin_ctzll(s3) >> 3; /* last byte of the size */
            if (e3 - e2 <= 3) {
              uint32_t v = small_varint_at(x, e2 + 1, e3 - e2);
              pos += e3 + 1;
              t += (double)dt;
              if (id > max_id) max_id = id;
              rep_trace[full & (REPEAT_SLOTS - 1)] = id;
              rep_size[full & (REPEAT_SLOTS - 1)] = (double)v;
              full++;
              if (ranged && (t < from_us || t >= to_us)) continue;
              op[n] = (uint8_t)kind; /* KIND_ALLOC/KIND_FREE are HPXDEC_OP_ALLOC/HPXDEC_OP_FREE */
              time_us[n] = t;
              trace[n] = id;
              size[n] = (double)v;
              n++;
              continue;
            }
          }
        }
      }
    }
    uint64_t hu = 0, dtu = 0, vu = 0;
    double hd = 0, dtd = 0, vd = 0;
    int hbig = read_varint(payload, end, &pos, &hu, &hd);
    if (hbig < 0) FAIL("bad varint", pos);
    if (pos >= end) FAIL("event runs past the end of its block", end);
    int dtbig = read_varint(payload, end, &pos, &dtu, &dtd);
    if (dtbig < 0) FAIL("bad varint", pos);
    t += dtbig ? dtd : (double)dtu;
    unsigned kind;
    double id; /* exact: below 2^47 from the integer path */
    if (!hbig) {
      kind = (unsigned)(hu & 3);
      id = (double)(hu >> 2);
    } else {
      kind = (unsigned)fmod(hd, 4.0);
      id = floor(hd / 4.0);
    }
    if (kind == KIND_REPEAT) {
      /* REPEAT: header and dt only; its slot must hold a pair of this block. */
      if (id >= 2 * REPEAT_SLOTS) FAIL("REPEAT slot out of range", pos);
      unsigned slot = (unsigned)id >> 1;
      if (slot >= full) FAIL("REPEAT of an empty slot", pos);
      if (ranged && (t < from_us || t >= to_us)) continue;
      op[n] = ((unsigned)id & 1) ? HPXDEC_OP_FREE : HPXDEC_OP_ALLOC;
      time_us[n] = t;
      trace[n] = rep_trace[slot];
      size[n] = rep_size[slot];
      n++;
      continue;
    }
    if (pos >= end) FAIL("event runs past the end of its block", end);
    int vbig = read_varint(payload, end, &pos, &vu, &vd);
    if (vbig < 0) FAIL("bad varint", pos);
    double v = vbig ? vd : (double)vu;
    uint8_t code;
    double value = v;
    if (kind == KIND_ALLOC || kind == KIND_FREE) {
      code = kind == KIND_ALLOC ? HPXDEC_OP_ALLOC : HPXDEC_OP_FREE;
      if (id > 4294967295.0) FAIL("trace id out of range", pos);
      if (v > MAX_SAFE) FAIL("size past 2^53-1", pos);
      if ((uint32_t)id > max_id) max_id = (uint32_t)id;
      rep_trace[full & (REPEAT_SLOTS - 1)] = (uint32_t)id;
      rep_size[full & (REPEAT_SLOTS - 1)] = v;
      full++;
    } else if (kind == KIND_EXT) {
      if (v > (double)(end - pos)) FAIL("extension event runs past the end of its block", pos);
      size_t body_end = pos + (size_t)v;
      if (id == EXT_END) {
        code = HPXDEC_OP_END;
        value = 0;
        end_seen = 1;
      } else if (id == EXT_RSS || id == EXT_LOST) {
        /* The body's first varint, bounds-checked against the body (a Cursor in TS). */
        size_t p = pos;
        double r = 0, scale = 1;
        int ok = 0;
        for (int k = 0; k < 10; k++) {
          if (p >= body_end) FAIL("varint runs past the end of its record", pos);
          unsigned c = payload[p++];
          r += (double)(c & 0x7f) * scale;
          if (c < 0x80) {
            ok = 1;
            break;
          }
          scale *= 128.0;
        }
        if (!ok) FAIL("varint longer than 10 bytes", pos);
        if (r > MAX_SAFE) FAIL("varint too large", pos);
        value = r;
        code = id == EXT_RSS ? HPXDEC_OP_RSS : HPXDEC_OP_LOST;
      } else {
        pos = body_end; /* unknown extension (and MARK: its label is in the .hpm): skipped by its length */
        continue;
      }
      pos = body_end;
    } else {
      FAIL("unknown event kind", pos); /* unreachable: kind 2 is a REPEAT, handled above */
    }
    if (ranged && (t < from_us || t >= to_us) && code != HPXDEC_OP_END) continue;
    op[n] = code;
    time_us[n] = t;
    trace[n] = code <= HPXDEC_OP_FREE ? (uint32_t)id : 0;
    size[n] = value;
    n++;
  }
  if (pos != end) FAIL("bytes after the last event", pos);
  /* Times only grow within a block: the last one bounds them all (as the TS reader does). */
  if (t > MAX_SAFE) FAIL("event time past the 2^53-1 us limit", pos);
  out->length = n;
  if (end_seen) *saw_end = 1;
  *max_trace = max_id;
  return 0;
}

/* ---- blocks ---- */

#define BLOCK_MAGIC 0x4b4c4248u /* "HBLK" as a little-endian u32 */

static hpxdec_crc32_fn block_crc32 = hpxdec_crc32;

void hpxdec_set_block_crc32(hpxdec_crc32_fn fn) { block_crc32 = fn ? fn : hpxdec_crc32; }

static int block_crc_ok(const uint8_t *at, uint32_t length) {
  uint32_t crc = block_crc32(0, at + 4, 16);
  crc = block_crc32(crc, at + HPXDEC_BLOCK_HEADER_SIZE, length);
  return crc == load_le32(at + 20);
}

/* 1 valid, 0 not, -1 the resync budget ran out (see hpxdec_walker.resync_budget). */
static int valid_at(hpxdec_walker *w, size_t at) {
  if (at + HPXDEC_BLOCK_HEADER_SIZE > w->size) return 0;
  uint32_t length = load_le32(w->data + at + 4);
  if (length > HPXDEC_MAX_BLOCK_PAYLOAD || at + HPXDEC_BLOCK_HEADER_SIZE + length > w->size) return 0;
  if ((double)length > w->resync_budget) {
    w->resync_budget = 0;
    w->resync_exhausted = 1;
    return -1;
  }
  w->resync_budget -= (double)length;
  return block_crc_ok(w->data + at, length);
}

/* Offset of the next valid block at or after `from`, or (size_t)-1. */
static size_t resync(hpxdec_walker *w, size_t from) {
  if (w->resync_exhausted) return (size_t)-1;
  size_t at = from;
  while (at + HPXDEC_BLOCK_HEADER_SIZE <= w->size) {
    const uint8_t *hit = memchr(w->data + at, 'H', w->size - at);
    if (!hit) return (size_t)-1;
    at = (size_t)(hit - w->data);
    if (at + 4 <= w->size && load_le32(hit) == BLOCK_MAGIC) {
      int v = valid_at(w, at);
      if (v > 0) return at;
      if (v < 0) return (size_t)-1;
    }
    at++;
  }
  return (size_t)-1;
}

void hpxdec_walker_init(hpxdec_walker *w, const uint8_t *data, size_t size, size_t start,
                        hpxdec_problem_fn on_problem, void *ctx) {
  w->data = data;
  w->size = size;
  w->offset = start;
  w->index = 0;
  w->on_problem = on_problem;
  w->ctx = ctx;
  /* The TypeScript reader's rule (resyncBudgetFor): 8x the file plus two maximal blocks. */
  w->resync_budget = 8.0 * (double)size + 2.0 * HPXDEC_MAX_BLOCK_PAYLOAD;
  w->resync_exhausted = 0;
}

static void problem(hpxdec_walker *w, int kind, size_t offset, const char *message) {
  if (w->on_problem) w->on_problem(w->ctx, kind, offset, w->index, message);
}

int hpxdec_next_block(hpxdec_walker *w, hpxdec_block *b) {
  for (;;) {
    size_t offset = w->offset;
    if (offset + HPXDEC_BLOCK_HEADER_SIZE > w->size) {
      if (offset < w->size) problem(w, HPXDEC_PROBLEM_TRUNCATED, offset, "truncated block header");
      w->offset = w->size;
      return 0;
    }
    const uint8_t *at = w->data + offset;
    uint32_t magic = load_le32(at);
    uint32_t length = load_le32(at + 4);
    const char *why = NULL;
    if (magic != BLOCK_MAGIC) why = "bad block magic";
    else if (length > HPXDEC_MAX_BLOCK_PAYLOAD) why = "block length exceeds the 64 MiB limit";
    else if (offset + HPXDEC_BLOCK_HEADER_SIZE + length > w->size) {
      /* Past the end: truncation, unless a valid block starts after it (a corrupt length). */
      size_t next = resync(w, offset + 1);
      if (next == (size_t)-1 && !w->resync_exhausted) {
        problem(w, HPXDEC_PROBLEM_TRUNCATED, offset, "truncated block");
        w->offset = w->size;
        return 0;
      }
      problem(w, HPXDEC_PROBLEM_CORRUPT, offset, "block length runs past the end of the file");
      if (next == (size_t)-1) {
        w->offset = w->size;
        return 0;
      }
      w->offset = next;
      w->index++;
      continue;
    } else if (!block_crc_ok(at, length)) why = "bad checksum";
    if (why) {
      size_t next = resync(w, offset + 1);
      problem(w, HPXDEC_PROBLEM_CORRUPT, offset, why);
      if (next == (size_t)-1) {
        w->offset = w->size;
        return 0;
      }
      w->offset = next;
      w->index++;
      continue;
    }
    b->offset = offset;
    b->index = w->index;
    b->count = load_le32(at + 8);
    b->time_us = (double)load_le64(at + 12);
    b->payload = at + HPXDEC_BLOCK_HEADER_SIZE;
    b->length = length;
    w->offset = offset + HPXDEC_BLOCK_HEADER_SIZE + length;
    w->index++;
    return 1;
  }
}

long long hpxdec_check_hpd_header(const uint8_t *data, size_t size, const char **err_msg, size_t *err_at) {
  *err_at = 0;
  if (size == 0) {
    *err_msg = "empty file (no header)";
    return -1;
  }
  if (size < 4 || memcmp(data, "HPXD", 4) != 0) {
    *err_msg = size >= 4 && memcmp(data, "HPXM", 4) == 0 ? "this is a .hpm file, not a .hpd" : "not a heapprof profile (bad magic)";
    return -1;
  }
  if (size < HPXDEC_FILE_HEADER_SIZE) {
    *err_msg = "truncated header";
    return -1;
  }
  if ((data[4] | data[5] << 8) != 2) {
    *err_msg = "unsupported format version";
    *err_at = 4;
    return -1;
  }
  if (((data[6] | data[7] << 8) & ~HPXDEC_FLAG_REPEAT) != 0) {
    *err_msg = "unknown header flags";
    *err_at = 6;
    return -1;
  }
  uint32_t body = load_le32(data + 24);
  if (body > (1u << 20) || HPXDEC_FILE_HEADER_SIZE + (size_t)body > size) {
    *err_msg = "bad header body length";
    *err_at = 24;
    return -1;
  }
  uint32_t crc = hpxdec_crc32(hpxdec_crc32(0, data, 28), data + HPXDEC_FILE_HEADER_SIZE, body);
  if (crc != load_le32(data + 28)) {
    *err_msg = "header checksum mismatch";
    *err_at = 28;
    return -1;
  }
  return HPXDEC_FILE_HEADER_SIZE + (long long)body;
}
