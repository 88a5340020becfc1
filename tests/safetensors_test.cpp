// safetensors reader, writer and checkpoint store: round trips of every dtype, hand-written known-answer
// files, sharded checkpoints, and a corpus of malformed files built here, each of which must be rejected with
// a message that names the file, the tensor and what was wrong.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "ark/error.h"
#include "ark/safetensors.h"

namespace ark {
namespace {

namespace fs = std::filesystem;

// Fresh seed per run, printed so a failure can be replayed with ARK_TEST_SEED=<seed>.
uint64_t test_seed() {
  static const uint64_t seed = [] {
    const char* env = std::getenv("ARK_TEST_SEED");
    const uint64_t s = env ? std::strtoull(env, nullptr, 0)
                           : (uint64_t{std::random_device{}()} << 32) ^ std::random_device{}();
    std::cout << "[ safetensors ] ARK_TEST_SEED=" << s << "\n";
    return s;
  }();
  return seed;
}

// Random bytes for a tensor; bools get 0/1 since that is all the format allows for them.
Tensor random_tensor(DType t, std::vector<int64_t> shape, std::mt19937_64& rng) {
  Tensor out(t, std::move(shape));
  for (std::byte& b : out.bytes) b = static_cast<std::byte>(t == DType::Bool ? rng() & 1 : rng() & 0xff);
  return out;
}

std::vector<char> read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::vector<char>(std::istreambuf_iterator<char>(in), {});
}

void write_bytes(const fs::path& p, const std::string& bytes) {
  std::ofstream out(p, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string le64(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>((v >> (8 * i)) & 0xff);
  return s;
}

// A safetensors file from a header written by hand: length prefix, header text, then `data_bytes` bytes.
std::string raw_file(const std::string& header, size_t data_bytes) {
  std::string data(data_bytes, '\0');
  for (size_t i = 0; i < data_bytes; ++i) data[i] = static_cast<char>(0x11 + i * 7);
  return le64(header.size()) + header + data;
}

class SafetensorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    rng_.seed(test_seed());
    dir_ = fs::temp_directory_path() / ("ark_safetensors_test_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  // Expects opening `p` to fail with a message containing every one of `parts`.
  void expect_open_error(const std::string& p, const std::vector<std::string>& parts) {
    try {
      SafetensorsFile::open(p);
      ADD_FAILURE() << "opening " << p << " should have failed (expected: " << parts[0] << ")";
    } catch (const Error& e) {
      const std::string msg = e.what();
      for (const std::string& part : parts)
        EXPECT_NE(msg.find(part), std::string::npos) << msg << "\n  lacks: " << part;
    }
  }

  std::mt19937_64 rng_;
  fs::path dir_;
};

const std::vector<DType> kAllDTypes = {DType::F64, DType::F32,  DType::F16,     DType::BF16,
                                       DType::I64, DType::I32,  DType::I16,     DType::I8,
                                       DType::U8,  DType::Bool, DType::F8_E4M3, DType::F8_E5M2};

TEST_F(SafetensorsTest, RoundTripsEveryDtypeAndShape) {
  const std::vector<std::vector<int64_t>> shapes = {{},     {1},       {7},       {0},
                                                    {3, 5}, {3, 0, 2}, {2, 3, 4}, {1, 1, 9}};
  std::map<std::string, Tensor> tensors;
  for (DType t : kAllDTypes)
    for (size_t s = 0; s < shapes.size(); ++s)
      tensors.emplace(std::string(dtype_name(t)) + ".s" + std::to_string(s),
                      random_tensor(t, shapes[s], rng_));
  const SafetensorsMetadata meta = {{"format", "pt"}, {"note", "tab\there, quote \" and ünïcode"}};
  write_safetensors(path("all.safetensors"), tensors, meta);

  const SafetensorsFile f = SafetensorsFile::open(path("all.safetensors"));
  EXPECT_EQ(f.metadata(), meta);
  EXPECT_EQ(f.header_bytes() % 8, 0u);
  ASSERT_EQ(f.size(), tensors.size());
  std::vector<std::string> expected_names;
  for (const auto& [name, t] : tensors) expected_names.push_back(name);
  EXPECT_EQ(f.names(), expected_names);
  for (const auto& [name, t] : tensors) {
    SCOPED_TRACE(name);
    ASSERT_TRUE(f.has(name));
    const TensorView v = f.get(name);
    EXPECT_EQ(v.dtype, t.dtype);
    EXPECT_EQ(v.shape, t.shape);
    ASSERT_EQ(v.nbytes(), t.bytes.size());
    EXPECT_EQ(std::memcmp(v.data, t.bytes.data(), t.bytes.size()), 0);
    // The writer's layout keeps every view aligned for its element type.
    EXPECT_EQ(reinterpret_cast<uintptr_t>(v.data) % dtype_size(v.dtype), 0u);
  }
  EXPECT_FALSE(f.has("F32.s99"));
  EXPECT_EQ(f.find("nope"), nullptr);
}

TEST_F(SafetensorsTest, WriterOutputDependsOnlyOnTheTensors) {
  const Tensor a = random_tensor(DType::F16, {4, 3}, rng_);
  const Tensor b = random_tensor(DType::I64, {2}, rng_);
  const Tensor c = random_tensor(DType::U8, {5}, rng_);
  write_safetensors(path("1.safetensors"), {{"a", a.view()}, {"b", b.view()}, {"c", c.view()}});
  write_safetensors(path("2.safetensors"), {{"c", c.view()}, {"a", a.view()}, {"b", b.view()}});
  EXPECT_EQ(read_all(path("1.safetensors")), read_all(path("2.safetensors")));
}

// The expected bytes follow from the format rules: I64 before F32 before U8 in the data section (decreasing
// element size), header padded with spaces to a multiple of 8, offsets relative to the data section.
TEST_F(SafetensorsTest, WriterKnownAnswer) {
  Tensor w(DType::F32, {});
  const float one = 1.0f;
  std::memcpy(w.bytes.data(), &one, 4);
  Tensor b(DType::U8, {2});
  b.bytes = {std::byte{0x01}, std::byte{0x02}};
  Tensor n(DType::I64, {1});
  const int64_t minus_two = -2;
  std::memcpy(n.bytes.data(), &minus_two, 8);
  write_safetensors(path("kat.safetensors"), std::map<std::string, Tensor>{{"w", w}, {"b", b}, {"n", n}},
                    {{"k", "v"}});

  const std::string header = R"({"__metadata__":{"k":"v"},)"
                             R"("n":{"dtype":"I64","shape":[1],"data_offsets":[0,8]},)"
                             R"("w":{"dtype":"F32","shape":[],"data_offsets":[8,12]},)"
                             R"("b":{"dtype":"U8","shape":[2],"data_offsets":[12,14]}})";
  ASSERT_EQ(header.size(), 186u);  // counted by hand; 6 spaces pad it to 192
  const std::string expected = std::string("\xc0\0\0\0\0\0\0\0", 8) + header + "      " +
                               std::string("\xfe\xff\xff\xff\xff\xff\xff\xff", 8) +
                               std::string("\x00\x00\x80\x3f", 4) + "\x01\x02";
  const std::vector<char> got = read_all(path("kat.safetensors"));
  EXPECT_EQ(std::string(got.begin(), got.end()), expected);
}

// A file assembled byte by byte, with an unpadded header, read through the reader.
TEST_F(SafetensorsTest, ReaderKnownAnswer) {
  const std::string header =
      R"({"x":{"dtype":"I16","shape":[2],"data_offsets":[2,6]},"e":{"dtype":"BF16","shape":[0,3],)"
      R"("data_offsets":[6,6]},"s":{"dtype":"F8_E5M2","shape":[],"data_offsets":[0,1]}})";
  const std::string file = le64(header.size()) + header + std::string("\x3c\x00\x34\x12\xff\x7f", 6);
  write_bytes(path("r.safetensors"), file);
  const SafetensorsFile f = SafetensorsFile::open(path("r.safetensors"));
  EXPECT_TRUE(f.metadata().empty());
  EXPECT_EQ(f.names(), (std::vector<std::string>{"e", "s", "x"}));
  const TensorView x = f.get("x");
  EXPECT_EQ(x.dtype, DType::I16);
  int16_t xs[2];
  std::memcpy(xs, x.data, 4);
  EXPECT_EQ(xs[0], 0x1234);
  EXPECT_EQ(xs[1], 0x7fff);
  const TensorView s = f.get("s");
  EXPECT_EQ(s.dtype, DType::F8_E5M2);
  EXPECT_TRUE(s.shape.empty());
  EXPECT_EQ(s.numel(), 1);
  EXPECT_EQ(static_cast<unsigned>(s.data[0]), 0x3cu);
  EXPECT_EQ(f.get("e").nbytes(), 0u);
  EXPECT_EQ(f.find("x")->begin, 2u);
  EXPECT_EQ(f.find("x")->end, 6u);
  // Zero-copy: the view points into the mapping at 8 + header length + begin.
  EXPECT_EQ(x.data - s.data, 2);
}

TEST_F(SafetensorsTest, ViewsSurviveMovingTheFile) {
  const Tensor t = random_tensor(DType::F32, {16}, rng_);
  write_safetensors(path("m.safetensors"), {{"t", t.view()}});
  SafetensorsFile a = SafetensorsFile::open(path("m.safetensors"));
  const TensorView v = a.get("t");
  SafetensorsFile b = std::move(a);
  SafetensorsFile c = SafetensorsFile::open(path("m.safetensors"));
  c = std::move(b);
  EXPECT_EQ(std::memcmp(v.data, t.bytes.data(), t.bytes.size()), 0);
  EXPECT_EQ(c.get("t").data, v.data);
}

TEST_F(SafetensorsTest, WriterRejectsBadInput) {
  const Tensor t = random_tensor(DType::F32, {3}, rng_);
  auto expect_error = [&](auto&& fn, const std::string& part) {
    try {
      fn();
      ADD_FAILURE() << "expected an error mentioning " << part;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
    }
  };
  const std::string p = path("w.safetensors");
  expect_error(
      [&] {
        write_safetensors(p, {{"a", t.view()}, {"a", t.view()}});
      },
      "'a' is given more than once");
  expect_error([&] { write_safetensors(p, {{"", t.view()}}); }, "empty name");
  expect_error([&] { write_safetensors(p, {{"__metadata__", t.view()}}); }, "reserved");
  expect_error(
      [&] {
        write_safetensors(p, {{"neg", TensorView{DType::F32, {2, -1}, t.bytes.data()}}});
      },
      "'neg': shape[1] = -1 is negative");
  expect_error(
      [&] {
        write_safetensors(p, {{"null", TensorView{DType::F32, {2}, nullptr}}});
      },
      "'null' has 8 bytes");
  Tensor bad = t;
  bad.bytes.pop_back();
  expect_error(
      [&] {
        write_safetensors(p, std::map<std::string, Tensor>{{"short", bad}});
      },
      "'short' holds 11 bytes but shape and dtype F32 need 12");
  expect_error([&] { write_safetensors(p, {{"bad\xff", t.view()}}); }, "cannot encode the header");
  EXPECT_FALSE(fs::exists(p)) << "a failed write must leave nothing behind";
  const std::string no_dir = path("no/such/dir/x.safetensors");
  expect_error([&] { write_safetensors(no_dir, {{"a", t.view()}}); }, no_dir);
  // A zero-size tensor may come without data.
  write_safetensors(p, {{"empty", TensorView{DType::BF16, {0, 4}, nullptr}}});
  EXPECT_EQ(SafetensorsFile::open(p).get("empty").nbytes(), 0u);
  EXPECT_EQ(std::distance(fs::directory_iterator(dir_), fs::directory_iterator()), 1)
      << "temporary files left";
}

// Each case: a file built by hand and the words its error must contain (the file path is checked for all).
struct BadFile {
  const char* label;
  std::string bytes;
  std::vector<std::string> expect;
};

TEST_F(SafetensorsTest, RejectsMalformedFiles) {
  const std::string ok_a = R"("a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})";
  std::vector<BadFile> cases = {
      {"empty", "", {"0 bytes is too short"}},
      {"short", std::string("\x08\0\0\0\0", 5), {"5 bytes is too short"}},
      {"huge_header", le64(200'000'000) + "{}", {"header length 200000000", "limit"}},
      {"header_past_end", le64(64) + "{}", {"header length 64 runs past the end", "10 bytes"}},
      {"tiny_header", le64(0), {"header length 0"}},
      {"bad_json", raw_file(R"({"a":{"dtype":"F32",)", 0), {"not valid UTF-8 JSON"}},
      {"bad_utf8", raw_file("{\"a\xff\":{}}", 0), {"not valid UTF-8 JSON"}},
      {"trailing_garbage", raw_file("{} x", 0), {"not valid UTF-8 JSON"}},
      {"not_object", raw_file("[1,2]", 0), {"must be a JSON object starting with '{'"}},
      {"not_object_spaced", raw_file("  \"x\"  ", 0), {"must be a JSON object starting with '{'"}},
      {"too_deep",
       raw_file(
           R"({"w":{"dtype":"U8","shape":[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]],"data_offsets":[0,1]}})",
           1),
       {"nests deeper than 16 levels"}},
      {"entry_not_object", raw_file(R"({"w":3})", 0), {"tensor 'w'", "expected an object", "number"}},
      {"missing_dtype",
       raw_file(R"({"w":{"shape":[1],"data_offsets":[0,4]}})", 4),
       {"tensor 'w'", "'dtype'"}},
      {"missing_shape",
       raw_file(R"({"w":{"dtype":"F32","data_offsets":[0,4]}})", 4),
       {"tensor 'w'", "'shape'"}},
      {"missing_offsets",
       raw_file(R"({"w":{"dtype":"F32","shape":[1]}})", 4),
       {"tensor 'w'", "'data_offsets'"}},
      {"unknown_dtype",
       raw_file(R"({"w":{"dtype":"F128","shape":[1],"data_offsets":[0,16]}})", 16),
       {"tensor 'w'", "unknown dtype 'F128'", "F8_E5M2"}},
      {"lowercase_dtype",
       raw_file(R"({"w":{"dtype":"f32","shape":[1],"data_offsets":[0,4]}})", 4),
       {"unknown dtype 'f32'"}},
      {"dtype_not_string",
       raw_file(R"({"w":{"dtype":4,"shape":[1],"data_offsets":[0,4]}})", 4),
       {"tensor 'w'", "dtype must be a string"}},
      {"shape_not_array",
       raw_file(R"({"w":{"dtype":"F32","shape":4,"data_offsets":[0,16]}})", 16),
       {"tensor 'w'", "shape must be an array"}},
      {"negative_dim",
       raw_file(R"({"w":{"dtype":"F32","shape":[2,-2],"data_offsets":[0,16]}})", 16),
       {"tensor 'w'", "shape[1] = -2"}},
      {"fractional_dim",
       raw_file(R"({"w":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}})", 8),
       {"tensor 'w'", "shape[0] = 2.5"}},
      {"overflowing_shape",
       raw_file(R"({"w":{"dtype":"F32","shape":[4611686018427387904,8],"data_offsets":[0,8]}})", 8),
       {"tensor 'w'", "more elements than fit"}},
      {"overflowing_empty_shape",
       raw_file(R"({"w":{"dtype":"U8","shape":[4611686018427387904,8,0],"data_offsets":[0,0]}})", 0),
       {"tensor 'w'", "more elements than fit"}},
      {"wrong_size",
       raw_file(R"({"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,20]}})", 24),
       {"tensor 'w'", "needs 24 bytes", "hold 20"}},
      {"wrong_dtype_size",
       raw_file(R"({"w":{"dtype":"BF16","shape":[4],"data_offsets":[0,16]}})", 16),
       {"tensor 'w'", "of BF16 needs 8 bytes"}},
      {"end_before_begin",
       raw_file(R"({"w":{"dtype":"U8","shape":[0],"data_offsets":[8,4]}})", 8),
       {"tensor 'w'", "[8, 4] end before they begin"}},
      {"beyond_data",
       raw_file(R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[4,20]}})", 16),
       {"tensor 'w'", "[4, 20] lie beyond the data section of 16 bytes"}},
      {"offsets_one_value",
       raw_file(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[4]}})", 8),
       {"tensor 'w'", "data_offsets must be an array [begin, end]"}},
      {"offsets_negative",
       raw_file(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}})", 8),
       {"tensor 'w'", "non-negative integers"}},
      {"offsets_string",
       raw_file(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,"4"]}})", 8),
       {"tensor 'w'", "non-negative integers"}},
      {"overlap",
       raw_file("{" + ok_a + R"(,"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 12),
       {"tensor 'b'", "overlaps tensor 'a'"}},
      {"overlap_contained",
       raw_file(R"({"big":{"dtype":"U8","shape":[12],"data_offsets":[0,12]},)"
                R"("small":{"dtype":"U8","shape":[2],"data_offsets":[5,7]}})",
                12),
       {"overlaps", "'big'", "'small'"}},
      {"duplicate_name",
       raw_file("{" + ok_a + R"(,"a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})", 16),
       {"tensor 'a' appears more than once"}},
      {"metadata_not_string",
       raw_file("{\"__metadata__\":{\"k\":1}," + ok_a + "}", 8),
       {"__metadata__ entry 'k'", "must be a string, got number"}},
      {"metadata_not_object",
       raw_file("{\"__metadata__\":[\"k\"]," + ok_a + "}", 8),
       {"__metadata__ must be an object"}},
  };
  // A good file cut short inside its data section.
  {
    const Tensor t = random_tensor(DType::F32, {4, 4}, rng_);
    write_safetensors(path("good.safetensors"), {{"t", t.view()}});
    const std::vector<char> good = read_all(path("good.safetensors"));
    cases.push_back(
        {"truncated_data", std::string(good.begin(), good.end() - 5), {"tensor 't'", "beyond the data"}});
    cases.push_back(
        {"truncated_header", std::string(good.begin(), good.begin() + 20), {"runs past the end"}});
  }
  for (const BadFile& c : cases) {
    SCOPED_TRACE(c.label);
    const std::string p = path(std::string(c.label) + ".safetensors");
    write_bytes(p, c.bytes);
    std::vector<std::string> expect = c.expect;
    expect.push_back("safetensors file '" + p + "'");
    expect_open_error(p, expect);
  }
  expect_open_error(path("does_not_exist.safetensors"), {"cannot open", "does_not_exist.safetensors"});
  expect_open_error(dir_.string(), {"not a regular file"});
}

