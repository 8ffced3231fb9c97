/* Native allocations (hp-record --native): heapprof_hook.so defines malloc, calloc,
 * realloc, reallocarray, free, posix_memalign, aligned_alloc, memalign, valloc, pvalloc
 * and mmap, mmap64, munmap, mremap. When the library is LD_PRELOADed (hp-record puts it
 * first in LD_PRELOAD of the Python process only) these are the process's allocator
 * entry points and forward to the next definition (libc's, or a malloc preloaded after
 * ours) through dlsym(RTLD_NEXT); loaded later with ctypes, as heapprof.start() does,
 * nothing calls them and the hook only sees CPython's PEP 445 domains (hp_native_status
 * says which). Until a recording with native on starts, each is one load and a call.
 *
 * Included by hook.c (not compiled alone): the fast path shares the wrappers' per-thread
 * state (busy flag, countdowns) without a call.
 *
 * Counted once: the PEP 445 wrappers set the thread's busy flag around the allocator
 * below them (with native on, the tail-call path that skips the flag is turned off), so
 * the malloc that pymalloc or PyMem_RawMalloc ends in passes straight through here.
 * A block is recognised by address whatever path frees it (the pointer table is shared),
 * and its free names the trace, hence the domain, of its allocation.
 *
 * Bootstrap: dlsym itself may call calloc (for its error buffer) before the real one is
 * known; while this thread resolves, requests are served from a static arena whose
 * blocks are never freed (free and realloc recognise them by address). */

#include <dlfcn.h>
#include <link.h>
#include <unwind.h>
#include <malloc.h>
#include <sys/mman.h>
#include <sys/syscall.h>

void *hpn_mmap(void *a, size_t l, int prot, int flags, int fd, off_t off) __asm__("mmap");
static void *(*real_malloc)(size_t);
static void *(*real_calloc)(size_t, size_t);
static void *(*real_realloc)(void *, size_t);
static void (*real_free)(void *);
static int (*real_posix_memalign)(void **, size_t, size_t);
static void *(*real_aligned_alloc)(size_t, size_t);
static void *(*real_memalign)(size_t, size_t);
static void *(*real_valloc)(size_t);
static void *(*real_pvalloc)(size_t);
static void *(*real_mmap)(void *, size_t, int, int, int, off_t);
static int (*real_munmap)(void *, size_t);
static void *(*real_mremap)(void *, size_t, size_t, int, ...);

/* ---- bootstrap arena: 16-byte header holding the size, never freed */
#define ARENA_BYTES (256 * 1024)
static _Alignas(16) uint8_t g_arena[ARENA_BYTES];
static size_t g_arena_used;
static __thread int t_resolving __attribute__((tls_model("initial-exec")));

NO_SAN static int in_arena(const void *p) { return (const uint8_t *)p >= g_arena && (const uint8_t *)p < g_arena + ARENA_BYTES; }

NO_SAN static void *arena_alloc(size_t n) {
  size_t need = ((n + 15) & ~(size_t)15) + 16;
  size_t at = __atomic_fetch_add(&g_arena_used, need, __ATOMIC_RELAXED);
  if (n > ARENA_BYTES || at + need > ARENA_BYTES) return NULL;
  memcpy(g_arena + at, &n, sizeof n);
  return g_arena + at + 16; /* static storage: already zero */
}

NO_SAN static size_t arena_size(const void *p) {
  size_t n;
  memcpy(&n, (const uint8_t *)p - 16, sizeof n);
  return n;
}

/* Whether f is defined in this library. (Our own names read through the GOT give
 * libc's definitions when the library was dlopened rather than preloaded, so the
 * comparison is by object.) dladdr does not allocate. */
NO_SAN static int is_ours(void *f) {
  static Dl_info self;
  if (!self.dli_fbase && !dladdr((void *)&in_arena, &self)) return 0;
  Dl_info info;
  return f && dladdr(f, &info) && info.dli_fbase == self.dli_fbase;
}

/* The dynamic symbol dladdr finds for address f, or NULL. Takes the loader's lock. */
NO_SAN static const ElfW(Sym) *symbol_at(void *f) {
  Dl_info info;
  const ElfW(Sym) *sym = NULL;
  return dladdr1(f, &info, (void **)&sym, RTLD_DL_SYMENT) ? sym : NULL;
}

