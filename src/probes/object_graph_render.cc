// Labels of objects and references for back-reference chains, and their
// renderings (readable path, Graphviz DOT). Best effort by design: a label
// that cannot be worked out is empty, never an error.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "leakguard/object_graph.h"
#include "leakguard/python/python.h"
#include "leakguard/python/ref.h"
#include "probes/object_graph_internal.h"

// PyFrame_Check and PyFrame_GetBack live outside <Python.h> before 3.11.
#include <frameobject.h>  // NOLINT(build/include_order)

namespace leakguard::internal {
namespace {

// UTF-8 of a str object; nullopt-like empty + false on failure.
bool Utf8Of(PyObject* obj, std::string* out) {
  if (obj == nullptr || !PyUnicode_Check(obj)) return false;
  Py_ssize_t size = 0;
  const char* data = PyUnicode_AsUTF8AndSize(obj, &size);
  if (data == nullptr) {
    PyErr_Clear();
    return false;
  }
  out->assign(data, static_cast<std::size_t>(size));
  return true;
}

// str(getattr(obj, name)) or `fallback`.
std::string AttrText(PyObject* obj, const char* name, std::string fallback) LEAKGUARD_REQUIRES_GIL {
  Ref value = Steal(PyObject_GetAttrString(obj, name));
  if (!value) {
    PyErr_Clear();
    return fallback;
  }
  std::string text;
  if (Utf8Of(value.get(), &text)) return text;
  Ref str = Steal(PyObject_Str(value.get()));
  if (str && Utf8Of(str.get(), &text)) return text;
  PyErr_Clear();
  return fallback;
}

std::string Basename(const std::string& path) {
  const std::size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// "file:line" of a frame (full file name, as objgraph labels frames).
std::string FrameWhere(PyObject* frame, bool basename) LEAKGUARD_REQUIRES_GIL {
  auto* f = reinterpret_cast<PyFrameObject*>(frame);
  PyCodeObject* code = PyFrame_GetCode(f);  // New reference.
  std::string file = AttrText(reinterpret_cast<PyObject*>(code), "co_filename", "?");
  Py_DECREF(code);
  if (basename) file = Basename(file);
  return absl::StrCat(file, ":", PyFrame_GetLineNumber(f));
}

std::string FrameFunction(PyObject* frame) LEAKGUARD_REQUIRES_GIL {
  PyCodeObject* code = PyFrame_GetCode(reinterpret_cast<PyFrameObject*>(frame));
  std::string name = AttrText(reinterpret_cast<PyObject*>(code), "co_name", "?");
  Py_DECREF(code);
  return name;
}

// A key (or value) as it appears in a label: repr, cut.
std::string KeyText(PyObject* key) LEAKGUARD_REQUIRES_GIL { return SafeRepr(key, 40); }

// ".f_locals['name']" if a local of `frame` (or of a generator's frame) is
// `dst`; "" otherwise.
std::string FrameLocalLabel(PyObject* frame, PyObject* dst) LEAKGUARD_REQUIRES_GIL {
  Ref locals = Steal(PyObject_GetAttrString(frame, "f_locals"));
  if (!locals) {
    PyErr_Clear();
    return "";
  }
  Ref items = Steal(PyMapping_Items(locals.get()));
  if (!items) {
    PyErr_Clear();
    return "";
  }
  for (Py_ssize_t i = 0; i < PyList_GET_SIZE(items.get()); ++i) {
    PyObject* pair = PyList_GET_ITEM(items.get(), i);
    if (PyTuple_Check(pair) && PyTuple_GET_SIZE(pair) == 2 && PyTuple_GET_ITEM(pair, 1) == dst) {
      return absl::StrCat(".f_locals[", KeyText(PyTuple_GET_ITEM(pair, 0)), "]");
    }
  }
  return "";
}

std::string FrameLabel(PyObject* src, PyObject* dst) LEAKGUARD_REQUIRES_GIL {
  if (std::string local = FrameLocalLabel(src, dst); !local.empty()) {
    return local;
  }
  for (const char* name : {"f_globals", "f_builtins", "f_back", "f_code"}) {
    Ref value = Steal(PyObject_GetAttrString(src, name));
    if (!value) {
      PyErr_Clear();
      continue;
    }
    if (value.get() == dst) return absl::StrCat(".", name);
  }
  return "";
}

#if PY_VERSION_HEX >= 0x030B0000
// True if a class in `type`'s MRO defines `name`.
bool TypeDefines(PyTypeObject* type, PyObject* name) LEAKGUARD_REQUIRES_GIL {
  PyObject* mro = type->tp_mro;
  if (mro == nullptr || !PyTuple_Check(mro)) return true;  // Be safe: skip.
  for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(mro); ++i) {
    PyObject* base = PyTuple_GET_ITEM(mro, i);
    PyObject* dict = PyType_Check(base) ? reinterpret_cast<PyTypeObject*>(base)->tp_dict : nullptr;
    if (dict == nullptr || !PyDict_Check(dict)) continue;
    if (PyDict_GetItemWithError(dict, name) != nullptr) return true;
    if (PyErr_Occurred()) {
      PyErr_Clear();
      return true;
    }
  }
  return false;
}

// Adds the names a code object (and the code nested in it) uses.
void AddCodeNames(PyObject* code, int depth, std::vector<Ref>* names) LEAKGUARD_REQUIRES_GIL {
  if (depth > 3 || !PyCode_Check(code)) return;
  Ref co_names = Steal(PyObject_GetAttrString(code, "co_names"));
  if (co_names && PyTuple_Check(co_names.get())) {
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(co_names.get()); ++i) {
      names->push_back(Borrow(PyTuple_GET_ITEM(co_names.get(), i)));
    }
  }
  Ref consts = Steal(PyObject_GetAttrString(code, "co_consts"));
  if (consts && PyTuple_Check(consts.get())) {
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(consts.get()); ++i) {
      AddCodeNames(PyTuple_GET_ITEM(consts.get(), i), depth + 1, names);
    }
  }
  PyErr_Clear();
}

