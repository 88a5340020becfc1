// Python's operators over template values: arithmetic (+ - * / // % ** with int/float/bool promotion,
// str and list concatenation and repetition), ~ (str() of both sides joined), `in`, subscripts and slices
// (negative indexes, steps, code points for str). Type mismatches throw as Python raises TypeError.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "runtime/jinja/value.h"

namespace ark::jinja {

Value binary_op(std::string_view op, const Value& a, const Value& b);
Value negate(const Value& v);
// Python's `needle in haystack`: substring for str, key for dict, element for list; undefined is empty.
bool contains(const Value& haystack, const Value& needle);
// obj[key] as Jinja's getitem: index or key first; a missing one is undefined (not an error).
Value get_item(const Value& obj, const Value& key);
// obj[start:stop:step] for lists, tuples and str; each part may be absent.
Value slice(const Value& obj, const std::optional<int64_t>& start, const std::optional<int64_t>& stop,
            const std::optional<int64_t>& step);

}  // namespace ark::jinja
