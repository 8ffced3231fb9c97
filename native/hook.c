/* heapprof's allocator hook: wraps CPython's RAW, MEM and OBJ allocator domains
 * (PEP 445), samples allocations, captures the Python stack of each sampled one, logs
 * the frees of sampled pointers, and writes hpx v2 (man/hpx.5) through block buffers.
 * Controlled from Python through ctypes (python/heapprof/_native.py); the hp_* functions
 * at the end are the whole interface.
 *
 * Rules inside an allocator call (reference/stack-capture.md):
 *  - no Python code, no GC, never take the GIL: a stack is walked only when this thread
 *    already holds the GIL, otherwise the event goes under trace 0 ("no Python stack");
 *  - no recursive recording: a thread-local busy flag passes nested calls straight through;
 *  - internal memory comes from libc or mmap, never PyMem;
 *  - g_mu guards the tables and buffers only; it is never held while waiting for the GIL
 *    or calling anything that could (the few CPython calls under it neither block nor allocate). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <stddef.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <linux/futex.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "hpxw.h"
#include "pyrt.h"
#include "tables.h"

#define EXPORT __attribute__((visibility("default")))
#define RECORDER_NAME "heapprof 2.0.0"
#define MAX_DEPTH 128
/* Native frames of one sampled native allocation with --native-stacks (above the innermost
 * interpreter frame); deeper ones are cut. */
#define MAX_NATIVE 64
#define FLUSH_BYTES (256 * 1024) /* a block is written when its payload passes this */
#define MAX_RANGES 64
#define HIST_BUCKETS 64

enum { MODE_PROFILE = 0, MODE_STATS = 1 };
enum { SAMPLER_TABLE = 0, SAMPLER_POISSON = 1 };
enum { FLAG_FOLLOW_FORK = 1, FLAG_OVERWRITE = 2, FLAG_NO_STACKS = 4, FLAG_NATIVE = 8, FLAG_NATIVE_STACKS = 16 };
/* Where an allocation came from (TRACE_INFO records, man/hpx.5). */
enum { DOMAIN_PYTHON = 0, DOMAIN_NATIVE = 1, DOMAIN_MMAP = 2 };
enum { EV_ALLOC = 0, EV_FREE = 1, EV_EXT = 3 };
enum { EXT_RSS = 0, EXT_END = 1, EXT_LOST = 2, EXT_MARK = 3 };
enum { REC_STRING = 1, REC_FRAME = 2, REC_TRACE = 3, REC_HISTOGRAM = 4, REC_END = 5, REC_THREAD = 6, REC_TRACE_INFO = 7, REC_MARK = 8 };
/* Header tags of native recording (man/hpx.5). */
enum { TAG_NATIVE = 13, TAG_THREADS = 14 };
/* g_frames key of a native frame: (pc, NATIVE_FRAME_KEY); Python lines are below 2^32. */
#define NATIVE_FRAME_KEY ((uint64_t)1 << 40)

/* The allocator entry points of interpose.c and what they call before a recording starts
 * run before a sanitizer runtime preloaded after the hook has set up (native/tools/asan.sh):
 * not instrumented. Nothing in a normal build. */
#if defined(__SANITIZE_ADDRESS__)
#define NO_SAN __attribute__((no_sanitize_address, no_sanitize("undefined")))
#else
#define NO_SAN
#endif

#define LOAD(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)
#define STORE(x, v) __atomic_store_n(&(x), (v), __ATOMIC_RELAXED)
#define ADD(x, v) __atomic_fetch_add(&(x), (v), __ATOMIC_RELAXED)

/* ---------------------------------------------------------------- state */

static hp_allocator g_orig[3];
static int g_inited, g_installed, g_minor = -1;
static char g_err[512];

/* The hook's one lock (a futex mutex, Drepper's "Futexes Are Tricky", mutex 2): 0 free, 1
 * held, 2 held with waiters. Taken and released inline with one atomic instruction each
 * when nobody waits: every sampled allocation and every sampled free take it once, and
 * in an allocation-heavy program the cold path through pthread_mutex_lock/unlock (a PLT
 * call, ~30 instructions each way, their code out of cache between samples) was a
 * measurable part of a sampled event. A waiter sleeps in the kernel (never spins), as
 * with the pthread mutex it replaces. Not recursive, like that one. */
static uint32_t g_mu;

__attribute__((noinline, cold)) static void mu_lock_slow(void) {
  int saved = errno; /* inside allocator calls: errno is the program's */
  uint32_t c = __atomic_exchange_n(&g_mu, 2, __ATOMIC_ACQUIRE);
  while (c != 0) {
    syscall(SYS_futex, &g_mu, FUTEX_WAIT_PRIVATE, 2, NULL, NULL, 0); /* EAGAIN, EINTR: look again */
    c = __atomic_exchange_n(&g_mu, 2, __ATOMIC_ACQUIRE);
  }
  errno = saved;
}

__attribute__((noinline, cold)) static void mu_unlock_slow(void) {
  int saved = errno;
  __atomic_store_n(&g_mu, 0, __ATOMIC_RELEASE);
  syscall(SYS_futex, &g_mu, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
  errno = saved;
}

static inline void mu_lock(void) {
  uint32_t c = 0;
  if (__builtin_expect(!__atomic_compare_exchange_n(&g_mu, &c, 1, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED), 0)) mu_lock_slow();
}

static inline void mu_unlock(void) {
  if (__builtin_expect(__atomic_fetch_sub(&g_mu, 1, __ATOMIC_RELEASE) != 1, 0)) mu_unlock_slow();
}
static int g_active;   /* recording; read without the lock on the fast path */
static int g_capture;  /* stack capture on */
static int g_mode;
static int g_flags;
/* A followed fork child opens its files at its first sampled event (or at stop), so that
 * a child that only execs (subprocess) leaves no empty profile behind. */
static int g_child_pending;
static uint32_t g_epoch = 1; /* bumped per recording and per followed fork: threads reseed */

/* Sampler, fixed while recording. */
static int g_sampler;
static int g_nranges;
static uint64_t g_bounds[MAX_RANGES];
static double g_probs[MAX_RANGES];
static uint64_t g_thresholds[MAX_RANGES]; /* p * 2^64 */
static double g_inv_probs[MAX_RANGES + 1];  /* 1 / p, 0 for p = 0; [g_nranges] = 1 (always sampled) */
static double g_mean_bytes;
/* Each thread counts down to its next sample instead of drawing a random number per
 * allocation: a Bernoulli(p) stream is exactly a stream of Geometric(p) gaps, and
 * byte-Poisson is a countdown in bytes. Every size bucket has a countdown slot, planned at
 * start, so that the fast path is one decrement:
 *   SLOT_ALWAYS  p = 1, the countdown stays 1 (byte-Poisson: the byte countdown)
 *   SLOT_NEVER   p = 0 or stats mode, the countdown stays 2^62
 *   SLOT_EACH    stays 1; decided per allocation (a bucket straddling a bound, or a range
 *                past the last slot, which draws a random number)
 *   3..          one per range with 0 < p < 1, in range order */
#define N_SLOTS 10
enum { SLOT_ALWAYS = 0, SLOT_NEVER = 1, SLOT_EACH = 2, SLOT_FIRST_RANGE = 3 };
static uint8_t g_bucket_slot[HIST_BUCKETS];
/* The range of every size in a power-of-two bucket, or BUCKET_SPLIT when a bound splits
 * it: byte_weight's range without range_of's walk over the bounds at every event. */
#define BUCKET_SPLIT 0xFF
static uint8_t g_bucket_range[HIST_BUCKETS];
/* byte-Poisson's weights by size (g_mu held), emptied by plan_slots: a free nearly always
 * repeats the size of a recent allocation, and expm1 through libm was ~45 instructions an
 * event. The same value as computed afresh. size 0: empty (its weight is not cached). */
#define POISSON_WEIGHTS 64
static struct {
  uint64_t size;
  double weight;
} g_poisson_weights[POISSON_WEIGHTS];
static uint8_t g_range_slot[MAX_RANGES + 1];
static double g_slot_log1mp[N_SLOTS]; /* log(1 - p) of a range slot's range */
static int g_count_bytes;             /* byte-Poisson: slot 0 counts bytes */

/* Header material kept for followed forks. */
static char g_base[4000];
/* g_base made absolute at the start: a followed child creates its files, and the lock file
 * is removed, after the program may have changed its working directory. */
static char g_base_path[4096];
static hpx_buf g_argv, g_notes; /* NUL-separated */
static char g_hostname[256];

static struct timespec g_mono0;
/* hp-record --pid: the recording started inside a running process (header tag 22, the
 * process's age in µs then). Set by hp_set_attached for the next hp_start only. */
static int g_attach_pending, g_attached;
static uint64_t g_attach_age_pending, g_attach_age_us;
static uint64_t g_start_wall_us;
static hpx_file g_hpm, g_hpd;

/* Every allocation the hook saw, by power-of-two size: count, bytes, sampled. MEM and OBJ
 * calls hold the GIL (their API contract), which serializes them, so they count with
 * plain adds into g_hist_count and g_hist_bytes; RAW calls may come from any thread and count atomically into
 * g_hist_raw (a locked add on every allocation was the hook's largest fast-path cost).
 * g_hist_sampled is only changed under g_mu. */
static uint64_t g_hist_count[HIST_BUCKETS], g_hist_bytes[HIST_BUCKETS], g_hist_sampled[HIST_BUCKETS];
static uint64_t g_hist_raw[HIST_BUCKETS][2];
static uint64_t g_n_alloc, g_n_free, g_n_lost;
/* Set when a sampled allocation came from a subinterpreter on 3.12+: from then on MEM
 * and OBJ count atomically too, since a subinterpreter may have its own GIL (PEP 684)
 * and the GIL no longer serializes them. Never cleared. */
static int g_hist_atomic;

static ptr_table g_ptrs;
/* The sampled anonymous mappings (domain mmap), as the address ranges their ALLOCs cover,
 * so that an unmap of any part of one finds it (g_mu held); g_maps_live mirrors their number
 * for the unlocked test of munmap, mremap and mmap(MAP_FIXED). See maps_unmapped. */
static range_set g_maps;
static size_t g_maps_live;
static uint64_t g_trim_rng[4];
/* Counting filter over sampled addresses: a free that finds a zero count is certainly
 * not sampled and skips the lock. Every free reads it, so it starts small enough to stay
 * in cache (4 KiB) and doubles as the live sampled set grows (kept under 1/32 full).
 * Each address has two counts (k = 2; the second is read only if the first is set):
 * a false positive costs a lock and a table probe, and with one count they outnumbered
 * the true sampled frees in allocation-heavy programs. Updated under g_mu, read without
 * it: a replaced filter is published with a release store and never freed, since a free
 * may still be reading it; it holds every address inserted before the switch, and later
 * inserts go to the new one. Counts stick at 255. */
typedef struct {
  unsigned bits, shift; /* 2^bits counts; shift = 64 - bits */
  uint8_t counts[];
} hp_filter;
#define FILTER_MIN_BITS 12
#define FILTER_MAX_BITS 26
#define FILTER_LOAD_SHIFT 5 /* live sampled blocks <= 2^bits / 2^5 */
/* Before the first recording: empty, so that the free path needs no NULL check. */
static hp_filter g_no_filter = {1, 63, {0, 0}};
static hp_filter *g_filter = &g_no_filter;
/* While every allocation is sampled (a table of p = 1 throughout, `--sample '{}'`), no
 * filter could rule a recorded block out, and at millions of live blocks the real one cost
 * two cache misses per allocation and per free (recording everything ran ~15% slower with
 * it): this one says "maybe" for every address and is never updated, so every free goes
 * to the pointer table. */
static hp_filter g_all_filter = {1, 63, {1, 1}};
static int g_sample_all; /* g_mu held: the recording samples every allocation */

static pair_map g_codes;  /* (code ptr, 0) -> function string id, file string id, file epoch */
static pair_map g_frames; /* (code ptr, line) -> frame id */
static blob_map g_strings, g_traces;
/* Walked stacks as they come from pyrt_walk_positions (dropped, then code pointer and
 * position per frame) -> trace id, so that a stack seen before costs one hash and one
 * compare instead of line lookups and interning every frame. Exact keys: every code
 * object in an entry is pinned, and a position determines the line. */
static blob_map g_stacks;
static uint32_t g_next_string, g_next_frame, g_next_trace, g_file_epoch, g_next_thread, g_next_mark;
/* Changes whenever g_stacks is cleared (a new file, a sweep of pins): threads' copies of its
 * keys (hp_thread.stack) are good only while it stays the same. */
static uint32_t g_stack_epoch;
/* Sweeping pins. A program that keeps making code (exec, eval, generated functions,
 * templates) would otherwise keep every code object that ever allocated under a sample. When
 * the pins have doubled since the last sweep (and grown by PIN_SWEEP_MIN at least), the
 * sweep is due; it is asked for as a pending call (pyrt_add_pending) by a thread that may ask
 * (record_event with the GIL, or the ticker on 3.13), and runs between bytecodes with the
 * GIL: sweep_pins drops the pins that alone keep their code objects alive. g_sweep: 0 idle,
 * 1 due, 2 asked for. */
#define PIN_SWEEP_MIN 4096
static int g_sweep;
static size_t g_pins_after_sweep;
/* Native recording (FLAG_NATIVE with the interposer in place): traces carry domain and
 * thread (TRACE_INFO), native allocations are recorded by interpose.c. */
static int g_threads;
static int g_native_mask; /* header tag 13: 1 malloc family, 2 anonymous mmap, 4 full native stacks */
static int g_native;      /* interpose.c records: recording with g_native_mask set */

/* Ticker: a native thread (no Python state) that flushes every TICK_NS, so that a process
 * killed without warning loses at most that much of its events, and records RSS every
 * second tick. It sleeps on a semaphore, not a condition variable, because the SIGTERM
 * handler wakes it and sem_post is async-signal-safe. g_ticker_stop and g_term_pending are
 * read by the ticker after every wake. */
#define TICK_NS 500000000L
static pthread_t g_ticker;
static int g_ticker_running, g_ticker_wanted, g_ticker_stop;
/* 1 from the ticker's start until it decides to exit: until then it will see a SIGTERM. */
static int g_ticker_accepting;
static sem_t g_tick_sem;

/* hp-record's watchdog thread (see watch_main): stopped over a fork, like the ticker. */
static pthread_t g_watch_tid;
static sem_t g_watch_sem;
static int g_watch_running, g_watch_stop;
static int g_watch_pdeath; /* we set PR_SET_PDEATHSIG (threads_after_fork_parent) */
/* The recorder's threads after a fork of this process (see threads_after_fork_parent):
 * some wait for gate_slow; the watchdog among them; since when (CLOCK_MONOTONIC). */
static int g_refork_wanted, g_refork_watch;
static uint64_t g_refork_ns;
static int watch_stop_for_fork(void);
static void threads_after_fork_parent(int watch_stopped);
static int threads_restart_due(void);
static void watch_restart(void);

/* SIGTERM (see on_sigterm): installed by hp_start only over the default action. */
#define TERM_WAIT_S 3
static int g_term_installed;
static int g_term_pending; /* set by the handler: the ticker finishes the profile, then re-raises */
/* 1 while a thread stops the ticker to finish the profile (stop_begin .. stop_end), 2 once
 * a SIGTERM has been handed to that thread meanwhile. Not set over fork (atfork_prepare). */
static int g_stopping;

/* What reached the disk. g_blk_* count what sits in the blocks being filled; a successful
 * flush moves them to *_written, a failed write to g_events_unwritten. g_mu held. */
static uint64_t g_blk_events, g_blk_traces;
static uint64_t g_events_written, g_traces_written, g_events_unwritten;
static uint64_t g_write_failed_us; /* time of the failed write (0: none); g_write_error says why */
static char g_write_error[4200];
static uint64_t g_n_forks; /* followed forks of this process while recording */

/* BASE.hpm.lock, flock()ed while this process records to BASE (see lock_profile). */
static int g_lock_fd = -1;
static uint64_t g_lock_dev, g_lock_ino; /* the lock file g_lock_fd was opened on */
static char g_lock_path[8300];

/* Per thread: initial-exec TLS so that reading it never allocates. */
struct hp_thread {
  uint32_t busy; /* busy and epoch first: the wrappers compare them with g_gate as one word */
  uint32_t epoch;
  uint64_t rng[4];
  uint64_t countdown[N_SLOTS]; /* allocations (or bytes) up to and including the next sample; >= 1 */
  uint32_t probing, nested;    /* hp_install's nesting probe (probe_direct_max) */
  uint32_t thread_id, thread_epoch; /* this thread's id in the current file (g_file_epoch) */
  uint32_t fork_saved_busy;         /* busy before atfork_prepare */
  uint32_t fork_watch;              /* atfork_prepare stopped the watchdog */
  /* The last two stacks record_event found in g_stacks (g_mu held), by the top bit of the
   * key's hash: hash, length and g_stacks' copy of the key (valid while epoch is
   * g_stack_epoch), and the trace. A thread that samples one of them again compares it with
   * that copy instead of probing g_stacks. Two, not one, for a loop that alternates between
   * two sampled sites; 32 bytes of static TLS each. */
  struct {
    uint32_t epoch, trace;
    uint64_t hash;
    size_t len;
    const void *key;
  } stack[2];
};
static __thread struct hp_thread t_hp __attribute__((tls_model("initial-exec")));

/* The allocating wrappers' one test: while recording, g_gate is (g_epoch << 32), which
 * equals the thread's (epoch << 32 | busy) exactly when the thread is not inside the hook
 * already and has seeded its sampler for this recording. Otherwise GATE_OFF (busy is
 * never all ones). Changed with g_active (set_active). */
#define GATE_OFF UINT64_MAX
/* Recording, but every allocation goes through gate_slow: for a moment after a fork, until
 * the recorder's threads are back (threads_after_fork_parent). Never a thread's word either. */
#define GATE_REFORK (UINT64_MAX - 1)
static uint64_t g_gate = GATE_OFF;

NO_SAN static inline int gate_open(void) {
  uint64_t w;
  memcpy(&w, &t_hp, sizeof w); /* busy | epoch << 32 (x86-64 and other little-endian) */
  return w == LOAD(g_gate);
}

static void set_active(int on) {
  __atomic_store_n(&g_gate, on ? (uint64_t)LOAD(g_epoch) << 32 : GATE_OFF, __ATOMIC_RELEASE);
  __atomic_store_n(&g_active, on, __ATOMIC_RELEASE);
  __atomic_store_n(&g_native, on && g_native_mask, __ATOMIC_RELEASE);
  if (!on) __atomic_store_n(&g_maps_live, 0, __ATOMIC_RELAXED); /* munmap: one load again */
  /* Not recording: frees need not leave the fast path any more. */
  if (!on && g_filter == &g_all_filter) __atomic_store_n(&g_filter, &g_no_filter, __ATOMIC_RELEASE);
}

/* ---------------------------------------------------------------- small helpers */

static void set_err(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(g_err, sizeof g_err, fmt, ap);
  va_end(ap);
}

static uint64_t now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  int64_t us = (int64_t)(ts.tv_sec - g_mono0.tv_sec) * 1000000 + (ts.tv_nsec - g_mono0.tv_nsec) / 1000;
  return us > 0 ? (uint64_t)us : 0;
}

