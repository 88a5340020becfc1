// Recursive-descent template parser (jinja/parser.h).
#include "runtime/jinja/parser.h"

#include <charconv>
#include <cstdlib>

#include "ark/error.h"
#include "runtime/jinja/builtins.h"
#include "runtime/jinja/lexer.h"

namespace ark::jinja {

namespace {

// Tokens of one tag, consumed left to right.
class TokenStream {
 public:
  explicit TokenStream(const std::vector<Token>& tokens) : t_(tokens) {}

  const Token& cur() const { return t_[i_]; }
  const Token& peek(size_t k = 1) const { return t_[std::min(i_ + k, t_.size() - 1)]; }
  Token next() { return i_ + 1 < t_.size() ? t_[i_++] : t_[i_]; }
  bool at_end() const { return cur().kind == Token::Kind::kEnd; }
  bool is_op(std::string_view op) const { return cur().kind == Token::Kind::kOperator && cur().text == op; }
  bool is_name(std::string_view n) const { return cur().kind == Token::Kind::kName && cur().text == n; }
  bool skip_op(std::string_view op) {
    if (!is_op(op)) return false;
    ++i_;
    return true;
  }
  bool skip_name(std::string_view n) {
    if (!is_name(n)) return false;
    ++i_;
    return true;
  }
  [[noreturn]] void fail(std::string_view what) const {
    throw_error("chat template line ", cur().line, ": ", what, " (found ", describe(cur()), ")");
  }
  void expect_op(std::string_view op) {
    if (!skip_op(op)) fail("expected '" + std::string(op) + "'");
  }
  std::string expect_name() {
    if (cur().kind != Token::Kind::kName) fail("expected a name");
    return next().text;
  }
  void expect_end(std::string_view tag) {
    if (!at_end()) fail("unexpected tokens at the end of '" + std::string(tag) + "'");
  }

  static std::string describe(const Token& t) {
    switch (t.kind) {
      case Token::Kind::kEnd:
        return "end of tag";
      case Token::Kind::kString:
        return "string literal";
      default:
        return "'" + t.text + "'";
    }
  }

 private:
  const std::vector<Token>& t_;
  size_t i_ = 0;
};

ExprPtr node(Expr::Kind kind, int line) {
  auto e = std::make_unique<Expr>();
  e->kind = kind;
  e->line = line;
  return e;
}

class ExprParser {
 public:
  explicit ExprParser(TokenStream& s) : s_(s) {}

  ExprPtr expression(bool with_condexpr = true) { return with_condexpr ? condexpr() : or_expr(); }

  // A comma-separated list becomes a tuple (`{{ a, b }}`, `set x = 1, 2`); one expression stays itself.
  ExprPtr tuple(bool with_condexpr = true) {
    const int line = s_.cur().line;
    ExprPtr first = expression(with_condexpr);
    if (!s_.is_op(",")) return first;
    auto t = node(Expr::Kind::kTuple, line);
    t->args.push_back(std::move(first));
    while (s_.skip_op(",")) {
      if (s_.at_end() || s_.is_name("in") || s_.is_op("=")) break;
      t->args.push_back(expression(with_condexpr));
    }
    return t;
  }

  // `operand | f | g(...)`, for a {% filter %} block.
  ExprPtr filter_chain(ExprPtr operand) { return filter_expr(std::move(operand)); }

 private:
  ExprPtr condexpr() {
    ExprPtr e = or_expr();
    while (s_.is_name("if")) {
      const int line = s_.next().line;
      auto c = node(Expr::Kind::kCond, line);
      c->args.push_back(std::move(e));
      c->args.push_back(or_expr());
      c->args.push_back(s_.skip_name("else") ? condexpr() : nullptr);
      e = std::move(c);
    }
    return e;
  }

  ExprPtr binary(ExprPtr l, std::string op, ExprPtr r, int line) {
    auto b = node(Expr::Kind::kBinary, line);
    b->name = std::move(op);
    b->args.push_back(std::move(l));
    b->args.push_back(std::move(r));
    return b;
  }

  ExprPtr or_expr() {
    ExprPtr l = and_expr();
    while (s_.is_name("or")) {
      const int line = s_.next().line;
      l = binary(std::move(l), "or", and_expr(), line);
    }
    return l;
  }

