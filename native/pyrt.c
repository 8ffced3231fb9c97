/* CPython access for the allocator hook without Python.h: dlsym'd entry points and the
 * per-version stack walk of reference/stack-capture.md section 4.4.
 *
 * Offsets below come from native/tools/offsets.sh (offsetof against each version's own
 * headers, 64-bit release builds); on 3.13 the frame and code offsets are read from
 * _PyRuntime.debug_offsets instead and the hard-coded ones only cross-check them. Wrong
 * offsets give plausible but wrong stacks, so the Python side runs a self-test against
 * traceback before enabling capture (heapprof/_selftest.py). */
#define _GNU_SOURCE
#include "pyrt.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void *(*fn_ptr_void)(void);
typedef const char *(*fn_cstr_void)(void);
typedef int (*fn_int_void)(void);

static struct {
  void (*get_allocator)(int, hp_allocator *);
  void (*set_allocator)(int, hp_allocator *);
  int (*at_exit)(void (*)(void));
  void *(*tstate_unchecked)(void);
  void *(*gilstate_this)(void);
  void *(*tstate_interp)(void *);
  void *(*interp_main)(void);
  int (*is_finalizing)(void);
  void (*incref)(void *);
  void (*decref)(void *);
  intptr_t (*unicode_length)(void *);
  uint32_t *(*unicode_as_ucs4)(void *, uint32_t *, intptr_t, int);
  /* 3.9/3.10 */
  void *(*tstate_get_frame)(void *);
  void *(*frame_get_back)(void *);
  void *(*frame_get_code)(void *);
  int (*frame_get_line)(void *);
  /* 3.11+ */
  int (*code_addr2line)(void *, int);
  void *code_type; /* 3.13 */
  /* Pending calls (see pyrt_add_pending): Py_AddPendingCall on 3.12+, the interpreter's own
   * on 3.9-3.11. Optional: without them pins are never released. */
  int (*add_pending)(int (*)(void *), void *);
  int (*add_pending_interp)(void *, int (*)(void *), void *);
} py;

static int g_minor = -1;
static int g_can_walk;
static int g_walk_313_fixed; /* 3.13's debug offsets are the constants of walk_313 */
static char g_version[256];

/* Layout of the structs the walk reads, per minor. */
static struct {
  size_t frame_lasti, frame_trace; /* 3.9/3.10 PyFrameObject */
  size_t code_filename, code_name, code_firsttraceable, code_adaptive;
  size_t ts_cframe, cframe_current; /* 3.11/3.12 */
  size_t ts_current_frame;          /* 3.13 */
  size_t fr_code, fr_previous, fr_instr, fr_owner;
} off;

/* Frame owners (pycore_frame.h): 1 = generator, 3 = C stack shim (3.12+). */
enum { OWNED_BY_GENERATOR = 1, OWNED_BY_CSTACK = 3 };

static void *sym(const char *name) { return dlsym(RTLD_DEFAULT, name); }

#define AT(base, o, type) (*(type *)((char *)(base) + (o)))

static int fail(char *err, size_t errlen, const char *msg, const char *arg) {
  snprintf(err, errlen, "%s%s", msg, arg ? arg : "");
  return -1;
}

/* 3.13: take the offsets from _PyRuntime.debug_offsets, the layout the interpreter itself
 * publishes for debuggers. The positions inside that struct are from the 3.13 header. */
static int load_debug_offsets_313(char *err, size_t errlen) {
  const unsigned char *rt = sym("_PyRuntime");
  if (!rt) return fail(err, errlen, "symbol _PyRuntime not found", NULL);
  if (memcmp(rt, "xdebugpy", 8) != 0) return fail(err, errlen, "_PyRuntime.debug_offsets: bad cookie", NULL);
  uint64_t version, free_threaded;
  memcpy(&version, rt + 8, 8);
  memcpy(&free_threaded, rt + 16, 8);
  if ((version >> 16) != 0x030D) return fail(err, errlen, "_PyRuntime.debug_offsets: not 3.13", NULL);
  if (free_threaded) return fail(err, errlen, "free-threaded CPython is not supported", NULL);
#define D(at) (*(const uint64_t *)(rt + (at)))
  off.ts_current_frame = D(184);
  off.fr_previous = D(232);
  off.fr_code = D(240); /* f_executable */
  off.fr_instr = D(248);
  off.fr_owner = D(264);
  off.code_filename = D(280);
  off.code_name = D(288);
  off.code_adaptive = D(344);
#undef D
  /* Not published in debug_offsets; offsetof against the 3.13.0 header. */
  off.code_firsttraceable = 184;
  if (off.ts_current_frame != 72 || off.fr_code != 0 || off.fr_previous != 8 || off.fr_owner != 70 ||
      off.code_adaptive != 200)
    return fail(err, errlen, "_PyRuntime.debug_offsets: unexpected 3.13 layout", NULL);
  g_walk_313_fixed = off.fr_instr == 56; /* the rest is checked above: walk_313's constants */
  return 0;
}