/* Whether f is a function's code rather than a non-PIE executable's PLT entry for it. Such
 * an executable (Debian's /usr/bin/python3.11, libpython linked in) calls malloc through a
 * "canonical" PLT entry whose undefined symbol still has a value, and dlsym(RTLD_DEFAULT)
 * returns that entry: it jumps back to our malloc, which would call it again forever. */
NO_SAN static int is_definition(void *f) {
  const ElfW(Sym) *sym = symbol_at(f);
  return !sym || sym->st_shndx != SHN_UNDEF;
}

/* The allocator below ours: the process's own definition when ours is not it (loaded with
 * dlopen, or another malloc preloaded ahead: e.g. AddressSanitizer's), else the next one
 * after this library (preloaded: libc's, or a malloc preloaded after ours). */
NO_SAN static void *next_symbol(const char *name) {
  void *f = dlsym(RTLD_DEFAULT, name);
  if (f && !is_ours(f) && is_definition(f)) return f;
  f = dlsym(RTLD_NEXT, name);
  return is_ours(f) ? NULL : f;
}

/* Resolves every forwarded function, once per process (racing threads store the same
 * values). Returns 0 when this thread is already resolving (serve it from the arena). */
NO_SAN __attribute__((noinline, cold)) static int resolve_real(void) {
  if (t_resolving) return 0;
  t_resolving = 1;
#define RESOLVE(v, name) STORE(v, (__typeof__(v))next_symbol(name))
  RESOLVE(real_calloc, "calloc");
  RESOLVE(real_malloc, "malloc");
  RESOLVE(real_realloc, "realloc");
  RESOLVE(real_free, "free");
  RESOLVE(real_posix_memalign, "posix_memalign");
  RESOLVE(real_aligned_alloc, "aligned_alloc");
  RESOLVE(real_memalign, "memalign");
  RESOLVE(real_valloc, "valloc");
  RESOLVE(real_pvalloc, "pvalloc");
  RESOLVE(real_mmap, "mmap");
  RESOLVE(real_munmap, "munmap");
  RESOLVE(real_mremap, "mremap");
#undef RESOLVE
  t_resolving = 0;
  if (!real_malloc || !real_calloc || !real_realloc || !real_free || !real_mmap || !real_munmap) {
    static const char msg[] = "heapprof: cannot find the C allocator below heapprof_hook.so (dlsym failed)\n";
    ssize_t ignored = write(2, msg, sizeof msg - 1);
    (void)ignored;
    abort(); /* no allocator to forward to: nothing can work */
  }
  return 1;
}

#define READY(fn) (__builtin_expect(LOAD(fn) != NULL, 1) || resolve_real())

/* The hook's own memory (realmem.h): below the interposer, never recorded. */
NO_SAN void *hpn_real_malloc(size_t n) { return READY(real_malloc) ? real_malloc(n) : arena_alloc(n); }
NO_SAN void *hpn_real_calloc(size_t n, size_t s) {
  size_t total;
  if (__builtin_mul_overflow(n, s, &total)) return NULL;
  return READY(real_calloc) ? real_calloc(n, s) : arena_alloc(total);
}
NO_SAN void *hpn_real_realloc(void *p, size_t n) { return READY(real_realloc) ? real_realloc(p, n) : NULL; }
NO_SAN void hpn_real_free(void *p) {
  if (p && !in_arena(p) && READY(real_free)) real_free(p);
}
NO_SAN void *hpn_real_mmap(void *a, size_t l, int p, int f, int d, off_t o) {
  return READY(real_mmap) ? real_mmap(a, l, p, f, d, o) : MAP_FAILED;
}
NO_SAN int hpn_real_munmap(void *a, size_t l) { return READY(real_munmap) ? real_munmap(a, l) : -1; }

/* ---- recording */

/* Whether this call should be looked at: native on, this thread not inside the hook,
 * its sampler seeded for this recording (gate_slow seeds it). */
