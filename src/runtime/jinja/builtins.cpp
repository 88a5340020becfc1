// Filters, tests, methods and globals (jinja/builtins.h). Each follows the Python implementation in
// jinja2/filters.py, jinja2/tests.py or CPython's str/dict where a template could tell the difference.
#include "runtime/jinja/builtins.h"

#include <algorithm>
#include <cctype>
#include <ctime>
#include <set>

#include "ark/error.h"
#include "runtime/jinja/json.h"
#include "runtime/jinja/operators.h"
#include "runtime/jinja/utf8.h"

namespace ark::jinja {

namespace {

const std::string& need_string(const Value* v, std::string_view what) {
  ARK_CHECK(v && v->is_string(), what, ": expected a string, got ", v ? v->type_name() : "nothing");
  return v->as_string();
}

int64_t need_int(const Value* v, std::string_view what) {
  ARK_CHECK(v && v->is_number() && !v->is_float(), what, ": expected an integer, got ",
            v ? v->type_name() : "nothing");
  return v->as_int();
}

bool is_none_or_absent(const Value* v) {
  return !v || v->is_none();
}

// Jinja's title filter (not str.title): words start after runs of whitespace or - ( { [ <, and each word is
// its first character upper-cased and the rest lower-cased.
std::string jinja_title(const std::string& s) {
  std::string out;
  size_t i = 0, len = 0;
  bool word_start = true;
  while (i < s.size()) {
    const uint32_t cp = decode_code_point(s, i, &len);
    const bool sep = is_py_space(cp) || cp == '-' || cp == '(' || cp == '{' || cp == '[' || cp == '<';
    const std::string_view one = std::string_view(s).substr(i, len);
    if (sep) {
      out += one;
    } else {
      out += word_start ? py_upper(one) : py_lower(one);
    }
    word_start = sep;
    i += len;
  }
  return out;
}

// str.split(sep=None, maxsplit=-1).
Value py_split(const std::string& s, const Value* sep, int64_t maxsplit) {
  List out;
  if (is_none_or_absent(sep)) {
    size_t i = 0, len = 0;
    auto skip_space = [&] {
      while (i < s.size() && is_py_space(decode_code_point(s, i, &len))) i += len;
    };
    skip_space();
    while (i < s.size()) {
      if (maxsplit >= 0 && static_cast<int64_t>(out.size()) == maxsplit) {
        out.push_back(Value(s.substr(i)));
        return Value(std::move(out));
      }
      const size_t b = i;
      while (i < s.size() && !is_py_space(decode_code_point(s, i, &len))) i += len;
      out.push_back(Value(s.substr(b, i - b)));
      skip_space();
    }
    return Value(std::move(out));
  }
  const std::string& d = need_string(sep, "str.split");
  ARK_CHECK(!d.empty(), "str.split: empty separator");
  size_t b = 0;
  while (true) {
    const size_t e =
        (maxsplit >= 0 && static_cast<int64_t>(out.size()) == maxsplit) ? std::string::npos : s.find(d, b);
    if (e == std::string::npos) {
      out.push_back(Value(s.substr(b)));
      return Value(std::move(out));
    }
    out.push_back(Value(s.substr(b, e - b)));
    b = e + d.size();
  }
}

Value py_rsplit(const std::string& s, const Value* sep, int64_t maxsplit) {
  if (maxsplit < 0) return py_split(s, sep, -1);
  ARK_CHECK(!is_none_or_absent(sep), "str.rsplit without a separator and with maxsplit is not supported");
  const std::string& d = need_string(sep, "str.rsplit");
  ARK_CHECK(!d.empty(), "str.rsplit: empty separator");
  List rev;
  size_t e = s.size();
  while (true) {
    const size_t p = static_cast<int64_t>(rev.size()) == maxsplit || e < d.size() ? std::string::npos
                                                                                  : s.rfind(d, e - d.size());
    if (p == std::string::npos) {
      rev.push_back(Value(s.substr(0, e)));
      break;
    }
    rev.push_back(Value(s.substr(p + d.size(), e - p - d.size())));
    e = p;
  }
  std::reverse(rev.begin(), rev.end());
  return Value(std::move(rev));
}

// str.replace(old, new, count=-1), including Python's empty `old` (insert between code points).
std::string py_replace(const std::string& s, const std::string& from, const std::string& to, int64_t count) {
  std::string out;
  if (from.empty()) {
    const std::vector<size_t> off = code_point_offsets(s);
    int64_t done = 0;
    for (size_t i = 0; i + 1 < off.size(); ++i) {
      if (count < 0 || done < count) {
        out += to;
        ++done;
      }
      out += s.substr(off[i], off[i + 1] - off[i]);
    }
    if (count < 0 || done < count) out += to;
    return out;
  }
  size_t b = 0;
  int64_t done = 0;
  while (count < 0 || done < count) {
    const size_t e = s.find(from, b);
    if (e == std::string::npos) break;
    out += s.substr(b, e - b) + to;
    b = e + from.size();
    ++done;
  }
  return out + s.substr(b);
}

bool prefix_match(const std::string& s, const Value& p, bool suffix, std::string_view what) {
  auto one = [&](const Value& x) {
    const std::string& t = need_string(&x, what);
    return suffix ? s.ends_with(t) : s.starts_with(t);
  };
  if (p.is_list()) {
    for (const Value& x : p.as_list())
      if (one(x)) return true;
    return false;
  }
  return one(p);
}

Function method(std::string name, std::function<Value(const CallArgs&)> fn) {
  return Function{std::move(name), std::move(fn)};
}

Value string_method(const std::string& s, const std::string& name) {
  const std::string full = "str." + name;
  if (name == "startswith" || name == "endswith") {
    const bool suffix = name == "endswith";
    return method(full, [s, suffix, full](const CallArgs& a) {
      ARK_CHECK(a.positional.size() == 1 && a.keyword.empty(), full,
                "() takes exactly one argument (start/end are not supported)");
      return Value(prefix_match(s, a.positional[0], suffix, full));
    });
  }
  if (name == "split" || name == "rsplit") {
    const bool right = name == "rsplit";
    return method(full, [s, right, full](const CallArgs& a) {
      a.check(full, 2, {"sep", "maxsplit"});
      const Value* m = a.get(1, "maxsplit");
      const int64_t maxsplit = m ? need_int(m, full) : -1;
      return right ? py_rsplit(s, a.get(0, "sep"), maxsplit) : py_split(s, a.get(0, "sep"), maxsplit);
    });
  }
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    const bool left = name != "rstrip", right = name != "lstrip";
    return method(full, [s, left, right, full](const CallArgs& a) {
      a.check(full, 1, {});
      const Value* c = a.get(0, "");
      return Value(py_strip(s, is_none_or_absent(c) ? nullptr : &need_string(c, full), left, right));
    });
  }
  if (name == "replace") {
    return method(full, [s, full](const CallArgs& a) {
      a.check(full, 3, {"count"});
      ARK_CHECK(a.positional.size() >= 2, full, "() needs old and new");
      const Value* c = a.get(2, "count");
      return Value(py_replace(s, need_string(&a.positional[0], full), need_string(&a.positional[1], full),
                              c ? need_int(c, full) : -1));
    });
  }
  if (name == "lower" || name == "upper" || name == "title" || name == "capitalize") {
    return method(full, [s, name, full](const CallArgs& a) {
      a.check(full, 0, {});
      if (name == "lower") return Value(py_lower(s));
      if (name == "upper") return Value(py_upper(s));
      if (name == "title") return Value(py_title(s));
      return Value(py_capitalize(s));
    });
  }
  if (name == "find" || name == "rfind" || name == "count") {
    return method(full, [s, name, full](const CallArgs& a) {
      ARK_CHECK(a.positional.size() == 1 && a.keyword.empty(), full,
                "() takes exactly one argument (start/end are not supported)");
      const std::string& sub = need_string(&a.positional[0], full);
      if (name == "count") {
        if (sub.empty()) return Value(static_cast<int64_t>(code_point_count(s) + 1));
        int64_t n = 0;
        for (size_t p = s.find(sub); p != std::string::npos; p = s.find(sub, p + sub.size())) ++n;
        return Value(n);
      }
      const size_t p = name == "find" ? s.find(sub) : s.rfind(sub);
      if (p == std::string::npos) return Value(static_cast<int64_t>(-1));
      return Value(static_cast<int64_t>(code_point_count(std::string_view(s).substr(0, p))));
    });
  }
  if (name == "join") {
    return method(full, [s, full](const CallArgs& a) {
      a.check(full, 1, {});
      ARK_CHECK(a.positional.size() == 1, full, "() takes exactly one argument");
      std::string out;
      bool first = true;
      for (const Value& x : iterate(a.positional[0])) {
        if (!first) out += s;
        out += need_string(&x, full);
        first = false;
      }
      return Value(std::move(out));
    });
  }
  static const std::set<std::string> kPython = {
      "capitalize", "casefold",  "center",       "encode",       "expandtabs", "format",  "format_map",
      "index",      "isalnum",   "isalpha",      "isascii",      "isdecimal",  "isdigit", "isidentifier",
      "islower",    "isnumeric", "isprintable",  "isspace",      "istitle",    "isupper", "ljust",
      "maketrans",  "partition", "removeprefix", "removesuffix", "rindex",     "rjust",   "rpartition",
      "splitlines", "swapcase",  "translate",    "zfill"};
  if (kPython.count(name)) return Value::undefined(full + " is not supported");
  return Value::undefined("'str object' has no attribute '" + name + "'");
}

Value dict_method(const Value& d, const std::string& name) {
  const std::string full = "dict." + name;
  if (name == "get") {
    return method(full, [d, full](const CallArgs& a) {
      a.check(full, 2, {});
      ARK_CHECK(!a.positional.empty(), full, "() needs a key");
      if (a.positional[0].is_string())
        if (const Value* v = d.as_dict().find(a.positional[0].as_string())) return *v;
      return a.positional.size() > 1 ? a.positional[1] : Value::none();
    });
  }
  if (name == "items" || name == "keys" || name == "values") {
    return method(full, [d, name, full](const CallArgs& a) {
      a.check(full, 0, {});
      List out;
      for (const auto& [k, v] : d.as_dict().items) {
        if (name == "items") out.push_back(Value(List{Value(k), v}, true));
        if (name == "keys") out.push_back(Value(k));
        if (name == "values") out.push_back(v);
      }
      return Value(std::move(out));
    });
  }
  return {};
}

// The attribute getter of selectattr / map / join / sort: dotted path, item lookup first
// (environment.getitem).
Value attribute_path(const Value& v, const std::string& path) {
  Value cur = v;
  size_t b = 0;
  while (true) {
    const size_t e = path.find('.', b);
    const std::string part = path.substr(b, e == std::string::npos ? std::string::npos : e - b);
    bool digits = !part.empty() && std::all_of(part.begin(), part.end(), [](char c) {
      return std::isdigit(static_cast<unsigned char>(c));
    });
    if (cur.is_undefined()) throw_error(cur.undefined_name());
    Value next =
        digits ? get_item(cur, Value(static_cast<int64_t>(std::stoll(part)))) : get_item(cur, Value(part));
    if (next.is_undefined() && !digits) next = get_attr(cur, part);
    cur = std::move(next);
    if (e == std::string::npos) return cur;
    b = e + 1;
  }
}

CallArgs rest_args(const CallArgs& a, size_t from) {
  CallArgs r;
  for (size_t i = from; i < a.positional.size(); ++i) r.positional.push_back(a.positional[i]);
  r.keyword = a.keyword;
  return r;
}

List select_items(const Value& seq, const CallArgs& a, bool by_attr, bool keep_if_true,
                  std::string_view filter) {
  size_t i = 0;
  std::string attr;
  if (by_attr) {
    ARK_CHECK(!a.positional.empty(), filter, ": needs an attribute name");
    attr = need_string(&a.positional[0], filter);
    i = 1;
  }
  ARK_CHECK(a.keyword.empty(), filter, ": keyword arguments are not supported");
  std::string test;
  if (i < a.positional.size()) test = need_string(&a.positional[i], filter);
  const CallArgs targs = rest_args(a, i + 1);
  List out;
  if (!truthy(seq)) return out;  // jinja2 only iterates a true value (none, 0, false give nothing)
  for (const Value& x : iterate(seq)) {
    const Value subject = by_attr ? attribute_path(x, attr) : x;
    const bool pass = test.empty() ? truthy(subject) : apply_test(test, subject, targs);
    if (pass == keep_if_true) out.push_back(x);
  }
  return out;
}

std::string soft_str(const Value& v) {
  return to_str(v);
}

int64_t length_of(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined:
      return 0;
    case Value::Kind::kString:
      return static_cast<int64_t>(code_point_count(v.as_string()));
    case Value::Kind::kList:
      if (v.is_generator()) break;
      return static_cast<int64_t>(v.as_list().size());
    case Value::Kind::kDict:
      return static_cast<int64_t>(v.as_dict().items.size());
    default:
      break;
  }
  throw_error("object of type '", v.type_name(), "' has no len()");
}

