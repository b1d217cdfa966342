// Back-reference chains from Python, with objgraph's names and results:
// leakguard.find_backref_chain(), leakguard.backref_path(), and the DOT text
// behind leakguard.show_backrefs() (python/leakguard/__init__.py renders it).
// One tp_traverse pass over the heap in C (leakguard/object_graph.h) instead
// of objgraph's gc.get_referrers() per object.

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "leakguard/object_graph.h"
#include "leakguard/python/error.h"
#include "leakguard/python/python.h"
#include "leakguard/python/ref.h"
#include "py_module_internal.h"

namespace leakguard::python::internal {
namespace {

// Fills `out` with the objects of the iterable `ignore` (the Refs keep them
// alive while the query runs). False with an exception set.
bool IgnoreList(PyObject* ignore, std::vector<Ref>* refs, std::vector<Handle>* out) {
  if (ignore == nullptr || ignore == Py_None) return true;
  Ref items = Steal(PySequence_List(ignore));
  if (!items) return false;
  for (Py_ssize_t i = 0; i < PyList_GET_SIZE(items.get()); ++i) {
    refs->push_back(Borrow(PyList_GET_ITEM(items.get(), i)));
  }
  for (const Ref& r : *refs) out->push_back(r);
  return true;
}

// The chain query shared by find_backref_chain and backref_path. `predicate`
// (or None: proper modules) ends the chain. The first exception it raises is
// held aside while the walk finishes (no further calls, no root found
// there) and restored after it: *predicate_failed says so.
absl::StatusOr<BackrefChain> Chain(PyObject* obj, PyObject* predicate, int max_depth,
                                   const std::vector<Handle>& ignore, bool* predicate_failed) {
  ChainOptions options;
  options.max_depth = max_depth;
  options.ignore = ignore;
  PyObject* error_type = nullptr;
  PyObject* error_value = nullptr;
  PyObject* error_traceback = nullptr;
  if (predicate != nullptr && predicate != Py_None) {
    options.roots.proper_modules = false;
    options.is_root = [&](Handle candidate) {
      if (*predicate_failed) return false;
      Ref result = Steal(PyObject_CallOneArg(predicate, candidate.get()));
      const int truth = result ? PyObject_IsTrue(result.get()) : -1;
      if (truth < 0) {
        *predicate_failed = true;
        PyErr_Fetch(&error_type, &error_value, &error_traceback);
        return false;
      }
      return truth == 1;
    };
  }
  absl::StatusOr<BackrefChain> chain = FindBackrefChain(Handle(obj), options);
  if (*predicate_failed) PyErr_Restore(error_type, error_value, error_traceback);
  return chain;
}

bool ParseChainArgs(const char* format, PyObject* args, PyObject* kwargs, PyObject** obj,
                    PyObject** predicate, int* max_depth, PyObject** extra_ignore) {
  static const char* keywords[] = {"obj", "predicate", "max_depth", "extra_ignore", nullptr};
  return PyArg_ParseTupleAndKeywords(args, kwargs, format, const_cast<char**>(keywords), obj,
                                     predicate, max_depth, extra_ignore) != 0;
}

PyObject* FindBackrefChainPy(PyObject* /*module*/, PyObject* args, PyObject* kwargs) {
  PyObject* obj = nullptr;
  PyObject* predicate = Py_None;
  int max_depth = 20;
  PyObject* extra_ignore = Py_None;
  if (!ParseChainArgs("O|OiO:find_backref_chain", args, kwargs, &obj, &predicate, &max_depth,
                      &extra_ignore)) {
    return nullptr;
  }
  std::vector<Ref> keep;
  std::vector<Handle> ignore;
  if (!IgnoreList(extra_ignore, &keep, &ignore)) return nullptr;
  bool predicate_failed = false;
  absl::StatusOr<BackrefChain> chain = Chain(obj, predicate, max_depth, ignore, &predicate_failed);
  if (predicate_failed) return nullptr;  // The predicate's exception.
  if (!chain.ok()) {
    // objgraph: no root within max_depth gives [obj].
    if (absl::IsNotFound(chain.status())) return Py_BuildValue("[O]", obj);
    return SetPythonErrorFromStatus(chain.status(), "find_backref_chain()");
  }
  PyObject* list = PyList_New(static_cast<Py_ssize_t>(chain->links.size()));
  if (list == nullptr) return nullptr;
  for (size_t i = 0; i < chain->links.size(); ++i) {
    PyList_SET_ITEM(list, static_cast<Py_ssize_t>(i), NewRef(chain->links[i].object.get()));
  }
  return list;
}

PyObject* BackrefPath(PyObject* /*module*/, PyObject* args, PyObject* kwargs) {
  PyObject* obj = nullptr;
  PyObject* predicate = Py_None;
  int max_depth = 20;
  PyObject* extra_ignore = Py_None;
  if (!ParseChainArgs("O|OiO:backref_path", args, kwargs, &obj, &predicate, &max_depth,
                      &extra_ignore)) {
    return nullptr;
  }
  std::vector<Ref> keep;
  std::vector<Handle> ignore;
  if (!IgnoreList(extra_ignore, &keep, &ignore)) return nullptr;
  bool predicate_failed = false;
  absl::StatusOr<BackrefChain> chain = Chain(obj, predicate, max_depth, ignore, &predicate_failed);
  if (predicate_failed) return nullptr;
  if (!chain.ok()) {
    if (absl::IsNotFound(chain.status())) Py_RETURN_NONE;
    return SetPythonErrorFromStatus(chain.status(), "backref_path()");
  }
  const std::string path = chain->Path();
  return PyUnicode_FromStringAndSize(path.data(), static_cast<Py_ssize_t>(path.size()));
}

PyObject* BackrefsDot(PyObject* /*module*/, PyObject* args, PyObject* kwargs) {
  static const char* keywords[] = {"objs", "max_depth", "too_many", "extra_ignore", nullptr};
  PyObject* objs = nullptr;
  int max_depth = 3;
  int too_many = 10;
  PyObject* extra_ignore = Py_None;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|iiO:backrefs_dot", const_cast<char**>(keywords),
                                   &objs, &max_depth, &too_many, &extra_ignore)) {
    return nullptr;
  }
  std::vector<Ref> keep_targets;
  std::vector<Handle> targets;
  if (PyList_Check(objs) || PyTuple_Check(objs)) {
    if (!IgnoreList(objs, &keep_targets, &targets)) return nullptr;
  } else {
    keep_targets.push_back(Borrow(objs));
    targets.push_back(keep_targets.back());
  }
  BackrefsDotOptions options;
  options.max_depth = max_depth;
  options.too_many = too_many;
  std::vector<Ref> keep_ignored;
  if (!IgnoreList(extra_ignore, &keep_ignored, &options.ignore)) return nullptr;
  absl::StatusOr<ReferrerGraph> graph = ReferrerGraph::Build();
  if (!graph.ok()) return SetPythonErrorFromStatus(graph.status(), "backrefs_dot()");
  absl::StatusOr<std::string> dot = graph->BackrefsDot(targets, options);
  if (!dot.ok()) return SetPythonErrorFromStatus(dot.status(), "backrefs_dot()");
  return PyUnicode_FromStringAndSize(dot->data(), static_cast<Py_ssize_t>(dot->size()));
}