NO_SAN static inline int native_gate(void) {
  return __builtin_expect(LOAD(g_native), 0) && (gate_open() || gate_slow());
}

/* A block came back from the allocator below, busy set: count it, maybe record it. */
static inline void native_alloc(int domain, void *p, size_t size, void *pc) {
  unsigned k;
  if (count_alloc(HP_DOMAIN_RAW, size, &k)) return; /* any thread: atomic counts */
  if (sample_slow(size, k)) record_event(p, size, domain, pc);
}

#define RET_ADDR() __builtin_extract_return_addr(__builtin_return_address(0))

NO_SAN EXPORT void *malloc(size_t n) {
  if (!READY(real_malloc)) return arena_alloc(n);
  if (!native_gate()) return real_malloc(n);
  void *pc = RET_ADDR();
  t_hp.busy = 1;
  void *p = real_malloc(n);
  if (p) native_alloc(DOMAIN_NATIVE, p, n, pc);
  t_hp.busy = 0;
  return p;
}

NO_SAN EXPORT void *calloc(size_t n, size_t s) {
  if (!READY(real_calloc)) {
    size_t total;
    return __builtin_mul_overflow(n, s, &total) ? NULL : arena_alloc(total);
  }
  if (!native_gate()) return real_calloc(n, s);
  void *pc = RET_ADDR();
  t_hp.busy = 1;
  void *p = real_calloc(n, s);
  size_t total;
  if (p && !__builtin_mul_overflow(n, s, &total)) native_alloc(DOMAIN_NATIVE, p, total, pc);
  t_hp.busy = 0;
  return p;
}

/* free(old) + a fresh decision on the new block, as for the Python domains. */
NO_SAN static void *native_realloc(void *p, size_t n, void *pc) {
  if (p && in_arena(p)) {
    /* A bootstrap block: move it to real memory; the arena copy is never reused. */
    void *q = hpn_real_malloc(n ? n : 1);
    size_t old = arena_size(p);
    if (q) memcpy(q, p, old < n ? old : n);
    return q;
  }
  if (!READY(real_realloc)) return NULL;
  if (!native_gate()) {
    if (p && maybe_sampled(p)) free_sampled(p); /* recorded, then resized outside a recording window */
    return real_realloc(p, n);
  }
  t_hp.busy = 1;
  ptr_slot old = {0}; /* read only if had */
  int had = p && maybe_sampled(p) ? take_sampled(p, &old) : 0;
  void *q = real_realloc(p, n);
  if (!q && had && n) restore_sampled(p, &old);
  if (q) native_alloc(DOMAIN_NATIVE, q, n, pc);
  t_hp.busy = 0;
  return q;
}

NO_SAN EXPORT void *realloc(void *p, size_t n) { return native_realloc(p, n, RET_ADDR()); }

NO_SAN EXPORT void *reallocarray(void *p, size_t n, size_t s) {
  size_t total;
  if (__builtin_mul_overflow(n, s, &total)) {
    errno = ENOMEM;
    return NULL;
  }
  return native_realloc(p, total, RET_ADDR());
}

NO_SAN EXPORT void free(void *p) {
  if (__builtin_expect(maybe_sampled(p), 0)) free_sampled(p);
  if (__builtin_expect(in_arena(p), 0)) return;
  if (READY(real_free)) real_free(p);
}

/* The aligned family: each forwards to its own next definition (glibc's do not go
 * through malloc), then records like malloc. */
#define ALIGNED(CALL, SIZE)                                                                  \
  if (!native_gate()) return CALL;                                                           \
  void *pc = RET_ADDR();                                                                     \
  t_hp.busy = 1;                                                                             \
  void *p = CALL;                                                                            \
  if (p) native_alloc(DOMAIN_NATIVE, p, SIZE, pc);                                           \
  t_hp.busy = 0;                                                                             \
  return p;

