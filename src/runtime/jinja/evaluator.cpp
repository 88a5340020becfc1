// Template evaluation (jinja/evaluator.h).
#include "runtime/jinja/evaluator.h"

#include <optional>

#include "ark/error.h"
#include "runtime/jinja/builtins.h"
#include "runtime/jinja/operators.h"

namespace ark::jinja {

namespace {

// An error already prefixed with its template line, so outer nodes pass it through unchanged.
class LocatedError : public Error {
 public:
  using Error::Error;
};

[[noreturn]] void rethrow_at(int line) {
  try {
    throw;
  } catch (const LocatedError&) {
    throw;
  } catch (const std::exception& e) {
    throw LocatedError("chat template line " + std::to_string(line) + ": " + e.what());
  }
}

struct Scope {
  Dict vars;
  Scope* parent = nullptr;

  const Value* lookup(const std::string& name) const {
    for (const Scope* s = this; s; s = s->parent)
      if (const Value* v = s->vars.find(name)) return v;
    return nullptr;
  }
};

enum class Flow : uint8_t { kNormal, kBreak, kContinue };

class Evaluator {
 public:
  explicit Evaluator(const Dict& variables) {
    add_globals(root_.vars);
    for (const auto& [k, v] : variables.items) root_.vars.set(k, v);
  }

  std::string run(const Body& program) {
    std::string out;
    exec_body(program, root_, out);
    return out;
  }

 private:
  Flow exec_body(const Body& body, Scope& scope, std::string& out) {
    for (const Stmt& s : body) {
      const Flow f = exec(s, scope, out);
      if (f != Flow::kNormal) return f;
    }
    return Flow::kNormal;
  }

  Flow exec(const Stmt& s, Scope& scope, std::string& out) {
    try {
      switch (s.kind) {
        case Stmt::Kind::kText:
          out += s.text;
          return Flow::kNormal;
        case Stmt::Kind::kOutput:
          out += to_str(eval(*s.expr, scope));
          return Flow::kNormal;
        case Stmt::Kind::kIf:
          return exec_body(truthy(eval(*s.expr, scope)) ? s.body : s.else_body, scope, out);
        case Stmt::Kind::kFor:
          return exec_for(s, scope, out);
        case Stmt::Kind::kSet:
          assign(s, eval(*s.expr, scope), scope);
          return Flow::kNormal;
        case Stmt::Kind::kSetBlock: {
          std::string text;
          Scope inner{{}, &scope};
          exec_body(s.body, inner, text);
          scope.vars.set(s.targets[0], Value(std::move(text)));
          return Flow::kNormal;
        }
        case Stmt::Kind::kWith: {
          Scope inner{{}, &scope};
          for (const auto& [name, value] : s.params) inner.vars.set(name, eval(*value, scope));
          return exec_body(s.body, inner, out);
        }
        case Stmt::Kind::kFilter: {
          Scope inner{{}, &scope};
          std::string text;
          const Flow f = exec_body(s.body, inner, text);
          inner.vars.set(kFilterBody, Value(std::move(text)));
          out += to_str(eval(*s.expr, inner));
          return f;
        }
        case Stmt::Kind::kMacro:
          scope.vars.set(s.text, make_macro(s));
          return Flow::kNormal;
        case Stmt::Kind::kBreak:
        case Stmt::Kind::kContinue:
          if (loop_depth_ == 0)
            throw_error("'", s.kind == Stmt::Kind::kBreak ? "break" : "continue", "' outside a for loop");
          return s.kind == Stmt::Kind::kBreak ? Flow::kBreak : Flow::kContinue;
      }
    } catch (...) {
      rethrow_at(s.line);
    }
    return Flow::kNormal;
  }

  void assign(const Stmt& s, const Value& v, Scope& scope) {
    if (!s.attr.empty()) {
      const Value* ns = scope.lookup(s.targets[0]);
      if (!ns || !ns->is_namespace())
        throw_error("can only set attributes on a namespace() object ('", s.targets[0], "' is ",
                    ns ? ns->type_name() : "undefined", ")");
      ns->namespace_attributes().set(s.attr, v);
      return;
    }
    if (s.targets.size() == 1) {
      scope.vars.set(s.targets[0], v);
      return;
    }
    unpack(s.targets, v, scope);
  }

  static void unpack(const std::vector<std::string>& targets, const Value& v, Scope& scope) {
    const std::vector<Value> items = iterate(v);
    if (items.size() != targets.size())
      throw_error("cannot unpack ", items.size(), " values into ", targets.size(), " names");
    for (size_t i = 0; i < targets.size(); ++i) scope.vars.set(targets[i], items[i]);
  }

