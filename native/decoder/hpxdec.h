/* Reference decoder of hpx v2 .hpd event files (man/hpx.5), in plain C.
 *
 * It follows the TypeScript reader (lib/format/block-file.ts, lib/format/hpx.ts) rule for
 * rule: same block validation and resynchronisation, same event decoding (varints summed in
 * doubles, exactly as the TS loop does, so even absurd values decode identically), same
 * "stop after the block holding END". Tests use it as a cross-check of the TS decoder and the
 * benchmark uses it as the speed limit for reading. It never allocates per event.
 */
#ifndef HPXDEC_H
#define HPXDEC_H

#include <stddef.h>
#include <stdint.h>

#define HPXDEC_FILE_HEADER_SIZE 32
#define HPXDEC_BLOCK_HEADER_SIZE 24
#define HPXDEC_MAX_BLOCK_PAYLOAD (64u * 1024u * 1024u)
/* .hpd header flags this decoder knows: 1, events may be REPEATs (kind 2). REPEATs are
 * decoded in every .hpd (a block's own ALLOCs and FREEs define what they repeat). */
#define HPXDEC_FLAG_REPEAT 1u
/* Every event takes at least 2 bytes (a REPEAT: header and dt): a block claiming more events
 * than half its payload is corrupt. */
#define HPXDEC_MIN_EVENT_BYTES 2

/* Event codes: the same numbers as OP_* in lib/format/source.ts. */
enum { HPXDEC_OP_ALLOC = 0, HPXDEC_OP_FREE = 1, HPXDEC_OP_RSS = 2, HPXDEC_OP_END = 3, HPXDEC_OP_LOST = 4 };

/* Columnar events, like EventBatch. The caller owns the arrays. */
typedef struct {
  uint8_t *op;
  double *time_us;
  uint32_t *trace;
  double *size;
  size_t length;
  size_t capacity;
} hpxdec_events;

/* zlib-compatible CRC-32 (ISO-HDLC). Pass 0 as `crc` to start. */
uint32_t hpxdec_crc32(uint32_t crc, const uint8_t *p, size_t n);

/* The CRC-32 that block validation uses: hpxdec_crc32 (slicing by 8) unless a faster
 * implementation of the same function is set here (the Node addon sets the zlib that Node
 * carries, the one the TypeScript reader uses, so that the two readers are compared on
 * decoding rather than on checksums). NULL restores hpxdec_crc32. Set it before walking. */
typedef uint32_t (*hpxdec_crc32_fn)(uint32_t crc, const uint8_t *p, size_t n);
void hpxdec_set_block_crc32(hpxdec_crc32_fn fn);

/* Decode one block payload's `count` events, appending to `out` (which must have room for
 * `count` more). Returns 0, or -1 with *err_at (offset in the payload) and *err_msg set;
 * on error out->length is left as it was. *saw_end is set when an END event was decoded. */
int hpxdec_decode_block(const uint8_t *payload, size_t len, uint32_t count, double block_time_us,
                        hpxdec_events *out, int *saw_end, size_t *err_at, const char **err_msg);

/* The same, keeping only events with from_us <= time < to_us (and END wherever it is), as
 * the TypeScript decoder's ranged read does, and setting *max_trace to the largest trace id of
 * an ALLOC or FREE written in full (0 if none), kept or not. */
int hpxdec_decode_block_range(const uint8_t *payload, size_t len, uint32_t count, double block_time_us,
                              double from_us, double to_us, hpxdec_events *out, int *saw_end,
                              uint32_t *max_trace, size_t *err_at, const char **err_msg);

/* A problem met while walking blocks. */
enum { HPXDEC_PROBLEM_CORRUPT = 1, HPXDEC_PROBLEM_TRUNCATED = 2 };
typedef void (*hpxdec_problem_fn)(void *ctx, int kind, size_t offset, uint32_t index, const char *message);

typedef struct {
  size_t offset;          /* of the block header */
  uint32_t index;
  uint32_t count;
  double time_us;
  const uint8_t *payload;
  uint32_t length;
} hpxdec_block;

/* Walks the blocks of a file held in memory (a buffer or an mmap). */
typedef struct {
  const uint8_t *data;
  size_t size;
  size_t offset;
  uint32_t index;
  hpxdec_problem_fn on_problem;
  void *ctx;
  /* Payload bytes resynchronisation may still checksum: false "HBLK" headers claiming most of
   * the file would otherwise make it quadratic. When it runs out the walk ends (the rest of the
   * file is one corrupt region), exactly as in the TypeScript reader. */
  double resync_budget;
  int resync_exhausted;
} hpxdec_walker;

void hpxdec_walker_init(hpxdec_walker *w, const uint8_t *data, size_t size, size_t start,
                        hpxdec_problem_fn on_problem, void *ctx);
/* 1 and *b filled, or 0 at the end (after reporting a truncated tail if there is one). */
int hpxdec_next_block(hpxdec_walker *w, hpxdec_block *b);

/* Validate the 32-byte file header (+ body) of an .hpd. Returns the offset of the first block,
 * or -1 with *err_msg and *err_at set. */
long long hpxdec_check_hpd_header(const uint8_t *data, size_t size, const char **err_msg, size_t *err_at);

#endif
