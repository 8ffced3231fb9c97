/* Writing hpx version 2 (man/hpx.5): varints, CRC-32, and a block buffer per file that is
 * written to disk as whole checksummed blocks, one write call each. No locking here: the
 * hook calls these with its mutex held. Memory comes from libc, never from PyMem. */
#ifndef HEAPPROF_HPXW_H
#define HEAPPROF_HPXW_H

#include <stddef.h>
#include <stdint.h>

#define HPX_FILE_HEADER 32
#define HPX_BLOCK_HEADER 24

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
} hpx_file;

/* Creates path (0600; O_EXCL unless overwrite) and writes the 32-byte file header plus
 * body. Returns 0, or -errno; a file it created and could not complete is removed. */
int hpx_file_open(hpx_file *f, const char *path, const char magic[4], const uint8_t id[16],
                  const uint8_t *body, uint32_t body_len, int overwrite);
/* Whether f->fd still refers to the file opened (device and inode); if the program closed
 * or replaced it, reopens the file by its absolute path (append, never create or truncate)
 * and checks it is the same file. Returns 0 when f->fd is safe to write, else -errno with
 * f->why set and f->fd forgotten (never closed: it may be the program's). */
int hpx_file_check(hpx_file *f);
/* Starts a record/event: makes sure the block is initialised. */
void hpx_file_begin(hpx_file *f, uint64_t now_us);
size_t hpx_file_payload(const hpx_file *f);
/* Writes the pending block, if any, with one write call, after hpx_file_check. Returns 0 or -errno. */
int hpx_file_flush(hpx_file *f, uint64_t now_us);
/* fsync and close, only if the descriptor is still ours. */
void hpx_file_close(hpx_file *f);
/* Forgets the pending block and the descriptor without writing (fork child); the
 * descriptor is closed only if it is still ours. */
void hpx_file_abandon(hpx_file *f);

#endif