/* ---------------------------------------------------------------- the event clock
 *
 * Every sampled allocation and free carries a time; reading CLOCK_MONOTONIC for each was
 * the largest single cost of a sampled event on the VMs this was measured on (the
 * kvm-clock vDSO: ~65 ns a read there, against ~28 for a bare rdtsc). So where the CPU's
 * TSC is invariant (cpuid 0x80000007 EDX bit 8: constant rate, runs in every C-state),
 * event times are the TSC converted by a rate measured against CLOCK_MONOTONIC:
 *  - tc_calibrate reads (TSC, CLOCK_MONOTONIC) together (the tightest of three tries) when
 *    a recording starts, at the first event 10 ms later, and at every tick of the ticker
 *    (every TICK_NS), all under g_mu. Once two readings are >= 10 ms apart, the rate is
 *    their ratio and the later one is the anchor; an event's time is the anchor's plus the
 *    TSC ticks since it at that rate. A reading is exact to the ~60 ns between its two
 *    rdtsc, so a rate from 10 ms is within ~6 ppm (~3 µs over a tick) and from a tick's
 *    500 ms within ~0.1 ppm.
 *  - At each tick the time the TSC predicts is compared with the clock read: if they differ
 *    by more than TC_MAX_DEV_NS (a TSC that jumped, a VM migrated, a rate that changed), the
 *    rate is dropped and events read the clock until the next two readings give a new one.
 *    So an event's time is within TC_MAX_DEV_NS of CLOCK_MONOTONIC's unless the TSC misbehaves
 *    between two ticks; hp_debug_clock reports the largest difference seen.
 *  - An event more than TC_MAX_AHEAD_NS after the anchor (the ticker held up, or stopped over
 *    a fork), or whose TSC reads below the anchor (another CPU's TSC a little behind), reads
 *    the clock instead.
 *  - Event times never decrease within a file: emit_event raises a time below the previous
 *    event's to it (g_ev_last_us), so a TSC running a little ahead before an anchor moves
 *    back shows as a few equal times, never as a negative dt.
 * Everything here is read and written under g_mu. Elsewhere (no TSC), events read the clock. */
#if defined(__x86_64__)
#include <cpuid.h>
#include <x86intrin.h>
#define HAVE_TSC 1
#endif
#define TC_MIN_BASE_NS 10000000ULL /* two readings this far apart give a rate */
#define TC_MAX_DEV_NS 200000ULL     /* predicted vs read at a tick: beyond this, drop the rate */
#define TC_MAX_AHEAD_NS 4000000000ULL

static int g_tsc_usable; /* invariant TSC (hp_init) */
static struct {
  uint64_t tsc, ns;      /* anchor: TSC and CLOCK_MONOTONIC (ns) read together; tsc 0: none */
  uint64_t mult;         /* ns per TSC tick << 32; 0: no rate, events read the clock */
  uint64_t max_ticks;    /* TC_MAX_AHEAD_NS in ticks */
  uint64_t max_dev_ns;   /* the largest difference a tick found (hp_debug_clock) */
  uint64_t calibrations, drops;
} g_tc;
static uint64_t g_mono0_ns;   /* g_mono0 in ns */
static uint64_t g_ev_last_us; /* the latest event time in the current .hpd */

static uint64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

#ifdef HAVE_TSC
static int tsc_invariant(void) {
  unsigned a, b, c, d;
  if (!__get_cpuid(0x80000000, &a, &b, &c, &d) || a < 0x80000007) return 0;
  if (!__get_cpuid(0x80000007, &a, &b, &c, &d)) return 0;
  return (d >> 8) & 1;
}

static inline uint64_t tc_predict(uint64_t ticks) {
  return g_tc.ns + (uint64_t)(((unsigned __int128)ticks * g_tc.mult) >> 32);
}

/* g_mu held: a reading of (TSC, clock); see above. */
static void tc_calibrate(void) {
  if (!g_tsc_usable) return;
  uint64_t tsc = 0, ns = 0, gap = UINT64_MAX;
  for (int i = 0; i < 3; i++) {
    uint64_t a = __rdtsc(), n = mono_ns(), b = __rdtsc();
    if (b >= a && b - a < gap) gap = b - a, tsc = a + (b - a) / 2, ns = n;
  }
  if (gap == UINT64_MAX) return;
  g_tc.calibrations++;
  if (!g_tc.tsc) {
    g_tc.tsc = tsc, g_tc.ns = ns;
    return;
  }
  if (tsc <= g_tc.tsc || ns <= g_tc.ns) {
    /* Read on a CPU whose TSC is a little behind the anchor's: keep everything. Still
     * behind long after the anchor: the TSC went back; start over from here. */
    if (ns > g_tc.ns + TC_MIN_BASE_NS) g_tc.mult = 0, g_tc.tsc = tsc, g_tc.ns = ns;
    return;
  }
  {
    uint64_t dt = tsc - g_tc.tsc, dn = ns - g_tc.ns;
    if (g_tc.mult && dt < g_tc.max_ticks) {
      uint64_t pred = tc_predict(dt), dev = pred > ns ? pred - ns : ns - pred;
      if (dev > g_tc.max_dev_ns) g_tc.max_dev_ns = dev;
      if (dev > TC_MAX_DEV_NS) { /* drop the rate; the next readings make a new one */
        g_tc.mult = 0;
        g_tc.drops++;
        g_tc.tsc = tsc, g_tc.ns = ns;
        return;
      }
    }
    if (dn < TC_MIN_BASE_NS) return; /* keep the older anchor: a longer base */
    unsigned __int128 m = ((unsigned __int128)dn << 32) / dt;
    /* 0.05 to 20 ticks per ns; anything else is not a clock */
    if (m >= ((unsigned __int128)1 << 32) / 20 && m <= ((unsigned __int128)20 << 32)) {
      g_tc.mult = (uint64_t)m;
      g_tc.max_ticks = (uint64_t)(((unsigned __int128)TC_MAX_AHEAD_NS << 32) / m);
    } else {
      g_tc.mult = 0;
    }
  }
  g_tc.tsc = tsc, g_tc.ns = ns;
}

/* g_mu held: the clock, for an event the TSC cannot time (see event_now_us). With no rate
 * yet, or far past the anchor, it also takes a reading: a recording has a rate
 * TC_MIN_BASE_NS after its first event, not only at the ticker's first tick. */
__attribute__((noinline, cold)) static uint64_t tc_slow_ns(uint64_t ticks) {
  uint64_t ns = mono_ns();
  if (g_tsc_usable && (g_tc.mult ? ticks < ((uint64_t)1 << 63) : !g_tc.tsc || ns - g_tc.ns >= TC_MIN_BASE_NS))
    tc_calibrate();
  return ns;
}
#else
static void tc_calibrate(void) {}
#endif

/* g_mu held: the time of an event being written now, in µs since the start (g_mono0). */
static inline uint64_t event_now_us(void) {
  uint64_t ns;
#ifdef HAVE_TSC
  uint64_t d = __rdtsc() - g_tc.tsc;
  if (__builtin_expect(g_tc.mult != 0 && d < g_tc.max_ticks, 1)) ns = tc_predict(d);
  else ns = tc_slow_ns(d);
#else
  ns = mono_ns();
#endif
  return ns > g_mono0_ns ? (ns - g_mono0_ns) / 1000 : 0;
}

static uint64_t splitmix64(uint64_t *x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

/* xoshiro256** */
static inline uint64_t rng_next(uint64_t *s) {
  uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 45);
  return result;
}

/* log(k / 2^53) for k in 1..2^53, the log of a uniform draw U in (0, 1] (see log_unit).
 * Computed here rather than by libm's log: one draw per sampled allocation, and in a
 * program that samples often libm's call (its PLT stub, wrapper and table, all out of cache
 * between samples) was a visible part of a sampled event. k = m * 2^e with m in
 * [sqrt(1/2), sqrt(2)), log m = 2 atanh(s), s = (m - 1) / (m + 1), |s| < 0.172, summed to
 * z^11 (z = s^2; the next term is below 10^-19), plus e ln 2 in two parts. Within 3 ulp of
 * libm's log (test/native/sampler.test.ts checks it through hp_debug_log_unit): over 10^8
 * draws not one gap, Bernoulli or byte-Poisson, came out different from libm's. */
static inline double log_of_unit(uint64_t k) {
  uint64_t bits;
  double x = (double)k, m; /* exact: k <= 2^53 */
  memcpy(&bits, &x, sizeof bits);
  int e = (int)(bits >> 52) - 1023 - 53; /* k / 2^53 = m * 2^e, m in [1, 2) */
  bits = (bits & 0x000fffffffffffffULL) | 0x3ff0000000000000ULL;
  memcpy(&m, &bits, sizeof m);
  if (m > 0x1.6a09e667f3bcdp+0) m *= 0.5, e++; /* above sqrt(2) */
  double s = (m - 1.0) / (m + 1.0), z = s * s; /* m - 1 is exact */
  double p = 1.0 / 23;
  p = p * z + 1.0 / 21, p = p * z + 1.0 / 19, p = p * z + 1.0 / 17, p = p * z + 1.0 / 15;
  p = p * z + 1.0 / 13, p = p * z + 1.0 / 11, p = p * z + 1.0 / 9, p = p * z + 1.0 / 7;
  p = p * z + 1.0 / 5, p = p * z + 1.0 / 3, p = p * z + 1.0;
  return (double)e * 0x1.62e42feep-1 + ((double)e * 0x1.a39ef35793c76p-33 + 2.0 * s * p); /* ln 2 = hi + lo */
}

/* log U, U uniform in (0, 1] so that the log is finite. */
static inline double log_unit(void) { return log_of_unit((rng_next(t_hp.rng) >> 11) + 1); }

#define MAX_COUNTDOWN ((uint64_t)1 << 62)

static uint64_t clamp_countdown(double c) {
  if (!(c < (double)MAX_COUNTDOWN)) return MAX_COUNTDOWN; /* also NaN */
  return c >= 1.0 ? (uint64_t)c : 1;
}

/* A fresh countdown for slot k. Byte-Poisson: ceil of an exponential gap C with mean R;
 * with integer sizes, "C <= size" and "ceil(C) <= size" are the same event, so the hit
 * probability stays 1 - exp(-size/R) exactly. Range slots: 1 + floor(log U / log(1 - p))
 * is Geometric(p) on 1, 2, ... (P(gap > n) = (1 - p)^n). */
static uint64_t draw_countdown(int k) {
  switch (k) {
  case SLOT_ALWAYS:
    return g_count_bytes ? clamp_countdown(ceil(-g_mean_bytes * log_unit())) : 1;
  case SLOT_NEVER:
    return MAX_COUNTDOWN;
  case SLOT_EACH:
    return 1;
  default:
    return clamp_countdown(floor(log_unit() / g_slot_log1mp[k]) + 1.0);
  }
}

static uint64_t g_seed, g_seed_counter;

/* Out of line: the first allocation of a thread in a recording (a fork child, a new
 * recording) lands here; keeping it cold keeps the wrappers' prologues short. */
__attribute__((noinline, cold)) static void thread_reseed(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  uint64_t x = g_seed ^ ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)(uintptr_t)&t_hp ^
               ADD(g_seed_counter, 0x632be59bd9b4e019ULL);
  for (int i = 0; i < 4; i++) t_hp.rng[i] = splitmix64(&x);
  t_hp.epoch = LOAD(g_epoch);
  for (int k = 0; k < N_SLOTS; k++) t_hp.countdown[k] = draw_countdown(k);
}

static int range_of(uint64_t size) {
  int i = 0;
  while (i < g_nranges && size >= g_bounds[i]) i++;
  return i; /* g_nranges: at or above the last bound */
}

/* g_mu held, before recording starts: countdown slots for ranges and buckets. */
static void plan_slots(int mode) {
  g_count_bytes = g_sampler == SAMPLER_POISSON;
  memset(g_poisson_weights, 0, sizeof g_poisson_weights);
  int next = SLOT_FIRST_RANGE;
  for (int i = 0; i <= g_nranges; i++) {
    double p = i == g_nranges ? 1.0 : g_probs[i]; /* at or above the last bound: always */
    if (p <= 0.0) g_range_slot[i] = SLOT_NEVER;
    else if (p >= 1.0) g_range_slot[i] = SLOT_ALWAYS;
    else if (next < N_SLOTS) g_slot_log1mp[next] = log1p(-p), g_range_slot[i] = (uint8_t)next++;
    else g_range_slot[i] = SLOT_EACH; /* no slot left: a random draw per allocation */
  }
  for (int b = 0; b < HIST_BUCKETS; b++) {
    uint64_t lo = b == 0 ? 0 : (uint64_t)1 << b;
    uint64_t hi = b == 63 ? UINT64_MAX : ((uint64_t)1 << (b + 1)) - 1;
    int i = range_of(lo);
    g_bucket_range[b] = range_of(hi) != i ? BUCKET_SPLIT : (uint8_t)i;
    if (mode != MODE_PROFILE) g_bucket_slot[b] = SLOT_NEVER; /* stats: nothing is sampled */
    else if (g_count_bytes) g_bucket_slot[b] = SLOT_ALWAYS;
    else if (range_of(hi) != i) g_bucket_slot[b] = SLOT_EACH; /* straddles a bound */
    else g_bucket_slot[b] = g_range_slot[i];
  }
}

/* Countdown slot k ran out: whether to sample, and a fresh countdown (a hit drops the
 * overshoot). Per-thread, no lock. */
static int sample_slow(size_t size, unsigned k) {
  t_hp.countdown[k] = draw_countdown((int)k);
  if (k == SLOT_NEVER) return 0;
  if (k != SLOT_EACH) return 1;
  int i = range_of(size);
  k = g_range_slot[i];
  if (k == SLOT_EACH) return rng_next(t_hp.rng) < g_thresholds[i];
  uint64_t c = t_hp.countdown[k];
  if (c > 1) {
    t_hp.countdown[k] = c - 1;
    return 0;
  }
  return sample_slow(size, k);
}