int pyrt_init(char *err, size_t errlen) {
  fn_cstr_void get_version = (fn_cstr_void)sym("Py_GetVersion");
  if (!get_version) return fail(err, errlen, "not inside CPython: symbol Py_GetVersion not found", NULL);
  snprintf(g_version, sizeof g_version, "%s", get_version());
  int major = 0, minor = 0;
  if (sscanf(g_version, "%d.%d", &major, &minor) != 2 || major != 3)
    return fail(err, errlen, "cannot parse Py_GetVersion(): ", g_version);

#define NEED(field, name)                                                      \
  do {                                                                         \
    *(void **)&py.field = sym(name);                                           \
    if (!py.field) return fail(err, errlen, "symbol not found: ", name);       \
  } while (0)
  NEED(get_allocator, "PyMem_GetAllocator");
  NEED(set_allocator, "PyMem_SetAllocator");
  NEED(at_exit, "Py_AtExit");
  NEED(gilstate_this, "PyGILState_GetThisThreadState");
  NEED(incref, "Py_IncRef");
  NEED(decref, "Py_DecRef");
  NEED(unicode_length, "PyUnicode_GetLength");
  NEED(unicode_as_ucs4, "PyUnicode_AsUCS4");
  /* Newer names first: the old ones are macros or gone in 3.13. */
  *(void **)&py.tstate_unchecked = sym("PyThreadState_GetUnchecked");
  if (!py.tstate_unchecked) NEED(tstate_unchecked, "_PyThreadState_UncheckedGet");
  *(void **)&py.is_finalizing = sym("Py_IsFinalizing");
  if (!py.is_finalizing) NEED(is_finalizing, "_Py_IsFinalizing");

  g_minor = minor;
  g_can_walk = 0;
  switch (minor) {
  case 9:
  case 10:
    NEED(tstate_get_frame, "PyThreadState_GetFrame");
    NEED(frame_get_back, "PyFrame_GetBack");
    NEED(frame_get_code, "PyFrame_GetCode");
    NEED(frame_get_line, "PyFrame_GetLineNumber");
    off.code_filename = 104;
    off.code_name = 112;
    off.frame_lasti = minor == 9 ? 104 : 96;
    off.frame_trace = minor == 9 ? 80 : 72;
    break;
  case 11:
    NEED(code_addr2line, "PyCode_Addr2Line");
    off.code_filename = 112, off.code_name = 120, off.code_firsttraceable = 168, off.code_adaptive = 184;
    off.ts_cframe = 56, off.cframe_current = 8;
    off.fr_code = 32, off.fr_previous = 48, off.fr_instr = 56, off.fr_owner = 69;
    break;
  case 12:
    NEED(code_addr2line, "PyCode_Addr2Line");
    off.code_filename = 112, off.code_name = 120, off.code_firsttraceable = 176, off.code_adaptive = 192;
    off.ts_cframe = 56, off.cframe_current = 0;
    off.fr_code = 0, off.fr_previous = 8, off.fr_instr = 56, off.fr_owner = 70;
    break;
  case 13:
    NEED(code_addr2line, "PyCode_Addr2Line");
    NEED(code_type, "PyCode_Type");
    if (load_debug_offsets_313(err, errlen) != 0) return -1;
    break;
  default:
    snprintf(err, errlen, "CPython %d.%d is not supported (heapprof records 3.9 to 3.13)", major, minor);
    return -1;
  }
  /* 3.9+ (after the version check, so that 3.8 gets its clear message). */
  NEED(tstate_interp, "PyThreadState_GetInterpreter");
  NEED(interp_main, "PyInterpreterState_Main");
#undef NEED
  /* Before 3.12 Py_AddPendingCall reads the tstate of whichever thread holds the GIL, which
   * that thread may be deleting meanwhile: name the main interpreter ourselves. */
  if (minor >= 12) *(void **)&py.add_pending = sym("Py_AddPendingCall");
  else *(void **)&py.add_pending_interp = sym("_PyEval_AddPendingCall");
  g_can_walk = 1;
  return minor;
}

