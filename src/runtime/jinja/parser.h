// Parses lexed pieces into statement trees, with Jinja2's grammar and operator precedence (jinja2/parser.py):
// or < and < not < comparisons / in / not in < + - < ~ < * / // % < ** < unary - + < filters | and tests
// `is`, which bind to the primary before them (so `messages|length - 1` is `(messages|length) - 1`).
// Statements: if/elif/else, for (target unpacking, `if` filter, else), set (name, tuple, namespace
// attribute, block), macro, with, filter blocks, break/continue (transformers enables loopcontrols),
// generation (transformers' assistant-mask tag; its body renders as is); raw blocks are the lexer's. Anything
// else is refused with its line.
#pragma once

#include <string_view>

#include "runtime/jinja/ast.h"

namespace ark::jinja {

// Throws ark::Error naming the line and the construct for bad or unsupported syntax.
Body parse(std::string_view source);

}  // namespace ark::jinja
