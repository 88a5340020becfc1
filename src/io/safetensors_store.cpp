// A checkpoint's tensors across shards: decide which files make up the checkpoint, open each once, and map
// every tensor name to the shard that holds it.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <system_error>

#include "ark/error.h"
#include "ark/safetensors.h"

namespace ark {

namespace fs = std::filesystem;

namespace {

constexpr const char* kIndexName = "model.safetensors.index.json";
constexpr const char* kSingleName = "model.safetensors";

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Files in `dir` whose names end with `suffix`, sorted so the shard order is stable.
std::vector<fs::path> files_ending_with(const fs::path& dir, std::string_view suffix) {
  std::vector<fs::path> out;
  std::error_code ec;
  for (const fs::directory_entry& e : fs::directory_iterator(dir, ec)) {
    if (e.is_regular_file(ec) && ends_with(e.path().filename().string(), suffix)) out.push_back(e.path());
  }
  if (ec) throw_error("checkpoint '", dir.string(), "': cannot list the directory: ", ec.message());
  std::sort(out.begin(), out.end());
  return out;
}

// An index names shards relative to its own directory; anything that could point elsewhere is refused.
bool is_plain_shard_name(const std::string& name) {
  if (name.empty()) return false;
  const fs::path p(name);
  if (p.is_absolute()) return false;
  for (const fs::path& part : p)
    if (part == "..") return false;
  return true;
}

}  // namespace

struct SafetensorsStore::Impl {
  std::string path;
  std::vector<SafetensorsFile> shards;                     // in file-name order
  std::map<std::string, size_t, std::less<>> shard_index;  // tensor name -> position in `shards`

  void open_index(const fs::path& index_path);
  void open_files(const std::vector<fs::path>& files);
  const SafetensorsEntry& entry(std::string_view name) const;
};

void SafetensorsStore::Impl::open_index(const fs::path& index_path) {
  const std::string index = index_path.string();
  std::ifstream in(index_path, std::ios::binary);
  ARK_CHECK(in, "checkpoint index '", index, "': cannot open");
  std::ostringstream text;
  text << in.rdbuf();
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text.str());
  } catch (const nlohmann::json::exception& e) {
    throw_error("checkpoint index '", index, "': not valid JSON: ", e.what());
  }
  ARK_CHECK(j.is_object() && j.contains("weight_map") && j["weight_map"].is_object(), "checkpoint index '",
            index, "': expected a JSON object with a \"weight_map\" object (tensor name -> shard file)");

  // Each distinct shard is opened once, however many tensors it holds.
  const fs::path dir = index_path.parent_path();
  std::map<std::string, size_t> shard_of_file;
  for (const auto& [name, shard] : j["weight_map"].items()) {
    ARK_CHECK(shard.is_string(), "checkpoint index '", index, "': weight_map entry '", name,
              "' must be a shard file name (a string), got ", shard.type_name());
    const std::string& file = shard.get_ref<const std::string&>();
    ARK_CHECK(is_plain_shard_name(file), "checkpoint index '", index, "': weight_map entry '", name,
              "' names shard '", file, "', expected a file name relative to the index's directory");
    shard_of_file.emplace(file, 0);
  }
  for (auto& [file, pos] : shard_of_file) {
    const fs::path shard_path = dir / file;
    std::error_code ec;
    ARK_CHECK(fs::is_regular_file(shard_path, ec), "checkpoint index '", index, "': shard '", file,
              "' is missing (expected ", shard_path.string(), ")");
    pos = shards.size();
    shards.push_back(SafetensorsFile::open(shard_path.string()));
  }
  for (const auto& [name, shard] : j["weight_map"].items()) {
    const std::string& file = shard.get_ref<const std::string&>();
    const size_t pos = shard_of_file.at(file);
    ARK_CHECK(shards[pos].has(name), "checkpoint index '", index, "': tensor '", name,
              "' is mapped to shard '", file, "', which does not contain it");
    shard_index.emplace(name, pos);
  }
}

