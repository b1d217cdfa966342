// The doctor on its corpus (examples/leaks/, expectations in EXPECTED.json):
// every script through `leakguard doctor --json`, in a process of its own,
// checking the verdict, the note, the top cause id and its holder. Plus the
// command's contract: exit codes, bad input, the JSON schema, --dot.

#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "leakguard/doctor.h"
#include "leakguard/python/error.h"
#include "test_util.h"

namespace leakguard {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

struct Result {
  int exit_code = -1;
  std::string out;
};

Result Shell(const std::string& command) {
  Result result;
  FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return result;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), pipe)) > 0) result.out.append(buf.data(), n);
  const int status = ::pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

std::string Corpus() { return LEAKGUARD_EXAMPLES_DIR "/leaks"; }
std::string Tool() { return LEAKGUARD_TOOL; }
std::string Temp(const std::string& name) {
  return ::testing::TempDir() + "leakguard-doctor-" + std::to_string(::getpid()) + "-" + name;
}

// Python evaluates the checks on the JSON: one line "script: OK" or
// "script: <what differs>" per corpus entry.
constexpr char kCheck[] = R"py(
import json
expected = json.load(open(corpus + "/EXPECTED.json"))
def importable(module):
    try:
        __import__(module)
        return True
    except ImportError:
        return False
def skip_reason(script):
    needs = expected[script].get("needs")
    if needs and not importable(needs):
        return "%s is not importable by this CPython" % needs
    return ""
def check(script, path):
    want = expected[script]
    got = json.load(open(path))
    problems = []
    if got["verdict"] != want["verdict"]:
        problems.append("verdict %s, want %s" % (got["verdict"], want["verdict"]))
    if "note" in want and got["note"] != want["note"]:
        problems.append("note %s, want %s" % (got["note"], want["note"]))
    if want["verdict"] == "leak":
        if not got["causes"]:
            problems.append("no cause")
        else:
            top = got["causes"][0]
            if top["id"] != want["cause"]:
                problems.append("cause %s, want %s" % (top["id"], want["cause"]))
            if top["holder"] != want["holder"]:
                problems.append("holder %r, want %r" % (top["holder"], want["holder"]))
    return "; ".join(problems)
scripts = sorted(k for k in expected if not k.startswith("_"))
)py";

TEST(DoctorTest, CorpusVerdictsCausesAndHolders) {
  Ref globals = Steal(PyDict_New());
  PyDict_SetItemString(globals.get(), "__builtins__", PyEval_GetBuiltins());
  Ref corpus = Steal(PyUnicode_FromString(Corpus().c_str()));
  PyDict_SetItemString(globals.get(), "corpus", corpus.get());
  Ref ran = Steal(PyRun_String(kCheck, Py_file_input, globals.get(), globals.get()));
  ASSERT_TRUE(ran) << StatusFromPythonError();
  PyObject* scripts = PyDict_GetItemString(globals.get(), "scripts");
  PyObject* check = PyDict_GetItemString(globals.get(), "check");
  ASSERT_GE(PyList_Size(scripts), 26);
  std::vector<std::string> failures;
  int leaks = 0, clean = 0, skipped = 0;
  for (Py_ssize_t i = 0; i < PyList_Size(scripts); ++i) {
    const std::string script = PyUnicode_AsUTF8(PyList_GetItem(scripts, i));
    Ref skip = Steal(PyObject_CallFunction(PyDict_GetItemString(globals.get(), "skip_reason"),
                                           "s", script.c_str()));
    if (skip && PyUnicode_GetLength(skip.get()) > 0) {
      std::printf("skipped %s: %s\n", script.c_str(), PyUnicode_AsUTF8(skip.get()));
      ++skipped;
      continue;
    }
    const std::string json = Temp(script + ".json");
    Result r = Shell(Tool() + " doctor " + Corpus() + "/" + script + ":step --json " + json);
    if (r.exit_code != 0 && r.exit_code != 1) {
      failures.push_back(script + ": exit " + std::to_string(r.exit_code) + "\n" + r.out);
      continue;
    }
    Ref problems = Steal(PyObject_CallFunction(check, "ss", script.c_str(), json.c_str()));
    std::remove(json.c_str());
    if (!problems) {
      failures.push_back(script + ": " + std::string(StatusFromPythonError().message()));
      continue;
    }
    const std::string text = PyUnicode_AsUTF8(problems.get());
    (r.exit_code == 1 ? leaks : clean)++;
    if (!text.empty()) failures.push_back(script + ": " + text + "\n" + r.out);
  }
  EXPECT_TRUE(failures.empty()) << failures.size() << " of " << PyList_Size(scripts)
                                << " scripts differ:\n" << ::testing::PrintToString(failures);
  EXPECT_GE(leaks, 20 - skipped);  // Skipped: scripts needing NumPy where it is missing.
  EXPECT_GE(clean, 6);
}

