// Internal pieces of ark::Tokenizer, one per tokenizer.json component kind. Each mirrors the semantics of the
// Hugging Face `tokenizers` component of the same name (what it splits, prepends or strips, and in which
// order), since the contract is identical ids, not merely similar ones. Offsets are not tracked: nothing in
// ark needs them.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace ark::detail {

// ---- UTF-8 and Unicode classes (tokenizer_unicode.cpp)
// --------------------------------------------------------

// Offset of the first byte that is not part of valid UTF-8 (overlong forms, surrogates and code points past
// U+10FFFF are invalid), or npos when all of `s` is valid.
size_t find_invalid_utf8(std::string_view s);
// Decodes the code point at s[i] (s must be valid UTF-8) and advances i past it.
char32_t next_code_point(std::string_view s, size_t& i);
void append_utf8(std::string& out, char32_t cp);
// Length of the UTF-8 sequence a lead byte starts (1 for ASCII and for bytes that cannot lead).
size_t utf8_sequence_length(unsigned char lead);
// Replaces each maximal invalid subsequence with U+FFFD, as Rust's String::from_utf8_lossy does.
std::string utf8_lossy(std::string_view bytes);
// True when `bytes` ends inside a UTF-8 sequence that more bytes could still complete.
bool ends_in_incomplete_utf8(std::string_view bytes);

enum class NormalForm { kNfc, kNfd, kNfkc, kNfkd };
std::string unicode_normalize(std::string_view s, NormalForm form);
// Rust regex's `\w` (Unicode word character) and `\s` (White_Space), used by added-token matching.
bool is_word_char(char32_t cp);
bool is_white_space(char32_t cp);

// ---- Regex (tokenizer_regex.cpp): PCRE2 with UTF and Unicode properties, JIT-compiled
// ---------------------------

class Regex {
 public:
  // `what` names the component in the error raised when the pattern does not compile.
  Regex(const std::string& pattern, const std::string& what);
  // Non-overlapping matches [start, end) left to right. An empty match advances the search by one character,
  // as the Oniguruma iterator used by `tokenizers` does.
  std::vector<std::pair<size_t, size_t>> find_all(std::string_view s) const;

 private:
  std::shared_ptr<void> code_;  // pcre2_code_8, freed with pcre2_code_free_8
};

// A `pattern` field of tokenizer.json: {"String": s} (literal) or {"Regex": r}.
struct Pattern {
  std::string literal;
  std::shared_ptr<Regex> regex;  // null for a literal
  std::vector<std::pair<size_t, size_t>> find_all(std::string_view s) const;
};

// ---- Normalizers (tokenizer_normalizers.cpp)
// ------------------------------------------------------------------

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual void apply(std::string& s) const = 0;
};
std::unique_ptr<Normalizer> make_unicode_normalizer(NormalForm form);
std::unique_ptr<Normalizer> make_prepend_normalizer(std::string prefix);
std::unique_ptr<Normalizer> make_replace_normalizer(Pattern pattern, std::string content);
std::unique_ptr<Normalizer> make_strip_normalizer(bool left, bool right);
std::unique_ptr<Normalizer> make_sequence_normalizer(std::vector<std::unique_ptr<Normalizer>> parts);

// ---- Pre-tokenizers (tokenizer_pre_tokenizers.cpp)
// ------------------------------------------------------------

struct Piece {
  std::string text;
  bool at_input_start = false;  // begins at offset 0 of the encoded text (Metaspace's "first" prepend scheme)
};

enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  virtual void apply(std::vector<Piece>& pieces) const = 0;
};
std::unique_ptr<PreTokenizer> make_split_pre_tokenizer(Pattern pattern, SplitBehavior behavior, bool invert);
std::unique_ptr<PreTokenizer> make_byte_level_pre_tokenizer(bool add_prefix_space, bool use_regex);
enum class PrependScheme { kAlways, kFirst, kNever };
std::unique_ptr<PreTokenizer> make_metaspace_pre_tokenizer(char32_t replacement, PrependScheme scheme,
                                                           bool split);
std::unique_ptr<PreTokenizer> make_digits_pre_tokenizer(bool individual_digits);
std::unique_ptr<PreTokenizer> make_sequence_pre_tokenizer(std::vector<std::unique_ptr<PreTokenizer>> parts);

// GPT-2's byte <-> printable character table, shared by the ByteLevel pre-tokenizer and decoder.
const std::array<char32_t, 256>& byte_to_char();
// The byte a ByteLevel character stands for, or -1.
int char_to_byte(char32_t cp);

// ---- BPE model (tokenizer_bpe.cpp)
// ----------------------------------------------------------------------------

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using Vocab = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

struct BpeOptions {
  std::optional<std::string> unk_token;
  std::string continuing_subword_prefix;
  std::string end_of_word_suffix;
  bool fuse_unk = false;
  bool byte_fallback = false;
  bool ignore_merges = false;
};

class BpeModel {
 public:
  // merges[i] = (left, right) has rank i; a later duplicate pair overrides an earlier one, as in
  // `tokenizers`.
  BpeModel(Vocab vocab, const std::vector<std::pair<std::string, std::string>>& merges, BpeOptions options,
           const std::string& source);
  // Appends the ids of one pre-token.
  void tokenize(std::string_view word, std::vector<int32_t>& out) const;
  const Vocab& vocab() const { return vocab_; }

