// Splits a template into literal text and the tokens of its {{ }} and {% %} tags, applying Jinja2's
// whitespace rules as transformers configures them: trim_blocks (the first newline after a block or
// comment tag is dropped), lstrip_blocks (spaces and tabs before a block or comment tag on its own line
// are dropped), "-" on a tag side strips all whitespace on that side, "+" turns lstrip/trim off for that
// side, newlines are normalised to "\n" and one trailing newline of the template is dropped
// (keep_trailing_newline=False). Comments ({# #}) disappear here.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace ark::jinja {

struct Token {
  enum class Kind : uint8_t { kName, kString, kInt, kFloat, kOperator, kEnd };
  Kind kind = Kind::kEnd;
  std::string text;  // name, operator, decoded string literal, or number digits
  int line = 1;
};

// One piece of the template: literal text, an output tag ({{ expr }}) or a statement tag ({% ... %}).
struct Piece {
  enum class Kind : uint8_t { kText, kOutput, kStatement };
  Kind kind = Kind::kText;
  std::string text;           // kText
  std::vector<Token> tokens;  // tags: their tokens, ending with a kEnd token
  int line = 1;               // where the piece starts
};

// Throws ark::Error naming the line for an unclosed tag or comment, a bad character or string literal.
std::vector<Piece> lex(std::string_view source);

}  // namespace ark::jinja
