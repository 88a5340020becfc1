// The `ark` command-line program. Each subcommand lives in its own file and registers itself here.
#include <CLI/CLI.hpp>

#include <iostream>

#include "ark/error.h"
#include "commands.h"

int main(int argc, char** argv) {
  CLI::App app{"ark: run LLMs quantized with AutoRound fast"};
  app.require_subcommand(1);
  ark::tools::add_info_command(app);
  ark::tools::add_demo_command(app);
  ark::tools::add_tokenize_command(app);
  ark::tools::add_bench_command(app);
  ark::tools::add_tensors_command(app);
  ark::tools::add_dequant_command(app);
  ark::tools::add_generate_command(app);
  ark::tools::add_inspect_command(app);
  ark::tools::add_make_model_command(app);
  ark::tools::add_quantize_command(app);
  ark::tools::add_perplexity_command(app);
  ark::tools::add_bench_model_command(app);  // after add_bench_command: adds `bench model`
  ark::tools::add_bench_moe_command(app);    // after add_bench_command: adds `bench moe`
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const ark::Error& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
