// The checkpoint `ark generate` runs when no --model is given: the int4 model committed to the repository at
// models/ark-brown-14m-int4 (its README.md says how it was trained and quantized). The program finds it
// through the source tree it was built from, so a fresh clone's own build finds that clone's copy;
// ARK_DEFAULT_MODEL points elsewhere (an installed or moved program).
#pragma once

#include <string>

namespace ark::tools {

// The directory to load: $ARK_DEFAULT_MODEL when set and non-empty, else the source tree's copy. Throws
// ark::Error naming the path and the way out when that directory holds no config.json.
std::string default_model_dir();

}  // namespace ark::tools