int pyrt_can_walk(void) { return g_can_walk; }
const char *pyrt_version(void) { return g_version; }
void pyrt_get_allocator(int domain, hp_allocator *out) { py.get_allocator(domain, out); }
void pyrt_set_allocator(int domain, hp_allocator *in) { py.set_allocator(domain, in); }
int pyrt_at_exit(void (*fn)(void)) { return py.at_exit(fn); }
void pyrt_incref(void *obj) { py.incref(obj); }
void pyrt_decref(void *obj) { py.decref(obj); }
intptr_t pyrt_refcnt(void *obj) { return AT(obj, 0, intptr_t); } /* ob_refcnt (not free-threaded, see pyrt_init) */
int pyrt_finalizing(void) { return py.is_finalizing(); }

int pyrt_pending_from(void) {
  if (g_minor >= 13) return py.add_pending ? PYRT_PENDING_ANY_THREAD : PYRT_PENDING_NONE;
  return py.add_pending || py.add_pending_interp ? PYRT_PENDING_GIL_HOLDER : PYRT_PENDING_NONE;
}

int pyrt_add_pending(int (*fn)(void *), void *arg) {
  if (py.add_pending_interp) return py.add_pending_interp(py.interp_main(), fn, arg);
  return py.add_pending ? py.add_pending(fn, arg) : -1;
}

/* ---- Builtins that call something first (os._exit, os.execv, os.execve) ----
 *
 * heapprof closes or flushes the profile before the program leaves by os._exit or replaces
 * itself by an exec, which atexit never sees. A Python function in their place would differ
 * from the originals for a program that looks (inspect.isbuiltin, type(), pickling by name,
 * positional-only arguments): these wrappers are builtin functions like the originals, with
 * their name, module, __self__ and text signature, that call `before` (its exception, if any,
 * reported as unraisable: the exit or exec happens whatever it does) and then the original
 * with the same arguments, returning or raising what it does. */

#define PYRT_WRAPS 8
#define PY_METH_VARARGS 0x0001
#define PY_METH_KEYWORDS 0x0002

typedef struct {
  const char *ml_name;
  void *ml_meth;
  int ml_flags;
  const char *ml_doc;
} py_method_def; /* PyMethodDef, a stable-ABI struct */

static struct {
  void *real, *before;
} g_wraps[PYRT_WRAPS];
static py_method_def g_wrap_defs[PYRT_WRAPS];
static int g_nwraps;

static struct {
  void *(*call)(void *, void *, void *);
  void *(*call_object)(void *, void *);
  void (*write_unraisable)(void *);
  void (*decref)(void *);
  void *(*cfunction_new)(void *, void *, void *);
  void (*err_clear)(void);
  void *none;
} wp;

static void *wrap_call(int k, void *args, void *kwargs) {
  void *r = wp.call_object(g_wraps[k].before, NULL);
  if (r) wp.decref(r);
  else wp.write_unraisable(g_wraps[k].before);
  return wp.call(g_wraps[k].real, args, kwargs);
}

#define WRAP_FN(k) \
  static void *wrap_##k(void *self, void *args, void *kwargs) { return (void)self, wrap_call(k, args, kwargs); }
WRAP_FN(0)
WRAP_FN(1)
WRAP_FN(2)
WRAP_FN(3)
WRAP_FN(4)
WRAP_FN(5)
WRAP_FN(6)
WRAP_FN(7)
static void *(*const g_wrap_fns[PYRT_WRAPS])(void *, void *, void *) = {wrap_0, wrap_1, wrap_2, wrap_3,
                                                                        wrap_4, wrap_5, wrap_6, wrap_7};

