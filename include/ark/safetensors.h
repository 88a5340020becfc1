// safetensors files: a validating reader over a read-only memory mapping (zero-copy tensor views), a writer,
// and a checkpoint store that finds the tensors of a model directory whether it holds one file, a
// `model.safetensors.index.json` with shards, or several loose `*.safetensors` files.
//
// The format: 8 bytes little-endian header length N, N bytes of a UTF-8 JSON object, then the data section.
// Each JSON entry maps a tensor name to {"dtype", "shape", "data_offsets": [begin, end)} with offsets
// relative to the data section; the optional "__metadata__" entry maps strings to strings.
//
// Views are row-major and contiguous. They point into the mapping, so their alignment is whatever the file
// gives: files whose header length is a multiple of 8 (all that our writer and the reference library produce)
// keep each tensor aligned to its element size when the writer sorted them by element size, as both do.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "ark/tensor.h"

namespace ark {

// The "__metadata__" table of a file (string to string, as the format requires).
using SafetensorsMetadata = std::map<std::string, std::string>;

// Largest header accepted; the reference implementation uses the same bound, and no real checkpoint comes
// close.
inline constexpr uint64_t kSafetensorsMaxHeaderBytes = 100'000'000;

// One tensor as the header describes it. `view.data` points into the file mapping.
struct SafetensorsEntry {
  std::string name;
  TensorView view;
  uint64_t begin = 0;  // byte range [begin, end) inside the data section
  uint64_t end = 0;
};

// A validated, memory-mapped safetensors file. Move-only; views taken from it stay valid while it (or the
// object it was moved into) lives. Opening checks everything the format requires and throws ark::Error naming
// the file, the tensor and what was expected: header length, JSON syntax and UTF-8, entry fields, dtype
// names, dims, shape x dtype size against the byte range, ranges inside the data section, no overlaps, no
// duplicate names, string-only metadata.
class SafetensorsFile {
 public:
  static SafetensorsFile open(const std::string& path);

  SafetensorsFile(SafetensorsFile&&) noexcept;
  SafetensorsFile& operator=(SafetensorsFile&&) noexcept;
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;
  ~SafetensorsFile();

  const std::string& path() const;
  const SafetensorsMetadata& metadata() const;
  // Entries sorted by name.
  const std::vector<SafetensorsEntry>& entries() const;
  std::vector<std::string> names() const;  // sorted
  size_t size() const;                     // number of tensors
  bool has(std::string_view name) const;
  // Throws ark::Error naming the file and the tensor when it is absent.
  TensorView get(std::string_view name) const;
  // nullptr when absent.
  const SafetensorsEntry* find(std::string_view name) const;
  uint64_t file_bytes() const;
  uint64_t header_bytes() const;  // N, the JSON header length including its padding

 private:
  struct Impl;
  explicit SafetensorsFile(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// A tensor to write: its name and bytes (not owned; must stay valid during the call).
struct NamedTensor {
  std::string name;
  TensorView view;
};

// Writes the tensors and metadata as one safetensors file. The header is padded with spaces to a multiple of
// 8 and tensors are laid out by decreasing element size, then by name, so the output is deterministic and
// every tensor is aligned to its element size (the same layout the reference Python library writes). Throws
// ark::Error for an empty or duplicate name, a name "__metadata__", negative dims, a null data pointer with a
// non-zero size, or an I/O failure. The file is written to a temporary name beside `path` and renamed, so a
// failed write never leaves a truncated file under `path`.
void write_safetensors(const std::string& path, const std::vector<NamedTensor>& tensors,
                       const SafetensorsMetadata& metadata = {});
// The same for owning tensors; also checks each tensor's byte count against its shape and dtype.
void write_safetensors(const std::string& path, const std::map<std::string, Tensor>& tensors,
                       const SafetensorsMetadata& metadata = {});

// The tensors of a checkpoint: a single safetensors file, or a directory holding
// `model.safetensors.index.json` (weight_map: tensor name -> shard file), or `model.safetensors`, or any
// number of `*.safetensors` files (tensor names must then be unique across them). A path to an index file
// itself is accepted too. Each shard is opened and validated once, at open; a shard named by the index that
// is missing, or that lacks a tensor the index maps to it, is an error naming the index, the shard and the
// tensor. Move-only, like SafetensorsFile.
class SafetensorsStore {
 public:
  static SafetensorsStore open(const std::string& path);

  SafetensorsStore(SafetensorsStore&&) noexcept;
  SafetensorsStore& operator=(SafetensorsStore&&) noexcept;
  SafetensorsStore(const SafetensorsStore&) = delete;
  SafetensorsStore& operator=(const SafetensorsStore&) = delete;
  ~SafetensorsStore();

  const std::string& path() const;  // as given to open()
  bool has(std::string_view name) const;
  // Throws ark::Error naming the tensor and the checkpoint path when it is absent.
  TensorView get(std::string_view name) const;
  std::vector<std::string> names() const;  // sorted
  size_t size() const;
  // The shard holding `name`; throws like get().
  const SafetensorsFile& shard_of(std::string_view name) const;
  size_t num_shards() const;
  const SafetensorsFile& shard(size_t i) const;  // in file-name order

 private:
  struct Impl;
  explicit SafetensorsStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace ark
