// Values to and from JSON: the `tojson` filter as transformers defines it (Python's json.dumps with
// ensure_ascii=False by default, indent, separators and sort_keys passed through; keys keep insertion
// order), and JSON text to values for the variables a conversation brings (messages with any keys, tools).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "runtime/jinja/value.h"

namespace ark::jinja {

struct JsonOptions {
  std::optional<int64_t> indent;      // none: one line
  std::string item_separator = ", ";  // json.dumps' defaults: ", " one-line, "," when indenting
  std::string key_separator = ": ";
  bool sort_keys = false;
  bool ensure_ascii = false;
};

// Throws ark::Error for values JSON cannot hold (undefined, namespaces, functions, NaN is written as NaN
// as Python does).
std::string to_json(const Value& v, const JsonOptions& options);
// Throws ark::Error naming `what` when `text` is not valid JSON.
Value from_json_text(std::string_view text, std::string_view what);

}  // namespace ark::jinja
