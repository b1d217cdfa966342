// Internal: the calling thread's Python stack, read in place (frame_walk.c).
#ifndef LEAKGUARD_SRC_FRAME_WALK_H_
#define LEAKGUARD_SRC_FRAME_WALK_H_

#include <Python.h>

#ifdef __cplusplus
extern "C" {
#endif

// One frame: the code's file name (a borrowed str, alive while the frame
// runs) and the line being executed.
typedef struct {
  PyObject* filename;
  int lineno;
} leakguard_raw_frame;

// 1 where leakguard_walk_frames() reads stacks on this build (CPython 3.9
// to 3.13, with or without the GIL), 0 elsewhere (it then returns 0).
int leakguard_frame_walk_supported(void);

// Fills `out` with up to `max` frames of the calling thread's Python stack,
// most recent first, and returns how many it wrote (it stops there: the
// frames beyond `max` are not visited). Callable from an allocator hook:
// it allocates nothing, takes no lock, creates no frame object and runs no
// Python code. Without the GIL it reads the calling thread's own frames,
// which only that thread changes. No thread state: returns 0.
int leakguard_walk_frames(leakguard_raw_frame* out, int max);

#ifdef __cplusplus
}  // extern "C"
#endif

#endif  // LEAKGUARD_SRC_FRAME_WALK_H_