std::string indent_text(const std::string& s, const Value* width, bool first, bool blank) {
  std::string pad;
  if (width && width->is_string()) {
    pad = width->as_string();
  } else {
    pad.assign(static_cast<size_t>(width ? need_int(width, "indent") : 4), ' ');
  }
  std::string text = s + "\n";  // jinja2's do_indent: lines with a trailing newline added, then rstripped
  std::vector<std::string> lines;
  size_t b = 0;
  while (b < text.size()) {
    size_t e = text.find('\n', b);
    lines.push_back(text.substr(b, e - b));
    b = e + 1;
  }
  std::string out;
  for (size_t i = 0; i < lines.size(); ++i) {
    const bool apply = (i == 0) ? first : (blank || !py_strip(lines[i], nullptr, true, true).empty());
    if (i) out += "\n";
    out += (apply ? pad : "") + lines[i];
  }
  // s + "\n" split on lines gives one empty trailing line in Python (splitlines keeps none), handled by
  // the loop ending at the last newline.
  return out;
}

}  // namespace

std::vector<Value> iterate(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined:
      return {};
    case Value::Kind::kList:
      return v.as_list();
    case Value::Kind::kDict: {
      std::vector<Value> keys;
      for (const auto& kv : v.as_dict().items) keys.push_back(Value(kv.first));
      return keys;
    }
    case Value::Kind::kString: {
      std::vector<Value> chars;
      const std::vector<size_t> off = code_point_offsets(v.as_string());
      for (size_t i = 0; i + 1 < off.size(); ++i)
        chars.push_back(Value(v.as_string().substr(off[i], off[i + 1] - off[i])));
      return chars;
    }
    default:
      throw_error("'", v.type_name(), "' object is not iterable");
  }
}