// Adds the names used by the functions (and the methods of the classes)
// in `dict`.
void AddNamesOf(PyObject* dict, bool into_classes, std::vector<Ref>* names) LEAKGUARD_REQUIRES_GIL {
  if (dict == nullptr || !PyDict_Check(dict)) return;
  Py_ssize_t pos = 0;
  PyObject* key = nullptr;
  PyObject* value = nullptr;
  while (PyDict_Next(dict, &pos, &key, &value)) {
    if (PyFunction_Check(value)) {
      AddCodeNames(PyFunction_GET_CODE(value), 0, names);
    } else if (into_classes && PyType_Check(value)) {
      AddNamesOf(reinterpret_cast<PyTypeObject*>(value)->tp_dict, false, names);
    }
  }
}

// The name under which an instance whose attributes live in a managed dict
// (3.11+) holds `dst`, found WITHOUT creating its __dict__ (`obj.__dict__`
// would materialize it, changing the object graph for every later query):
// the candidates are the names used by the code of the class and of its
// module, checked one by one with the generic getter (no descriptor, no
// __getattr__ runs: names the class defines are skipped). Empty if none.
std::string ManagedAttributeName(PyObject* src, PyObject* dst) LEAKGUARD_REQUIRES_GIL {
  PyTypeObject* type = Py_TYPE(src);
  std::vector<Ref> names;
  PyObject* mro = type->tp_mro;
  for (Py_ssize_t i = 0; mro && PyTuple_Check(mro) && i < PyTuple_GET_SIZE(mro); ++i) {
    PyObject* base = PyTuple_GET_ITEM(mro, i);
    if (PyType_Check(base)) {
      AddNamesOf(reinterpret_cast<PyTypeObject*>(base)->tp_dict, false, &names);
    }
  }
  Ref module_name = Steal(PyObject_GetAttrString(reinterpret_cast<PyObject*>(type), "__module__"));
  PyObject* modules = PySys_GetObject("modules");  // Borrowed.
  if (module_name && modules != nullptr) {
    Ref module = Steal(PyObject_GetItem(modules, module_name.get()));
    if (module && PyModule_Check(module.get())) {
      AddNamesOf(PyModule_GetDict(module.get()), true, &names);
    }
  }
  PyErr_Clear();
  constexpr std::size_t kMaxNames = 20000;
  if (names.size() > kMaxNames) names.resize(kMaxNames);
  for (const Ref& name : names) {
    if (!PyUnicode_Check(name.get()) || TypeDefines(type, name.get())) continue;
    Ref value = Steal(PyObject_GenericGetAttr(src, name.get()));
    if (!value) {
      PyErr_Clear();
      continue;
    }
    if (value.get() == dst) return absl::StrCat(".__dict__[", KeyText(name.get()), "]");
  }
  return "";
}

