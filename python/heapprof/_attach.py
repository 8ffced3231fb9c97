# `hp-record --pid PID`, the target's side. hp-record has gdb load the native hook into a
# running CPython and start a thread there that takes the GIL and runs `attach(...)` (see
# lib/attach.ts and native/attach.c). This module then talks to hp-record over a Unix socket
# in hp-record's private directory, one JSON object per line:
#
#   target -> hp-record  {"state": "hello", "token": T, "pid": P, "python": "3.11.7"}
#   hp-record -> target  the configuration: {"base": ..., "sampling": ..., ...}
#   target -> hp-record  {"state": "started", "files": [...]}  or  {"state": "error", "message": M}
#   hp-record -> target  "stop" (or end of file: hp-record exited or was killed)
#   target -> hp-record  {"state": "finished", "summary": {...}}
#
# Recording starts only once hp-record has answered, and stops as soon as the connection ends,
# so that a killed hp-record never leaves the target recording. What stays in the target after
# the stop: the hook library (inert wrappers that pass every call straight through), this
# package in sys.modules, and the heapprof atexit and os._exit wrappers (both no-ops when not
# recording). Nothing here may raise: an exception would print a traceback in the target.
#
# Only _thread is used, never threading: importing threading first from a thread other than
# the main one would make threading take this thread for the main thread.

import json
import os
import socket
import sys

_PROTOCOL = 1


def _send(sock, obj):
    sock.sendall((json.dumps(obj) + "\n").encode("utf-8"))


def _read_line(sock, buffered):
    """One line from the socket (without the newline), or None at end of file."""
    while b"\n" not in buffered[0]:
        chunk = sock.recv(4096)
        if not chunk:
            return None
        buffered[0] += chunk
    line, _, rest = buffered[0].partition(b"\n")
    buffered[0] = rest
    return line.decode("utf-8")


def _process_age_us():
    """How long this process has been running, from /proc (0 when unknown)."""
    try:
        with open("/proc/self/stat", "rb") as f:
            stat = f.read().decode("ascii", "replace")
        start_ticks = int(stat[stat.rindex(")") + 2:].split()[19])
        with open("/proc/uptime", "rb") as f:
            uptime = float(f.read().split()[0])
        age = uptime - start_ticks / os.sysconf("SC_CLK_TCK")
        return max(0, int(age * 1e6))
    except (OSError, ValueError, IndexError):
        return 0


def attach(ctl_path, token):
    """Runs on the thread native/attach.c started, with the GIL. Never raises."""
    try:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    except OSError:
        return
    try:
        sock.settimeout(10)
        sock.connect(ctl_path)
    except OSError:
        sock.close()  # hp-record is gone: record nothing
        return
    try:
        _handshake(sock, token)
    except Exception:
        try:
            sock.close()
        except OSError:
            pass


def _handshake(sock, token):
    buffered = [b""]
    _send(sock, {"state": "hello", "protocol": _PROTOCOL, "token": token, "pid": os.getpid(),
                 "python": "%d.%d.%d" % sys.version_info[:3]})
    line = _read_line(sock, buffered)
    if line is None:
        sock.close()
        return
    config = json.loads(line)
    error = _start(config)
    if error:
        _send(sock, {"state": "error", "message": error})
        sock.close()
        return
    import heapprof

    _send(sock, {"state": "started", "files": [config["base"] + ".hpm", config["base"] + ".hpd"]})
    sock.settimeout(None)
    # A forked child must not hold the connection open (hp-record waits for its end), and from
    # 3.12 on os.fork() warns when the process has another thread: the control thread leaves
    # before each fork and comes back after it (_Control).
    if hasattr(os, "register_at_fork") and not _forks_registered:
        os.register_at_fork(before=_pause_all, after_in_parent=_resume_hook(), after_in_child=_close_in_child)
        _mark_registered()
    control = _Control(sock, buffered, heapprof, heapprof._state["generation"])
    _controls.append(control)
    control.start()


_forks_registered = False
_controls = []


def _mark_registered():
    global _forks_registered
    _forks_registered = True


def _pause_all():
    if sys.version_info >= (3, 13) and not _on_main_thread():
        return  # resumed only by the main thread (below): never leave the recording uncontrolled
    for control in list(_controls):
        control.pause()


def _on_main_thread():
    import _thread

    threading = sys.modules.get("threading")
    return threading is None or threading.main_thread().ident == _thread.get_ident()


def _resume_now():
    for control in list(_controls):
        control.resume()


def _resume_from_pending(_arg):
    try:
        _resume_now()
    except Exception:
        pass
    return 0


_pending = []  # the ctypes callback must outlive this module's use of it


def _resume_hook():
    """The after_in_parent hook. 3.12 counts the threads before those hooks run: resume there.
    3.13 counts them after: the hook (C code only, no bytecode, so that nothing runs Python's
    pending calls before the count) asks the main thread to resume at its next pending-call
    check, after os.fork() has returned."""
    if sys.version_info < (3, 13):
        return _resume_now
    import ctypes
    import functools

    api = ctypes.PyDLL(None)  # our own handle: argtypes set here are not the program's
    add = api.Py_AddPendingCall
    callback_type = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p)
    add.argtypes = [callback_type, ctypes.c_void_p]
    add.restype = ctypes.c_int
    _pending.append(callback_type(_resume_from_pending))
    return functools.partial(add, _pending[0], None)