// Things the format allows that a strict reader might wrongly refuse.
TEST_F(SafetensorsTest, AcceptsLegalOddities) {
  // Unpadded header, a hole between tensors, unknown extra entry keys, null metadata, empty tensors anywhere.
  const std::string header =
      R"({"__metadata__":null,"a":{"dtype":"U8","shape":[3],"data_offsets":[0,3],"extra":true},)"
      R"("z":{"dtype":"F64","shape":[0],"data_offsets":[1,1]},"b":{"dtype":"U8","shape":[2],"data_offsets":[5,7]}})";
  write_bytes(path("odd.safetensors"), raw_file(header, 7));
  const SafetensorsFile f = SafetensorsFile::open(path("odd.safetensors"));
  EXPECT_EQ(f.size(), 3u);
  EXPECT_EQ(static_cast<unsigned>(f.get("b").data[0]), static_cast<unsigned>((0x11 + 5 * 7) & 0xff));
  write_bytes(path("none.safetensors"), raw_file("{}", 0));
  EXPECT_EQ(SafetensorsFile::open(path("none.safetensors")).size(), 0u);
}

TEST_F(SafetensorsTest, MissingTensorErrorNamesFileAndTensor) {
  const Tensor t = random_tensor(DType::I8, {3}, rng_);
  write_safetensors(path("one.safetensors"), {{"t", t.view()}});
  const SafetensorsFile f = SafetensorsFile::open(path("one.safetensors"));
  try {
    f.get("model.embed.weight");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no tensor named 'model.embed.weight'"), std::string::npos)
        << e.what();
    EXPECT_NE(std::string(e.what()).find(path("one.safetensors")), std::string::npos) << e.what();
  }
}