// True if `dst` is (as far as can be told without creating anything) the
// materialized __dict__ of `src`: a non-empty dict whose every key the
// generic getter resolves on `src` to the very value stored (keys the class
// defines are not checked, so that no descriptor runs).
bool LooksLikeInstanceDict(PyObject* src, PyObject* dst) LEAKGUARD_REQUIRES_GIL {
  if (!PyDict_Check(dst) || PyDict_GET_SIZE(dst) == 0) return false;
  Py_ssize_t pos = 0;
  PyObject* key = nullptr;
  PyObject* value = nullptr;
  int checked = 0;
  while (PyDict_Next(dst, &pos, &key, &value)) {
    if (!PyUnicode_Check(key)) return false;
    if (TypeDefines(Py_TYPE(src), key)) continue;
    Ref got = Steal(PyObject_GenericGetAttr(src, key));
    if (!got) {
      PyErr_Clear();
      return false;
    }
    if (got.get() != value) return false;
    ++checked;
  }
  return checked > 0;
}
#endif  // PY_VERSION_HEX >= 0x030B0000

// ".name" through a __slots__ member, ".__dict__" / ".__dict__['name']"
// through the instance dict; "" if neither. Never creates an instance dict.
std::string InstanceLabel(PyObject* src, PyObject* dst) LEAKGUARD_REQUIRES_GIL {
  PyTypeObject* type = Py_TYPE(src);
  PyObject* mro = type->tp_mro;
  for (Py_ssize_t i = 0; mro && PyTuple_Check(mro) && i < PyTuple_GET_SIZE(mro); ++i) {
    PyObject* base = PyTuple_GET_ITEM(mro, i);
    if (!PyType_Check(base)) continue;
    PyObject* base_dict = reinterpret_cast<PyTypeObject*>(base)->tp_dict;
    if (base_dict == nullptr || !PyDict_Check(base_dict)) continue;
    Py_ssize_t pos = 0;
    PyObject* name = nullptr;
    PyObject* descr = nullptr;
    while (PyDict_Next(base_dict, &pos, &name, &descr)) {
      if (Py_TYPE(descr) != &PyMemberDescr_Type) continue;
      descrgetfunc get = Py_TYPE(descr)->tp_descr_get;
      if (get == nullptr) continue;
      Ref value = Steal(get(descr, src, reinterpret_cast<PyObject*>(type)));
      if (!value) {
        PyErr_Clear();  // An empty slot raises AttributeError.
        continue;
      }
      std::string text;
      if (value.get() == dst && Utf8Of(name, &text)) {
        return absl::StrCat(".", text);
      }
    }
  }
  if (type->tp_dictoffset == 0) return "";
#if PY_VERSION_HEX >= 0x030B0000
  // Never `obj.__dict__` here: on 3.11+ it would create (materialize) the
  // dict of an instance whose attributes live inline.
  if (std::string name = ManagedAttributeName(src, dst); !name.empty()) {
    return name;
  }
  return LooksLikeInstanceDict(src, dst) ? ".__dict__" : "";
#else
  Ref dict;
  PyObject** slot = _PyObject_GetDictPtr(src);  // Creates nothing.
  if (slot != nullptr && *slot != nullptr) dict = Borrow(*slot);
  if (!dict) return "";
  if (dict.get() == dst) return ".__dict__";
  if (PyDict_Check(dict.get())) {
    Py_ssize_t pos = 0;
    PyObject* key = nullptr;
    PyObject* value = nullptr;
    while (PyDict_Next(dict.get(), &pos, &key, &value)) {
      if (value == dst) return absl::StrCat(".__dict__[", KeyText(key), "]");
    }
  }
  return "";
#endif
}