 private:
  struct MergeValue {
    uint32_t rank;
    int32_t new_id;
  };
  const MergeValue* find_merge(int32_t left, int32_t right) const;
  void merge_word(std::string_view word, std::vector<int32_t>& out) const;

  // Cache of finished pre-tokens (text repeats its words): shared reads, bounded size, filled until full as
  // the `tokenizers` cache is; words of kCacheMaxWordBytes or more are never cached.
  static constexpr size_t kCacheCapacity = 10000;
  static constexpr size_t kCacheMaxWordBytes = 256;
  mutable std::shared_mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::vector<int32_t>, StringHash, std::equal_to<>> cache_;

  Vocab vocab_;
  // Ids of single-character tokens below U+10000 (-1: none), so the per-character start of merge_word needs
  // no string hashing. Only used without continuing-subword prefix or end-of-word suffix.
  std::vector<int32_t> char_ids_;
  // Open addressing keyed by (left << 32 | right): the hot lookup of the merge loop.
  std::vector<uint64_t> merge_keys_;
  std::vector<MergeValue> merge_values_;
  uint64_t merge_mask_ = 0;
  BpeOptions options_;
  std::optional<int32_t> unk_id_;
  std::array<int32_t, 256> byte_ids_{};  // "<0xAB>" tokens for byte fallback, -1 where absent
};

// ---- Added tokens (tokenizer_added_tokens.cpp)
// ----------------------------------------------------------------

struct AddedToken {
  int32_t id = 0;
  std::string content;
  bool single_word = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = true;
  bool special = false;
};

// Finds added tokens in text the way `tokenizers` does: leftmost-longest, non-overlapping, then the
// single_word, lstrip and rstrip rules applied to each match.
class AddedTokenMatcher {
 public:
  // patterns[i] is what to look for (the content, normalized for normalized tokens), tokens[i] its token.
  void add(std::string pattern, const AddedToken* token);
  bool empty() const { return patterns_.empty(); }
  struct Split {
    size_t begin, end;
    int32_t id;  // -1: plain text
  };
  std::vector<Split> split(std::string_view text) const;

 private:
  std::vector<std::pair<std::string, const AddedToken*>> patterns_;
  std::array<std::vector<uint32_t>, 256> by_first_byte_;  // indices into patterns_, longest first
};

// ---- Decoders (tokenizer_decoders.cpp)
// ------------------------------------------------------------------------

class Decoder {
 public:
  virtual ~Decoder() = default;
  virtual void apply(std::vector<std::string>& tokens) const = 0;
};
std::unique_ptr<Decoder> make_byte_level_decoder();
std::unique_ptr<Decoder> make_metaspace_decoder(char32_t replacement, PrependScheme scheme);
std::unique_ptr<Decoder> make_replace_decoder(Pattern pattern, std::string content);
std::unique_ptr<Decoder> make_byte_fallback_decoder();
std::unique_ptr<Decoder> make_fuse_decoder();
std::unique_ptr<Decoder> make_strip_decoder(std::string content, size_t start, size_t stop);
std::unique_ptr<Decoder> make_sequence_decoder(std::vector<std::unique_ptr<Decoder>> parts);
// The byte a "<0xAB>" token stands for, or -1.
int byte_fallback_value(std::string_view token);

// ---- The whole tokenizer (tokenizer.cpp, tokenizer_json.cpp)
// --------------------------------------------------

struct TokenizerImpl {
  std::string source;
  std::unique_ptr<Normalizer> normalizer;
  std::unique_ptr<PreTokenizer> pre_tokenizer;
  std::unique_ptr<BpeModel> model;
  std::unique_ptr<Decoder> decoder;
  bool decoder_is_byte_level = false;      // tokens are ByteLevel characters (for streaming's byte view)
  bool decoder_has_byte_fallback = false;  // "<0xAB>" tokens are bytes (for streaming's byte view)

  std::vector<AddedToken> added_tokens;
  AddedTokenMatcher raw_matcher;         // added tokens with normalized=false, matched on the input
  AddedTokenMatcher normalized_matcher;  // normalized=true, matched on normalized text

  std::vector<std::string>
      id_to_token;  // model vocabulary overridden by added tokens, as `tokenizers` resolves ids
  std::vector<uint8_t> id_is_special;
  Vocab added_by_content;

  std::vector<int32_t> template_prefix, template_suffix;
  std::optional<int32_t> bos_id, eos_id;

  std::optional<int32_t> lookup(std::string_view token) const;
  void encode(std::string_view text, bool add_special_tokens, std::vector<int32_t>& out) const;
  std::string decode(const int32_t* ids, size_t n, bool skip_special_tokens) const;
  // The bytes ids stand for before UTF-8 repair: what streaming uses to find character boundaries.
  std::string raw_bytes(const int32_t* ids, size_t n, bool skip_special_tokens) const;
};

// Builds the tokenizer from the text of tokenizer.json and tokenizer_config.json (may be empty).
std::shared_ptr<TokenizerImpl> parse_tokenizer(std::string_view tokenizer_json, std::string_view config_json,
                                               const std::string& source);

}  // namespace ark::detail
