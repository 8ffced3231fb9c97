# hp-record's bootstrap. hp-record starts `python script.py args...` (or `python -m module args...`)
# itself, with a private directory first on PYTHONPATH that holds `sitecustomize.py`, which runs this
# file's code (from its cached bytecode) as that module. Python imports it while starting up, before
# sys.path[0] is set and before the program runs; it starts the recorder and returns, and python then runs the program exactly as it always does: sys.argv,
# sys.path[0], __main__, tracebacks, exit status and KeyboardInterrupt are python's own, and no frame of
# this file is ever below the program's frames (so none appears in the recorded stacks either).
#
# It undoes its own traces first: HEAPPROF_RECORD_CONFIG (the JSON configuration from lib/cmd/record.ts,
# or for hp-record's own program the name of the file in its private directory that holds it)
# is removed from the environment, PYTHONPATH is restored to the user's value (so subprocesses see
# neither), the private directory leaves sys.path, and a sitecustomize of the user's own is imported
# as it would have been. hp-record learns how things went from the status file named in the
# configuration: an error that stopped it before the program started, then the recorder's summary.
# With --follow-children the environment keeps both, with a configuration for descendants: a python
# the program starts runs this file too, as a descendant (_descendant), and records to BASE.PID.
#
# Keep this file parseable by old Pythons (no f-strings or annotations), so that an unsupported
# interpreter ends with a clear message rather than a SyntaxError.

import os
import sys

_CONFIG_VAR = 'HEAPPROF_RECORD_CONFIG'
_EXIT_USAGE = 2
_EXIT_FAILURE = 1
_MIN_PYTHON = (3, 9)

_status_path = None
_recorder_pid = None
_profile_files = []
_finished = False
_generation = 0  # heapprof._state["generation"] of the recording hp-record started (0: stats mode)


# JSON both ways with CPython's C accelerator alone: the json package imports re, enum, functools
# and collections, ~20 ms of a clean interpreter's start-up before a program that may never use
# them (and they would sit in its sys.modules). _json's scanner reads what JSON.stringify wrote;
# its string escaper and the few lines below write what JSON.parse reads.
class _ScanContext(object):
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int

    @staticmethod
    def parse_constant(name):
        raise ValueError('%s is not JSON' % name)


def _json_loads(text):
    try:
        from _json import make_scanner

        scan = make_scanner(_ScanContext())
    except Exception:  # no accelerator, or another one (Python 2's wants an encoding): the package
        import json

        return json.loads(text)
    try:
        value, end = scan(text, 0)
    except StopIteration:
        raise ValueError('not JSON')
    if text[end:].strip():
        raise ValueError('extra data after the JSON value')
    return value


def _json_dumps(value):
    try:
        from _json import encode_basestring_ascii as string
    except ImportError:
        import json

        return json.dumps(value)

    def encode(v):
        if v is None:
            return 'null'
        if v is True:
            return 'true'
        if v is False:
            return 'false'
        if isinstance(v, str):
            return string(v)
        if isinstance(v, int):
            return int.__repr__(v)
        if isinstance(v, float):
            # JSON has no NaN or infinities (JSON.parse would refuse the whole status).
            return float.__repr__(v) if v - v == 0 else 'null'
        if isinstance(v, (list, tuple)):
            return '[%s]' % ','.join([encode(x) for x in v])
        if isinstance(v, dict):
            return '{%s}' % ','.join(['%s:%s' % (string(k if isinstance(k, str) else str(k)), encode(x)) for k, x in v.items()])
        raise TypeError('%s is not JSON serializable' % type(v).__name__)

    return encode(value)


def _write_status(status):
    # True when hp-record will be able to read it (not on a full or read-only temporary directory).
    if _status_path is None:
        return False
    try:
        # Bytes, not text: a text open() without an encoding warns under PYTHONWARNDEFAULTENCODING
        # (an EncodingWarning on the program's stderr, or an error with PYTHONWARNINGS=error).
        data = _json_dumps(status).encode('utf-8')
        try:
            # In place over the spaces hp-record reserved, padded (JSON allows trailing spaces): no
            # new disk blocks are needed, so a full temporary directory cannot lose the report.
            f = open(_status_path, 'rb+')
        except (OSError, IOError):
            f = open(_status_path, 'wb')
        with f:
            size = os.fstat(f.fileno()).st_size
            f.write(data + b' ' * (size - len(data)) if size > len(data) else data)
        return True
    except (OSError, IOError, ValueError, TypeError):
        return False