  Flow exec_for(const Stmt& s, Scope& scope, std::string& out) {
    const Value seq = eval(*s.expr, scope);
    std::vector<Value> items = iterate(seq);
    if (s.filter) {
      // `for x in xs if cond`: filtered before the loop, so loop.length counts what remains.
      std::vector<Value> kept;
      for (const Value& x : items) {
        Scope probe{{}, &scope};
        bind_target(s.targets, x, probe);
        if (truthy(eval(*s.filter, probe))) kept.push_back(x);
      }
      items = std::move(kept);
    }
    if (items.empty()) {
      Scope inner{{}, &scope};
      exec_body(s.else_body, inner, out);
      return Flow::kNormal;
    }
    const auto n = static_cast<int64_t>(items.size());
    ++loop_depth_;
    for (int64_t i = 0; i < n; ++i) {
      Scope iter{{}, &scope};
      Dict loop;
      loop.set("index", Value(i + 1));
      loop.set("index0", Value(i));
      loop.set("revindex", Value(n - i));
      loop.set("revindex0", Value(n - i - 1));
      loop.set("first", Value(i == 0));
      loop.set("last", Value(i == n - 1));
      loop.set("length", Value(n));
      loop.set("depth", Value(static_cast<int64_t>(1)));
      loop.set("depth0", Value(static_cast<int64_t>(0)));
      loop.set("previtem",
               i > 0 ? items[static_cast<size_t>(i - 1)] : Value::undefined("there is no previous item"));
      loop.set("nextitem",
               i + 1 < n ? items[static_cast<size_t>(i + 1)] : Value::undefined("there is no next item"));
      const size_t index = static_cast<size_t>(i);
      loop.set("cycle", Value(Function{"loop.cycle", [index](const CallArgs& a) {
                                         if (a.positional.empty() || !a.keyword.empty())
                                           throw_error("loop.cycle() takes one or more positional arguments");
                                         return a.positional[index % a.positional.size()];
                                       }}));
      iter.vars.set("loop", Value(std::move(loop)));
      bind_target(s.targets, items[static_cast<size_t>(i)], iter);
      const Flow f = exec_body(s.body, iter, out);
      if (f == Flow::kBreak) break;
    }
    --loop_depth_;
    return Flow::kNormal;
  }

  static void bind_target(const std::vector<std::string>& targets, const Value& item, Scope& scope) {
    if (targets.size() == 1) {
      scope.vars.set(targets[0], item);
    } else {
      unpack(targets, item, scope);
    }
  }

  Value make_macro(const Stmt& s) {
    const Stmt* m = &s;
    return Value(Function{"macro " + s.text, [this, m](const CallArgs& a) {
                            Scope scope{{}, &root_};
                            if (a.positional.size() > m->params.size())
                              throw_error("macro '", m->text, "' takes ", m->params.size(), " arguments (",
                                          a.positional.size(), " given)");
                            for (const auto& [k, v] : a.keyword) {
                              bool known = false;
                              for (const auto& p : m->params) known = known || p.first == k;
                              if (!known) throw_error("macro '", m->text, "' has no parameter '", k, "'");
                            }
                            for (size_t i = 0; i < m->params.size(); ++i) {
                              const auto& [name, dflt] = m->params[i];
                              const Value* given = a.get(i, name);
                              if (given) {
                                scope.vars.set(name, *given);
                              } else if (dflt) {
                                scope.vars.set(name, eval(*dflt, scope));
                              } else {
                                scope.vars.set(name, Value::undefined("macro '" + m->text + "': parameter '" +
                                                                      name + "' was not given"));
                              }
                            }
                            if (macro_depth_ >= 64)
                              throw_error("macro '", m->text, "': calls nested more than 64 deep");
                            ++macro_depth_;
                            struct Leave {
                              int& d;
                              ~Leave() { --d; }
                            } leave{macro_depth_};
                            std::string text;
                            const int saved = loop_depth_;
                            loop_depth_ = 0;
                            exec_body(m->body, scope, text);
                            loop_depth_ = saved;
                            return Value(std::move(text));
                          }});
  }

  CallArgs eval_args(const Expr& e, size_t first, Scope& scope) {
    CallArgs a;
    for (size_t i = first; i < e.args.size(); ++i) a.positional.push_back(eval(*e.args[i], scope));
    for (const auto& [k, x] : e.kwargs) a.keyword.emplace_back(k, eval(*x, scope));
    return a;
  }

  std::optional<int64_t> slice_part(const ExprPtr& e, Scope& scope) {
    if (!e) return std::nullopt;
    const Value v = eval(*e, scope);
    if (v.is_none()) return std::nullopt;
    if (!v.is_number() || v.is_float())
      throw_error("slice indices must be integers or None, not ", v.type_name());
    return v.as_int();
  }

  Value eval(const Expr& e, Scope& scope) {
    try {
      return eval_node(e, scope);
    } catch (...) {
      rethrow_at(e.line);
    }
  }

