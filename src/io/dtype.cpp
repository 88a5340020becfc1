#include "ark/dtype.h"

#include <array>
#include <utility>

namespace ark {

namespace {
constexpr std::array<std::pair<DType, std::string_view>, 12> kNames = {{
    {DType::F64, "F64"},
    {DType::F32, "F32"},
    {DType::F16, "F16"},
    {DType::BF16, "BF16"},
    {DType::I64, "I64"},
    {DType::I32, "I32"},
    {DType::I16, "I16"},
    {DType::I8, "I8"},
    {DType::U8, "U8"},
    {DType::Bool, "BOOL"},
    {DType::F8_E4M3, "F8_E4M3"},
    {DType::F8_E5M2, "F8_E5M2"},
}};
}  // namespace

std::string_view dtype_name(DType t) {
  for (const auto& [dtype, name] : kNames)
    if (dtype == t) return name;
  return "?";
}

bool parse_dtype(std::string_view name, DType* out) {
  for (const auto& [dtype, n] : kNames) {
    if (n == name) {
      *out = dtype;
      return true;
    }
  }
  return false;
}

}  // namespace ark