void *pyrt_wrap_builtin(void *real, void *before, void *self, void *module, const char *name, const char *doc) {
  if (!wp.call) {
    wp.call = (void *(*)(void *, void *, void *))sym("PyObject_Call");
    wp.call_object = (void *(*)(void *, void *))sym("PyObject_CallObject");
    wp.write_unraisable = (void (*)(void *))sym("PyErr_WriteUnraisable");
    wp.decref = (void (*)(void *))sym("Py_DecRef");
    wp.cfunction_new = (void *(*)(void *, void *, void *))sym("PyCFunction_NewEx");
    wp.err_clear = (void (*)(void))sym("PyErr_Clear");
    wp.none = sym("_Py_NoneStruct");
  }
  /* Failing, None: never NULL, which some ctypes versions (3.11's GetResult) dereference. */
  void (*incref)(void *) = (void (*)(void *))sym("Py_IncRef");
  if (!incref || !wp.none) return NULL; /* not inside CPython: nobody can call this */
  incref(wp.none);
  if (!wp.call || !wp.call_object || !wp.write_unraisable || !wp.decref || !wp.cfunction_new || !wp.err_clear) return wp.none;
  if (g_nwraps >= PYRT_WRAPS || !real || !before || !name) return wp.none;
  /* The definition and what it points to live as long as the process: the builtin keeps
   * pointing at them. */
  char *n = strdup(name), *d = doc ? strdup(doc) : NULL;
  if (!n || (doc && !d)) {
    free(n);
    free(d);
    return wp.none;
  }
  int k = g_nwraps;
  incref(real);
  incref(before);
  g_wraps[k].real = real;
  g_wraps[k].before = before;
  g_wrap_defs[k] = (py_method_def){n, (void *)g_wrap_fns[k], PY_METH_VARARGS | PY_METH_KEYWORDS, d};
  void *fn = wp.cfunction_new(&g_wrap_defs[k], self, module);
  if (!fn) {
    wp.err_clear();
    wp.decref(real);
    wp.decref(before);
    return wp.none;
  }
  g_nwraps++;
  wp.decref(wp.none);
  return fn;
}

/* The main interpreter (PyInterpreterState_Main), noted when a recording starts: it stays
 * the same until finalization, after which the hook records nothing (is_finalizing is
 * checked first, and the hook goes pass-through at Py_AtExit), so each sampled event
 * need not call into CPython for it. NULL before the first note: call. */
static void *g_interp_main;

/* The GIL test without calls into CPython. Asked through the API, it took five calls per
 * sampled allocation (the current and this thread's thread states, finalizing, the
 * interpreter; ~70 instructions with pthread_getspecific, and CPython's code for them
 * fetched cold at every sample). The same values are read where those functions read them:
 * in _PyRuntime (_finalizing; 3.9-3.11 gilstate.tstate_current; the autoTSSkey whose
 * pthread key holds this thread's own thread state) and PyThreadState.interp. Offsets from
 * native/tools/offsets.sh (offsetof against each version's headers; 3.13's finalizing from
 * its debug offsets). They are private, so they are trusted only after pyrt_note_runtime
 * has compared every direct read with its API call on a thread holding the GIL; until
 * then, or if any differs, the API is asked as before. 3.12+ keeps one call for the
 * current thread state, a C thread-local there. */
static struct {
  int ok;                   /* checked at the last note: pyrt_gil_tstate reads directly */
  const char *rt;           /* &_PyRuntime */
  size_t finalizing;        /* _PyRuntimeState._finalizing */
  size_t tstate_current;    /* 3.9-3.11: gilstate.tstate_current; 0 on 3.12+ */
  pthread_key_t key;        /* its key, read at the note (fixed from init to finalization) */
} g_direct;

#define TSTATE_INTERP 16 /* PyThreadState.interp, 3.9-3.13 */

static void *direct_current(void) {
  if (g_direct.tstate_current) return __atomic_load_n((void *const *)(g_direct.rt + g_direct.tstate_current), __ATOMIC_RELAXED);
  return py.tstate_unchecked();
}

static int direct_finalizing(void) {
  return __atomic_load_n((void *const *)(g_direct.rt + g_direct.finalizing), __ATOMIC_RELAXED) != NULL;
}

