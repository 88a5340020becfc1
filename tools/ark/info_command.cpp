// `ark info`: version, build options, CPU features and the kernel ISA level in use.
#include <iostream>
#include <random>
#include <vector>

#include "ark/format.h"
#include "ark/quant_linear.h"
#include "ark/version.h"
#include "commands.h"
#include "kernels/cpu_features.h"

namespace ark::tools {

namespace {

const char* yes_no(bool b) {
  return b ? "yes" : "no";
}

// The kernels and compute mode a layer gets on this machine, found the way every layer finds them: by packing
// a small int4 g128 layer in each compute mode and asking it.
void print_kernel_choice() {
  constexpr int64_t kIn = 256, kOut = 64;
  std::mt19937 rng(1);
  std::normal_distribution<float> normal(0.0f, 0.02f);
  std::vector<float> w(kIn * kOut);
  for (float& v : w) v = normal(rng);
  QuantScheme scheme;
  const QuantizedWeight q = quantize_rtn(w.data(), kOut, kIn, scheme);
  std::cout << "kernels (int4 g128 layer):\n";
  for (ComputeMode mode : {ComputeMode::kAuto, ComputeMode::kExact, ComputeMode::kInt8}) {
    QuantLinearSpec spec;
    spec.in_features = kIn;
    spec.out_features = kOut;
    spec.mode = mode;
    QuantLinear layer(spec);
    layer.load(q);
    layer.post_init();
    std::cout << "  " << compute_mode_name(mode) << ": " << layer.describe() << "\n";
  }
}

void print_info() {
  const CpuFeatures& f = cpu_features();
  std::cout << "ark " << kVersion << "\n";
  std::cout << "build: " << ARK_BUILD_INFO << "\n";
  std::cout << "cpu: " << f.brand << " (" << f.vendor << ")\n";
  std::cout << "  avx2 " << yes_no(f.avx2) << ", fma " << yes_no(f.fma) << ", f16c " << yes_no(f.f16c)
            << ", avx-vnni " << yes_no(f.avx_vnni) << "\n";
  std::cout << "  avx512f " << yes_no(f.avx512f) << ", bw " << yes_no(f.avx512bw) << ", vl "
            << yes_no(f.avx512vl) << ", dq " << yes_no(f.avx512dq) << ", vnni " << yes_no(f.avx512_vnni)
            << ", bf16 " << yes_no(f.avx512_bf16) << ", fp16 " << yes_no(f.avx512_fp16) << "\n";
  std::cout << "  amx-tile " << yes_no(f.amx_tile) << ", amx-int8 " << yes_no(f.amx_int8) << ", amx-bf16 "
            << yes_no(f.amx_bf16) << "\n";
  std::cout << "  os state: avx " << yes_no(f.os_avx) << ", avx512 " << yes_no(f.os_avx512)
            << ", amx (permission granted) " << yes_no(f.os_amx) << "\n";
  std::cout << "isa: detected " << isa_level_name(detected_isa_level()) << ", active "
            << isa_level_name(active_isa_level())
            << " (cap with ARK_ISA=ref|avx2|avx512|avx512_vnni|avx512_bf16|amx)\n";
  print_kernel_choice();
}

}  // namespace

void add_info_command(CLI::App& app) {
  CLI::App* cmd =
      app.add_subcommand("info", "Print version, build options, CPU features and kernel ISA level");
  cmd->callback(print_info);
}

}  // namespace ark::tools
