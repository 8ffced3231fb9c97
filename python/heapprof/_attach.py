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
    # A forked child must not hold the connection open (hp-record waits for its end).
    if hasattr(os, "register_at_fork") and not _forks_registered:
        os.register_at_fork(after_in_child=_close_in_child)
        _mark_registered()
    _live_sockets.append(sock)
    import _thread

    _thread.start_new_thread(_wait_for_stop, (sock, buffered, heapprof))


_forks_registered = False
_live_sockets = []


def _mark_registered():
    global _forks_registered
    _forks_registered = True


def _close_in_child():
    for s in _live_sockets:
        try:
            s.close()
        except OSError:
            pass
    del _live_sockets[:]


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
        heapprof.start(config["base"], sampling, sample_bytes=config.get("sample_bytes"),
                       follow_fork=bool(config.get("follow_fork")), force=bool(config.get("force")),
                       notes=notes)
    except Exception as err:  # reported to hp-record, never raised in the process
        text = (getattr(err, "strerror", None) or str(err))
        if getattr(err, "filename", None):
            text = "%s: %s" % (err.filename, text.lower())
        return text
    return None


def _wait_for_stop(sock, buffered, heapprof):
    """The control thread: waits (without the GIL, in recv) for "stop" or the end of the
    connection, then stops recording and reports the summary."""
    try:
        while True:
            try:
                line = _read_line(sock, buffered)
            except OSError:
                line = None
            if line is None or line.strip() == "stop":
                break
        summary = {}
        try:
            heapprof.stop()
            summary = heapprof._summary()
        except Exception as err:
            summary = {"stop_error": str(err)}
        try:
            _send(sock, {"state": "finished", "summary": summary})
        except OSError:
            pass
    except Exception:
        pass  # never a traceback in the target
    finally:
        try:
            _live_sockets.remove(sock)
        except ValueError:
            pass
        try:
            sock.close()
        except OSError:
            pass
