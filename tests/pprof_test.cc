// EncodePprof, decoded by Debian's protoc against tests/data/profile.proto
// (the public schema's field numbers): sample types, values, functions and
// lines, the deduplicated string table; and a real tracemalloc growth
// profile whose top entries must equal Python's own compare_to().

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "leakguard/profile.h"
#include "leakguard/python/error.h"
#include "leakguard/python/gil.h"
#include "leakguard/python/python.h"
#include "leakguard/python/ref.h"
#include "leakguard/sampler.h"
#include "leakguard/tracemalloc.h"
#include "test_util.h"

namespace leakguard {
namespace {

// ------------------------------------------------- protoc's text format

// One message of protoc's text output: fields to scalar texts and to
// sub-messages, in order.
struct TextMessage {
  std::multimap<std::string, std::string> scalars;
  std::multimap<std::string, std::shared_ptr<TextMessage>> messages;

  std::vector<std::string> All(const std::string& field) const {
    std::vector<std::string> out;
    auto [begin, end] = scalars.equal_range(field);
    for (auto it = begin; it != end; ++it) out.push_back(it->second);
    return out;
  }
  int64_t Int(const std::string& field) const {
    auto it = scalars.find(field);
    return it == scalars.end() ? 0 : std::stoll(it->second);
  }
  std::vector<const TextMessage*> Messages(const std::string& field) const {
    std::vector<const TextMessage*> out;
    auto [begin, end] = messages.equal_range(field);
    for (auto it = begin; it != end; ++it) out.push_back(it->second.get());
    return out;
  }
};

// A quoted text-format string, unescaped (\", \\, \n, \t, octal \NNN).
std::string Unquote(const std::string& quoted) {
  std::string out;
  for (size_t i = 1; i + 1 < quoted.size(); ++i) {
    char c = quoted[i];
    if (c != '\\') {
      out += c;
      continue;
    }
    c = quoted[++i];
    if (c >= '0' && c <= '7') {
      int value = 0;
      for (int k = 0; k < 3 && i < quoted.size() && quoted[i] >= '0' && quoted[i] <= '7'; ++k) {
        value = value * 8 + (quoted[i++] - '0');
      }
      --i;
      out += static_cast<char>(value);
    } else if (c == 'n') {
      out += '\n';
    } else if (c == 't') {
      out += '\t';
    } else {
      out += c;
    }
  }
  return out;
}

TextMessage ParseText(const std::string& text) {
  TextMessage root;
  std::vector<TextMessage*> stack = {&root};
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    const size_t start = line.find_first_not_of(' ');
    if (start == std::string::npos) continue;
    line = line.substr(start);
    if (line == "}") {
      stack.pop_back();
    } else if (line.size() > 2 && line.substr(line.size() - 2) == " {") {
      auto child = std::make_shared<TextMessage>();
      TextMessage* raw = child.get();
      stack.back()->messages.emplace(line.substr(0, line.size() - 2), std::move(child));
      stack.push_back(raw);
    } else {
      const size_t colon = line.find(": ");
      std::string value = line.substr(colon + 2);
      if (!value.empty() && value[0] == '"') value = Unquote(value);
      stack.back()->scalars.emplace(line.substr(0, colon), value);
    }
  }
  return root;
}

// `protoc --decode` of `bytes`; fails the test (returning an empty
// message) when protoc fails.
TextMessage Decode(const std::string& bytes) {
  const std::string path = absl::StrCat("/tmp/leakguard-pprof-", ::getpid(), ".pb");
  EXPECT_TRUE(WriteProfileFile(path, bytes).ok());
  const std::string command = absl::StrCat(
      "protoc --decode=perftools.profiles.Profile --proto_path=", LEAKGUARD_TEST_DATA_DIR, " ",
      LEAKGUARD_TEST_DATA_DIR, "/profile.proto < ", path, " 2>&1");
  std::string out;
  FILE* pipe = ::popen(command.c_str(), "r");
  EXPECT_NE(pipe, nullptr);
  char buffer[4096];
  size_t n;
  while (pipe != nullptr && (n = std::fread(buffer, 1, sizeof(buffer), pipe)) > 0) {
    out.append(buffer, n);
  }
  const int status = pipe != nullptr ? ::pclose(pipe) : -1;
  ::unlink(path.c_str());
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << out;
  return ParseText(out);
}

bool HaveProtoc() { return std::system("protoc --version > /dev/null 2>&1") == 0; }

// A decoded profile with its references resolved.
struct Decoded {
  std::vector<std::string> strings;
  std::vector<std::pair<std::string, std::string>> sample_types;
  struct Frame {
    std::string name, file;
    int64_t line;
  };
  struct Sample {
    std::vector<Frame> leaf_first;
    std::vector<int64_t> values;
    std::vector<uint64_t> location_ids;
  };
  std::vector<Sample> samples;
  std::string default_sample_type;
  std::vector<std::string> comments;
  size_t functions = 0;
  size_t locations = 0;
};

Decoded Resolve(const TextMessage& m) {
  Decoded d;
  d.strings = m.All("string_table");
  auto str = [&](int64_t i) {
    return i >= 0 && static_cast<size_t>(i) < d.strings.size() ? d.strings[i] : "<bad index>";
  };
  for (const TextMessage* t : m.Messages("sample_type")) {
    d.sample_types.emplace_back(str(t->Int("type")), str(t->Int("unit")));
  }
  std::map<int64_t, const TextMessage*> functions;
  for (const TextMessage* f : m.Messages("function")) functions[f->Int("id")] = f;
  std::map<int64_t, Decoded::Frame> locations;
  for (const TextMessage* l : m.Messages("location")) {
    const TextMessage* line = l->Messages("line").at(0);
    const TextMessage* f = functions.at(line->Int("function_id"));
    locations[l->Int("id")] = {str(f->Int("name")), str(f->Int("filename")), line->Int("line")};
  }
  d.functions = functions.size();
  d.locations = locations.size();
  for (const TextMessage* s : m.Messages("sample")) {
    Decoded::Sample sample;
    for (const std::string& id : s->All("location_id")) {
      sample.location_ids.push_back(std::stoull(id));
      sample.leaf_first.push_back(locations.at(std::stoll(id)));
    }
    for (const std::string& v : s->All("value")) sample.values.push_back(std::stoll(v));
    d.samples.push_back(std::move(sample));
  }
  d.default_sample_type = str(m.Int("default_sample_type"));
  for (const std::string& c : m.All("comment")) d.comments.push_back(str(std::stoll(c)));
  return d;
}

// ------------------------------------------------------------------ tests

TEST(Pprof, HandBuiltProfileDecodesWithProtoc) {
  if (!HaveProtoc()) GTEST_SKIP() << "protoc is not installed (scripts/setup installs it)";
  Profile profile;
  profile.name = "growth";
  profile.is_growth = true;
  profile.time = absl::FromUnixSeconds(1700000000);
  profile.duration = absl::Seconds(30);
  const ProfileFrame main_frame{"main", "main.py", 10, FrameKind::kPython};
  profile.samples.push_back(
      {{main_frame, {"foo_alloc", "libfoo.so", 0, FrameKind::kNative}}, 4096, 2, 8192});
  profile.samples.push_back({{main_frame, {"", "app.py", 20, FrameKind::kPython}}, 1000, 10, 1000});
  // A negative value (a growth profile built by hand may carry one) survives
  // as int64.
  profile.samples.push_back({{{"", "app.py", 30, FrameKind::kPython}}, -64, -1, 0});

  const Decoded d = Resolve(Decode(EncodePprof(profile)));
  ASSERT_EQ(d.strings.at(0), "");
  EXPECT_EQ(std::set<std::string>(d.strings.begin(), d.strings.end()).size(), d.strings.size())
      << "the string table has duplicates";
  using P = std::pair<std::string, std::string>;
  EXPECT_EQ(d.sample_types,
            (std::vector<P>{
                {"inuse_space", "bytes"}, {"inuse_objects", "count"}, {"alloc_space", "bytes"}}));
  EXPECT_EQ(d.default_sample_type, "inuse_space");
  ASSERT_EQ(d.samples.size(), 3u);
  EXPECT_EQ(d.samples[0].values, (std::vector<int64_t>{4096, 2, 8192}));
  EXPECT_EQ(d.samples[1].values, (std::vector<int64_t>{1000, 10, 1000}));
  EXPECT_EQ(d.samples[2].values, (std::vector<int64_t>{-64, -1, 0}));
  // Leaf first, with function names, files and lines.
  ASSERT_EQ(d.samples[0].leaf_first.size(), 2u);
  EXPECT_EQ(d.samples[0].leaf_first[0].name, "foo_alloc");
  EXPECT_EQ(d.samples[0].leaf_first[0].file, "libfoo.so");
  EXPECT_EQ(d.samples[0].leaf_first[1].name, "main");
  EXPECT_EQ(d.samples[0].leaf_first[1].file, "main.py");
  EXPECT_EQ(d.samples[0].leaf_first[1].line, 10);
  EXPECT_EQ(d.samples[1].leaf_first[0].name, "app.py:20");
  EXPECT_EQ(d.samples[1].leaf_first[0].line, 20);
  // main.py:10 is one location shared by both stacks; four distinct frames.
  EXPECT_EQ(d.samples[0].location_ids[1], d.samples[1].location_ids[1]);
  EXPECT_EQ(d.locations, 4u);
  EXPECT_EQ(d.functions, 4u);
  EXPECT_THAT(d.comments, ::testing::ElementsAre(::testing::HasSubstr("growth")));
}

TEST(Pprof, EmptyProfileStillDecodes) {
  if (!HaveProtoc()) GTEST_SKIP() << "protoc is not installed (scripts/setup installs it)";
  const Decoded d = Resolve(Decode(EncodePprof(Profile{})));
  EXPECT_TRUE(d.samples.empty());
  EXPECT_EQ(d.sample_types.size(), 3u);
  EXPECT_EQ(d.comments, std::vector<std::string>{"leakguard: live heap"});
}

// The growth of tests/scripts/profile_workload.py, taken as Python's
// snapshots, against Python's own compare_to(old, "traceback").
TEST(Pprof, GrowthProfileTopEntriesEqualPythonsCompareTo) {
  if (!HaveProtoc()) GTEST_SKIP() << "protoc is not installed (scripts/setup installs it)";
  absl::StatusOr<tracemalloc::TracingScope> scope = tracemalloc::TracingScope::Start(10);
  ASSERT_TRUE(scope.ok()) << scope.status();
  Ref result = testing::Eval("(old, new, top)", R"(
import tracemalloc, profile_workload
profile_workload.clear()
old = tracemalloc.take_snapshot()
profile_workload.run(300)
new = tracemalloc.take_snapshot()
grown = [s for s in new.compare_to(old, "traceback") if s.size_diff > 0]
grown.sort(key=lambda s: -s.size_diff)
top = [(s.traceback[-1].filename, s.traceback[-1].lineno, s.size_diff, s.count_diff,
        len(s.traceback)) for s in grown[:3]]
profile_workload.clear()
)");
  ASSERT_TRUE(result);
  scope->End().IgnoreError();
  auto older = tracemalloc::Snapshot::FromPython(Handle(PyTuple_GetItem(result.get(), 0)));
  auto newer = tracemalloc::Snapshot::FromPython(Handle(PyTuple_GetItem(result.get(), 1)));
  ASSERT_TRUE(older.ok() && newer.ok());
  absl::StatusOr<Profile> growth = GrowthProfile(*older, *newer, {.filter_own_frames = false});
  ASSERT_TRUE(growth.ok()) << growth.status();
  const Decoded d = Resolve(Decode(EncodePprof(*growth)));

  PyObject* top = PyTuple_GetItem(result.get(), 2);
  ASSERT_EQ(PyList_Size(top), 3);
  ASSERT_GE(d.samples.size(), 3u);
  for (Py_ssize_t i = 0; i < 3; ++i) {
    PyObject* entry = PyList_GetItem(top, i);
    const std::string file = PyUnicode_AsUTF8(PyTuple_GetItem(entry, 0));
    SCOPED_TRACE(absl::StrCat("entry ", i, ": ", file));
    EXPECT_EQ(d.samples[i].leaf_first[0].file, file);
    EXPECT_EQ(d.samples[i].leaf_first[0].line, PyLong_AsLongLong(PyTuple_GetItem(entry, 1)));
    EXPECT_EQ(d.samples[i].values[0], PyLong_AsLongLong(PyTuple_GetItem(entry, 2)));
    EXPECT_EQ(d.samples[i].values[1], PyLong_AsLongLong(PyTuple_GetItem(entry, 3)));
    EXPECT_EQ(static_cast<Py_ssize_t>(d.samples[i].leaf_first.size()),
              PyLong_AsSsize_t(PyTuple_GetItem(entry, 4)));
  }
  // The largest growth is the 5000-character strings of big_strings(), line
  // 8, called from run(), line 17.
  const Decoded::Sample& first = d.samples[0];
  EXPECT_THAT(first.leaf_first[0].file, ::testing::EndsWith("profile_workload.py"));
  EXPECT_EQ(first.leaf_first[0].line, 8);
  EXPECT_EQ(first.leaf_first[0].name, absl::StrCat(first.leaf_first[0].file, ":8"));
  ASSERT_GE(first.leaf_first.size(), 2u);
  EXPECT_EQ(first.leaf_first[1].line, 17);
  // 300 strings of at least 5000 bytes (plus what the interpreter itself
  // allocated on that line; the exact totals are Python's, checked above).
  EXPECT_GE(first.values[0], 300 * 5000);
  EXPECT_GE(first.values[1], 300);
  EXPECT_EQ(first.values[2], first.values[0]);  // tracemalloc: alloc = in use
}

// A heap profile of the sampler's live samples: decoded by protoc, its
// in-use bytes summed by leaf line give the same top lines, with the same
// estimates, as the sampler's own LiveByLine() (each sample's weight is
// rounded to whole bytes in the profile: at most one byte per sample off).
TEST(Pprof, SamplerProfileTopEntriesMatchTheSamplersOwnReport) {
  if (!HaveProtoc()) GTEST_SKIP() << "protoc is not installed (scripts/setup installs it)";
  auto sampler = AllocationSampler::Create({.sampling_interval = 4096, .seed = 5});
  ASSERT_TRUE(sampler.ok());
  testing::Eval("None", "import profile_workload\nprofile_workload.clear()");
  ASSERT_TRUE((*sampler)->Start().ok());
  testing::Eval("None", "import profile_workload\nprofile_workload.run(400)");
  const SamplerMark mark = (*sampler)->Mark();
  (*sampler)->Stop();
  testing::Eval("None", "import profile_workload\nprofile_workload.clear()");
  absl::StatusOr<Profile> live = ProfileFromSnapshot(mark.snapshot, {.filter_own_frames = false});
  ASSERT_TRUE(live.ok()) << live.status();
  const Decoded d = Resolve(Decode(EncodePprof(*live)));
  ASSERT_EQ(d.sample_types.at(0).first, "inuse_space");
  std::map<std::pair<std::string, int64_t>, std::pair<int64_t, int64_t>> by_line;  // bytes, stacks
  for (const Decoded::Sample& sample : d.samples) {
    auto& entry = by_line[{sample.leaf_first.at(0).file, sample.leaf_first.at(0).line}];
    entry.first += sample.values.at(0);
    entry.second += 1;
  }
  std::vector<std::pair<int64_t, std::pair<std::string, int64_t>>> ranked;
  for (const auto& [key, value] : by_line) ranked.push_back({value.first, key});
  std::sort(ranked.rbegin(), ranked.rend());
  ASSERT_GE(ranked.size(), 2u);
  ASSERT_GE(mark.lines.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    const SiteEstimate& own = mark.lines[i];
    SCOPED_TRACE(absl::StrCat("entry ", i, ": ", own.filename, ":", own.lineno));
    EXPECT_EQ(ranked[i].second.first, own.filename);
    EXPECT_EQ(ranked[i].second.second, own.lineno);
    EXPECT_LE(std::abs(static_cast<double>(ranked[i].first) - own.bytes),
              static_cast<double>(own.samples));
  }
  // The two lines are the workload's: big strings (line 8), then lists (13).
  EXPECT_THAT(mark.lines[0].filename, ::testing::EndsWith("profile_workload.py"));
  EXPECT_EQ(mark.lines[0].lineno, 8);
  EXPECT_EQ(mark.lines[1].lineno, 13);
}

// With function names resolved from the source, pprof's functions are the
// Python functions: big_strings at line 8, called from run at line 17.
TEST(Pprof, ResolvedPythonFunctionsAreThePprofFunctions) {
  if (!HaveProtoc()) GTEST_SKIP() << "protoc is not installed (scripts/setup installs it)";
  absl::StatusOr<tracemalloc::TracingScope> scope = tracemalloc::TracingScope::Start(10);
  ASSERT_TRUE(scope.ok()) << scope.status();
  testing::Eval("None", "import profile_workload\nprofile_workload.clear()");
  absl::StatusOr<tracemalloc::Snapshot> before = tracemalloc::Snapshot::Take();
  testing::Eval("None", "import profile_workload\nprofile_workload.run(100)");
  absl::StatusOr<tracemalloc::Snapshot> after = tracemalloc::Snapshot::Take();
  testing::Eval("None", "import profile_workload\nprofile_workload.clear()");
  scope->End().IgnoreError();
  ASSERT_TRUE(before.ok() && after.ok());
  absl::StatusOr<Profile> growth = GrowthProfile(*before, *after);
  ASSERT_TRUE(growth.ok()) << growth.status();
  absl::StatusOr<int64_t> named = ResolvePythonFunctions(&*growth);
  ASSERT_TRUE(named.ok()) << named.status();
  EXPECT_GE(*named, 2);
  const Decoded d = Resolve(Decode(EncodePprof(*growth)));
  ASSERT_FALSE(d.samples.empty());
  ASSERT_GE(d.samples[0].leaf_first.size(), 2u);
  EXPECT_EQ(d.samples[0].leaf_first[0].name, "big_strings");
  EXPECT_THAT(d.samples[0].leaf_first[0].file, ::testing::EndsWith("profile_workload.py"));
  EXPECT_EQ(d.samples[0].leaf_first[0].line, 8);
  EXPECT_EQ(d.samples[0].leaf_first[1].name, "run");
  EXPECT_EQ(d.samples[0].leaf_first[1].line, 17);
  EXPECT_EQ(growth->samples[0].stack.back().DisplayName(),
            absl::StrCat("big_strings (", growth->samples[0].stack.back().file, ":8)"));
}

// pprof itself reads the file: `pprof -top` lists the Python functions with
// the bytes the profile gives them.
TEST(Pprof, GoPprofTopListsThePythonFunctions) {
#ifndef LEAKGUARD_PPROF_TOOL
  GTEST_SKIP() << "pprof was not built: it needs golang-go and golang-github-google-pprof-dev "
                  "(scripts/setup installs both)";
#else
  absl::StatusOr<tracemalloc::TracingScope> scope = tracemalloc::TracingScope::Start(10);
  ASSERT_TRUE(scope.ok()) << scope.status();
  testing::Eval("None", "import profile_workload\nprofile_workload.clear()");
  absl::StatusOr<tracemalloc::Snapshot> before = tracemalloc::Snapshot::Take();
  testing::Eval("None", "import profile_workload\nprofile_workload.run(200)");
  absl::StatusOr<tracemalloc::Snapshot> after = tracemalloc::Snapshot::Take();
  testing::Eval("None", "import profile_workload\nprofile_workload.clear()");
  scope->End().IgnoreError();
  ASSERT_TRUE(before.ok() && after.ok());
  absl::StatusOr<Profile> growth = GrowthProfile(*before, *after);
  ASSERT_TRUE(growth.ok()) << growth.status();
  ASSERT_TRUE(ResolvePythonFunctions(&*growth).ok());
  // What -top should say: bytes by leaf function, largest first.
  std::map<std::string, int64_t> flat;
  for (const ProfileSample& s : growth->samples) {
    flat[s.stack.back().function.empty() ? s.stack.back().DisplayName()
                                         : s.stack.back().function] += s.bytes;
  }
  std::vector<std::pair<int64_t, std::string>> expected;
  for (const auto& [name, bytes] : flat) expected.emplace_back(bytes, name);
  std::sort(expected.rbegin(), expected.rend());
  ASSERT_GE(expected.size(), 2u);
  ASSERT_EQ(expected[0].second, "big_strings");
  ASSERT_EQ(expected[1].second, "small_lists");

  const std::string path = absl::StrCat("/tmp/leakguard-pprof-top-", ::getpid(), ".pb");
  ASSERT_TRUE(WriteProfileFile(path, EncodePprof(*growth)).ok());
  std::string out;
  FILE* pipe = ::popen(
      absl::StrCat(LEAKGUARD_PPROF_TOOL, " -top -unit=B -nodecount=10 ", path, " 2>/dev/null")
          .c_str(),
      "r");
  ASSERT_NE(pipe, nullptr);
  char buffer[4096];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof(buffer), pipe)) > 0) out.append(buffer, n);
  EXPECT_EQ(::pclose(pipe), 0) << out;
  ::unlink(path.c_str());
  // Rows: "  1505600B 71.20% 71.20%  1505600B 71.20%  big_strings".
  std::vector<std::pair<int64_t, std::string>> rows;
  std::istringstream lines(out);
  std::string line;
  bool table = false;
  while (std::getline(lines, line)) {
    if (line.find("flat%") != std::string::npos) {
      table = true;
      continue;
    }
    if (!table) continue;
    std::istringstream fields(line);
    std::string flat_text, flat_pct, sum_pct, cum_text, cum_pct, name;
    fields >> flat_text >> flat_pct >> sum_pct >> cum_text >> cum_pct;
    std::getline(fields >> std::ws, name);
    if (flat_text.empty() || flat_text.back() != 'B') continue;
    rows.emplace_back(std::stoll(flat_text.substr(0, flat_text.size() - 1)), name);
  }
  ASSERT_GE(rows.size(), 2u) << out;
  EXPECT_EQ(rows[0], expected[0]) << out;
  EXPECT_EQ(rows[1], expected[1]) << out;
  EXPECT_THAT(out, ::testing::HasSubstr("leakguard: growth between two marks")) << out;
  EXPECT_THAT(out, ::testing::HasSubstr(" run\n")) << out;  // the caller, cum only
