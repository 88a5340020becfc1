// Reading safetensors: map the file read-only, parse and validate the JSON header, hand out views into the
// map. Everything the header claims is checked before any view exists, so later code can trust sizes and
// ranges.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <functional>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <utility>

#include "ark/error.h"
#include "ark/safetensors.h"

namespace ark {

namespace {

using nlohmann::json;

// A read-only private mapping of a whole file. The descriptor is closed right after mapping: the mapping
// keeps the file alive, and a checkpoint of many shards should not hold many descriptors.
class FileMapping {
 public:
  FileMapping() = default;
  FileMapping(const FileMapping&) = delete;
  FileMapping& operator=(const FileMapping&) = delete;
  ~FileMapping() {
    if (data_ != nullptr) munmap(data_, size_);
  }

  void map(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw_error("safetensors file '", path, "': cannot open: ", std::strerror(errno));
    struct stat st {};
    if (fstat(fd, &st) != 0) {
      const int err = errno;
      ::close(fd);
      throw_error("safetensors file '", path, "': cannot stat: ", std::strerror(err));
    }
    if (!S_ISREG(st.st_mode)) {
      ::close(fd);
      throw_error("safetensors file '", path, "': not a regular file");
    }
    size_ = static_cast<size_t>(st.st_size);
    // mmap rejects a zero length; such a file fails the size check that follows anyway.
    if (size_ > 0) {
      void* p = mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
      if (p == MAP_FAILED) {
        const int err = errno;
        ::close(fd);
        throw_error("safetensors file '", path, "': cannot map ", size_, " bytes: ", std::strerror(err));
      }
      data_ = p;
    }
    ::close(fd);
  }

  const std::byte* data() const { return static_cast<const std::byte*>(data_); }
  size_t size() const { return size_; }

 private:
  void* data_ = nullptr;
  size_t size_ = 0;
};

constexpr int kMaxJsonDepth = 16;

// SAX pass over the header: rejects duplicate top-level names and nesting deeper than any valid header needs
// (a valid one nests three levels: header, entry, shape), before a DOM is built. Values are not looked at.
class HeaderScan {
 public:
  explicit HeaderScan(const std::string& path) : path_(path) {}
  bool null() { return true; }
  bool boolean(bool) { return true; }
  bool number_integer(json::number_integer_t) { return true; }
  bool number_unsigned(json::number_unsigned_t) { return true; }
  bool number_float(json::number_float_t, const json::string_t&) { return true; }
  bool string(json::string_t&) { return true; }
  bool binary(json::binary_t&) { return true; }
  bool start_object(size_t) { return enter(); }
  bool start_array(size_t) { return enter(); }
  bool end_object() { return leave(); }
  bool end_array() { return leave(); }
  bool key(json::string_t& k) {
    if (depth_ == 1 && !names_.insert(k).second)
      throw_error("safetensors file '", path_, "': tensor '", k, "' appears more than once in the header");
    return true;
  }
  bool parse_error(size_t, const std::string&, const json::exception& e) {
    throw_error("safetensors file '", path_, "': header is not valid UTF-8 JSON: ", e.what());
  }

 private:
  bool enter() {
    if (++depth_ > kMaxJsonDepth)
      throw_error("safetensors file '", path_, "': header nests deeper than ", kMaxJsonDepth, " levels");
    return true;
  }
  bool leave() {
    --depth_;
    return true;
  }
  const std::string& path_;
  int depth_ = 0;
  std::set<std::string, std::less<>> names_;
};

const char* json_kind(const json& j) {
  return j.type_name();
}

// Reads a JSON number that must be a non-negative integer no larger than `max`.
bool get_uint(const json& j, uint64_t max, uint64_t* out) {
  if (j.is_number_unsigned()) {
    *out = j.get<uint64_t>();
    return *out <= max;
  }
  if (j.is_number_integer()) {  // signed: only acceptable when non-negative
    const int64_t v = j.get<int64_t>();
    if (v < 0) return false;
    *out = static_cast<uint64_t>(v);
    return *out <= max;
  }
  return false;
}

std::string all_dtype_names() {
  std::string s;
  for (DType t : {DType::F64, DType::F32, DType::F16, DType::BF16, DType::I64, DType::I32, DType::I16,
                  DType::I8, DType::U8, DType::Bool, DType::F8_E4M3, DType::F8_E5M2}) {
    if (!s.empty()) s += ", ";
    s += dtype_name(t);
  }
  return s;
}

}  // namespace

struct SafetensorsFile::Impl {
  std::string path;
  FileMapping mapping;
  uint64_t header_len = 0;
  SafetensorsMetadata metadata;
  std::vector<SafetensorsEntry> entries;  // sorted by name

