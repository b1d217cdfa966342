// EncodePprof: profile.proto written by hand. The message is small and fixed
// (a dozen fields of varints, packed varints, strings and sub-messages), so
// a few lines of wire format keep leakguard free of a libprotobuf link
// dependency and of generated code in its build; the tests decode the
// output with Debian's protoc against the public schema.
//
// profile.proto field numbers used (perftools.profiles):
//   Profile:  1 sample_type, 2 sample, 4 location, 5 function,
//             6 string_table, 9 time_nanos, 10 duration_nanos,
//             11 period_type, 12 period, 13 comment, 14 default_sample_type
//   ValueType: 1 type, 2 unit            Sample: 1 location_id, 2 value
//   Location: 1 id, 4 line               Line: 1 function_id, 2 line
//   Function: 1 id, 2 name, 3 system_name, 4 filename, 5 start_line

#include <cstdint>
#include <map>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "leakguard/profile.h"

namespace leakguard {
namespace {

enum WireType : uint32_t { kVarint = 0, kLengthDelimited = 2 };

class Writer {
 public:
  void Varint(uint64_t value) {
    while (value >= 0x80) {
      out_.push_back(static_cast<char>((value & 0x7f) | 0x80));
      value >>= 7;
    }
    out_.push_back(static_cast<char>(value));
  }
  void Tag(uint32_t field, WireType type) { Varint((static_cast<uint64_t>(field) << 3) | type); }
  // int64 fields are plain varints of the two's complement (not zigzag).
  void Int(uint32_t field, int64_t value) {
    if (value == 0) return;  // proto3: zero is the default, not written
    Tag(field, kVarint);
    Varint(static_cast<uint64_t>(value));
  }
  void Bytes(uint32_t field, const std::string& bytes) {
    Tag(field, kLengthDelimited);
    Varint(bytes.size());
    out_ += bytes;
  }
  // A repeated string is written even when empty (string_table[0] is "").
  void Message(uint32_t field, const Writer& message) { Bytes(field, message.out_); }
  void Packed(uint32_t field, const std::vector<uint64_t>& values) {
    if (values.empty()) return;
    Writer packed;
    for (uint64_t v : values) packed.Varint(v);
    Message(field, packed);
  }
  const std::string& str() const { return out_; }

 private:
  std::string out_;
};

class StringTable {
 public:
  StringTable() { Index(""); }
  int64_t Index(const std::string& s) {
    auto [it, inserted] = index_.emplace(s, static_cast<int64_t>(strings_.size()));
    if (inserted) strings_.push_back(s);
    return it->second;
  }
  const std::vector<std::string>& strings() const { return strings_; }

 private:
  std::map<std::string, int64_t> index_;
  std::vector<std::string> strings_;
};

Writer ValueType(StringTable& strings, const std::string& type, const std::string& unit) {
  Writer w;
  w.Int(1, strings.Index(type));
  w.Int(2, strings.Index(unit));
  return w;
}

}  // namespace

std::string EncodePprof(const Profile& profile) {
  StringTable strings;
  Writer out;
  out.Message(1, ValueType(strings, "inuse_space", "bytes"));
  out.Message(1, ValueType(strings, "inuse_objects", "count"));
  out.Message(1, ValueType(strings, "alloc_space", "bytes"));

  // Functions by (name, file); locations by frame.
  std::map<std::pair<std::string, std::string>, uint64_t> function_ids;
  std::vector<Writer> functions;
  std::map<std::tuple<std::string, std::string, int64_t, int>, uint64_t> location_ids;
  std::vector<Writer> locations;
  auto location_of = [&](const ProfileFrame& frame) -> uint64_t {
    const auto key =
        std::make_tuple(frame.function, frame.file, frame.line, static_cast<int>(frame.kind));
    auto found = location_ids.find(key);
    if (found != location_ids.end()) return found->second;
    std::string name = frame.function;
    if (name.empty()) name = frame.DisplayName();
    const auto function_key = std::make_pair(name, frame.file);
    uint64_t function_id;
    auto f = function_ids.find(function_key);
    if (f != function_ids.end()) {
      function_id = f->second;
    } else {
      function_id = functions.size() + 1;
      function_ids.emplace(function_key, function_id);
      Writer function;
      function.Int(1, static_cast<int64_t>(function_id));
      function.Int(2, strings.Index(name));
      function.Int(3, strings.Index(name));
      function.Int(4, strings.Index(frame.file));
      functions.push_back(std::move(function));
    }
    const uint64_t id = locations.size() + 1;
    location_ids.emplace(key, id);
    Writer line;
    line.Int(1, static_cast<int64_t>(function_id));
    line.Int(2, frame.line);
    Writer location;
    location.Int(1, static_cast<int64_t>(id));
    location.Message(4, line);
    locations.push_back(std::move(location));
    return id;
  };

  for (const ProfileSample& sample : profile.samples) {
    std::vector<uint64_t> ids;
    ids.reserve(sample.stack.size());
    // pprof lists a sample's locations leaf first.
    for (auto it = sample.stack.rbegin(); it != sample.stack.rend(); ++it) {
      ids.push_back(location_of(*it));
    }
    Writer s;
    s.Packed(1, ids);
    s.Packed(2, {static_cast<uint64_t>(sample.bytes), static_cast<uint64_t>(sample.count),
                 static_cast<uint64_t>(sample.alloc_bytes)});
    out.Message(2, s);
  }
  for (const Writer& location : locations) out.Message(4, location);
  for (const Writer& function : functions) out.Message(5, function);

  Writer period_type = ValueType(strings, "space", "bytes");
  const int64_t comment =
      strings.Index(profile.is_growth ? "leakguard: growth between two marks (bytes gained)"
                                      : "leakguard: live heap");
  out.Int(9, absl::ToUnixNanos(profile.time));
  out.Int(10, absl::ToInt64Nanoseconds(profile.duration));
  out.Message(11, period_type);
  out.Int(12, 1);
  out.Packed(13, {static_cast<uint64_t>(comment)});
  out.Int(14, strings.Index("inuse_space"));
  // Last, once every string has its index (field order is free on the wire).
  for (const std::string& s : strings.strings()) out.Bytes(6, s);
  return out.str();
}

}  // namespace leakguard