template <typename F>
PyCFunction Cast(F f) {
  return reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(f));
}

PyMethodDef kBackrefFunctions[] = {
    {"find_backref_chain", Cast(FindBackrefChainPy), METH_VARARGS | METH_KEYWORDS,
     "find_backref_chain($module, /, obj, predicate=None, max_depth=20, extra_ignore=None)\n"
     "--\n\n"
     "A shortest chain of references from a root to obj, root first, found\n"
     "breadth-first as objgraph.find_backref_chain() does; [obj] when no root\n"
     "is within max_depth references. The root is where predicate(candidate)\n"
     "is true (None: a module that is in sys.modules, objgraph's\n"
     "is_proper_module). extra_ignore: objects never used as referrers.\n\n"
     "    >>> import json\n"
     "    >>> json._kept = [[]]\n"
     "    >>> chain = leakguard.find_backref_chain(json._kept[0])\n"
     "    >>> chain[0] is json, chain[-1] is json._kept[0], len(chain)\n"
     "    (True, True, 4)"},
    {"backref_path", Cast(BackrefPath), METH_VARARGS | METH_KEYWORDS,
     "backref_path($module, /, obj, predicate=None, max_depth=20, extra_ignore=None)\n"
     "--\n\n"
     "The same chain as a readable path, root first, or None when no root is\n"
     "within max_depth:\n"
     "\"module app .__dict__['_cache'] -> dict['key'] -> list[3]\".\n\n"
     "    >>> import json\n"
     "    >>> json._kept = [[]]\n"
     "    >>> leakguard.backref_path(json._kept[0])\n"
     "    \"module json .__dict__['_kept'] -> list[0]\""},
    {"backrefs_dot", Cast(BackrefsDot), METH_VARARGS | METH_KEYWORDS,
     "backrefs_dot($module, /, objs, max_depth=3, too_many=10, extra_ignore=None)\n--\n\n"
     "The referrers of objs (one object, or a list or tuple of them) up to\n"
     "max_depth levels, as Graphviz DOT in objgraph.show_backrefs' layout;\n"
     "show_backrefs() writes or renders it."},
    {nullptr, nullptr, 0, nullptr},
};

}  // namespace

int ExecBackrefs(PyObject* module) { return PyModule_AddFunctions(module, kBackrefFunctions); }

}  // namespace leakguard::python::internal
