// UTF-8 validation, decoding and repair, Unicode normalization (utf8proc) and the two character classes that
// added-token matching needs. The repair follows the "maximal subpart" rule of Rust's
// String::from_utf8_lossy, because `tokenizers` decodes with it and ark must produce the same U+FFFD count.
#include <utf8proc.h>

#include <cstdlib>
#include <string_view>

#include "ark/error.h"
#include "runtime/tokenizer_impl.h"

namespace ark::detail {

namespace {

// For a lead byte: total sequence length and the allowed range of the second byte (the first byte alone
// decides overlongs, surrogates and the U+10FFFF limit). Length 0 means the byte cannot start a sequence.
struct LeadInfo {
  int length;
  unsigned char lo, hi;
};

LeadInfo lead_info(unsigned char b) {
  if (b < 0x80) return {1, 0, 0};
  if (b >= 0xc2 && b <= 0xdf) return {2, 0x80, 0xbf};
  if (b == 0xe0) return {3, 0xa0, 0xbf};
  if (b == 0xed) return {3, 0x80, 0x9f};
  if (b >= 0xe1 && b <= 0xef) return {3, 0x80, 0xbf};
  if (b == 0xf0) return {4, 0x90, 0xbf};
  if (b >= 0xf1 && b <= 0xf3) return {4, 0x80, 0xbf};
  if (b == 0xf4) return {4, 0x80, 0x8f};
  return {0, 0, 0};
}

// Number of bytes from s[i] that form a valid (possibly truncated) prefix of one sequence, and whether the
// sequence is complete.
size_t valid_prefix(std::string_view s, size_t i, bool* complete) {
  const LeadInfo info = lead_info(static_cast<unsigned char>(s[i]));
  if (info.length == 0) {
    *complete = false;
    return 0;
  }
  if (info.length == 1) {
    *complete = true;
    return 1;
  }
  size_t k = 1;
  for (; k < static_cast<size_t>(info.length) && i + k < s.size(); ++k) {
    const unsigned char c = static_cast<unsigned char>(s[i + k]);
    const unsigned char lo = k == 1 ? info.lo : 0x80, hi = k == 1 ? info.hi : 0xbf;
    if (c < lo || c > hi) break;
  }
  *complete = k == static_cast<size_t>(info.length);
  return k;
}

}  // namespace

size_t find_invalid_utf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    if (static_cast<unsigned char>(s[i]) < 0x80) {
      ++i;
      continue;
    }
    bool complete;
    const size_t n = valid_prefix(s, i, &complete);
    if (!complete) return i;
    i += n;
  }
  return std::string_view::npos;
}

char32_t next_code_point(std::string_view s, size_t& i) {
  const unsigned char b = static_cast<unsigned char>(s[i]);
  if (b < 0x80) {
    ++i;
    return b;
  }
  const size_t n = utf8_sequence_length(b);
  char32_t cp = b & (0x7f >> n);
  for (size_t k = 1; k < n; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3f);
  i += n;
  return cp;
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xc0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xe0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else {
    out += static_cast<char>(0xf0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  }
}

size_t utf8_sequence_length(unsigned char lead) {
  if (lead >= 0xf0 && lead <= 0xf7) return 4;
  if (lead >= 0xe0 && lead <= 0xef) return 3;
  if (lead >= 0xc0 && lead <= 0xdf) return 2;
  return 1;
}

std::string utf8_lossy(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  size_t i = 0;
  while (i < bytes.size()) {
    if (static_cast<unsigned char>(bytes[i]) < 0x80) {
      out += bytes[i++];
      continue;
    }
    bool complete;
    const size_t n = valid_prefix(bytes, i, &complete);
    if (complete) {
      out.append(bytes.substr(i, n));
      i += n;
    } else {
      out += "\xef\xbf\xbd";
      i += n == 0 ? 1 : n;
    }
  }
  return out;
}

bool ends_in_incomplete_utf8(std::string_view bytes) {
  for (size_t k = 1; k <= 3 && k <= bytes.size(); ++k) {
    const size_t i = bytes.size() - k;
    const LeadInfo info = lead_info(static_cast<unsigned char>(bytes[i]));
    if (info.length <= 1) continue;  // a continuation byte (look further back) or ASCII
    bool complete;
    const size_t n = valid_prefix(bytes, i, &complete);
    return !complete && n == k;
  }
  return false;
}

namespace {

std::string utf8proc_normalize(std::string_view s, int options) {
  utf8proc_uint8_t* result = nullptr;
  const utf8proc_ssize_t n =
      utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(s.data()),
                   static_cast<utf8proc_ssize_t>(s.size()), &result, static_cast<utf8proc_option_t>(options));
  if (n < 0) throw_error("tokenizer normalizer: utf8proc failed: ", utf8proc_errmsg(n));
  std::string out(reinterpret_cast<const char*>(result), static_cast<size_t>(n));
  std::free(result);
  return out;
}

// U+11A7 (UTF-8 E1 86 A7) is the base just below the Hangul trailing consonants U+11A8..U+11C2, not one of
// them, so an LV syllable followed by it must stay two characters. utf8proc 2.6 (Debian 12's) composes the
// pair into the LV syllable alone and drops U+11A7 (found by the tokenizer parity test: "\uD440\u11A7" gave
// one token where `tokenizers` gives three). U+11A7 is a starter that composes with nothing, so composing
// the text between occurrences on its own gives the same result as composing the whole.
constexpr std::string_view kHangulTBase = "\xe1\x86\xa7";

}  // namespace

std::string unicode_normalize(std::string_view s, NormalForm form) {
  bool ascii = true;
  for (char c : s) ascii = ascii && static_cast<unsigned char>(c) < 0x80;
  if (ascii) return std::string(s);  // every normal form leaves ASCII unchanged
  int options = UTF8PROC_STABLE;
  switch (form) {
    case NormalForm::kNfc:
      options |= UTF8PROC_COMPOSE;
      break;
    case NormalForm::kNfd:
      options |= UTF8PROC_DECOMPOSE;
      break;
    case NormalForm::kNfkc:
      options |= UTF8PROC_COMPOSE | UTF8PROC_COMPAT;
      break;
    case NormalForm::kNfkd:
      options |= UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT;
      break;
  }
  if (!(options & UTF8PROC_COMPOSE) || s.find(kHangulTBase) == std::string_view::npos)
    return utf8proc_normalize(s, options);
  std::string out;
  for (size_t begin = 0;;) {
    const size_t at = s.find(kHangulTBase, begin);
    const std::string_view piece = s.substr(begin, at == std::string_view::npos ? s.npos : at - begin);
    if (!piece.empty()) out += utf8proc_normalize(piece, options);
    if (at == std::string_view::npos) return out;
    out += kHangulTBase;
    begin = at + kHangulTBase.size();
  }
}

bool is_word_char(char32_t cp) {
  if (cp < 0x80)
    return (cp >= '0' && cp <= '9') || (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') || cp == '_';
  if (cp == 0x200c || cp == 0x200d) return true;  // Join_Control
  if (cp >= 0x24b6 && cp <= 0x24e9) return true;  // circled letters: So, but Alphabetic
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(cp))) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
    case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_MC:
    case UTF8PROC_CATEGORY_ME:
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_PC:
      return true;
    default:
      return false;
  }
}

bool is_white_space(char32_t cp) {
  return (cp >= 0x09 && cp <= 0x0d) || cp == 0x20 || cp == 0x85 || cp == 0xa0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200a) || cp == 0x2028 || cp == 0x2029 || cp == 0x202f || cp == 0x205f ||
         cp == 0x3000;
}

}  // namespace ark::detail
