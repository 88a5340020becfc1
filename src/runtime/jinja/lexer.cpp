// Template lexer (jinja/lexer.h). It follows jinja2/lexer.py's rules for where text ends and how tags eat
// whitespace, since an exact rendering depends on every newline those rules keep or drop.
#include "runtime/jinja/lexer.h"

#include <algorithm>
#include <cctype>

#include "ark/error.h"
#include "runtime/jinja/utf8.h"

namespace ark::jinja {

namespace {

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

std::string normalise_newlines(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\r') {
      out += '\n';
      if (i + 1 < s.size() && s[i + 1] == '\n') ++i;
    } else {
      out += s[i];
    }
  }
  return out;
}

// Python's str.rstrip(): all whitespace, including the Unicode spaces.
std::string rstrip_all(std::string_view s) {
  return py_strip(s, nullptr, false, true);
}

class Lexer {
 public:
  explicit Lexer(std::string src) : src_(std::move(src)) {}

  std::vector<Piece> run() {
    std::vector<Piece> pieces;
    size_t pos = 0;
    bool line_starting = true;  // the text about to start begins a line (lstrip_blocks needs it)
    while (pos < src_.size()) {
      size_t start = src_.find('{', pos);
      while (start != std::string::npos && start + 1 < src_.size() && src_[start + 1] != '{' &&
             src_[start + 1] != '%' && src_[start + 1] != '#')
        start = src_.find('{', start + 1);
      if (start == std::string::npos || start + 1 >= src_.size()) {
        add_text(pieces, src_.substr(pos), pos);
        break;
      }
      const char kind = src_[start + 1];
      size_t p = start + 2;
      const char sign = p < src_.size() && (src_[p] == '-' || src_[p] == '+') ? src_[p] : 0;
      if (sign) ++p;
      add_text(pieces, strip_before_tag(src_.substr(pos, start - pos), sign, kind != '{', line_starting),
               pos);
      if (kind == '#') {
        const size_t end = src_.find("#}", p);
        ARK_CHECK(end != std::string::npos, "chat template line ", line_at(start),
                  ": missing end of comment tag");
        const char end_sign = end > p && (src_[end - 1] == '-' || src_[end - 1] == '+') ? src_[end - 1] : 0;
        pos = after_tag_end(end + 2, end_sign, true);
      } else {
        Piece piece;
        piece.kind = kind == '{' ? Piece::Kind::kOutput : Piece::Kind::kStatement;
        piece.line = line_at(start);
        char end_sign = 0;
        const size_t end = tokenize(p, kind == '{' ? '}' : '%', &piece.tokens, &end_sign);
        if (kind == '%' && piece.tokens.size() == 2 && piece.tokens[0].kind == Token::Kind::kName &&
            piece.tokens[0].text == "raw") {
          // {% raw %}: no newline trimmed after it; its text up to {% endraw %} is literal. Jinja's raw tag
          // takes "-%}" or "%}" only.
          ARK_CHECK(end_sign != '+', "chat template line ", piece.line,
                    ": '{% raw +%}' is not valid (Jinja takes "
                    "'{% raw %}' or '{% raw -%}')");
          pos = raw_block(pieces, after_tag_end(end, end_sign, false), piece.line);
        } else {
          pieces.push_back(std::move(piece));
          pos = after_tag_end(end, end_sign, kind == '%');
        }
      }
      line_starting = pos > 0 && src_[pos - 1] == '\n';
    }
    return pieces;
  }

 private:
  // The text before a tag, after the tag's left side acted on it: "-" strips all trailing whitespace;
  // otherwise lstrip_blocks (block and comment tags, not output tags, not "+") drops spaces and tabs
  // between the start of the tag's line and the tag.
  static std::string strip_before_tag(std::string text, char sign, bool lstrip, bool line_starting) {
    if (sign == '-') return rstrip_all(text);
    if (sign == '+' || !lstrip) return text;
    const size_t nl = text.rfind('\n');
    const size_t l_pos = nl == std::string::npos ? 0 : nl + 1;
    if ((l_pos > 0 || line_starting) && l_pos < text.size() &&
        std::all_of(text.begin() + static_cast<std::ptrdiff_t>(l_pos), text.end(), is_space))
      text.resize(l_pos);
    return text;
  }