// ---- checkpoint store -------------------------------------------------------------------------------------

class SafetensorsStoreTest : public SafetensorsTest {
 protected:
  // Writes tensors t0..t{n-1} split over shards as `assignment[i]` says and returns them.
  std::map<std::string, Tensor> make_tensors(int n) {
    std::map<std::string, Tensor> out;
    for (int i = 0; i < n; ++i)
      out.emplace("layers." + std::to_string(i) + ".weight",
                  random_tensor(kAllDTypes[static_cast<size_t>(i) % kAllDTypes.size()], {i + 1, 3}, rng_));
    return out;
  }
  void write_shards(const fs::path& dir, const std::map<std::string, Tensor>& tensors, int num_shards,
                    bool with_index, std::map<std::string, std::string>* weight_map = nullptr) {
    fs::create_directories(dir);
    std::vector<std::map<std::string, Tensor>> parts(static_cast<size_t>(num_shards));
    std::string index = R"({"metadata":{"total_size":0},"weight_map":{)";
    int i = 0;
    for (const auto& [name, t] : tensors) {
      const int s = i++ % num_shards;
      parts[static_cast<size_t>(s)].emplace(name, t);
      const std::string file = shard_name(s, num_shards);
      if (weight_map) (*weight_map)[name] = file;
      index += (i > 1 ? "," : "") + ("\"" + name + "\":\"" + file + "\"");
    }
    index += "}}";
    for (int s = 0; s < num_shards; ++s)
      write_safetensors((dir / shard_name(s, num_shards)).string(), parts[static_cast<size_t>(s)],
                        {{"format", "pt"}});
    if (with_index) write_bytes(dir / "model.safetensors.index.json", index);
  }
  static std::string shard_name(int s, int n) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "model-%05d-of-%05d.safetensors", s + 1, n);
    return buf;
  }
  void expect_same(const SafetensorsStore& store, const std::map<std::string, Tensor>& tensors) {
    std::vector<std::string> names;
    for (const auto& [name, t] : tensors) {
      names.push_back(name);
      ASSERT_TRUE(store.has(name)) << name;
      const TensorView v = store.get(name);
      EXPECT_EQ(v.dtype, t.dtype) << name;
      EXPECT_EQ(v.shape, t.shape) << name;
      ASSERT_EQ(v.nbytes(), t.bytes.size()) << name;
      EXPECT_EQ(std::memcmp(v.data, t.bytes.data(), t.bytes.size()), 0) << name;
    }
    EXPECT_EQ(store.names(), names);
    EXPECT_EQ(store.size(), tensors.size());
  }
  void expect_store_error(const std::string& p, const std::vector<std::string>& parts) {
    try {
      SafetensorsStore::open(p);
      ADD_FAILURE() << "opening " << p << " should have failed (expected: " << parts[0] << ")";
    } catch (const Error& e) {
      for (const std::string& part : parts)
        EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what() << "\n  lacks: " << part;
    }
  }
};

