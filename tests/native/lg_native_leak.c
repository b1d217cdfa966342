// A small C extension for the native sampler's tests: it allocates with
// malloc from its own code (through its own relocation slots), so the
// tests know the library and the function that should be named.
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

static void** g_blocks = NULL;
static Py_ssize_t g_count = 0, g_capacity = 0;

// Exported, so that the loader's tables name it in a report.
__attribute__((visibility("default"), noinline)) void* lg_leak_block(size_t n) {
  void* p = malloc(n);
  if (p != NULL) memset(p, 0x5a, n);  // touched: the compiler keeps it
  return p;
}

// An anonymous mapping of n bytes, touched; never unmapped (RSS grows by
// n whatever malloc keeps in its free lists).
__attribute__((visibility("default"), noinline)) void* lg_map_block(size_t n) {
  void* p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return NULL;
  memset(p, 0x5a, n);
  return p;
}

static PyObject* leak_mapped(PyObject* self, PyObject* arg) {
  (void)self;
  Py_ssize_t n = PyLong_AsSsize_t(arg);
  if (n < 0 && PyErr_Occurred()) return NULL;
  if (lg_map_block((size_t)n) == NULL) return PyErr_NoMemory();
  Py_RETURN_NONE;
}

static PyObject* leak(PyObject* self, PyObject* arg) {
  (void)self;
  Py_ssize_t n = PyLong_AsSsize_t(arg);
  if (n < 0 && PyErr_Occurred()) return NULL;
  if (g_count == g_capacity) {
    Py_ssize_t cap = g_capacity ? g_capacity * 2 : 64;
    void** grown = realloc(g_blocks, (size_t)cap * sizeof(void*));
    if (grown == NULL) return PyErr_NoMemory();
    g_blocks = grown;
    g_capacity = cap;
  }
  void* p = lg_leak_block((size_t)n);
  if (p == NULL) return PyErr_NoMemory();
  g_blocks[g_count++] = p;
  Py_RETURN_NONE;
}

// Allocates and frees at once: churn that holds nothing.
static PyObject* churn(PyObject* self, PyObject* arg) {
  (void)self;
  Py_ssize_t n = PyLong_AsSsize_t(arg);
  if (n < 0 && PyErr_Occurred()) return NULL;
  void* p = lg_leak_block((size_t)n);
  free(p);
  Py_RETURN_NONE;
}

static PyObject* free_all(PyObject* self, PyObject* unused) {
  (void)self;
  (void)unused;
  for (Py_ssize_t i = 0; i < g_count; ++i) free(g_blocks[i]);
  g_count = 0;
  Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"leak", leak, METH_O, "Allocates n bytes with malloc and keeps them."},
    {"churn", churn, METH_O, "Allocates n bytes with malloc and frees them."},
    {"leak_mapped", leak_mapped, METH_O, "Maps n anonymous bytes and never unmaps them."},
    {"free_all", free_all, METH_NOARGS, "Frees what leak() kept."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_lg_native_leak", NULL, -1, methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__lg_native_leak(void) { return PyModule_Create(&module); }
