/* The CPython runtime as the allocator hook sees it: symbols resolved with dlsym (no
 * Python.h), the running minor version, the "does this thread hold the GIL" test, and a
 * per-version stack walk that never allocates, never runs Python code and never takes the GIL. */
#ifndef HEAPPROF_PYRT_H
#define HEAPPROF_PYRT_H

#include <stddef.h>
#include <stdint.h>

/* PEP 445, declared here because the library is built without Python headers. */
typedef struct {
  void *ctx;
  void *(*malloc)(void *ctx, size_t size);
  void *(*calloc)(void *ctx, size_t nelem, size_t elsize);
  void *(*realloc)(void *ctx, void *ptr, size_t new_size);
  void (*free)(void *ctx, void *ptr);
} hp_allocator;

enum { HP_DOMAIN_RAW = 0, HP_DOMAIN_MEM = 1, HP_DOMAIN_OBJ = 2 };

/* One Python frame as walked: the (pinned-later) code object and the line being executed,
 * or, straight from pyrt_walk_positions, its position (see there). No padding: an array
 * of these is hashed and compared as bytes. */
typedef struct {
  void *code;
  int64_t line;
} hp_rawframe;

/* Resolves every symbol; returns the CPython minor version (9..13) or -1 with a message in err. */
int pyrt_init(char *err, size_t errlen);
/* Whether pyrt_walk is implemented for the running version (set by pyrt_init). */
int pyrt_can_walk(void);
const char *pyrt_version(void);

void pyrt_get_allocator(int domain, hp_allocator *out);
void pyrt_set_allocator(int domain, hp_allocator *in);
int pyrt_at_exit(void (*fn)(void));

/* The calling thread's PyThreadState if it holds the main interpreter's GIL and the
 * runtime is not finalizing, else NULL, with *subinterpreter set to 1 when the thread
 * holds a subinterpreter's GIL instead (always detected on 3.12+; before 3.12 only on a
 * thread whose own thread state belongs to the subinterpreter). Never blocks, never allocates. */
void *pyrt_gil_tstate(int *subinterpreter);
/* Notes the main interpreter for pyrt_gil_tstate (at each recording's start), and checks
 * its direct reads of CPython's state against the API (see pyrt.c); with the GIL. */
void pyrt_note_runtime(void);

/* 3.11+, native recording only: this thread's own PyThreadState when it does NOT hold
 * the GIL (a C call that released it: ctypes, sqlite3, I/O), else NULL. Only this thread
 * pushes and pops its frames, and while it runs C code without the GIL they stay as they
 * are, so pyrt_walk_positions may read them (struct reads, no reference counting, no
 * allocation). Its code objects may not be pinned (that needs the GIL): see hook.c. */
void *pyrt_own_tstate_nogil(void);

/* Walks the Python stack of tstate (which must be pyrt_gil_tstate()), innermost first,
 * into out[0..cap). Returns the number stored; *dropped receives how many outer frames
 * did not fit. Never allocates, never runs Python code. Requires the GIL. use_cache:
 * memoize line numbers by (code, offset), only for walks whose code objects get pinned. */
/* Outer frames past the cap are counted up to this many, then the walk stops: a stack
 * deeper than cap + HP_MAX_DROPPED reports HP_MAX_DROPPED (that many or more). Counting
 * them all made every sampled allocation of a recursion D frames deep cost O(D). */
#define HP_MAX_DROPPED 1000
int pyrt_walk(void *tstate, hp_rawframe *out, int cap, uint32_t *dropped, int use_cache);

/* pyrt_walk in two steps. The walk stores a position per frame in .line: on 3.11+ the
 * byte offset of the frame's instruction, of which the line is a function (for a given
 * code object), on 3.9/3.10 the line itself. (code, position) is thus an exact key for
 * (code, line), and pyrt_lines, which turns positions into lines in place (a line table
 * scan on a cache miss), can be left for stacks not seen before. Same rules as pyrt_walk.
 * *hash receives a hash of the (code, position) pairs stored, computed on the way (the
 * hook's stack cache goes on from it). */
int pyrt_walk_positions(void *tstate, hp_rawframe *out, int cap, uint32_t *dropped, uint64_t *hash, int use_cache);
void pyrt_lines(hp_rawframe *frames, int n, int use_cache);

/* Forgets every cached line number (see pyrt_walk's use_cache). Requires the GIL. */
void pyrt_clear_line_cache(void);

/* Copies a code object's co_name and co_filename as UTF-8 (NUL-terminated, truncated
 * to fit). Requires the GIL; never allocates (no UTF-8 cache is created). */
void pyrt_code_names(void *code, char *name, size_t name_cap, char *file, size_t file_cap);

/* Py_IncRef, to pin a code object so its address is never reused. Requires the GIL. */
void pyrt_incref(void *obj);
/* Py_DecRef, which may free obj and run any Python code: never inside an allocator call.
 * Requires the GIL. */
void pyrt_decref(void *obj);
/* obj's reference count; stable only under the GIL. */
intptr_t pyrt_refcnt(void *obj);
int pyrt_finalizing(void);
/* Whether this thread, holding a GIL, runs a subinterpreter (0 before pyrt_init). */
int pyrt_subinterpreter(void);

/* A call the main thread makes at its next safe point between bytecodes, with the GIL and
 * outside any allocator call: Python's pending calls. Who may ask for one without harm:
 * - PYRT_PENDING_GIL_HOLDER (3.9-3.12): a thread holding the main interpreter's GIL, also
 *   inside an allocator call (the queue's lock is a plain lock there, never held by a thread
 *   that allocates). Another thread would not wake the main thread: before 3.13 the eval
 *   loop's breaker is computed for the thread that asks.
 * - PYRT_PENDING_ANY_THREAD (3.13): only a thread without a Python thread state, such as the
 *   hook's ticker. 3.13 sets the main thread's own breaker from anywhere, but its queue lock
 *   would let a thread with a state drop the GIL while it waits, inside an allocator call.
 * - PYRT_PENDING_NONE: this CPython lacks the entry point.
 * pyrt_add_pending returns 0, or -1 when the queue is full (try again later) or absent. */
enum { PYRT_PENDING_NONE, PYRT_PENDING_GIL_HOLDER, PYRT_PENDING_ANY_THREAD };
int pyrt_pending_from(void);
int pyrt_add_pending(int (*fn)(void *), void *arg);

/* A builtin function named `name` (its __self__ `self`, its __module__ `module`, its docstring
 * and text signature from `doc`) that calls `before` and then `real` with its own arguments
 * (see pyrt.c). A new reference; None when it cannot be made. At most 8 in a process; they
 * are never freed. Requires the GIL. */
void *pyrt_wrap_builtin(void *real, void *before, void *self, void *module, const char *name, const char *doc);

#endif
