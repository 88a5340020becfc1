// Writing safetensors: lay the tensors out deterministically, emit the header padded to 8 bytes, stream the
// bytes.
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "ark/error.h"
#include "ark/safetensors.h"

namespace ark {

namespace {

// Closes the temporary file and removes it unless the write completed, so errors leave nothing behind.
class TempFile {
 public:
  explicit TempFile(std::string path) : path_(std::move(path)) {
    f_ = std::fopen(path_.c_str(), "wb");
    if (f_ == nullptr) throw_error("cannot create '", path_, "': ", std::strerror(errno));
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  ~TempFile() {
    if (f_ != nullptr) std::fclose(f_);
    if (!committed_) std::remove(path_.c_str());
  }
  void write(const void* data, size_t n, const std::string& what) {
    if (n == 0) return;
    if (std::fwrite(data, 1, n, f_) != n)
      throw_error("cannot write ", what, " to '", path_, "': ", std::strerror(errno));
  }
  void commit(const std::string& final_path) {
    const int rc = std::fclose(f_);
    f_ = nullptr;
    if (rc != 0) throw_error("cannot write '", path_, "': ", std::strerror(errno));
    if (std::rename(path_.c_str(), final_path.c_str()) != 0)
      throw_error("cannot rename '", path_, "' to '", final_path, "': ", std::strerror(errno));
    committed_ = true;
  }

 private:
  std::string path_;
  std::FILE* f_ = nullptr;
  bool committed_ = false;
};

// Position of a dtype in the data section: by decreasing element size, ties in the reference library's order.
int layout_rank(DType t) {
  switch (t) {
    case DType::I64:
      return 0;
    case DType::F64:
      return 1;
    case DType::F32:
      return 2;
    case DType::I32:
      return 3;
    case DType::BF16:
      return 4;
    case DType::F16:
      return 5;
    case DType::I16:
      return 6;
    case DType::F8_E4M3:
      return 7;
    case DType::F8_E5M2:
      return 8;
    case DType::I8:
      return 9;
    case DType::U8:
      return 10;
    case DType::Bool:
      return 11;
  }
  return 12;
}

}  // namespace

void write_safetensors(const std::string& path, const std::vector<NamedTensor>& tensors,
                       const SafetensorsMetadata& metadata) {
  // Validate before touching the disk.
  std::set<std::string_view> names;
  for (const NamedTensor& t : tensors) {
    ARK_CHECK(!t.name.empty(), "write_safetensors '", path, "': a tensor has an empty name");
    ARK_CHECK(t.name != "__metadata__", "write_safetensors '", path,
              "': '__metadata__' is reserved and cannot name a tensor");
    ARK_CHECK(names.insert(t.name).second, "write_safetensors '", path, "': tensor '", t.name,
              "' is given more than once");
    for (size_t i = 0; i < t.view.shape.size(); ++i)
      ARK_CHECK(t.view.shape[i] >= 0, "write_safetensors '", path, "': tensor '", t.name, "': shape[", i,
                "] = ", t.view.shape[i], " is negative");
    ARK_CHECK(t.view.data != nullptr || t.view.nbytes() == 0, "write_safetensors '", path, "': tensor '",
              t.name, "' has ", t.view.nbytes(), " bytes but no data");
  }

  // Larger elements first keeps every tensor aligned to its element size (the data section starts 8-aligned);
  // within one size, dtypes follow the rank the reference library uses, then names, so the same tensors
  // always give the same file, byte for byte the one the reference library writes.
  std::vector<const NamedTensor*> order;
  order.reserve(tensors.size());
  for (const NamedTensor& t : tensors) order.push_back(&t);
  std::sort(order.begin(), order.end(), [](const NamedTensor* a, const NamedTensor* b) {
    const int ra = layout_rank(a->view.dtype), rb = layout_rank(b->view.dtype);
    return ra != rb ? ra < rb : a->name < b->name;
  });

  // ordered_json keeps __metadata__ first and the entries in data order, which reads naturally.
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    nlohmann::ordered_json meta = nlohmann::ordered_json::object();
    for (const auto& [k, v] : metadata) meta[k] = v;
    header["__metadata__"] = std::move(meta);
  }
  uint64_t offset = 0;
  for (const NamedTensor* t : order) {
    const uint64_t n = t->view.nbytes();
    header[t->name] = {{"dtype", std::string(dtype_name(t->view.dtype))},
                       {"shape", t->view.shape},
                       {"data_offsets", {offset, offset + n}}};
    offset += n;
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::json::exception& e) {  // e.g. a name or metadata value that is not valid UTF-8
    throw_error("write_safetensors '", path, "': cannot encode the header as JSON: ", e.what());
  }
  text.append((8 - text.size() % 8) % 8, ' ');
  const uint64_t header_len = text.size();

  TempFile out(path + ".tmp." + std::to_string(::getpid()));
  out.write(&header_len, 8, "the header length");  // little-endian: the only byte order ark builds for
  out.write(text.data(), text.size(), "the header");
  for (const NamedTensor* t : order) out.write(t->view.data, t->view.nbytes(), "tensor '" + t->name + "'");
  out.commit(path);
}

void write_safetensors(const std::string& path, const std::map<std::string, Tensor>& tensors,
                       const SafetensorsMetadata& metadata) {
  std::vector<NamedTensor> views;
  views.reserve(tensors.size());
  for (const auto& [name, t] : tensors) {
    for (size_t i = 0; i < t.shape.size(); ++i)
      ARK_CHECK(t.shape[i] >= 0, "write_safetensors '", path, "': tensor '", name, "': shape[", i,
                "] = ", t.shape[i], " is negative");
    const size_t expected = static_cast<size_t>(t.numel()) * dtype_size(t.dtype);
    ARK_CHECK(t.bytes.size() == expected, "write_safetensors '", path, "': tensor '", name, "' holds ",
              t.bytes.size(), " bytes but shape and dtype ", dtype_name(t.dtype), " need ", expected);
    views.push_back({name, t.view()});
  }
  write_safetensors(path, views, metadata);
}

}  // namespace ark
