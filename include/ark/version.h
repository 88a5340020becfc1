#pragma once

namespace ark {

inline constexpr const char* kVersion = "0.1.0";

}  // namespace ark