  void load();
  void parse_metadata(const json& j);
  SafetensorsEntry parse_entry(const std::string& name, const json& j, uint64_t data_size) const;
};

void SafetensorsFile::Impl::load() {
  mapping.map(path);
  const uint64_t file_size = mapping.size();
  ARK_CHECK(file_size >= 8, "safetensors file '", path, "': ", file_size,
            " bytes is too short: expected at least the 8-byte header length");
  std::memcpy(&header_len, mapping.data(), 8);
  static_assert(std::endian::native == std::endian::little, "safetensors lengths are little-endian");
  ARK_CHECK(header_len <= kSafetensorsMaxHeaderBytes, "safetensors file '", path, "': header length ",
            header_len, " is larger than the ", kSafetensorsMaxHeaderBytes,
            "-byte limit (corrupt or not a safetensors file)");
  ARK_CHECK(header_len <= file_size - 8, "safetensors file '", path, "': header length ", header_len,
            " runs past the end of the file (", file_size, " bytes; truncated?)");
  ARK_CHECK(header_len >= 2, "safetensors file '", path, "': header length ", header_len,
            " is too short for a JSON object");

  const char* text = reinterpret_cast<const char*>(mapping.data() + 8);
  json header;
  // Refuse anything that is not an object up front: a 100 MB array of garbage would otherwise be parsed
  // whole.
  const char* first = text;
  while (first < text + header_len && (*first == ' ' || *first == '\t' || *first == '\n' || *first == '\r'))
    ++first;
  ARK_CHECK(first < text + header_len && *first == '{', "safetensors file '", path,
            "': header must be a JSON object starting with '{' (not a safetensors file?)");
  // Two linear passes: a SAX pass for what the DOM parser cannot see (duplicate names: nlohmann keeps the
  // last silently) or should not be allowed to build (deep nesting), then the DOM parse. nlohmann's callback
  // parser would do both in one pass but rescans the parent object at every entry, quadratic in the tensor
  // count.
  try {
    HeaderScan scan{path};
    json::sax_parse(text, text + header_len, &scan);
    header = json::parse(text, text + header_len);
  } catch (const json::exception& e) {
    throw_error("safetensors file '", path, "': header is not valid UTF-8 JSON: ", e.what());
  }
  ARK_CHECK(header.is_object(), "safetensors file '", path, "': header must be a JSON object, got ",
            json_kind(header));

  const uint64_t data_size = file_size - 8 - header_len;
  entries.reserve(header.size());
  for (const auto& [name, value] : header.items()) {
    if (name == "__metadata__") {
      parse_metadata(value);
      continue;
    }
    entries.push_back(parse_entry(name, value, data_size));
  }

  // Overlap check: walk the non-empty ranges in file order. Empty tensors own no bytes and cannot overlap.
  std::vector<const SafetensorsEntry*> by_offset;
  for (const SafetensorsEntry& e : entries)
    if (e.end > e.begin) by_offset.push_back(&e);
  std::sort(by_offset.begin(), by_offset.end(),
            [](const SafetensorsEntry* a, const SafetensorsEntry* b) { return a->begin < b->begin; });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    const SafetensorsEntry& prev = *by_offset[i - 1];
    const SafetensorsEntry& cur = *by_offset[i];
    ARK_CHECK(cur.begin >= prev.end, "safetensors file '", path, "': tensor '", cur.name, "' (bytes [",
              cur.begin, ", ", cur.end, ")) overlaps tensor '", prev.name, "' (bytes [", prev.begin, ", ",
              prev.end, "))");
  }
  // nlohmann objects iterate in key order, so `entries` is already sorted by name; keep that guarantee
  // explicit.
  std::sort(entries.begin(), entries.end(),
            [](const SafetensorsEntry& a, const SafetensorsEntry& b) { return a.name < b.name; });
}

void SafetensorsFile::Impl::parse_metadata(const json& j) {
  // The reference library accepts a null table; treat it as empty.
  if (j.is_null()) return;
  ARK_CHECK(j.is_object(), "safetensors file '", path, "': __metadata__ must be an object of strings, got ",
            json_kind(j));
  for (const auto& [key, value] : j.items()) {
    ARK_CHECK(value.is_string(), "safetensors file '", path, "': __metadata__ entry '", key,
              "' must be a string, got ", json_kind(value));
    metadata.emplace(key, value.get<std::string>());
  }
}

