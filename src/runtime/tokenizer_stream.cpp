// Streaming decode. Each put() decodes a small window: the ids emitted last (context, so decoders that treat
// the first token specially, like Strip or Metaspace, see the same neighbours as a full decode) followed by
// the ids not yet emitted. Nothing is emitted while the window's bytes end inside a UTF-8 sequence; the
// boundary test works on the raw bytes the tokens stand for, not on U+FFFD in decoded text, so text that
// really contains U+FFFD streams without delay.
#include "ark/tokenizer.h"

#include "runtime/tokenizer_impl.h"

namespace ark {

StreamDecoder::StreamDecoder(const Tokenizer& tokenizer, bool skip_special_tokens)
    : tokenizer_(tokenizer), skip_special_(skip_special_tokens) {}

std::string StreamDecoder::put(int32_t id) {
  const detail::TokenizerImpl& impl = *tokenizer_.impl_;
  window_.push_back(id);
  // decode() validates the id; do it first so a bad id leaves the decoder unchanged.
  std::string text;
  try {
    text = impl.decode(window_.data(), window_.size(), skip_special_);
  } catch (...) {
    window_.pop_back();
    throw;
  }
  const std::string pending =
      impl.raw_bytes(window_.data() + context_count_, window_.size() - context_count_, skip_special_);
  if (detail::ends_in_incomplete_utf8(pending)) return {};
  std::string out;
  if (text.compare(0, context_text_.size(), context_text_) == 0) {
    out = text.substr(context_text_.size());
  } else {
    // The new ids changed how the context decodes (a byte run that became invalid): what was emitted stays,
    // and the rest of the text after the common part follows.
    size_t common = 0;
    while (common < text.size() && common < context_text_.size() && text[common] == context_text_[common])
      ++common;
    while (common > 0 && common < text.size() && (static_cast<unsigned char>(text[common]) & 0xc0) == 0x80)
      --common;
    out = text.substr(common);
  }
  // The emitted ids become the context, unless all of them are skipped special tokens: a context that decodes
  // to nothing would make the next token look like the first one (whose leading space Strip removes).
  bool visible = false;
  for (size_t i = context_count_; i < window_.size(); ++i)
    visible = visible || !skip_special_ || !impl.id_is_special[window_[i]];
  if (visible) window_.erase(window_.begin(), window_.begin() + static_cast<std::ptrdiff_t>(context_count_));
  context_count_ = window_.size();
  context_text_ = impl.decode(window_.data(), window_.size(), skip_special_);
  return out;
}

std::string StreamDecoder::flush() {
  const detail::TokenizerImpl& impl = *tokenizer_.impl_;
  std::string out;
  if (context_count_ < window_.size()) {
    const std::string text = impl.decode(window_.data(), window_.size(), skip_special_);
    out =
        text.compare(0, context_text_.size(), context_text_) == 0 ? text.substr(context_text_.size()) : text;
  }
  window_.clear();
  context_count_ = 0;
  context_text_.clear();
  return out;
}

}  // namespace ark