/* PyGILState_GetThisThreadState, which also answers NULL while the gilstate machinery is
 * not set up (autoInterpreterState NULL, 3.9-3.11; the key not initialized, 3.12+): only
 * asked when not finalizing (it is set up from before the first Python code runs until
 * finalization has started), after a note that found it set up. A key deleted meanwhile
 * (Py_Finalize, then Py_Initialize again, between two notes) answers NULL or another
 * value than the current thread state: "not ours", never a wrong stack. */
static inline void *direct_own(void) { return pthread_getspecific(g_direct.key); }

/* Offsets for this minor, then every direct read compared with the API (the caller holds
 * the GIL: its current and own thread states are the same non-NULL one). */
static int direct_check(void) {
  const char *rt = sym("_PyRuntime");
  if (!rt) return 0;
  size_t fin, cur = 0, auto_interp = 0, tss;
  switch (g_minor) {
  case 9:
  case 10: fin = 16, cur = 568, auto_interp = 576, tss = 584; break;
  case 11: fin = 24, cur = 576, auto_interp = 584, tss = 592; break;
  case 12: fin = 24, tss = 1544; break;
  case 13:
    memcpy(&fin, rt + 32, sizeof fin); /* debug_offsets.runtime_state.finalizing */
    tss = 2160;
    break;
  default: return 0;
  }
  g_direct.rt = rt, g_direct.finalizing = fin, g_direct.tstate_current = cur;
  int initialized;
  void *auto_interp_state = NULL;
  memcpy(&initialized, rt + tss, sizeof initialized);
  memcpy(&g_direct.key, rt + tss + 4, sizeof g_direct.key);
  if (auto_interp) memcpy(&auto_interp_state, rt + auto_interp, sizeof auto_interp_state);
  void *api_cur = py.tstate_unchecked(), *api_own = py.gilstate_this();
  return initialized == 1 && (!auto_interp || auto_interp_state) && api_cur && api_cur == api_own && direct_current() == api_cur && direct_own() == api_own &&
         !py.is_finalizing() && !direct_finalizing() && AT(api_cur, TSTATE_INTERP, void *) == py.tstate_interp(api_cur);
}

/* A thread without the GIL (RAW) may be in pyrt_gil_tstate meanwhile: it sees ok = 1 only
 * with the fields it was published with (release/acquire), and a second note rewrites them
 * with the same values. */
void pyrt_note_runtime(void) {
  __atomic_store_n(&g_direct.ok, 0, __ATOMIC_RELAXED);
  __atomic_store_n(&g_interp_main, py.interp_main(), __ATOMIC_RELAXED);
  if (direct_check()) __atomic_store_n(&g_direct.ok, 1, __ATOMIC_RELEASE);
}

static inline void *interp_main(void) {
  void *m = __atomic_load_n(&g_interp_main, __ATOMIC_RELAXED);
  return m ? m : py.interp_main();
}

void *pyrt_gil_tstate(int *subinterpreter) {
  /* 3.9-3.11: the runtime-wide GIL holder; 3.12+: this thread's attached tstate. Either
   * way it is ours only if it is also this thread's own tstate. PyGILState_Check() is not
   * enough: it answers 1 whenever the checks are off. */
  *subinterpreter = 0;
  void *cur, *interp;
  int own;
  if (__builtin_expect(__atomic_load_n(&g_direct.ok, __ATOMIC_ACQUIRE), 1)) {
    cur = direct_current();
    if (!cur || direct_finalizing()) return NULL;
    own = cur == direct_own();
    interp = AT(cur, TSTATE_INTERP, void *);
  } else {
    cur = py.tstate_unchecked();
    if (!cur || py.is_finalizing()) return NULL;
    own = cur == py.gilstate_this();
    interp = own || g_minor >= 12 ? py.tstate_interp(cur) : NULL;
  }
  /* A subinterpreter's frames are never walked: its code objects would be pinned (kept
   * past the interpreter's end: the memory it should have freed), and on 3.12+ it may run
   * under its own GIL (PEP 684), concurrently with the main interpreter's walks, whose
   * caches assume the main GIL. On 3.12+ cur is this thread's own attached tstate, so it
   * tells which interpreter this thread runs; before 3.12 only when it is also ours. */
  if ((own || g_minor >= 12) && interp != interp_main()) {
    *subinterpreter = 1;
    return NULL;
  }
  return own ? cur : NULL;
}

int pyrt_subinterpreter(void) {
  if (!g_can_walk) return 0; /* not initialized: nothing to tell */
  void *cur = py.tstate_unchecked();
  return cur && py.tstate_interp(cur) != interp_main();
}

