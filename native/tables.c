/* Hash tables for the hook (see tables.h). Callers hold the hook's mutex; memory is libc's,
 * or mmap's for big tables (table_alloc), never PyMem's. */
#include "tables.h"

#include <errno.h>
#include <stdint.h>
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

/* The hook's memory in these tables: updated under the hook's mutex, read by hp_memory. */
static uint64_t g_mem_now, g_mem_peak;

void tables_account(int64_t bytes) {
  uint64_t now = __atomic_add_fetch(&g_mem_now, (uint64_t)bytes, __ATOMIC_RELAXED);
  if (bytes > 0 && now > __atomic_load_n(&g_mem_peak, __ATOMIC_RELAXED)) __atomic_store_n(&g_mem_peak, now, __ATOMIC_RELAXED);
}

void tables_memory(uint64_t *now, uint64_t *peak) {
  *now = __atomic_load_n(&g_mem_now, __ATOMIC_RELAXED);
  *peak = __atomic_load_n(&g_mem_peak, __ATOMIC_RELAXED);
}

void tables_reset_peak(void) { __atomic_store_n(&g_mem_peak, __atomic_load_n(&g_mem_now, __ATOMIC_RELAXED), __ATOMIC_RELAXED); }

/* Counted libc memory of these tables. */
static void *counted_calloc(size_t n, size_t size) {
  void *p = calloc(n, size);
  if (p) tables_account((int64_t)(n * size));
  return p;
}

static void counted_free(void *p, size_t bytes) {
  if (!p) return;
  free(p);
  tables_account(-(int64_t)bytes);
}

void *table_alloc(size_t n, size_t size) {
  if (n > SIZE_MAX / size) return NULL;
  size_t bytes = n * size;
  if (bytes < BIG_TABLE_BYTES) return counted_calloc(n, size);
  int saved = errno;
  void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
#ifdef MADV_HUGEPAGE
  if (p != MAP_FAILED) madvise(p, bytes, MADV_HUGEPAGE); /* advice only */
#endif
  errno = saved;
  if (p == MAP_FAILED) return NULL;
  tables_account((int64_t)bytes);
  return p;
}

void table_free(void *p, size_t n, size_t size) {
  if (!p) return;
  if (n * size < BIG_TABLE_BYTES) {
    counted_free(p, n * size);
    return;
  }
  int saved = errno;
  munmap(p, n * size);
  errno = saved;
  tables_account(-(int64_t)(n * size));
}

#define PTR_MIN_CAP 1024

/* A key's home slot in [0, cap): the high bits of one multiply, scaled to cap (no power of
 * two needed). Every sampled allocation and free probes this table, and the backward-shift
 * deletion recomputes the home of each entry it moves past: a full mix64 there was ~10
 * instructions each time. The high bits of an odd multiple depend on every bit of the
 * address; its constant is not the free filter's (hook.c), so that addresses sharing a
 * filter count do not share a home slot too. */
static inline size_t ptr_home(uintptr_t key, size_t cap) {
  return (size_t)(((unsigned __int128)((uint64_t)key * 0xd6e8feb86659fd93ULL) * cap) >> 64);
}

static inline size_t ptr_next(size_t j, size_t cap) { return j + 1 == cap ? 0 : j + 1; }

/* Rehashes into cap slots (a multiple of 64, >= len / (3/4)). */
static __attribute__((noinline)) int ptr_resize(ptr_table *t, size_t cap) {
  cap = (cap + 63) & ~(size_t)63;
  ptr_cell *slots = table_alloc(cap, sizeof *slots);
  if (!slots) return -1;
  for (size_t i = 0; i < t->cap; i++) {
    if (!t->slots[i].key) continue;
    size_t j = ptr_home(t->slots[i].key, cap);
    while (slots[j].key) j = ptr_next(j, cap);
    slots[j] = t->slots[i];
  }
  table_free(t->slots, t->cap, sizeof *slots);
  t->slots = slots;
  t->cap = cap;
  return 0;
}

/* The cell of key, or the empty cell where it would go. */
static inline ptr_cell *ptr_find(ptr_table *t, uintptr_t key) {
  size_t j = ptr_home(key, t->cap);
  while (t->slots[j].key && t->slots[j].key != key) j = ptr_next(j, t->cap);
  return &t->slots[j];
}

/* Stores (key, size32, trace) without the side table. Inlined into ptr_put (a sampled
 * allocation's one call into this file), like cell_take into ptr_take. */
static inline __attribute__((always_inline)) int cell_put(ptr_table *t, uintptr_t key, uint32_t size32, uint32_t trace, ptr_cell *old) {
  if (!t->cap || (t->len + 1) * 4 > t->cap * 3) {
    if (ptr_resize(t, t->cap ? t->cap + t->cap / 2 : PTR_MIN_CAP) != 0) {
      if (!t->cap || t->len + 1 >= t->cap) return -1; /* out of memory and full: refuse */
    }
  }
  ptr_cell *c = ptr_find(t, key);
  int existed = c->key == key;
  if (existed && old) *old = *c;
  if (!existed) t->len++;
  c->key = key;
  c->size32 = size32;
  c->trace = trace;
  return existed;
}

