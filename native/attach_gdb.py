# hp-record --pid: the gdb side of attaching (run as `gdb -p PID -batch -nx -x attach_gdb.py`,
# configured through the environment by lib/attach.ts). It loads the native hook into the
# target and calls hp_attach_spawn(code), which starts a thread that takes the GIL and runs
# `code` (native/attach.c). Both calls allocate, so they run on a thread that holds no libc
# lock: either a thread blocked in a plain system call (sleep, select, poll, accept, read...:
# immediate), or, when every thread is busy, the first thread to reach the entry of an
# allocator function or PyErr_CheckSignals (gdb breakpoints, removed before anything runs).
# No inferior malloc is used to pass strings: they go into a page mapped with mmap, written
# by gdb and unmapped again. Prints one "HP-ATTACH: ..." line that lib/attach.ts reads.

import os

import gdb

LIB = os.environ["HP_ATTACH_LIB"].encode()
CODE = os.environ["HP_ATTACH_CODE"].encode()
# hp-record gives up (Ctrl-C) by creating this file and sending the target SIGURG, which stops
# it here while the breakpoints wait: they are removed before gdb leaves. (Killing gdb then
# left them in, and the target died of SIGTRAP at its next allocation.)
GIVE_UP = os.environ.get("HP_ATTACH_GIVE_UP", "")
# x86-64 system call numbers of calls that block in the kernel without holding a user-space
# lock: read poll select nanosleep pause accept recvfrom recvmsg wait4 clock_nanosleep
# epoll_wait pselect6 ppoll epoll_pwait accept4 epoll_pwait2
SAFE_SYSCALLS_X86_64 = {0, 7, 23, 35, 34, 43, 45, 47, 61, 230, 232, 270, 271, 281, 288, 441}
# Entry points a busy Python thread reaches often; at their first instruction the thread
# holds no allocator lock.
BREAK_AT = ["malloc", "calloc", "realloc", "free", "PyMem_Malloc", "PyMem_Free", "PyObject_Malloc",
            "PyObject_Free", "PyErr_CheckSignals", "PyEval_RestoreThread"]


def report(text):
    gdb.write("HP-ATTACH: %s\n" % text)
    gdb.flush()


def value(expr):
    return int(gdb.parse_and_eval(expr))


def blocked_syscall(pid, tid):
    """The number of the system call thread tid is blocked in, or None if it is running."""
    try:
        with open("/proc/%d/task/%d/syscall" % (pid, tid)) as f:
            first = f.read().split()[0]
        return int(first)
    except (OSError, ValueError, IndexError):
        return None


def pick_blocked_thread(inferior):
    if os.uname().machine != "x86_64":
        return None
    threads = sorted(inferior.threads(), key=lambda t: t.ptid[1] != inferior.pid)  # main thread first
    for thread in threads:
        n = blocked_syscall(inferior.pid, thread.ptid[1])
        if n in SAFE_SYSCALLS_X86_64:
            return thread
    return None


def given_up():
    return bool(GIVE_UP) and os.path.exists(GIVE_UP)


def wait_for_safe_point(inferior):
    """Breakpoints at allocator entries; returns when a thread stops at one (None), else why
    not (the process exited, or hp-record gave up)."""
    hits = []

    def on_stop(event):
        hits.append(event)

    breakpoints = []
    for name in BREAK_AT:
        try:
            bp = gdb.Breakpoint(name, internal=True)
            if bp.pending:
                bp.delete()
            else:
                breakpoints.append(bp)
        except gdb.error:
            pass
    if not breakpoints:
        return "no allocator entry point to stop at"
    gdb.events.stop.connect(on_stop)
    # SIGURG (ignored unless a program handles it) stops the target here, held from it: hp-record's
    # way to end the wait. One that the program was sent meanwhile is delivered as it came.
    gdb.execute("handle SIGURG stop print nopass", to_string=True)  # (noprint would mean nostop)
    try:
        resume = "continue"
        while True:
            if given_up():
                return "interrupted"
            del hits[:]
            gdb.execute(resume, to_string=True)
            resume = "continue"
            if not inferior.is_valid() or inferior.pid == 0:
                return "the process exited before it could be attached"
            if given_up():
                return "interrupted"
            if hits and isinstance(hits[-1], gdb.BreakpointEvent):
                break
            if hits and isinstance(hits[-1], gdb.SignalEvent) and hits[-1].stop_signal == "SIGURG":
                resume = "signal SIGURG"
    finally:
        gdb.events.stop.disconnect(on_stop)
        try:
            gdb.execute("handle SIGURG nostop noprint pass", to_string=True)
        except gdb.error:
            pass
        for bp in breakpoints:
            if bp.is_valid():
                bp.delete()
    return None