TEST(DoctorTest, ExitCodesAndBadInput) {
  Result r = Shell(Tool() + " doctor " + Corpus() + "/nope.py:step");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.out, HasSubstr("cannot open script"));
  r = Shell(Tool() + " doctor " + Corpus() + "/ok_churn.py:missing");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.out, HasSubstr("ok_churn.py has no function 'missing'"));
  r = Shell(Tool() + " doctor " + Corpus() + "/ok_churn.py");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.out, HasSubstr("doctor needs SCRIPT.py:FUNC"));
  r = Shell(Tool() + " doctor --repeat 1 " + Corpus() + "/ok_churn.py:step");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.out, HasSubstr("--repeat needs a number in 2..10000, got '1'"));
  r = Shell(Tool() + " doctor " + std::string(LEAKGUARD_TEST_SCRIPTS_DIR) +
            "/error_cases.py:fail_nested");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.out, HasSubstr("ValueError: bad value"));
  EXPECT_THAT(r.out, HasSubstr("error_cases.py\", line 14, in fail_value"));
  r = Shell(Tool() + " doctor " + Corpus() + "/ok_churn.py:step");
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_THAT(r.out, HasSubstr("NO LEAK"));
  r = Shell(Tool() + " doctor " + Corpus() + "/uc_dict_memo.py:step");
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_THAT(r.out, HasSubstr("1. unbounded_cache"));
  EXPECT_THAT(r.out, HasSubstr("holder: uc_dict_memo._memo"));
  EXPECT_THAT(r.out, HasSubstr("uc_dict_memo.py:10"));
}

// The JSON has exactly docs/design.md's keys and types, and --dot writes the
// holder's chain for Graphviz.
TEST(DoctorTest, JsonSchemaAndDot) {
  const std::string json = Temp("schema.json");
  const std::string dot = Temp("chain.dot");
  Result r = Shell(Tool() + " doctor --warmup 2 --repeat 10 --top 3 " + Corpus() +
                   "/gs_class_registry.py:step --json " + json + " --dot " + dot);
  ASSERT_EQ(r.exit_code, 1) << r.out;
  Ref globals = Steal(PyDict_New());
  PyDict_SetItemString(globals.get(), "__builtins__", PyEval_GetBuiltins());
  const std::string code = "import json\nd = json.load(open('" + json + "'))\n" + R"py(
assert set(d) == {"verdict", "note", "iterations", "growth", "causes"}, d.keys()
assert d["iterations"] == {"warmup": 2, "repeat": 10}
g = d["growth"]
assert set(g) == {"rss_bytes_per_iter", "traced_bytes_per_iter", "blocks_per_iter",
                  "fds_per_iter", "threads_per_iter", "types"}
assert all(isinstance(g[k], int) for k in g if k != "types")
assert all(set(t) == {"type", "per_iter"} and isinstance(t["per_iter"], float) for t in g["types"])
c = d["causes"][0]
assert set(c) == {"id", "confidence", "holder", "sites", "evidence", "fix"}
assert 0 < c["confidence"] <= 1
assert all(set(s) == {"file", "line", "bytes_per_iter"} for s in c["sites"])
assert any(s["file"].endswith("gs_class_registry.py") for s in c["sites"])
assert all(isinstance(e, str) for e in c["evidence"]) and c["fix"]
result = "ok"
)py";
  Ref ran = Steal(PyRun_String(code.c_str(), Py_file_input, globals.get(), globals.get()));
  EXPECT_TRUE(ran) << StatusFromPythonError();
  std::ifstream in(dot);
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_THAT(text.str(), HasSubstr("digraph"));
  EXPECT_THAT(text.str(), HasSubstr("gs_class_registry"));
  std::remove(json.c_str());
  std::remove(dot.c_str());
}