Value get_attr(const Value& obj, const std::string& name) {
  switch (obj.kind()) {
    case Value::Kind::kUndefined:
      throw_error(obj.undefined_name().empty() ? "attribute '" + name + "' of an undefined value"
                                               : obj.undefined_name());
    case Value::Kind::kString:
      return string_method(obj.as_string(), name);
    case Value::Kind::kDict: {
      Value m = dict_method(obj, name);
      if (!m.is_undefined()) return m;
      return get_item(obj, Value(name));
    }
    case Value::Kind::kNamespace: {
      if (const Value* v = obj.namespace_attributes().find(name)) return *v;
      return Value::undefined("'Namespace' object has no attribute '" + name + "'");
    }
    default:
      return Value::undefined("'" + std::string(obj.type_name()) + " object' has no attribute '" + name +
                              "'");
  }
}

bool is_jinja_filter(std::string_view n) {
  static const std::set<std::string_view> kNames = {
      "abs",    "attr",       "batch",       "capitalize", "center",   "count",
      "d",      "default",    "dictsort",    "e",          "escape",   "filesizeformat",
      "first",  "float",      "forceescape", "format",     "groupby",  "indent",
      "int",    "items",      "join",        "last",       "length",   "list",
      "lower",  "map",        "max",         "min",        "pprint",   "random",
      "reject", "rejectattr", "replace",     "reverse",    "round",    "safe",
      "select", "selectattr", "slice",       "sort",       "string",   "striptags",
      "sum",    "title",      "tojson",      "trim",       "truncate", "unique",
      "upper",  "urlencode",  "urlize",      "wordcount",  "wordwrap", "xmlattr"};
  return kNames.count(n) != 0;
}

