/* hpx v2 encoding primitives and block-buffered file output (see hpxw.h, man/hpx.5). */
#define _GNU_SOURCE
#include "hpxw.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "realmem.h" /* after the system headers: the hook's memory bypasses its interposer */

/* Slicing-by-8: eight bytes per step. Every block is checksummed, and byte-at-a-time
 * CRC was a visible part of a recording's cost. crc_table[0] is the classic table. */
static uint32_t crc_table[8][256];
static int crc_ready;

static void crc_init(void) {
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = i;
    for (int k = 0; k < 8; k++) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    crc_table[0][i] = c;
  }
  for (uint32_t i = 0; i < 256; i++)
    for (int t = 1; t < 8; t++) crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^ crc_table[0][crc_table[t - 1][i] & 0xFF];
  crc_ready = 1;
}

/* Incremental: pass 0 to start; the result of one call feeds the next. */
uint32_t hpx_crc32(uint32_t crc, const void *data, size_t len) {
  if (!crc_ready) crc_init();
  const uint8_t *p = data;
  crc = ~crc;
  for (; len >= 8; len -= 8, p += 8) {
    uint32_t lo = crc ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
    crc = crc_table[7][lo & 0xFF] ^ crc_table[6][(lo >> 8) & 0xFF] ^ crc_table[5][(lo >> 16) & 0xFF] ^
          crc_table[4][lo >> 24] ^ crc_table[3][p[4]] ^ crc_table[2][p[5]] ^ crc_table[1][p[6]] ^ crc_table[0][p[7]];
  }
  while (len--) crc = crc_table[0][(crc ^ *p++) & 0xFF] ^ (crc >> 8);
  return ~crc;
}

void hpx_buf_reserve(hpx_buf *b, size_t extra) {
  if (b->failed || b->len + extra <= b->cap) return;
  size_t cap = b->cap ? b->cap : 4096;
  while (cap < b->len + extra) cap *= 2;
  uint8_t *data = realloc(b->data, cap); /* libc, not PyMem */
  if (!data) {
    b->failed = 1;
    return;
  }
  b->data = data;
  b->cap = cap;
}

void hpx_buf_put(hpx_buf *b, const void *src, size_t n) {
  if (n == 0) return; /* src may be NULL then (an empty body) */
  hpx_buf_reserve(b, n);
  if (b->failed) return;
  memcpy(b->data + b->len, src, n);
  b->len += n;
}

void hpx_buf_varint(hpx_buf *b, uint64_t v) {
  if (b->cap - b->len < 10) { /* a varint is at most 10 bytes; written in place */
    hpx_buf_reserve(b, 10);
  }
  if (b->failed) return;
  uint8_t *d = b->data + b->len;
  for (; v >= 0x80; v >>= 7) *d++ = (uint8_t)(v | 0x80);
  *d++ = (uint8_t)v;
  b->len = (size_t)(d - b->data);
}

static void put_le(uint8_t *dst, uint64_t v, int n) {
  for (int i = 0; i < n; i++) dst[i] = (uint8_t)(v >> (8 * i));
}

void hpx_buf_f64(hpx_buf *b, double v) {
  uint64_t bits;
  memcpy(&bits, &v, 8);
  uint8_t tmp[8];
  put_le(tmp, bits, 8);
  hpx_buf_put(b, tmp, 8);
}

void hpx_buf_free(hpx_buf *b) {
  free(b->data);
  memset(b, 0, sizeof *b);
}

/* write() the whole range, retrying on EINTR and short writes. */
static int write_all(int fd, const uint8_t *p, size_t n) {
  while (n) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    if (w == 0) return -EIO;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/* The recorder's descriptors live far above the program's: a program that closes what it
 * inherited (os.closerange(3, 4096), daemon code) and opens files gets the low numbers, never
 * ours. The lowest number asked for is HIGH_FD, or half the soft descriptor limit when that
 * is lower; close-on-exec always. The original descriptor is closed when the move works. */
#define HIGH_FD 1000
int hpx_move_fd_high(int fd) {
  struct rlimit rl;
  long floor = HIGH_FD;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && (rlim_t)floor + 64 > rl.rlim_cur)
    floor = (long)(rl.rlim_cur / 2);
  if (floor <= fd) return fd;
  int high = fcntl(fd, F_DUPFD_CLOEXEC, (int)floor);
  if (high < 0) return fd; /* no room up there: keep the low one (still checked before each write) */
  close(fd);
  return high;
}

/* Whether fd refers to the file (dev, ino). */
int hpx_fd_is(int fd, uint64_t dev, uint64_t ino) {
  struct stat st;
  return fd >= 0 && fstat(fd, &st) == 0 && (uint64_t)st.st_dev == dev && (uint64_t)st.st_ino == ino;
}

/* f->fd refers to the file opened: whether that file is still the profile. Someone else may
 * have deleted it (or its directory), so that every block written from now on goes to a file
 * nobody can read, or truncated it, so that the blocks before are gone and the next one lands
 * after a gap: recording stops either way, saying so, instead of writing on unseen. */