void *pyrt_own_tstate_nogil(void) {
  if (g_minor < 11 || !g_can_walk) return NULL; /* 3.9/3.10 walk frame objects: refcounts need the GIL */
  void *own = py.gilstate_this();
  if (!own || own == py.tstate_unchecked()) return NULL; /* no tstate, or attached: the GIL path */
  if (py.is_finalizing()) return NULL; /* other threads' states are being deleted */
  if (py.tstate_interp(own) != interp_main()) return NULL; /* never a subinterpreter's frames */
  return own;
}


/* A line number costs a scan of the code object's line table (PyCode_Addr2Line), which
 * dominated recording time; cache it by (code object, instruction offset). Only walks and
 * pyrt_lines touch the cache, and both run with the GIL held, which serializes them. Entries stay
 * right because every code object walked for recording is pinned (never freed). */
#define LINE_CACHE_SIZE 8192
static struct {
  void *code;
  int32_t offset;
  int32_t line;
} g_lines[LINE_CACHE_SIZE];

/* Called when a recording starts: an entry whose code object was walked but never pinned
 * (a sample that raced with stop, or out of memory) must not outlive its recording. */
void pyrt_clear_line_cache(void) { memset(g_lines, 0, sizeof g_lines); }

static inline uint32_t line_slot(void *code, int32_t offset) {
  uint64_t h = ((uint64_t)(uintptr_t)code >> 4) * 0x9e3779b97f4a7c15ULL ^ (uint64_t)(uint32_t)offset * 0xc2b2ae3d27d4eb4fULL;
  return (uint32_t)(h >> 51) & (LINE_CACHE_SIZE - 1);
}

/* 3.9/3.10: the public frame API only increments reference counts on these versions.
 * Each reference we take is to a frame that the chain (or the eval loop) also holds,
 * so the Py_DecRef below is never the last one and never frees. */
static int walk_frame_objects(void *tstate, hp_rawframe *out, int cap, uint32_t *dropped, int use_cache) {
  int n = 0;
  uint32_t extra = 0;
  void *frame = py.tstate_get_frame(tstate);
  while (frame) {
    if (n < cap) {
      void *code = py.frame_get_code(frame);
      out[n].code = code;
      /* Traced frames keep their own f_lineno: ask, don't cache. */
      if (use_cache && !AT(frame, off.frame_trace, void *)) {
        int32_t lasti = AT(frame, off.frame_lasti, int);
        uint32_t k = line_slot(code, lasti);
        if (g_lines[k].code != code || g_lines[k].offset != lasti) {
          g_lines[k].code = code;
          g_lines[k].offset = lasti;
          g_lines[k].line = py.frame_get_line(frame);
        }
        out[n].line = g_lines[k].line;
      } else {
        out[n].line = py.frame_get_line(frame);
      }
      py.decref(code); /* the frame keeps it alive */
      n++;
    } else if (extra < HP_MAX_DROPPED) {
      extra++;
    } else {
      py.decref(frame); /* ours, from the last get_frame/get_back: never the last reference */
      break;
    }
    void *back = py.frame_get_back(frame);
    py.decref(frame);
    frame = back;
  }
  *dropped = extra;
  return n;
}

/* The walked stack's hash, one frame at a time (see pyrt_walk_positions): one xor and one
 * multiply per frame in sequence, the position's multiply off that chain. */
#define WALK_HASH_SEED 0x9e3779b97f4a7c15ULL
static inline uint64_t walk_hash_step(uint64_t h, const void *code, int64_t position) {
  return (h ^ ((uint64_t)(uintptr_t)code ^ (uint64_t)position * 0xc4ceb9fe1a85ec53ULL)) * 0xff51afd7ed558ccdULL;
}

/* 3.11-3.13: read _PyInterpreterFrame structs directly; no frame objects are created.
 * Each frame's position is the byte offset of its instruction in co_code_adaptive. One
 * body for every version, always inlined: called with each version's offsets as constants
 * (walk_311, walk_312, walk_313), gcc keeps the loop in registers (with the offsets in
 * variables it spilled three of them and took ~37 instructions a frame; ~31 now, the hash
 * included); the generic call with the offsets read from `off` is there for a 3.13 whose
 * debug offsets differ from the constants. Frames stored are hashed on the way. */