NO_SAN EXPORT void *aligned_alloc(size_t a, size_t n) {
  if (!READY(real_aligned_alloc)) return NULL;
  ALIGNED(real_aligned_alloc(a, n), n)
}
NO_SAN EXPORT void *memalign(size_t a, size_t n) {
  if (!READY(real_memalign)) return NULL;
  ALIGNED(real_memalign(a, n), n)
}
NO_SAN EXPORT void *valloc(size_t n) {
  if (!READY(real_valloc)) return NULL;
  ALIGNED(real_valloc(n), n)
}
NO_SAN EXPORT void *pvalloc(size_t n) {
  if (!READY(real_pvalloc)) return NULL;
  ALIGNED(real_pvalloc(n), n)
}

NO_SAN EXPORT int posix_memalign(void **out, size_t a, size_t n) {
  if (!READY(real_posix_memalign)) return ENOMEM;
  if (!native_gate()) return real_posix_memalign(out, a, n);
  void *pc = RET_ADDR();
  t_hp.busy = 1;
  int rc = real_posix_memalign(out, a, n);
  if (rc == 0 && *out) native_alloc(DOMAIN_NATIVE, *out, n, pc);
  t_hp.busy = 0;
  return rc;
}

/* Anonymous mappings made by libraries themselves (glibc's malloc maps its big blocks
 * internally, without these entry points, so they are counted once, as malloc). An unmap of
 * any part of a recorded mapping (munmap, the old range of mremap, a MAP_FIXED mapping over
 * it) frees the mapping and keeps what is left of it (maps_unmapped in hook.c); mremap is
 * that, then a fresh decision on the new mapping.
 *
 * Where a call may touch a recorded mapping, it is made holding g_mu (busy set, so nothing
 * it might allocate re-enters the hook), and the tables change only if it succeeds: no other
 * thread can be given the freed range and record it before its unmap is logged, and a failed
 * call changes nothing. A call that touches none (the test, under the lock, is a binary
 * search) runs unlocked; with no recorded mapping at all, the only cost is one load. */
#ifndef MREMAP_DONTUNMAP
#define MREMAP_DONTUNMAP 4
#endif

static inline uintptr_t page_end(uintptr_t a, size_t l) {
  uintptr_t page = (uintptr_t)getpagesize();
  return l > UINTPTR_MAX - a - page ? UINTPTR_MAX : (a + l + page - 1) & ~(page - 1);
}

/* Whether a call that unmaps [lo1, hi1) and [lo2, hi2) must go through the sampled path:
 * if so, returns 1 with g_mu held and busy set. */
NO_SAN static int maps_lock_if_touched(uintptr_t lo1, uintptr_t hi1, uintptr_t lo2, uintptr_t hi2) {
  if (__builtin_expect(!LOAD(g_maps_live), 1) || t_hp.busy) return 0;
  t_hp.busy = 1;
  mu_lock();
  if (g_active && ((lo1 < hi1 && maps_touch(lo1, hi1)) || (lo2 < hi2 && maps_touch(lo2, hi2)))) return 1;
  mu_unlock();
  t_hp.busy = 0;
  return 0;
}

static void maps_unlock(void) {
  int saved = errno; /* the call's errno, whatever the unlock's futex did to it */
  mu_unlock();
  t_hp.busy = 0;
  errno = saved;
}

/* An anonymous mapping is an allocation of its length, except a PROT_NONE one: that reserves
 * address space (a runtime's arena, a guard region) and holds no memory until a part of it is
 * mapped again with access (MAP_FIXED, counted then). MAP_FIXED PROT_NONE over counted pages
 * frees them. Pages made accessible with mprotect are not seen (hp-record(1), --native). */
NO_SAN static void *native_mmap(void *a, size_t l, int prot, int flags, int fd, off_t off, void *pc) {
  if (!READY(real_mmap)) return MAP_FAILED;
  void *p;
  if ((flags & MAP_FIXED) && maps_lock_if_touched((uintptr_t)a, page_end((uintptr_t)a, l), 0, 0)) {
    p = real_mmap(a, l, prot, flags, fd, off);
    if (p != MAP_FAILED) maps_unmapped((uintptr_t)a, page_end((uintptr_t)a, l)); /* replaced */
    maps_unlock();
    if (p == MAP_FAILED || !(flags & MAP_ANONYMOUS) || prot == PROT_NONE || !native_gate()) return p;
    t_hp.busy = 1;
  } else {
    if (!(flags & MAP_ANONYMOUS) || prot == PROT_NONE || !native_gate()) return real_mmap(a, l, prot, flags, fd, off);
    t_hp.busy = 1;
    p = real_mmap(a, l, prot, flags, fd, off);
  }
  if (p != MAP_FAILED) native_alloc(DOMAIN_MMAP, p, l, pc);
  t_hp.busy = 0;
  return p;
}