bool is_jinja_test(std::string_view n) {
  static const std::set<std::string_view> kNames = {
      "boolean",  "callable", "defined",  "divisibleby", "eq",          "equalto", "escaped", "even",
      "false",    "filter",   "float",    "ge",          "greaterthan", "gt",      "in",      "integer",
      "iterable", "le",       "lessthan", "lower",       "lt",          "mapping", "ne",      "none",
      "number",   "odd",      "sameas",   "sequence",    "string",      "test",    "true",    "undefined",
      "upper",    "==",       "!=",       "<",           "<=",          ">",       ">="};
  return kNames.count(n) != 0;
}

Value apply_filter(std::string_view name, const Value& v, const CallArgs& a) {
  const std::string f(name);
  if (name == "trim") {
    a.check(f, 1, {"chars"});
    const Value* c = a.get(0, "chars");
    return Value(py_strip(soft_str(v), is_none_or_absent(c) ? nullptr : &need_string(c, f), true, true));
  }
  if (name == "length" || name == "count") {
    a.check(f, 0, {});
    return Value(length_of(v));
  }
  if (name == "string") {
    a.check(f, 0, {});
    return Value(soft_str(v));
  }
  if (name == "lower" || name == "upper" || name == "title" || name == "capitalize") {
    a.check(f, 0, {});
    const std::string s = soft_str(v);
    if (name == "lower") return Value(py_lower(s));
    if (name == "upper") return Value(py_upper(s));
    if (name == "title") return Value(jinja_title(s));
    return Value(py_capitalize(s));
  }
  if (name == "tojson") {
    a.check(f, 4, {"ensure_ascii", "indent", "separators", "sort_keys"});
    JsonOptions o;
    if (const Value* x = a.get(0, "ensure_ascii")) o.ensure_ascii = truthy(*x);
    if (const Value* x = a.get(1, "indent"); !is_none_or_absent(x)) {
      o.indent = need_int(x, "tojson indent");
      o.item_separator = ",";
    }
    if (const Value* x = a.get(2, "separators"); !is_none_or_absent(x)) {
      ARK_CHECK(x->is_list() && x->as_list().size() == 2, "tojson: separators must be a pair of strings");
      o.item_separator = need_string(&x->as_list()[0], "tojson separators");
      o.key_separator = need_string(&x->as_list()[1], "tojson separators");
    }
    if (const Value* x = a.get(3, "sort_keys")) o.sort_keys = truthy(*x);
    return Value(to_json(v, o));
  }
  if (name == "first" || name == "last") {
    a.check(f, 0, {});
    if (name == "last" && v.is_generator())
      throw_error("last: 'generator' object is not reversible (add |list)");
    if (v.is_undefined()) return Value::undefined("no first item, sequence was empty");
    const std::vector<Value> items = iterate(v);
    if (items.empty()) return Value::undefined("No " + f + " item, sequence was empty.");
    return name == "first" ? items.front() : items.back();
  }
  if (name == "join") {
    a.check(f, 2, {"d", "attribute"});
    const Value* d = a.get(0, "d");
    const Value* attr = a.get(1, "attribute");
    const std::string sep = d ? soft_str(*d) : "";
    std::string out;
    bool first = true;
    for (const Value& x : iterate(v)) {
      if (!first) out += sep;
      out += soft_str(is_none_or_absent(attr) ? x : attribute_path(x, soft_str(*attr)));
      first = false;
    }
    return Value(std::move(out));
  }
  if (name == "default" || name == "d") {
    a.check(f, 2, {"default_value", "boolean"});
    const Value* d = a.get(0, "default_value");
    const Value* b = a.get(1, "boolean");
    const bool use = v.is_undefined() || (b && truthy(*b) && !truthy(v));
    if (!use) return v;
    return d ? *d : Value("");
  }
  if (name == "replace") {
    a.check(f, 3, {"old", "new", "count"});
    const Value* o = a.get(0, "old");
    const Value* n = a.get(1, "new");
    ARK_CHECK(o && n, "replace: needs old and new");
    const Value* c = a.get(2, "count");
    return Value(
        py_replace(soft_str(v), soft_str(*o), soft_str(*n), is_none_or_absent(c) ? -1 : need_int(c, f)));
  }
  if (name == "items") {
    a.check(f, 0, {});
    if (v.is_undefined()) return Value::generator({});
    ARK_CHECK(v.is_dict(), "items: can only get item pairs from a mapping, not ", v.type_name());
    List out;
    for (const auto& [k, x] : v.as_dict().items) out.push_back(Value(List{Value(k), x}, true));
    return Value::generator(std::move(out));
  }
  if (name == "list") {
    a.check(f, 0, {});
    return Value(iterate(v));
  }
  if (name == "reverse") {
    a.check(f, 0, {});
    if (v.is_string()) return slice(v, std::nullopt, std::nullopt, -1);
    std::vector<Value> items = iterate(v);
    std::reverse(items.begin(), items.end());
    // reversed() of a list or dict is an iterator; a generator is listed first, giving a list.
    return v.is_generator() ? Value(std::move(items)) : Value::generator(std::move(items));
  }
  if (name == "selectattr" || name == "rejectattr")
    return Value::generator(select_items(v, a, true, name == "selectattr", name));
  if (name == "select" || name == "reject")
    return Value::generator(select_items(v, a, false, name == "select", name));
  if (name == "map") {
    List out;
    if (!truthy(v)) {  // jinja2 only iterates a true value, after checking the arguments
      ARK_CHECK(a.get(99, "attribute") || !a.positional.empty(), "map: needs a filter name or attribute=");
      return Value::generator(std::move(out));
    }
    if (const Value* attr = a.get(99, "attribute")) {
      a.check(f, 0, {"attribute", "default"});
      const Value* dflt = a.get(99, "default");
      for (const Value& x : iterate(v)) {
        Value y = attribute_path(x, soft_str(*attr));
        out.push_back(y.is_undefined() && dflt ? *dflt : y);
      }
      return Value::generator(std::move(out));
    }
    ARK_CHECK(!a.positional.empty(), "map: needs a filter name or attribute=");
    const std::string filter = need_string(&a.positional[0], f);
    ARK_CHECK(is_jinja_filter(filter), "map: no filter named '", filter, "'");
    const CallArgs fargs = rest_args(a, 1);
    for (const Value& x : iterate(v)) out.push_back(apply_filter(filter, x, fargs));
    return Value::generator(std::move(out));
  }
  if ((name == "int" || name == "float") && v.is_undefined())
    throw_error(v.undefined_name().empty() ? "undefined value"
                                           : v.undefined_name());  // int(Undefined) raises
  if (name == "int") {
    a.check(f, 2, {"default", "base"});
    const Value* d = a.get(0, "default");
    const Value dflt = d ? *d : Value(static_cast<int64_t>(0));
    if (v.is_bool() || v.is_int()) return Value(v.as_int());
    if (v.is_float()) return Value(static_cast<int64_t>(v.as_double()));
    if (v.is_string()) {
      const std::string s = py_strip(v.as_string(), nullptr, true, true);
      try {
        size_t used = 0;
        const int64_t x = std::stoll(s, &used, 10);
        if (used == s.size()) return Value(x);
        const double y = std::stod(s, &used);
        if (used == s.size()) return Value(static_cast<int64_t>(y));
      } catch (const std::exception&) {
      }
    }
    return dflt;
  }
  if (name == "float") {
    a.check(f, 1, {"default"});
    const Value* d = a.get(0, "default");
    if (v.is_number()) return Value(v.as_double());
    if (v.is_string()) {
      const std::string s = py_strip(v.as_string(), nullptr, true, true);
      try {
        size_t used = 0;
        const double y = std::stod(s, &used);
        if (used == s.size()) return Value(y);
      } catch (const std::exception&) {
      }
    }
    return d ? *d : Value(0.0);
  }
  if (name == "abs") {
    a.check(f, 0, {});
    if (v.is_float()) return Value(v.as_double() < 0 ? -v.as_double() : v.as_double());
    ARK_CHECK(v.is_number(), "abs: bad operand type '", v.type_name(), "'");
    return Value(v.as_int() < 0 ? -v.as_int() : v.as_int());
  }
  if (name == "safe") {
    a.check(f, 0, {});
    return v;
  }
  if (name == "indent") {
    a.check(f, 3, {"width", "first", "blank"});
    // jinja2's do_indent appends "\n" to its argument, which only a str allows.
    if (v.is_undefined()) throw_error(v.undefined_name().empty() ? "undefined value" : v.undefined_name());
    ARK_CHECK(v.is_string(), "indent: expected a string, got ", v.type_name());
    const Value* fi = a.get(1, "first");
    const Value* bl = a.get(2, "blank");
    return Value(indent_text(soft_str(v), a.get(0, "width"), fi && truthy(*fi), bl && truthy(*bl)));
  }
  if (name == "unique") {
    // jinja2's do_unique: first occurrences, strings compared case-insensitively by default, items hashed.
    a.check(f, 2, {"case_sensitive", "attribute"});
    const Value* cs = a.get(0, "case_sensitive");
    const Value* attr = a.get(1, "attribute");
    const bool case_sensitive = cs && truthy(*cs);
    auto key = [&](const Value& x) {
      Value k = is_none_or_absent(attr) ? x : attribute_path(x, soft_str(*attr));
      ARK_CHECK(!k.is_dict() && !(k.is_list() && !k.is_tuple()) && !k.is_namespace(),
                "unique: unhashable type: '", k.type_name(), "'");
      return k.is_string() && !case_sensitive ? Value(py_lower(k.as_string())) : k;
    };
    List out, seen;
    for (const Value& x : iterate(v)) {
      const Value k = key(x);
      bool dup = false;
      for (const Value& y : seen) dup = dup || equals(k, y);
      if (dup) continue;
      seen.push_back(k);
      out.push_back(x);
    }
    return Value::generator(std::move(out));
  }
  if (is_jinja_filter(name)) throw_error("the '", name, "' filter is not supported");
  throw_error("no filter named '", name, "'");
}