TEST_F(SafetensorsStoreTest, SingleFileAndModelSafetensors) {
  const auto tensors = make_tensors(5);
  write_safetensors(path("model.safetensors"), tensors);
  const SafetensorsStore by_file = SafetensorsStore::open(path("model.safetensors"));
  expect_same(by_file, tensors);
  // A stray extra file does not join a checkpoint that has model.safetensors.
  write_safetensors(path("adapter.safetensors"),
                    std::map<std::string, Tensor>{{"x", random_tensor(DType::U8, {2}, rng_)}});
  const SafetensorsStore by_dir = SafetensorsStore::open(dir_.string());
  expect_same(by_dir, tensors);
  EXPECT_EQ(by_dir.num_shards(), 1u);
}

TEST_F(SafetensorsStoreTest, IndexedShardsOpenEachShardOnce) {
  const auto tensors = make_tensors(11);
  std::map<std::string, std::string> weight_map;
  write_shards(dir_ / "ckpt", tensors, 3, true, &weight_map);
  const SafetensorsStore store = SafetensorsStore::open((dir_ / "ckpt").string());
  expect_same(store, tensors);
  ASSERT_EQ(store.num_shards(), 3u);
  for (int s = 0; s < 3; ++s)
    EXPECT_EQ(fs::path(store.shard(static_cast<size_t>(s)).path()).filename(), shard_name(s, 3));
  for (const auto& [name, file] : weight_map)
    EXPECT_EQ(fs::path(store.shard_of(name).path()).filename(), file);
  // The index file itself is an accepted path too.
  const SafetensorsStore by_index =
      SafetensorsStore::open((dir_ / "ckpt" / "model.safetensors.index.json").string());
  expect_same(by_index, tensors);
}