#endif
}

TEST(Profile, ResolvesNestedQualifiedNames) {
  const std::string path = absl::StrCat("/tmp/leakguard-resolve-", ::getpid(), ".py");
  ASSERT_TRUE(WriteProfileFile(path,
                               "import functools\n"          // 1
                               "TOP = [1]\n"                 // 2
                               "class Cache:\n"              // 3
                               "    table = {}\n"            // 4
                               "    def get(self, key):\n"   // 5
                               "        def inner():\n"      // 6
                               "            return [key]\n"  // 7
                               "        return inner()\n"    // 8
                               "@functools.lru_cache\n"      // 9
                               "def cached(x):\n"            // 10
                               "    return [x]\n")           // 11
                  .ok());
  const std::string broken = absl::StrCat("/tmp/leakguard-resolve-", ::getpid(), "-broken.py");
  ASSERT_TRUE(WriteProfileFile(broken, "def oops(:\n").ok());
  Profile p;
  auto frame = [](const std::string& file, int64_t line) {
    return ProfileFrame{"", file, line, FrameKind::kPython};
  };
  p.samples.push_back({{frame(path, 2), frame(path, 4), frame(path, 7), frame(path, 8)}, 1, 1, 1});
  p.samples.push_back({{frame(path, 9),
                        frame(path, 11),
                        frame(broken, 1),
                        {"native_fn", "lib.so", 0, FrameKind::kNative},
                        {"already", path, 5, FrameKind::kPython}},
                       1,
                       1,
                       1});
  absl::StatusOr<int64_t> named = ResolvePythonFunctions(&p);
  ASSERT_TRUE(named.ok()) << named.status();
  EXPECT_EQ(*named, 6);
  EXPECT_EQ(p.samples[0].stack[0].function, "<module>");
  EXPECT_EQ(p.samples[0].stack[1].function, "Cache");
  EXPECT_EQ(p.samples[0].stack[2].function, "Cache.get.<locals>.inner");
  EXPECT_EQ(p.samples[0].stack[3].function, "Cache.get");
  EXPECT_EQ(p.samples[1].stack[0].function, "cached");  // the decorator line
  EXPECT_EQ(p.samples[1].stack[1].function, "cached");
  EXPECT_EQ(p.samples[1].stack[2].function, "");  // unparsable: left alone
  EXPECT_EQ(p.samples[1].stack[3].function, "native_fn");
  EXPECT_EQ(p.samples[1].stack[4].function, "already");
  ::unlink(path.c_str());
  ::unlink(broken.c_str());

  {
    GilRelease release;
    EXPECT_EQ(ResolvePythonFunctions(&p).status().code(), absl::StatusCode::kFailedPrecondition);
  }
  EXPECT_EQ(ResolvePythonFunctions(nullptr).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(Profile, FromSnapshotGroupsByTracebackLargestFirst) {
  absl::StatusOr<tracemalloc::TracingScope> scope = tracemalloc::TracingScope::Start(10);
  ASSERT_TRUE(scope.ok()) << scope.status();
  Ref done = testing::Eval("None", "import profile_workload\nprofile_workload.run(200)");
  absl::StatusOr<tracemalloc::Snapshot> snapshot = tracemalloc::Snapshot::Take();
  testing::Eval("None", "import profile_workload\nprofile_workload.clear()");
  scope->End().IgnoreError();
  ASSERT_TRUE(snapshot.ok()) << snapshot.status();
  absl::StatusOr<Profile> heap = ProfileFromSnapshot(*snapshot, {.max_samples = 5});
  ASSERT_TRUE(heap.ok()) << heap.status();
  // Tracing started just before: the workload's two lines, and at most
  // three other stacks (the limit).
  ASSERT_GE(heap->samples.size(), 2u);
  ASSERT_LE(heap->samples.size(), 5u);
  EXPECT_FALSE(heap->is_growth);
  for (size_t i = 1; i < heap->samples.size(); ++i) {
    EXPECT_GE(heap->samples[i - 1].bytes, heap->samples[i].bytes);
  }
  const ProfileSample& top = heap->samples[0];
  EXPECT_THAT(top.stack.back().file, ::testing::EndsWith("profile_workload.py"));
  EXPECT_EQ(top.stack.back().line, 8);
  EXPECT_GE(top.count, 200);
  EXPECT_GE(top.bytes, 200 * 5000);
  EXPECT_EQ(top.stack.back().DisplayName(), absl::StrCat(top.stack.back().file, ":8"));
}

TEST(Profile, DisplayNames) {
  EXPECT_EQ((ProfileFrame{"main", "main.py", 10}).DisplayName(), "main (main.py:10)");
  EXPECT_EQ((ProfileFrame{"", "main.py", 10}).DisplayName(), "main.py:10");
  EXPECT_EQ((ProfileFrame{"malloc", "", 0, FrameKind::kNative}).DisplayName(), "malloc");
  EXPECT_EQ((ProfileFrame{"", "libc.so.6", 0, FrameKind::kNative}).DisplayName(), "libc.so.6");
  EXPECT_EQ(ProfileFrame{}.DisplayName(), "?");
}

TEST(Profile, WriteProfileFileReportsErrors) {
  EXPECT_EQ(WriteProfileFile("/nonexistent-leakguard-dir/x.pb", "x").code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace leakguard