def _fail(message, exit_code=_EXIT_FAILURE):
    # Before the program starts: hp-record prints the message and exits with this status. os._exit,
    # because SystemExit inside sitecustomize would make python report a fatal start-up error. The
    # status says 'error' for good: _finish (which our os._exit wrapper calls) must not replace it.
    global _finished
    _finished = True
    if not _write_status({'state': 'error', 'exit': exit_code, 'message': message}):
        sys.stderr.write('hp-record: %s\n' % message)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(exit_code)


def _os_error_text(err):
    text = (err.strerror or str(err)).lower()
    if getattr(err, 'filename', None):
        return '%s: %s' % (err.filename, text)
    return text


def _undo_environment(config):
    # Neither the program nor its subprocesses see hp-record's settings.
    pythonpath = config.get('pythonpath')
    if pythonpath is None:
        os.environ.pop('PYTHONPATH', None)
    else:
        os.environ['PYTHONPATH'] = pythonpath
    # --native preloaded the hook into this process only: subprocesses do not inherit it.
    preload = config.get('preload')
    if preload and 'LD_PRELOAD' in os.environ:
        rest = [p for p in os.environ['LD_PRELOAD'].replace(' ', ':').split(':') if p and p != preload]
        if rest:
            os.environ['LD_PRELOAD'] = ':'.join(rest)
        else:
            os.environ.pop('LD_PRELOAD', None)
    _leave_sys_path()


def _restore_native_lib(heapprof, config):
    # --native named the hook in HEAPPROF_NATIVE_LIB so that the package loads the very library
    # LD_PRELOAD put in. Once it is loaded, the variable is set back to the user's value (or removed),
    # as the program and its subprocesses must see their own environment. If loading fails, it stays
    # for the recorder's start to report the failure with the path it names.
    if not config.get('preload') or 'user_native_lib' not in config:
        return
    try:
        heapprof._native.load()
    except (RuntimeError, OSError):
        return
    if config['user_native_lib'] is None:
        os.environ.pop('HEAPPROF_NATIVE_LIB', None)
    else:
        os.environ['HEAPPROF_NATIVE_LIB'] = config['user_native_lib']


def _pass_on(config):
    # --follow-children: Python processes the program starts (multiprocessing's spawn and forkserver,
    # subprocess running python) find this bootstrap on PYTHONPATH and a configuration that records
    # them to BASE.PID. The environment keeps both, and --native's preload, for all descendants: the
    # price of this option, which the program can see in os.environ (hp-record(1)).
    # The base as given, for a descendant that runs where the program started (names stay as the
    # user wrote them), and absolute for one started after the program changed directory.
    base = _profile_base(config)
    child = {'descendant': True, 'base': base, 'follow_fork': True}
    try:
        child['cwd'] = os.getcwd()
        child['base_abs'] = os.path.join(child['cwd'], base)
    except OSError:  # started in a directory that is gone: names relative to it are all there is
        pass
    for key in ('package_parent', 'sampling', 'sample_bytes', 'force', 'native', 'native_stacks'):
        if config.get(key) is not None:
            child[key] = config[key]
    os.environ[_CONFIG_VAR] = _json_dumps(child)
    _leave_sys_path()


