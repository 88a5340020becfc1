// UTF-8 helpers for Python's str semantics over UTF-8 bytes: len(), indexes and slices count code points,
// and str.strip()/split() with no argument treat Unicode whitespace (U+3000, U+00A0, ...) as Python does.
// Malformed bytes count as one code point each, so nothing is dropped or read past the end.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace ark::jinja {

// Byte offsets of each code point's start, plus s.size() at the end.
std::vector<size_t> code_point_offsets(std::string_view s);
size_t code_point_count(std::string_view s);
// Decodes the code point at s[i]; `len` receives its byte length (1 for a malformed byte).
uint32_t decode_code_point(std::string_view s, size_t i, size_t* len);
void append_code_point(std::string& out, uint32_t cp);
// Python's str.isspace() for one code point.
bool is_py_space(uint32_t cp);
// Python's str.lower / upper / title / capitalize / islower / isupper with Unicode's simple case mappings
// (utf8proc); the few characters whose full mapping changes length (German sharp s uppercased, dotted
// capital I lowercased, ligatures) keep their simple mapping.
std::string py_lower(std::string_view s);
std::string py_upper(std::string_view s);
std::string py_title(std::string_view s);
std::string py_capitalize(std::string_view s);
bool py_islower(std::string_view s);
bool py_isupper(std::string_view s);
// Python's str.strip / lstrip / rstrip: `chars` == nullptr strips whitespace, else any code point in *chars.
std::string py_strip(std::string_view s, const std::string* chars, bool left, bool right);

}  // namespace ark::jinja