bool apply_test(std::string_view name, const Value& v, const CallArgs& a) {
  const std::string t(name);
  auto arg = [&]() -> const Value& {
    ARK_CHECK(a.positional.size() == 1 && a.keyword.empty(), "the '", name, "' test takes one argument");
    return a.positional[0];
  };
  auto none_args = [&] {
    ARK_CHECK(a.positional.empty() && a.keyword.empty(), "the '", name, "' test takes no arguments");
  };
  if (name == "defined") return none_args(), !v.is_undefined();
  if (name == "undefined") return none_args(), v.is_undefined();
  if (name == "none") return none_args(), v.is_none();
  if (name == "string") return none_args(), v.is_string();
  if (name == "mapping") return none_args(), v.is_dict();
  if (name == "number") return none_args(), v.is_number();
  if (name == "integer") return none_args(), v.is_int();
  if (name == "float") return none_args(), v.is_float();
  if (name == "boolean") return none_args(), v.is_bool();
  if (name == "true") return none_args(), v.is_bool() && v.as_bool();
  if (name == "false") return none_args(), v.is_bool() && !v.as_bool();
  if (name == "callable") return none_args(), v.is_function();
  // Python: str, list, tuple and dict have len() and [] (sequence); those and undefined iterate.
  // Undefined has __len__ and __getitem__, so Jinja counts it as a sequence too.
  if (name == "sequence")
    return none_args(),
           v.is_string() || (v.is_list() && !v.is_generator()) || v.is_dict() || v.is_undefined();
  if (name == "iterable") return none_args(), v.is_string() || v.is_list() || v.is_dict() || v.is_undefined();
  if (name == "lower") return none_args(), py_islower(to_str(v));
  if (name == "upper") return none_args(), py_isupper(to_str(v));
  if (name == "odd" || name == "even") {
    none_args();
    ARK_CHECK(v.is_number(), "the '", name, "' test needs a number, got ", v.type_name());
    // jinja2: value % 2 == 1 (odd) / == 0 (even), with Python's modulo for floats too.
    const Value m = binary_op("%", v, Value(static_cast<int64_t>(2)));
    return name == "odd" ? equals(m, Value(static_cast<int64_t>(1)))
                         : equals(m, Value(static_cast<int64_t>(0)));
  }
  if (name == "divisibleby") {
    const Value& d = arg();
    ARK_CHECK(v.is_number() && d.is_number() && !d.is_float() && d.as_int() != 0,
              "divisibleby: needs integers");
    return v.as_int() % d.as_int() == 0;
  }
  if (name == "eq" || name == "equalto" || name == "==") return equals(v, arg());
  if (name == "ne" || name == "!=") return !equals(v, arg());
  if (name == "lt" || name == "lessthan" || name == "<") return less(v, arg());
  if (name == "gt" || name == "greaterthan" || name == ">") return less(arg(), v);
  if (name == "le" || name == "<=") return !less(arg(), v);
  if (name == "ge" || name == ">=") return !less(v, arg());
  if (name == "in") return contains(arg(), v);
  if (name == "sameas") {
    const Value& o = arg();
    // Python identity: exact for None/True/False, the singletons templates compare with.
    if (v.kind() != o.kind()) return false;
    if (v.is_none() || v.is_undefined()) return true;
    if (v.is_bool()) return v.as_bool() == o.as_bool();
    throw_error("the 'sameas' test is only supported against none, true and false");
  }
  if (is_jinja_test(name)) throw_error("the '", name, "' test is not supported");
  throw_error("no test named '", name, "'");
}

