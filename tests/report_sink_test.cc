// Reports rendered as text and JSON, and delivered by every sink.

#include <unistd.h>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "absl/strings/str_format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "leakguard/python/error.h"
#include "leakguard/python/gil.h"
#include "leakguard/python/ref.h"
#include "leakguard/report.h"
#include "leakguard/sink.h"
#include "test_util.h"

namespace leakguard {
namespace {

using ::testing::HasSubstr;

Report Sample() {
  Report r;
  r.source = "memory_guard";
  r.label = "plugin \"render\"";
  r.severity = Severity::kWarning;
  r.summary = "grew 12.0 MiB (threshold 10.0 MiB)";
  r.time = absl::FromUnixSeconds(1700000000);
  r.elapsed = absl::Milliseconds(1500);
  r.metrics = {{"rss_bytes", 12582912}, {"fds", 2}, {"threads", -1}};
  r.top_lines = {{"app.py", 12, 12000000, 1000, 12500000}, {"lib.py", 0, -2048, -2, 0}};
  r.type_growth = {{"app.Record", 5012, 5000}, {"builtins.dict", 9000, 12}};
  r.notes = {"native growth\tsuspected"};
  return r;
}

TEST(ReportTest, RendersText) {
  EXPECT_EQ(RenderText(Sample()),
            "leakguard [warning] memory_guard 'plugin \"render\"': grew 12.0 MiB "
            "(threshold 10.0 MiB) (1.500 s)\n"
            "  rss +12.0 MiB fds +2 threads -1\n"
            "  top lines:\n"
            "    app.py:12  +11.4 MiB (+1000 blocks), now 11.9 MiB\n"
            "    lib.py  -2.0 KiB (-2 blocks), now 0 B\n"
            "  type growth:\n"
            "    app.Record  +5000 objects, now 5012\n"
            "    builtins.dict  +12 objects, now 9000\n"
            "  note: native growth\tsuspected\n");
}

TEST(ReportTest, RendersJson) {
  EXPECT_EQ(RenderJson(Sample()),
            "{\"source\":\"memory_guard\",\"label\":\"plugin \\\"render\\\"\","
            "\"severity\":\"warning\",\"summary\":\"grew 12.0 MiB (threshold 10.0 MiB)\","
            "\"time\":\"2023-11-14T22:13:20+00:00\",\"elapsed_s\":1.500000,"
            "\"metrics\":{\"rss_bytes\":12582912,\"fds\":2,\"threads\":-1},"
            "\"top_lines\":[{\"file\":\"app.py\",\"line\":12,\"size_diff\":12000000,"
            "\"count_diff\":1000,\"size\":12500000},{\"file\":\"lib.py\",\"line\":0,"
            "\"size_diff\":-2048,\"count_diff\":-2,\"size\":0}],"
            "\"type_growth\":[{\"name\":\"app.Record\",\"count\":5012,\"count_diff\":5000},"
            "{\"name\":\"builtins.dict\",\"count\":9000,\"count_diff\":12}],"
            "\"notes\":[\"native growth\\tsuspected\"]}");
  EXPECT_EQ(JsonQuote(std::string("a\x01") + "\xc3\xa9"), "\"a\\u0001\xc3\xa9\"");
}

// The JSON parses with Python's json module and round-trips the numbers.
// Bytes that are not UTF-8 (a Latin-1 file name, an encoded surrogate, an
// overlong '/', a cut sequence, a code point above U+10FFFF) were copied
// into the JSON as they were: invalid UTF-8 that strict readers refuse.
TEST(ReportTest, JsonQuoteAlwaysWritesValidUtf8) {
  EXPECT_EQ(JsonQuote("/srv/\xe9t\xe9.py"), "\"/srv/\\ufffdt\\ufffd.py\"");
  EXPECT_EQ(JsonQuote("\xed\xa0\x80"), "\"\\ufffd\\ufffd\\ufffd\"");
  EXPECT_EQ(JsonQuote("\xc0\xaf"), "\"\\ufffd\\ufffd\"");
  EXPECT_EQ(JsonQuote("ok \xe2\x82"), "\"ok \\ufffd\\ufffd\"");
  EXPECT_EQ(JsonQuote("\xf4\x90\x80\x80"), "\"\\ufffd\\ufffd\\ufffd\\ufffd\"");
  // Well-formed UTF-8 of every length passes through unchanged.
  EXPECT_EQ(JsonQuote("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x90\x8d"),
            "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x90\x8d\"");
  // Python's strict UTF-8 decoder reads a whole report with such a name.
  Report report = Sample();
  report.top_lines.front().file = "/srv/\xe9t\xe9.py";
  const std::string json = RenderJson(report);
  Ref decoded = ::leakguard::testing::Eval(
      "json.loads(raw.decode('utf-8', 'strict'))['top_lines'][0]['file']",
      "import json\nraw = " + std::string("bytes.fromhex('") +
          [&] {
            std::string hex;
            for (unsigned char c : json) absl::StrAppendFormat(&hex, "%02x", c);
            return hex;
          }() +
          "')");
  ASSERT_TRUE(decoded);
  EXPECT_EQ(PyUnicode_AsUTF8(decoded.get()), std::string("/srv/\xef\xbf\xbdt\xef\xbf\xbd.py"));
}

TEST(ReportTest, JsonParsesInPython) {
  Ref parsed = testing::Eval("json.loads(text)['top_lines'][0]['size_diff']",
                             "import json\ntext = " + JsonQuote(RenderJson(Sample())));
  ASSERT_TRUE(parsed);
  EXPECT_EQ(PyLong_AsLongLong(parsed.get()), 12000000);
  Ref types = testing::Eval("json.loads(text)['type_growth'][1]['count_diff']",
                            "import json\ntext = " + JsonQuote(RenderJson(Sample())));
  ASSERT_TRUE(types);
  EXPECT_EQ(PyLong_AsLongLong(types.get()), 12);
  // An empty list, not a missing key, when there is no type growth.
  Report none = Sample();
  none.type_growth.clear();
  EXPECT_THAT(RenderJson(none), HasSubstr("\"type_growth\":[],\"notes\":"));
}

TEST(SinkTest, StderrSinkWritesTextToItsStream) {
  std::FILE* file = std::tmpfile();
  ASSERT_NE(file, nullptr);
  StderrSink sink(file);
  sink.Write(Sample());
  std::rewind(file);
  char buf[512] = {};
  size_t n = std::fread(buf, 1, sizeof(buf) - 1, file);
  std::fclose(file);
  EXPECT_EQ(std::string(buf, n), RenderText(Sample()));
  EXPECT_EQ(sink.failures(), 0);
}

TEST(SinkTest, JsonLinesSinkAppendsOneLinePerReport) {
  const std::string path =
      ::testing::TempDir() + "leakguard-sink-" + std::to_string(::getpid()) + ".jsonl";
  std::filesystem::remove(path);
  {
    auto sink = JsonLinesSink::Open(path);
    ASSERT_TRUE(sink.ok()) << sink.status();
    (*sink)->Write(Sample());
    Report second = Sample();
    second.label = "second";
    (*sink)->Write(second);
  }
  std::ifstream in(path);
  std::string line1, line2, extra;
  std::getline(in, line1);
  std::getline(in, line2);
  EXPECT_FALSE(std::getline(in, extra));
  EXPECT_EQ(line1, RenderJson(Sample()));
  EXPECT_THAT(line2, HasSubstr("\"label\":\"second\""));
  std::filesystem::remove(path);
}

TEST(SinkTest, JsonLinesSinkOpenErrors) {
  auto missing_dir = JsonLinesSink::Open("/nonexistent-dir/x.jsonl");
  EXPECT_EQ(missing_dir.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(missing_dir.status().message()), HasSubstr("/nonexistent-dir/x.jsonl"));
}

TEST(SinkTest, CallbackSinkCountsThrowingCallbacks) {
  int calls = 0;
  CallbackSink ok([&calls](const Report&) { ++calls; });
  ok.Write(Sample());
  EXPECT_EQ(calls, 1);
  CallbackSink bad([](const Report&) { throw std::runtime_error("boom"); });
  bad.Write(Sample());
  bad.Write(Sample());
  EXPECT_EQ(bad.failures(), 2);
  FanOutSink fan({&ok, &bad, nullptr});
  fan.Write(Sample());
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(bad.failures(), 3);
}

// Python logging receives the text at WARNING with the report as `extra`,
// from the main thread and from a thread Python never saw.
TEST(SinkTest, PythonLoggingSinkReachesLoggingHandlers) {
  Ref setup = testing::Eval("records", R"py(
import logging
records = []
class Keep(logging.Handler):
    def emit(self, record):
        records.append((record.levelname, record.name, record.getMessage(),
                        record.leakguard['metrics']['rss_bytes'],
                        record.leakguard['top_lines'][0]['line'],
                        record.leakguard['type_growth'][0]['name'],
                        record.leakguard['type_growth'][0]['count_diff']))
logger = logging.getLogger('leakguard')
logger.addHandler(Keep())
logger.setLevel(logging.INFO)
logger.propagate = False
)py");
  ASSERT_TRUE(setup);
  PythonLoggingSink sink;
  sink.Write(Sample());
  {
    GilRelease release;
    std::thread([&sink] { sink.Write(Sample()); }).join();
  }
  EXPECT_EQ(sink.failures(), 0);
  ASSERT_EQ(PyList_Size(setup.get()), 2);
  PyObject* rec = PyList_GetItem(setup.get(), 0);
  EXPECT_STREQ(PyUnicode_AsUTF8(PyTuple_GetItem(rec, 0)), "WARNING");
  EXPECT_STREQ(PyUnicode_AsUTF8(PyTuple_GetItem(rec, 1)), "leakguard");
  std::string text = RenderText(Sample());
  text.pop_back();
  EXPECT_EQ(PyUnicode_AsUTF8(PyTuple_GetItem(rec, 2)), text);
  EXPECT_EQ(PyLong_AsLongLong(PyTuple_GetItem(rec, 3)), 12582912);
  EXPECT_EQ(PyLong_AsLong(PyTuple_GetItem(rec, 4)), 12);
  EXPECT_STREQ(PyUnicode_AsUTF8(PyTuple_GetItem(rec, 5)), "app.Record");
  EXPECT_EQ(PyLong_AsLongLong(PyTuple_GetItem(rec, 6)), 5000);
  Ref cleanup = testing::Eval("logging.getLogger('leakguard').handlers.clear()", "import logging");
}

TEST(SinkTest, PythonLoggingSinkKeepsAPendingException) {
  PyErr_SetString(PyExc_KeyError, "pending");
  PythonLoggingSink sink;
  sink.Write(Sample());
  ASSERT_NE(PyErr_Occurred(), nullptr);
  EXPECT_EQ(StatusFromPythonError().message(), "KeyError: 'pending'");
}

}  // namespace
}  // namespace leakguard
