# hp-record's bootstrap: started as `python _run.py script.py args...` or `python _run.py -m module args...`,
# it starts the heapprof recorder and then runs the target exactly as `python script.py args...` would
# (sys.argv, sys.path[0], __main__, exit status, tracebacks, KeyboardInterrupt), removing its own traces.
#
# The recording configuration comes from the environment variable HEAPPROF_RECORD_CONFIG (JSON, written
# by lib/cmd/record.ts), which is removed before the target runs so that neither it nor its subprocesses
# see it. The bootstrap reports back through the status file named in that configuration: an error that
# stopped it before the target started, then the recorder's summary at exit. It prints nothing itself.
#
# Keep this file parseable by old Pythons (no f-strings or annotations), so that running it with an
# unsupported interpreter ends with a clear message rather than a SyntaxError.

_MAIN_GLOBALS_AT_START = dict(globals())  # first statement: what a fresh __main__ holds on this Python

import os
import sys

_CONFIG_VAR = 'HEAPPROF_RECORD_CONFIG'
_EXIT_USAGE = 2
_EXIT_FAILURE = 1
_MIN_PYTHON = (3, 9)

_status_path = None
_recorder_pid = None
_profile_files = []


def _write_status(status):
    # The status file lives in a private temporary directory made by hp-record.
    if _status_path is None:
        return
    import json

    try:
        with open(_status_path, 'w') as f:
            json.dump(status, f)
    except (OSError, IOError, ValueError, TypeError):
        pass


def _fail(message, exit_code=_EXIT_FAILURE):
    # Before the target starts: hp-record prints the message (one line, its own prefix) and exits with this status.
    if _status_path is None:
        sys.stderr.write('hp-record: %s\n' % message)
    _write_status({'state': 'error', 'exit': exit_code, 'message': message})
    sys.exit(exit_code)


def _os_error_text(err):
    text = (err.strerror or str(err)).lower()
    if getattr(err, 'filename', None):
        return '%s: %s' % (err.filename, text)
    return text


def _read_config():
    import json

    raw = os.environ.pop(_CONFIG_VAR, None)  # os.environ.pop also unsets it for subprocesses
    if raw is None:
        sys.stderr.write('hp-record: %s is not set; run programs with hp-record, not with this file\n' % _CONFIG_VAR)
        sys.exit(_EXIT_USAGE)
    try:
        config = json.loads(raw)
    except ValueError:
        sys.stderr.write('hp-record: %s is not valid JSON\n' % _CONFIG_VAR)
        sys.exit(_EXIT_USAGE)
    return config


def _parse_target(argv):
    # argv = sys.argv[1:] as hp-record wrote it: [script, args...] or ['-m', module, args...]
    if not argv:
        _fail('no program to run', _EXIT_USAGE)
    if argv[0] == '-m':
        if len(argv) < 2 or not argv[1]:
            _fail('-m needs a module name', _EXIT_USAGE)
        return 'module', argv[1], argv[2:]
    return 'script', argv[0], argv[1:]


def _remove_bootstrap_path():
    # Python put this file's directory (heapprof/) first on sys.path, unless -P/PYTHONSAFEPATH (3.11+) said not to.
    here = os.path.dirname(os.path.realpath(os.path.abspath(__file__)))
    if sys.path and sys.path[0] and os.path.realpath(sys.path[0]) == here:
        del sys.path[0]
    return os.path.dirname(here)


def _import_heapprof(package_parent):
    # Our package comes first, even over another heapprof on PYTHONPATH; the path entry is removed afterwards.
    # The module stays in sys.modules, so the target can `import heapprof` and call heapprof.isProfiling().
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
    return heapprof


def _profile_base(config):
    if config.get('base'):
        return config['base']
    directory = config.get('dir') or '.'
    name = 'heapprof.%d' % os.getpid()
    return name if directory == '.' else os.path.join(directory, name)


def _start_recorder(heapprof, config):
    global _profile_files
    mode = config.get('mode', 'profile')
    force = bool(config.get('force'))
    try:
        if mode == 'stats':
            base = config.get('base') or (config.get('dir') and _profile_base(config)) or None
            heapprof.gatherStats(base, force=force)
        else:
            base = _profile_base(config)
            sampling = config.get('sampling')
            if sampling is not None:
                sampling = dict((int(bound), float(p)) for bound, p in sampling)
            heapprof.start(base, sampling, sample_bytes=config.get('sample_bytes'),
                           follow_fork=bool(config.get('follow_fork')), force=force)
    except OSError as err:
        _fail(_os_error_text(err))
    except (ValueError, TypeError, RuntimeError) as err:
        _fail(str(err))
    if base:
        _profile_files = [base + '.hpm', base + '.hpd']
    return base