def _close_in_child():
    for control in _controls:
        control.close()
    del _controls[:]


class _Control:
    """The control thread: waits (without the GIL, in poll) for "stop" or the end of the
    connection, then stops recording, reports the summary and ends. CPython 3.12+ warns in
    os.fork() ("This process is multi-threaded") when the process has more than one thread,
    which the program would not print unrecorded: before a fork the thread is told to leave
    (through a pipe) and waited for until it is gone, and a new one resumes after the fork."""

    def __init__(self, sock, buffered, heapprof, generation):
        import _thread

        self.sock, self.buffered, self.heapprof = sock, buffered, heapprof
        self.generation = generation  # the recording hp-record started: not one the program starts later
        self.wake_r, self.wake_w = os.pipe()
        self.lock = _thread.allocate_lock()  # pausing and running change together
        self.pausing = False
        self.running = False
        self.finished = False
        self.native_id = None

    def start(self):
        import _thread

        with self.lock:
            if self.running or self.finished:
                return
            self.running = True
        _thread.start_new_thread(self._run, ())

    def pause(self):
        if sys.version_info < (3, 12) or not self.running or self.finished:
            return
        import time

        self.pausing = True
        try:
            os.write(self.wake_w, b"p")
        except OSError:
            return
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:  # sleeping releases the GIL the thread needs to leave
            gone = not self.running and (self.native_id is None or not os.path.exists("/proc/self/task/%d" % self.native_id))
            if gone:
                return
            time.sleep(0.0005)

    def resume(self):
        with self.lock:
            self.pausing = False
        self.start()

    def close(self):
        for close in (self.sock.close, lambda: os.close(self.wake_r), lambda: os.close(self.wake_w)):
            try:
                close()
            except OSError:
                pass

    def _run(self):
        try:
            import _thread

            self.native_id = _thread.get_native_id()
            while self._wait() == "paused":
                with self.lock:
                    if self.pausing:  # leave; resume() starts a new thread after the fork
                        self.running = False
                        return
            self.finished = True
            summary = {}
            try:
                summary = self.heapprof._stop_generation(self.generation)
            except Exception as err:
                summary = {"stop_error": str(err)}
            try:
                _send(self.sock, {"state": "finished", "summary": summary})
            except OSError:
                pass
            try:
                _controls.remove(self)
            except ValueError:
                pass
            self.close()
        except Exception:
            pass  # never a traceback in the target
        with self.lock:
            self.running = False

    def _wait(self):
        """"stop" when hp-record asks or the connection ends; "paused" before a fork."""
        import select

        # poll, not select: select refuses descriptors from 1024 on (ValueError), which a server
        # with many connections hands this socket, and the recording stopped as soon as it started.
        poller = select.poll()
        try:
            poller.register(self.sock.fileno(), select.POLLIN)
            poller.register(self.wake_r, select.POLLIN)
        except (OSError, ValueError):
            return "stop"
        while True:
            if self.pausing:
                return "paused"
            try:
                ready = [fd for fd, _ in poller.poll()]
            except (OSError, ValueError):
                return "stop"
            if self.wake_r in ready:
                try:
                    os.read(self.wake_r, 64)
                except OSError:
                    pass
                continue
            try:
                chunk = self.sock.recv(4096)
            except OSError:
                chunk = b""
            if not chunk:
                return "stop"
            self.buffered[0] += chunk
            while b"\n" in self.buffered[0]:
                line, _, self.buffered[0] = self.buffered[0].partition(b"\n")
                if line.strip() == b"stop":
                    return "stop"


def _start(config):
    """Starts recording as configured; returns an error message, or None."""
    here = os.path.dirname(os.path.abspath(__file__))
    existing = sys.modules.get("heapprof")
    if existing is not None and os.path.dirname(os.path.abspath(getattr(existing, "__file__", "") or "")) != here:
        return "the process already imported another heapprof package (%s)" % getattr(existing, "__file__", "?")
    if sys.version_info < (3, 9) or sys.version_info >= (3, 14):
        return "Python %d.%d is not supported (heapprof records CPython 3.9 to 3.13)" % sys.version_info[:2]
    try:
        import heapprof

        if heapprof.isProfiling():
            return "the process is already being recorded (heapprof is running inside it)"
        lib = heapprof._library()
        sampling = config.get("sampling")
        if sampling is not None:
            sampling = dict((int(bound), float(p)) for bound, p in sampling)
        notes = ["attached by hp-record after the process had run %.3f s; the heap before that is unknown"
                 % (_process_age_us() / 1e6)]
        if hasattr(lib, "hp_set_attached"):
            lib.hp_set_attached(_process_age_us())
        heapprof._state["watch_next"] = True
        heapprof.start(config["base"], sampling, sample_bytes=config.get("sample_bytes"),
                       follow_fork=bool(config.get("follow_fork")), force=bool(config.get("force")),
                       notes=notes)
    except Exception as err:  # reported to hp-record, never raised in the process
        heapprof_module = sys.modules.get("heapprof")
        if heapprof_module is not None and hasattr(heapprof_module, "_state"):
            heapprof_module._state["watch_next"] = False
        text = (getattr(err, "strerror", None) or str(err))
        if getattr(err, "filename", None):
            text = "%s: %s" % (err.filename, text.lower())
        return text
    return None
