// `ark quantize`: an unquantized checkpoint directory -> an AutoRound-format one, with ark's round-to-nearest
// quantizer (ark/quantize_checkpoint.h says what is quantized and what is kept).
//
//   ark quantize --model FLOATDIR --out DIR [--bits 4] [--group-size 128] [--asym]
//                [--format auto_round:auto_gptq|auto_round:gptqmodel|auto_round|auto_round:auto_awq]
//                [--scale-dtype f16|bf16|f32]
#include <chrono>
#include <cstdio>
#include <iostream>
#include <memory>

#include "ark/error.h"
#include "ark/quantize_checkpoint.h"
#include "commands.h"

namespace ark::tools {

namespace {

struct QuantizeArgs {
  std::string model, out, format = "auto_round:auto_gptq", scale_dtype = "f16";
  int bits = 4;
  int64_t group_size = 128;
  bool asym = false;
};

void run(const QuantizeArgs& a) {
  QuantizeCheckpointOptions o;
  o.packing_format = a.format;
  o.bits = a.bits;
  o.group_size = a.group_size;
  o.sym = !a.asym;
  if (a.scale_dtype == "f16" || a.scale_dtype == "fp16" || a.scale_dtype == "float16") {
    o.scale_dtype = DType::F16;
  } else if (a.scale_dtype == "bf16" || a.scale_dtype == "bfloat16") {
    o.scale_dtype = DType::BF16;
  } else if (a.scale_dtype == "f32" || a.scale_dtype == "fp32" || a.scale_dtype == "float32") {
    o.scale_dtype = DType::F32;
  } else {
    throw_error("--scale-dtype '", a.scale_dtype, "' is not one of f16, bf16, f32");
  }
  const auto t0 = std::chrono::steady_clock::now();
  const QuantizeCheckpointReport r = quantize_checkpoint(a.model, a.out, o);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("%s: %zu linears quantized to int%d %s %s (%s)", a.out.c_str(), r.quantized.size(), a.bits,
              a.group_size == -1 ? "per-channel" : ("g" + std::to_string(a.group_size)).c_str(),
              a.asym ? "asym" : "sym", a.format.c_str());
  if (!r.kept_float.empty()) {
    std::printf("; kept in float (shape the format cannot pack):");
    for (const std::string& n : r.kept_float) std::printf(" %s", n.c_str());
  }
  std::printf("; %.1f MiB -> %.1f MiB in %.1f s\n", r.input_bytes / 1048576.0, r.output_bytes / 1048576.0, s);
}

}  // namespace

void add_quantize_command(CLI::App& app) {
  auto a = std::make_shared<QuantizeArgs>();
  CLI::App* c = app.add_subcommand(
      "quantize",
      "Quantize a float checkpoint into AutoRound's format with round-to-nearest (AutoRound with iters=0): "
      "the decoder blocks' linears; embeddings, norms, biases and lm_head are kept as stored");
  c->add_option("--model", a->model, "unquantized checkpoint directory (fp32/fp16/bf16)")->required();
  c->add_option("--out", a->out, "output directory")->required();
  c->add_option("--bits", a->bits, "2, 3, 4 or 8")->capture_default_str();
  c->add_option("--group-size", a->group_size, "input channels per scale (-1: per-channel)")
      ->capture_default_str();
  c->add_flag("--asym", a->asym, "asymmetric (a zero point per group); default symmetric");
  c->add_option("--format", a->format,
                "auto_round:auto_gptq, auto_round:gptqmodel, auto_round or auto_round:auto_awq")
      ->capture_default_str();
  c->add_option("--scale-dtype", a->scale_dtype, "f16 (AutoRound's), bf16 or f32")->capture_default_str();
  c->callback([a] { run(*a); });
}

}  // namespace ark::tools
