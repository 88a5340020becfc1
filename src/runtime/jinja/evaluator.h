// Runs a parsed template against variables and returns the text, with Jinja2's scoping: a for-loop
// iteration is a scope of its own (a `set` inside it is gone after the iteration, which is why templates
// carry state out of loops in a namespace()), `if` blocks share their enclosing scope, and a macro runs in
// a scope under the template's top level, looking names up when it is called.
#pragma once

#include <string>

#include "runtime/jinja/ast.h"

namespace ark::jinja {

// `variables` become the template's globals next to namespace/range/dict/raise_exception/strftime_now.
// Throws ark::Error "chat template line N: ..." for anything the template does wrong, including
// raise_exception(msg) with the template's message.
std::string render(const Body& program, const Dict& variables);

}  // namespace ark::jinja
