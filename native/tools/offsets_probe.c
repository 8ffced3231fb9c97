/* Offline generator for the struct offsets hard-coded in native/pyrt.c.
 * Build it once per CPython minor against that version's own headers (see
 * native/tools/offsets.sh) and compare its output with the tables in pyrt.c.
 * It is never part of the shipped library, which is built without Python.h. */
#define Py_BUILD_CORE 1
#include <Python.h>
#include <stddef.h>
#include <stdio.h>
#if PY_VERSION_HEX < 0x030B0000
#include <frameobject.h>
#endif
#if PY_VERSION_HEX >= 0x030B0000
#include "internal/pycore_frame.h"
#endif
#include "internal/pycore_runtime.h"

#define P(name, expr) printf("%-28s %zu\n", name, (size_t)(expr))

int main(void) {
  printf("python %s\n", PY_VERSION);
  P("code.co_filename", offsetof(PyCodeObject, co_filename));
  P("code.co_name", offsetof(PyCodeObject, co_name));
  P("code.co_firstlineno", offsetof(PyCodeObject, co_firstlineno));
  /* pyrt_gil_tstate's direct reads (direct_check) */
  P("tstate.interp", offsetof(PyThreadState, interp));
  P("runtime._finalizing", offsetof(_PyRuntimeState, _finalizing));
#if PY_VERSION_HEX < 0x030C0000
  P("runtime.gilstate.tstate_current", offsetof(_PyRuntimeState, gilstate.tstate_current));
  P("runtime.gilstate.autoInterpreterState", offsetof(_PyRuntimeState, gilstate.autoInterpreterState));
  P("runtime.gilstate.autoTSSkey", offsetof(_PyRuntimeState, gilstate.autoTSSkey));
#else
  P("runtime.autoTSSkey", offsetof(_PyRuntimeState, autoTSSkey));
#endif
  P("Py_tss_t._key", offsetof(Py_tss_t, _key));
#if PY_VERSION_HEX < 0x030B0000
  P("frame.f_lasti", offsetof(PyFrameObject, f_lasti));
  P("frame.f_trace", offsetof(PyFrameObject, f_trace));
  P("frame.f_code", offsetof(PyFrameObject, f_code));
#endif
#if PY_VERSION_HEX >= 0x030B0000
  P("code._co_firsttraceable", offsetof(PyCodeObject, _co_firsttraceable));
  P("code.co_code_adaptive", offsetof(PyCodeObject, co_code_adaptive));
#endif
#if PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030D0000
  P("tstate.cframe", offsetof(PyThreadState, cframe));
  P("cframe.current_frame", offsetof(_PyCFrame, current_frame));
  P("iframe.f_code", offsetof(_PyInterpreterFrame, f_code));
  P("iframe.previous", offsetof(_PyInterpreterFrame, previous));
  P("iframe.prev_instr", offsetof(_PyInterpreterFrame, prev_instr));
  P("iframe.owner", offsetof(_PyInterpreterFrame, owner));
#endif
#if PY_VERSION_HEX >= 0x030D0000
  P("tstate.current_frame", offsetof(PyThreadState, current_frame));
  P("iframe.f_executable", offsetof(_PyInterpreterFrame, f_executable));
  P("iframe.previous", offsetof(_PyInterpreterFrame, previous));
  P("iframe.instr_ptr", offsetof(_PyInterpreterFrame, instr_ptr));
  P("iframe.owner", offsetof(_PyInterpreterFrame, owner));
  P("dbg.runtime_state.finalizing", offsetof(_Py_DebugOffsets, runtime_state.finalizing));
  P("dbg.thread_state.current_frame", offsetof(_Py_DebugOffsets, thread_state.current_frame));
  P("dbg.interpreter_frame.previous", offsetof(_Py_DebugOffsets, interpreter_frame.previous));
  P("dbg.interpreter_frame.executable", offsetof(_Py_DebugOffsets, interpreter_frame.executable));
  P("dbg.interpreter_frame.instr_ptr", offsetof(_Py_DebugOffsets, interpreter_frame.instr_ptr));
  P("dbg.interpreter_frame.owner", offsetof(_Py_DebugOffsets, interpreter_frame.owner));
  P("dbg.code_object.filename", offsetof(_Py_DebugOffsets, code_object.filename));
  P("dbg.code_object.name", offsetof(_Py_DebugOffsets, code_object.name));
  P("dbg.code_object.firstlineno", offsetof(_Py_DebugOffsets, code_object.firstlineno));
  P("dbg.code_object.co_code_adaptive", offsetof(_Py_DebugOffsets, code_object.co_code_adaptive));
#endif
  return 0;
}
