// The one error type of the library. Public entry points validate their inputs and throw ark::Error with a
// message that names the file, tensor or argument at fault and what was expected; nothing in the library
// aborts or exits on bad input. The Python binding maps it to ValueError.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace ark {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// Builds a message from any streamable parts: throw_error("tensor '", name, "': expected ", n, " bytes").
template <typename... Parts>
[[noreturn]] void throw_error(Parts&&... parts) {
  std::ostringstream out;
  (out << ... << std::forward<Parts>(parts));
  throw Error(out.str());
}

// Checks a condition on user input; the message parts are only formatted on failure.
#define ARK_CHECK(condition, ...)          \
  do {                                     \
    if (!(condition)) {                    \
      ::ark::throw_error(__VA_ARGS__);     \
    }                                      \
  } while (0)

}  // namespace ark