TEST_F(SafetensorsStoreTest, LooseShardsWithoutIndex) {
  const auto tensors = make_tensors(7);
  write_shards(dir_ / "loose", tensors, 2, false);
  const SafetensorsStore store = SafetensorsStore::open((dir_ / "loose").string());
  expect_same(store, tensors);
  EXPECT_EQ(store.num_shards(), 2u);
}

TEST_F(SafetensorsStoreTest, RejectsBrokenCheckpoints) {
  const auto tensors = make_tensors(6);
  const fs::path ck = dir_ / "ck";
  write_shards(ck, tensors, 2, true);
  const std::string index = (ck / "model.safetensors.index.json").string();

  // A shard the index names is missing.
  fs::rename(ck / shard_name(1, 2), dir_ / "moved.safetensors");
  expect_store_error(ck.string(), {index, "shard '" + shard_name(1, 2) + "' is missing"});
  fs::rename(dir_ / "moved.safetensors", ck / shard_name(1, 2));
  ASSERT_NO_THROW(SafetensorsStore::open(ck.string()));

  // A tensor mapped to a shard that lacks it.
  write_bytes(index, R"({"weight_map":{"layers.0.weight":")" + shard_name(1, 2) + "\"}}");
  expect_store_error(ck.string(),
                     {index, "tensor 'layers.0.weight'", shard_name(1, 2), "does not contain it"});

  write_bytes(index, R"({"weight_map":{"layers.0.weight":)");
  expect_store_error(ck.string(), {index, "not valid JSON"});
  write_bytes(index, R"({"metadata":{}})");
  expect_store_error(ck.string(), {index, "weight_map"});
  write_bytes(index, R"({"weight_map":{"layers.0.weight":7}})");
  expect_store_error(ck.string(), {index, "'layers.0.weight'", "must be a shard file name"});
  write_bytes(index, R"({"weight_map":{"layers.0.weight":"../elsewhere.safetensors"}})");
  expect_store_error(ck.string(), {index, "'../elsewhere.safetensors'", "relative to the index"});

  // A malformed shard surfaces the reader's error with the shard's path.
  fs::remove(index);
  write_bytes(ck / shard_name(0, 2), le64(3) + "{x}");
  expect_store_error(ck.string(), {shard_name(0, 2), "not valid UTF-8 JSON"});

  // Loose shards that both hold a tensor.
  const fs::path dup = dir_ / "dup";
  fs::create_directories(dup);
  const Tensor t = random_tensor(DType::F32, {2}, rng_);
  write_safetensors((dup / "a.safetensors").string(), {{"w", t.view()}});
  write_safetensors((dup / "b.safetensors").string(), {{"w", t.view()}});
  expect_store_error(dup.string(), {"tensor 'w' is in both", "a.safetensors", "b.safetensors"});

  fs::create_directories(dir_ / "empty");
  expect_store_error((dir_ / "empty").string(), {"empty", "no model.safetensors.index.json"});
  expect_store_error(path("nowhere"), {"nowhere", "no such file or directory"});
}

TEST_F(SafetensorsStoreTest, MissingTensorErrorNamesIt) {
  const auto tensors = make_tensors(3);
  write_shards(dir_ / "m", tensors, 2, true);
  const SafetensorsStore store = SafetensorsStore::open((dir_ / "m").string());
  EXPECT_FALSE(store.has("lm_head.weight"));
  for (auto fn : {+[](const SafetensorsStore& s) { s.get("lm_head.weight"); },
                  +[](const SafetensorsStore& s) { s.shard_of("lm_head.weight"); }}) {
    try {
      fn(store);
      ADD_FAILURE() << "expected an error";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("no tensor named 'lm_head.weight'"), std::string::npos)
          << e.what();
      EXPECT_NE(std::string(e.what()).find((dir_ / "m").string()), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace ark
