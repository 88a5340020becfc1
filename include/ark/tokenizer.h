// The Hugging Face tokenizer (tokenizer.json) in C++: byte-level BPE (Qwen, Llama-3, GPT-2 style) and the
// sentencepiece-style BPE with byte fallback (Llama-2 style). encode() produces exactly the ids of the
// `tokenizers` library for the components it supports; any other component is refused at load time with an
// ark::Error that names its type, so a tokenizer never silently produces different ids.
//
// A Tokenizer is immutable after loading and cheap to copy (shared state); encode/decode may run
// concurrently.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace ark {

namespace detail {
struct TokenizerImpl;
}

class Tokenizer {
 public:
  // `path` is a checkpoint directory (reads tokenizer.json and, when present, tokenizer_config.json) or the
  // path of a tokenizer.json file (its directory's tokenizer_config.json is read too, when present).
  static Tokenizer load(const std::string& path);

  // From the text of tokenizer.json and (optionally, may be empty) tokenizer_config.json. `source` names the
  // input in error messages.
  static Tokenizer from_json(std::string_view tokenizer_json, std::string_view config_json = {},
                             const std::string& source = "tokenizer.json");

  // Text (UTF-8; invalid UTF-8 is an ark::Error naming the byte offset) to ids. Added and special tokens
  // written in the text are always recognised; add_special_tokens applies the post-processor's template (e.g.
  // Llama-2's <s>).
  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens = true) const;

  // Ids to text. An id outside the vocabulary is an ark::Error. Invalid UTF-8 produced by byte tokens becomes
  // U+FFFD, as the `tokenizers` library does.
  std::string decode(std::span<const int32_t> ids, bool skip_special_tokens = false) const;

  // Total number of ids (model vocabulary plus added tokens beyond it): ids are in [0, vocab_size()).
  int32_t vocab_size() const;
  std::optional<int32_t> token_to_id(std::string_view token) const;
  // The token's string as stored in tokenizer.json (e.g. "Ġthe" or "<0x0A>"); empty for an unknown id.
  std::string id_to_token(int32_t id) const;
  // Whether the id is an added token marked special (what decode(skip_special_tokens=true) drops).
  bool is_special(int32_t id) const;

  // BOS/EOS as the checkpoint declares them: tokenizer_config.json's bos_token/eos_token first, else the
  // special tokens the post-processor's template puts before/after the text.
  std::optional<int32_t> bos_id() const;
  std::optional<int32_t> eos_id() const;
  // The ids encode(text, true) puts before and after the text (empty when the post-processor adds none).
  const std::vector<int32_t>& template_prefix() const;
  const std::vector<int32_t>& template_suffix() const;

 private:
  explicit Tokenizer(std::shared_ptr<const detail::TokenizerImpl> impl) : impl_(std::move(impl)) {}
  friend class StreamDecoder;
  std::shared_ptr<const detail::TokenizerImpl> impl_;
};

// Decodes ids one at a time as a model generates them and returns only text that is final: nothing is emitted
// while the bytes seen so far end inside a UTF-8 sequence, so a multi-byte character split across tokens
// comes out whole. The concatenation of all put() results and flush() equals decode(all ids) (except when a
// later byte token turns an already complete character into invalid UTF-8: the emitted character then stays).
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tokenizer, bool skip_special_tokens = false);
  std::string put(int32_t id);
  // Emits whatever is pending (an incomplete sequence becomes U+FFFD) and resets the decoder.
  std::string flush();

 private:
  Tokenizer tokenizer_;
  bool skip_special_;
  std::vector<int32_t> window_;  // already emitted context, then pending ids
  size_t context_count_ = 0;
  std::string context_text_;  // decode(window_[0, context_count_))
};

}  // namespace ark