  ExprPtr and_expr() {
    ExprPtr l = not_expr();
    while (s_.is_name("and")) {
      const int line = s_.next().line;
      l = binary(std::move(l), "and", not_expr(), line);
    }
    return l;
  }

  ExprPtr not_expr() {
    if (s_.is_name("not")) {
      const int line = s_.next().line;
      auto u = node(Expr::Kind::kUnary, line);
      u->name = "not";
      u->args.push_back(not_expr());
      return u;
    }
    return compare();
  }

  ExprPtr compare() {
    const int line = s_.cur().line;
    ExprPtr first = math1();
    std::vector<std::string> ops;
    std::vector<ExprPtr> operands;
    while (true) {
      std::string op;
      if (s_.cur().kind == Token::Kind::kOperator &&
          (s_.cur().text == "==" || s_.cur().text == "!=" || s_.cur().text == "<" || s_.cur().text == "<=" ||
           s_.cur().text == ">" || s_.cur().text == ">=")) {
        op = s_.next().text;
      } else if (s_.is_name("in")) {
        s_.next();
        op = "in";
      } else if (s_.is_name("not") && s_.peek().kind == Token::Kind::kName && s_.peek().text == "in") {
        s_.next();
        s_.next();
        op = "not in";
      } else {
        break;
      }
      ops.push_back(op);
      operands.push_back(math1());
    }
    if (ops.empty()) return first;
    auto c = node(Expr::Kind::kCompare, line);
    c->ops = std::move(ops);
    c->args.push_back(std::move(first));
    for (auto& o : operands) c->args.push_back(std::move(o));
    return c;
  }

  ExprPtr math1() {
    ExprPtr l = concat();
    while (s_.is_op("+") || s_.is_op("-")) {
      const Token op = s_.next();
      l = binary(std::move(l), op.text, concat(), op.line);
    }
    return l;
  }

  ExprPtr concat() {
    ExprPtr l = math2();
    while (s_.is_op("~")) {
      const int line = s_.next().line;
      l = binary(std::move(l), "~", math2(), line);
    }
    return l;
  }

  ExprPtr math2() {
    ExprPtr l = pow();
    while (s_.is_op("*") || s_.is_op("/") || s_.is_op("//") || s_.is_op("%")) {
      const Token op = s_.next();
      l = binary(std::move(l), op.text, pow(), op.line);
    }
    return l;
  }

  ExprPtr pow() {
    ExprPtr l = unary(true);
    while (s_.is_op("**")) {
      const int line = s_.next().line;
      l = binary(std::move(l), "**", unary(true), line);
    }
    return l;
  }

  ExprPtr unary(bool with_filter) {
    // Each nesting level recurses through the whole precedence chain; bound it so a hostile template gets an
    // error rather than a stack overflow.
    struct Depth {
      int& d;
      explicit Depth(int& x, int line) : d(x) {
        if (++d > 200) throw_error("chat template line ", line, ": expression nested too deeply");
      }
      ~Depth() { --d; }
    } depth(depth_, s_.cur().line);
    ExprPtr e;
    if (s_.is_op("-") || s_.is_op("+")) {
      const Token op = s_.next();
      e = node(Expr::Kind::kUnary, op.line);
      e->name = op.text;
      e->args.push_back(unary(false));
    } else {
      e = primary();
    }
    e = postfix(std::move(e));
    if (with_filter) e = filter_expr(std::move(e));
    return e;
  }