static inline __attribute__((always_inline)) int cell_take(ptr_table *t, uintptr_t key, ptr_cell *out) {
  if (!t->cap) return 0;
  size_t cap = t->cap, j = ptr_home(key, cap);
  while (t->slots[j].key && t->slots[j].key != key) j = ptr_next(j, cap);
  if (t->slots[j].key != key) return 0;
  if (out) *out = t->slots[j];
  /* Backward-shift deletion: no tombstones, so lookups stay short however many frees. */
  size_t hole = j;
  for (size_t k = ptr_next(j, cap); t->slots[k].key; k = ptr_next(k, cap)) {
    size_t home = ptr_home(t->slots[k].key, cap);
    /* Move k into the hole unless its home lies cyclically in (hole, k]. */
    int home_between = hole <= k ? (home > hole && home <= k) : (home > hole || home <= k);
    if (!home_between) {
      t->slots[hole] = t->slots[k];
      hole = k;
    }
  }
  memset(&t->slots[hole], 0, sizeof t->slots[hole]);
  t->len--;
  /* The live set shrank to under 1/4 of the table: halve it (back to 1/2 full). On
   * failure the table just stays as it is. */
  if (t->cap > PTR_MIN_CAP && t->len * 4 < t->cap) {
    size_t want = t->cap / 2 < PTR_MIN_CAP ? PTR_MIN_CAP : t->cap / 2;
    ptr_resize(t, want);
  }
  return 1;
}

/* The side table's uses (sizes of 4 GiB and more) and the failure paths: out of line. */
static __attribute__((noinline, cold)) int cell_put_cold(ptr_table *t, uintptr_t key, uint32_t size32, uint32_t trace) {
  return cell_put(t, key, size32, trace, NULL);
}
static __attribute__((noinline, cold)) int cell_take_cold(ptr_table *t, uintptr_t key, ptr_cell *out) {
  return cell_take(t, key, out);
}

/* The entry of cell c (already removed from t), its wide size taken out of the side table. */
static inline void take_values(ptr_table *t, uintptr_t key, const ptr_cell *c, ptr_slot *out) {
  out->key = key;
  out->trace = c->trace;
  out->size = c->size32;
  ptr_cell b;
  if (c->size32 == UINT32_MAX && t->big && cell_take_cold(t->big, key, &b)) out->size = ((uint64_t)b.trace << 32) | b.size32;
}

int ptr_put(ptr_table *t, uintptr_t key, uint32_t trace, uint64_t size, ptr_slot *old) {
  int wide = size >= UINT32_MAX;
  if (wide && !t->big) {
    t->big = counted_calloc(1, sizeof *t->big);
    if (!t->big) return -1;
  }
  ptr_cell prev;
  int existed = cell_put(t, key, wide ? UINT32_MAX : (uint32_t)size, trace, &prev);
  if (existed < 0) return -1;
  if (existed == 1) {
    ptr_slot was;
    take_values(t, key, &prev, &was); /* its wide size, if any, leaves the side table */
    if (old) *old = was;
  }
  if (wide && cell_put_cold(t->big, key, (uint32_t)size, (uint32_t)(size >> 32)) < 0) {
    ptr_cell gone;
    cell_take_cold(t, key, &gone);
    return -1;
  }
  return existed;
}

int ptr_take(ptr_table *t, uintptr_t key, ptr_slot *out) {
  ptr_cell c;
  if (!cell_take(t, key, &c)) return 0;
  ptr_slot s;
  take_values(t, key, &c, &s);
  if (out) *out = s;
  return 1;
}

void ptr_clear(ptr_table *t) {
  table_free(t->slots, t->cap, sizeof *t->slots);
  if (t->big) {
    ptr_clear(t->big);
    counted_free(t->big, sizeof *t->big);
  }
  memset(t, 0, sizeof *t);
}

/* ---- ranges ---- */

size_t range_first_after(const range_set *s, uintptr_t lo) {
  size_t a = 0, b = s->len; /* disjoint and sorted: ends ascend with starts */
  while (a < b) {
    size_t m = a + (b - a) / 2;
    if (s->items[m].end > lo) b = m;
    else a = m + 1;
  }
  return a;
}

int range_reserve(range_set *s, size_t n) {
  if (s->len + n <= s->cap) return 0;
  size_t cap = s->cap ? s->cap : 64;
  while (cap < s->len + n) cap *= 2;
  range_item *items = table_alloc(cap, sizeof *items);
  if (!items) return -1;
  if (s->len) memcpy(items, s->items, s->len * sizeof *items);
  table_free(s->items, s->cap, sizeof *items);
  s->items = items;
  s->cap = cap;
  return 0;
}

