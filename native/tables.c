/* Hash tables for the hook (see tables.h). Callers hold the hook's mutex; memory is libc's,
 * or mmap's for big tables (table_alloc), never PyMem's. */
#include "tables.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "realmem.h" /* after the system headers: the hook's memory bypasses its interposer */

static uint64_t mix64(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  x ^= x >> 33;
  return x;
}

/* ---- pointers ---- */

/* Recording every allocation, the pointer table reaches hundreds of MB (and the hook's free
 * filter tens). From 2 MiB up a table is mapped directly and asked for transparent huge
 * pages: every probe is a random access (with 4 KiB pages, a TLB miss each), and filling a
 * new table after a doubling was a page fault every 4 KiB. Zeroed either way. errno is
 * kept: this runs inside allocator calls. */
#define BIG_TABLE_BYTES ((size_t)2 << 20)

void *table_alloc(size_t n, size_t size) {
  if (n > SIZE_MAX / size) return NULL;
  size_t bytes = n * size;
  if (bytes < BIG_TABLE_BYTES) return calloc(n, size);
  int saved = errno;
  void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
#ifdef MADV_HUGEPAGE
  if (p != MAP_FAILED) madvise(p, bytes, MADV_HUGEPAGE); /* advice only */
#endif
  errno = saved;
  return p == MAP_FAILED ? NULL : p;
}

static void table_free(void *p, size_t n, size_t size) {
  if (!p) return;
  if (n * size < BIG_TABLE_BYTES) {
    free(p);
    return;
  }
  int saved = errno;
  munmap(p, n * size);
  errno = saved;
}

static int ptr_grow(ptr_table *t) {
  size_t cap = t->cap ? t->cap * 2 : 1024;
  ptr_slot *slots = table_alloc(cap, sizeof *slots);
  if (!slots) return -1;
  for (size_t i = 0; i < t->cap; i++) {
    if (!t->slots[i].key) continue;
    size_t j = mix64(t->slots[i].key) & (cap - 1);
    while (slots[j].key) j = (j + 1) & (cap - 1);
    slots[j] = t->slots[i];
  }
  table_free(t->slots, t->cap, sizeof *slots);
  t->slots = slots;
  t->cap = cap;
  return 0;
}

int ptr_put(ptr_table *t, uintptr_t key, uint32_t trace, uint64_t size, ptr_slot *old) {
  if ((t->len + 1) * 2 > t->cap && ptr_grow(t) != 0) return -1;
  size_t mask = t->cap - 1, j = mix64(key) & mask;
  while (t->slots[j].key && t->slots[j].key != key) j = (j + 1) & mask;
  int existed = t->slots[j].key == key;
  if (existed && old) *old = t->slots[j];
  if (!existed) t->len++;
  t->slots[j].key = key;
  t->slots[j].trace = trace;
  t->slots[j].size = size;
  return existed;
}

int ptr_take(ptr_table *t, uintptr_t key, ptr_slot *out) {
  if (!t->cap) return 0;
  size_t mask = t->cap - 1, j = mix64(key) & mask;
  while (t->slots[j].key && t->slots[j].key != key) j = (j + 1) & mask;
  if (t->slots[j].key != key) return 0;
  if (out) *out = t->slots[j];
  /* Backward-shift deletion: no tombstones, so lookups stay short however many frees. */
  size_t hole = j;
  for (size_t k = (j + 1) & mask; t->slots[k].key; k = (k + 1) & mask) {
    size_t home = mix64(t->slots[k].key) & mask;
    /* Move k into the hole unless its home lies cyclically in (hole, k]. */
    int home_between = hole <= k ? (home > hole && home <= k) : (home > hole || home <= k);
    if (!home_between) {
      t->slots[hole] = t->slots[k];
      hole = k;
    }
  }
  memset(&t->slots[hole], 0, sizeof t->slots[hole]);
  t->len--;
  return 1;
}

void ptr_clear(ptr_table *t) {
  table_free(t->slots, t->cap, sizeof *t->slots);
  memset(t, 0, sizeof *t);
}

/* ---- pairs ---- */