SafetensorsEntry SafetensorsFile::Impl::parse_entry(const std::string& name, const json& j,
                                                    uint64_t data_size) const {
  auto fail = [&](auto&&... parts) {
    throw_error("safetensors file '", path, "': tensor '", name,
                "': ", std::forward<decltype(parts)>(parts)...);
  };
  if (!j.is_object()) fail("expected an object with dtype, shape and data_offsets, got ", json_kind(j));
  for (const char* field : {"dtype", "shape", "data_offsets"})
    if (!j.contains(field)) fail("missing field '", field, "'");

  SafetensorsEntry e;
  e.name = name;
  const json& dt = j["dtype"];
  if (!dt.is_string()) fail("dtype must be a string, got ", json_kind(dt));
  const std::string& dt_name = dt.get_ref<const std::string&>();
  if (!parse_dtype(dt_name, &e.view.dtype))
    fail("unknown dtype '", dt_name, "' (expected one of ", all_dtype_names(), ")");

  const json& shape = j["shape"];
  if (!shape.is_array()) fail("shape must be an array of non-negative integers, got ", json_kind(shape));
  // Dims multiply in int64 wherever views are used (shape_numel), so even a zero-size tensor must keep the
  // product of its other dims in range: that product is checked without the zeros.
  uint64_t nonzero_numel = 1;
  bool zero_dim = false;
  bool overflow = false;
  for (size_t i = 0; i < shape.size(); ++i) {
    uint64_t d = 0;
    if (!get_uint(shape[i], static_cast<uint64_t>(INT64_MAX), &d))
      fail("shape[", i, "] = ", shape[i].dump(), " is not a non-negative integer");
    e.view.shape.push_back(static_cast<int64_t>(d));
    if (d == 0)
      zero_dim = true;
    else
      overflow = overflow || __builtin_mul_overflow(nonzero_numel, d, &nonzero_numel);
  }
  uint64_t nbytes = 0;
  overflow = overflow || nonzero_numel > static_cast<uint64_t>(INT64_MAX) ||
             __builtin_mul_overflow(nonzero_numel, static_cast<uint64_t>(dtype_size(e.view.dtype)), &nbytes);
  if (zero_dim) nbytes = 0;
  if (overflow) fail("shape ", shape.dump(), " has more elements than fit in 64 bits");

  const json& offs = j["data_offsets"];
  if (!offs.is_array() || offs.size() != 2)
    fail("data_offsets must be an array [begin, end] of two integers, got ", offs.dump());
  if (!get_uint(offs[0], UINT64_MAX, &e.begin) || !get_uint(offs[1], UINT64_MAX, &e.end))
    fail("data_offsets ", offs.dump(), " must be non-negative integers");
  if (e.end < e.begin) fail("data_offsets [", e.begin, ", ", e.end, "] end before they begin");
  if (e.end > data_size)
    fail("data_offsets [", e.begin, ", ", e.end, "] lie beyond the data section of ", data_size, " bytes");
  if (e.end - e.begin != nbytes)
    fail("shape ", shape.dump(), " of ", dt_name, " needs ", nbytes, " bytes (", dtype_size(e.view.dtype),
         " per element) but data_offsets [", e.begin, ", ", e.end, "] hold ", e.end - e.begin);
  e.view.data = mapping.data() + 8 + header_len + e.begin;
  return e;
}

SafetensorsFile SafetensorsFile::open(const std::string& path) {
  auto impl = std::make_unique<Impl>();
  impl->path = path;
  impl->load();
  return SafetensorsFile(std::move(impl));
}

SafetensorsFile::SafetensorsFile(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SafetensorsFile::SafetensorsFile(SafetensorsFile&&) noexcept = default;
SafetensorsFile& SafetensorsFile::operator=(SafetensorsFile&&) noexcept = default;
SafetensorsFile::~SafetensorsFile() = default;

const std::string& SafetensorsFile::path() const {
  return impl_->path;
}
const SafetensorsMetadata& SafetensorsFile::metadata() const {
  return impl_->metadata;
}
const std::vector<SafetensorsEntry>& SafetensorsFile::entries() const {
  return impl_->entries;
}
size_t SafetensorsFile::size() const {
  return impl_->entries.size();
}
uint64_t SafetensorsFile::file_bytes() const {
  return impl_->mapping.size();
}
uint64_t SafetensorsFile::header_bytes() const {
  return impl_->header_len;
}

std::vector<std::string> SafetensorsFile::names() const {
  std::vector<std::string> out;
  out.reserve(impl_->entries.size());
  for (const SafetensorsEntry& e : impl_->entries) out.push_back(e.name);
  return out;
}

const SafetensorsEntry* SafetensorsFile::find(std::string_view name) const {
  const auto& v = impl_->entries;
  auto it = std::lower_bound(v.begin(), v.end(), name,
                             [](const SafetensorsEntry& e, std::string_view n) { return e.name < n; });
  return (it != v.end() && it->name == name) ? &*it : nullptr;
}

bool SafetensorsFile::has(std::string_view name) const {
  return find(name) != nullptr;
}

TensorView SafetensorsFile::get(std::string_view name) const {
  const SafetensorsEntry* e = find(name);
  ARK_CHECK(e != nullptr, "safetensors file '", impl_->path, "': no tensor named '", name, "'");
  return e->view;
}

}  // namespace ark
