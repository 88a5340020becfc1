// The paged KV cache (ark/model.h). A block holds block_size positions of every layer, laid out
// [layer][k|v][kv_head][position in block][head_dim], so one head's keys for a block are contiguous and the
// attention loop streams them.
//
// Blocks live in AlignedBytes, i.e. on transparent huge pages (a block of Qwen2.5-0.5B is 384 KiB, from the
// shared huge-page arena): a decode step reads every layer's keys and values from DRAM again (the weights it
// streams flush the caches) in one piece per (block, layer, KV head), 4 KiB at the defaults, and on 4 KiB
// pages each piece was a page of its own, with its own table walk.
#include <algorithm>

#include "ark/error.h"
#include "ark/model.h"
#include "common/aligned_bytes.h"

namespace ark {

struct KvCache::BlockStorage {
  std::vector<AlignedBytes> blocks;
};

KvCache::KvCache(const ModelConfig& config, int64_t max_len, int64_t block_size)
    : layers_(config.num_layers),
      kv_heads_(config.num_kv_heads),
      head_dim_(config.head_dim),
      max_len_(max_len),
      block_size_(block_size),
      storage_(std::make_unique<BlockStorage>()) {
  ARK_CHECK(block_size >= 1 && block_size <= 4096, "--block-size ", block_size, " must be in [1, 4096]");
  ARK_CHECK(max_len >= 1, "--max-model-len ", max_len, " must be positive");
  block_floats_ = static_cast<size_t>(layers_ * 2 * kv_heads_ * block_size_ * head_dim_);
}

KvCache::~KvCache() = default;
KvCache::KvCache(KvCache&&) noexcept = default;
KvCache& KvCache::operator=(KvCache&&) noexcept = default;

void KvCache::truncate(int64_t n) {
  ARK_CHECK(n >= 0 && n <= size_, "KvCache::truncate: ", n, " is outside [0, ", size_, "]");
  size_ = n;
}

void KvCache::reserve(int64_t n) {
  ARK_CHECK(size_ + n <= max_len_, "sequence of ", size_ + n, " tokens (", size_, " in the cache + ", n,
            " new) exceeds --max-model-len ", max_len_);
  const int64_t need = (size_ + n + block_size_ - 1) / block_size_;
  while (blocks_allocated() < need) storage_->blocks.emplace_back(block_floats_ * sizeof(float));
}

int64_t KvCache::blocks_allocated() const {
  return storage_ ? static_cast<int64_t>(storage_->blocks.size()) : 0;  // 0 once moved from
}

float* KvCache::block(int64_t pos) const {
  return reinterpret_cast<float*>(storage_->blocks[static_cast<size_t>(pos / block_size_)].data());
}

size_t KvCache::offset(int64_t layer, int kv, int64_t kv_head, int64_t pos) const {
  const int64_t slot = pos % block_size_;
  return static_cast<size_t>((((layer * 2 + kv) * kv_heads_ + kv_head) * block_size_ + slot) * head_dim_);
}

float* KvCache::key(int64_t layer, int64_t kv_head, int64_t pos) {
  return block(pos) + offset(layer, 0, kv_head, pos);
}
float* KvCache::value(int64_t layer, int64_t kv_head, int64_t pos) {
  return block(pos) + offset(layer, 1, kv_head, pos);
}
const float* KvCache::key(int64_t layer, int64_t kv_head, int64_t pos) const {
  return block(pos) + offset(layer, 0, kv_head, pos);
}
const float* KvCache::value(int64_t layer, int64_t kv_head, int64_t pos) const {
  return block(pos) + offset(layer, 1, kv_head, pos);
}

}  // namespace ark