def _finish():
    # atexit, registered before the target's own handlers so it runs after them: stop the recorder and
    # report its summary. A forked child inherits this handler but is not the process hp-record waits for.
    if os.getpid() != _recorder_pid:
        return
    heapprof = sys.modules.get('heapprof')
    summary = {}
    if heapprof is not None:
        try:
            heapprof.stop()
        except Exception as err:  # report, never mask the program's own exit status
            summary['stop_error'] = str(err)
        get_summary = getattr(heapprof, '_summary', None)
        if get_summary is not None:
            try:
                summary.update(get_summary() or {})
            except Exception as err:
                summary['summary_error'] = str(err)
    _write_status({'state': 'finished', 'files': _profile_files, 'summary': summary})


def _fresh_main_module(file_path, loader):
    # The module python itself would have made: the same initial globals, plus __file__/__cached__/__loader__.
    module = types.ModuleType('__main__')
    namespace = module.__dict__
    namespace.clear()
    for key, value in _MAIN_GLOBALS_AT_START.items():
        if key not in ('__file__', '__cached__', '__loader__'):
            namespace[key] = value
    namespace['__doc__'] = None
    if file_path is not None:
        namespace['__file__'] = file_path
        namespace['__cached__'] = None
    if loader is not None:
        namespace['__loader__'] = loader
    else:
        namespace['__loader__'] = importlib.machinery.BuiltinImporter
    sys.modules['__main__'] = module
    return module


def _importer_for(path):
    # As python does for `python PATH`: a directory or zip archive is run through its __main__ module.
    for hook in sys.path_hooks:
        try:
            importer = hook(path)
        except ImportError:
            continue
        sys.path_importer_cache[path] = importer
        return importer
    return None


def _set_orig_argv(target_argv):
    # sys.orig_argv (3.10+) shows python's own command line; make it the one without the bootstrap.
    orig = getattr(sys, 'orig_argv', None)
    if orig and len(orig) >= 2:
        sys.orig_argv = [orig[0]] + target_argv


def _prepare_script(script):
    # Everything that can fail before recording starts, so that a bad script starts nothing.
    # python makes the path absolute by prefixing the working directory, without normalising "..".
    abs_path = script if os.path.isabs(script) else os.path.join(os.getcwd(), script)
    if not os.path.exists(abs_path):
        _fail("%s: no such file" % script, _EXIT_USAGE)
    importer = None if os.path.isfile(abs_path) else _importer_for(abs_path)
    if importer is None and not os.path.isfile(abs_path):
        _fail("%s: not a file, directory with __main__.py or zip archive" % script, _EXIT_USAGE)
    return abs_path, importer


def _target_path0(kind, abs_path, importer):
    # What python puts first on sys.path: the script's real directory; the directory or zip itself;
    # for -m the working directory. Nothing with -P / PYTHONSAFEPATH (3.11+).
    if getattr(sys.flags, 'safe_path', False):
        return None
    if kind == 'module':
        return os.getcwd()
    if importer is not None:
        return abs_path
    return os.path.dirname(os.path.realpath(abs_path))


def _run_script(script, abs_path, importer, args):
    sys.argv[:] = [script] + list(args)
    _set_orig_argv([script] + list(args))
    if importer is not None:
        _fresh_main_module(None, None)
        runpy._run_module_as_main('__main__', False)
        return
    with open(abs_path, 'rb') as f:
        source = f.read()
    if abs_path.endswith('.pyc') or source[:2] == importlib.util.MAGIC_NUMBER[:2]:
        loader = importlib.machinery.SourcelessFileLoader('__main__', abs_path)
        code = marshal.loads(source[16:])
    else:
        loader = importlib.machinery.SourceFileLoader('__main__', abs_path)
        code = compile(source, abs_path, 'exec', dont_inherit=True)
    module = _fresh_main_module(abs_path, loader)
    namespace = module.__dict__
    try:
        exec(code, namespace)
    except SystemExit:
        raise  # python exits from within its error report, so atexit handlers still see __file__
    except BaseException as exc:
        # python reports an uncaught exception while __file__ is still set (a sys.excepthook may use it)
        _report_and_reraise_quietly(exc)
        _forget_main_file(namespace)
        raise
    _forget_main_file(namespace)