def _descendant(raw_config, config):
    # A Python process started by the recorded program (--follow-children): it records to BASE.PID,
    # with no status, watchdog or message. Whatever fails, it runs unrecorded and says nothing, as
    # the program's output must not change. Its own children inherit the configuration.
    os.environ[_CONFIG_VAR] = raw_config
    _leave_sys_path()
    _chain_sitecustomize()
    if sys.version_info < _MIN_PYTHON or not config.get('base') or not config.get('package_parent'):
        return
    parent = config['package_parent']
    sys.path.insert(0, parent)
    try:
        import heapprof

        argv = list(getattr(sys, 'orig_argv', None) or sys.argv or [])[1:]
        base = config['base']
        if config.get('base_abs') and os.getcwd() != config.get('cwd'):
            base = config['base_abs']
        heapprof.start('%s.%d' % (base, os.getpid()), _sampling_table(config), sample_bytes=config.get('sample_bytes'),
                       follow_fork=True, force=bool(config.get('force')), argv=argv,
                       native=bool(config.get('native')), native_stacks=bool(config.get('native_stacks')))
    except Exception:
        pass
    finally:
        if sys.path and sys.path[0] == parent:
            del sys.path[0]
        _forget_path_entry(os.path.abspath(parent))


def _restore_raw_bytes(config):
    # Node decoded hp-record's command line and environment as UTF-8 and re-encoded them for python,
    # turning bytes that are not UTF-8 (a Latin-1 file name, a value from another locale) into U+FFFD.
    # hp-record read the originals from /proc and sends them in hex: each goes back where python would
    # have put it, decoded as python decodes its arguments and environment (the file system encoding,
    # surrogateescape), provided it still holds what Node gave (else it is left alone).
    raw = config.get('raw_bytes')
    if not raw:
        return
    target = config.get('target') or []
    shift = 1 if target[:1] in (['-m'], ['-c']) else 0
    for item in raw.get('args') or ():
        try:
            index, data, text = item
            value = os.fsdecode(bytes.fromhex(data))
            if 0 <= index - shift < len(sys.argv) and sys.argv[index - shift] == text:
                sys.argv[index - shift] = value
            orig = getattr(sys, 'orig_argv', None)
            if orig is not None and 0 <= index + 1 < len(orig) and orig[index + 1] == text:
                orig[index + 1] = value
        except (TypeError, ValueError):
            pass
    for item in raw.get('env') or ():
        try:
            name, value, name_text, value_text = item
            if os.environ.get(name_text) != value_text:
                continue  # changed since (hp-record's own variables): not the user's any more
            name = bytes.fromhex(name)
            if value_text is not None and name != name_text.encode('utf-8', 'surrogateescape'):
                del os.environ[name_text]  # Node's name for it (None: Node left the variable out)
            os.environb[name] = bytes.fromhex(value)
        except (TypeError, ValueError, KeyError, OSError, AttributeError):
            pass


def _restore_signals(config):
    # Node (hp-record) starts with every signal at its default and none blocked, and so does the
    # program it spawns: the signals ignored and blocked when hp-record was started (nohup, a
    # shell's background job, a service manager) are put back as python would have inherited
    # them. Python itself ignores SIGPIPE and SIGXFSZ and leaves an ignored SIGINT ignored, so the
    # result is what a plain run has. _signal: the builtin, without signal.py's enum import.
    signals = config.get('signals')
    if not signals:
        return
    import _signal

    for signum in signals.get('ignore') or ():
        try:
            _signal.signal(signum, _signal.SIG_IGN)
        except (OSError, ValueError, TypeError):
            pass  # SIGKILL, SIGSTOP, or a number this Python does not know
    blocked = signals.get('block') or ()
    if blocked and hasattr(_signal, 'pthread_sigmask'):
        try:
            _signal.pthread_sigmask(_signal.SIG_SETMASK, blocked)
        except (OSError, ValueError, TypeError):
            pass


def _restore_limits(config):
    # The soft descriptor limit, which Node (hp-record) raises to the hard one as it starts, and a
    # soft address-space limit (ulimit -S -v) too small for Node, which bin/hp-record.js raised: set
    # back for the program, as python would have inherited them. [soft, hard], -1 for unlimited.
    for key, name in (('rlimit_as', 'RLIMIT_AS'), ('rlimit_nofile', 'RLIMIT_NOFILE')):
        limit = config.get(key)
        if not limit:
            continue
        try:
            import resource

            soft, hard = limit
            resource.setrlimit(getattr(resource, name), (soft, resource.RLIM_INFINITY if hard < 0 else hard))
        except (ImportError, OSError, ValueError, TypeError):
            pass


