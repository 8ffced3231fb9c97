/* The hook's own memory always comes from the allocator below heapprof's malloc
 * interposer (native/interpose.c), never through it: when heapprof_hook.so is preloaded
 * (hp-record --native) its malloc is the process's malloc, and the hook's tables and
 * buffers must neither be recorded nor re-enter the hook under its mutex. Include this
 * after the system headers. Outside a preload the real functions are plain libc's. */
#ifndef HEAPPROF_REALMEM_H
#define HEAPPROF_REALMEM_H

#include <stddef.h>
#include <sys/types.h>

void *hpn_real_malloc(size_t n);
void *hpn_real_calloc(size_t n, size_t size);
void *hpn_real_realloc(void *p, size_t n);
void hpn_real_free(void *p);
void *hpn_real_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off);
int hpn_real_munmap(void *addr, size_t len);

#define malloc(n) hpn_real_malloc(n)
#define calloc(n, s) hpn_real_calloc(n, s)
#define realloc(p, n) hpn_real_realloc(p, n)
#define free(p) hpn_real_free(p)
#define mmap(a, l, p, f, d, o) hpn_real_mmap(a, l, p, f, d, o)
#define munmap(a, l) hpn_real_munmap(a, l)

#endif
