#include "kernels/cpu_features.h"

#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "ark/error.h"

namespace ark {

namespace {

struct Regs {
  uint32_t eax = 0, ebx = 0, ecx = 0, edx = 0;
};

Regs cpuid(uint32_t leaf, uint32_t subleaf) {
  Regs r;
  __cpuid_count(leaf, subleaf, r.eax, r.ebx, r.ecx, r.edx);
  return r;
}

uint64_t xgetbv0() {
  uint32_t lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (static_cast<uint64_t>(hi) << 32) | lo;
}

bool bit(uint32_t word, int b) { return (word >> b) & 1u; }

// Linux keeps AMX tile data off until a process asks (arch_prctl ARCH_REQ_XCOMP_PERM, since 5.16).
bool request_amx_permission() {
  constexpr int kArchReqXcompPerm = 0x1023;
  constexpr int kXfeatureXtiledata = 18;
  return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
}

CpuFeatures detect() {
  CpuFeatures f;
  const Regs r0 = cpuid(0, 0);
  char vendor[13] = {};
  std::memcpy(vendor + 0, &r0.ebx, 4);
  std::memcpy(vendor + 4, &r0.edx, 4);
  std::memcpy(vendor + 8, &r0.ecx, 4);
  f.vendor = vendor;
  const uint32_t max_leaf = r0.eax;

  if (cpuid(0x80000000u, 0).eax >= 0x80000004u) {
    char brand[49] = {};
    for (uint32_t i = 0; i < 3; ++i) {
      const Regs r = cpuid(0x80000002u + i, 0);
      std::memcpy(brand + 16 * i + 0, &r.eax, 4);
      std::memcpy(brand + 16 * i + 4, &r.ebx, 4);
      std::memcpy(brand + 16 * i + 8, &r.ecx, 4);
      std::memcpy(brand + 16 * i + 12, &r.edx, 4);
    }
    f.brand = brand;
    while (!f.brand.empty() && f.brand.back() == ' ') f.brand.pop_back();
  }

  const Regs r1 = cpuid(1, 0);
  const bool osxsave = bit(r1.ecx, 27);
  f.fma = bit(r1.ecx, 12);
  f.f16c = bit(r1.ecx, 29);
  if (osxsave) {
    const uint64_t xcr0 = xgetbv0();
    f.os_avx = (xcr0 & 0x6) == 0x6;              // SSE and AVX state
    f.os_avx512 = f.os_avx && (xcr0 & 0xe0) == 0xe0;  // opmask, ZMM_Hi256, Hi16_ZMM
    f.os_amx = (xcr0 & 0x60000) == 0x60000;      // XTILECFG and XTILEDATA
  }
  if (max_leaf >= 7) {
    const Regs r7 = cpuid(7, 0);
    f.avx2 = bit(r7.ebx, 5);
    f.avx512f = bit(r7.ebx, 16);
    f.avx512dq = bit(r7.ebx, 17);
    f.avx512bw = bit(r7.ebx, 30);
    f.avx512vl = bit(r7.ebx, 31);
    f.avx512_vnni = bit(r7.ecx, 11);
    f.avx512_fp16 = bit(r7.edx, 23);
    f.amx_bf16 = bit(r7.edx, 22);
    f.amx_tile = bit(r7.edx, 24);
    f.amx_int8 = bit(r7.edx, 25);
    if (r7.eax >= 1) {
      const Regs r71 = cpuid(7, 1);
      f.avx_vnni = bit(r71.eax, 4);
      f.avx512_bf16 = bit(r71.eax, 5);
    }
  }
  if (f.os_amx && f.amx_tile) f.os_amx = request_amx_permission();
  return f;
}

IsaLevel detect_level(const CpuFeatures& f) {
  if (!(f.os_avx && f.avx2 && f.fma && f.f16c)) return IsaLevel::kRef;
  if (!(f.os_avx512 && f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq)) return IsaLevel::kAvx2;
  if (!f.avx512_vnni) return IsaLevel::kAvx512;
  if (!f.avx512_bf16) return IsaLevel::kAvx512Vnni;
  if (!(f.os_amx && f.amx_tile && f.amx_int8 && f.amx_bf16)) return IsaLevel::kAvx512Bf16;
  return IsaLevel::kAmx;
}

constexpr const char* kLevelNames[] = {"ref", "avx2", "avx512", "avx512_vnni", "avx512_bf16", "amx"};

}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures features = detect();
  return features;
}

IsaLevel detected_isa_level() {
  static const IsaLevel level = detect_level(cpu_features());
  return level;
}

IsaLevel active_isa_level() {
  static const IsaLevel level = [] {
    const IsaLevel detected = detected_isa_level();
    const char* cap = std::getenv("ARK_ISA");
    if (cap == nullptr || *cap == '\0') return detected;
    const IsaLevel requested = parse_isa_level(cap);
    return requested < detected ? requested : detected;
  }();
  return level;
}

std::string_view isa_level_name(IsaLevel level) { return kLevelNames[static_cast<int>(level)]; }

IsaLevel parse_isa_level(std::string_view name) {
  for (int i = 0; i <= static_cast<int>(IsaLevel::kAmx); ++i)
    if (name == kLevelNames[i]) return static_cast<IsaLevel>(i);
  throw_error("ARK_ISA='", name, "' is not an ISA level; expected one of ref, avx2, avx512, avx512_vnni, ",
              "avx512_bf16, amx");
}

}  // namespace ark
