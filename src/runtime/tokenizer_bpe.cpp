// The BPE model of tokenizer.json. A pre-token starts as one symbol per character (or byte-fallback bytes, or
// <unk>), then the adjacent pair with the lowest merge rank is merged repeatedly, leftmost first on ties. A
// binary heap of candidate merges over a linked list of symbols makes that O(n log n): a 100 KB run of one
// character (a single pre-token under Llama-2's sentencepiece-style setup, which has no pre-splitting) costs
// milliseconds, where rescanning all pairs after each merge would cost O(n^2).
//
// Stale heap entries are recognised exactly as `tokenizers` does it (the pair now at that position must still
// produce the same new id), so that even merge tables where two pairs yield the same token behave
// identically.
#include <algorithm>
#include <mutex>
#include <queue>

#include "ark/error.h"
#include "runtime/tokenizer_impl.h"

namespace ark::detail {

namespace {

uint64_t pair_key(int32_t left, int32_t right) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}

size_t slot_of(uint64_t key, uint64_t mask) {
  // Fibonacci hashing spreads the structured (id, id) keys over the table.
  return static_cast<size_t>((key * 0x9e3779b97f4a7c15ull) >> 17) & mask;
}

constexpr uint64_t kEmptyKey = ~0ull;  // never a real key: ids are below 2^31

}  // namespace

BpeModel::BpeModel(Vocab vocab, const std::vector<std::pair<std::string, std::string>>& merges,
                   BpeOptions options, const std::string& source)
    : vocab_(std::move(vocab)), options_(std::move(options)) {
  size_t capacity = 16;
  while (capacity < merges.size() * 2) capacity *= 2;
  merge_keys_.assign(capacity, kEmptyKey);
  merge_values_.resize(capacity);
  merge_mask_ = capacity - 1;
  const size_t prefix_len = options_.continuing_subword_prefix.size();
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const auto& [left, right] = merges[rank];
    const auto l = vocab_.find(left), r = vocab_.find(right);
    ARK_CHECK(l != vocab_.end(), source, ": merge ", rank, " ('", left, "' '", right, "'): token '", left,
              "' is not in the vocabulary");
    ARK_CHECK(r != vocab_.end(), source, ": merge ", rank, " ('", left, "' '", right, "'): token '", right,
              "' is not in the vocabulary");
    // With a continuing-subword prefix, the right part's prefix is dropped in the merged token ("a" + "##b" =
    // "ab").
    std::string merged = left;
    merged += prefix_len > 0 && right.compare(0, prefix_len, options_.continuing_subword_prefix) == 0
                  ? right.substr(prefix_len)
                  : right;
    const auto m = vocab_.find(merged);
    ARK_CHECK(m != vocab_.end(), source, ": merge ", rank, " ('", left, "' '", right, "'): merged token '",
              merged, "' is not in the vocabulary");
    const uint64_t key = pair_key(l->second, r->second);
    size_t slot = slot_of(key, merge_mask_);
    while (merge_keys_[slot] != kEmptyKey && merge_keys_[slot] != key) slot = (slot + 1) & merge_mask_;
    merge_keys_[slot] = key;
    merge_values_[slot] = {static_cast<uint32_t>(rank), m->second};
  }
  if (options_.unk_token) {
    const auto u = vocab_.find(*options_.unk_token);
    ARK_CHECK(u != vocab_.end(), source, ": model.unk_token '", *options_.unk_token,
              "' is not in the vocabulary");
    unk_id_ = u->second;
  }
  if (options_.continuing_subword_prefix.empty() && options_.end_of_word_suffix.empty()) {
    char_ids_.assign(0x10000, -1);
    for (const auto& [token, id] : vocab_) {
      size_t i = 0;
      if (token.empty() || find_invalid_utf8(token) != std::string::npos) continue;
      const char32_t cp = next_code_point(token, i);
      if (i == token.size() && cp < 0x10000) char_ids_[cp] = id;
    }
  }
  byte_ids_.fill(-1);
  if (options_.byte_fallback) {
    static const char* kHex = "0123456789ABCDEF";
    for (int b = 0; b < 256; ++b) {
      const std::string name = std::string("<0x") + kHex[b >> 4] + kHex[b & 15] + ">";
      const auto it = vocab_.find(name);
      if (it != vocab_.end()) byte_ids_[b] = it->second;
    }
  }
}

const BpeModel::MergeValue* BpeModel::find_merge(int32_t left, int32_t right) const {
  const uint64_t key = pair_key(left, right);
  for (size_t slot = slot_of(key, merge_mask_);; slot = (slot + 1) & merge_mask_) {
    if (merge_keys_[slot] == key) return &merge_values_[slot];
    if (merge_keys_[slot] == kEmptyKey) return nullptr;
  }
}