/* Both names, whatever _FILE_OFFSET_BITS makes of "mmap" here (node-gyp sets 64, which
 * renames mmap to mmap64 in the headers); on LP64 they are the same function. */
NO_SAN EXPORT void *hpn_mmap(void *a, size_t l, int prot, int flags, int fd, off_t off) {
  return native_mmap(a, l, prot, flags, fd, off, RET_ADDR());
}
EXPORT void *hpn_mmap64(void *a, size_t l, int prot, int flags, int fd, off_t off) __asm__("mmap64");
NO_SAN EXPORT void *hpn_mmap64(void *a, size_t l, int prot, int flags, int fd, off_t off) {
  return native_mmap(a, l, prot, flags, fd, off, RET_ADDR());
}

NO_SAN EXPORT int munmap(void *a, size_t l) {
  if (!READY(real_munmap)) return -1;
  uintptr_t lo = (uintptr_t)a, hi = page_end(lo, l);
  if (__builtin_expect(!maps_lock_if_touched(lo, hi, 0, 0), 1)) return real_munmap(a, l);
  int rc = real_munmap(a, l);
  if (rc == 0) maps_unmapped(lo, hi);
  maps_unlock();
  return rc;
}

/* Hex or decimal digits at *p, advancing it. */
static uintptr_t parse_num(const char **p, const char *end, int base) {
  uintptr_t v = 0;
  for (; *p < end; (*p)++) {
    char c = **p;
    int d = c >= '0' && c <= '9' ? c - '0' : base == 16 && c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    if (d < 0) break;
    v = v * (uintptr_t)base + (uintptr_t)d;
  }
  return v;
}

/* One line of /proc/self/maps, "lo-hi perms offset dev inode   path": -2 when the mapping
 * does not hold `at`, else whether it is one that native_mmap counts (anonymous, private or
 * shared, which the kernel names "/dev/zero (deleted)", and not PROT_NONE). */
static int maps_line_counts(const char *p, const char *end, uintptr_t at) {
  uintptr_t lo = parse_num(&p, end, 16);
  if (p >= end || *p++ != '-') return -2;
  uintptr_t hi = parse_num(&p, end, 16);
  if (at < lo || at >= hi) return -2;
  if (end - p < 6 || *p != ' ') return -1;
  int none = p[1] == '-' && p[2] == '-' && p[3] == '-';
  p += 6; /* " rwxp " */
  for (int field = 0; field < 2; field++) { /* offset, dev */
    while (p < end && *p != ' ') p++;
    while (p < end && *p == ' ') p++;
  }
  uintptr_t inode = parse_num(&p, end, 10);
  while (p < end && *p == ' ') p++;
  static const char shared_anon[] = "/dev/zero (deleted)";
  int anon = inode == 0 ? (p == end || *p == '[') : ((size_t)(end - p) == sizeof shared_anon - 1 && memcmp(p, shared_anon, sizeof shared_anon - 1) == 0);
  return anon && !none;
}

/* Whether the mapping holding `at` is one native_mmap would have counted: 1 or 0, -1 when
 * /proc cannot tell. Plain system calls and a stack buffer: nothing allocated. mremap needs
 * it because it moves or resizes any mapping, file-backed ones included (Python's
 * mmap.resize of a file), which are no more memory after the call than before. */
NO_SAN static int mapping_counts(uintptr_t at) {
  int saved = errno;
  int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    errno = saved;
    return -1;
  }
  char buf[6144]; /* a line is at most a path (PATH_MAX) and ~100 bytes more */
  size_t have = 0;
  int res = -1;
  for (;;) {
    ssize_t r = read(fd, buf + have, sizeof buf - have);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    have += (size_t)r;
    size_t start = 0;
    const char *nl;
    while ((nl = memchr(buf + start, '\n', have - start)) != NULL) {
      int line = maps_line_counts(buf + start, nl, at);
      if (line != -2) {
        res = line;
        goto done;
      }
      start = (size_t)(nl - buf) + 1;
    }
    if (start == 0 && have == sizeof buf) break; /* a line longer than any can be */
    memmove(buf, buf + start, have - start);
    have -= start;
  }