static size_t pair_home(uint64_t a, uint64_t b, size_t mask) { return mix64(a ^ mix64(b + 0x9e3779b97f4a7c15ULL)) & mask; }

pair_slot *pair_find(pair_map *m, uint64_t a, uint64_t b) {
  if (!m->cap) return NULL;
  size_t mask = m->cap - 1, j = pair_home(a, b, mask);
  for (; m->slots[j].used; j = (j + 1) & mask)
    if (m->slots[j].a == a && m->slots[j].b == b) return &m->slots[j];
  return NULL;
}

pair_slot *pair_add(pair_map *m, uint64_t a, uint64_t b) {
  if ((m->len + 1) * 2 > m->cap) {
    size_t cap = m->cap ? m->cap * 2 : 256;
    pair_slot *slots = calloc(cap, sizeof *slots);
    if (!slots) return NULL;
    for (size_t i = 0; i < m->cap; i++) {
      if (!m->slots[i].used) continue;
      size_t j = pair_home(m->slots[i].a, m->slots[i].b, cap - 1);
      while (slots[j].used) j = (j + 1) & (cap - 1);
      slots[j] = m->slots[i];
    }
    free(m->slots);
    m->slots = slots;
    m->cap = cap;
  }
  size_t mask = m->cap - 1, j = pair_home(a, b, mask);
  while (m->slots[j].used) j = (j + 1) & mask;
  pair_slot *s = &m->slots[j];
  memset(s, 0, sizeof *s);
  s->a = a;
  s->b = b;
  s->used = 1;
  m->len++;
  return s;
}

void pair_clear(pair_map *m) {
  free(m->slots);
  memset(m, 0, sizeof *m);
}

/* ---- blobs ---- */

uint64_t blob_hash(const void *data, size_t len) {
  /* Eight bytes per multiply, then a finalizer: inputs are names, frame-id lists and
   * walked stacks (one per sampled allocation). */
  const uint8_t *p = data;
  uint64_t h = 0x9e3779b97f4a7c15ULL ^ len, w;
  for (; len >= 8; len -= 8, p += 8) {
    memcpy(&w, p, 8);
    h = (h ^ w) * 0xff51afd7ed558ccdULL;
    h ^= h >> 29;
  }
  for (w = 0; len > 0; len--) w = (w << 8) | p[len - 1];
  return mix64(h ^ w);
}

uint32_t blob_find(blob_map *m, const void *data, size_t len, uint64_t hash) {
  if (!m->cap) return 0;
  size_t mask = m->cap - 1;
  for (size_t j = hash & mask; m->slots[j].data; j = (j + 1) & mask) {
    blob_slot *s = &m->slots[j];
    if (s->hash == hash && s->len == len && memcmp(s->data, data, len) == 0) return s->id;
  }
  return 0;
}

int blob_add(blob_map *m, const void *data, size_t len, uint64_t hash, uint32_t id) {
  if ((m->len + 1) * 2 > m->cap) {
    size_t cap = m->cap ? m->cap * 2 : 256;
    blob_slot *slots = calloc(cap, sizeof *slots);
    if (!slots) return -1;
    for (size_t i = 0; i < m->cap; i++) {
      if (!m->slots[i].data) continue;
      size_t j = m->slots[i].hash & (cap - 1);
      while (slots[j].data) j = (j + 1) & (cap - 1);
      slots[j] = m->slots[i];
    }
    free(m->slots);
    m->slots = slots;
    m->cap = cap;
  }
  uint8_t *copy = malloc(len ? len : 1);
  if (!copy) return -1;
  memcpy(copy, data, len);
  size_t mask = m->cap - 1, j = hash & mask;
  while (m->slots[j].data) j = (j + 1) & mask;
  m->slots[j] = (blob_slot){.hash = hash, .id = id, .len = (uint32_t)len, .data = copy};
  m->len++;
  return 0;
}

void blob_clear(blob_map *m) {
  for (size_t i = 0; i < m->cap; i++) free(m->slots[i].data);
  free(m->slots);
  memset(m, 0, sizeof *m);
}
