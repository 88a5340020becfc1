// The values a chat template computes with, following Python's data model as Jinja2 exposes it: none,
// bool, int (64-bit), float, str (UTF-8; lengths, indexes and slices count code points as Python does),
// list and tuple, dict (string keys, insertion ordered like Python's dict), Jinja's namespace (the one
// mutable object: `{% set ns.x = ... %}` must be seen by every holder) and callables (globals, macros,
// bound methods such as str.startswith). Undefined is a value too, because Jinja's default Undefined
// prints as "", tests false and iterates as empty; it keeps the name it was looked up by for messages.
//
// Lists and dicts are shared immutably (ImmutableSandboxedEnvironment forbids mutating them), so copying a
// Value is cheap and never aliases anything a template could change behind another holder's back.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ark::jinja {

class Value;
using List = std::vector<Value>;

// Insertion-ordered string-keyed map; linear lookup is right for the handful of keys a message has.
struct Dict {
  std::vector<std::pair<std::string, Value>> items;

  const Value* find(std::string_view key) const;
  Value* find(std::string_view key);
  // Replaces the value of an existing key (keeping its position) or appends it, as Python's d[k] = v.
  void set(std::string key, Value value);
};

// A call's arguments: positional, then keyword (name=value) in source order.
struct CallArgs {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keyword;

  // The argument named `name` or at position `index` (keyword wins; nullptr when absent). Used by
  // builtins to read Python-style (positional-or-keyword) parameters.
  const Value* get(size_t index, std::string_view name) const;
  // Throws when more positional arguments than `max_positional` were given or a keyword is not listed.
  void check(std::string_view callee, size_t max_positional,
             std::initializer_list<std::string_view> names) const;
};

struct Function {
  std::string name;  // for messages: "raise_exception", "str.split", "macro render_tool", ...
  std::function<Value(const CallArgs&)> call;
};

class Value {
 public:
  enum class Kind : uint8_t {
    kUndefined,
    kNone,
    kBool,
    kInt,
    kFloat,
    kString,
    kList,
    kDict,
    kNamespace,
    kFunction
  };

  Value() = default;  // undefined
  Value(bool b) : kind_(Kind::kBool), int_(b) {}
  Value(int v) : kind_(Kind::kInt), int_(v) {}
  Value(int64_t v) : kind_(Kind::kInt), int_(v) {}
  Value(double v) : kind_(Kind::kFloat), float_(v) {}
  Value(std::string s) : kind_(Kind::kString), str_(std::move(s)) {}
  Value(const char* s) : kind_(Kind::kString), str_(s) {}
  Value(List list, bool tuple = false);
  Value(Dict dict);
  Value(Function f);

  static Value undefined(std::string name) {
    Value v;
    v.str_ = std::move(name);
    return v;
  }
  static Value none() {
    Value v;
    v.kind_ = Kind::kNone;
    return v;
  }
  // The items a Jinja filter yields lazily (select, selectattr, map, items, unique, reverse of a list return
  // Python generators or iterators): iterable, always true, but without len(), index or a printable form,
  // so those uses are errors here as they are (or print an address) in Jinja.
  static Value generator(List items) {
    Value v(std::move(items));
    v.generator_ = true;
    return v;
  }
  // A fresh namespace object (Jinja's namespace()); copies of the Value share it.
  static Value make_namespace(Dict attributes);

  Kind kind() const { return kind_; }
  bool is_undefined() const { return kind_ == Kind::kUndefined; }
  bool is_none() const { return kind_ == Kind::kNone; }
  bool is_bool() const { return kind_ == Kind::kBool; }
  bool is_int() const { return kind_ == Kind::kInt; }
  bool is_float() const { return kind_ == Kind::kFloat; }
  bool is_number() const { return kind_ == Kind::kInt || kind_ == Kind::kFloat || kind_ == Kind::kBool; }
  bool is_string() const { return kind_ == Kind::kString; }
  bool is_list() const { return kind_ == Kind::kList; }
  bool is_tuple() const { return kind_ == Kind::kList && tuple_; }
  bool is_generator() const { return kind_ == Kind::kList && generator_; }
  bool is_dict() const { return kind_ == Kind::kDict; }
  bool is_namespace() const { return kind_ == Kind::kNamespace; }
  bool is_function() const { return kind_ == Kind::kFunction; }

  bool as_bool() const { return int_ != 0; }
  int64_t as_int() const { return int_; }  // also a bool's 0/1
  double as_double() const { return kind_ == Kind::kFloat ? float_ : static_cast<double>(int_); }
  const std::string& as_string() const { return str_; }
  const List& as_list() const { return *list_; }
  const Dict& as_dict() const { return *dict_; }
  Dict& namespace_attributes() const { return *dict_; }  // shared, deliberately mutable
  const Function& as_function() const { return *function_; }
  // The name an undefined value was looked up by ("" when it has none).
  const std::string& undefined_name() const { return str_; }

  // Python's type name, for messages: "str", "int", "list", "dict", "undefined", ...
  std::string_view type_name() const;

 private:
  Kind kind_ = Kind::kUndefined;
  bool tuple_ = false;
  bool generator_ = false;
  int64_t int_ = 0;
  double float_ = 0;
  std::string str_;
  std::shared_ptr<const List> list_;
  std::shared_ptr<Dict> dict_;  // dict (never mutated after construction) or namespace attributes
  std::shared_ptr<const Function> function_;
};

// Python's bool(v); undefined is false.
bool truthy(const Value& v);
// Python's str(v) as Jinja prints it ({{ v }}): undefined -> "", none -> "None", floats as repr.
std::string to_str(const Value& v);
// Python's repr(v) (strings quoted), used inside printed lists and dicts.
std::string to_repr(const Value& v);
// Python's ==, with 1 == 1.0 == True.
bool equals(const Value& a, const Value& b);
// Python's <, for numbers, strings and lists; throws for other pairs as Python raises TypeError.
bool less(const Value& a, const Value& b);
// Python's repr of a float (shortest round-trip digits, "1.0", "1e+20", "inf").
std::string float_repr(double d);

}  // namespace ark::jinja
