// Python operator semantics (jinja/operators.h).
#include "runtime/jinja/operators.h"

#include <cmath>

#include "ark/error.h"
#include "runtime/jinja/utf8.h"

namespace ark::jinja {

namespace {

[[noreturn]] void unsupported(std::string_view op, const Value& a, const Value& b) {
  throw_error("unsupported operand type(s) for ", op, ": '", a.type_name(), "' and '", b.type_name(), "'");
}

int64_t floor_div(int64_t a, int64_t b) {
  if (a == INT64_MIN && b == -1) throw_error("integer overflow (ark's integers are 64-bit)");
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

// A bound on what one operation may build, so a template cannot exhaust memory ('x' * 10**12).
constexpr size_t kMaxBuilt = size_t{1} << 28;

[[noreturn]] void overflow() {
  throw_error("integer overflow (ark's integers are 64-bit)");
}

int64_t add_int(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_add_overflow(a, b, &r)) overflow();
  return r;
}
int64_t sub_int(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_sub_overflow(a, b, &r)) overflow();
  return r;
}
int64_t mul_int(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_mul_overflow(a, b, &r)) overflow();
  return r;
}
int64_t pow_int(int64_t a, int64_t b) {
  if (a == 0) return b == 0 ? 1 : 0;
  if (a == 1) return 1;
  if (a == -1) return b % 2 ? -1 : 1;
  int64_t p = 1;
  for (int64_t i = 0; i < b; ++i) p = mul_int(p, a);  // overflows within 63 steps for |a| >= 2
  return p;
}

// CPython's float floor division (float_divmod): through fmod, so 1 // 0.1 is 9.0 as in Python.
double float_floor_div(double x, double y) {
  double mod = std::fmod(x, y);
  double div = (x - mod) / y;
  if (mod != 0 && ((y < 0) != (mod < 0))) div -= 1.0;
  if (div == 0) return std::copysign(0.0, x / y);
  double floordiv = std::floor(div);
  if (div - floordiv > 0.5) floordiv += 1.0;
  return floordiv;
}

Value repeat(const Value& seq, int64_t n) {
  const size_t unit = seq.is_string() ? seq.as_string().size() : seq.as_list().size();
  ARK_CHECK(n <= 0 || unit == 0 || static_cast<size_t>(n) <= kMaxBuilt / unit, "repetition result too large");
  if (seq.is_string()) {
    std::string out;
    for (int64_t i = 0; i < n; ++i) out += seq.as_string();
    return Value(std::move(out));
  }
  List out;
  for (int64_t i = 0; i < n; ++i) out.insert(out.end(), seq.as_list().begin(), seq.as_list().end());
  return Value(std::move(out), seq.is_tuple());
}

}  // namespace

Value binary_op(std::string_view op, const Value& a, const Value& b) {
  if (op == "~") return Value(to_str(a) + to_str(b));
  if (op == "%" && a.is_string()) throw_error("printf-style '%' string formatting is not supported");
  if (a.is_undefined() || b.is_undefined())
    throw_error((a.is_undefined() ? a : b).undefined_name().empty()
                    ? "undefined value in arithmetic"
                    : (a.is_undefined() ? a : b).undefined_name());
  const bool nums = a.is_number() && b.is_number();
  const bool ints = nums && !a.is_float() && !b.is_float();
  if (op == "+") {
    if (ints) return Value(add_int(a.as_int(), b.as_int()));
    if (nums) return Value(a.as_double() + b.as_double());
    if (a.is_string() && b.is_string()) return Value(a.as_string() + b.as_string());
    if (a.is_list() && b.is_list() && a.is_tuple() == b.is_tuple() && !a.is_generator() &&
        !b.is_generator()) {
      List out = a.as_list();
      out.insert(out.end(), b.as_list().begin(), b.as_list().end());
      return Value(std::move(out), a.is_tuple());
    }
    if (a.is_string()) throw_error("can only concatenate str (not \"", b.type_name(), "\") to str");
    unsupported(op, a, b);
  }
  if (op == "-") {
    if (ints) return Value(sub_int(a.as_int(), b.as_int()));
    if (nums) return Value(a.as_double() - b.as_double());
    unsupported(op, a, b);
  }
  if (op == "*") {
    if (ints) return Value(mul_int(a.as_int(), b.as_int()));
    if (nums) return Value(a.as_double() * b.as_double());
    if ((a.is_string() || (a.is_list() && !a.is_generator())) && b.is_number() && !b.is_float())
      return repeat(a, b.as_int());
    if ((b.is_string() || (b.is_list() && !b.is_generator())) && a.is_number() && !a.is_float())
      return repeat(b, a.as_int());
    unsupported(op, a, b);
  }
  if (op == "/") {
    if (!nums) unsupported(op, a, b);
    ARK_CHECK(b.as_double() != 0.0, "division by zero");
    return Value(a.as_double() / b.as_double());
  }
  if (op == "//") {
    if (!nums) unsupported(op, a, b);
    ARK_CHECK(b.as_double() != 0.0, "integer division or modulo by zero");
    if (ints) return Value(floor_div(a.as_int(), b.as_int()));
    return Value(float_floor_div(a.as_double(), b.as_double()));
  }
  if (op == "%") {
    if (a.is_string()) throw_error("printf-style '%' string formatting is not supported");
    if (!nums) unsupported(op, a, b);
    ARK_CHECK(b.as_double() != 0.0, "integer division or modulo by zero");
    if (ints) return Value(a.as_int() - floor_div(a.as_int(), b.as_int()) * b.as_int());
    const double x = a.as_double(), y = b.as_double();
    double m = std::fmod(x, y);
    if (m != 0 && ((m < 0) != (y < 0))) m += y;
    if (m == 0) m = std::copysign(0.0, y);  // CPython: a zero remainder takes the divisor's sign
    return Value(m);
  }
  if (op == "**") {
    if (!nums) unsupported(op, a, b);
    if (ints && b.as_int() >= 0) return Value(pow_int(a.as_int(), b.as_int()));
    return Value(std::pow(a.as_double(), b.as_double()));
  }
  throw_error("unknown operator '", op, "'");
}