void add_globals(Dict& g) {
  g.set("namespace", Value(Function{"namespace", [](const CallArgs& a) {
                                      Dict attrs;
                                      ARK_CHECK(a.positional.size() <= 1,
                                                "namespace() takes at most one positional argument");
                                      if (!a.positional.empty()) {
                                        ARK_CHECK(a.positional[0].is_dict(), "namespace(): expected a dict");
                                        attrs = a.positional[0].as_dict();
                                      }
                                      for (const auto& [k, v] : a.keyword) attrs.set(k, v);
                                      return Value::make_namespace(std::move(attrs));
                                    }}));
  g.set("dict", Value(Function{"dict", [](const CallArgs& a) {
                                 Dict d;
                                 ARK_CHECK(a.positional.empty(),
                                           "dict(): only keyword arguments are supported");
                                 for (const auto& [k, v] : a.keyword) d.set(k, v);
                                 return Value(std::move(d));
                               }}));
  g.set("range", Value(Function{"range", [](const CallArgs& a) {
                                  ARK_CHECK(
                                      a.keyword.empty() && !a.positional.empty() && a.positional.size() <= 3,
                                      "range() takes 1 to 3 integer arguments");
                                  int64_t start = 0, stop, step = 1;
                                  if (a.positional.size() == 1) {
                                    stop = need_int(&a.positional[0], "range");
                                  } else {
                                    start = need_int(&a.positional[0], "range");
                                    stop = need_int(&a.positional[1], "range");
                                    if (a.positional.size() == 3) step = need_int(&a.positional[2], "range");
                                  }
                                  ARK_CHECK(step != 0, "range() arg 3 must not be zero");
                                  List out;
                                  for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
                                    ARK_CHECK(out.size() < 100000, "range(): more than 100000 items");
                                    out.push_back(Value(i));
                                  }
                                  return Value(std::move(out));
                                }}));
  g.set("raise_exception", Value(Function{"raise_exception", [](const CallArgs& a) -> Value {
                                            ARK_CHECK(a.positional.size() == 1,
                                                      "raise_exception() takes one message");
                                            throw_error("raise_exception: ", to_str(a.positional[0]));
                                          }}));
  g.set("strftime_now", Value(Function{"strftime_now", [](const CallArgs& a) {
                                         ARK_CHECK(a.positional.size() == 1 && a.positional[0].is_string(),
                                                   "strftime_now() takes one format string");
                                         // transformers: datetime.now().strftime(format), local time.
                                         const std::time_t now = std::time(nullptr);
                                         std::tm tm{};
                                         localtime_r(&now, &tm);
                                         char buf[512];
                                         const size_t n = std::strftime(
                                             buf, sizeof buf, a.positional[0].as_string().c_str(), &tm);
                                         return Value(std::string(buf, n));
                                       }}));
}

}  // namespace ark::jinja
