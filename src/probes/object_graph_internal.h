// Internal to the object graph (src/probes/object_graph*.cc): type names, the
// labels of objects and references, DOT quoting. Not installed.
//
// REQUIRES (every function touching a PyObject, so marked for clang's
// thread-safety analysis): the GIL is held. None of them leaves a Python
// error set.

#ifndef LEAKGUARD_SRC_OBJECT_GRAPH_INTERNAL_H_
#define LEAKGUARD_SRC_OBJECT_GRAPH_INTERNAL_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "leakguard/python/python.h"
#include "python/gil_capability.h"

namespace leakguard::internal {

// `type.__name__` (objgraph's short type name).
std::string ShortTypeName(PyTypeObject* type) LEAKGUARD_REQUIRES_GIL;
// objgraph's long type name: "<__module__>.<__name__>", or the short name
// when `__module__` is missing or false.
std::string FullTypeName(PyTypeObject* type) LEAKGUARD_REQUIRES_GIL;

// How a readable path names an object: "module app", "class Config",
// "function f", "frame run (app.py:12)", else the short type name.
std::string Describe(PyObject* obj) LEAKGUARD_REQUIRES_GIL;
// objgraph's `_short_repr`: names of modules, classes and functions, "N
// items" for containers, "file:line" for frames, else repr cut to 40.
std::string ShortLabel(PyObject* obj) LEAKGUARD_REQUIRES_GIL;
// How `src` refers to `dst` ("['key']", "[3]", ".__dict__", ".name", ...);
// "?" when `src` is a container that no longer holds `dst`, "" if unknown.
std::string EdgeLabel(PyObject* src, PyObject* dst) LEAKGUARD_REQUIRES_GIL;

// `s` cut to `max_bytes` (never inside a UTF-8 sequence).
std::string Truncate(std::string s, std::size_t max_bytes);
// repr(obj) as UTF-8, cut to `max_bytes`; "(unrepresentable)" if it raises.
std::string SafeRepr(PyObject* obj, std::size_t max_bytes) LEAKGUARD_REQUIRES_GIL;
// objgraph's `_quote` for DOT strings.
std::string DotQuote(std::string_view s);
// objgraph's node id: "o" and the address in decimal.
std::string DotNodeId(const void* obj);

}  // namespace leakguard::internal

#endif  // LEAKGUARD_SRC_OBJECT_GRAPH_INTERNAL_H_