static int still_the_profile(hpx_file *f, const struct stat *st) {
  if (st->st_nlink == 0) {
    snprintf(f->why, sizeof f->why, "deleted while being recorded (by the program or another process)");
    return -ESTALE;
  }
  if ((uint64_t)st->st_size < f->written) {
    snprintf(f->why, sizeof f->why,
             "truncated to %llu bytes while being recorded (by the program or another process), after %llu bytes had been written",
             (unsigned long long)st->st_size, (unsigned long long)f->written);
    return -ESTALE;
  }
  return 0;
}

int hpx_file_check(hpx_file *f) {
  if (f->fd < 0) return -EBADF;
  struct stat st;
  if (fstat(f->fd, &st) == 0 && (uint64_t)st.st_dev == f->dev && (uint64_t)st.st_ino == f->ino)
    return still_the_profile(f, &st);
  /* Closed by the program, or its number now names one of the program's files: forget it
   * (never close or write it) and find our file again by its path. */
  int saved = errno;
  f->fd = -1;
  int fd = open(f->abspath, O_WRONLY | O_APPEND | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    snprintf(f->why, sizeof f->why, "the program closed the profile's descriptor, and reopening %.120s failed: %.60s",
             f->abspath, strerror(errno));
    errno = saved;
    return -EBADF;
  }
  if (!hpx_fd_is(fd, f->dev, f->ino)) {
    close(fd);
    snprintf(f->why, sizeof f->why,
             "the program closed the profile's descriptor, and %.120s is no longer the file the recorder created",
             f->abspath);
    errno = saved;
    return -ESTALE;
  }
  f->fd = hpx_move_fd_high(fd);
  f->reopened++;
  errno = saved;
  if (fstat(f->fd, &st) == 0) return still_the_profile(f, &st);
  return 0;
}

/* zlib's memory, from libc below the interposer like every buffer here (realmem.h). */
static voidpf z_alloc(voidpf opaque, uInt items, uInt size) {
  (void)opaque;
  return calloc(items, size);
}

static void z_free(voidpf opaque, voidpf p) {
  (void)opaque;
  free(p);
}

/* A raw deflate stream for .hpm blocks, or NULL (no memory: blocks are then written as they
 * are, and the header says so). A 4 KiB window and memLevel 5 keep it near 40 KiB: .hpm
 * blocks are small, and the window size costs them under 3% (measured on recorded .hpm). */
static z_stream *deflate_new(void) {
  z_stream *z = calloc(1, sizeof *z);
  if (!z) return NULL;
  z->zalloc = z_alloc;
  z->zfree = z_free;
  if (deflateInit2(z, 6, Z_DEFLATED, -12, 5, Z_DEFAULT_STRATEGY) != Z_OK) {
    free(z);
    return NULL;
  }
  return z;
}

static void deflate_free(hpx_file *f) {
  if (f->z) {
    deflateEnd((z_stream *)f->z);
    free(f->z);
    f->z = NULL;
  }
  hpx_buf_free(&f->zout);
}

int hpx_file_open(hpx_file *f, const char *path, const char magic[4], const uint8_t id[16],
                  const uint8_t *body, uint32_t body_len, int overwrite) {
  memset(f, 0, sizeof *f);
  f->fd = -1;
  size_t plen = strlen(path);
  if (plen >= sizeof f->path) return -ENAMETOOLONG;
  memcpy(f->path, path, plen + 1);
  /* Overwriting unlinks first so that the new file is created 0600 like a fresh one. */
  if (overwrite && unlink(path) != 0 && errno != ENOENT) return -errno;
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_APPEND, 0600);
  if (fd < 0) return -errno;
  fd = hpx_move_fd_high(fd);
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int rc = -errno;
    close(fd);
    return rc;
  }
  f->dev = (uint64_t)st.st_dev;
  f->ino = (uint64_t)st.st_ino;
  if (path[0] == '/') {
    memcpy(f->abspath, path, plen + 1);
  } else {
    char cwd[4096];
    if (!getcwd(cwd, sizeof cwd) || (size_t)snprintf(f->abspath, sizeof f->abspath, "%s/%s", cwd, path) >= sizeof f->abspath)
      memcpy(f->abspath, path, plen + 1); /* best effort: reopening then depends on the cwd */
  }
  hpx_buf h = {0};
  hpx_buf_reserve(&h, HPX_FILE_HEADER + body_len);
  if (h.failed) {
    close(fd);
    unlink(path); /* no empty file left behind to make the next run fail */
    return -ENOMEM;
  }
  uint8_t *p = h.data;
  memcpy(p, magic, 4);
  put_le(p + 4, 2, 2); /* format version */
  /* Every .hpd this recorder writes may hold REPEAT events, and its .hpm blocks are deflated
   * when zlib is set up: the flags make older readers refuse both rather than misread them. */
  int hpd = memcmp(magic, "HPXD", 4) == 0;
  if (!hpd && memcmp(magic, "HPXM", 4) == 0 && !getenv("HEAPPROF_HPM_PLAIN")) f->z = deflate_new();
  put_le(p + 6, hpd ? HPX_HPD_FLAG_REPEAT : f->z ? HPX_HPM_FLAG_DEFLATE : 0, 2); /* flags */
  memcpy(p + 8, id, 16);
  put_le(p + 24, body_len, 4);
  uint32_t crc = hpx_crc32(0, p, 28);
  crc = hpx_crc32(crc, body, body_len);
  put_le(p + 28, crc, 4);
  if (body_len) memcpy(p + 32, body, body_len);
  int rc = write_all(fd, p, HPX_FILE_HEADER + body_len);
  hpx_buf_free(&h);
  if (rc != 0) {
    close(fd);
    unlink(path); /* a partial header (a full disk): nothing left behind */
    deflate_free(f);
    return rc;
  }
  f->fd = fd;
  f->written = HPX_FILE_HEADER + body_len;
  f->repeat = hpd;
  return 0;
}

