// UTF-8 helpers (jinja/utf8.h).
#include "runtime/jinja/utf8.h"

#include <utf8proc.h>

namespace ark::jinja {

uint32_t decode_code_point(std::string_view s, size_t i, size_t* len) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  auto cont = [&](size_t k) {
    return i + k < s.size() && (static_cast<unsigned char>(s[i + k]) & 0xC0) == 0x80;
  };
  auto byte = [&](size_t k) { return static_cast<uint32_t>(static_cast<unsigned char>(s[i + k]) & 0x3F); };
  if (b0 < 0x80) {
    *len = 1;
    return b0;
  }
  if ((b0 & 0xE0) == 0xC0 && cont(1)) {
    *len = 2;
    return ((b0 & 0x1Fu) << 6) | byte(1);
  }
  if ((b0 & 0xF0) == 0xE0 && cont(1) && cont(2)) {
    *len = 3;
    return ((b0 & 0x0Fu) << 12) | (byte(1) << 6) | byte(2);
  }
  if ((b0 & 0xF8) == 0xF0 && cont(1) && cont(2) && cont(3)) {
    *len = 4;
    return ((b0 & 0x07u) << 18) | (byte(1) << 12) | (byte(2) << 6) | byte(3);
  }
  *len = 1;
  return b0;
}

std::vector<size_t> code_point_offsets(std::string_view s) {
  std::vector<size_t> offsets;
  offsets.reserve(s.size() + 1);
  for (size_t i = 0; i < s.size();) {
    offsets.push_back(i);
    size_t len = 1;
    decode_code_point(s, i, &len);
    i += len;
  }
  offsets.push_back(s.size());
  return offsets;
}

size_t code_point_count(std::string_view s) {
  return code_point_offsets(s).size() - 1;
}

void append_code_point(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

bool is_py_space(uint32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20) || cp == 0x85 || cp == 0xA0 ||
         cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
         cp == 0x205F || cp == 0x3000;
}

namespace {

template <typename F>
std::string map_code_points(std::string_view s, F&& f) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0, k = 0;
  while (i < s.size()) {
    size_t len = 1;
    const uint32_t cp = decode_code_point(s, i, &len);
    if (cp < 0x80 || len > 1) {
      append_code_point(out, f(cp, k));
    } else {
      out += s[i];  // a malformed byte passes through untouched
    }
    i += len;
    ++k;
  }
  return out;
}

// Python's "cased" characters: letters with a case (Lu, Ll, Lt).
bool is_cased(uint32_t cp) {
  const auto c = utf8proc_category(static_cast<utf8proc_int32_t>(cp));
  return c == UTF8PROC_CATEGORY_LU || c == UTF8PROC_CATEGORY_LL || c == UTF8PROC_CATEGORY_LT;
}

uint32_t lower_cp(uint32_t cp) {
  return static_cast<uint32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(cp)));
}
uint32_t upper_cp(uint32_t cp) {
  return static_cast<uint32_t>(utf8proc_toupper(static_cast<utf8proc_int32_t>(cp)));
}
uint32_t title_cp(uint32_t cp) {
  return static_cast<uint32_t>(utf8proc_totitle(static_cast<utf8proc_int32_t>(cp)));
}

}  // namespace

std::string py_lower(std::string_view s) {
  return map_code_points(s, [](uint32_t cp, size_t) { return lower_cp(cp); });
}

std::string py_upper(std::string_view s) {
  return map_code_points(s, [](uint32_t cp, size_t) { return upper_cp(cp); });
}

std::string py_title(std::string_view s) {
  bool prev_cased = false;
  return map_code_points(s, [&](uint32_t cp, size_t) {
    const bool cased = is_cased(cp);
    const uint32_t r = cased ? (prev_cased ? lower_cp(cp) : title_cp(cp)) : cp;
    prev_cased = cased;
    return r;
  });
}

std::string py_capitalize(std::string_view s) {
  return map_code_points(s, [](uint32_t cp, size_t k) { return k == 0 ? title_cp(cp) : lower_cp(cp); });
}

bool py_islower(std::string_view s) {
  bool any = false;
  for (size_t i = 0, len = 0; i < s.size(); i += len) {
    const uint32_t cp = decode_code_point(s, i, &len);
    if (!is_cased(cp)) continue;
    if (lower_cp(cp) != cp || utf8proc_category(static_cast<utf8proc_int32_t>(cp)) == UTF8PROC_CATEGORY_LT)
      return false;
    any = true;
  }
  return any;
}

bool py_isupper(std::string_view s) {
  bool any = false;
  for (size_t i = 0, len = 0; i < s.size(); i += len) {
    const uint32_t cp = decode_code_point(s, i, &len);
    if (!is_cased(cp)) continue;
    if (upper_cp(cp) != cp || utf8proc_category(static_cast<utf8proc_int32_t>(cp)) == UTF8PROC_CATEGORY_LT)
      return false;
    any = true;
  }
  return any;
}

std::string py_strip(std::string_view s, const std::string* chars, bool left, bool right) {
  std::vector<uint32_t> set;
  if (chars) {
    for (size_t i = 0, len = 0; i < chars->size(); i += len)
      set.push_back(decode_code_point(*chars, i, &len));
  }
  auto strip_it = [&](uint32_t cp) {
    if (!chars) return is_py_space(cp);
    for (uint32_t c : set)
      if (c == cp) return true;
    return false;
  };
  const std::vector<size_t> off = code_point_offsets(s);
  size_t b = 0, e = off.size() - 1;  // code point range [b, e)
  size_t len = 0;
  if (left)
    while (b < e && strip_it(decode_code_point(s, off[b], &len))) ++b;
  if (right)
    while (e > b && strip_it(decode_code_point(s, off[e - 1], &len))) --e;
  return std::string(s.substr(off[b], off[e] - off[b]));
}

}  // namespace ark::jinja