Value negate(const Value& v) {
  if (v.is_float()) return Value(-v.as_double());
  if (v.is_number()) return Value(sub_int(0, v.as_int()));
  throw_error("bad operand type for unary -: '", v.type_name(), "'");
}

bool contains(const Value& haystack, const Value& needle) {
  switch (haystack.kind()) {
    case Value::Kind::kUndefined:
      return false;
    case Value::Kind::kString:
      ARK_CHECK(needle.is_string(), "'in <string>' requires string as left operand, not ",
                needle.type_name());
      return haystack.as_string().find(needle.as_string()) != std::string::npos;
    case Value::Kind::kDict:
      ARK_CHECK(!needle.is_dict() && !(needle.is_list() && !needle.is_tuple()) && !needle.is_namespace(),
                "unhashable type: '", needle.type_name(), "'");
      return needle.is_string() && haystack.as_dict().find(needle.as_string()) != nullptr;
    case Value::Kind::kList:
      for (const Value& x : haystack.as_list())
        if (equals(x, needle)) return true;
      return false;
    default:
      throw_error("argument of type '", haystack.type_name(), "' is not iterable");
  }
}

Value get_item(const Value& obj, const Value& key) {
  if (obj.is_undefined())
    throw_error(obj.undefined_name().empty() ? "subscript of an undefined value" : obj.undefined_name());
  if (obj.is_generator()) return Value::undefined("'generator object' is not subscriptable");
  if ((obj.is_list() || obj.is_string()) && key.is_number() && !key.is_float()) {
    int64_t i = key.as_int();
    if (obj.is_list()) {
      const auto n = static_cast<int64_t>(obj.as_list().size());
      if (i < 0) i += n;
      if (i < 0 || i >= n)
        return Value::undefined(std::string(obj.type_name()) + " object has no element " +
                                std::to_string(key.as_int()));
      return obj.as_list()[static_cast<size_t>(i)];
    }
    const std::vector<size_t> off = code_point_offsets(obj.as_string());
    const auto n = static_cast<int64_t>(off.size()) - 1;
    if (i < 0) i += n;
    if (i < 0 || i >= n) return Value::undefined("str object has no element " + std::to_string(key.as_int()));
    const auto u = static_cast<size_t>(i);
    return Value(std::string(std::string_view(obj.as_string()).substr(off[u], off[u + 1] - off[u])));
  }
  if ((obj.is_dict() || obj.is_namespace()) && key.is_string()) {
    const Dict& d = obj.is_dict() ? obj.as_dict() : obj.namespace_attributes();
    if (const Value* v = d.find(key.as_string())) return *v;
    return Value::undefined("'dict object' has no attribute '" + key.as_string() + "'");
  }
  return Value::undefined("'" + std::string(obj.type_name()) + " object' has no attribute '" + to_str(key) +
                          "'");
}

Value slice(const Value& obj, const std::optional<int64_t>& start, const std::optional<int64_t>& stop,
            const std::optional<int64_t>& step_in) {
  ARK_CHECK((obj.is_list() && !obj.is_generator()) || obj.is_string(), "'", obj.type_name(),
            "' object is not subscriptable");
  const int64_t step = step_in.value_or(1);
  ARK_CHECK(step != 0, "slice step cannot be zero");
  std::vector<size_t> off;
  int64_t n;
  if (obj.is_string()) {
    off = code_point_offsets(obj.as_string());
    n = static_cast<int64_t>(off.size()) - 1;
  } else {
    n = static_cast<int64_t>(obj.as_list().size());
  }
  // CPython's PySlice_AdjustIndices.
  auto adjust = [&](const std::optional<int64_t>& v, int64_t dflt) {
    if (!v) return dflt;
    int64_t x = *v;
    if (x < 0) {
      x += n;
      if (x < 0) x = step < 0 ? -1 : 0;
    } else if (x >= n) {
      x = step < 0 ? n - 1 : n;
    }
    return x;
  };
  const int64_t b = adjust(start, step < 0 ? n - 1 : 0);
  const int64_t e = adjust(stop, step < 0 ? -1 : n);
  std::vector<int64_t> idx;
  for (int64_t i = b; step > 0 ? i < e : i > e; i += step) idx.push_back(i);
  if (obj.is_string()) {
    std::string out;
    for (int64_t i : idx) {
      const auto u = static_cast<size_t>(i);
      out += obj.as_string().substr(off[u], off[u + 1] - off[u]);
    }
    return Value(std::move(out));
  }
  List out;
  for (int64_t i : idx) out.push_back(obj.as_list()[static_cast<size_t>(i)]);
  return Value(std::move(out), obj.is_tuple());
}

}  // namespace ark::jinja