  ExprPtr primary() {
    const Token& t = s_.cur();
    const int line = t.line;
    switch (t.kind) {
      case Token::Kind::kName: {
        const std::string n = s_.next().text;
        auto e = node(Expr::Kind::kLiteral, line);
        if (n == "true" || n == "True") {
          e->value = Value(true);
        } else if (n == "false" || n == "False") {
          e->value = Value(false);
        } else if (n == "none" || n == "None") {
          e->value = Value::none();
        } else {
          e->kind = Expr::Kind::kName;
          e->name = n;
        }
        return e;
      }
      case Token::Kind::kString: {
        std::string s = s_.next().text;
        while (s_.cur().kind == Token::Kind::kString) s += s_.next().text;  // adjacent literals join
        auto e = node(Expr::Kind::kLiteral, line);
        e->value = Value(std::move(s));
        return e;
      }
      case Token::Kind::kInt: {
        const std::string digits = s_.next().text;
        int64_t v = 0;
        const auto r = std::from_chars(digits.data(), digits.data() + digits.size(), v);
        if (r.ec != std::errc())
          throw_error("chat template line ", line, ": integer literal ", digits, " is out of range");
        auto e = node(Expr::Kind::kLiteral, line);
        e->value = Value(v);
        return e;
      }
      case Token::Kind::kFloat: {
        auto e = node(Expr::Kind::kLiteral, line);
        e->value = Value(std::strtod(s_.next().text.c_str(), nullptr));  // 1e999 is inf, as in Python
        return e;
      }
      default:
        break;
    }
    if (s_.skip_op("(")) {
      if (s_.skip_op(")")) {
        auto e = node(Expr::Kind::kTuple, line);
        return e;
      }
      ExprPtr first = expression();
      if (s_.skip_op(")")) return first;
      auto e = node(Expr::Kind::kTuple, line);
      e->args.push_back(std::move(first));
      while (s_.skip_op(",")) {
        if (s_.is_op(")")) break;
        e->args.push_back(expression());
      }
      s_.expect_op(")");
      return e;
    }
    if (s_.skip_op("[")) {
      auto e = node(Expr::Kind::kList, line);
      while (!s_.is_op("]")) {
        if (!e->args.empty()) s_.expect_op(",");
        if (s_.is_op("]")) break;
        e->args.push_back(expression());
      }
      s_.expect_op("]");
      return e;
    }
    if (s_.skip_op("{")) {
      auto e = node(Expr::Kind::kDict, line);
      while (!s_.is_op("}")) {
        if (!e->args.empty()) s_.expect_op(",");
        if (s_.is_op("}")) break;
        e->args.push_back(expression());
        s_.expect_op(":");
        e->args.push_back(expression());
      }
      s_.expect_op("}");
      return e;
    }
    s_.fail("expected an expression");
  }

  ExprPtr postfix(ExprPtr e) {
    while (true) {
      if (s_.is_op(".")) {
        const int line = s_.next().line;
        auto g = node(Expr::Kind::kGetAttr, line);
        if (s_.cur().kind == Token::Kind::kInt) {
          // foo.0 is foo[0] in Jinja
          g->kind = Expr::Kind::kGetItem;
          g->args.push_back(std::move(e));
          auto idx = node(Expr::Kind::kLiteral, line);
          const std::string digits = s_.next().text;
          int64_t v = 0;
          if (std::from_chars(digits.data(), digits.data() + digits.size(), v).ec != std::errc())
            throw_error("chat template line ", line, ": index ", digits, " is out of range");
          idx->value = Value(v);
          g->args.push_back(std::move(idx));
        } else {
          g->name = s_.expect_name();
          g->args.push_back(std::move(e));
        }
        e = std::move(g);
      } else if (s_.is_op("[")) {
        e = subscript(std::move(e));
      } else if (s_.is_op("(")) {
        e = call(std::move(e));
      } else {
        return e;
      }
    }
  }

  ExprPtr subscript(ExprPtr obj) {
    const int line = s_.next().line;  // '['
    ExprPtr parts[3];
    int n = 0;
    bool is_slice = false;
    if (!s_.is_op(":")) parts[0] = expression();
    if (s_.skip_op(":")) {
      is_slice = true;
      n = 1;
      if (!s_.is_op(":") && !s_.is_op("]")) parts[1] = expression();
      if (s_.skip_op(":")) {
        if (!s_.is_op("]")) parts[2] = expression();
      }
    }
    (void)n;
    if (s_.is_op(",")) s_.fail("tuple subscripts are not supported");
    s_.expect_op("]");
    if (!is_slice) {
      if (!parts[0]) s_.fail("expected a subscript");
      auto g = node(Expr::Kind::kGetItem, line);
      g->args.push_back(std::move(obj));
      g->args.push_back(std::move(parts[0]));
      return g;
    }
    auto sl = node(Expr::Kind::kSlice, line);
    sl->args.push_back(std::move(obj));
    for (auto& p : parts) sl->args.push_back(std::move(p));
    return sl;
  }