def _forget_main_file(namespace):
    # python removes these once the script has run (atexit handlers see __main__ without them)
    namespace.pop('__file__', None)
    namespace.pop('__cached__', None)


def _run_module(name, args):
    sys.argv[:] = ['-m'] + list(args)
    _set_orig_argv(['-m', name] + list(args))
    _fresh_main_module(None, None)
    runpy._run_module_as_main(name, True)  # what `python -m` calls; it sets sys.argv[0] to the module's file


def _module_exists(name):
    # Only the top-level package is looked up here: finding it imports nothing, finding a submodule would.
    top = name.split('.')[0]
    if not top or name.startswith('.'):
        return False
    try:
        return top in sys.modules or importlib.util.find_spec(top) is not None
    except (ImportError, ValueError):
        return False


def _strip_bootstrap_frames(tb):
    own_file = sys._getframe().f_code.co_filename
    while tb is not None and tb.tb_frame.f_code.co_filename == own_file:
        tb = tb.tb_next
    return tb


def _report_uncaught(exc, tb):
    # What python's PyErr_Print does for an uncaught exception, with the bootstrap's frames removed.
    exc.__traceback__ = tb
    sys.last_type, sys.last_value, sys.last_traceback = type(exc), exc, tb
    if sys.version_info >= (3, 12):
        sys.last_exc = exc
    hook = getattr(sys, 'excepthook', None)
    if hook is None:
        sys.stderr.write('sys.excepthook is missing\n')
        sys.__excepthook__(type(exc), exc, tb)
        return
    try:
        hook(type(exc), exc, tb)
    except BaseException as hook_error:
        sys.stderr.write('Error in sys.excepthook:\n')
        sys.__excepthook__(type(hook_error), hook_error, _strip_bootstrap_frames(hook_error.__traceback__))
        sys.stderr.write('\nOriginal exception was:\n')
        sys.__excepthook__(type(exc), exc, tb)
        sys.stderr.flush()


_reported_exception = None


def _report_and_reraise_quietly(exc):
    # Report now, without the bootstrap's frames; the caller re-raises so that python ends the process
    # exactly as it would have (status 1, or dying of SIGINT after a KeyboardInterrupt).
    global _reported_exception
    if exc is _reported_exception:
        return
    _reported_exception = exc
    tb = _strip_bootstrap_frames(exc.__traceback__)
    _report_uncaught(exc, tb)
    _silence_next_report(exc, tb)


def _silence_next_report(exc, tb):
    # The exception is re-raised so that python exits exactly as it would have (status 1, or dying of SIGINT
    # after a KeyboardInterrupt), but it has already been reported: swallow that second report once.
    previous = sys.excepthook

    def already_reported(exc_type, value, traceback):
        sys.excepthook = previous
        value.__traceback__ = tb
        sys.last_traceback = tb

    sys.excepthook = already_reported


def _import_bootstrap_modules():
    global atexit, importlib, json, marshal, runpy, types
    import atexit
    import importlib.machinery
    import importlib.util
    import json
    import marshal
    import runpy
    import types


def _main():
    global _status_path, _recorder_pid
    config = _read_config()
    _status_path = config.get('status')
    if sys.version_info < _MIN_PYTHON:
        _fail('Python %d.%d is not supported (heapprof records CPython %d.%d and later)'
              % (sys.version_info[0], sys.version_info[1], _MIN_PYTHON[0], _MIN_PYTHON[1]))
    package_parent = _remove_bootstrap_path()
    kind, target, args = _parse_target(sys.argv[1:])
    abs_path = importer = None
    if kind == 'script':
        abs_path, importer = _prepare_script(target)

    # Everything the bootstrap and the recorder import is imported before the target's directory goes on
    # sys.path, so that a json.py or signal.py next to the script cannot break the recorder.
    heapprof = _import_heapprof(package_parent)
    _import_bootstrap_modules()
    path0 = _target_path0(kind, abs_path, importer)
    if path0 is not None:
        sys.path.insert(0, path0)
    if kind == 'module' and not _module_exists(target):
        _fail('no module named %s' % target.split('.')[0], _EXIT_USAGE)

    _recorder_pid = os.getpid()
    atexit.register(_finish)
    _start_recorder(heapprof, config)
    _write_status({'state': 'started', 'files': _profile_files})

    try:
        if kind == 'script':
            _run_script(target, abs_path, importer, args)
        else:
            _run_module(target, args)
    except SystemExit:
        raise  # python prints a message argument and exits with the code, as it would have
    except BaseException as exc:
        _report_and_reraise_quietly(exc)
        raise


_main()