std::string FunctionLabel(PyObject* src, PyObject* dst) LEAKGUARD_REQUIRES_GIL {
  auto* f = reinterpret_cast<PyFunctionObject*>(src);
  const std::pair<PyObject*, const char*> fields[] = {{f->func_globals, "__globals__"},
                                                      {f->func_closure, "__closure__"},
                                                      {f->func_defaults, "__defaults__"},
                                                      {f->func_kwdefaults, "__kwdefaults__"},
                                                      {f->func_code, "__code__"},
                                                      {f->func_dict, "__dict__"},
                                                      {f->func_annotations, "__annotations__"},
                                                      {f->func_module, "__module__"},
                                                      {f->func_name, "__name__"},
                                                      {f->func_qualname, "__qualname__"},
                                                      {f->func_doc, "__doc__"}};
  for (const auto& [value, name] : fields) {
    if (value == dst) return absl::StrCat(".", name);
  }
  return "";
}

std::string TypeLabel(PyObject* src, PyObject* dst) LEAKGUARD_REQUIRES_GIL {
  auto* type = reinterpret_cast<PyTypeObject*>(src);
  if (type->tp_dict == dst) return ".__dict__";
  if (type->tp_mro == dst) return ".__mro__";
  if (type->tp_bases == dst) return ".__bases__";
  if (reinterpret_cast<PyObject*>(type->tp_base) == dst) return ".__base__";
  return "";
}

}  // namespace

std::string Truncate(std::string s, std::size_t max_bytes) {
  if (s.size() <= max_bytes) return s;
  std::size_t cut = max_bytes;
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;
  s.resize(cut);
  return s;
}

std::string SafeRepr(PyObject* obj, std::size_t max_bytes) {
  Ref repr = Steal(PyObject_Repr(obj));
  std::string text;
  if (!repr || !Utf8Of(repr.get(), &text)) {
    PyErr_Clear();
    return "(unrepresentable)";
  }
  return Truncate(std::move(text), max_bytes);
}

std::string ShortTypeName(PyTypeObject* type) {
  return AttrText(reinterpret_cast<PyObject*>(type), "__name__", type->tp_name);
}

std::string FullTypeName(PyTypeObject* type) {
  std::string name = ShortTypeName(type);
  Ref module = Steal(PyObject_GetAttrString(reinterpret_cast<PyObject*>(type), "__module__"));
  if (!module) {
    PyErr_Clear();
    return name;
  }
  const int truth = PyObject_IsTrue(module.get());
  if (truth <= 0) {
    PyErr_Clear();
    return name;
  }
  Ref str = Steal(PyObject_Str(module.get()));
  std::string text;
  if (!str || !Utf8Of(str.get(), &text)) {
    PyErr_Clear();
    return name;
  }
  return absl::StrCat(text, ".", name);
}

std::string Describe(PyObject* obj) {
  if (PyModule_Check(obj)) return absl::StrCat("module ", AttrText(obj, "__name__", "?"));
  if (PyType_Check(obj)) {
    return absl::StrCat(
        "class ", AttrText(obj, "__qualname__", reinterpret_cast<PyTypeObject*>(obj)->tp_name));
  }
  if (PyFunction_Check(obj) || PyCFunction_Check(obj)) {
    return absl::StrCat("function ", AttrText(obj, "__qualname__", AttrText(obj, "__name__", "?")));
  }
  if (PyMethod_Check(obj)) {
    return absl::StrCat("method ", AttrText(PyMethod_GET_FUNCTION(obj), "__qualname__", "?"));
  }
  if (PyFrame_Check(obj)) {
    return absl::StrCat("frame ", FrameFunction(obj), " (", FrameWhere(obj, true), ")");
  }
  return ShortTypeName(Py_TYPE(obj));
}

