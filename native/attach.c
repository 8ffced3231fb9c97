/* The attach entry point: `hp-record --pid` has gdb dlopen this library into a running
 * CPython and call hp_attach_spawn() on a thread stopped at a safe point (blocked in a
 * system call, or at the entry of an allocator function, so that it holds no libc lock).
 * That call only copies the code and starts a thread; the thread takes the GIL the
 * ordinary way (PyGILState_Ensure, as any C thread calling into Python does), so the code
 * runs where the interpreter is consistent: at the next GIL hand-over of the thread that
 * holds it, at once when no thread does. Nothing here runs inside an allocator call.
 * See lib/attach.ts for the gdb side and python/heapprof/_attach.py for the code run. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define EXPORT __attribute__((visibility("default")))

typedef int (*gil_ensure_fn)(void);
typedef void (*gil_release_fn)(int);
typedef int (*run_string_fn)(const char *, void *);
typedef int (*is_initialized_fn)(void);

static gil_ensure_fn p_ensure;
static gil_release_fn p_release;
static run_string_fn p_run;

static void *attach_main(void *arg) {
  char *code = arg;
  int state = p_ensure(); /* waits for the GIL like any foreign thread */
  p_run(code, NULL);      /* the code catches its own exceptions (python/heapprof/_attach.py) */
  p_release(state);
  free(code);
  return NULL;
}

/* Called by gdb inside the target. Copies `code` (so that gdb may unmap it at once) and
 * starts a detached thread that runs it with the GIL. Returns 0, or a negative value:
 * -1 not a CPython process (symbols missing), -2 interpreter not initialized (or
 * finalizing), -3 out of memory or no thread. Takes no lock the caller could hold. */
EXPORT int hp_attach_spawn(const char *code) {
  p_ensure = (gil_ensure_fn)dlsym(RTLD_DEFAULT, "PyGILState_Ensure");
  p_release = (gil_release_fn)dlsym(RTLD_DEFAULT, "PyGILState_Release");
  p_run = (run_string_fn)dlsym(RTLD_DEFAULT, "PyRun_SimpleStringFlags");
  is_initialized_fn initialized = (is_initialized_fn)dlsym(RTLD_DEFAULT, "Py_IsInitialized");
  if (!p_ensure || !p_release || !p_run || !initialized) return -1;
  if (!initialized()) return -2;
  char *copy = strdup(code);
  if (!copy) return -3;
  pthread_attr_t attr;
  pthread_t thread;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  int rc = pthread_create(&thread, &attr, attach_main, copy);
  pthread_attr_destroy(&attr);
  if (rc != 0) {
    free(copy);
    return -3;
  }
  return 0;
}
