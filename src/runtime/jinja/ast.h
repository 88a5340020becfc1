// The parsed template: expression and statement trees, each node with the source line it came from so
// that evaluation errors can name it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "runtime/jinja/value.h"

namespace ark::jinja {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Expr {
  enum class Kind : uint8_t {
    kLiteral,  // value
    kName,     // name
    kList,     // args: items
    kTuple,    // args: items
    kDict,     // args: key, value, key, value, ...
    kGetAttr,  // args[0].name
    kGetItem,  // args[0][args[1]]
    kSlice,    // args[0][args[1]:args[2]:args[3]] (null parts omitted)
    kCall,     // args[0](args[1..], kwargs)
    kFilter,   // args[0] | name(args[1..], kwargs)
    kTest,     // args[0] is name(args[1..], kwargs)
    kUnary,    // op args[0]: "not", "-", "+"
    kBinary,   // args[0] op args[1]: + - * / // % ** ~ and or in "not in"
    kCompare,  // args[0] ops[0] args[1] ops[1] args[2] ... (Python's chained comparison)
    kCond,     // args[0] if args[1] else args[2] (args[2] null: undefined)
  };
  Kind kind = Kind::kLiteral;
  int line = 1;
  Value value;
  std::string name;
  std::vector<std::string> ops;
  std::vector<ExprPtr> args;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
};

struct Stmt;
using Body = std::vector<Stmt>;

// The variable a {% filter %} block's chain reads its rendered body from (not a name a template can write).
inline constexpr const char* kFilterBody = "\x01filter body";

struct Stmt {
  enum class Kind : uint8_t {
    kText,      // text
    kOutput,    // {{ expr }}
    kIf,        // if expr: body, else: else_body (elif nests an If in else_body)
    kFor,       // for targets in expr [if filter]: body, else: else_body
    kSet,       // set targets = expr, or set targets[0].attr = expr (namespace attribute)
    kSetBlock,  // set targets[0] %}body{% endset
    kMacro,     // macro name(params) body
    kWith,      // with params (name = value, evaluated outside): body in a scope of its own
    kFilter,    // filter expr (a filter chain applied to the rendered body, named by kFilterBody)
    kBreak,
    kContinue,
  };
  Kind kind = Kind::kText;
  int line = 1;
  std::string text;
  ExprPtr expr;
  ExprPtr filter;
  std::vector<std::string> targets;
  std::string attr;
  std::vector<std::pair<std::string, ExprPtr>> params;  // macro parameters and defaults (null: required)
  Body body, else_body;
};

}  // namespace ark::jinja