std::string ShortLabel(PyObject* obj) {
  auto name_or_repr = [](PyObject* o) {
    AssumeGilHeld();  // ShortLabel requires it.
    std::string text;
    Ref name = Steal(PyObject_GetAttrString(o, "__name__"));
    if (name && Utf8Of(name.get(), &text)) return text;
    PyErr_Clear();
    return SafeRepr(o, 40);
  };
  if (PyType_Check(obj) || PyModule_Check(obj) || PyCFunction_Check(obj)) {
    return name_or_repr(obj);
  }
  if (PyMethod_Check(obj)) {
    std::string name = name_or_repr(PyMethod_GET_FUNCTION(obj));
    const int bound = PyObject_IsTrue(PyMethod_GET_SELF(obj));
    if (bound < 0) PyErr_Clear();
    return bound > 0 ? absl::StrCat(name, " (bound)") : name;
  }
  if (PyFunction_Check(obj) && AttrText(obj, "__name__", "") == "<lambda>") {
    PyObject* code = PyFunction_GET_CODE(obj);
    return absl::StrCat("lambda: ", Basename(AttrText(code, "co_filename", "?")), ":",
                        AttrText(code, "co_firstlineno", "?"));
  }
  if (PyFrame_Check(obj)) return FrameWhere(obj, false);
  if (PyTuple_Check(obj) || PyList_Check(obj) || PyDict_Check(obj) || PySet_Check(obj)) {
    const Py_ssize_t n = PyObject_Size(obj);
    if (n < 0) {
      PyErr_Clear();
      return "(unrepresentable)";
    }
    return absl::StrCat(n, " items");
  }
  return SafeRepr(obj, 40);
}

std::string EdgeLabel(PyObject* src, PyObject* dst) {
  if (PyDict_Check(src)) {
    Py_ssize_t pos = 0;
    PyObject* key = nullptr;
    PyObject* value = nullptr;
    while (PyDict_Next(src, &pos, &key, &value)) {
      if (value == dst) return absl::StrCat("[", KeyText(key), "]");
    }
    pos = 0;
    while (PyDict_Next(src, &pos, &key, &value)) {
      if (key == dst) return absl::StrCat("<key ", KeyText(key), ">");
    }
    return "?";
  }
  if (PyList_Check(src) || PyTuple_Check(src)) {
    const bool list = PyList_Check(src);
    const Py_ssize_t n = list ? PyList_GET_SIZE(src) : PyTuple_GET_SIZE(src);
    for (Py_ssize_t i = 0; i < n; ++i) {
      PyObject* item = list ? PyList_GET_ITEM(src, i) : PyTuple_GET_ITEM(src, i);
      if (item == dst) return absl::StrCat("[", i, "]");
    }
    return "?";
  }
  if (PyAnySet_Check(src)) {
    const int has = PySet_Contains(src, dst);
    if (has < 0) PyErr_Clear();
    return has == 1 ? "{member}" : "?";
  }
  if (PyModule_Check(src)) {
    return PyModule_GetDict(src) == dst ? ".__dict__" : "";
  }
  if (PyType_Check(src)) {
    if (std::string label = TypeLabel(src, dst); !label.empty()) return label;
  }
  if (PyCell_Check(src)) {
    return PyCell_GET(src) == dst ? ".cell_contents" : "?";
  }
  if (PyFunction_Check(src)) return FunctionLabel(src, dst);
  if (PyMethod_Check(src)) {
    if (PyMethod_GET_SELF(src) == dst) return ".__self__";
    if (PyMethod_GET_FUNCTION(src) == dst) return ".__func__";
    return "";
  }
  if (PyFrame_Check(src)) return FrameLabel(src, dst);
  if (PyTraceBack_Check(src)) {
    for (const char* name : {"tb_next", "tb_frame"}) {
      Ref value = Steal(PyObject_GetAttrString(src, name));
      if (!value) {
        PyErr_Clear();
        continue;
      }
      if (value.get() == dst) return absl::StrCat(".", name);
    }
    return "";
  }
  if (PyGen_Check(src) || PyCoro_CheckExact(src)) {
    const char* frame_attr = PyGen_Check(src) ? "gi_frame" : "cr_frame";
    Ref frame = Steal(PyObject_GetAttrString(src, frame_attr));
    if (!frame) {
      PyErr_Clear();
      return "";
    }
    if (frame.get() == dst) return absl::StrCat(".", frame_attr);
    if (PyFrame_Check(frame.get())) {
      std::string local = FrameLocalLabel(frame.get(), dst);
      if (!local.empty()) return absl::StrCat(".", frame_attr, local);
    }
    return "";
  }
  if (std::string label = InstanceLabel(src, dst); !label.empty()) return label;
  if (reinterpret_cast<PyObject*>(Py_TYPE(src)) == dst) return ".__class__";
  return "";
}