void SafetensorsStore::Impl::open_files(const std::vector<fs::path>& files) {
  for (const fs::path& f : files) {
    shards.push_back(SafetensorsFile::open(f.string()));
    const size_t pos = shards.size() - 1;
    for (const SafetensorsEntry& e : shards[pos].entries()) {
      auto [it, inserted] = shard_index.emplace(e.name, pos);
      ARK_CHECK(inserted, "checkpoint '", path, "': tensor '", e.name, "' is in both '",
                shards[it->second].path(), "' and '", f.string(), "'");
    }
  }
}

const SafetensorsEntry& SafetensorsStore::Impl::entry(std::string_view name) const {
  auto it = shard_index.find(name);
  ARK_CHECK(it != shard_index.end(), "checkpoint '", path, "': no tensor named '", name, "'");
  return *shards[it->second].find(name);
}

SafetensorsStore SafetensorsStore::open(const std::string& path) {
  auto impl = std::make_unique<Impl>();
  impl->path = path;
  std::error_code ec;
  const fs::path p(path);
  const fs::file_status st = fs::status(p, ec);
  ARK_CHECK(fs::exists(st), "checkpoint '", path, "': no such file or directory");

  if (fs::is_regular_file(st)) {
    if (ends_with(p.filename().string(), ".json"))
      impl->open_index(p);
    else
      impl->open_files({p});
  } else if (fs::is_directory(st)) {
    const std::vector<fs::path> indexes = files_ending_with(p, ".safetensors.index.json");
    if (fs::is_regular_file(p / kIndexName, ec)) {
      impl->open_index(p / kIndexName);
    } else if (indexes.size() == 1) {
      impl->open_index(indexes[0]);
    } else if (indexes.size() > 1) {
      throw_error("checkpoint '", path, "': ", indexes.size(), " *.safetensors.index.json files and no ",
                  kIndexName, "; expected one index");
    } else if (fs::is_regular_file(p / kSingleName, ec)) {
      impl->open_files({p / kSingleName});
    } else {
      const std::vector<fs::path> files = files_ending_with(p, ".safetensors");
      ARK_CHECK(!files.empty(), "checkpoint '", path, "': no ", kIndexName, ", ", kSingleName,
                " or other *.safetensors file in the directory");
      impl->open_files(files);
    }
  } else {
    throw_error("checkpoint '", path, "': expected a directory or a safetensors file");
  }
  return SafetensorsStore(std::move(impl));
}

SafetensorsStore::SafetensorsStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SafetensorsStore::SafetensorsStore(SafetensorsStore&&) noexcept = default;
SafetensorsStore& SafetensorsStore::operator=(SafetensorsStore&&) noexcept = default;
SafetensorsStore::~SafetensorsStore() = default;

const std::string& SafetensorsStore::path() const {
  return impl_->path;
}
bool SafetensorsStore::has(std::string_view name) const {
  return impl_->shard_index.count(name) != 0;
}
TensorView SafetensorsStore::get(std::string_view name) const {
  return impl_->entry(name).view;
}
size_t SafetensorsStore::size() const {
  return impl_->shard_index.size();
}
size_t SafetensorsStore::num_shards() const {
  return impl_->shards.size();
}

const SafetensorsFile& SafetensorsStore::shard(size_t i) const {
  ARK_CHECK(i < impl_->shards.size(), "checkpoint '", impl_->path, "': shard ", i, " requested, but it has ",
            impl_->shards.size());
  return impl_->shards[i];
}

const SafetensorsFile& SafetensorsStore::shard_of(std::string_view name) const {
  auto it = impl_->shard_index.find(name);
  ARK_CHECK(it != impl_->shard_index.end(), "checkpoint '", impl_->path, "': no tensor named '", name, "'");
  return impl_->shards[it->second];
}

std::vector<std::string> SafetensorsStore::names() const {
  std::vector<std::string> out;
  out.reserve(impl_->shard_index.size());
  for (const auto& [name, pos] : impl_->shard_index) out.push_back(name);
  return out;
}

}  // namespace ark