done:
  close(fd);
  errno = saved;
  return res;
}

NO_SAN EXPORT void *mremap(void *old, size_t old_len, size_t new_len, int flags, ...) {
  void *fixed = NULL;
  if (flags & MREMAP_FIXED) {
    va_list ap;
    va_start(ap, flags);
    fixed = va_arg(ap, void *);
    va_end(ap);
  }
  if (!READY(real_mremap)) return MAP_FAILED;
  /* What the call unmaps: the old range (unless it stays, MREMAP_DONTUNMAP, or the call
   * duplicates a shared mapping, old_len 0), and with MREMAP_FIXED what was at the target. */
  uintptr_t lo = (uintptr_t)old, hi = old_len && !(flags & MREMAP_DONTUNMAP) ? page_end(lo, old_len) : lo;
  uintptr_t flo = (uintptr_t)fixed, fhi = (flags & MREMAP_FIXED) ? page_end(flo, new_len) : flo;
  void *p;
  if (maps_lock_if_touched(lo, hi, flo, fhi)) {
    p = real_mremap(old, old_len, new_len, flags, fixed);
    if (p != MAP_FAILED) {
      if (lo < hi) maps_unmapped(lo, hi);
      if (flo < fhi) maps_unmapped(flo, fhi);
    }
    maps_unlock();
  } else {
    p = real_mremap(old, old_len, new_len, flags, fixed);
  }
  if (p == MAP_FAILED || !native_gate()) return p;
  void *pc = RET_ADDR();
  t_hp.busy = 1;
  /* A file mapping, or a reservation without access, is no allocation here either. */
  if (mapping_counts((uintptr_t)p) != 0) native_alloc(DOMAIN_MMAP, p, new_len, pc);
  t_hp.busy = 0;
  return p;
}

/* Where a PLT entry jumps: `jmp *slot(%rip)`, after an endbr64 and a bnd prefix where the
 * executable was built with them; NULL for other code. The slot holds the resolved function
 * (the executable called malloc long before a recording starts). */
static void *plt_target(void *f) {
  const uint8_t *p = f;
  static const uint8_t endbr64[4] = {0xf3, 0x0f, 0x1e, 0xfa};
  if (memcmp(p, endbr64, 4) == 0) p += 4;
  if (p[0] == 0xf2) p++; /* bnd */
  if (p[0] != 0xff || p[1] != 0x25) return NULL;
  int32_t disp;
  memcpy(&disp, p + 2, sizeof disp);
  void *target;
  memcpy(&target, p + 6 + disp, sizeof target);
  return target;
}

/* 1 when this library's malloc is the one the process calls (it was preloaded, ahead of
 * any other malloc), else 0 with why in why[]. */
static int interposer_in_place(char *why, size_t cap) {
  void *global = dlsym(RTLD_DEFAULT, "malloc");
  /* A non-PIE executable's PLT entry: what the process calls is where it jumps. */
  if (global && !is_definition(global)) {
    void *target = plt_target(global);
    if (target) global = target;
  }
  if (is_ours(global)) return 1;
  Dl_info info;
  if (global && dladdr(global, &info) && info.dli_fname && !strstr(info.dli_fname, "libc.so"))
    snprintf(why, cap, "malloc is provided by %s ahead of heapprof_hook.so (preload heapprof first)", info.dli_fname);
  else
    snprintf(why, cap, "heapprof_hook.so is not preloaded (use hp-record --native; heapprof.start() inside a running program cannot see C allocations)");
  return 0;
}

