// What a template can call: Jinja2's filters and tests that chat templates use, the Python methods of str
// and dict they call (message.content.startswith(...), tool.get('x'), x.items()), and the globals
// transformers installs (raise_exception, strftime_now) plus Jinja's namespace, range and dict.
//
// Names Jinja itself knows but ark does not implement are refused when reached ("the 'dictsort' filter is
// not supported"), never rendered approximately; names Jinja does not know are refused at parse time, as
// Jinja does.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "runtime/jinja/value.h"

namespace ark::jinja {

// obj.name as Jinja's sandbox resolves it: a Python attribute (str and dict methods become bound callables)
// first, then the item; a missing one is undefined. Attribute of undefined throws.
Value get_attr(const Value& obj, const std::string& name);
Value apply_filter(std::string_view name, const Value& value, const CallArgs& args);
bool apply_test(std::string_view name, const Value& value, const CallArgs& args);
// Jinja2's built-in filter and test names (a template naming another fails to compile in Jinja).
bool is_jinja_filter(std::string_view name);
bool is_jinja_test(std::string_view name);
// Python's iter(v): list and tuple items, dict keys, str code points; undefined iterates as empty.
std::vector<Value> iterate(const Value& v);
// namespace(), range(), dict(), raise_exception(msg), strftime_now(format).
void add_globals(Dict& globals);

}  // namespace ark::jinja
