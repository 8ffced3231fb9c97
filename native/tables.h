/* The hook's own tables, in libc or mmap memory (never PyMem) and all used with the hook's mutex held:
 * sampled live pointers (address -> trace, size), and the interning of strings, code
 * objects, frames and traces into hpx ids. Open addressing, linear probing. */
#ifndef HEAPPROF_TABLES_H
#define HEAPPROF_TABLES_H

#include <stddef.h>
#include <stdint.h>

/* Zeroed memory for n items of size bytes, or NULL; from 2 MiB up, mapped with huge pages
 * where the system has them. Tables of this file free it themselves; other memory from it
 * goes back with table_free and the same n and size. */
void *table_alloc(size_t n, size_t size);
void table_free(void *p, size_t n, size_t size);

/* ---- sampled live pointers ----
 * 16 bytes a slot (address, size, trace); a size that does not fit 32 bits is kept whole in a
 * side table. The capacity is any multiple of 64 (not a power of two), so that it can grow by
 * half: the table is grown to 1/2 full when it passes 3/4 (21 to 32 bytes per live entry while
 * the live set grows) and halved back to 1/2 full when it falls under 1/4 (never more than 64
 * bytes per live entry), so it shrinks with the live set. */
typedef struct {
  uintptr_t key;   /* 0 = empty */
  uint32_t size32; /* UINT32_MAX: the size is in the side table */
  uint32_t trace;
} ptr_cell;

/* An entry as ptr_put / ptr_take report it. */
typedef struct {
  uintptr_t key;
  uint64_t size;
  uint32_t trace;
} ptr_slot;

typedef struct ptr_table {
  ptr_cell *slots;
  size_t cap, len;
  struct ptr_table *big; /* sizes >= UINT32_MAX: key -> (size >> 32 in trace, low bits in size32) */
} ptr_table;

/* Inserts or replaces; returns 1 if the key was already there (its old values in *old). -1 on OOM. */
int ptr_put(ptr_table *t, uintptr_t key, uint32_t trace, uint64_t size, ptr_slot *old);
/* Removes key; returns 1 and its values if it was there. */
int ptr_take(ptr_table *t, uintptr_t key, ptr_slot *out);
void ptr_clear(ptr_table *t);

/* Bytes the tables of this file hold now, and the most since tables_reset_peak (the
 * hook's own memory, apart from its block buffers and the never-freed free filters). */
void tables_memory(uint64_t *now, uint64_t *peak);
void tables_reset_peak(void);
/* Other memory of the hook, to be counted with the tables' (bytes > 0 taken, < 0 given back). */
void tables_account(int64_t bytes);

/* ---- disjoint address ranges [start, end), sorted by start ---- */
typedef struct {
  uintptr_t start, end;
} range_item;

typedef struct {
  range_item *items;
  size_t len, cap;
} range_set;

/* Index of the first range that ends after lo (len if none); it overlaps [lo, hi) if its
 * start is below hi. */
size_t range_first_after(const range_set *s, uintptr_t lo);
/* Room for n more ranges, so that the next n range_insert calls cannot fail; -1 on OOM. */
int range_reserve(range_set *s, size_t n);
/* Inserts [start, end), which must overlap no range of s; -1 on OOM. */
int range_insert(range_set *s, uintptr_t start, uintptr_t end);
void range_remove_at(range_set *s, size_t i);
void range_clear(range_set *s);

/* ---- (u64, u64) -> (u32, u32) exact-key map, for code objects and frames ---- */
typedef struct {
  uint64_t a, b;
  uint32_t v1, v2, v3;
  int used;
} pair_slot;

typedef struct {
  pair_slot *slots;
  size_t cap, len;
} pair_map;

pair_slot *pair_find(pair_map *m, uint64_t a, uint64_t b);
/* Returns the new slot (values zeroed) or NULL on OOM. The key must not be present. */
pair_slot *pair_add(pair_map *m, uint64_t a, uint64_t b);
void pair_clear(pair_map *m);
/* Removes every entry for which drop(slot, ctx) is nonzero, in place (no allocation, so it
 * cannot fail); drop may look up other maps. Returns how many went. */
size_t pair_remove_if(pair_map *m, int (*drop)(const pair_slot *, void *), void *ctx);

/* ---- byte strings and u32 sequences -> id ---- */
typedef struct {
  uint64_t hash;
  uint32_t id;
  uint32_t len;   /* bytes */
  uint8_t *data;  /* own copy (libc) */
} blob_slot;

typedef struct {
  blob_slot *slots;
  size_t cap, len;
} blob_map;

uint64_t blob_hash(const void *data, size_t len);
/* Id of data, or 0 if absent. */
uint32_t blob_find(blob_map *m, const void *data, size_t len, uint64_t hash);
/* The same, and where found, *stored = the map's own copy of data (valid until blob_clear). */
uint32_t blob_find_stored(blob_map *m, const void *data, size_t len, uint64_t hash, const void **stored);
/* Adds data with id; returns 0, or -1 on OOM. */
int blob_add(blob_map *m, const void *data, size_t len, uint64_t hash, uint32_t id);
void blob_clear(blob_map *m);

#endif
