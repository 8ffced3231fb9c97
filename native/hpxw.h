/* Writing hpx version 2 (man/hpx.5): varints, CRC-32, and a block buffer per file that is
 * written to disk as whole checksummed blocks, one write call each. No locking here: the
 * hook calls these with its mutex held. Memory comes from libc, never from PyMem. */
#ifndef HEAPPROF_HPXW_H
#define HEAPPROF_HPXW_H

#include <stddef.h>
#include <stdint.h>

#define HPX_FILE_HEADER 32
#define HPX_BLOCK_HEADER 24

/* .hpd header flag (man/hpx.5, EVENTS): events may be REPEATs (kind 2) of a per-block cache.
 * Readers that predate it reject the file for its unknown flag instead of misreading it. */
#define HPX_HPD_FLAG_REPEAT 1u
/* The per-block cache of (trace, size) pairs that REPEAT events name: slots filled in turn
 * by every ALLOC and FREE written in full, emptied at each block start, so that a block
 * decodes alone. 16 slots keep a REPEAT's header in one byte: ((slot << 1 | free) << 2) | 2. */
#define HPX_REPEAT_SLOTS 16
/* .hpm header flag: every block's payload is raw deflate (RFC 1951); the block header's length
 * and CRC are those of the compressed bytes. Set when zlib's stream could be set up at open. */
#define HPX_HPM_FLAG_DEFLATE 1u
#define HPX_REPEAT_MAP 256
#define HPX_REPEAT_EMPTY UINT64_MAX /* a size no event has: readers refuse sizes past 2^53 */

uint32_t hpx_crc32(uint32_t crc, const void *data, size_t len);

/* A growable byte buffer (libc memory). On allocation failure it sets failed and drops data. */
typedef struct {
  uint8_t *data;
  size_t len, cap;
  int failed;
} hpx_buf;

void hpx_buf_reserve(hpx_buf *b, size_t extra);
void hpx_buf_put(hpx_buf *b, const void *src, size_t n);
void hpx_buf_varint(hpx_buf *b, uint64_t v);
void hpx_buf_f64(hpx_buf *b, double v);
void hpx_buf_free(hpx_buf *b);

/* One output file: a block being filled (payload after a reserved block header). */
typedef struct {
  int fd;
  char path[4096];     /* as given, for messages */
  char abspath[4096];  /* absolute, for reopening after a chdir */
  uint64_t dev, ino;   /* the file opened: fd is only ever used while it still refers to it */
  uint32_t reopened;   /* times the descriptor was found taken away and the file reopened */
  char why[256];       /* set when a check failed: what happened to the descriptor */
  hpx_buf block;      /* data[0..24) reserved for the block header */
  uint32_t count;     /* records/events in the block */
  uint64_t block_us;  /* block time (first event for .hpd) */
  uint64_t last_us;   /* time of the last event, for dt */
  uint64_t written;   /* bytes written to the file so far */
  /* The REPEAT cache (.hpd only: repeat set). The writer finds a pair through map, a hash of
   * (trace, size) to the slot that last took it, checked against the slot; a collision only
   * costs a full event. */
  int repeat;
  uint32_t rep_next;
  uint32_t rep_trace[HPX_REPEAT_SLOTS];
  uint64_t rep_size[HPX_REPEAT_SLOTS]; /* HPX_REPEAT_EMPTY: no pair yet in this block */
  uint8_t rep_map[HPX_REPEAT_MAP];
  /* .hpm only: a deflate stream (z_stream *, reset per block; its memory from libc) and the
   * buffer a compressed block is built in, header included, for its one write call. */
  void *z;
  hpx_buf zout;
} hpx_file;

/* Moves a descriptor of the recorder's to a high number, out of the program's way (close-on-exec),
 * and returns the one to use. */
int hpx_move_fd_high(int fd);
/* Whether fd refers to the file (dev, ino): a descriptor of the recorder's that the program may
 * have closed, and whose number it may have reused, is only written or closed when this holds. */
int hpx_fd_is(int fd, uint64_t dev, uint64_t ino);