int range_insert(range_set *s, uintptr_t start, uintptr_t end) {
  if (range_reserve(s, 1) < 0) return -1;
  size_t i = range_first_after(s, start);
  memmove(&s->items[i + 1], &s->items[i], (s->len - i) * sizeof s->items[0]);
  s->items[i] = (range_item){start, end};
  s->len++;
  return 0;
}

void range_remove_at(range_set *s, size_t i) {
  memmove(&s->items[i], &s->items[i + 1], (s->len - i - 1) * sizeof s->items[0]);
  s->len--;
}

void range_clear(range_set *s) {
  table_free(s->items, s->cap, sizeof *s->items);
  memset(s, 0, sizeof *s);
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
    pair_slot *slots = counted_calloc(cap, sizeof *slots);
    if (!slots) return NULL;
    for (size_t i = 0; i < m->cap; i++) {
      if (!m->slots[i].used) continue;
      size_t j = pair_home(m->slots[i].a, m->slots[i].b, cap - 1);
      while (slots[j].used) j = (j + 1) & (cap - 1);
      slots[j] = m->slots[i];
    }
    counted_free(m->slots, m->cap * sizeof *slots);
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

size_t pair_remove_if(pair_map *m, int (*drop)(const pair_slot *, void *), void *ctx) {
  if (!m->len) return 0;
  size_t mask = m->cap - 1, start = 0, removed = 0;
  while (m->slots[start].used) start++; /* a slot free before the removals: the load is at most 1/2 */
  for (size_t i = 0; i < m->cap; i++)
    if (m->slots[i].used && drop(&m->slots[i], ctx)) m->slots[i].used = 0, removed++;
  if (!removed) return 0;
  m->len -= removed;
  /* Linear probing: put every entry back as pair_add would, cluster by cluster in probe
   * order (no cluster spans the free slot `start`). An entry lands at its home or at the
   * first free slot after it, never past where it was, and the slots it skipped belong to
   * entries already placed, which do not move again: every lookup still finds it. */
  for (size_t k = 1; k <= m->cap; k++) {
    size_t i = (start + k) & mask;
    if (!m->slots[i].used) continue;
    pair_slot s = m->slots[i];
    m->slots[i].used = 0;
    size_t j = pair_home(s.a, s.b, mask);
    while (m->slots[j].used) j = (j + 1) & mask;
    m->slots[j] = s;
  }
  return removed;
}

void pair_clear(pair_map *m) {
  counted_free(m->slots, m->cap * sizeof *m->slots);
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

uint32_t blob_find_stored(blob_map *m, const void *data, size_t len, uint64_t hash, const void **stored) {
  if (!m->cap) return 0;
  size_t mask = m->cap - 1;
  for (size_t j = hash & mask; m->slots[j].data; j = (j + 1) & mask) {
    blob_slot *s = &m->slots[j];
    if (s->hash == hash && s->len == len && memcmp(s->data, data, len) == 0) {
      *stored = s->data;
      return s->id;
    }
  }
  return 0;
}

uint32_t blob_find(blob_map *m, const void *data, size_t len, uint64_t hash) {
  const void *stored;
  return blob_find_stored(m, data, len, hash, &stored);
}

int blob_add(blob_map *m, const void *data, size_t len, uint64_t hash, uint32_t id) {
  if ((m->len + 1) * 2 > m->cap) {
    size_t cap = m->cap ? m->cap * 2 : 256;
    blob_slot *slots = counted_calloc(cap, sizeof *slots);
    if (!slots) return -1;
    for (size_t i = 0; i < m->cap; i++) {
      if (!m->slots[i].data) continue;
      size_t j = m->slots[i].hash & (cap - 1);
      while (slots[j].data) j = (j + 1) & (cap - 1);
      slots[j] = m->slots[i];
    }
    counted_free(m->slots, m->cap * sizeof *slots);
    m->slots = slots;
    m->cap = cap;
  }
  uint8_t *copy = malloc(len ? len : 1);
  if (!copy) return -1;
  tables_account((int64_t)(len ? len : 1));
  memcpy(copy, data, len);
  size_t mask = m->cap - 1, j = hash & mask;
  while (m->slots[j].data) j = (j + 1) & mask;
  m->slots[j] = (blob_slot){.hash = hash, .id = id, .len = (uint32_t)len, .data = copy};
  m->len++;
  return 0;
}

void blob_clear(blob_map *m) {
  for (size_t i = 0; i < m->cap; i++)
    if (m->slots[i].data) counted_free(m->slots[i].data, m->slots[i].len ? m->slots[i].len : 1);
  counted_free(m->slots, m->cap * sizeof *m->slots);
  memset(m, 0, sizeof *m);
}