  // Arguments of a call, filter or test: positional then name=value.
  void call_args(Expr* e) {
    s_.expect_op("(");
    bool first = true;
    while (!s_.is_op(")")) {
      if (!first) s_.expect_op(",");
      first = false;
      if (s_.is_op(")")) break;
      if (s_.is_op("*") || s_.is_op("**")) s_.fail("*args and **kwargs in calls are not supported");
      if (s_.cur().kind == Token::Kind::kName && s_.peek().kind == Token::Kind::kOperator &&
          s_.peek().text == "=") {
        std::string key = s_.next().text;
        s_.next();
        e->kwargs.emplace_back(std::move(key), expression());
      } else {
        if (!e->kwargs.empty()) s_.fail("positional argument after keyword argument");
        e->args.push_back(expression());
      }
    }
    s_.expect_op(")");
  }

  ExprPtr call(ExprPtr callee) {
    auto c = node(Expr::Kind::kCall, s_.cur().line);
    c->args.push_back(std::move(callee));
    call_args(c.get());
    return c;
  }

  ExprPtr filter_expr(ExprPtr e) {
    while (true) {
      if (s_.is_op("|")) {
        const int line = s_.next().line;
        auto f = node(Expr::Kind::kFilter, line);
        f->name = s_.expect_name();
        while (s_.skip_op(".")) f->name += "." + s_.expect_name();
        if (!is_jinja_filter(f->name))
          throw_error("chat template line ", line, ": no filter named '", f->name, "'");
        f->args.push_back(std::move(e));
        if (s_.is_op("(")) call_args(f.get());
        e = std::move(f);
      } else if (s_.is_name("is")) {
        const int line = s_.next().line;
        const bool negated = s_.skip_name("not");
        auto t = node(Expr::Kind::kTest, line);
        t->name = s_.expect_name();
        while (s_.skip_op(".")) t->name += "." + s_.expect_name();
        if (!is_jinja_test(t->name))
          throw_error("chat template line ", line, ": no test named '", t->name, "'");
        t->args.push_back(std::move(e));
        const Token& c = s_.cur();
        if (s_.is_op("(")) {
          call_args(t.get());
        } else if ((c.kind == Token::Kind::kName || c.kind == Token::Kind::kString ||
                    c.kind == Token::Kind::kInt || c.kind == Token::Kind::kFloat || s_.is_op("[") ||
                    s_.is_op("{")) &&
                   !(s_.is_name("else") || s_.is_name("or") || s_.is_name("and"))) {
          if (s_.is_name("is")) s_.fail("tests cannot be chained with 'is'");
          t->args.push_back(postfix(primary()));  // `is equalto 5`, `is sameas false`
        }
        if (negated) {
          auto n = node(Expr::Kind::kUnary, line);
          n->name = "not";
          n->args.push_back(std::move(t));
          e = std::move(n);
        } else {
          e = std::move(t);
        }
      } else if (s_.is_op("(")) {
        e = call(std::move(e));
      } else {
        return e;
      }
    }
  }

  TokenStream& s_;
  int depth_ = 0;
};

class StmtParser {
 public:
  explicit StmtParser(std::vector<Piece> pieces) : pieces_(std::move(pieces)) {}

  Body parse_all() {
    Body body = parse_body({});
    if (i_ < pieces_.size()) {
      const Piece& p = pieces_[i_];
      throw_error("chat template line ", p.line, ": unexpected '{% ", p.tokens[0].text,
                  " %}' (no block is open)");
    }
    return body;
  }

 private:
  // Statements until a tag whose keyword is in `ends` (left unconsumed) or the end of the template.
  Body parse_body(std::initializer_list<std::string_view> ends) {
    Body body;
    while (i_ < pieces_.size()) {
      const Piece& p = pieces_[i_];
      if (p.kind == Piece::Kind::kText) {
        Stmt s;
        s.kind = Stmt::Kind::kText;
        s.line = p.line;
        s.text = p.text;
        body.push_back(std::move(s));
        ++i_;
        continue;
      }
      if (p.kind == Piece::Kind::kOutput) {
        TokenStream ts(p.tokens);
        Stmt s;
        s.kind = Stmt::Kind::kOutput;
        s.line = p.line;
        s.expr = ExprParser(ts).tuple();
        ts.expect_end("{{ }}");
        body.push_back(std::move(s));
        ++i_;
        continue;
      }
      const std::string& kw = p.tokens[0].text;
      if (p.tokens[0].kind != Token::Kind::kName)
        throw_error("chat template line ", p.line, ": expected a statement name after '{%'");
      for (std::string_view e : ends)
        if (kw == e) return body;
      if (!open_.empty() && is_closing(kw))
        throw_error("chat template line ", p.line, ": unexpected '{% ", kw,
                    " %}': the innermost open block is '{% ", open_.back().first, " %}' (line ",
                    open_.back().second, ")");
      statement(body);
    }
    return body;
  }

