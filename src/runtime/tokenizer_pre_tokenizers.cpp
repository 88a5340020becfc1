// tokenizer.json pre-tokenizers: Split, ByteLevel, Metaspace, Digits and Sequence. Split follows the five
// delimiter behaviours of `tokenizers` exactly (including how inverted patterns and empty pieces are
// treated), because the pieces decide where BPE may merge and so every id downstream.
#include <algorithm>

#include "ark/error.h"
#include "runtime/tokenizer_impl.h"

namespace ark::detail {

namespace {

struct Span {
  size_t begin, end;
  bool is_match;
};

// Splits one piece at the pattern's matches: the pieces that remain after `behavior`, empty ones dropped.
void split_piece(const Piece& piece, const Pattern& pattern, SplitBehavior behavior, bool invert,
                 std::vector<Piece>& out) {
  const std::string& s = piece.text;
  std::vector<Span> spans;
  if (s.empty()) {
    spans.push_back({0, 0, false});
  } else {
    size_t prev = 0;
    for (const auto& [begin, end] : pattern.find_all(s)) {
      if (prev != begin) spans.push_back({prev, begin, false});
      spans.push_back({begin, end, true});
      prev = end;
    }
    if (prev != s.size()) spans.push_back({prev, s.size(), false});
  }
  if (invert) {
    for (Span& span : spans) span.is_match = !span.is_match;
  }

  // After this step, is_match means "drop this span".
  std::vector<Span> kept;
  switch (behavior) {
    case SplitBehavior::kRemoved:
      kept = std::move(spans);
      break;
    case SplitBehavior::kIsolated:
      for (Span span : spans) kept.push_back({span.begin, span.end, false});
      break;
    case SplitBehavior::kContiguous: {
      bool previous_match = false;
      for (const Span& span : spans) {
        if (span.is_match == previous_match && !kept.empty()) {
          kept.back().end = span.end;
        } else {
          kept.push_back({span.begin, span.end, false});
        }
        previous_match = span.is_match;
      }
      break;
    }
    case SplitBehavior::kMergedWithPrevious: {
      bool previous_match = false;
      for (const Span& span : spans) {
        if (span.is_match && !previous_match && !kept.empty()) {
          kept.back().end = span.end;
        } else {
          kept.push_back({span.begin, span.end, false});
        }
        previous_match = span.is_match;
      }
      break;
    }
    case SplitBehavior::kMergedWithNext: {
      bool previous_match = false;
      for (size_t i = spans.size(); i-- > 0;) {
        const Span& span = spans[i];
        if (span.is_match && !previous_match && !kept.empty()) {
          kept.back().begin = span.begin;
        } else {
          kept.push_back({span.begin, span.end, false});
        }
        previous_match = span.is_match;
      }
      std::reverse(kept.begin(), kept.end());
      break;
    }
  }
  for (const Span& span : kept) {
    if (span.is_match || span.begin == span.end) continue;
    out.push_back({s.substr(span.begin, span.end - span.begin), piece.at_input_start && span.begin == 0});
  }
}

class SplitPreTokenizer final : public PreTokenizer {
 public:
  SplitPreTokenizer(Pattern pattern, SplitBehavior behavior, bool invert)
      : pattern_(std::move(pattern)), behavior_(behavior), invert_(invert) {}
  void apply(std::vector<Piece>& pieces) const override {
    std::vector<Piece> out;
    out.reserve(pieces.size() * 4);
    for (const Piece& piece : pieces) split_piece(piece, pattern_, behavior_, invert_, out);
    pieces = std::move(out);
  }

 private:
  Pattern pattern_;
  SplitBehavior behavior_;
  bool invert_;
};

// GPT-2's pre-split regex, which ByteLevel applies when use_regex is set.
constexpr const char* kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

class ByteLevelPreTokenizer final : public PreTokenizer {
 public:
  ByteLevelPreTokenizer(bool add_prefix_space, bool use_regex) : add_prefix_space_(add_prefix_space) {
    if (use_regex) regex_.regex = std::make_shared<Regex>(kGpt2Pattern, "ByteLevel pre-tokenizer");
  }
  void apply(std::vector<Piece>& pieces) const override {
    std::vector<Piece> split;
    split.reserve(pieces.size());
    for (Piece& piece : pieces) {
      if (add_prefix_space_ && (piece.text.empty() || piece.text[0] != ' '))
        piece.text.insert(piece.text.begin(), ' ');
      if (regex_.regex) {
        split_piece(piece, regex_, SplitBehavior::kIsolated, false, split);
      } else {
        split.push_back(std::move(piece));
      }
    }
    const auto& table = byte_to_char();
    for (Piece& piece : split) {
      std::string mapped;
      mapped.reserve(piece.text.size() * 2);
      for (char c : piece.text) append_utf8(mapped, table[static_cast<unsigned char>(c)]);
      piece.text = std::move(mapped);
    }
    pieces = std::move(split);
  }