void hpx_file_begin(hpx_file *f, uint64_t now_us) {
  if (f->block.len == 0) {
    hpx_buf_reserve(&f->block, 1 << 16);
    if (f->block.failed) return;
    f->block.len = HPX_BLOCK_HEADER;
    f->count = 0;
    /* each block decodes alone: its cache starts empty */
    f->rep_next = 0;
    for (int i = 0; i < HPX_REPEAT_SLOTS; i++) f->rep_size[i] = HPX_REPEAT_EMPTY;
    f->block_us = now_us;
    f->last_us = now_us;
  }
}

size_t hpx_file_payload(const hpx_file *f) {
  return f->block.len > HPX_BLOCK_HEADER ? f->block.len - HPX_BLOCK_HEADER : 0;
}

int hpx_file_flush(hpx_file *f, uint64_t now_us) {
  (void)now_us;
  if (f->fd < 0) return 0;
  if (f->block.failed) return -ENOMEM;
  if (f->count == 0) {
    f->block.len = 0;
    return 0;
  }
  uint8_t *p = f->block.data;
  size_t payload = f->block.len - HPX_BLOCK_HEADER;
  size_t out_len = f->block.len;
  if (f->z) {
    /* The block is built in zout: header, then the payload deflated in one call. */
    z_stream *z = (z_stream *)f->z;
    deflateReset(z);
    f->zout.len = 0;
    hpx_buf_reserve(&f->zout, HPX_BLOCK_HEADER + deflateBound(z, (uLong)payload));
    if (f->zout.failed) {
      f->zout.failed = 0; /* may succeed at the next flush; this block is lost */
      f->block.len = 0;
      f->count = 0;
      return -ENOMEM;
    }
    z->next_in = p + HPX_BLOCK_HEADER;
    z->avail_in = (uInt)payload;
    z->next_out = f->zout.data + HPX_BLOCK_HEADER;
    z->avail_out = (uInt)(f->zout.cap - HPX_BLOCK_HEADER);
    if (deflate(z, Z_FINISH) != Z_STREAM_END) { /* cannot happen with deflateBound's room */
      f->block.len = 0;
      f->count = 0;
      return -EIO;
    }
    p = f->zout.data;
    payload = z->total_out;
    out_len = HPX_BLOCK_HEADER + payload;
  }
  memcpy(p, "HBLK", 4);
  put_le(p + 4, payload, 4);
  put_le(p + 8, f->count, 4);
  put_le(p + 12, f->block_us, 8);
  uint32_t crc = hpx_crc32(0, p + 4, 16);
  crc = hpx_crc32(crc, p + HPX_BLOCK_HEADER, payload);
  put_le(p + 20, crc, 4);
  int rc = hpx_file_check(f); /* never a byte into a file the recorder did not open */
  if (rc == 0) rc = write_all(f->fd, p, out_len); /* one whole block per write */
  if (rc == 0) f->written += out_len;
  f->block.len = 0;
  f->count = 0;
  return rc;
}

void hpx_file_close(hpx_file *f) {
  if (f->fd >= 0 && hpx_fd_is(f->fd, f->dev, f->ino)) {
    fsync(f->fd);
    close(f->fd);
  }
  f->fd = -1;
  hpx_buf_free(&f->block);
  deflate_free(f);
}

int hpx_file_cut(hpx_file *f) {
  if (f->fd < 0 || !hpx_fd_is(f->fd, f->dev, f->ino)) return -EBADF;
  return ftruncate(f->fd, (off_t)f->written) == 0 ? 0 : -errno;
}

void hpx_file_abandon(hpx_file *f) {
  if (f->fd >= 0 && hpx_fd_is(f->fd, f->dev, f->ino)) close(f->fd);
  f->fd = -1;
  f->block.len = 0;
  f->count = 0;
  deflate_free(f); /* the next hpx_file_open starts from a zeroed hpx_file */
}
