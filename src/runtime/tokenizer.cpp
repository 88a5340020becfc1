// The encode and decode pipelines of ark::Tokenizer, in the order `tokenizers` runs them:
//   added tokens with normalized=false cut from the raw text → each remaining stretch normalized → added
//   tokens with normalized=true cut from it → pre-tokenizer on each stretch → BPE on each piece →
//   post-processor template.
#include "ark/tokenizer.h"

#include "ark/error.h"
#include "runtime/tokenizer_impl.h"

namespace ark {

namespace detail {

std::optional<int32_t> TokenizerImpl::lookup(std::string_view token) const {
  if (const auto it = added_by_content.find(token); it != added_by_content.end()) return it->second;
  if (const auto it = model->vocab().find(token); it != model->vocab().end()) return it->second;
  return std::nullopt;
}

void TokenizerImpl::encode(std::string_view text, bool add_special_tokens, std::vector<int32_t>& out) const {
  const size_t bad = find_invalid_utf8(text);
  ARK_CHECK(bad == std::string_view::npos, "Tokenizer::encode: text is not valid UTF-8 (byte offset ", bad,
            ")");
  if (add_special_tokens) out.insert(out.end(), template_prefix.begin(), template_prefix.end());

  std::vector<Piece> pieces;
  auto encode_stretch = [&](std::string_view raw, bool at_input_start) {
    std::string normalized(raw);
    if (normalizer) normalizer->apply(normalized);
    const auto splits = normalized_matcher.empty()
                            ? std::vector<AddedTokenMatcher::Split>{{0, normalized.size(), -1}}
                            : normalized_matcher.split(normalized);
    for (const auto& split : splits) {
      if (split.id >= 0) {
        out.push_back(split.id);
        continue;
      }
      if (split.begin == split.end) continue;
      pieces.clear();
      pieces.push_back(
          {normalized.substr(split.begin, split.end - split.begin), at_input_start && split.begin == 0});
      if (pre_tokenizer) pre_tokenizer->apply(pieces);
      for (const Piece& piece : pieces) model->tokenize(piece.text, out);
    }
  };

  if (raw_matcher.empty()) {
    if (!text.empty()) encode_stretch(text, true);
  } else {
    for (const auto& split : raw_matcher.split(text)) {
      if (split.id >= 0) {
        out.push_back(split.id);
      } else if (split.end > split.begin) {
        encode_stretch(text.substr(split.begin, split.end - split.begin), split.begin == 0);
      }
    }
  }
  if (add_special_tokens) out.insert(out.end(), template_suffix.begin(), template_suffix.end());
}

std::string TokenizerImpl::decode(const int32_t* ids, size_t n, bool skip_special_tokens) const {
  std::vector<std::string> tokens;
  tokens.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    const int32_t id = ids[i];
    ARK_CHECK(id >= 0, "Tokenizer::decode: id ", id, " at position ", i, " is negative");
    // Models pad their embedding past the tokenizer (Qwen: 151936 rows, 151669 tokens) and can sample a padding
    // id; the tokenizers library decodes such an id to nothing, and so does this.
    if (static_cast<size_t>(id) >= id_to_token.size()) continue;
    if (skip_special_tokens && id_is_special[id]) continue;
    tokens.push_back(id_to_token[id]);
  }
  if (!decoder) {
    std::string joined;
    for (size_t i = 0; i < tokens.size(); ++i) joined += (i ? " " : "") + tokens[i];
    return joined;
  }
  decoder->apply(tokens);
  std::string text;
  for (const std::string& token : tokens) text += token;
  return text;
}

std::string TokenizerImpl::raw_bytes(const int32_t* ids, size_t n, bool skip_special_tokens) const {
  std::string bytes;
  for (size_t i = 0; i < n; ++i) {
    const int32_t id = ids[i];
    if (id < 0 || static_cast<size_t>(id) >= id_to_token.size()) continue;  // decode() reports it
    if (skip_special_tokens && id_is_special[id]) continue;
    const std::string& token = id_to_token[id];
    if (decoder_has_byte_fallback) {
      if (const int b = byte_fallback_value(token); b >= 0) {
        bytes += static_cast<char>(b);
        continue;
      }
    }
    if (decoder_is_byte_level) {
      const size_t mark = bytes.size();
      bool mapped = true;
      for (size_t j = 0; j < token.size() && mapped;) {
        const int b = char_to_byte(next_code_point(token, j));
        mapped = b >= 0;
        if (mapped) bytes += static_cast<char>(b);
      }
      if (mapped) continue;
      bytes.resize(mark);
    }
    bytes += token;
  }
  return bytes;
}

}  // namespace detail

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special_tokens) const {
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 4);
  impl_->encode(text, add_special_tokens, ids);
  return ids;
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skip_special_tokens) const {
  return impl_->decode(ids.data(), ids.size(), skip_special_tokens);
}

int32_t Tokenizer::vocab_size() const {
  return static_cast<int32_t>(impl_->id_to_token.size());
}

std::optional<int32_t> Tokenizer::token_to_id(std::string_view token) const {
  return impl_->lookup(token);
}

std::string Tokenizer::id_to_token(int32_t id) const {
  if (id < 0 || id >= vocab_size()) return {};
  return impl_->id_to_token[id];
}

bool Tokenizer::is_special(int32_t id) const {
  return id >= 0 && id < vocab_size() && impl_->id_is_special[id];
}

std::optional<int32_t> Tokenizer::bos_id() const {
  return impl_->bos_id;
}
std::optional<int32_t> Tokenizer::eos_id() const {
  return impl_->eos_id;
}
const std::vector<int32_t>& Tokenizer::template_prefix() const {
  return impl_->template_prefix;
}
const std::vector<int32_t>& Tokenizer::template_suffix() const {
  return impl_->template_suffix;
}

}  // namespace ark