def inject(inferior):
    size = (len(LIB) + len(CODE) + 2 + 4095) // 4096 * 4096
    page = value("(long)((void*(*)(void*, unsigned long, int, int, int, long))mmap)(0, %d, 3, 0x22, -1, 0)" % size)
    if page in (0, -1):
        return "mmap in the target failed"
    try:
        inferior.write_memory(page, LIB + b"\0" + CODE + b"\0")
        try:
            handle = value("(long)((void*(*)(const char*, int))dlopen)((const char*)%d, 2)" % page)
        except gdb.error:
            handle = value("(long)((void*(*)(const char*, int))__libc_dlopen_mode)((const char*)%d, 2)" % page)
        if handle == 0:
            try:
                why = gdb.parse_and_eval("(char*)((char*(*)(void))dlerror)()").string()
            except gdb.error:
                why = "dlopen failed"
            return "cannot load %s: %s" % (LIB.decode(), why)
        inferior.write_memory(page, b"hp_attach_spawn\0")
        spawn = value("(long)((void*(*)(void*, const char*))dlsym)((void*)%d, (const char*)%d)" % (handle, page))
        if spawn == 0:
            return "hp_attach_spawn not found in %s (rebuild the native hook)" % LIB.decode()
        rc = value("((int(*)(const char*))%d)((const char*)%d)" % (spawn, page + len(LIB) + 1))
        if rc == -1:
            return "not a CPython process (no PyGILState_Ensure)"
        if rc == -2:
            return "the Python interpreter is not initialized (starting up or shutting down)"
        if rc != 0:
            return "cannot start a thread in the target"
        return None
    finally:
        value("((int(*)(void*, unsigned long))munmap)((void*)%d, %d)" % (page, size))


def main():
    for setting in ("pagination off", "confirm off", "unwindonsignal on", "scheduler-locking off",
                    "handle all nostop noprint pass", "handle SIGINT nostop noprint pass"):
        try:
            gdb.execute("set " + setting if not setting.startswith("handle") else setting, to_string=True)
        except gdb.error:
            pass
    # hp-record starts gdb with auto-solib-add off (reading every library's symbols is most of
    # an attach's time): load only the C library's and libpython's, which the calls need.
    for lib in (r"/libc\.so", r"/libc\.musl", r"/libdl\.so", r"/libpython"):
        try:
            gdb.execute("sharedlibrary " + lib, to_string=True)
        except gdb.error:
            pass
    inferior = gdb.selected_inferior()
    if inferior.pid == 0:
        report("error: gdb could not attach")
        return
    thread = pick_blocked_thread(inferior)
    how = "blocked"
    if thread is not None:
        thread.switch()
    else:
        how = "breakpoint"
        error = wait_for_safe_point(inferior)
        if error:
            report("error: " + error)
            if inferior.is_valid() and inferior.pid != 0:
                try:
                    gdb.execute("detach", to_string=True)
                except gdb.error:
                    pass
            return
    tid = gdb.selected_thread().ptid[1]
    try:
        error = inject(inferior)
    except gdb.error as err:
        error = "gdb: %s" % str(err).splitlines()[0]
    if error:
        report("error: " + error)
    else:
        report("ok %s %d" % (how, tid))
    try:
        gdb.execute("detach", to_string=True)
    except gdb.error:
        pass


main()