static inline int hist_bucket(uint64_t size) { return 63 - __builtin_clzll(size | 1); }

/* The two counts of p: the top bits of one product, then the bits below them. */
NO_SAN static inline uint8_t *filter_count(const hp_filter *f, uintptr_t p, int which) {
  uint64_t h = (p >> 4) * 0x9e3779b97f4a7c15ULL;
  return (uint8_t *)&f->counts[(which ? h << f->bits : h) >> f->shift];
}

/* Descriptor 2 was closed when the program started (python gave it sys.stderr None): a file
 * the program opens later may take that number, so the recorder never writes there. */
static int g_no_stderr;

static void warn(const char *fmt, ...) {
  if (LOAD(g_no_stderr)) return;
  char line[1024];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof line - 1, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if ((size_t)n > sizeof line - 2) n = sizeof line - 2;
  line[n++] = '\n';
  ssize_t ignored = write(2, line, (size_t)n);
  (void)ignored;
}

/* ---------------------------------------------------------------- output (g_mu held) */

static void emit_ext(int type, const uint64_t *value);
static void unlock_profile(void);

/* A write failed (a full disk, a file size limit): the files are cut back to their last whole
 * blocks, which frees what the failed write left, and the .hpd gets one last small block, a
 * LOST event counting the recorded events that were not written (the pending .hpd events go:
 * the failed .hpm block may have held their traces), so that readers say the profile lost
 * events instead of only that it has no end. Best effort: it may not fit either. */
static void note_the_loss(void) {
  if (hpx_file_cut(&g_hpm) != 0 || hpx_file_cut(&g_hpd) != 0) return;
  g_hpd.block.len = 0;
  g_hpd.count = 0;
  uint64_t lost = g_events_unwritten + g_n_lost;
  if (!lost) return;
  emit_ext(EXT_LOST, &lost);
  (void)hpx_file_flush(&g_hpd, now_us());
}

/* A write failed, or the profile's descriptor was taken away by the program and the file
 * could not be found again: stop recording, warn once, let the program go on. Nothing is
 * written after this but, after a failed write, one LOST event (the profile stays readable up
 * to its last block). What was buffered and not written is counted as unwritten, so that the
 * summary never claims it. */
static void write_failed(const hpx_file *f, int rc) {
  if (f->why[0]) snprintf(g_write_error, sizeof g_write_error, "%.400s: %.390s", f->path, f->why);
  else snprintf(g_write_error, sizeof g_write_error, "write %.400s: %.150s", f->path, strerror(-rc));
  warn("heapprof: recording stopped: %s", g_write_error);
  g_write_failed_us = now_us();
  if (!g_write_failed_us) g_write_failed_us = 1;
  g_events_unwritten += g_blk_events;
  g_blk_events = g_blk_traces = 0;
  set_active(0);
  if (!f->why[0]) note_the_loss(); /* not when the file itself was taken away */
  hpx_file_abandon(&g_hpm);
  hpx_file_abandon(&g_hpd);
  unlock_profile(); /* nothing writes the profile any more: readers must not take it for live */
}

/* The pending .hpm block, if any; its trace records count as written once it is. */
static int flush_hpm(uint64_t now) {
  int open = g_hpm.fd >= 0;
  int rc = hpx_file_flush(&g_hpm, now);
  if (rc != 0) {
    write_failed(&g_hpm, rc);
    return rc;
  }
  if (open) g_traces_written += g_blk_traces;
  g_blk_traces = 0;
  return 0;
}

/* Writes pending blocks, .hpm first so every trace is on disk before an event uses it. */
static void flush_all(void) {
  uint64_t now = now_us();
  if (flush_hpm(now) != 0) return;
  int open = g_hpd.fd >= 0;
  int rc = hpx_file_flush(&g_hpd, now);
  if (rc != 0) {
    write_failed(&g_hpd, rc);
    return;
  }
  if (open) g_events_written += g_blk_events;
  g_blk_events = 0;
}

static void emit_record(int type, const hpx_buf *body) {
  hpx_file_begin(&g_hpm, now_us());
  hpx_buf_varint(&g_hpm.block, (uint64_t)type);
  hpx_buf_varint(&g_hpm.block, body->len);
  hpx_buf_put(&g_hpm.block, body->data, body->len);
  g_hpm.count++;
  if (hpx_file_payload(&g_hpm) >= FLUSH_BYTES) flush_hpm(now_us());
}

/* One event: header varint, dt, then nrest (<= 2) varints, written in place into the
 * block after one room check (every sampled allocation and free comes through here). */
static inline __attribute__((always_inline)) void emit_event(uint64_t h, uint64_t now, const uint64_t *rest, int nrest) {
  hpx_buf *b = &g_hpd.block;
  if (now < g_ev_last_us) now = g_ev_last_us; /* never back (see the event clock) */
  g_ev_last_us = now;
  if (b->len == 0) hpx_file_begin(&g_hpd, now);
  if (b->cap - b->len < 40) hpx_buf_reserve(b, 40); /* four varints of at most 10 bytes */
  if (!b->failed) {
    /* hpxw.h: the event's bytes, a REPEAT when the block's cache holds its trace and size */
    uint8_t *d = hpx_encode_event(&g_hpd, b->data + b->len, h, now - g_hpd.last_us, rest, nrest);
    b->len = (size_t)(d - b->data);
  }
  g_hpd.last_us = now;
  g_hpd.count++;
  if (b->len >= HPX_BLOCK_HEADER + FLUSH_BYTES) flush_all();
}

/* Estimated live bytes of every recorded domain, and its peak (g_mu held): for
 * hp-record's hint that RSS grew far past what was recorded (hp_peak_estimate). */
static double g_live_estimate, g_peak_estimate;

static inline double byte_weight(uint64_t size) {
  if (g_sampler == SAMPLER_POISSON) {
    if (!size) return g_mean_bytes;
    unsigned k = (unsigned)((size * 0x9e3779b97f4a7c15ULL) >> 58); /* POISSON_WEIGHTS = 2^6 */
    if (g_poisson_weights[k].size != size) {
      g_poisson_weights[k].size = size;
      g_poisson_weights[k].weight = (double)size / -expm1(-(double)size / g_mean_bytes);
    }
    return g_poisson_weights[k].weight;
  }
  unsigned i = g_bucket_range[hist_bucket(size)];
  return (double)size * g_inv_probs[i != BUCKET_SPLIT ? i : (unsigned)range_of(size)];
}

static void emit_alloc_free(int kind, uint32_t trace, uint64_t size) {
  uint64_t rest[1] = {size};
  g_blk_events++; /* before: emit_event may flush the block it lands in */
  g_live_estimate += kind == EV_ALLOC ? byte_weight(size) : -byte_weight(size);
  if (g_live_estimate > g_peak_estimate) g_peak_estimate = g_live_estimate;
  emit_event(((uint64_t)trace << 2) | (uint64_t)kind, event_now_us(), rest, 1);
  if (kind == EV_ALLOC) g_n_alloc++;
  else g_n_free++;
}

static uint64_t varint_len(uint64_t v) {
  uint64_t n = 1;
  while (v >>= 7) n++;
  return n;
}

/* An EXT event: varint length, then the body (one varint value, or empty). */
static void emit_ext(int type, const uint64_t *value) {
  uint64_t rest[2] = {value ? varint_len(*value) : 0, value ? *value : 0};
  emit_event(((uint64_t)type << 2) | EV_EXT, event_now_us(), rest, value ? 2 : 1);
}

/* ---------------------------------------------------------------- interning (g_mu held) */

static uint32_t intern_string(const char *s) {
  size_t len = strlen(s);
  uint64_t h = blob_hash(s, len);
  uint32_t id = blob_find(&g_strings, s, len, h);
  if (id) return id;
  id = ++g_next_string;
  if (blob_add(&g_strings, s, len, h, id) != 0) return 0;
  hpx_buf body = {0};
  hpx_buf_varint(&body, id);
  hpx_buf_put(&body, s, len);
  emit_record(REC_STRING, &body);
  hpx_buf_free(&body);
  return id;
}

/* Function and file string ids of a code object, interned for the current file.
 * Needs the GIL (pins and reads the code object; neither allocates). */
static int intern_code(void *code, uint32_t *func_sid, uint32_t *file_sid) {
  static char name[1024], file[4096];
  pair_slot *s = pair_find(&g_codes, (uintptr_t)code, 0);
  if (!s) {
    s = pair_add(&g_codes, (uintptr_t)code, 0);
    if (!s) return -1;
    /* Pin: a pinned code object's address is never reused, so (code, line) is an exact
     * key. Never released in the hook (Py_DecRef could run a destructor): sweep_pins. */
    pyrt_incref(code);
    size_t step = g_pins_after_sweep > PIN_SWEEP_MIN ? g_pins_after_sweep : PIN_SWEEP_MIN;
    if (g_codes.len >= g_pins_after_sweep + step && LOAD(g_sweep) == 0) STORE(g_sweep, 1);
  }
  if (s->v3 != g_file_epoch) { /* first sight in this file */
    pyrt_code_names(code, name, sizeof name, file, sizeof file);
    uint32_t fs = intern_string(name), fl = intern_string(file);
    if (!fs || !fl) return -1;
    s->v1 = fs;
    s->v2 = fl;
    s->v3 = g_file_epoch;
  }
  *func_sid = s->v1;
  *file_sid = s->v2;
  return 0;
}

/* g_frames key of a frame interned by names, not by code object: (func sid << 32 | file
 * sid, line | BY_NAME_FRAME_KEY). */
#define BY_NAME_FRAME_KEY ((uint64_t)1 << 41)

/* A frame walked without the GIL whose code object is not pinned (pinning needs the GIL):
 * interned by its names, which the frame's reference keeps alive while this thread, which
 * owns the frame, is inside this allocator call. */
/* g_mu held: the FRAME record defining frame id (function and file string ids, line). */
static void emit_frame_record(uint32_t id, uint32_t func_sid, uint32_t file_sid, int line) {
  hpx_buf body = {0};
  hpx_buf_varint(&body, id);
  hpx_buf_varint(&body, func_sid);
  hpx_buf_varint(&body, file_sid);
  hpx_buf_varint(&body, (uint64_t)(line > 0 ? line : 0));
  emit_record(REC_FRAME, &body);
  hpx_buf_free(&body);
}

static uint32_t intern_frame_by_name(void *code, int line) {
  static char name[1024], file[4096];
  pyrt_code_names(code, name, sizeof name, file, sizeof file);
  uint32_t fs = intern_string(name), fl = intern_string(file);
  if (!fs || !fl) return 0;
  uint64_t a = (uint64_t)fs << 32 | fl, b = (uint64_t)(uint32_t)line | BY_NAME_FRAME_KEY;
  pair_slot *s = pair_find(&g_frames, a, b);
  if (s) return s->v1;
  s = pair_add(&g_frames, a, b);
  if (!s) return 0;
  s->v1 = ++g_next_frame;
  emit_frame_record(s->v1, fs, fl, line);
  return s->v1;
}

/* gil: this thread holds the GIL (else only already-pinned code objects are keyed by
 * address; see intern_frame_by_name). */
static uint32_t intern_frame(void *code, int line, int gil) {
  pair_slot *s = pair_find(&g_frames, (uintptr_t)code, (uint64_t)(uint32_t)line);
  if (s) return s->v1;
  if (!gil && !pair_find(&g_codes, (uintptr_t)code, 0)) return intern_frame_by_name(code, line);
  uint32_t func_sid, file_sid;
  if (intern_code(code, &func_sid, &file_sid) != 0) return 0;
  s = pair_add(&g_frames, (uintptr_t)code, (uint64_t)(uint32_t)line);
  if (!s) return 0;
  s->v1 = ++g_next_frame;
  emit_frame_record(s->v1, func_sid, file_sid, line);
  return s->v1;
}

/* The native frame at pc (names from describe_pc, interned on first sight in this file). */
static uint32_t intern_native_frame(void *pc, const char *func, const char *obj) {
  pair_slot *s = pair_find(&g_frames, (uintptr_t)pc, NATIVE_FRAME_KEY);
  if (s) return s->v1;
  uint32_t fs = intern_string(func), fl = intern_string(obj);
  if (!fs || !fl) return 0;
  s = pair_add(&g_frames, (uintptr_t)pc, NATIVE_FRAME_KEY);
  if (!s) return 0;
  s->v1 = ++g_next_frame;
  emit_frame_record(s->v1, fs, fl, 0);
  return s->v1;
}

/* This thread's id in the current file, announced by a THREAD record on first use. */
static uint32_t thread_id_locked(void) {
  if (t_hp.thread_epoch == g_file_epoch && t_hp.thread_id) return t_hp.thread_id;
  t_hp.thread_id = ++g_next_thread;
  t_hp.thread_epoch = g_file_epoch;
  char name[32] = "";
  pthread_getname_np(pthread_self(), name, sizeof name); /* own thread: prctl, no allocation */
  hpx_buf body = {0};
  hpx_buf_varint(&body, t_hp.thread_id);
  hpx_buf_varint(&body, (uint64_t)syscall(SYS_gettid));
  hpx_buf_put(&body, name, strlen(name));
  emit_record(REC_THREAD, &body);
  hpx_buf_free(&body);
  return t_hp.thread_id;
}

/* Trace id for a walked stack, with nnative native frame ids first (0 on failure: the
 * event is still recorded, stackless). ctx = domain | thread << 2; a trace with ctx or
 * native frames gets a TRACE_INFO record before its TRACE. */
static uint32_t intern_trace(const uint32_t *native, int nnative, const hp_rawframe *frames, int n, uint32_t dropped,
                             uint32_t ctx, int gil) {
  uint32_t key[MAX_DEPTH + MAX_NATIVE + 4];
  key[0] = dropped;
  key[1] = ctx;
  key[2] = (uint32_t)nnative;
  for (int i = 0; i < nnative; i++) key[3 + i] = native[i];
  for (int i = 0; i < n; i++) {
    key[3 + nnative + i] = intern_frame(frames[i].code, (int)frames[i].line, gil);
    if (!key[3 + nnative + i]) return 0;
  }
  int depth = nnative + n;
  size_t len = (size_t)(depth + 3) * sizeof key[0];
  uint64_t h = blob_hash(key, len);
  uint32_t id = blob_find(&g_traces, key, len, h);
  if (id) return id;
  id = ++g_next_trace;
  if (blob_add(&g_traces, key, len, h, id) != 0) return 0;
  g_blk_traces++; /* before: emit_record may flush the block it lands in */
  hpx_buf body = {0};
  if (ctx || nnative) {
    hpx_buf_varint(&body, id);
    hpx_buf_varint(&body, ctx & 3);
    hpx_buf_varint(&body, ctx >> 2);
    hpx_buf_varint(&body, (uint64_t)nnative);
    emit_record(REC_TRACE_INFO, &body);
    body.len = 0;
  }
  hpx_buf_varint(&body, id);
  hpx_buf_varint(&body, dropped);
  hpx_buf_varint(&body, (uint64_t)depth);
  for (int i = 0; i < depth; i++) hpx_buf_varint(&body, key[3 + i]);
  emit_record(REC_TRACE, &body);
  hpx_buf_free(&body);
  return id;
}

/* The trace of allocations made in subinterpreters: one frame, function and file
 * "<subinterpreter>", line 0, interned like a native frame at a pc no code has (their
 * stacks are not walked, see pyrt_gil_tstate). */
#define SUBINTERPRETER_PC ((void *)1)
static uint32_t subinterpreter_trace(uint32_t ctx) {
  uint32_t frame = intern_native_frame(SUBINTERPRETER_PC, "<subinterpreter>", "<subinterpreter>");
  return frame ? intern_trace(&frame, 1, NULL, 0, 0, ctx, 0) : 0;
}

static void reset_dictionaries(void) {
  /* Code objects stay pinned; their entries are refreshed lazily by epoch. */
  pair_clear(&g_frames);
  blob_clear(&g_strings);
  blob_clear(&g_traces);
  blob_clear(&g_stacks);
  g_stack_epoch++;
  g_next_string = g_next_frame = g_next_trace = g_next_thread = g_next_mark = 0;
  g_file_epoch++;
}

/* ---------------------------------------------------------------- sweeping pins */

#define SWEEP_ROUNDS 16
typedef struct {
  void **dead;
  size_t n;
} pin_sweep;

/* g_codes' entries of code objects that only our pin keeps alive (the GIL is held: no
 * reference can appear meanwhile), kept aside for their Py_DecRef. */