def _leave_sys_path():
    # The private directory leaves sys.path, so that `import sitecustomize` finds the user's (or none)
    # and never this file again. Subinterpreters start from the path python computed at start-up, which
    # still has it: there this runs with no configuration and must not find itself either.
    private_dir = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [entry for entry in sys.path if not (entry and os.path.abspath(entry) == private_dir)]
    _forget_path_entry(private_dir)


def _forget_path_entry(directory):
    # The import system's finder for a directory we put on sys.path and took off again stays cached in
    # sys.path_importer_cache, where plain python has no such entry (and the private directory is
    # removed after the run). Not when the directory is still on sys.path (the user's own entry).
    for entry in list(sys.path_importer_cache):
        if isinstance(entry, str) and entry and entry not in sys.path and os.path.abspath(entry) == directory:
            del sys.path_importer_cache[entry]


def _chain_sitecustomize():
    # Ours shadowed the user's (or the distribution's) sitecustomize: import it now, as site would have,
    # including site's way of reporting an error in it. If there is none, this module stays registered
    # as sitecustomize (the import machinery requires it).
    this = sys.modules.get(__name__)
    del sys.modules[__name__]
    try:
        import sitecustomize  # noqa: F401 (imported for its effects)
    except ImportError as err:
        # Python 2's ImportError has no name, only "No module named sitecustomize" (a python 2
        # started by the program under --follow-children runs this too).
        missing = getattr(err, 'name', None) or str(err).replace('No module named ', '', 1)
        if missing != 'sitecustomize':
            _report_sitecustomize_error(err)
    except Exception as err:
        _report_sitecustomize_error(err)
    if __name__ not in sys.modules:
        sys.modules[__name__] = this


def _report_sitecustomize_error(err):
    if sys.flags.verbose:
        sys.excepthook(*sys.exc_info())
    else:
        sys.stderr.write('Error in sitecustomize; set PYTHONVERBOSE for traceback:\n%s: %s\n'
                         % (err.__class__.__name__, err))


def _module_exists(name):
    # Only the top-level package is looked up (that imports nothing), where `python -m` will look.
    import importlib.machinery

    top = name.split('.')[0]
    if not top:
        return False
    if top in sys.modules or top in sys.builtin_module_names:
        return True
    path = list(sys.path)
    if not getattr(sys.flags, 'safe_path', False):
        path.insert(0, os.getcwd())
    # Every finder python's import will ask, in its order: besides the path, those that .pth files
    # or a sitecustomize put on sys.meta_path (setuptools' editable installs find packages that way).
    for finder in sys.meta_path:
        find_spec = getattr(finder, 'find_spec', None)
        if find_spec is None:
            continue
        try:
            if finder is importlib.machinery.PathFinder:
                spec = find_spec(top, path)
            else:
                spec = find_spec(top, None)
        except (ImportError, ValueError):
            continue
        except Exception:
            return True  # a finder that fails: python will fail the same way, and say so itself
        if spec is not None:
            return True
    return False


def _import_heapprof(package_parent):
    # Our package comes first, even over another heapprof on PYTHONPATH; its path entry is removed again.
    # The module stays in sys.modules, so the program can `import heapprof` and call heapprof.isProfiling().
    sys.path.insert(0, package_parent)
    try:
        import heapprof
    except ImportError as err:
        _fail('cannot load the heapprof Python package from %s: %s' % (package_parent, err))
    except OSError as err:
        _fail('cannot load the heapprof native library: %s' % _os_error_text(err))
    except RuntimeError as err:
        _fail(str(err))
    finally:
        if sys.path and sys.path[0] == package_parent:
            del sys.path[0]
        _forget_path_entry(os.path.abspath(package_parent))
    return heapprof


def _profile_base(config):
    if config.get('base'):
        return config['base']
    directory = config.get('dir') or '.'
    name = 'heapprof.%d' % os.getpid()
    return name if directory == '.' else os.path.join(directory, name)


def _sampling_table(config):
    # The table as JSON carries it, [[bound, p], ...], as heapprof.start takes it; None: the default.
    sampling = config.get('sampling')
    return None if sampling is None else dict((int(bound), float(p)) for bound, p in sampling)


