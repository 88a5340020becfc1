// Subcommands of the `ark` program; each add_*_command registers one on the app, with its callback.
#pragma once

#include <CLI/CLI.hpp>

namespace ark::tools {

void add_info_command(CLI::App& app);
void add_demo_command(CLI::App& app);
void add_tokenize_command(CLI::App& app);
void add_bench_command(CLI::App& app);
void add_tensors_command(CLI::App& app);
void add_dequant_command(CLI::App& app);
void add_generate_command(CLI::App& app);
void add_inspect_command(CLI::App& app);
void add_make_model_command(CLI::App& app);
void add_quantize_command(CLI::App& app);
void add_perplexity_command(CLI::App& app);
void add_bench_model_command(CLI::App& app);
void add_bench_moe_command(CLI::App& app);

}  // namespace ark::tools