static int pin_dead(const pair_slot *s, void *ctx) {
  pin_sweep *sw = ctx;
  if (pyrt_refcnt((void *)(uintptr_t)s->a) != 1) return 0;
  sw->dead[sw->n++] = (void *)(uintptr_t)s->a;
  return 1;
}

/* g_frames' entries keyed by a code object no longer pinned (native and by-name frames have
 * a key flag above the line's 32 bits). */
static int frame_unpinned(const pair_slot *s, void *ctx) {
  (void)ctx;
  return s->b < NATIVE_FRAME_KEY && !pair_find(&g_codes, s->a, 0);
}

/* The pending call (see g_sweep): the main thread, with the GIL, between bytecodes, never
 * inside an allocator call. A dead code object's address may be reused once it is freed,
 * so everything keyed by it goes first, under g_mu: its g_codes and g_frames entries, the
 * walked-stack cache (and the threads' copies of it) and the line cache. Its FRAME records
 * stay valid in the file: a new code object at the same address gets new ones. Then the
 * pins go, outside the lock, since freeing a code object can run any Python code. */
static int sweep_pins(void *unused) {
  (void)unused;
  if (pyrt_finalizing()) return 0; /* left asked for: nothing to gain any more */
  uint32_t busy = t_hp.busy;
  /* Freeing one code object can leave another to our pin alone (a module's or an enclosing
   * function's code holds its functions' in its constants): rounds until none is left, at
   * most SWEEP_ROUNDS (a nesting that deep waits for the next sweep). */
  for (int round = 0; round < SWEEP_ROUNDS; round++) {
    pin_sweep sw = {0};
    t_hp.busy = 1; /* nothing here is the program's */
    mu_lock();
    size_t cap = g_codes.len;
    if (cap && (sw.dead = table_alloc(cap, sizeof *sw.dead)) != NULL && pair_remove_if(&g_codes, pin_dead, &sw)) {
      pair_remove_if(&g_frames, frame_unpinned, NULL);
      blob_clear(&g_stacks);
      g_stack_epoch++;
      pyrt_clear_line_cache(); /* its users hold the GIL, as we do */
    }
    g_pins_after_sweep = g_codes.len;
    if (sw.n == 0 || round == SWEEP_ROUNDS - 1) STORE(g_sweep, 0);
    mu_unlock();
    t_hp.busy = busy;
    for (size_t i = 0; i < sw.n; i++) pyrt_decref(sw.dead[i]); /* their frees are recorded as any other */
    t_hp.busy = 1;
    table_free(sw.dead, cap, sizeof *sw.dead);
    t_hp.busy = busy;
    if (sw.n == 0) break;
  }
  return 0;
}

/* Asks for the due sweep, by a thread that may (pyrt_pending_from). Not under g_mu. */
static void sweep_ask(void) {
  int due = 1;
  if (!__atomic_compare_exchange_n(&g_sweep, &due, 2, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) return;
  if (pyrt_add_pending(sweep_pins, NULL) != 0) STORE(g_sweep, 1); /* the queue is full: later */
}

/* g_mu held. A new filter of 2^bits counts holding every live sampled address; on
 * allocation failure the old one stays (correct, only slower). */
static int filter_rebuild(unsigned bits) {
  hp_filter *f = table_alloc(1, sizeof *f + ((size_t)1 << bits)); /* never freed, see above */
  if (!f) return -1;
  f->bits = bits;
  f->shift = 64 - bits;
  for (size_t i = 0; i < g_ptrs.cap; i++) {
    if (!g_ptrs.slots[i].key) continue;
    for (int w = 0; w < 2; w++) {
      uint8_t *c = filter_count(f, g_ptrs.slots[i].key, w);
      if (*c < 255) (*c)++;
    }
  }
  __atomic_store_n(&g_filter, f, __ATOMIC_RELEASE);
  return 0;
}

/* g_mu held: p became a sampled live block. */
static void filter_add(uintptr_t p) {
  hp_filter *f = g_filter;
  if (f == &g_all_filter) return;
  if (f->bits < FILTER_MAX_BITS && g_ptrs.len > ((size_t)1 << f->bits) >> FILTER_LOAD_SHIFT && filter_rebuild(f->bits + 1) == 0)
    return; /* the rebuild took p from g_ptrs */
  for (int w = 0; w < 2; w++) {
    uint8_t *c = filter_count(f, p, w);
    if (*c < 255) __atomic_store_n(c, (uint8_t)(*c + 1), __ATOMIC_RELAXED);
  }
}

/* g_mu held: p is no longer a sampled live block. */
static void filter_remove(uintptr_t p) {
  if (g_filter == &g_all_filter) return;
  for (int w = 0; w < 2; w++) {
    uint8_t *c = filter_count(g_filter, p, w);
    if (*c > 0 && *c < 255) __atomic_store_n(c, (uint8_t)(*c - 1), __ATOMIC_RELAXED);
  }
}

static void reset_pointers(void) {
  ptr_clear(&g_ptrs);
  range_clear(&g_maps);
  STORE(g_maps_live, 0);
  uint64_t x = g_seed ^ ((uint64_t)getpid() << 32) ^ 0x5851f42d4c957f2dULL;
  for (int i = 0; i < 4; i++) g_trim_rng[i] = splitmix64(&x);
  if (g_sample_all) {
    __atomic_store_n(&g_filter, &g_all_filter, __ATOMIC_RELEASE);
    return;
  }
  if (filter_rebuild(FILTER_MIN_BITS) == 0) return;
  /* Out of memory: empty the filter in place (never the all-addresses one). */
  if (g_filter == &g_all_filter) __atomic_store_n(&g_filter, &g_no_filter, __ATOMIC_RELEASE);
  memset(g_filter->counts, 0, (size_t)1 << g_filter->bits);
}

/* ---------------------------------------------------------------- sampled mappings */

/* The probability the sampler gives an allocation of size bytes (as readers compute it). */
static double sample_probability(uint64_t size) {
  if (g_sampler == SAMPLER_POISSON) return -expm1(-(double)size / g_mean_bytes);
  int i = range_of(size);
  return i == g_nranges ? 1.0 : g_probs[i];
}

/* g_mu held: a part [lo, hi) of a sampled mapping of trace whose ALLOC had probability p
 * is still mapped while the rest went. It is recorded as an allocation of its own with
 * probability p(hi - lo) / p (thinning), so that it is in the profile with probability
 * p(hi - lo) in all, as a fresh mapping of its size would be, and its estimate stays
 * unbiased. A sampler whose probability falls with size (a table such as {4096: 1,
 * 65536: 0.1}) has p(part) > p: the part is then kept always, weighted by its own size
 * (an under-estimate). */
static void maps_keep_part(uintptr_t lo, uintptr_t hi, uint32_t trace, double p) {
  uint64_t len = hi - lo;
  double q = p > 0 ? sample_probability(len) / p : 1.0;
  if (q < 1.0 && (double)(rng_next(g_trim_rng) >> 11) * 0x1p-53 >= q) return;
  ptr_slot old;
  int had = ptr_put(&g_ptrs, lo, trace, len, &old);
  if (had < 0) {
    g_n_lost++;
    return;
  }
  if (had == 1) emit_alloc_free(EV_FREE, old.trace, old.size);
  else filter_add(lo);
  emit_alloc_free(EV_ALLOC, trace, len);
  range_insert(&g_maps, lo, hi); /* cannot fail: maps_unmapped reserved room */
  STORE(g_maps_live, g_maps.len);
}

/* g_mu held: [lo, hi) is no longer mapped (munmap, mremap, a MAP_FIXED mapping over it).
 * Every sampled mapping it touches is freed as a whole (its FREE repeats its ALLOC), and
 * each part left mapped, before lo or after hi, is kept as maps_keep_part says: an unmap
 * of the head, the tail or the middle of a mapping (allocators trim over-sized mappings to
 * align them) leaves exactly what is still mapped in the estimates. */
static void maps_unmapped(uintptr_t lo, uintptr_t hi) {
  for (;;) {
    size_t i = range_first_after(&g_maps, lo);
    if (i >= g_maps.len || g_maps.items[i].start >= hi) break;
    range_item r = g_maps.items[i];
    range_remove_at(&g_maps, i);
    STORE(g_maps_live, g_maps.len);
    ptr_slot s;
    if (!ptr_take(&g_ptrs, r.start, &s)) continue; /* forgotten meanwhile (its address reused) */
    if (s.size != r.end - r.start) {
      /* The address holds another block now: not this mapping's to free. */
      if (ptr_put(&g_ptrs, r.start, s.trace, s.size, NULL) < 0) g_n_lost++;
      continue;
    }
    filter_remove(r.start);
    emit_alloc_free(EV_FREE, s.trace, s.size);
    double p = sample_probability(s.size);
    if (range_reserve(&g_maps, 2) < 0) {
      g_n_lost++; /* out of memory: the parts left are not recorded */
      continue;
    }
    if (r.start < lo) maps_keep_part(r.start, lo, s.trace, p);
    if (hi < r.end) maps_keep_part(hi, r.end, s.trace, p);
  }
}

/* g_mu held: a sampled mapping [p, p + size) is about to be recorded. The kernel gave out
 * that range, so any recorded mapping overlapping it went without our seeing it (a raw
 * syscall): free it first. Returns -1 without room to list the new one (out of memory). */
static int maps_prepare(uintptr_t p, uint64_t size) {
  maps_unmapped(p, p + size);
  return range_reserve(&g_maps, 1);
}

static void maps_add(uintptr_t p, uint64_t size) {
  range_insert(&g_maps, p, p + size); /* room reserved by maps_prepare */
  STORE(g_maps_live, g_maps.len);
}

/* g_mu held: whether [lo, hi) touches a sampled mapping. */
static int maps_touch(uintptr_t lo, uintptr_t hi) {
  size_t i = range_first_after(&g_maps, lo);
  return i < g_maps.len && g_maps.items[i].start < hi;
}

/* ---------------------------------------------------------------- recording */

static void ticker_start_locked(void);
static int open_child_files(sigset_t *held);

static void describe_pc(void *pc, char *func, size_t func_cap, char *obj, size_t obj_cap);
static int interposer_in_place(char *why, size_t cap);
static int native_stack(void *pc, void **pcs, int python);
static void native_stacks_init(void);

/* A sampled allocation of domain DOMAIN_* (pc: the native caller, for native and mmap):
 * walk the stack (outside the lock; needs only the GIL), then intern it and log the event
 * under the lock. The walk gives (code, position) per frame and g_stacks is keyed on
 * those plus the context and native caller: a stack seen before costs no line-table
 * lookups and no dladdr; lines and names are computed only for a stack not seen before.
 * busy is set. */
static void record_event(void *p, size_t size, int domain, void *pc) {
  struct {
    uint64_t dropped, ctx;
    void *pc;
    uint64_t npcs; /* native frames after the Python ones (--native-stacks), as (pc, 0) pairs */
    hp_rawframe frames[MAX_DEPTH + MAX_NATIVE];
  } key;
  hp_rawframe *frames = key.frames;
  uint32_t dropped = 0;
  int n = 0;
  int subinterpreter = 0;
  void *tstate = pyrt_gil_tstate(&subinterpreter);
  /* A second GIL may exist from now on (PEP 684): the histogram counts atomically. */
  if (subinterpreter && !LOAD(g_hist_atomic)) STORE(g_hist_atomic, 1);
  if (!LOAD(g_capture)) tstate = NULL, subinterpreter = 0;
  int gil = tstate != NULL;
  /* With --native, a thread inside a C call that released the GIL (ctypes, sqlite3) still
   * gets its own Python stack: see pyrt_own_tstate_nogil. */
  if (!tstate && !subinterpreter && g_threads && LOAD(g_capture)) tstate = pyrt_own_tstate_nogil();
  uint64_t walk_hash = 0;
  if (tstate) n = pyrt_walk_positions(tstate, frames, MAX_DEPTH, &dropped, &walk_hash, gil);
  key.dropped = dropped;
  key.pc = domain == DOMAIN_PYTHON ? NULL : pc;
  /* --native-stacks: the native frames from the allocator's caller up to the innermost
   * interpreter frame (unwound here, outside the lock, like the walk). */
  void *pcs[MAX_NATIVE];
  int npcs = key.pc && (LOAD(g_native_mask) & 4) ? native_stack(key.pc, pcs, n > 0) : 0;
  key.npcs = (uint64_t)npcs;
  for (int i = 0; i < npcs; i++) frames[n + i] = (hp_rawframe){pcs[i], 0};
  size_t key_len = offsetof(__typeof__(key), frames) + (size_t)(n + npcs) * sizeof frames[0];
  /* The key's hash (any hash will do: g_stacks only ever sees this one), the walked part
   * outside the lock: the walk hashed its frames on the way (one xor and one multiply per
   * frame in sequence, where a stronger per-frame mix cost a sampled event with seven
   * frames ~20 ns); the native frames, the count, dropped and the caller here, and a
   * finalizer, under the lock with the context, spreads it. */
  for (int i = n; i < n + npcs; i++)
    walk_hash = (walk_hash ^ ((uint64_t)(uintptr_t)frames[i].code ^ (uint64_t)frames[i].line * 0xc4ceb9fe1a85ec53ULL)) *
                0xff51afd7ed558ccdULL;
  walk_hash ^= (uint64_t)n ^ ((uint64_t)dropped << 32) ^ (uint64_t)(uintptr_t)key.pc * 0xc4ceb9fe1a85ec53ULL;
  char func[512], obj[1024];
  void *described = NULL; /* the pc func and obj describe */
#ifdef HP_MEASURE_WALK_ONLY
  /* A measuring build (bench/perevent.js): a sampled event costs the walk and the hash only. */
  (void)walk_hash, (void)p, (void)size, (void)described, (void)func, (void)obj;
  return;
#endif

  sigset_t term_mask; /* when opening: this thread's mask, to restore once the ticker runs */
  int opening = 0;
  mu_lock();
again:
  if (g_active && g_mode == MODE_PROFILE && open_child_files((opening = g_child_pending) ? &term_mask : NULL) == 0) {
    /* Not in the moment after a fork that threads_after_fork_parent keeps free of our threads
     * (CPython 3.12+ counts them then; an after_in_parent callback or, with --native, its own
     * reading of /proc may allocate before that). */
    if (g_ticker_wanted && !g_ticker_running && !LOAD(g_refork_wanted)) ticker_start_locked();
    if (opening) pthread_sigmask(SIG_SETMASK, &term_mask, NULL); /* a SIGTERM from now: the ticker's */
    uint32_t ctx = g_threads ? (uint32_t)domain | thread_id_locked() << 2 : (uint32_t)domain;
    key.ctx = ctx;
    uint64_t key_hash = walk_hash ^ (uint64_t)ctx * 0x9e3779b97f4a7c15ULL;
    key_hash = (key_hash ^ (key_hash >> 33)) * 0xff51afd7ed558ccdULL;
    key_hash = (key_hash ^ (key_hash >> 33)) * 0xc4ceb9fe1a85ec53ULL;
    key_hash ^= key_hash >> 33; /* blob_find uses the low bits */
    uint32_t trace = 0;
    __typeof__(t_hp.stack[0]) *last;
    if (subinterpreter) {
      trace = subinterpreter_trace(ctx);
    } else if (!(n > 0 || ctx || key.pc)) {
      /* trace 0: no stack */
    } else if (last = &t_hp.stack[key_hash >> 63], last->key && last->epoch == g_stack_epoch && last->hash == key_hash &&
               last->len == key_len && memcmp(last->key, &key, key_len) == 0) {
      trace = last->trace; /* a recent stack of this thread again */
    } else if ((trace = blob_find_stored(&g_stacks, &key, key_len, key_hash, &last->key))) {
      last->epoch = g_stack_epoch, last->trace = trace, last->hash = key_hash, last->len = key_len;
    } else {
      uint32_t native[MAX_NATIVE];
      int nnative = 0;
      /* The native caller, or with --native-stacks the unwound frames (the caller first). */
      int want = npcs ? npcs : key.pc ? 1 : 0;
      for (int i = 0; i < want; i++) {
        void *at = npcs ? pcs[i] : key.pc;
        pair_slot *s = pair_find(&g_frames, (uintptr_t)at, NATIVE_FRAME_KEY);
        if (s) {
          native[nnative++] = s->v1;
          continue;
        }
        if (described != at) {
          /* dladdr takes the loader's lock: never under g_mu. One frame per round: each
           * round interns one more, so this ends after at most `want` rounds. */
          mu_unlock();
          describe_pc(at, func, sizeof func, obj, sizeof obj);
          described = at;
          mu_lock();
          goto again; /* the recording may have stopped meanwhile */
        }
        uint32_t id = intern_native_frame(at, func, obj);
        if (!id) break; /* out of memory: the frames so far */
        native[nnative++] = id;
      }
      hp_rawframe lines[MAX_DEPTH]; /* the key keeps its positions */
      memcpy(lines, frames, (size_t)n * sizeof frames[0]);
      pyrt_lines(lines, n, gil); /* the line cache is shared: only with the GIL */
      trace = intern_trace(native, nnative, lines, n, dropped, ctx, gil);
      /* Cached only if every code object in it is pinned (address = identity): with the GIL
       * intern_frame pinned them, unless it failed for want of memory. */
      int pinned = trace != 0;
      for (int i = 0; i < n && pinned; i++) pinned = pair_find(&g_codes, (uintptr_t)frames[i].code, 0) != NULL;
      if (trace && pinned) blob_add(&g_stacks, &key, key_len, key_hash, trace); /* on OOM: just not cached */
    }
    ptr_slot old;
    int had = domain == DOMAIN_MMAP && maps_prepare((uintptr_t)p, size) < 0 ? -1 : ptr_put(&g_ptrs, (uintptr_t)p, trace, size, &old);
    if (had == 1) {
      /* The address came back without us seeing its free (freed inside another
       * allocator call): close the stale allocation first. */
      emit_alloc_free(EV_FREE, old.trace, old.size);
    } else if (had == 0) {
      filter_add((uintptr_t)p);
    }
    if (had >= 0) {
      emit_alloc_free(EV_ALLOC, trace, size);
      if (domain == DOMAIN_MMAP) maps_add((uintptr_t)p, size);
      int b = hist_bucket(size);
      STORE(g_hist_sampled[b], LOAD(g_hist_sampled[b]) + 1); /* only changed under g_mu */
    } else {
      g_n_lost++; /* out of memory for our table */
    }
  }
  mu_unlock();
  if (gil && LOAD(g_sweep) == 1 && pyrt_pending_from() == PYRT_PENDING_GIL_HOLDER) sweep_ask();
}

static void record_alloc(void *p, size_t size) { record_event(p, size, DOMAIN_PYTHON, NULL); }

/* Whether p may be a sampled live block: usually one load, no lock (the filter is only
 * ever raised for p before p is returned to the program). */
NO_SAN static inline int maybe_sampled(void *p) {
  hp_filter *f = __atomic_load_n(&g_filter, __ATOMIC_ACQUIRE);
  return __atomic_load_n(filter_count(f, (uintptr_t)p, 0), __ATOMIC_RELAXED) != 0 &&
         __atomic_load_n(filter_count(f, (uintptr_t)p, 1), __ATOMIC_RELAXED) != 0;
}

/* If p is a sampled live block: forget it, log its free, return 1 with its values. */
static inline __attribute__((always_inline)) int take_sampled(void *p, ptr_slot *out) {
  uintptr_t key = (uintptr_t)p;
  int found = 0;
  mu_lock();
  ptr_slot s;
  if (g_active && ptr_take(&g_ptrs, key, &s)) {
    filter_remove(key);
    emit_alloc_free(EV_FREE, s.trace, s.size);
    if (out) *out = s;
    found = 1;
  }
  mu_unlock();
  return found;
}

/* The filter says ptr may be sampled. Logged BEFORE the real free: once the block is
 * free, another thread may get the same address. Out of line to keep free() small. */
__attribute__((noinline, cold)) static void free_sampled(void *ptr) {
  if (!ptr || t_hp.busy || !LOAD(g_active)) return;
  t_hp.busy = 1;
  take_sampled(ptr, NULL);
  t_hp.busy = 0;
}

/* A realloc whose old block was sampled failed: the old block lives on, so log it again. */
static void restore_sampled(void *p, const ptr_slot *s) {
  mu_lock();
  if (g_active && ptr_put(&g_ptrs, (uintptr_t)p, s->trace, s->size, NULL) == 0) {
    filter_add((uintptr_t)p);
    emit_alloc_free(EV_ALLOC, s->trace, s->size);
  }
  mu_unlock();
}

/* realloc of a block the filter says may be sampled, busy set: free(old) + alloc(new).
 * The old block is forgotten BEFORE the real realloc, so another thread that gets the
 * same address cannot be confused with it. Out of line: the common realloc stays small. */
__attribute__((noinline, cold)) static void *realloc_sampled(int domain, void *ptr, size_t size) {
  ptr_slot old = {0}; /* read only if had */
  int had = take_sampled(ptr, &old);
  void *q = g_orig[domain].realloc(g_orig[domain].ctx, ptr, size);
  if (!q && had) restore_sampled(ptr, &old);
  return q;
}

/* A countdown ran out: decide and record. Out of line so that the wrappers stay small;
 * the common case (a range slot: always a hit, and a fresh gap) inline here, since every
 * call on the sampled path is code fetched cold. */
__attribute__((noinline, cold)) static void on_alloc_slow(void *p, size_t size, unsigned k) {
  t_hp.busy = 1; /* nested PyMem calls below pass straight through */
  int hit;
  if (__builtin_expect(k >= SLOT_FIRST_RANGE, 1)) {
    t_hp.countdown[k] = clamp_countdown(floor(log_unit() / g_slot_log1mp[k]) + 1.0); /* = draw_countdown(k) */
    hit = 1;
  } else {
    hit = sample_slow(size, k);
  }
  if (hit) record_alloc(p, size);
  t_hp.busy = 0;
}

/* Every allocation the hook records: count it exactly, then step its countdown, in the
 * common case one decrement in thread-local memory. Returns 0 when the countdown ran out
 * (sample_slow decides), with its slot in *kp. */
static inline int count_alloc(int domain, size_t size, unsigned *kp) {
  int b = hist_bucket(size);
  if (domain == HP_DOMAIN_RAW || __builtin_expect(LOAD(g_hist_atomic), 0)) {
    ADD(g_hist_raw[b][0], 1);
    ADD(g_hist_raw[b][1], size);
  } else {
    g_hist_count[b]++; /* GIL held: serialized */
    g_hist_bytes[b] += size;
  }
  unsigned k = g_bucket_slot[b];
  uint64_t amount = g_count_bytes ? (uint64_t)size : 1, c = t_hp.countdown[k];
  *kp = k;
  if (__builtin_expect(c > amount, 1)) {
    t_hp.countdown[k] = c - amount;
    return 1;
  }
  return 0;
}

static inline void on_alloc(int domain, void *p, size_t size) {
  unsigned k;
  if (!count_alloc(domain, size, &k)) on_alloc_slow(p, size, k);
}

/* The gate is shut: this thread is inside the hook already, recording is off, or this is
 * the thread's first allocation of this recording (seed its sampler, then record). */
__attribute__((noinline, cold)) static int gate_slow(void) {
  if (t_hp.probing) t_hp.nested = 1;
  if (__builtin_expect(LOAD(g_refork_wanted), 0) && !t_hp.busy) threads_restart_due();
  if (t_hp.busy || !LOAD(g_active)) return 0;
  if (t_hp.epoch != LOAD(g_epoch)) thread_reseed(); /* else seeded: only the gate was shut */
  return 1;
}

/* Histogram entry i, field k (0 count, 1 bytes, 2 sampled), both halves added. */
static uint64_t hist_value(int i, int k) {
  if (k == 2) return LOAD(g_hist_sampled[i]);
  uint64_t v = k == 0 ? LOAD(g_hist_count[i]) : LOAD(g_hist_bytes[i]);
  v += LOAD(g_hist_raw[i][k]);
  return v;
}

static void hist_reset(void) {
  memset(g_hist_count, 0, sizeof g_hist_count);
  memset(g_hist_bytes, 0, sizeof g_hist_bytes);
  memset(g_hist_sampled, 0, sizeof g_hist_sampled);
  memset(g_hist_raw, 0, sizeof g_hist_raw);
}

/* Per domain, the largest malloc ([0]) and calloc ([1]) request that the allocator below
 * serves without calling back into the hook: pymalloc hands requests over 512 bytes (and
 * of 0) to PyMem_RawMalloc, the debug hooks add their own bytes first, plain malloc never
 * nests. Found by probe_direct_max when the hook is installed; 0 (nothing direct) until
 * then, which is what a thread allocating during the probe sees. */
#define DIRECT_PROBE_MAX 512
static size_t g_direct_max[3][2];
static size_t g_direct_probed[3][2]; /* what the probe found; g_direct_max is 0 with --native */

/* One set of wrappers per domain; ctx is ignored (the installed ctx is the original's, so
 * a torn read of the allocator struct by another thread still pairs valid values).
 *
 * malloc and calloc of a size that cannot nest count the request and step its countdown
 * first, then end in a tail call to the original: no busy flag, no frame of their own
 * (~2 ns less per allocation and free in a tight loop). A request is counted even if the
 * original then fails. Larger ones, and every realloc (which pymalloc may hand to
 * PyMem_RawRealloc whatever the size), set the busy flag around the real call so that a
 * nested RAW call passes straight through and each allocation is counted once. */
#define DEFINE_HOOKS(NAME, D)                                                                \
  /* The countdown ran out on the direct path: allocate, then decide and record. */         \
  __attribute__((noinline, cold)) static void *NAME##_malloc_hit(size_t size, unsigned k) {  \
    t_hp.busy = 1;                                                                           \
    void *p = g_orig[D].malloc(g_orig[D].ctx, size);                                         \
    t_hp.busy = 0;                                                                           \
    if (p) on_alloc_slow(p, size, k);                                                        \
    return p;                                                                                \
  }                                                                                          \
  __attribute__((noinline)) static void *NAME##_malloc_nested(size_t size) {                 \
    if (!gate_open() && !gate_slow()) return g_orig[D].malloc(g_orig[D].ctx, size);          \
    t_hp.busy = 1; /* nested PyMem calls below pass straight through */                     \
    void *p = g_orig[D].malloc(g_orig[D].ctx, size);                                         \
    t_hp.busy = 0;                                                                           \
    if (p) on_alloc(D, p, size);                                                             \
    return p;                                                                                \
  }                                                                                          \
  static void *NAME##_malloc(void *ctx, size_t size) {                                       \
    (void)ctx;                                                                               \
    unsigned k;                                                                              \
    if (__builtin_expect(gate_open(), 1) && size - 1 < LOAD(g_direct_max[D][0])) {           \
      if (__builtin_expect(count_alloc(D, size, &k), 1)) return g_orig[D].malloc(g_orig[D].ctx, size); \
      return NAME##_malloc_hit(size, k);                                                     \
    }                                                                                        \
    return NAME##_malloc_nested(size);                                                       \
  }                                                                                          \
  __attribute__((noinline, cold)) static void *NAME##_calloc_hit(size_t nelem, size_t elsize, size_t total, unsigned k) { \
    t_hp.busy = 1;                                                                           \
    void *p = g_orig[D].calloc(g_orig[D].ctx, nelem, elsize);                                \
    t_hp.busy = 0;                                                                           \
    if (p) on_alloc_slow(p, total, k);                                                       \
    return p;                                                                                \
  }                                                                                          \
  __attribute__((noinline)) static void *NAME##_calloc_nested(size_t nelem, size_t elsize) { \
    if (!gate_open() && !gate_slow()) return g_orig[D].calloc(g_orig[D].ctx, nelem, elsize); \
    t_hp.busy = 1;                                                                           \
    void *p = g_orig[D].calloc(g_orig[D].ctx, nelem, elsize);                                \
    t_hp.busy = 0;                                                                           \
    size_t total;                                                                            \
    if (__builtin_mul_overflow(nelem, elsize, &total)) total = SIZE_MAX;                     \
    if (p) on_alloc(D, p, total);                                                            \
    return p;                                                                                \
  }                                                                                          \
  static void *NAME##_calloc(void *ctx, size_t nelem, size_t elsize) {                       \
    (void)ctx;                                                                               \
    size_t total;                                                                            \
    unsigned k;                                                                              \
    if (__builtin_expect(gate_open(), 1) && !__builtin_mul_overflow(nelem, elsize, &total) && \
        total - 1 < LOAD(g_direct_max[D][1])) {                                              \
      if (__builtin_expect(count_alloc(D, total, &k), 1)) return g_orig[D].calloc(g_orig[D].ctx, nelem, elsize); \
      return NAME##_calloc_hit(nelem, elsize, total, k);                                     \
    }                                                                                        \
    return NAME##_calloc_nested(nelem, elsize);                                              \
  }                                                                                          \
  static void *NAME##_realloc(void *ctx, void *ptr, size_t size) {                           \
    (void)ctx;                                                                               \
    if (__builtin_expect(!gate_open(), 0) && !gate_slow())                                   \
      return g_orig[D].realloc(g_orig[D].ctx, ptr, size);                                    \
    t_hp.busy = 1;                                                                           \
    void *q = ptr && maybe_sampled(ptr) ? realloc_sampled(D, ptr, size)                      \
                                        : g_orig[D].realloc(g_orig[D].ctx, ptr, size);       \
    t_hp.busy = 0;                                                                           \
    if (q) on_alloc(D, q, size);                                                             \
    return q;                                                                                \
  }                                                                                          \
  static void NAME##_free(void *ctx, void *ptr) {                                            \
    (void)ctx;                                                                               \
    if (__builtin_expect(maybe_sampled(ptr), 0)) free_sampled(ptr);                          \
    g_orig[D].free(g_orig[D].ctx, ptr);                                                      \
  }