def _start_recorder(heapprof, config, target_argv):
    # target_argv goes into the profile header: the command line as the program will see it.
    # Starting is the bootstrap's last act, so that its own allocations stay out of the profile.
    global _profile_files
    mode = config.get('mode', 'profile')
    force = bool(config.get('force'))
    if mode == 'stats':
        base = config.get('base') or (config.get('dir') and _profile_base(config)) or None
    else:
        base = _profile_base(config)
        sampling = _sampling_table(config)
    _profile_files = [base + '.hpm', base + '.hpd'] if base else []
    if config.get('mark_signal'):  # before starting, so that importing signal stays out of the profile
        _install_mark_signal(heapprof, int(config['mark_signal']))
    _write_status({'state': 'started', 'files': _profile_files, 'pid': os.getpid()})
    try:
        if mode == 'stats':
            heapprof.gatherStats(base, force=force, argv=target_argv)
        else:
            state = getattr(heapprof, '_state', None)
            if isinstance(state, dict):
                state['watch_next'] = True  # its summary is kept, whoever stops it
            heapprof.start(base, sampling, sample_bytes=config.get('sample_bytes'),
                           follow_fork=bool(config.get('follow_fork')), force=force, argv=target_argv,
                           native=bool(config.get('native')), native_stacks=bool(config.get('native_stacks')))
    except OSError as err:
        _fail(_os_error_text(err))
    except (ValueError, TypeError, RuntimeError) as err:
        _fail(str(err))
    global _generation
    state = getattr(heapprof, '_state', None)
    _generation = state.get('generation', 0) if mode != 'stats' and isinstance(state, dict) else 0


def _install_mark_signal(heapprof, signum):
    # hp-record --mark-signal: each delivery writes the mark signal-1, signal-2, ... A Python-level
    # handler, so it runs in the main thread between bytecodes (a mark waits for a long C call to
    # return). If the program sets its own handler for this signal, the program's wins and marks stop.
    import signal

    count = [0]

    def _mark(signum, frame):
        count[0] += 1
        heapprof.mark('signal-%d' % count[0])

    try:
        signal.signal(signum, _mark)
    except (ValueError, OSError) as err:
        _fail('cannot handle signal %d for marks: %s' % (signum, err))


def _finish():
    # atexit, registered before the program's own handlers so that it runs after them: stop the recorder
    # and report its summary. A forked child inherits it but is not the process hp-record waits for.
    global _finished
    if os.getpid() != _recorder_pid or _finished:
        return
    _finished = True
    heapprof = sys.modules.get('heapprof')
    summary = {}
    if heapprof is not None:
        try:
            heapprof.stop()
        except Exception as err:  # report it; never change the program's exit status
            summary['stop_error'] = str(err)
        # The summary of the recording hp-record started, even when the program stopped it and
        # started one of its own (whose counters are the last ones now).
        stop_generation = getattr(heapprof, '_stop_generation', None)
        get_summary = getattr(heapprof, '_summary', None)
        try:
            if _generation and stop_generation is not None:
                summary.update(stop_generation(_generation) or {})
            elif get_summary is not None:
                summary.update(get_summary() or {})
        except Exception as err:
            summary['summary_error'] = str(err)
    _write_status({'state': 'finished', 'files': _profile_files, 'pid': os.getpid(), 'summary': summary})


def _report_at_os_exit():
    # os._exit skips atexit: stop and report first (heapprof's own wrapper, underneath, only stops).
    import heapprof

    heapprof._wrap_os("_exit", _finish)


_KILL_GRACE_MS = 5000


def _watch_recorder(heapprof, config):
    # If hp-record dies (kill -9), the program gets SIGTERM, then SIGKILL after _KILL_GRACE_MS, and the
    # private directory is removed: a native thread of the hook polls getppid() (man/hp-record.1, Signals).
    parent = config.get('recorder_pid')
    status = config.get('status') or ''
    private_dir = os.path.dirname(status)
    if not os.path.basename(private_dir).startswith('hp-record-'):
        private_dir = ''  # only ever hp-record's own temporary directory
    if not parent:
        return
    try:
        heapprof._native.load().hp_watch_parent(int(parent), _KILL_GRACE_MS, private_dir.encode())
    except (AttributeError, OSError, ValueError):
        pass  # an older library: no watchdog


