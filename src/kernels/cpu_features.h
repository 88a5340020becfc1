// What the CPU and the operating system let us run, detected once (CPUID + XGETBV + the Linux AMX permission
// request), and the ISA level kernels may use: the highest the machine supports, capped by ARK_ISA.
#pragma once

#include <string>
#include <string_view>

namespace ark {

struct CpuFeatures {
  std::string vendor;
  std::string brand;
  bool avx2 = false, fma = false, f16c = false;
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false;
  bool avx512_vnni = false, avx512_bf16 = false, avx512_fp16 = false;
  bool avx_vnni = false;
  bool amx_tile = false, amx_int8 = false, amx_bf16 = false;
  bool os_avx = false;     // XCR0 enables the YMM state
  bool os_avx512 = false;  // XCR0 enables the opmask and ZMM state
  bool os_amx = false;     // XCR0 enables tile state and Linux granted this process permission to use it
};

// Kernel ISA levels, each including the ones before it.
enum class IsaLevel : int {
  kRef = 0,         // scalar C++
  kAvx2 = 1,        // AVX2 + FMA + F16C (and AVX-VNNI where present)
  kAvx512 = 2,      // AVX-512 F/BW/VL/DQ
  kAvx512Vnni = 3,  // + AVX-512 VNNI (int8 dot products)
  kAvx512Bf16 = 4,  // + AVX-512 BF16 (bf16 dot products)
  kAmx = 5,         // + AMX tiles (INT8 and BF16)
};

// Detected on first call; thread-safe.
const CpuFeatures& cpu_features();

// The highest level the machine supports.
IsaLevel detected_isa_level();
// The level kernels use: detected_isa_level() capped by the environment variable ARK_ISA (read once).
// An unknown ARK_ISA value throws ark::Error naming the accepted values.
IsaLevel active_isa_level();

std::string_view isa_level_name(IsaLevel level);
// Parses "ref", "avx2", "avx512", "avx512_vnni", "avx512_bf16", "amx"; throws ark::Error otherwise.
IsaLevel parse_isa_level(std::string_view name);

}  // namespace ark