DEFINE_HOOKS(raw, HP_DOMAIN_RAW)
DEFINE_HOOKS(mem, HP_DOMAIN_MEM)
DEFINE_HOOKS(obj, HP_DOMAIN_OBJ)

/* ---------------------------------------------------------------- RSS and the ticker */

static uint64_t read_rss(void) {
  int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  char buf[128];
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return 0;
  buf[n] = 0;
  unsigned long long size = 0, resident = 0;
  if (sscanf(buf, "%llu %llu", &size, &resident) != 2) return 0;
  return (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
}

static void finish_profile(void);

/* ---------------------------------------------------------------- SIGTERM
 *
 * Pools and service managers stop processes with SIGTERM, whose default action kills at
 * once: the buffered blocks (up to TICK_NS of events) and the end of the profile would be
 * lost. So while recording, when SIGTERM's action is the default (and only then: a program
 * that ignores SIGTERM or handles it, in Python or C, keeps exactly that), on_sigterm is
 * installed in its place. The handler itself does almost nothing, because almost nothing
 * is safe there: the thread it interrupted may hold g_mu (mid-event) or libc's malloc lock,
 * so it neither locks nor allocates nor writes. It sets g_term_pending and wakes the ticker
 * (sem_post is async-signal-safe); the ticker, an ordinary thread, takes g_mu, writes the
 * histogram and end markers, closes the files, restores the default action and sends
 * SIGTERM again, so the process dies of SIGTERM as it would have, some milliseconds later.
 * Meanwhile the interrupted thread sleeps in the handler (it would be dead by now without
 * the profiler), up to TERM_WAIT_S, unless it was inside the hook, where it may hold g_mu:
 * then it returns and goes on until the ticker is done. If a thread is stopping the ticker
 * or has stopped it to write the end of the profile (the program is exiting or stopping
 * the recorder: stop_begin .. stop_end) the handler returns too, and that thread
 * finishes the profile and then re-raises (stop_end): pool workers often get their SIGTERM
 * just as they leave by os._exit, mid-way through writing the end. Where nothing can be
 * deferred (not recording, no ticker yet, or a second SIGTERM while the first is being
 * handled) the handler restores the default action and re-raises at once. */

/* Never returns: SIGTERM back to its default action, sent to this process, unblocked in
 * this thread too (the ticker blocks every signal) so that it cannot stay pending. */
__attribute__((noreturn)) static void term_reraise(void) {
  struct sigaction dfl;
  memset(&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  sigaction(SIGTERM, &dfl, NULL);
  kill(getpid(), SIGTERM);
  sigset_t term;
  sigemptyset(&term);
  sigaddset(&term, SIGTERM);
  pthread_sigmask(SIG_UNBLOCK, &term, NULL);
  for (;;) pause();
}

/* Async-signal-safe: atomics, sem_post, nanosleep, clock_gettime, sigaction, raise. */
static void on_sigterm(int sig) {
  int saved = errno;
  if (LOAD(g_active) && !LOAD(g_child_pending)) {
    /* A thread is stopping the ticker to finish the profile (exit, hp_stop), maybe
     * this very thread, which may be writing the end of the profile right now: hand it
     * the signal. stop_end takes g_stopping back with one exchange, so the signal is
     * either seen there or not handed over at all. */
    int one = 1;
    if (__atomic_compare_exchange_n(&g_stopping, &one, 2, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
      errno = saved;
      return;
    }
    if (LOAD(g_ticker_running) && !__atomic_exchange_n(&g_term_pending, 1, __ATOMIC_SEQ_CST)) {
      if (!__atomic_load_n(&g_ticker_accepting, __ATOMIC_SEQ_CST)) {
        /* The ticker is on its way out: whoever stops it checks g_term_pending (stop_end). */
        errno = saved;
        return;
      }
      sem_post(&g_tick_sem);
      if (t_hp.busy) {
        errno = saved;
        return; /* this thread may hold g_mu: let it go on and release it */
      }
      /* Otherwise this thread waits here for the ticker's SIGTERM to end the process, so
       * that it does no more than it would have without the profiler (the signal would
       * have killed it here). If that takes longer than TERM_WAIT_S (a write that hangs,
       * or the interrupted code held a lock the ticker needs, such as libc's malloc lock,
       * or g_mu in an exported function), die now with the profile as it is on disk. */
      struct timespec start, now, step = {0, 10 * 1000 * 1000};
      clock_gettime(CLOCK_MONOTONIC, &start);
      do {
        nanosleep(&step, NULL);
        clock_gettime(CLOCK_MONOTONIC, &now);
      } while (now.tv_sec - start.tv_sec < TERM_WAIT_S);
    }
  }
  {
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    sigaction(sig, &dfl, NULL);
    raise(sig); /* blocked until this handler returns, then fatal */
  }
  errno = saved;
}

/* hp_start (profile mode): take SIGTERM over only from its default action. */
static void term_install(void) {
  struct sigaction cur;
  if (sigaction(SIGTERM, NULL, &cur) != 0) return;
  if (!(cur.sa_flags & SA_SIGINFO) && cur.sa_handler == on_sigterm) {
    g_term_installed = 1; /* still there from an earlier recording */
    return;
  }
  if ((cur.sa_flags & SA_SIGINFO) || cur.sa_handler != SIG_DFL) return; /* the program's own, or ignored */
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_sigterm;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART | SA_ONSTACK; /* the program's system calls go on undisturbed */
  if (sigaction(SIGTERM, &sa, NULL) == 0) g_term_installed = 1;
}

/* Recording stopped: SIGTERM gets its default action back, unless the program has set
 * its own since. */
static void term_uninstall(void) {
  if (!g_term_installed) return;
  g_term_installed = 0;
  struct sigaction cur;
  if (sigaction(SIGTERM, NULL, &cur) != 0 || (cur.sa_flags & SA_SIGINFO) || cur.sa_handler != on_sigterm) return;
  struct sigaction dfl;
  memset(&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  sigaction(SIGTERM, &dfl, NULL);
}

/* A SIGTERM was deferred to us: finish the profile, then die of it. Not under g_mu. */
__attribute__((noreturn)) static void term_finish(void) {
  mu_lock();
  if (g_active && !g_child_pending) {
    finish_profile();
    set_active(0);
  }
  mu_unlock();
  term_reraise();
}

/* Whoever stopped the ticker checks this afterwards: a SIGTERM that came in meanwhile. */
static void term_check(void) {
  if (__atomic_load_n(&g_term_pending, __ATOMIC_SEQ_CST)) term_finish();
}

/* Around stopping the ticker to finish the profile: SIGTERMs in between wait for stop_end. */
static void ticker_stop(void);
static void stop_begin(void) {
  __atomic_store_n(&g_stopping, 1, __ATOMIC_SEQ_CST);
  ticker_stop();
}
static void stop_end(void) {
  if (__atomic_exchange_n(&g_stopping, 0, __ATOMIC_SEQ_CST) == 2) __atomic_store_n(&g_term_pending, 1, __ATOMIC_SEQ_CST);
  term_check();
}

static void *ticker_main(void *arg) {
  (void)arg;
  t_hp.busy = 1; /* the hook's own thread: its allocations (with --native) are never recorded */
  for (unsigned tick = 1;; tick++) {
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_nsec += TICK_NS;
    if (deadline.tv_nsec >= 1000000000L) deadline.tv_sec++, deadline.tv_nsec -= 1000000000L;
    while (!LOAD(g_term_pending) && !LOAD(g_ticker_stop)) {
      if (sem_clockwait(&g_tick_sem, CLOCK_MONOTONIC, &deadline) != 0 && errno == ETIMEDOUT) break;
    }
    if (LOAD(g_term_pending)) term_finish();
    if (LOAD(g_ticker_stop)) {
      /* From here a SIGTERM is left to whoever stops us (see on_sigterm); one that came
       * just before is still ours. Both sides are sequentially consistent. */
      __atomic_store_n(&g_ticker_accepting, 0, __ATOMIC_SEQ_CST);
      if (__atomic_load_n(&g_term_pending, __ATOMIC_SEQ_CST)) term_finish();
      return NULL;
    }
    uint64_t rss = tick % 2 == 0 ? read_rss() : 0; /* once a second; outside g_mu */
    /* 3.13 asks for a due sweep from here (see pyrt_pending_from). */
    if (LOAD(g_sweep) == 1 && pyrt_pending_from() == PYRT_PENDING_ANY_THREAD && !pyrt_finalizing()) sweep_ask();
    mu_lock();
    if (g_active) {
      tc_calibrate();
      if (rss) emit_ext(EXT_RSS, &rss);
      flush_all();
    }
    mu_unlock();
  }
}

static void ticker_init_sync(void) { sem_init(&g_tick_sem, 0, 0); }

/* g_mu held (or single-threaded). Signals are blocked in the ticker so that Ctrl-C and
 * friends keep reaching the program's own threads. */
static void ticker_start_locked(void) {
  g_ticker_wanted = 0;
  if (g_ticker_running) return;
  STORE(g_ticker_stop, 0);
  while (sem_trywait(&g_tick_sem) == 0) {
  } /* stale wake-ups */
  sigset_t all, saved;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &saved);
  __atomic_store_n(&g_ticker_accepting, 1, __ATOMIC_SEQ_CST);
  if (pthread_create(&g_ticker, NULL, ticker_main, NULL) == 0) STORE(g_ticker_running, 1);
  else __atomic_store_n(&g_ticker_accepting, 0, __ATOMIC_SEQ_CST);
  pthread_sigmask(SIG_SETMASK, &saved, NULL);
  if (LOAD(g_term_pending)) sem_post(&g_tick_sem);
}

/* Must not be called with g_mu held (the ticker takes it). */
static void ticker_stop(void) {
  if (!LOAD(g_ticker_running)) return;
  STORE(g_ticker_stop, 1);
  sem_post(&g_tick_sem);
  pthread_join(g_ticker, NULL);
  STORE(g_ticker_running, 0);
}

/* ---------------------------------------------------------------- files */

static void field_bytes(hpx_buf *b, int tag, const void *data, size_t len) {
  hpx_buf_varint(b, (uint64_t)tag);
  hpx_buf_varint(b, len);
  hpx_buf_put(b, data, len);
}

static void field_varint(hpx_buf *b, int tag, uint64_t v) {
  hpx_buf tmp = {0};
  hpx_buf_varint(&tmp, v);
  field_bytes(b, tag, tmp.data, tmp.len);
  hpx_buf_free(&tmp);
}

static void each_blob_item(hpx_buf *b, const hpx_buf *list, int tag) {
  for (size_t i = 0; i < list->len;) {
    size_t n = strnlen((const char *)list->data + i, list->len - i);
    field_bytes(b, tag, list->data + i, n);
    i += n + 1;
  }
}

static void header_body(hpx_buf *b) {
  field_varint(b, 1, g_start_wall_us);
  field_varint(b, 2, (uint64_t)getpid());
  field_varint(b, 3, (uint64_t)getppid());
  field_bytes(b, 4, pyrt_version(), strlen(pyrt_version()));
  each_blob_item(b, &g_argv, 5);
  hpx_buf s = {0};
  if (g_mode == MODE_STATS) {
    /* no sampler: stats mode records no events */
  } else if (g_sampler == SAMPLER_TABLE) {
    hpx_buf_varint(&s, (uint64_t)g_nranges);
    for (int i = 0; i < g_nranges; i++) {
      hpx_buf_varint(&s, g_bounds[i]);
      hpx_buf_f64(&s, g_probs[i]);
    }
    field_bytes(b, 6, s.data, s.len);
  } else {
    hpx_buf_f64(&s, g_mean_bytes);
    field_bytes(b, 7, s.data, s.len);
  }
  hpx_buf_free(&s);
  field_varint(b, 8, (uint64_t)g_mode);
  field_bytes(b, 9, RECORDER_NAME, strlen(RECORDER_NAME));
  field_varint(b, 10, (uint64_t)(LOAD(g_capture) ? 1 : 0));
  each_blob_item(b, &g_notes, 11);
  field_bytes(b, 12, g_hostname, strlen(g_hostname));
  if (g_attached) field_varint(b, 22, g_attach_age_us);
  if (g_native_mask) field_varint(b, TAG_NATIVE, (uint64_t)g_native_mask);
  if (g_threads) field_varint(b, TAG_THREADS, 1);
}

static void start_clock(void) {
  struct timespec wall;
  clock_gettime(CLOCK_REALTIME, &wall);
  clock_gettime(CLOCK_MONOTONIC, &g_mono0);
  g_mono0_ns = (uint64_t)g_mono0.tv_sec * 1000000000ULL + (uint64_t)g_mono0.tv_nsec;
  g_ev_last_us = 0;
  g_start_wall_us = (uint64_t)wall.tv_sec * 1000000 + (uint64_t)wall.tv_nsec / 1000;
}

static void reset_disk_counters(void) {
  g_blk_events = g_blk_traces = 0;
  g_events_written = g_traces_written = g_events_unwritten = 0;
  g_write_failed_us = 0;
  g_write_error[0] = 0;
  g_n_forks = 0;
}

/* Serialises recordings to one BASE (two hp-record runs at once, --force or not): an
 * exclusive flock() on BASE.hpm.lock, held until the profile is closed, taken before
 * BASE.hpm is created or replaced. The loser fails at once naming the holder's pid. The
 * file is removed while still locked, so a process that opened it before the removal
 * finds, after locking, that the path now names another file (or none) and starts over.
 * A copy of the descriptor in a forked child is closed there (atfork_child): flock locks
 * belong to the open file, which the child would otherwise keep locked. Returns 0 or
 * -errno with g_err set. */
static int lock_profile(void) {
  snprintf(g_lock_path, sizeof g_lock_path, "%s.hpm.lock", g_base_path);
  for (int attempt = 0; attempt < 20; attempt++) {
    int fd = open(g_lock_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
      int e = errno;
      set_err("%s: %s", g_lock_path, strerror(e));
      return -e;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
      int e = errno;
      char pid[32] = {0};
      ssize_t n = e == EWOULDBLOCK ? pread(fd, pid, sizeof pid - 1, 0) : -1;
      close(fd);
      if (e != EWOULDBLOCK) {
        set_err("%s: cannot lock: %s", g_lock_path, strerror(e));
        return -e;
      }
      long holder = n > 0 ? strtol(pid, NULL, 10) : 0;
      if (holder > 0)
        set_err("%s.hpm: another recording (pid %ld) is writing this profile; wait for it or choose another name", g_base, holder);
      else
        set_err("%s.hpm: another recording is writing this profile; wait for it or choose another name", g_base);
      return -EBUSY;
    }
    struct stat held, now;
    if (fstat(fd, &held) == 0 && stat(g_lock_path, &now) == 0 && held.st_dev == now.st_dev && held.st_ino == now.st_ino) {
      char pid[32];
      int n = snprintf(pid, sizeof pid, "%d\n", (int)getpid());
      if (ftruncate(fd, 0) == 0 && pwrite(fd, pid, (size_t)n, 0) != n) {
        /* only the error message of a loser needs it (a full disk, say) */
      }
      /* out of the program's way, like the profile's descriptors: a program that closes what
       * it did not open and opens its own files must not get (or lose) this number */
      g_lock_fd = hpx_move_fd_high(fd);
      g_lock_dev = (uint64_t)held.st_dev;
      g_lock_ino = (uint64_t)held.st_ino;
      return 0;
    }
    close(fd); /* removed or replaced by its holder meanwhile: try again */
  }
  set_err("%s: the lock file keeps changing", g_lock_path);
  return -EAGAIN;
}

static void unlock_profile(void) {
  if (g_lock_fd < 0) return;
  /* The program may have closed the descriptor (releasing the lock) and reused its number for
   * a file of its own: then neither close that nor remove a lock someone else may hold now. */
  if (hpx_fd_is(g_lock_fd, g_lock_dev, g_lock_ino)) {
    unlink(g_lock_path); /* while locked: see lock_profile */
    close(g_lock_fd);
  }
  g_lock_fd = -1;
}

/* A pause between creating the .hpm and the .hpd, for tests only (hp_debug_slow_files): the
 * moment a signal must not cut a profile in two (open_child_files). */
static unsigned g_debug_between_files_ms;

/* Creates BASE.hpm and BASE.hpd (BASE.PID.* for a followed child) and writes their
 * headers. Returns 0 or -errno with g_err set. g_mu held or single-threaded. */
static int open_profile(int child) {
  char hpm[8300], hpd[8300];
  if (child) {
    snprintf(hpm, sizeof hpm, "%s.%d.hpm", g_base_path, (int)getpid());
    snprintf(hpd, sizeof hpd, "%s.%d.hpd", g_base_path, (int)getpid());
  } else {
    snprintf(hpm, sizeof hpm, "%s.hpm", g_base);
    snprintf(hpd, sizeof hpd, "%s.hpd", g_base);
  }
  uint8_t id[16];
  if (getrandom(id, sizeof id, GRND_NONBLOCK) != (ssize_t)sizeof id) {
    uint64_t x = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32) ^ now_us();
    for (int i = 0; i < 16; i += 8) {
      uint64_t r = splitmix64(&x);
      memcpy(id + i, &r, 8);
    }
  }
  if (!child) {
    int rc = lock_profile();
    if (rc != 0) return rc;
    start_clock();
  }

  hpx_buf body = {0};
  header_body(&body);
  if (body.failed) {
    hpx_buf_free(&body);
    set_err("out of memory");
    return -ENOMEM;
  }
  int overwrite = (g_flags & FLAG_OVERWRITE) != 0;
  int rc = hpx_file_open(&g_hpm, hpm, "HPXM", id, body.data, (uint32_t)body.len, overwrite);
  hpx_buf_free(&body);
  if (rc != 0) {
    set_err("%s: %s%s", hpm, strerror(-rc), rc == -EEXIST ? " (a profile is there; overwrite it explicitly)" : "");
    if (!child) unlock_profile();
    return rc;
  }
  if (g_debug_between_files_ms) usleep((useconds_t)g_debug_between_files_ms * 1000); /* hp_debug_slow_files */
  rc = hpx_file_open(&g_hpd, hpd, "HPXD", id, NULL, 0, overwrite);
  if (rc != 0) {
    set_err("%s: %s%s", hpd, strerror(-rc), rc == -EEXIST ? " (a profile is there; overwrite it explicitly)" : "");
    hpx_file_abandon(&g_hpm);
    unlink(hpm);
    if (!child) unlock_profile();
    return rc;
  }
  return 0;
}

/* Writes the closing records and closes both files. g_mu held. */
static void finish_profile(void) {
  hpx_buf body = {0};
  hpx_buf_varint(&body, HIST_BUCKETS);
  for (int i = 0; i < HIST_BUCKETS; i++)
    for (int k = 0; k < 3; k++) hpx_buf_varint(&body, hist_value(i, k));
  emit_record(REC_HISTOGRAM, &body);
  hpx_buf_free(&body);
  hpx_buf empty = {0};
  emit_record(REC_END, &empty);
  if (g_mode == MODE_PROFILE) {
    uint64_t rss = read_rss();
    if (rss) emit_ext(EXT_RSS, &rss);
  }
  if (g_n_lost) emit_ext(EXT_LOST, &g_n_lost);
  emit_ext(EXT_END, NULL);
  flush_all();
  hpx_file_close(&g_hpm);
  hpx_file_close(&g_hpd);
  unlock_profile();
}

/* ---------------------------------------------------------------- fork and exit */

static void atfork_prepare(void) {
  t_hp.fork_saved_busy = t_hp.busy;
  t_hp.busy = 1; /* restored by atfork_parent / atfork_child */
  /* The ticker is stopped over the fork: the child would not have it anyway, and
   * CPython 3.12+ warns about fork() in a process with other threads. It restarts
   * on the next sampled event. */
  int restart = g_ticker_running;
  /* Not stop_begin: a SIGTERM handed over in this window would be copied into the child,
   * which cannot tell it from one of its own and would lose it (a pool worker forked while
   * the pool terminates then never dies). A SIGTERM now finds no ticker and acts at once. */
  ticker_stop();
  t_hp.fork_watch = watch_stop_for_fork();
  mu_lock();
  if (restart) g_ticker_wanted = 1;
  if (g_active) flush_all(); /* the parent's data is on disk before the child exists */
}

static void atfork_parent(void) {
  if (g_active && (g_flags & FLAG_FOLLOW_FORK)) g_n_forks++;
  /* A SIGTERM that came while the ticker was stopped for the fork: the ticker handles it. */
  if (LOAD(g_term_pending) && g_active) ticker_start_locked();
  threads_after_fork_parent(t_hp.fork_watch);
  mu_unlock();
  t_hp.busy = t_hp.fork_saved_busy;
}

/* Runs in the child before PyOS_AfterFork_Child: no Python API here. */
static void atfork_child(void) {
  t_hp.busy = t_hp.fork_saved_busy;
  __atomic_store_n(&g_mu, 0, __ATOMIC_RELAXED); /* held by the forking thread: this thread */
  sem_destroy(&g_tick_sem);
  ticker_init_sync();
  g_ticker_running = 0;
  g_ticker_accepting = 0;
  g_term_pending = 0; /* the parent's pending signals are not the child's */
  /* The watchdog watches hp-record's child only; the parent's parent-death signal is not
   * inherited. */
  g_watch_running = g_refork_wanted = g_refork_watch = 0;
  g_watch_pdeath = 0;
  /* A sweep the parent asked for stays asked for: its pending call is in the copied queue,
   * which this process's main thread (the forking one, from PyOS_AfterFork_Child on) runs.
   * Asking again here could take the queue's lock while CPython replaces it after the fork. */
  /* Another thread of the parent was stopping the recorder during the fork, and a SIGTERM
   * was handed to it in this copy: nobody here will act on it, so act now, as the default
   * action would have (never leave a SIGTERM swallowed: the process would not end). */
  if (__atomic_exchange_n(&g_stopping, 0, __ATOMIC_SEQ_CST) == 2) {
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    sigaction(SIGTERM, &dfl, NULL);
    raise(SIGTERM);
  }
  /* The lock stays the parent's alone (flock is shared with a copied descriptor). */
  if (g_lock_fd >= 0 && hpx_fd_is(g_lock_fd, g_lock_dev, g_lock_ino)) close(g_lock_fd);
  g_lock_fd = -1;
  if (!g_active) return;
  /* The parent owns its files and unflushed buffers (none: prepare flushed). */
  hpx_file_abandon(&g_hpm);
  hpx_file_abandon(&g_hpd);
  g_attached = 0; /* a child is recorded from its birth */
  if (!(g_flags & FLAG_FOLLOW_FORK)) {
    set_active(0);
    term_uninstall();
    return;
  }
  reset_dictionaries();
  reset_pointers(); /* the parent's live allocations are not this profile's */
  hist_reset();
  g_n_alloc = g_n_free = g_n_lost = 0;
  reset_disk_counters();
  __atomic_add_fetch(&g_epoch, 1, __ATOMIC_RELAXED);
  set_active(1); /* a gate for the new epoch: the child reseeds its sampler */
  start_clock(); /* the child's time starts at the fork */
  g_child_pending = 1;
}

/* g_mu held: a followed child's first event (or its stop) creates its files. Returns 0 if
 * the files are open, else stops recording. */
static int open_child_files(sigset_t *held) {
  if (!g_child_pending) return 0;
  g_child_pending = 0;
  /* SIGTERM waits while the files are made (a pool terminating its workers sends it at any
   * moment): before this it kills a child that has no files, after it finds them whole, but in
   * between it would leave a .hpm without its header or its .hpd. With held, it stays blocked
   * (the thread's mask before in *held) until the caller has started the ticker, which then
   * closes the profile when it comes. */
  sigset_t term, saved;
  sigemptyset(&term);
  sigaddset(&term, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &term, &saved);
  int rc = open_profile(1);
  if (rc != 0 || !held) pthread_sigmask(SIG_SETMASK, &saved, NULL);
  else *held = saved;
  if (rc != 0) {
    warn("heapprof: not recording forked child %d: %s", (int)getpid(), g_err);
    set_active(0);
    return -1;
  }
  g_ticker_wanted = 1;
  return 0;
}

static int g_exiting_done;

/* Py_AtExit (end of Py_FinalizeEx) and the library destructor: if recording is still on
 * (the Python-level atexit stop did not run), close the profile cleanly. The hooks stay
 * installed and pass through: late PyMem_RawFree calls still arrive. */
static void final_stop(void) {
  if (g_exiting_done) return;
  g_exiting_done = 1;
  uint32_t saved_busy = t_hp.busy;
  t_hp.busy = 1;
  STORE(g_capture, 0);
  stop_begin();
  mu_lock();
  if (g_active && open_child_files(NULL) == 0) {
    finish_profile();
    set_active(0);
  }
  unlock_profile(); /* also after a failed write stopped the recording */
  mu_unlock();
  stop_end();
  t_hp.busy = saved_busy;
}

__attribute__((destructor)) static void library_unload(void) {
  if (g_active) final_stop();
}

/* ---------------------------------------------------------------- exported interface */

/* Every entry point runs as "inside the hook": with --native, the allocations it causes
 * (its buffers, dladdr, pthread_create, a fork) pass straight through the interposer,
 * which could otherwise try to record them under g_mu, held by this very thread. */
#define ENTER() uint32_t saved_busy_ = t_hp.busy; t_hp.busy = 1
#define LEAVE() t_hp.busy = saved_busy_

/* Resolves CPython symbols. Returns the minor version, or -1 (hp_error() says why). */
static int hp_init_impl(void) {
  if (g_inited) return g_minor;
  g_minor = pyrt_init(g_err, sizeof g_err);
  if (g_minor < 0) return -1;
  ticker_init_sync();
  g_hpm.fd = g_hpd.fd = -1; /* not fd 0: nothing is open yet */
  if (gethostname(g_hostname, sizeof g_hostname - 1) != 0) g_hostname[0] = 0;
  if (getrandom(&g_seed, sizeof g_seed, GRND_NONBLOCK) != (ssize_t)sizeof g_seed) g_seed = (uint64_t)time(NULL);
#ifdef HAVE_TSC
  g_tsc_usable = tsc_invariant() && !getenv("HEAPPROF_NO_TSC");
#endif
  g_inited = 1;
  return g_minor;
}

EXPORT const char *hp_error(void) { return g_err; }

/* With the wrappers installed and not recording (so that every call they get goes through
 * gate_slow), the largest size up to DIRECT_PROBE_MAX for which none of the sizes 1..size,
 * allocated through domain d's original malloc (calloc), calls back into a wrapper. Every
 * size is tried: nothing is assumed about the allocator below. The GIL is held. */
static size_t probe_direct_max(int d, int use_calloc) {
  size_t size;
  for (size = 1; size <= DIRECT_PROBE_MAX; size++) {
    t_hp.nested = 0;
    t_hp.probing = 1;
    void *p = use_calloc ? g_orig[d].calloc(g_orig[d].ctx, 1, size) : g_orig[d].malloc(g_orig[d].ctx, size);
    t_hp.probing = 0;
    if (p) g_orig[d].free(g_orig[d].ctx, p);
    if (!p || t_hp.nested) break;
  }
  return size - 1;
}

/* Installs the wrappers on all three domains, once; they pass through until hp_start.
 * Call with the GIL held. Never uninstalled. */
static int hp_install_impl(void) {
  if (!g_inited) {
    set_err("hp_init was not called");
    return -1;
  }
  if (g_installed) return 0;
  static hp_allocator hooks[3] = {
      {NULL, raw_malloc, raw_calloc, raw_realloc, raw_free},
      {NULL, mem_malloc, mem_calloc, mem_realloc, mem_free},
      {NULL, obj_malloc, obj_calloc, obj_realloc, obj_free},
  };
  for (int d = 0; d < 3; d++) pyrt_get_allocator(d, &g_orig[d]);
  __atomic_thread_fence(__ATOMIC_SEQ_CST); /* g_orig visible before any hook can run */
  for (int d = 0; d < 3; d++) {
    hooks[d].ctx = g_orig[d].ctx;
    pyrt_set_allocator(d, &hooks[d]);
  }
  for (int d = 0; d < 3; d++)
    for (int c = 0; c < 2; c++) STORE(g_direct_max[d][c], g_direct_probed[d][c] = probe_direct_max(d, c));
  pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
  pyrt_at_exit(final_stop);
  g_installed = 1;
  return 0;
}

/* Starts recording to BASE.hpm / BASE.hpd.
 *   mode: 0 profile, 1 stats; sampler: 0 table (nranges bounds/probs), 1 byte-Poisson (mean_bytes)
 *   flags: 1 follow fork, 2 overwrite existing files, 4 no stack capture, 8 native allocations
 *          (interpose.c; recorded only if this library's malloc is the process's, else a
 *          one-line warning and a header note say why)
 *   argv, notes: NUL-separated lists (header fields 5 and 11)
 * Returns 0, or a negative value with hp_error() set. Call with the GIL held. */
static int hp_start_impl(const char *base, int mode, int sampler, int nranges, const uint64_t *bounds,
                    const double *probs, double mean_bytes, int flags, const char *argv, size_t argv_len,
                    const char *notes, size_t notes_len) {
  if (hp_install_impl() != 0) return -1;
  pyrt_note_runtime();
  if (mode != MODE_PROFILE && mode != MODE_STATS) return set_err("bad mode %d", mode), -EINVAL;
  if (sampler == SAMPLER_TABLE) {
    if (nranges < 0 || nranges > MAX_RANGES) return set_err("too many sampling ranges"), -EINVAL;
    for (int i = 0; i < nranges; i++) {
      if (i > 0 && bounds[i] <= bounds[i - 1]) return set_err("sampling bounds must increase"), -EINVAL;
      if (!(probs[i] >= 0.0 && probs[i] <= 1.0)) return set_err("sampling probability out of [0, 1]"), -EINVAL;
    }
  } else if (sampler == SAMPLER_POISSON) {
    if (!(mean_bytes > 0 && isfinite(mean_bytes))) return set_err("mean bytes must be positive"), -EINVAL;
  } else {
    return set_err("bad sampler %d", sampler), -EINVAL;
  }
  if (!base) base = "";
  if (mode == MODE_PROFILE && !*base) return set_err("no profile name"), -EINVAL;
  if (strlen(base) >= sizeof g_base) return set_err("profile name too long"), -ENAMETOOLONG;

  /* Before g_mu: dladdr takes the loader's lock. */
  char native_why[600] = "";
  int native_ok = (flags & FLAG_NATIVE) && mode == MODE_PROFILE && interposer_in_place(native_why, sizeof native_why);
  int native_stacks = native_ok && (flags & FLAG_NATIVE_STACKS);
  if (native_stacks) native_stacks_init();

  /* Refused while recording, before anything is touched: the ticker of the recording
   * under way must keep running. */
  mu_lock();
  int recording = g_active;
  mu_unlock();
  if (recording) return set_err("already recording to %s", g_base), -EBUSY;
  ticker_stop(); /* a ticker left from a recording a failed write ended */
  term_check();
  mu_lock();
  if (g_active) {
    mu_unlock();
    set_err("already recording to %s", g_base);
    return -EBUSY;
  }
  g_native_mask = native_ok ? (native_stacks ? 7 : 3) : 0;
  g_threads = native_ok;
  /* With native on, every PEP 445 call sets the busy flag (no tail-call path), so the
   * malloc it ends in is not counted a second time. */
  for (int d = 0; d < 3; d++)
    for (int c = 0; c < 2; c++) STORE(g_direct_max[d][c], native_ok ? 0 : g_direct_probed[d][c]);
  g_mode = mode;
  g_flags = flags;
  g_sampler = sampler;
  g_nranges = sampler == SAMPLER_TABLE ? nranges : 0;
  for (int i = 0; i < g_nranges; i++) {
    g_bounds[i] = bounds[i];
    g_probs[i] = probs[i];
    g_thresholds[i] = probs[i] >= 1.0 ? UINT64_MAX : (uint64_t)ldexp(probs[i], 64);
    g_inv_probs[i] = probs[i] > 0 ? 1.0 / probs[i] : 0;
  }
  g_inv_probs[g_nranges] = 1.0;
  g_mean_bytes = mean_bytes;
  g_sample_all = mode == MODE_PROFILE && sampler == SAMPLER_TABLE;
  for (int i = 0; i < g_nranges; i++)
    if (g_probs[i] < 1.0) g_sample_all = 0;
  plan_slots(mode);
  snprintf(g_base, sizeof g_base, "%s", base);
  char cwd[4096];
  if (base[0] == '/' || !*base || !getcwd(cwd, sizeof cwd) ||
      (size_t)snprintf(g_base_path, sizeof g_base_path, "%s/%s", cwd, base) >= sizeof g_base_path)
    snprintf(g_base_path, sizeof g_base_path, "%s", base); /* best effort: then relative */
  g_argv.len = g_notes.len = 0;
  hpx_buf_put(&g_argv, argv, argv_len);
  hpx_buf_put(&g_notes, notes, notes_len);
  if ((flags & FLAG_NATIVE) && !native_ok && mode == MODE_PROFILE) {
    char note[700];
    int len = snprintf(note, sizeof note, "native allocations not recorded: %s", native_why);
    if (len > 0) hpx_buf_put(&g_notes, note, strlen(note) + 1);
    warn("heapprof: %s", note);
  }
  STORE(g_capture, (flags & FLAG_NO_STACKS) || !pyrt_can_walk() ? 0 : 1);
  reset_dictionaries();
  reset_pointers();
  pyrt_clear_line_cache();
  hist_reset();
  g_n_alloc = g_n_free = g_n_lost = 0;
  reset_disk_counters();
  g_term_pending = 0;
  g_live_estimate = g_peak_estimate = 0;
  g_exiting_done = 0;
  g_child_pending = 0;
  tables_reset_peak();
  g_attached = g_attach_pending;
  g_attach_age_us = g_attach_age_pending;
  g_attach_pending = 0;
  /* Stats mode may run without files (heapprof.gatherStats() with no name): the
   * histogram is then only printed. */
  int rc = (base && *base) || mode == MODE_PROFILE ? open_profile(0) : 0;
  if (rc != 0) {
    mu_unlock();
    return rc;
  }
  __atomic_add_fetch(&g_epoch, 1, __ATOMIC_RELAXED);
  if (mode == MODE_PROFILE) {
    tc_calibrate();
    uint64_t rss = read_rss();
    if (rss) emit_ext(EXT_RSS, &rss);
    ticker_start_locked();
    term_install();
  }
  set_active(1);
  mu_unlock();
  return 0;
}

/* Writes the histogram and end markers and closes the files. Safe to call when idle. */
static int hp_stop_impl(void) {
  stop_begin();
  mu_lock();
  int was = g_active;
  if (was && open_child_files(NULL) == 0) {
    finish_profile();
    set_active(0);
  }
  g_ticker_wanted = 0;
  unlock_profile(); /* also after a failed write stopped the recording */
  mu_unlock();
  stop_end(); /* a SIGTERM deferred while the ticker was being stopped: die of it now */
  term_uninstall();
  return was;
}

EXPORT int hp_is_active(void) { return LOAD(g_active); }
/* The Python package refuses to start a recording from a subinterpreter (see heapprof._library).
 * Called with the GIL (ctypes.PyDLL). */
EXPORT int hp_subinterpreter(void) { return pyrt_subinterpreter(); }

/* ---------------------------------------------------------------- hp-record's watchdog */

/* If hp-record dies (kill -9 of the node process), the program must not run on,
 * orphaned, with a private directory left in /tmp. A native thread (no Python state, no
 * GIL: it works even while the program is stuck in C code) polls getppid() every
 * WATCH_POLL_MS; a descriptor (pipe, pidfd) would be closed by a program that closes
 * what it inherited. When the parent has changed: the private directory's files and the
 * directory go, buffered events are flushed, then the program gets SIGTERM (what a
 * terminal or service manager sends) and, if still alive after the grace period, SIGKILL. */
#define WATCH_POLL_MS 200
static pid_t g_watch_parent;
static int g_watch_grace_ms;
static char g_watch_dir[4096];

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

/* Removes dir's entries (files and links, not subdirectories) and dir itself. */
static void remove_private_dir(const char *dir) {
  DIR *d = opendir(dir);
  if (d) {
    char path[4400];
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
      if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
      if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, e->d_name) < sizeof path) unlink(path);
    }
    closedir(d);
  }
  rmdir(dir);
}