void BpeModel::tokenize(std::string_view word, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  if (options_.ignore_merges) {
    // Llama-3 style: a pre-token that is itself in the vocabulary is taken whole, whatever the merges say.
    const auto it = vocab_.find(word);
    if (it != vocab_.end()) {
      out.push_back(it->second);
      return;
    }
  }
  if (word.size() >= kCacheMaxWordBytes) {
    merge_word(word, out);
    return;
  }
  {
    std::shared_lock lock(cache_mutex_);
    if (const auto it = cache_.find(word); it != cache_.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  const size_t mark = out.size();
  merge_word(word, out);
  std::unique_lock lock(cache_mutex_);
  if (cache_.size() < kCacheCapacity)
    cache_.emplace(std::string(word), std::vector<int32_t>(out.begin() + mark, out.end()));
}

void BpeModel::merge_word(std::string_view word, std::vector<int32_t>& out) const {
  struct Symbol {
    int32_t id;
    int32_t prev, next;  // -1 at the ends
    bool alive;
  };
  std::vector<Symbol> symbols;
  symbols.reserve(word.size());
  auto add = [&symbols](int32_t id) {
    const int32_t n = static_cast<int32_t>(symbols.size());
    if (n > 0) symbols.back().next = n;
    symbols.push_back({id, n - 1, -1, true});
  };

  // One symbol per character; unknown characters become byte tokens or (fused) <unk>, as `tokenizers` does.
  int32_t pending_unk = -1;  // an <unk> not yet added, waiting to be fused with the next
  std::string scratch;
  size_t i = 0;
  while (i < word.size()) {
    const size_t begin = i;
    i += utf8_sequence_length(static_cast<unsigned char>(word[i]));
    std::string_view ch = word.substr(begin, i - begin);
    if (!char_ids_.empty()) {
      size_t j = begin;
      const char32_t cp = next_code_point(word, j);
      if (cp < 0x10000 && char_ids_[cp] >= 0) {
        if (pending_unk >= 0) {
          add(pending_unk);
          pending_unk = -1;
        }
        add(char_ids_[cp]);
        continue;
      }
    }
    const bool first = begin == 0, last = i >= word.size();
    if ((!first && !options_.continuing_subword_prefix.empty()) ||
        (last && !options_.end_of_word_suffix.empty())) {
      scratch.clear();
      if (!first) scratch += options_.continuing_subword_prefix;
      scratch += ch;
      if (last) scratch += options_.end_of_word_suffix;
      ch = scratch;
    }
    const auto it = vocab_.find(ch);
    if (it != vocab_.end()) {
      if (pending_unk >= 0) {
        add(pending_unk);
        pending_unk = -1;
      }
      add(it->second);
      continue;
    }
    if (options_.byte_fallback) {
      const bool all_bytes = std::all_of(
          ch.begin(), ch.end(), [this](char c) { return byte_ids_[static_cast<unsigned char>(c)] >= 0; });
      if (all_bytes) {
        // Byte tokens are added without flushing a pending <unk>, exactly as `tokenizers` orders them.
        for (char c : ch) add(byte_ids_[static_cast<unsigned char>(c)]);
        continue;
      }
    }
    if (unk_id_) {
      if (pending_unk >= 0 && !options_.fuse_unk) add(pending_unk);
      pending_unk = *unk_id_;
    }
  }
  if (pending_unk >= 0) add(pending_unk);

  struct Candidate {
    uint32_t rank;
    int32_t pos;
    int32_t new_id;
    bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::vector<Candidate> storage;
  storage.reserve(symbols.size());
  for (size_t p = 0; p + 1 < symbols.size(); ++p) {
    if (const MergeValue* m = find_merge(symbols[p].id, symbols[p + 1].id)) {
      storage.push_back({m->rank, static_cast<int32_t>(p), m->new_id});
    }
  }
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> queue(std::greater<>{},
                                                                               std::move(storage));
  while (!queue.empty()) {
    const Candidate top = queue.top();
    queue.pop();
    Symbol& left = symbols[top.pos];
    if (!left.alive || left.next < 0) continue;
    Symbol& right = symbols[left.next];
    const MergeValue* current = find_merge(left.id, right.id);
    if (current == nullptr || current->new_id != top.new_id) continue;  // stale entry

    left.id = top.new_id;
    right.alive = false;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = top.pos;
    if (left.prev >= 0) {
      if (const MergeValue* m = find_merge(symbols[left.prev].id, left.id))
        queue.push({m->rank, left.prev, m->new_id});
    }
    if (left.next >= 0) {
      if (const MergeValue* m = find_merge(left.id, symbols[left.next].id))
        queue.push({m->rank, top.pos, m->new_id});
    }
  }
  for (const Symbol& s : symbols) {
    if (s.alive) out.push_back(s.id);
  }
}

}  // namespace ark::detail
