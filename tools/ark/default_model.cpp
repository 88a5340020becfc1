// Where the default model is (default_model.h).
#include "default_model.h"

#include <cstdlib>
#include <filesystem>

#include "ark/error.h"

#ifndef ARK_DEFAULT_MODEL_DIR
#error "ARK_DEFAULT_MODEL_DIR (the source tree's models/ark-brown-14m-int4) is set by CMakeLists.txt"
#endif

namespace ark::tools {

std::string default_model_dir() {
  const char* env = std::getenv("ARK_DEFAULT_MODEL");
  const bool from_env = env != nullptr && *env != '\0';
  const std::string dir = from_env ? env : ARK_DEFAULT_MODEL_DIR;
  std::error_code ec;
  if (std::filesystem::is_regular_file(std::filesystem::path(dir) / "config.json", ec)) return dir;
  if (from_env)
    throw_error(
        "no --model given, and ARK_DEFAULT_MODEL='", dir,
        "' is not a checkpoint directory (no config.json there); pass --model DIR or fix the variable");
  throw_error(
      "no --model given, and the default model is missing: '", dir,
      "' has no config.json (it ships with the repository as models/ark-brown-14m-int4; this program ",
      "was built from that source tree). Pass --model DIR, or set ARK_DEFAULT_MODEL to a checkpoint ",
      "directory");
}

}  // namespace ark::tools