static void *watch_main(void *arg) {
  (void)arg;
  t_hp.busy = 1; /* the hook's own thread: its allocations (with --native) are never recorded */
  while (getppid() == g_watch_parent) {
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_nsec += WATCH_POLL_MS * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) deadline.tv_sec++, deadline.tv_nsec -= 1000000000L;
    while (!LOAD(g_watch_stop) && sem_clockwait(&g_watch_sem, CLOCK_MONOTONIC, &deadline) != 0 && errno == EINTR) {
    }
    if (LOAD(g_watch_stop)) return NULL; /* stopped for a fork (watch_stop_for_fork) */
  }
  if (g_watch_dir[0]) remove_private_dir(g_watch_dir);
  mu_lock();
  if (g_active) flush_all();
  mu_unlock();
  kill(getpid(), SIGTERM);
  sleep_ms(g_watch_grace_ms);
  kill(getpid(), SIGKILL);
  return NULL;
}

/* Starts the watchdog thread; 0 or an errno. Joinable: it is stopped over a fork. */
static int watch_start(void) {
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, 64 * 1024);
  sigset_t all, saved;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &saved); /* signals keep going to the program's threads */
  STORE(g_watch_stop, 0);
  while (sem_trywait(&g_watch_sem) == 0) {
  } /* stale wake-ups */
  int rc = pthread_create(&g_watch_tid, &attr, watch_main, NULL);
  pthread_sigmask(SIG_SETMASK, &saved, NULL);
  pthread_attr_destroy(&attr);
  if (rc == 0) STORE(g_watch_running, 1);
  return rc;
}