 private:
  bool add_prefix_space_;
  Pattern regex_;
};

class MetaspacePreTokenizer final : public PreTokenizer {
 public:
  MetaspacePreTokenizer(char32_t replacement, PrependScheme scheme, bool split)
      : scheme_(scheme), split_(split) {
    append_utf8(replacement_, replacement);
    pattern_.literal = replacement_;
  }
  void apply(std::vector<Piece>& pieces) const override {
    std::vector<Piece> out;
    for (Piece& piece : pieces) {
      std::string& s = piece.text;
      std::string replaced;
      for (char c : s) {
        if (c == ' ') {
          replaced += replacement_;
        } else {
          replaced += c;
        }
      }
      s = std::move(replaced);
      const bool starts = s.compare(0, replacement_.size(), replacement_) == 0;
      if (!starts &&
          (scheme_ == PrependScheme::kAlways || (scheme_ == PrependScheme::kFirst && piece.at_input_start))) {
        s.insert(0, replacement_);
      }
      if (split_) {
        split_piece(piece, pattern_, SplitBehavior::kMergedWithNext, false, out);
      } else {
        out.push_back(std::move(piece));
      }
    }
    pieces = std::move(out);
  }

 private:
  std::string replacement_;
  Pattern pattern_;
  PrependScheme scheme_;
  bool split_;
};

class SequencePreTokenizer final : public PreTokenizer {
 public:
  explicit SequencePreTokenizer(std::vector<std::unique_ptr<PreTokenizer>> parts)
      : parts_(std::move(parts)) {}
  void apply(std::vector<Piece>& pieces) const override {
    for (const auto& part : parts_) part->apply(pieces);
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> parts_;
};

}  // namespace

const std::array<char32_t, 256>& byte_to_char() {
  // Printable Latin-1 bytes stand for themselves; the others (controls, space, 0x7f-0xa0, 0xad) take the code
  // points from U+0100 upwards in byte order, so every byte has a visible, non-space character.
  static const std::array<char32_t, 256> table = [] {
    std::array<char32_t, 256> t{};
    char32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
      t[b] = printable ? static_cast<char32_t>(b) : next++;
    }
    return t;
  }();
  return table;
}

int char_to_byte(char32_t cp) {
  static const std::array<int16_t, 324> inverse = [] {
    std::array<int16_t, 324> t;
    t.fill(-1);
    const auto& forward = byte_to_char();
    for (int b = 0; b < 256; ++b) t[forward[b]] = static_cast<int16_t>(b);
    return t;
  }();
  return cp < inverse.size() ? inverse[cp] : -1;
}

std::unique_ptr<PreTokenizer> make_split_pre_tokenizer(Pattern pattern, SplitBehavior behavior, bool invert) {
  return std::make_unique<SplitPreTokenizer>(std::move(pattern), behavior, invert);
}
std::unique_ptr<PreTokenizer> make_byte_level_pre_tokenizer(bool add_prefix_space, bool use_regex) {
  return std::make_unique<ByteLevelPreTokenizer>(add_prefix_space, use_regex);
}
std::unique_ptr<PreTokenizer> make_metaspace_pre_tokenizer(char32_t replacement, PrependScheme scheme,
                                                           bool split) {
  return std::make_unique<MetaspacePreTokenizer>(replacement, scheme, split);
}
std::unique_ptr<PreTokenizer> make_digits_pre_tokenizer(bool individual_digits) {
  Pattern digit;
  digit.regex = std::make_shared<Regex>(R"(\p{N})", "Digits pre-tokenizer");
  return std::make_unique<SplitPreTokenizer>(
      std::move(digit), individual_digits ? SplitBehavior::kIsolated : SplitBehavior::kContiguous, false);
}
std::unique_ptr<PreTokenizer> make_sequence_pre_tokenizer(std::vector<std::unique_ptr<PreTokenizer>> parts) {
  return std::make_unique<SequencePreTokenizer>(std::move(parts));
}

}  // namespace ark::detail
