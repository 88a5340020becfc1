// Added and special tokens are cut out of the text before normalization and BPE. Matching is leftmost-longest
// and non-overlapping (the Aho-Corasick mode `tokenizers` uses); a match refused by single_word still
// consumes its span, and lstrip/rstrip widen an accepted match over neighbouring white space (never over an
// earlier match). Candidates are bucketed by first byte, longest first: special tokens nearly all start with
// '<', so plain text costs one table probe per byte.
#include <algorithm>

#include "runtime/tokenizer_impl.h"

namespace ark::detail {

namespace {

char32_t last_code_point(std::string_view s) {
  size_t i = s.size();
  while (i > 0 && (static_cast<unsigned char>(s[i - 1]) & 0xc0) == 0x80) --i;
  if (i > 0) --i;
  return next_code_point(s, i);
}

// Start of the run of white space that ends s.
size_t white_space_run_start(std::string_view s) {
  size_t end = s.size();
  while (end > 0) {
    size_t begin = end - 1;
    while (begin > 0 && (static_cast<unsigned char>(s[begin]) & 0xc0) == 0x80) --begin;
    size_t j = begin;
    if (!is_white_space(next_code_point(s, j))) break;
    end = begin;
  }
  return end;
}

// Length of the run of white space that starts s.
size_t white_space_run_length(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    size_t j = i;
    if (!is_white_space(next_code_point(s, j))) break;
    i = j;
  }
  return i;
}

}  // namespace

void AddedTokenMatcher::add(std::string pattern, const AddedToken* token) {
  if (pattern.empty()) return;
  const auto index = static_cast<uint32_t>(patterns_.size());
  auto& bucket = by_first_byte_[static_cast<unsigned char>(pattern[0])];
  patterns_.emplace_back(std::move(pattern), token);
  bucket.push_back(index);
  std::stable_sort(bucket.begin(), bucket.end(), [this](uint32_t a, uint32_t b) {
    return patterns_[a].first.size() > patterns_[b].first.size();
  });
}

std::vector<AddedTokenMatcher::Split> AddedTokenMatcher::split(std::string_view text) const {
  std::vector<Split> splits;
  size_t start_offset = 0;  // end of the previous accepted match
  size_t pos = 0;
  while (pos < text.size()) {
    const uint32_t* found = nullptr;
    for (const uint32_t& index : by_first_byte_[static_cast<unsigned char>(text[pos])]) {
      if (text.compare(pos, patterns_[index].first.size(), patterns_[index].first) == 0) {
        found = &index;
        break;
      }
    }
    if (found == nullptr) {
      ++pos;
      continue;
    }
    const auto& [pattern, token] = patterns_[*found];
    size_t start = pos, stop = pos + pattern.size();
    pos = stop;  // the search resumes after the match itself, not after stripped white space
    if (token->single_word) {
      const bool start_space = start == 0 || !is_word_char(last_code_point(text.substr(0, start)));
      size_t j = stop;
      const bool stop_space = stop == text.size() || !is_word_char(next_code_point(text, j));
      if (!start_space || !stop_space) continue;
    }
    if (token->lstrip) start = std::max(white_space_run_start(text.substr(0, start)), start_offset);
    if (token->rstrip) stop += white_space_run_length(text.substr(stop));
    start = std::min(start, stop);  // an earlier rstrip may have swallowed this match's start
    if (start_offset < start) splits.push_back({start_offset, start, -1});
    splits.push_back({start, stop, token->id});
    start_offset = stop;
  }
  if (start_offset != text.size()) splits.push_back({start_offset, text.size(), -1});
  return splits;
}

}  // namespace ark::detail
