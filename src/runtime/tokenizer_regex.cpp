// PCRE2 behind the tokenizer's Split patterns. UTF + UCP make \s, \w, \d and the POSIX classes Unicode-aware,
// as the Oniguruma engine behind `tokenizers` is; \p{L}/\p{N} classes come from PCRE2's Unicode tables.
// Patterns are JIT-compiled once at load, and the text is checked for valid UTF-8 once per encode (not per
// match: checking on every pcre2_match call would make splitting a long text quadratic).
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "ark/error.h"
#include "runtime/tokenizer_impl.h"

namespace ark::detail {

Regex::Regex(const std::string& pattern, const std::string& what) {
  int error_code = 0;
  PCRE2_SIZE error_offset = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                   PCRE2_UTF | PCRE2_UCP, &error_code, &error_offset, nullptr);
  if (code == nullptr) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error_code, message, sizeof(message));
    throw_error(what, ": regex '", pattern, "' does not compile at offset ", error_offset, ": ",
                reinterpret_cast<const char*>(message));
  }
  // JIT is an optimisation only: without it (unsupported platform) the interpreter gives the same matches.
  pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
  code_ = std::shared_ptr<void>(code, [](void* p) { pcre2_code_free(static_cast<pcre2_code*>(p)); });
}

std::vector<std::pair<size_t, size_t>> Regex::find_all(std::string_view s) const {
  std::vector<std::pair<size_t, size_t>> matches;
  auto* code = static_cast<pcre2_code*>(code_.get());
  pcre2_match_data* data = pcre2_match_data_create_from_pattern(code, nullptr);
  if (data == nullptr) throw_error("tokenizer regex: out of memory");
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(s.data());
  size_t offset = 0;
  while (offset <= s.size()) {
    const int rc = pcre2_match(code, subject, s.size(), offset, PCRE2_NO_UTF_CHECK, data, nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      pcre2_match_data_free(data);
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(rc, message, sizeof(message));
      throw_error("tokenizer regex: match failed: ", reinterpret_cast<const char*>(message));
    }
    const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(data);
    const size_t begin = ovector[0], end = ovector[1];
    matches.emplace_back(begin, end);
    if (end > begin) {
      offset = end;
    } else {
      if (end >= s.size()) break;
      offset = end + utf8_sequence_length(static_cast<unsigned char>(s[end]));
    }
  }
  pcre2_match_data_free(data);
  return matches;
}

std::vector<std::pair<size_t, size_t>> Pattern::find_all(std::string_view s) const {
  if (regex) return regex->find_all(s);
  std::vector<std::pair<size_t, size_t>> matches;
  if (literal.empty()) return matches;
  for (size_t pos = s.find(literal); pos != std::string_view::npos;
       pos = s.find(literal, pos + literal.size())) {
    matches.emplace_back(pos, pos + literal.size());
  }
  return matches;
}

}  // namespace ark::detail
