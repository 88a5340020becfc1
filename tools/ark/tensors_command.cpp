// `ark tensors PATH`: list every tensor of a safetensors file or checkpoint directory with a checksum of its
// bytes, so two tools (or two versions of a file) can be compared tensor by tensor; `--rewrite OUT` sends the
// tensors back out through ark's writer, which lets other safetensors implementations check what ark writes.
#include <algorithm>
#include <cstdint>
#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "ark/error.h"
#include "ark/safetensors.h"
#include "commands.h"

namespace ark::tools {

namespace {

// FNV-1a, 64-bit: simple enough for any script to recompute, and sensitive to every byte and its position.
uint64_t fnv1a64(const std::byte* data, size_t n) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < n; ++i) {
    h ^= static_cast<uint64_t>(data[i]);
    h *= 0x100000001b3ull;
  }
  return h;
}

std::string hex64(uint64_t v) {
  std::ostringstream s;
  s << std::hex << std::setw(16) << std::setfill('0') << v;
  return s.str();
}

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// One table for the whole checkpoint; the same key with different values in two shards has no single answer.
SafetensorsMetadata merged_metadata(const SafetensorsStore& store) {
  SafetensorsMetadata out;
  for (size_t i = 0; i < store.num_shards(); ++i) {
    for (const auto& [k, v] : store.shard(i).metadata()) {
      auto [it, inserted] = out.emplace(k, v);
      ARK_CHECK(inserted || it->second == v, "checkpoint '", store.path(), "': metadata key '", k,
                "' differs between shards ('", it->second, "' vs '", v, "' in ", store.shard(i).path(), ")");
    }
  }
  return out;
}

struct TensorsOptions {
  std::string path;
  std::string rewrite;
  bool json = false;
};

void print_text(const SafetensorsStore& store) {
  uint64_t total = 0;
  for (const std::string& name : store.names()) total += store.get(name).nbytes();
  std::cout << "checkpoint: " << store.path() << "\n";
  std::cout << "shards: " << store.num_shards() << ", tensors: " << store.size() << ", data bytes: " << total
            << "\n";
  for (size_t i = 0; i < store.num_shards(); ++i) {
    const SafetensorsFile& f = store.shard(i);
    std::cout << "shard " << f.path() << ": " << f.size() << " tensors, " << f.file_bytes() << " bytes\n";
    for (const auto& [k, v] : f.metadata()) std::cout << "  metadata " << k << " = " << v << "\n";
  }
  size_t name_w = 4, shape_w = 5;
  for (const std::string& name : store.names()) {
    name_w = std::max(name_w, name.size());
    shape_w = std::max(shape_w, shape_text(store.get(name).shape).size());
  }
  std::cout << std::left << std::setw(static_cast<int>(name_w)) << "name"
            << "  " << std::setw(7) << "dtype"
            << "  " << std::setw(static_cast<int>(shape_w)) << "shape"
            << "  fnv1a64\n";
  for (const std::string& name : store.names()) {
    const TensorView v = store.get(name);
    std::cout << std::setw(static_cast<int>(name_w)) << name << "  " << std::setw(7) << dtype_name(v.dtype)
              << "  " << std::setw(static_cast<int>(shape_w)) << shape_text(v.shape) << "  "
              << hex64(fnv1a64(v.data, v.nbytes())) << "\n";
  }
}

void print_json(const SafetensorsStore& store) {
  nlohmann::ordered_json out;
  out["path"] = store.path();
  out["shards"] = nlohmann::ordered_json::array();
  for (size_t i = 0; i < store.num_shards(); ++i) {
    const SafetensorsFile& f = store.shard(i);
    out["shards"].push_back({{"path", f.path()}, {"tensors", f.size()}, {"metadata", f.metadata()}});
  }
  out["tensors"] = nlohmann::ordered_json::array();
  for (const std::string& name : store.names()) {
    const TensorView v = store.get(name);
    out["tensors"].push_back({{"name", name},
                              {"dtype", std::string(dtype_name(v.dtype))},
                              {"shape", v.shape},
                              {"bytes", v.nbytes()},
                              {"fnv1a64", hex64(fnv1a64(v.data, v.nbytes()))}});
  }
  std::cout << out.dump(1) << "\n";
}

void run_tensors(const TensorsOptions& opt) {
  const SafetensorsStore store = SafetensorsStore::open(opt.path);
  if (opt.json)
    print_json(store);
  else
    print_text(store);
  if (!opt.rewrite.empty()) {
    std::vector<NamedTensor> tensors;
    for (const std::string& name : store.names()) tensors.push_back({name, store.get(name)});
    write_safetensors(opt.rewrite, tensors, merged_metadata(store));
    if (!opt.json) std::cout << "rewrote " << tensors.size() << " tensors to " << opt.rewrite << "\n";
  }
}

}  // namespace

void add_tensors_command(CLI::App& app) {
  auto opt = std::make_shared<TensorsOptions>();
  CLI::App* cmd = app.add_subcommand("tensors",
                                     "List the tensors of a safetensors file or checkpoint directory: name, "
                                     "dtype, shape, FNV-1a 64 checksum");
  cmd->add_option("path", opt->path, "safetensors file, index JSON, or checkpoint directory")->required();
  cmd->add_option("--rewrite", opt->rewrite,
                  "also write every tensor and the metadata to this file with ark's writer");
  cmd->add_flag("--json", opt->json, "print JSON instead of a table");
  cmd->callback([opt] { run_tensors(*opt); });
}

}  // namespace ark::tools