static inline __attribute__((always_inline)) int walk_frames(void *frame, hp_rawframe *out, int cap, uint32_t *dropped,
                                                              uint64_t *hash, size_t o_previous, size_t o_code,
                                                              size_t o_instr, size_t o_owner, size_t o_adaptive,
                                                              size_t o_firsttraceable, unsigned char skip_owner,
                                                              void *code_type) {
  hp_rawframe *o = out, *const end = out + cap;
  uint32_t extra = 0;
  uint64_t h = WALK_HASH_SEED;
  for (unsigned guard = 0; frame && guard < 1000000; guard++, frame = AT(frame, o_previous, void *)) {
    unsigned char owner = AT(frame, o_owner, unsigned char);
    if (owner >= skip_owner) continue; /* 3.12+: C-stack shim frames */
    void *code = AT(frame, o_code, void *);
    if (!code) continue;
    if (code_type && AT(code, 8, void *) != code_type) continue; /* 3.13: f_executable may be None */
    char *first = (char *)code + o_adaptive;
    char *instr = AT(frame, o_instr, char *);
    /* Skip incomplete frames (pushed, not yet at their first traceable instruction) as
     * traceback does (_PyFrame_GetFirstComplete). */
    if (owner != OWNED_BY_GENERATOR && instr < first + 2 * AT(code, o_firsttraceable, int)) continue;
    if (__builtin_expect(o == end, 0)) {
      if (extra == HP_MAX_DROPPED) break;
      extra++;
      continue;
    }
    int64_t position = (int32_t)(instr - first);
    o->code = code;
    o->line = position;
    h = walk_hash_step(h, code, position);
    o++;
  }
  *dropped = extra;
  *hash = h;
  return (int)(o - out);
}

static void *first_interpreter_frame(void *tstate) {
  if (g_minor == 13) return AT(tstate, off.ts_current_frame, void *);
  void *cframe = AT(tstate, off.ts_cframe, void *);
  return cframe ? AT(cframe, off.cframe_current, void *) : NULL;
}

/* Offsets from pyrt_init: 3.11 and 3.12 hard-coded there, 3.13 as its debug offsets gave
 * them (walk_313_fixed says whether they are these constants). */
static int walk_311(void *f, hp_rawframe *out, int cap, uint32_t *dropped, uint64_t *hash) {
  return walk_frames(f, out, cap, dropped, hash, 48, 32, 56, 69, 184, 168, 255, NULL);
}
static int walk_312(void *f, hp_rawframe *out, int cap, uint32_t *dropped, uint64_t *hash) {
  return walk_frames(f, out, cap, dropped, hash, 8, 0, 56, 70, 192, 176, OWNED_BY_CSTACK, NULL);
}
static int walk_313(void *f, hp_rawframe *out, int cap, uint32_t *dropped, uint64_t *hash) {
  return walk_frames(f, out, cap, dropped, hash, 8, 0, 56, 70, 200, 184, OWNED_BY_CSTACK, py.code_type);
}
static int walk_any(void *f, hp_rawframe *out, int cap, uint32_t *dropped, uint64_t *hash) {
  return walk_frames(f, out, cap, dropped, hash, off.fr_previous, off.fr_code, off.fr_instr, off.fr_owner,
                     off.code_adaptive, off.code_firsttraceable, g_minor >= 12 ? OWNED_BY_CSTACK : 255,
                     g_minor == 13 ? py.code_type : NULL);
}

static int walk_interpreter_frames(void *tstate, hp_rawframe *out, int cap, uint32_t *dropped, uint64_t *hash) {
  void *frame = first_interpreter_frame(tstate);
  switch (g_minor) {
  case 11:
    return walk_311(frame, out, cap, dropped, hash);
  case 12:
    return walk_312(frame, out, cap, dropped, hash);
  default:
    return g_walk_313_fixed ? walk_313(frame, out, cap, dropped, hash) : walk_any(frame, out, cap, dropped, hash);
  }
}