/* atfork_prepare: CPython 3.12+ warns (DeprecationWarning, an error under -W error) when
 * it forks with other threads in the process, counting them in /proc/self/stat after the
 * fork, so the watchdog is not there over a fork. Returns 1 if it was running. Never with
 * g_mu held: an acting watchdog takes it. */
static int watch_stop_for_fork(void) {
  if (!LOAD(g_watch_running)) return 0;
  STORE(g_watch_stop, 1);
  sem_post(&g_watch_sem);
  pthread_join(g_watch_tid, NULL);
  STORE(g_watch_running, 0);
  return 1;
}

/* atfork_parent, g_mu held: the recorder's threads stopped over the fork come back. CPython
 * before 3.12 does not count threads at a fork: at once. 3.12 and later count them just
 * after it (3.13 after the after_in_parent callbacks), so then at the first allocation
 * of any thread WATCH_REFORK_NS or more after the fork (gate_slow; see REFORK_MIN_ALLOCS), or, on 3.12, from
 * heapprof's after_in_parent callback (hp_after_fork_parent); a sampled event in between
 * does not start the ticker (record_event). Until the watchdog is back the kernel stands in:
 * a parent-death SIGTERM, unless the program set a parent-death signal of its own. */
#define WATCH_REFORK_NS 10000000ULL
/* And only once REFORK_MIN_ALLOCS allocations have come through since the fork, or a second
 * has passed: 10 ms alone is passed by a parent the scheduler leaves waiting between the fork
 * and the count (a loaded machine), whose next allocation, in an after_in_parent callback,
 * then brought the threads back before 3.13 counted them. Between the fork and the count a
 * single-threaded program makes a few dozen allocations. */