  static bool is_closing(std::string_view kw) {
    return kw == "endif" || kw == "endfor" || kw == "endset" || kw == "endmacro" || kw == "endgeneration" ||
           kw == "endwith" || kw == "endfilter" || kw == "elif" || kw == "else";
  }

  // Parses a block's body with the block on the open stack, for messages about misplaced end tags.
  Body block_body(std::string_view block, int line, std::initializer_list<std::string_view> ends) {
    open_.emplace_back(std::string(block), line);
    Body b = parse_body(ends);
    open_.pop_back();
    return b;
  }

  // Consumes the closing tag of a block opened at `open_line`, one of `ends`; returns its keyword.
  std::string close(std::string_view block, int open_line, std::initializer_list<std::string_view> ends) {
    if (i_ >= pieces_.size()) {
      std::string expected;
      for (std::string_view e : ends) expected += (expected.empty() ? "" : " or ") + std::string(e);
      throw_error("chat template line ", open_line, ": unclosed '{% ", block, " %}' (expected ", expected,
                  " before the end of the template)");
    }
    return pieces_[i_].tokens[0].text;
  }

  void end_tag(std::string_view kw) {
    TokenStream ts(pieces_[i_].tokens);
    ts.next();
    ts.expect_end(kw);
    ++i_;
  }