// From C++: Diagnose() on a Python callable in this process.
TEST(DoctorTest, DiagnoseFromCpp) {
  Ref module = Steal(PyImport_ImportModule("leak_shapes"));
  ASSERT_TRUE(module);
  Ref leak = Steal(PyObject_GetAttrString(module.get(), "leak_list"));
  absl::StatusOr<Diagnosis> d = Diagnose(leak.handle(), {.warmup = 2, .repeat = 8});
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->verdict, Verdict::kLeak);
  ASSERT_FALSE(d->causes.empty());
  EXPECT_EQ(d->causes[0].holder.value_or(""), "leak_shapes._kept");
  EXPECT_EQ(d->causes[0].id, CauseId::kGlobalState);
  EXPECT_EQ(CauseIdName(d->causes[0].id), "global_state");
  EXPECT_EQ(d->causes[0].rule, "heap.module_container");
  Ref reset = Steal(PyObject_CallMethod(module.get(), "reset", nullptr));
  EXPECT_EQ(Diagnose(leak.handle(), {.repeat = 1}).status().code(),
            absl::StatusCode::kInvalidArgument);
  Ref not_callable = Steal(PyLong_FromLong(1));
  EXPECT_EQ(Diagnose(not_callable.handle()).status().code(), absl::StatusCode::kInvalidArgument);
}

// --dot and the text report come from one diagnosis: the README's demo names
// its holder in both.
TEST(DoctorTest, DotNamesTheSameHolderAsTheText) {
  const std::string dot = Temp("demo.dot");
  Result r = Shell(Tool() + " doctor " LEAKGUARD_EXAMPLES_DIR "/leaky_plugin.py:serve_batch --dot " +
                   dot);
  ASSERT_EQ(r.exit_code, 1) << r.out;
  EXPECT_THAT(r.out, HasSubstr("holder: leaky_plugin._page_cache"));
  std::ifstream in(dot);
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_THAT(text.str(), HasSubstr("digraph"));
  EXPECT_THAT(text.str(), HasSubstr("_page_cache"));
  EXPECT_THAT(text.str(), Not(HasSubstr("nothing in Python holds")));
  std::remove(dot.c_str());
}

// A workload that turns the collector off: the sites are the script's lines,
// never the doctor's own scan (compiled as <leakguard>/doctor_scan.py).
TEST(DoctorTest, OwnScanIsNeverASite) {
  const std::string json = Temp("gc_off.json");
  Result r = Shell(Tool() + " doctor " + Corpus() + "/rc_gc_disabled.py:step --json " + json);
  ASSERT_EQ(r.exit_code, 1) << r.out;
  EXPECT_THAT(r.out, HasSubstr("1. reference_cycles"));
  EXPECT_THAT(r.out, Not(HasSubstr("<leakguard>")));
  EXPECT_THAT(r.out, Not(HasSubstr("<string>")));
  std::ifstream in(json);
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_THAT(text.str(), Not(HasSubstr("doctor_scan")));
  std::remove(json.c_str());
}

}  // namespace
}  // namespace leakguard