  // The body of a raw block starting at `pos`, as one text piece; returns the position after {% endraw %}.
  size_t raw_block(std::vector<Piece>& pieces, size_t pos, int line) {
    const bool line_starting = pos > 0 && src_[pos - 1] == '\n';
    for (size_t start = src_.find("{%", pos); start != std::string::npos;
         start = src_.find("{%", start + 2)) {
      size_t p = start + 2;
      const char sign = p < src_.size() && (src_[p] == '-' || src_[p] == '+') ? src_[p] : 0;
      if (sign) ++p;
      while (p < src_.size() && is_space(src_[p])) ++p;
      if (src_.compare(p, 6, "endraw") != 0) continue;
      p += 6;
      while (p < src_.size() && is_space(src_[p])) ++p;
      char end_sign = 0;
      if (p < src_.size() && (src_[p] == '-' || src_[p] == '+')) end_sign = src_[p++];
      if (src_.compare(p, 2, "%}") != 0) continue;
      add_text(pieces, strip_before_tag(src_.substr(pos, start - pos), sign, true, line_starting), pos);
      return after_tag_end(p + 2, end_sign, true);
    }
    throw_error("chat template line ", line, ": missing end of raw directive ({% endraw %})");
  }

  int line_at(size_t pos) {
    // Lines are asked for in increasing positions, so count incrementally.
    if (pos < line_pos_) {
      line_pos_ = 0;
      line_ = 1;
    }
    line_ += static_cast<int>(std::count(src_.begin() + static_cast<std::ptrdiff_t>(line_pos_),
                                         src_.begin() + static_cast<std::ptrdiff_t>(pos), '\n'));
    line_pos_ = pos;
    return line_;
  }

  void add_text(std::vector<Piece>& pieces, std::string text, size_t pos) {
    if (text.empty()) return;
    Piece piece;
    piece.kind = Piece::Kind::kText;
    piece.line = line_at(pos);
    piece.text = std::move(text);
    pieces.push_back(std::move(piece));
  }

  // Position after a tag's closing characters (which end at `end`) and the whitespace they consume.
  size_t after_tag_end(size_t end, char sign, bool trims) {
    if (sign == '-') {
      while (end < src_.size() && is_space(src_[end])) ++end;
    } else if (sign != '+' && trims && end < src_.size() && src_[end] == '\n') {
      ++end;
    }
    return end;
  }

