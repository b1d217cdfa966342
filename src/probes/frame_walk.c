// The calling thread's Python stack, read in place for the sampling
// allocation tracker (sampler.cc), the way CPython's own tracemalloc reads
// it from its allocator hooks: no frame object is made (3.11+ frames are
// plain structs until someone asks for an object, and making one allocates),
// nothing is allocated, no lock is taken.
//
// It is C for the same reason as gc_walk.c: 3.11 and later keep the frame
// layout (_PyInterpreterFrame) in internal headers written for CPython's C
// build. Per version:
//   3.9, 3.10  tstate->frame, a chain of PyFrameObject (public struct), the
//              line from PyFrame_GetLineNumber (no allocation)
//   3.11       tstate->cframe->current_frame, a chain of _PyInterpreterFrame;
//              frames still being set up ("incomplete") are skipped; the line
//              from PyCode_Addr2Line of the last instruction
//   3.12       as 3.11, plus the C-stack shim frames skipped; the line from
//              PyUnstable_InterpreterFrame_GetLine
//   3.13       tstate->current_frame; f_executable may be something other
//              than a code object (skipped)
// 3.14 changed the frame layout again (tagged stack references): there the
// walk is not compiled and samples carry no Python frames.

#include <Python.h>

#include "probes/frame_walk.h"

#if PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030E0000
#define LEAKGUARD_FRAMES_INTERNAL 1
#ifndef Py_BUILD_CORE
#define Py_BUILD_CORE 1
#endif
#include <internal/pycore_frame.h>
#elif PY_VERSION_HEX < 0x030B0000
#define LEAKGUARD_FRAMES_OBJECTS 1
#include <frameobject.h>
#endif

#if defined(LEAKGUARD_FRAMES_INTERNAL) || defined(LEAKGUARD_FRAMES_OBJECTS)
// This thread's thread state. From 3.12 the current thread state is
// thread-local: it is this thread's own (a sub-interpreter's, say) while the
// thread holds the GIL, NULL after it released it. Before 3.12 "current"
// is the GIL holder, which may be another thread whose state is being
// deleted: it is not looked at. PyGILState keeps one state per OS thread
// (the main interpreter's), which only its own thread deletes; tracemalloc
// reads the same one.
static PyThreadState* ThisThreadState(void) {
#if PY_VERSION_HEX >= 0x030D0000
  PyThreadState* ts = PyThreadState_GetUnchecked();
  if (ts != NULL) return ts;
#elif PY_VERSION_HEX >= 0x030C0000
  PyThreadState* ts = _PyThreadState_UncheckedGet();
  if (ts != NULL) return ts;
#endif
  return PyGILState_GetThisThreadState();
}
#endif

int leakguard_frame_walk_supported(void) {
#if defined(LEAKGUARD_FRAMES_INTERNAL) || defined(LEAKGUARD_FRAMES_OBJECTS)
  return 1;
#else
  return 0;
#endif
}

int leakguard_walk_frames(leakguard_raw_frame* out, int max) {
  int n = 0;
#if defined(LEAKGUARD_FRAMES_OBJECTS)
  PyThreadState* ts = ThisThreadState();
  if (ts == NULL) return 0;
  for (PyFrameObject* f = ts->frame; f != NULL && n < max; f = f->f_back) {
    out[n].filename = f->f_code->co_filename;
    out[n].lineno = PyFrame_GetLineNumber(f);
    ++n;
  }
#elif defined(LEAKGUARD_FRAMES_INTERNAL)
  PyThreadState* ts = ThisThreadState();
  if (ts == NULL) return 0;
#if PY_VERSION_HEX >= 0x030D0000
  _PyInterpreterFrame* f = ts->current_frame;
#else
  _PyInterpreterFrame* f = ts->cframe != NULL ? ts->cframe->current_frame : NULL;
#endif
  for (; f != NULL && n < max; f = f->previous) {
#if PY_VERSION_HEX >= 0x030C0000
    if (f->owner == FRAME_OWNED_BY_CSTACK) continue;
#endif
#if PY_VERSION_HEX >= 0x030D0000
    if (f->f_executable == NULL || !PyCode_Check(f->f_executable)) continue;
    PyCodeObject* code = (PyCodeObject*)f->f_executable;
#else
    PyCodeObject* code = f->f_code;
#endif
    if (code == NULL || _PyFrame_IsIncomplete(f)) continue;
    out[n].filename = code->co_filename;
#if PY_VERSION_HEX >= 0x030C0000
    out[n].lineno = PyUnstable_InterpreterFrame_GetLine(f);
#else
    out[n].lineno =
        PyCode_Addr2Line(code, _PyInterpreterFrame_LASTI(f) * (int)sizeof(_Py_CODEUNIT));
#endif
    ++n;
  }
#else
  (void)out;
  (void)max;
#endif
  return n;
}