  Value eval_node(const Expr& e, Scope& scope) {
    switch (e.kind) {
      case Expr::Kind::kLiteral:
        return e.value;
      case Expr::Kind::kName: {
        if (const Value* v = scope.lookup(e.name)) return *v;
        return Value::undefined("'" + e.name + "' is undefined");
      }
      case Expr::Kind::kList:
      case Expr::Kind::kTuple: {
        List items;
        for (const auto& x : e.args) items.push_back(eval(*x, scope));
        return Value(std::move(items), e.kind == Expr::Kind::kTuple);
      }
      case Expr::Kind::kDict: {
        Dict d;
        for (size_t i = 0; i + 1 < e.args.size(); i += 2) {
          const Value k = eval(*e.args[i], scope);
          if (!k.is_string()) throw_error("dict keys must be strings here (got ", k.type_name(), ")");
          d.set(k.as_string(), eval(*e.args[i + 1], scope));
        }
        return Value(std::move(d));
      }
      case Expr::Kind::kGetAttr:
        return get_attr(eval(*e.args[0], scope), e.name);
      case Expr::Kind::kGetItem: {
        const Value obj = eval(*e.args[0], scope);
        const Value key = eval(*e.args[1], scope);
        Value v = get_item(obj, key);
        // Jinja's getitem falls back to the attribute for string keys (d['items'] on a dict without that
        // key).
        if (v.is_undefined() && key.is_string() && !obj.is_undefined()) {
          Value a = get_attr(obj, key.as_string());
          if (!a.is_undefined()) return a;
        }
        return v;
      }
      case Expr::Kind::kSlice: {
        const Value obj = eval(*e.args[0], scope);
        if (obj.is_undefined()) throw_error(obj.undefined_name());
        return slice(obj, slice_part(e.args[1], scope), slice_part(e.args[2], scope),
                     slice_part(e.args[3], scope));
      }
      case Expr::Kind::kCall: {
        const Value callee = eval(*e.args[0], scope);
        if (!callee.is_function()) {
          if (callee.is_undefined())
            throw_error(callee.undefined_name().empty() ? "call of an undefined value"
                                                        : callee.undefined_name());
          throw_error("'", callee.type_name(), "' object is not callable");
        }
        return callee.as_function().call(eval_args(e, 1, scope));
      }
      case Expr::Kind::kFilter:
        return apply_filter(e.name, eval(*e.args[0], scope), eval_args(e, 1, scope));
      case Expr::Kind::kTest:
        return Value(apply_test(e.name, eval(*e.args[0], scope), eval_args(e, 1, scope)));
      case Expr::Kind::kUnary: {
        const Value v = eval(*e.args[0], scope);
        if (e.name == "not") return Value(!truthy(v));
        if (e.name == "-") return negate(v);
        if (!v.is_number()) throw_error("bad operand type for unary +: '", v.type_name(), "'");
        return v.is_bool() ? Value(v.as_int()) : v;
      }
      case Expr::Kind::kBinary: {
        // and/or return an operand, as in Python.
        if (e.name == "and" || e.name == "or") {
          Value l = eval(*e.args[0], scope);
          if (truthy(l) == (e.name == "or")) return l;
          return eval(*e.args[1], scope);
        }
        return binary_op(e.name, eval(*e.args[0], scope), eval(*e.args[1], scope));
      }
      case Expr::Kind::kCompare: {
        Value l = eval(*e.args[0], scope);
        for (size_t i = 0; i < e.ops.size(); ++i) {
          Value r = eval(*e.args[i + 1], scope);
          const std::string& op = e.ops[i];
          bool ok;
          if (op == "==") {
            ok = equals(l, r);
          } else if (op == "!=") {
            ok = !equals(l, r);
          } else if (op == "<") {
            ok = less(l, r);
          } else if (op == ">") {
            ok = less(r, l);
          } else if (op == "<=") {
            ok = !less(r, l);
          } else if (op == ">=") {
            ok = !less(l, r);
          } else if (op == "in") {
            ok = contains(r, l);
          } else {
            ok = !contains(r, l);
          }
          if (!ok) return Value(false);
          l = std::move(r);
        }
        return Value(true);
      }
      case Expr::Kind::kCond: {
        if (truthy(eval(*e.args[1], scope))) return eval(*e.args[0], scope);
        if (e.args[2]) return eval(*e.args[2], scope);
        return Value::undefined("the inline if expression had no else branch");
      }
    }
    throw_error("unknown expression");
  }

  Scope root_;
  int loop_depth_ = 0;
  int macro_depth_ = 0;
};

}  // namespace

std::string render(const Body& program, const Dict& variables) {
  return Evaluator(variables).run(program);
}

}  // namespace ark::jinja