/* --native-stacks: the native frames of a sampled native allocation, unwound with the
 * compiler runtime's unwinder (libgcc's _Unwind_Backtrace, driven by the .eh_frame tables
 * every x86-64 object carries), because neither CPython nor the wheels people use are built
 * with frame pointers, and libunwind would be one more library to preload. It does not
 * allocate, and with glibc 2.35+ it finds an object's tables with _dl_find_object, without
 * the loader's lock. Frames are kept from the allocator's caller (pc, the return address of
 * our wrapper: the frames inside the hook are skipped) up to the innermost interpreter
 * frame, _PyEval_EvalFrameDefault, where the thread's Python frames take over; at most
 * MAX_NATIVE. A thread without Python frames (a BLAS worker; a call that released the GIL on
 * 3.9/3.10) keeps all of its frames, interpreter ones included. */
static uintptr_t g_eval_lo, g_eval_hi; /* _PyEval_EvalFrameDefault's code, or 0..0 */

struct unwind_walk {
  void **pcs;
  void *start;
  int n, started, cut; /* cut: stop at the interpreter frame (Python frames follow) */
};

static _Unwind_Reason_Code unwind_frame(struct _Unwind_Context *ctx, void *arg) {
  struct unwind_walk *w = arg;
  uintptr_t ip = _Unwind_GetIP(ctx);
  if (!ip) return _URC_END_OF_STACK;
  if (!w->started) {
    if ((void *)ip != w->start) return _URC_NO_REASON; /* a frame of the hook itself */
    w->started = 1;
  }
  if (w->cut && ip >= g_eval_lo && ip < g_eval_hi) return _URC_END_OF_STACK; /* Python frames follow */
  w->pcs[w->n++] = (void *)ip;
  return w->n < MAX_NATIVE ? _URC_NO_REASON : _URC_END_OF_STACK;
}

/* The native frames from pc outwards into pcs (at least pc itself); returns their count.
 * python: the thread's Python frames were walked, so the C frames end at the interpreter's;
 * without them (no GIL on 3.9/3.10, a thread of a C library) every frame is kept. */
static int native_stack(void *pc, void **pcs, int python) {
  struct unwind_walk w = {pcs, pc, 0, 0, python};
  _Unwind_Backtrace(unwind_frame, &w);
  if (!w.started) { /* the caller's frame was not found: it alone */
    pcs[0] = pc;
    return 1;
  }
  return w.n;
}

/* Finds the interpreter frame's code range and primes the unwinder (its first use may load
 * what it needs). Called by hp_start before it takes g_mu (the loader's lock), busy set. */
static void native_stacks_init(void) {
  static int done; /* once per process: the interpreter's code does not move, and a recording may be under way */
  if (LOAD(done)) return;
  void *eval = dlsym(RTLD_DEFAULT, "_PyEval_EvalFrameDefault");
  const ElfW(Sym) *sym = eval ? symbol_at(eval) : NULL;
  if (sym && sym->st_size) {
    g_eval_lo = (uintptr_t)eval;
    g_eval_hi = (uintptr_t)eval + sym->st_size;
  } else {
    g_eval_lo = g_eval_hi = 0; /* no cut: every frame, up to MAX_NATIVE */
  }
  void *pcs[MAX_NATIVE];
  native_stack(RET_ADDR(), pcs, 1);
  STORE(done, 1);
}

/* The native frame that called the allocator: shared object and symbol (dladdr; the
 * offset in the object when it has no dynamic symbol there). Called WITHOUT g_mu: dladdr
 * takes the loader's lock, which a thread in dlopen holds while it allocates. busy set. */
static void describe_pc(void *pc, char *func, size_t func_cap, char *obj, size_t obj_cap) {
  Dl_info info;
  memset(&info, 0, sizeof info);
  if (!pc || !dladdr(pc, &info) || !info.dli_fname) {
    snprintf(func, func_cap, "%p", pc);
    snprintf(obj, obj_cap, "[unknown]");
    return;
  }
  snprintf(obj, obj_cap, "%s", info.dli_fname[0] ? info.dli_fname : "[executable]");
  if (info.dli_sname && info.dli_sname[0])
    snprintf(func, func_cap, "%s", info.dli_sname);
  else
    snprintf(func, func_cap, "0x%lx", (unsigned long)((uintptr_t)pc - (uintptr_t)info.dli_fbase));
}