int pyrt_walk_positions(void *tstate, hp_rawframe *out, int cap, uint32_t *dropped, uint64_t *hash, int use_cache) {
  *dropped = 0;
  *hash = WALK_HASH_SEED;
  if (!g_can_walk || !tstate) return 0;
  if (g_minor <= 10) {
    int n = walk_frame_objects(tstate, out, cap, dropped, use_cache);
    uint64_t h = WALK_HASH_SEED;
    for (int i = 0; i < n; i++) h = walk_hash_step(h, out[i].code, out[i].line);
    *hash = h;
    return n;
  }
  return walk_interpreter_frames(tstate, out, cap, dropped, hash);
}

/* 3.11+: PyCode_Addr2Line(code, byte offset) is what PyUnstable_InterpreterFrame_GetLine
 * (3.12, 3.13) and _PyInterpreterFrame_GetLine (3.11) compute from the frame: its LASTI
 * is the instruction pointer minus co_code_adaptive, in code units. It scans the line
 * table and neither allocates nor fails for an offset inside the code. */
void pyrt_lines(hp_rawframe *frames, int n, int use_cache) {
  if (g_minor <= 10) return; /* the walk gave lines already */
  for (int i = 0; i < n; i++) {
    void *code = frames[i].code;
    int32_t offset = (int32_t)frames[i].line;
    uint32_t k = line_slot(code, offset);
    if (use_cache && g_lines[k].code == code && g_lines[k].offset == offset) {
      frames[i].line = g_lines[k].line;
      continue;
    }
    int line = py.code_addr2line(code, offset);
    frames[i].line = line > 0 ? line : 0;
    if (use_cache) {
      g_lines[k].code = code;
      g_lines[k].offset = offset;
      g_lines[k].line = (int32_t)frames[i].line;
    }
  }
}

int pyrt_walk(void *tstate, hp_rawframe *out, int cap, uint32_t *dropped, int use_cache) {
  uint64_t hash;
  int n = pyrt_walk_positions(tstate, out, cap, dropped, &hash, use_cache);
  pyrt_lines(out, n, use_cache);
  return n;
}

/* Encodes code points as UTF-8 into dst (NUL-terminated); lone surrogates (from
 * surrogateescape'd file names) become U+FFFD. */
static void ucs4_to_utf8(const uint32_t *src, intptr_t n, char *dst, size_t cap) {
  size_t o = 0;
  for (intptr_t i = 0; i < n; i++) {
    uint32_t c = src[i];
    if ((c >= 0xD800 && c <= 0xDFFF) || c > 0x10FFFF) c = 0xFFFD;
    unsigned char b[4];
    size_t k;
    if (c < 0x80) b[0] = (unsigned char)c, k = 1;
    else if (c < 0x800) b[0] = 0xC0 | (c >> 6), b[1] = 0x80 | (c & 0x3F), k = 2;
    else if (c < 0x10000) b[0] = 0xE0 | (c >> 12), b[1] = 0x80 | ((c >> 6) & 0x3F), b[2] = 0x80 | (c & 0x3F), k = 3;
    else
      b[0] = 0xF0 | (c >> 18), b[1] = 0x80 | ((c >> 12) & 0x3F), b[2] = 0x80 | ((c >> 6) & 0x3F),
      b[3] = 0x80 | (c & 0x3F), k = 4;
    if (o + k >= cap) break;
    memcpy(dst + o, b, k);
    o += k;
  }
  dst[o] = 0;
}

/* Scratch for PyUnicode_AsUCS4; callers serialize (the hook holds its mutex). */
#define NAME_CHARS 4096
static uint32_t g_ucs4[NAME_CHARS];

static void copy_str(void *str, char *dst, size_t cap) {
  intptr_t len = str ? py.unicode_length(str) : -1;
  /* Checking the length first keeps AsUCS4 off its error path (which would set an
   * exception, i.e. allocate). */
  if (len < 0 || len > NAME_CHARS) {
    snprintf(dst, cap, "%s", len < 0 ? "?" : "<name too long>");
    return;
  }
  if (!py.unicode_as_ucs4(str, g_ucs4, NAME_CHARS, 0)) {
    snprintf(dst, cap, "?");
    return;
  }
  ucs4_to_utf8(g_ucs4, len, dst, cap);
}

void pyrt_code_names(void *code, char *name, size_t name_cap, char *file, size_t file_cap) {
  copy_str(AT(code, off.code_name, void *), name, name_cap);
  copy_str(AT(code, off.code_filename, void *), file, file_cap);
}