def _bootstrap(raw_config):
    global _status_path, _recorder_pid
    try:
        config = _json_loads(raw_config)
        if not isinstance(config, dict):
            raise ValueError('not an object')
    except ValueError:
        _fail('%s is not valid JSON' % _CONFIG_VAR, _EXIT_USAGE)
    if config.get('config_file'):
        # hp-record's configuration, in its private directory: it holds the whole command line, which
        # could pass the size one environment string may have (128 KiB).
        path = config['config_file']
        try:
            with open(path, 'rb') as f:
                config = _json_loads(f.read().decode('utf-8'))
            if not isinstance(config, dict):
                raise ValueError('not an object')
        except (OSError, IOError) as err:
            _fail('cannot read the configuration: %s' % _os_error_text(err))
        except ValueError:
            _fail('%s is not valid JSON' % path, _EXIT_USAGE)
    if config.get('descendant'):
        _descendant(raw_config, config)
        return
    _status_path = config.get('status')
    _restore_signals(config)
    _restore_limits(config)
    if config.get('follow_children') and config.get('mode', 'profile') == 'profile':
        _pass_on(config)
    else:
        _undo_environment(config)
    _restore_raw_bytes(config)
    if sys.version_info < _MIN_PYTHON:
        _fail('Python %d.%d is not supported (heapprof records CPython %d.%d and later)'
              % (sys.version_info[0], sys.version_info[1], _MIN_PYTHON[0], _MIN_PYTHON[1]))
    _chain_sitecustomize()
    target = config.get('target') or []
    if target[:1] == ['-m'] and not _module_exists(target[1]):
        _fail('no module named %s' % target[1].split('.')[0], _EXIT_USAGE)

    heapprof = _import_heapprof(config['package_parent'])
    if not config.get('follow_children'):
        _restore_native_lib(heapprof, config)
    _watch_recorder(heapprof, config)
    import atexit

    _recorder_pid = os.getpid()
    atexit.register(heapprof._at_real_exit(_finish))
    _report_at_os_exit()
    closed_stdio = config.get('closed_stdio')
    if closed_stdio and 2 in closed_stdio:
        # Before the recorder starts (a call allocates its frame on 3.9 and 3.10): see below.
        heapprof._native.load().hp_no_stderr()
    _start_recorder(heapprof, config, list(target))
    # hp-record was started with standard input, output or error closed, and Node opened
    # /dev/null there while starting: python would have set sys.stdin (sys.stdout, sys.stderr)
    # and its sys.__stdin__ to None, and the program's first open() would get the lowest of
    # those descriptors. Done last, once the recorder holds its own files (which live far above:
    # native/hpxw.c), and once nothing of the bootstrap writes to them. Python's stdio objects
    # do not own the descriptors. With 2 closed, the recorder's warnings go nowhere, as python's.
    # Inline, and allocating nothing (no function of ours called, no loop's iterator, no new
    # list): on 3.9 and 3.10 a call allocates its frame, and the recorder, running now, could
    # draw any allocation with the bootstrap's stack.
    if closed_stdio:
        if 0 in closed_stdio:
            sys.stdin = sys.__stdin__ = None
            try:
                os.close(0)
            except OSError:
                pass
        if 1 in closed_stdio:
            sys.stdout = sys.__stdout__ = None
            try:
                os.close(1)
            except OSError:
                pass
        if 2 in closed_stdio:
            sys.stderr = sys.__stderr__ = None
            try:
                os.close(2)
            except OSError:
                pass


if __name__ == 'sitecustomize':
    _raw_config = os.environ.pop(_CONFIG_VAR, None)  # os.environ.pop also unsets it for subprocesses
    if _raw_config is not None:
        _bootstrap(_raw_config)
    else:
        # Not hp-record's process (a subinterpreter, or python started by the program with our
        # PYTHONPATH somehow kept): record nothing, import nothing, and stay out of the way.
        _leave_sys_path()
        _chain_sitecustomize()