#define REFORK_MIN_ALLOCS 1000
#define REFORK_MAX_NS 1000000000ULL
static uint64_t g_refork_allocs;
static void threads_after_fork_parent(int watch_stopped) {
  int ticker = g_ticker_wanted && g_active && !LOAD(g_stopping);
  int now = g_minor >= 0 && g_minor < 12;
  if (watch_stopped && (now || getppid() != g_watch_parent)) { /* or hp-record is gone: act now */
    watch_restart();
    watch_stopped = 0;
  }
  if (ticker && now) {
    ticker_start_locked();
    ticker = 0;
  }
  if (!watch_stopped && !ticker) return;
  if (watch_stopped) {
    int sig = 0;
    if (prctl(PR_GET_PDEATHSIG, &sig) == 0 && sig == 0 && prctl(PR_SET_PDEATHSIG, SIGTERM) == 0) g_watch_pdeath = 1;
  }
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  STORE(g_refork_ns, (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec);
  STORE(g_refork_watch, watch_stopped);
  STORE(g_refork_allocs, 0);
  STORE(g_refork_wanted, 1);
  /* Any thread's allocation may bring them back: every one goes through gate_slow. */
  if (g_active) __atomic_store_n(&g_gate, GATE_REFORK, __ATOMIC_RELEASE);
}

static void watch_restart(void) {
  if (g_watch_pdeath) prctl(PR_SET_PDEATHSIG, 0), g_watch_pdeath = 0;
  uint32_t saved_busy = t_hp.busy;
  t_hp.busy = 1; /* pthread_create's allocations pass straight through */
  watch_start();
  t_hp.busy = saved_busy;
}

/* Not with g_mu held: the threads after a fork, now. */
static void threads_restart(void) {
  if (!__atomic_exchange_n(&g_refork_wanted, 0, __ATOMIC_ACQ_REL)) return;
  uint32_t saved_busy = t_hp.busy;
  t_hp.busy = 1; /* pthread_create's allocations pass straight through */
  if (__atomic_exchange_n(&g_refork_watch, 0, __ATOMIC_ACQ_REL) && !LOAD(g_watch_running)) watch_restart();
  mu_lock();
  if (LOAD(g_gate) == GATE_REFORK) __atomic_store_n(&g_gate, g_active ? (uint64_t)LOAD(g_epoch) << 32 : GATE_OFF, __ATOMIC_RELEASE);
  if (g_active && g_ticker_wanted && !g_ticker_running && !LOAD(g_stopping)) ticker_start_locked();
  mu_unlock();
  t_hp.busy = saved_busy;
}

/* gate_slow, while g_refork_wanted (busy clear, g_mu not held): restarts the threads once
 * the fork is far enough behind. */
static int threads_restart_due(void) {
  uint64_t n = ADD(g_refork_allocs, 1);
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  uint64_t now = (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
  uint64_t since = now - LOAD(g_refork_ns);
  if (since < WATCH_REFORK_NS || (n < REFORK_MIN_ALLOCS && since < REFORK_MAX_NS)) return 1;
  threads_restart();
  return 0;
}

/* Starts the watchdog for hp-record (pid parent; if it is already gone, the watchdog
 * acts at once): private_dir ("" for none) is removed when it acts, and SIGKILL follows
 * SIGTERM after grace_ms. Once per process; 0, or -errno. */
static int hp_watch_parent_impl(int parent, int grace_ms, const char *private_dir) {
  static int started;
  if (started) return -EBUSY;
  if (!private_dir) private_dir = "";
  if (strlen(private_dir) >= sizeof g_watch_dir) return -ENAMETOOLONG;
  g_watch_parent = (pid_t)parent;
  g_watch_grace_ms = grace_ms > 0 ? grace_ms : 0;
  snprintf(g_watch_dir, sizeof g_watch_dir, "%s", private_dir);
  sem_init(&g_watch_sem, 0, 0);
  int rc = watch_start();
  if (rc != 0) return -rc;
  started = 1;
  return 0;
}

/* The next hp_start records an attach (hp-record --pid): header tag 22 with the process's
 * age in µs at that moment. Call with the GIL held, before hp_start. */
EXPORT void hp_set_attached(uint64_t process_age_us) {
  g_attach_pending = 1;
  g_attach_age_pending = process_age_us;
}

static void hp_flush_impl(void) {
  mu_lock();
  if (g_active) flush_all();
  mu_unlock();
}

/* A named instant (heapprof.mark): a MARK record (id, time, label) in .hpm and, at the same
 * time, an EXT MARK event naming its id in .hpd, so that it sits between the events around it.
 * Called with the GIL from Python; it allocates from libc only. Returns the mark id, or 0
 * when no profile is being recorded. */
static int hp_mark_impl(const char *label, size_t len) {
  int id = 0;
  mu_lock();
  if (g_active && g_mode == MODE_PROFILE && open_child_files(NULL) == 0) {
    uint64_t now = event_now_us();
    if (now < g_ev_last_us) now = g_ev_last_us; /* event times never go back */
    id = (int)++g_next_mark;
    hpx_buf body = {0};
    hpx_buf_varint(&body, (uint64_t)id);
    hpx_buf_varint(&body, now);
    hpx_buf_put(&body, label, len);
    emit_record(REC_MARK, &body); /* .hpm blocks are flushed before .hpd blocks */
    hpx_buf_free(&body);
    uint64_t rest[2] = {varint_len((uint64_t)id), (uint64_t)id};
    emit_event(((uint64_t)EXT_MARK << 2) | EV_EXT, now, rest, 2);
  }
  mu_unlock();
  return id;
}

/* While on, the calling thread's allocations and frees pass straight through, unseen (its busy
 * flag, as if it were inside the hook): the pytest plugin reads the profile being recorded
 * without recording its own reading. A block sampled before and freed meanwhile stays live in
 * the profile (until its address is reused). Call with the GIL, never from inside the hook. */
EXPORT void hp_ignore_thread(int on) { t_hp.busy = on ? 1 : 0; }

/* Copies the size histogram: HIST_BUCKETS x (count, bytes, sampled). */
EXPORT int hp_histogram(uint64_t *out, int max_buckets) {
  int n = max_buckets < HIST_BUCKETS ? max_buckets : HIST_BUCKETS;
  for (int i = 0; i < n; i++)
    for (int k = 0; k < 3; k++) out[i * 3 + k] = hist_value(i, k);
  return n;
}

/* alloc events, free events, traces, bytes written to .hpm, to .hpd, lost events. */
static void hp_counters_impl(uint64_t out[6]) {
  mu_lock();
  out[0] = g_n_alloc;
  out[1] = g_n_free;
  out[2] = g_next_trace;
  out[3] = g_hpm.written;
  out[4] = g_hpd.written;
  out[5] = g_n_lost;
  mu_unlock();
}

/* What reached the disk: alloc and free events written, trace records written, events
 * recorded but never written (a failed write stopped the recording), the time of that
 * failure in microseconds since the start (0: none), followed forks so far. */
EXPORT void hp_disk_counters(uint64_t out[5]) {
  mu_lock();
  out[0] = g_events_written;
  out[1] = g_traces_written;
  out[2] = g_events_unwritten;
  out[3] = g_write_failed_us;
  out[4] = g_n_forks;
  mu_unlock();
}

/* Why the recording stopped early ("write run.hpd: No space left on device"), or "". */
EXPORT const char *hp_write_error(void) { return g_write_error; }

/* The hook's own memory in bytes: out[0] now, out[1] the peak since the recording
 * started (pointer table, interning tables, free filters; not the two block buffers). */
EXPORT void hp_memory(uint64_t out[2]) {
  mu_lock();
  tables_memory(&out[0], &out[1]);
  mu_unlock();
}

/* The native walk of the caller's stack, for the start-up self-test: one line per frame,
 * innermost first, "function\tfile\tline\n". Returns the number of frames, or -1 if the
 * calling thread does not hold the GIL or the walk is unsupported. Call with the GIL. */
static int hp_debug_walk_impl(char *out, size_t cap) {
  static char name[1024], file[4096];
  hp_rawframe frames[MAX_DEPTH];
  uint32_t dropped = 0;
  int subinterpreter;
  void *tstate = pyrt_gil_tstate(&subinterpreter);
  if (!tstate || !pyrt_can_walk() || cap == 0) return -1;
  int n = pyrt_walk(tstate, frames, MAX_DEPTH, &dropped, 0);
  size_t o = 0;
  out[0] = 0;
  mu_lock(); /* pyrt_code_names uses shared scratch */
  for (int i = 0; i < n && o < cap; i++) {
    pyrt_code_names(frames[i].code, name, sizeof name, file, sizeof file);
    int w = snprintf(out + o, cap - o, "%s\t%s\t%d\n", name, file, (int)frames[i].line);
    if (w < 0) break;
    o += (size_t)w;
  }
  mu_unlock();
  return n;
}

/* The event clock (see its section): out[0] 1 if events use the TSC now, out[1] its ns per
 * tick << 32, out[2] the largest difference between its prediction and the clock at a tick
 * (ns), out[3] readings taken, out[4] rates dropped. */
/* The sampler's log of a uniform draw k / 2^53 (log_of_unit), for its test against libm. */
EXPORT double hp_debug_log_unit(uint64_t k) { return k >= 1 && k <= ((uint64_t)1 << 53) ? log_of_unit(k) : NAN; }

/* Tests: each profile's .hpd is created ms milliseconds after its .hpm (0: at once). */
EXPORT void hp_debug_slow_files(unsigned ms) { g_debug_between_files_ms = ms; }

EXPORT void hp_debug_clock(uint64_t out[5]) {
  ENTER();
  mu_lock();
  out[0] = g_tc.mult != 0;
  out[1] = g_tc.mult;
  out[2] = g_tc.max_dev_ns;
  out[3] = g_tc.calibrations;
  out[4] = g_tc.drops;
  mu_unlock();
  LEAVE();
}

/* Turns stack capture off (e.g. a failed self-test) or back on where supported. */
EXPORT void hp_no_stderr(void) { STORE(g_no_stderr, 1); }

EXPORT void hp_set_capture(int on) { STORE(g_capture, on && pyrt_can_walk() ? 1 : 0); }
EXPORT int hp_capture(void) { return LOAD(g_capture); }

/* The entry points proper: each runs with the busy flag set (ENTER/LEAVE, above). */
EXPORT int hp_init(void) {
  ENTER();
  int rc = hp_init_impl();
  LEAVE();
  return rc;
}
EXPORT int hp_install(void) {
  ENTER();
  int rc = hp_install_impl();
  LEAVE();
  return rc;
}
EXPORT int hp_start(const char *base, int mode, int sampler, int nranges, const uint64_t *bounds, const double *probs,
                    double mean_bytes, int flags, const char *argv, size_t argv_len, const char *notes,
                    size_t notes_len) {
  ENTER();
  int rc = hp_start_impl(base, mode, sampler, nranges, bounds, probs, mean_bytes, flags, argv, argv_len, notes,
                         notes_len);
  LEAVE();
  return rc;
}
EXPORT int hp_stop(void) {
  ENTER();
  int rc = hp_stop_impl();
  LEAVE();
  return rc;
}
EXPORT void hp_flush(void) {
  ENTER();
  hp_flush_impl();
  LEAVE();
}
/* hp_mark allocates its record while holding g_mu, and the watchdog's thread comes from libc:
 * with the C allocator interposed (--native) an unflagged call could record itself and wait
 * on g_mu. */
EXPORT int hp_mark(const char *label, size_t len) {
  ENTER();
  int id = hp_mark_impl(label, len);
  LEAVE();
  return id;
}
/* heapprof's os.register_at_fork(after_in_parent=...): on CPython 3.12, where it runs after
 * the fork's thread count, the recorder's threads come back now (threads_after_fork_parent). */
EXPORT void hp_after_fork_parent(void) {
  ENTER();
  if (g_minor == 12) threads_restart();
  LEAVE();
}
EXPORT int hp_watch_parent(int parent, int grace_ms, const char *private_dir) {
  ENTER();
  int rc = hp_watch_parent_impl(parent, grace_ms, private_dir);
  LEAVE();
  return rc;
}
EXPORT void hp_counters(uint64_t out[6]) {
  ENTER();
  hp_counters_impl(out);
  LEAVE();
}
EXPORT int hp_debug_walk(char *out, size_t cap) {
  ENTER();
  int rc = hp_debug_walk_impl(out, cap);
  LEAVE();
  return rc;
}

/* The peak of the recorded heap's estimated live bytes in the current (or last) recording. */
EXPORT double hp_peak_estimate(void) { return g_peak_estimate; }

/* Whether native allocations are being recorded (hp-record --native, preloaded). */
EXPORT int hp_native(void) { return LOAD(g_native_mask) != 0; }

/* python/heapprof/__init__.py's os._exit and os.exec* wrappers: see pyrt_wrap_builtin. */
EXPORT void *hp_wrap_builtin(void *real, void *before, void *self, void *module, const char *name, const char *doc) {
  return pyrt_wrap_builtin(real, before, self, module, name, doc);
}

/* The C allocator interposer (hp-record --native); see its header comment. */
#include "interpose.c"