std::string DotQuote(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '"':
        out += "\\\"";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\0':
        out += "\\\\0";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string DotNodeId(const void* obj) {
  return absl::StrCat("o", reinterpret_cast<std::uintptr_t>(obj));
}

}  // namespace leakguard::internal

namespace leakguard {

std::string BackrefChain::Path() const {
  if (links.empty()) return "";
  if (links.size() == 1) return links[0].description;
  std::vector<std::string> segments;
  const std::size_t last = links.size() - 1;
  std::size_t k = 0;
  while (k < last) {
    std::string segment = links[k].description;
    std::string edge = links[k].edge;
    std::size_t next = k + 1;
    // "module app .__dict__" then "dict['_cache']": one step.
    if (edge == ".__dict__" && next < last && links[next].type_name == "dict" &&
        !links[next].edge.empty()) {
      edge += links[next].edge;
      ++next;
    }
    if (!edge.empty()) {
      if (segment.find(' ') != std::string::npos) segment += ' ';
      segment += edge;
    }
    segments.push_back(std::move(segment));
    k = next;
  }
  return absl::StrJoin(segments, " -> ");
}

std::string BackrefChain::Dot() const {
  std::string out =
      "digraph ObjectGraph {\n"
      "  node[shape=box, style=filled, fillcolor=white];\n";
  if (links.empty()) return out + "}\n";
  const std::size_t n = links.size();
  const std::size_t max_depth = n - 1;
  const std::string target_id = internal::DotNodeId(links.back().object.get());
  absl::StrAppend(&out, "  ", target_id, "[fontcolor=red];\n");
  // Nodes from the target (depth 0) back to the root, as show_backrefs
  // walks them; the shade darkens with depth.
  for (std::size_t d = 0; d < n; ++d) {
    const ChainLink& link = links[n - 1 - d];
    const std::string id = internal::DotNodeId(link.object.get());
    absl::StrAppend(&out, "  ", id, "[label=\"",
                    internal::DotQuote(absl::StrCat(link.type_name, "\n", link.label)), "\"];\n");
    const double f = max_depth == 0 ? 0.0 : static_cast<double>(d) / max_depth;
    double h = 0, s = 0;
    const double v = 1.0 * (1 - f) + 0.3 * f;
    if (link.description.rfind("module ", 0) == 0) {  // Describe()'s.
      h = 0.3;
      s = 1;
    }
    absl::StrAppend(&out, "  ", id, absl::StrFormat("[fillcolor=\"%g,%g,%g\"];\n", h, s, v));
    if (v < 0.5) absl::StrAppend(&out, "  ", id, "[fontcolor=white];\n");
  }
  for (std::size_t k = 0; k + 1 < n; ++k) {
    absl::StrAppend(&out, "  ", internal::DotNodeId(links[k].object.get()), " -> ",
                    internal::DotNodeId(links[k + 1].object.get()));
    if (!links[k].edge.empty()) {
      absl::StrAppend(&out, " [label=\"", internal::DotQuote(links[k].edge), "\"]");
    }
    out += ";\n";
  }
  out += "}\n";
  return out;
}

}  // namespace leakguard
