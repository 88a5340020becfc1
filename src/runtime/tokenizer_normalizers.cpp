// tokenizer.json normalizers: NFC/NFD/NFKC/NFKD, Prepend, Replace, Strip and Sequence. They run on each
// stretch of text between added tokens separately (not on the whole input), which is why Llama-2's
// Prepend("▁") puts a "▁" after every special token written in the text.
#include "runtime/tokenizer_impl.h"

namespace ark::detail {

namespace {

class UnicodeNormalizer final : public Normalizer {
 public:
  explicit UnicodeNormalizer(NormalForm form) : form_(form) {}
  void apply(std::string& s) const override { s = unicode_normalize(s, form_); }

 private:
  NormalForm form_;
};

class PrependNormalizer final : public Normalizer {
 public:
  explicit PrependNormalizer(std::string prefix) : prefix_(std::move(prefix)) {}
  // An empty stretch stays empty: `tokenizers` prepends only to non-empty text.
  void apply(std::string& s) const override {
    if (!s.empty()) s.insert(0, prefix_);
  }

 private:
  std::string prefix_;
};

class ReplaceNormalizer final : public Normalizer {
 public:
  ReplaceNormalizer(Pattern pattern, std::string content)
      : pattern_(std::move(pattern)), content_(std::move(content)) {}
  void apply(std::string& s) const override {
    const auto matches = pattern_.find_all(s);
    if (matches.empty()) return;
    std::string out;
    out.reserve(s.size() + matches.size() * content_.size());
    size_t prev = 0;
    for (const auto& [begin, end] : matches) {
      if (begin == end) continue;
      out.append(s, prev, begin - prev);
      out += content_;
      prev = end;
    }
    out.append(s, prev, std::string::npos);
    s = std::move(out);
  }

 private:
  Pattern pattern_;
  std::string content_;
};

class StripNormalizer final : public Normalizer {
 public:
  StripNormalizer(bool left, bool right) : left_(left), right_(right) {}
  void apply(std::string& s) const override {
    size_t begin = 0, end = s.size();
    if (left_) {
      size_t i = 0;
      while (i < s.size()) {
        size_t j = i;
        if (!is_white_space(next_code_point(s, j))) break;
        i = j;
      }
      begin = i;
    }
    if (right_) {
      // Walk forward remembering where the trailing run of white space starts.
      size_t i = begin, run = std::string::npos;
      while (i < s.size()) {
        const size_t at = i;
        const bool space = is_white_space(next_code_point(s, i));
        if (space && run == std::string::npos) run = at;
        if (!space) run = std::string::npos;
      }
      if (run != std::string::npos) end = run;
    }
    s = s.substr(begin, end - begin);
  }

 private:
  bool left_, right_;
};

class SequenceNormalizer final : public Normalizer {
 public:
  explicit SequenceNormalizer(std::vector<std::unique_ptr<Normalizer>> parts) : parts_(std::move(parts)) {}
  void apply(std::string& s) const override {
    for (const auto& part : parts_) part->apply(s);
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> parts_;
};

}  // namespace

std::unique_ptr<Normalizer> make_unicode_normalizer(NormalForm form) {
  return std::make_unique<UnicodeNormalizer>(form);
}
std::unique_ptr<Normalizer> make_prepend_normalizer(std::string prefix) {
  return std::make_unique<PrependNormalizer>(std::move(prefix));
}
std::unique_ptr<Normalizer> make_replace_normalizer(Pattern pattern, std::string content) {
  return std::make_unique<ReplaceNormalizer>(std::move(pattern), std::move(content));
}
std::unique_ptr<Normalizer> make_strip_normalizer(bool left, bool right) {
  return std::make_unique<StripNormalizer>(left, right);
}
std::unique_ptr<Normalizer> make_sequence_normalizer(std::vector<std::unique_ptr<Normalizer>> parts) {
  return std::make_unique<SequenceNormalizer>(std::move(parts));
}

}  // namespace ark::detail