/* Creates path (0600; O_EXCL unless overwrite) and writes the 32-byte file header plus
 * body. Returns 0, or -errno; a file it created and could not complete is removed. */
int hpx_file_open(hpx_file *f, const char *path, const char magic[4], const uint8_t id[16],
                  const uint8_t *body, uint32_t body_len, int overwrite);
/* Whether f->fd still refers to the file opened (device and inode); if the program closed
 * or replaced it, reopens the file by its absolute path (append, never create or truncate)
 * and checks it is the same file. Returns 0 when f->fd is safe to write, else -errno with
 * f->why set and f->fd forgotten (never closed: it may be the program's). */
int hpx_file_check(hpx_file *f);
static inline uint8_t *hpx_put_varint(uint8_t *d, uint64_t v) {
  for (; v >= 0x80; v >>= 7) *d++ = (uint8_t)(v | 0x80);
  *d++ = (uint8_t)v;
  return d;
}

/* Which map entry (0..255) a pair hashes to: a collision only costs a full event. (Adding the
 * trace's product instead of xoring it lost a seventh of the hits on a pure-Python churn.) */
static inline uint32_t hpx_repeat_hash(uint32_t trace, uint64_t size) {
  return ((uint32_t)size ^ trace * 0x9E3779B1u) * 0x85EBCA77u >> 24;
}

/* Encodes one .hpd event at d (room for 40 bytes checked by the caller) and returns the end:
 * header h (kind in the low 2 bits, trace or type above: below 2^34), dt, then nrest varints
 * (an ALLOC or FREE has exactly one: its size). With the REPEAT cache on, an ALLOC or FREE
 * whose (trace, size) a slot holds is written as REPEAT + dt, and any other is written in full
 * and takes the next slot (man/hpx.5): one hash, one map byte and one slot compared. Inline,
 * and so is the hook's emit_event that calls it (cachegrind, bench/workloads/perevent.py:
 * with this out of line, or emit_event not inlined, a sampled pair cost 20 to 80 more
 * instructions; as it is, 12 more than the encoding without REPEAT, 35 when every allocation
 * misses the cache). */
static inline uint8_t *hpx_encode_event(hpx_file *f, uint8_t *d, uint64_t h, uint64_t dt, const uint64_t *rest,
                                         int nrest) {
  if ((h & 3) <= 1 && f->repeat) {
    uint32_t trace = (uint32_t)(h >> 2);
    uint64_t size = rest[0];
    uint32_t m = hpx_repeat_hash(trace, size);
    uint32_t slot = f->rep_map[m];
    if (f->rep_size[slot] == size && f->rep_trace[slot] == trace) {
      *d++ = (uint8_t)((((slot << 1) | (uint32_t)(h & 1)) << 2) | 2); /* < 0x80: one byte */
      return hpx_put_varint(d, dt);
    }
    slot = f->rep_next; /* written in full: the pair takes the next slot */
    f->rep_trace[slot] = trace;
    f->rep_size[slot] = size;
    f->rep_map[m] = (uint8_t)slot;
    f->rep_next = (slot + 1) & (HPX_REPEAT_SLOTS - 1);
  }
  d = hpx_put_varint(d, h);
  d = hpx_put_varint(d, dt);
  for (int i = 0; i < nrest; i++) d = hpx_put_varint(d, rest[i]);
  return d;
}

/* Starts a record/event: makes sure the block is initialised (and the REPEAT cache empty). */
void hpx_file_begin(hpx_file *f, uint64_t now_us);
size_t hpx_file_payload(const hpx_file *f);
/* Writes the pending block, if any, with one write call, after hpx_file_check. Returns 0 or -errno. */
int hpx_file_flush(hpx_file *f, uint64_t now_us);
/* fsync and close, only if the descriptor is still ours. */
void hpx_file_close(hpx_file *f);
/* Forgets the pending block and the descriptor without writing (fork child); the
 * descriptor is closed only if it is still ours. */
/* After a failed write: cuts the file back to its last whole block (what the write left of its
 * block, on a full disk, goes), so that a block written next follows it. 0 or -errno. */
int hpx_file_cut(hpx_file *f);
void hpx_file_abandon(hpx_file *f);

#endif