  void statement(Body& body) {
    const Piece& p = pieces_[i_];
    TokenStream ts(p.tokens);
    const std::string kw = ts.next().text;
    Stmt s;
    s.line = p.line;
    if (kw == "if") {
      ++i_;
      body.push_back(if_chain(ts, p.line));
      return;
    }
    if (kw == "for") {
      s.kind = Stmt::Kind::kFor;
      s.targets = targets(ts);
      if (!ts.skip_name("in")) ts.fail("expected 'in' in a for loop");
      ExprParser ep(ts);
      s.expr = ep.tuple(false);
      if (ts.skip_name("if")) s.filter = ep.expression();
      if (ts.is_name("recursive")) ts.fail("recursive loops are not supported");
      ts.expect_end("for");
      ++i_;
      s.body = block_body("for", p.line, {"endfor", "else"});
      if (close("for", p.line, {"endfor"}) == "else") {
        end_tag("else");
        s.else_body = block_body("for", p.line, {"endfor"});
        close("for", p.line, {"endfor"});
      }
      end_tag("endfor");
      body.push_back(std::move(s));
      return;
    }
    if (kw == "set") {
      s.targets = targets(ts);
      if (s.targets.size() == 1 && ts.skip_op(".")) s.attr = ts.expect_name();
      if (ts.skip_op("=")) {
        s.kind = Stmt::Kind::kSet;
        s.expr = ExprParser(ts).tuple();
        ts.expect_end("set");
        ++i_;
      } else {
        if (s.targets.size() != 1 || !s.attr.empty()) ts.fail("a block set takes one plain name");
        if (ts.is_op("|")) ts.fail("filters on a block set are not supported");
        ts.expect_end("set");
        s.kind = Stmt::Kind::kSetBlock;
        ++i_;
        s.body = block_body("set", p.line, {"endset"});
        close("set", p.line, {"endset"});
        end_tag("endset");
      }
      body.push_back(std::move(s));
      return;
    }
    if (kw == "macro") {
      s.kind = Stmt::Kind::kMacro;
      s.text = ts.expect_name();
      ts.expect_op("(");
      while (!ts.is_op(")")) {
        if (!s.params.empty()) ts.expect_op(",");
        if (ts.is_op(")")) break;
        std::string name = ts.expect_name();
        ExprPtr def;
        if (ts.skip_op("=")) def = ExprParser(ts).expression();
        s.params.emplace_back(std::move(name), std::move(def));
      }
      ts.expect_op(")");
      ts.expect_end("macro");
      ++i_;
      s.body = block_body("macro", p.line, {"endmacro"});
      close("macro", p.line, {"endmacro"});
      end_tag("endmacro");
      body.push_back(std::move(s));
      return;
    }
    if (kw == "with") {
      s.kind = Stmt::Kind::kWith;
      while (!ts.at_end()) {
        if (!s.params.empty()) ts.expect_op(",");
        std::string name = ts.expect_name();
        ts.expect_op("=");
        s.params.emplace_back(std::move(name), ExprParser(ts).expression());
      }
      ++i_;
      s.body = block_body("with", p.line, {"endwith"});
      close("with", p.line, {"endwith"});
      end_tag("endwith");
      body.push_back(std::move(s));
      return;
    }
    if (kw == "filter") {
      // {% filter f(args) | g %}: the chain is parsed as a filter expression over the body's text.
      s.kind = Stmt::Kind::kFilter;
      auto operand = node(Expr::Kind::kName, p.line);
      operand->name = kFilterBody;
      std::vector<Token> chain = {{Token::Kind::kOperator, "|", p.line}};
      for (size_t k = 1; k < p.tokens.size(); ++k) chain.push_back(p.tokens[k]);
      TokenStream cs(chain);
      s.expr = ExprParser(cs).filter_chain(std::move(operand));
      cs.expect_end("filter");
      ++i_;
      s.body = block_body("filter", p.line, {"endfilter"});
      close("filter", p.line, {"endfilter"});
      end_tag("endfilter");
      body.push_back(std::move(s));
      return;
    }
    if (kw == "break" || kw == "continue") {
      ts.expect_end(kw);
      s.kind = kw == "break" ? Stmt::Kind::kBreak : Stmt::Kind::kContinue;
      ++i_;
      body.push_back(std::move(s));
      return;
    }
    if (kw == "generation") {
      // transformers' AssistantTracker tag marks assistant text for masks; rendering is unchanged.
      ts.expect_end(kw);
      ++i_;
      Body inner = block_body("generation", p.line, {"endgeneration"});
      close("generation", p.line, {"endgeneration"});
      end_tag("endgeneration");
      for (Stmt& st : inner) body.push_back(std::move(st));
      return;
    }
    static const char* kEnds[] = {"endif",   "endfor",    "endset", "endmacro", "endgeneration",
                                  "endwith", "endfilter", "elif",   "else"};
    for (const char* e : kEnds)
      if (kw == e)
        throw_error("chat template line ", p.line, ": unexpected '{% ", kw,
                    " %}' (no matching block is open)");
    throw_error("chat template line ", p.line, ": the '", kw, "' statement is not supported");
  }

  Stmt if_chain(TokenStream& ts, int line) {
    Stmt s;
    s.kind = Stmt::Kind::kIf;
    s.line = line;
    s.expr = ExprParser(ts).tuple(false);
    ts.expect_end("if");
    s.body = block_body("if", line, {"elif", "else", "endif"});
    const std::string kw = close("if", line, {"endif"});
    if (kw == "elif") {
      const Piece& p = pieces_[i_];
      TokenStream es(p.tokens);
      es.next();
      ++i_;
      s.else_body.push_back(if_chain(es, p.line));  // the nested chain consumed the endif
      return s;
    }
    if (kw == "else") {
      end_tag("else");
      s.else_body = block_body("if", line, {"endif"});
      close("if", line, {"endif"});
    }
    end_tag("endif");
    return s;
  }

  // Assignment targets: `x`, `a, b` or `(a, b)`.
  static std::vector<std::string> targets(TokenStream& ts) {
    std::vector<std::string> names;
    const bool paren = ts.skip_op("(");
    names.push_back(ts.expect_name());
    while (ts.skip_op(",")) {
      if (ts.cur().kind != Token::Kind::kName || ts.is_name("in")) break;
      names.push_back(ts.expect_name());
    }
    if (paren) ts.expect_op(")");
    return names;
  }

  std::vector<Piece> pieces_;
  size_t i_ = 0;
  std::vector<std::pair<std::string, int>> open_;  // blocks being parsed: keyword and line
};

}  // namespace

Body parse(std::string_view source) {
  return StmtParser(lex(source)).parse_all();
}

}  // namespace ark::jinja