  // Tokens from `p` up to the closing "}}" or "%}" (outside brackets); returns the position after it.
  size_t tokenize(size_t p, char closer, std::vector<Token>* tokens, char* end_sign) {
    int depth = 0;  // brackets open, so "}}" inside {{ {'a': {}}}} is not mistaken for the end
    const int tag_line = line_at(p);
    while (true) {
      while (p < src_.size() && is_space(src_[p])) ++p;
      ARK_CHECK(p < src_.size(), "chat template line ", tag_line, ": unclosed tag (expected '",
                closer == '}' ? "}}" : "%}", "')");
      const int line = line_at(p);
      auto at = [&](std::string_view s) { return src_.compare(p, s.size(), s) == 0; };
      const std::string close = std::string(1, closer) + "}";
      if (depth == 0 && (at(close) || ((at("-") || at("+")) && src_.compare(p + 1, 2, close) == 0))) {
        if (src_[p] != closer) {
          ARK_CHECK(src_[p] == '-' || closer == '%', "chat template line ", line, ": '+}}' is not valid");
          *end_sign = src_[p];
          ++p;
        }
        tokens->push_back({Token::Kind::kEnd, "", line});
        return p + 2;
      }
      const char c = src_[p];
      if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
        size_t e = p;
        while (e < src_.size() && (std::isalnum(static_cast<unsigned char>(src_[e])) || src_[e] == '_')) ++e;
        tokens->push_back({Token::Kind::kName, src_.substr(p, e - p), line});
        p = e;
      } else if (std::isdigit(static_cast<unsigned char>(c))) {
        p = number(p, tokens, line);
      } else if (c == '\'' || c == '"') {
        p = string_literal(p, tokens, line);
      } else {
        static const char* kOps[] = {"//", "**", "==", "!=", "<=", ">=", "+", "-", "/", "*", "%", "~", "[",
                                     "]",  "(",  ")",  "{",  "}",  "<",  ">", "=", ".", ":", "|", ",", ";"};
        const char* op = nullptr;
        for (const char* o : kOps)
          if (at(o)) {
            op = o;
            break;
          }
        ARK_CHECK(op, "chat template line ", line, ": unexpected character '", std::string(1, c),
                  "' in a tag");
        const std::string s(op);
        if (s == "(" || s == "[" || s == "{") ++depth;
        if (s == ")" || s == "]" || s == "}") --depth;
        tokens->push_back({Token::Kind::kOperator, s, line});
        p += s.size();
      }
    }
  }

  size_t number(size_t p, std::vector<Token>* tokens, int line) {
    auto digits = [&](size_t q) {
      while (q < src_.size() && (std::isdigit(static_cast<unsigned char>(src_[q])) || src_[q] == '_')) ++q;
      return q;
    };
    size_t e = digits(p);
    bool is_float = false;
    if (e + 1 < src_.size() && src_[e] == '.' && std::isdigit(static_cast<unsigned char>(src_[e + 1]))) {
      e = digits(e + 1);
      is_float = true;
    }
    if (e < src_.size() && (src_[e] == 'e' || src_[e] == 'E')) {
      size_t q = e + 1;
      if (q < src_.size() && (src_[q] == '+' || src_[q] == '-')) ++q;
      if (q < src_.size() && std::isdigit(static_cast<unsigned char>(src_[q]))) {
        e = digits(q);
        is_float = true;
      }
    }
    std::string text;
    for (size_t i = p; i < e; ++i)
      if (src_[i] != '_') text += src_[i];
    tokens->push_back({is_float ? Token::Kind::kFloat : Token::Kind::kInt, text, line});
    return e;
  }

  // A quoted literal with Python's escapes (\n \t \\ \' \xNN \uNNNN ...); unknown escapes stay as written.
  size_t string_literal(size_t p, std::vector<Token>* tokens, int line) {
    const char quote = src_[p++];
    std::string out;
    while (true) {
      ARK_CHECK(p < src_.size(), "chat template line ", line, ": unterminated string literal");
      const char c = src_[p];
      if (c == quote) break;
      if (c != '\\') {
        out += c;
        ++p;
        continue;
      }
      ARK_CHECK(p + 1 < src_.size(), "chat template line ", line, ": unterminated string literal");
      const char e = src_[p + 1];
      p += 2;
      auto hex = [&](int n) {
        ARK_CHECK(p + static_cast<size_t>(n) <= src_.size(), "chat template line ", line,
                  ": bad \\x/\\u escape");
        uint32_t v = 0;
        for (int i = 0; i < n; ++i) {
          const char h = src_[p++];
          ARK_CHECK(std::isxdigit(static_cast<unsigned char>(h)), "chat template line ", line,
                    ": bad \\x/\\u escape");
          v = v * 16 + static_cast<uint32_t>(std::isdigit(static_cast<unsigned char>(h))
                                                 ? h - '0'
                                                 : (std::tolower(h) - 'a' + 10));
        }
        return v;
      };
      switch (e) {
        case 'n':
          out += '\n';
          break;
        case 't':
          out += '\t';
          break;
        case 'r':
          out += '\r';
          break;
        case '\\':
          out += '\\';
          break;
        case '\'':
          out += '\'';
          break;
        case '"':
          out += '"';
          break;
        case 'a':
          out += '\a';
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'v':
          out += '\v';
          break;
        case '\n':
          break;  // line continuation
        case 'x':
          append_code_point(out, hex(2));
          break;
        case 'u':
          append_code_point(out, hex(4));
          break;
        case 'U':
          append_code_point(out, hex(8));
          break;
        default:
          if (e >= '0' && e <= '7') {
            uint32_t v = static_cast<uint32_t>(e - '0');
            for (int i = 0; i < 2 && p < src_.size() && src_[p] >= '0' && src_[p] <= '7'; ++i)
              v = v * 8 + static_cast<uint32_t>(src_[p++] - '0');
            append_code_point(out, v);
          } else {
            out += '\\';
            out += e;
          }
      }
    }
    tokens->push_back({Token::Kind::kString, std::move(out), line});
    return p + 1;
  }

  std::string src_;
  size_t line_pos_ = 0;
  int line_ = 1;
};

}  // namespace

std::vector<Piece> lex(std::string_view source) {
  std::string src = normalise_newlines(source);
  if (!src.empty() && src.back() == '\n') src.pop_back();  // keep_trailing_newline=False
  return Lexer(std::move(src)).run();
}

}  // namespace ark::jinja
