// quantization_config parsing and per-layer scheme resolution (see include/ark/quant_config.h for the rules).
//
// Keys are read with nlohmann's ordered_json because extra_config and GPTQ's dynamic are first-match-wins in
// file order, as in AutoRound's loader; a sorted map would silently change which regex wins.
#include "ark/quant_config.h"

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <unordered_set>

#include "ark/error.h"

namespace ark {

namespace {

using Json = nlohmann::ordered_json;

// One per-layer override, from extra_config or from GPTQ's dynamic.
struct Override {
  std::optional<int> bits;
  std::optional<int64_t> group_size;
  std::optional<bool> sym;
  bool skip = false;  // GPTQ dynamic "-:regex": leave the layer unquantized
};

struct Rule {
  std::string key;  // as written (without a dynamic "+:" / "-:" prefix)
  std::regex pattern;
  bool usable_as_regex = true;  // AutoRound ignores regex entries whose config is {}
  Override values;
};

std::string dump(const Json& v) {
  std::string s = v.dump();
  return s.size() > 80 ? s.substr(0, 77) + "..." : s;
}

// Error context: "quantization_config (path/config.json)".
struct Ctx {
  const std::string& source;
  [[noreturn]] void fail(const std::string& what) const {
    throw_error("quantization_config (", source, "): ", what);
  }
  [[noreturn]] void unsupported(const std::string& what) const {
    throw_error("quantization_config (", source, "): not supported yet: ", what);
  }
};

bool present(const Json& obj, const char* key) {
  return obj.contains(key) && !obj.at(key).is_null();
}

int64_t get_int(const Ctx& ctx, const Json& v, const std::string& where) {
  if (!v.is_number_integer()) ctx.fail("'" + where + "' must be an integer, got " + dump(v));
  return v.get<int64_t>();
}

bool get_bool(const Ctx& ctx, const Json& v, const std::string& where) {
  if (!v.is_boolean()) ctx.fail("'" + where + "' must be true or false, got " + dump(v));
  return v.get<bool>();
}

std::string get_string(const Ctx& ctx, const Json& v, const std::string& where) {
  if (!v.is_string()) ctx.fail("'" + where + "' must be a string, got " + dump(v));
  return v.get<std::string>();
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

std::string trim(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t") - b + 1);
}

// Module names and patterns are compiled as ECMAScript regexes, which agree with Python's re on everything
// these configs use (., *, +, ?, [], (), |, ^, $, \d, \.). A pattern std::regex cannot compile is refused
// rather than skipped, since skipping it would quietly change which layers are quantized.
std::regex compile(const Ctx& ctx, const std::string& pattern, const std::string& where) {
  try {
    return std::regex(pattern, std::regex::ECMAScript | std::regex::optimize);
  } catch (const std::regex_error& e) {
    ctx.unsupported("regex '" + pattern + "' in " + where + " (" + e.what() + ")");
  }
}

bool search(const std::regex& re, std::string_view name) {
  return std::regex_search(name.begin(), name.end(), re);
}

// A list of names: a string (comma-separated), a list of strings, or a list of lists of strings (flattened).
std::vector<std::string> name_list(const Ctx& ctx, const Json& v, const std::string& where) {
  std::vector<std::string> out;
  auto add_csv = [&](const std::string& s) {
    std::stringstream in(s);
    std::string item;
    while (std::getline(in, item, ',')) {
      item = trim(item);
      if (!item.empty()) out.push_back(item);
    }
  };
  if (v.is_string()) {
    add_csv(v.get<std::string>());
    return out;
  }
  if (!v.is_array()) ctx.fail("'" + where + "' must be a string or a list of strings, got " + dump(v));
  for (const Json& item : v) {
    if (item.is_string()) {
      out.push_back(trim(item.get<std::string>()));
    } else if (item.is_array()) {
      for (const Json& inner : item) out.push_back(trim(get_string(ctx, inner, where + "[][]")));
    } else {
      ctx.fail("'" + where + "' entries must be strings or lists of strings, got " + dump(item));
    }
  }
  return out;
}

// Checks what a quantized layer may have. `where` names the config entry ("config", "extra_config['x']").
void check_quantized_values(const Ctx& ctx, int bits, int64_t group_size, const std::string& data_type,
                            std::optional<int64_t> act_bits, PackingLayout layout, const std::string& where) {
  if (bits != 2 && bits != 3 && bits != 4 && bits != 8)
    ctx.unsupported("bits " + std::to_string(bits) + " in " + where +
                    " (ark reads 2, 3, 4 and 8; >= 16 = unquantized)");
  if (group_size == 0) ctx.unsupported("group_size 0 (one scale per tensor) in " + where);
  if (group_size < -1)
    ctx.fail("group_size " + std::to_string(group_size) + " in " + where + " (expected -1 or > 0)");
  if (data_type != "int")
    ctx.unsupported("data_type '" + data_type + "' in " + where + " (ark reads integer weights)");
  if (act_bits && *act_bits < 16)
    ctx.unsupported("act_bits " + std::to_string(*act_bits) + " in " + where + " (activation quantization)");
  if (layout == PackingLayout::kAwq && bits != 4)
    ctx.unsupported("bits " + std::to_string(bits) + " with the AWQ packing (4-bit only) in " + where);
}

bool is_output_head(std::string_view name) {
  const size_t dot = name.rfind('.');
  return (dot == std::string_view::npos ? name : name.substr(dot + 1)) == "lm_head";
}

}  // namespace

struct QuantConfig::Rules {
  std::vector<Rule> extra;                // extra_config, file order
  std::vector<Rule> dynamic;              // GPTQ dynamic, file order
  std::vector<std::regex> keep_in_block;  // modules_in_block_to_quantize; empty = keep all
  std::vector<std::regex> not_convert;    // modules_to_not_convert
};

// What resolve() knows beyond the one name: the full set of layer names, and per regex rule whether it may
// apply to layers outside the blocks (AutoRound only lets it when it matches no layer inside them).
struct QuantConfig::Lookup {
  const std::unordered_set<std::string>* known = nullptr;
  const std::vector<char>* extra_out_ok = nullptr;
  const std::vector<char>* dynamic_out_ok = nullptr;
};

QuantConfig::QuantConfig() : rules_(std::make_unique<Rules>()) {}
QuantConfig::~QuantConfig() = default;
QuantConfig::QuantConfig(QuantConfig&&) noexcept = default;
QuantConfig& QuantConfig::operator=(QuantConfig&&) noexcept = default;
QuantConfig::QuantConfig(const QuantConfig& other)
    : method_(other.method_),
      layout_(other.layout_),
      packing_format_(other.packing_format_),
      default_scheme_(other.default_scheme_),
      default_bits_(other.default_bits_),
      block_names_(other.block_names_),
      quantize_lm_head_(other.quantize_lm_head_),
      rules_(std::make_unique<Rules>(*other.rules_)) {}
QuantConfig& QuantConfig::operator=(const QuantConfig& other) {
  if (this != &other) *this = QuantConfig(other);
  return *this;
}

QuantConfig QuantConfig::from_json_string(std::string_view json_text, const std::string& source) {
  const Ctx ctx{source};
  Json root;
  try {
    root = Json::parse(json_text.begin(), json_text.end());
  } catch (const Json::exception& e) {
    ctx.fail(std::string("not valid JSON: ") + e.what());
  }
  if (!root.is_object()) ctx.fail("expected a JSON object, got " + dump(root));
  // A whole config.json: the quantization_config object inside it.
  const Json& qc = root.contains("quantization_config") ? root.at("quantization_config") : root;
  if (!qc.is_object()) ctx.fail("'quantization_config' must be an object, got " + dump(qc));
  if (!present(qc, "quant_method")) ctx.fail("'quant_method' is missing");

  QuantConfig cfg;
  const std::string method = get_string(ctx, qc.at("quant_method"), "quant_method");
  if (method == "auto-round" || method == "intel/auto-round") {
    cfg.method_ = QuantMethod::kAutoRound;
  } else if (method == "gptq") {
    cfg.method_ = QuantMethod::kGptq;
  } else if (method == "awq") {
    cfg.method_ = QuantMethod::kAwq;
  } else {
    ctx.unsupported("quant_method '" + method + "' (ark reads auto-round, intel/auto-round, gptq, awq)");
  }

  // --- packing layout
  // -----------------------------------------------------------------------------------------
  if (cfg.method_ == QuantMethod::kAutoRound) {
    // AutoRound writes "packing_format"; releases before it wrote the same values under "backend".
    const char* key = present(qc, "packing_format") ? "packing_format" : "backend";
    if (!present(qc, key)) ctx.fail("auto-round config has neither 'packing_format' nor 'backend'");
    cfg.packing_format_ = get_string(ctx, qc.at(key), key);
    const std::string& f = cfg.packing_format_;
    if (f == "auto_round:auto_gptq" || f == "auto_round:gptq" || f == "auto") {
      cfg.layout_ = PackingLayout::kGptqV1;
    } else if (f == "auto_round" || f == "auto_round:gptqmodel") {
      cfg.layout_ = PackingLayout::kGptqV2;
    } else if (f == "auto_round:auto_awq" || f == "auto_round:awq") {
      cfg.layout_ = PackingLayout::kAwq;
    } else {
      ctx.unsupported(std::string(key) + " '" + f + "'");
    }
  } else if (cfg.method_ == QuantMethod::kGptq) {
    // GPTQ tools name the zero-point convention "checkpoint_format" (transformers, gptqmodel) or "format"
    // (older gptqmodel quantize_config.json); absent means the original v1.
    std::string fmt = "gptq";
    if (present(qc, "checkpoint_format")) {
      fmt = get_string(ctx, qc.at("checkpoint_format"), "checkpoint_format");
    } else if (present(qc, "format")) {
      fmt = get_string(ctx, qc.at("format"), "format");
    }
    if (fmt == "gptq") {
      cfg.layout_ = PackingLayout::kGptqV1;
    } else if (fmt == "gptq_v2") {
      cfg.layout_ = PackingLayout::kGptqV2;
    } else {
      ctx.unsupported("gptq checkpoint_format '" + fmt + "' (ark reads gptq and gptq_v2)");
    }
    cfg.packing_format_ = fmt;
    if (present(qc, "lm_head")) cfg.quantize_lm_head_ = get_bool(ctx, qc.at("lm_head"), "lm_head");
  } else {
    cfg.layout_ = PackingLayout::kAwq;
    // transformers' AwqConfig: "version" picks the packing; "backend" the tool that wrote it.
    const std::string version =
        present(qc, "version") ? lower(get_string(ctx, qc.at("version"), "version")) : "gemm";
    if (version != "gemm") ctx.unsupported("awq version '" + version + "' (ark reads the gemm packing)");
    if (present(qc, "backend")) {
      const std::string backend = get_string(ctx, qc.at("backend"), "backend");
      if (backend != "autoawq")
        ctx.unsupported("awq backend '" + backend + "' (ark reads autoawq checkpoints)");
    }
    cfg.packing_format_ = "awq gemm";
  }

  // --- the config-wide scheme
  // ------------------------------------------------------------------------------- AutoAWQ's own
  // quant_config.json spells bits and group size "w_bit" and "q_group_size".
  const char* bits_key = present(qc, "bits") ? "bits" : (present(qc, "w_bit") ? "w_bit" : nullptr);
  if (!bits_key) ctx.fail("'bits' is missing");
  const int64_t bits = get_int(ctx, qc.at(bits_key), bits_key);
  const char* gs_key =
      present(qc, "group_size") ? "group_size" : (present(qc, "q_group_size") ? "q_group_size" : nullptr);
  const int64_t group_size = gs_key ? get_int(ctx, qc.at(gs_key), gs_key) : 128;  // every tool's default
  bool sym = true;
  if (cfg.method_ == QuantMethod::kAwq) {
    // AWQ always stores zero points; zero_point false would mean a symmetric AWQ file no tool writes.
    if (present(qc, "zero_point") && !get_bool(ctx, qc.at("zero_point"), "zero_point"))
      ctx.unsupported("awq zero_point false");
    sym = false;
  } else if (present(qc, "sym")) {
    sym = get_bool(ctx, qc.at("sym"), "sym");
  }
  const std::string data_type =
      present(qc, "data_type") ? get_string(ctx, qc.at("data_type"), "data_type") : "int";
  std::optional<int64_t> act_bits;
  if (present(qc, "act_bits")) act_bits = get_int(ctx, qc.at("act_bits"), "act_bits");
  if (bits < 0 || bits > 64) ctx.fail("bits " + std::to_string(bits) + " is out of range");
  cfg.default_bits_ = static_cast<int>(bits);
  cfg.default_scheme_ = QuantScheme{static_cast<int>(bits), group_size, sym, cfg.layout_};
  if (bits < 16)
    check_quantized_values(ctx, cfg.default_bits_, group_size, data_type, act_bits, cfg.layout_, "config");

  // --- which layers ----------------------------------------------------------------------------------------
  // AutoRound's loader prefers quant_block_list (lists of full block names, reduced to their common prefix),
  // then block_name_to_quantize, then the older to_quant_block_names.
  if (present(qc, "quant_block_list")) {
    const Json& list = qc.at("quant_block_list");
    if (!list.is_array()) ctx.fail("'quant_block_list' must be a list, got " + dump(list));
    for (const Json& item : list) {
      if (item.is_array()) {
        std::vector<std::string> names = name_list(ctx, item, "quant_block_list");
        if (names.empty()) continue;
        std::string prefix = names[0];
        for (const std::string& n : names) {
          size_t i = 0;
          while (i < prefix.size() && i < n.size() && prefix[i] == n[i]) ++i;
          prefix.resize(i);
        }
        while (!prefix.empty() && prefix.back() == '.') prefix.pop_back();
        cfg.block_names_.push_back(prefix);
      } else {
        cfg.block_names_.push_back(get_string(ctx, item, "quant_block_list[]"));
      }
    }
  } else {
    for (const char* key : {"block_name_to_quantize", "to_quant_block_names"}) {
      if (present(qc, key)) {
        cfg.block_names_ = name_list(ctx, qc.at(key), key);
        break;
      }
    }
  }

  Rules& rules = *cfg.rules_;
  if (present(qc, "modules_to_not_convert")) {
    for (const std::string& n : name_list(ctx, qc.at("modules_to_not_convert"), "modules_to_not_convert"))
      rules.not_convert.push_back(compile(ctx, n, "modules_to_not_convert"));
  }
  if (present(qc, "modules_in_block_to_quantize")) {
    for (const std::string& n :
         name_list(ctx, qc.at("modules_in_block_to_quantize"), "modules_in_block_to_quantize"))
      rules.keep_in_block.push_back(compile(ctx, n, "modules_in_block_to_quantize"));
  }

  // Reads one override object; checks the scheme it gives a quantized layer (merged with the defaults).
  auto read_override = [&](const Json& obj, const std::string& where) {
    if (!obj.is_object()) ctx.fail("'" + where + "' must be an object, got " + dump(obj));
    Override o;
    if (present(obj, "bits")) o.bits = static_cast<int>(get_int(ctx, obj.at("bits"), where + ".bits"));
    if (present(obj, "group_size")) o.group_size = get_int(ctx, obj.at("group_size"), where + ".group_size");
    if (present(obj, "sym")) o.sym = get_bool(ctx, obj.at("sym"), where + ".sym");
    const std::string dt =
        present(obj, "data_type") ? get_string(ctx, obj.at("data_type"), where + ".data_type") : data_type;
    std::optional<int64_t> ab = act_bits;
    if (present(obj, "act_bits")) ab = get_int(ctx, obj.at("act_bits"), where + ".act_bits");
    const int b = o.bits.value_or(cfg.default_bits_);
    if (b < 0 || b > 64) ctx.fail("bits " + std::to_string(b) + " in " + where + " is out of range");
    if (b < 16) check_quantized_values(ctx, b, o.group_size.value_or(group_size), dt, ab, cfg.layout_, where);
    return std::pair{o, !obj.empty()};
  };

  if (present(qc, "extra_config")) {
    const Json& extra = qc.at("extra_config");
    if (!extra.is_object()) ctx.fail("'extra_config' must be an object, got " + dump(extra));
    for (const auto& [key, value] : extra.items()) {
      const std::string where = "extra_config['" + key + "']";
      auto [o, nonempty] = read_override(value, where);
      rules.extra.push_back(Rule{key, compile(ctx, key, where), nonempty, o});
    }
  }
  if (present(qc, "dynamic")) {
    const Json& dyn = qc.at("dynamic");
    if (!dyn.is_object()) ctx.fail("'dynamic' must be an object, got " + dump(dyn));
    for (const auto& [key, value] : dyn.items()) {
      const std::string where = "dynamic['" + key + "']";
      // gptqmodel: "-:re" skips matching layers, "+:re" or a bare "re" overrides their scheme.
      const bool negative = key.rfind("-:", 0) == 0;
      const std::string pattern = (negative || key.rfind("+:", 0) == 0) ? key.substr(2) : key;
      Override o;
      if (negative) {
        o.skip = true;
      } else {
        o = read_override(value, where).first;
      }
      rules.dynamic.push_back(Rule{pattern, compile(ctx, pattern, where), true, o});
    }
  }
  return cfg;
}

QuantConfig QuantConfig::from_checkpoint_dir(const std::filesystem::path& dir) {
  auto read = [](const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    ARK_CHECK(in, "cannot open '", p.string(), "'");
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  };
  const std::filesystem::path config = dir / "config.json";
  if (std::filesystem::exists(config)) {
    const std::string text = read(config);
    Json root;
    try {
      root = Json::parse(text);
    } catch (const Json::exception& e) {
      throw_error("'", config.string(), "' is not valid JSON: ", e.what());
    }
    if (root.is_object() && root.contains("quantization_config"))
      return from_json_string(text, config.string());
  }
  const std::filesystem::path separate = dir / "quantization_config.json";
  if (std::filesystem::exists(separate)) return from_json_string(read(separate), separate.string());
  throw_error("checkpoint '", dir.string(),
              "': no quantization_config in config.json and no quantization_config.json");
}

bool QuantConfig::in_blocks(std::string_view name) const {
  if (is_output_head(name) && quantize_lm_head_) return true;
  if (block_names_.empty()) return !is_output_head(name);
  return std::any_of(block_names_.begin(), block_names_.end(),
                     [&](const std::string& b) { return name.substr(0, b.size()) == b; });
}

std::optional<QuantScheme> QuantConfig::scheme_for(std::string_view name, const Lookup& lookup) const {
  const Rules& rules = *rules_;
  const bool in_block = in_blocks(name);

  // Inside the blocks these two remove a layer whatever else says (AutoRound writes them over exact entries).
  if (in_block) {
    if (!rules.keep_in_block.empty() && std::none_of(rules.keep_in_block.begin(), rules.keep_in_block.end(),
                                                     [&](const std::regex& re) { return search(re, name); }))
      return std::nullopt;
    if (std::any_of(rules.not_convert.begin(), rules.not_convert.end(),
                    [&](const std::regex& re) { return search(re, name); }))
      return std::nullopt;
  }

  auto apply = [&](const Override& o) -> std::optional<QuantScheme> {
    if (o.skip) return std::nullopt;
    const int bits = o.bits.value_or(default_bits_);
    if (bits >= 16) return std::nullopt;
    return QuantScheme{bits, o.group_size.value_or(default_scheme_.group_size),
                       o.sym.value_or(default_scheme_.sym), layout_};
  };

  for (const Rule& r : rules.extra)
    if (r.key == name) return apply(r.values);

  // A key that names some layer is an exact entry for that layer only, never a regex for others.
  auto regex_applies = [&](const Rule& r, size_t i, const std::vector<char>* out_ok) {
    if (!r.usable_as_regex) return false;
    if (lookup.known && lookup.known->count(r.key)) return false;
    if (!in_block && out_ok && !(*out_ok)[i]) return false;
    return search(r.pattern, name);
  };
  for (size_t i = 0; i < rules.dynamic.size(); ++i)
    if (regex_applies(rules.dynamic[i], i, lookup.dynamic_out_ok)) return apply(rules.dynamic[i].values);
  for (size_t i = 0; i < rules.extra.size(); ++i)
    if (regex_applies(rules.extra[i], i, lookup.extra_out_ok)) return apply(rules.extra[i].values);

  if (!in_block) return std::nullopt;
  return apply(Override{});
}

std::optional<QuantScheme> QuantConfig::layer_scheme(std::string_view name) const {
  return scheme_for(name, {});
}

std::map<std::string, QuantScheme> QuantConfig::resolve(
    const std::vector<std::string>& linear_layer_names) const {
  const std::unordered_set<std::string> known(linear_layer_names.begin(), linear_layer_names.end());
  // Names inside the blocks, as scheme_for judges them (a layer removed by modules_to_not_convert still
  // counts: AutoRound tests regexes against its list of in-block layers before removing any).
  std::vector<const std::string*> in_block;
  for (const std::string& n : linear_layer_names)
    if (in_blocks(n)) in_block.push_back(&n);
  auto out_ok = [&](const std::vector<Rule>& rules) {
    std::vector<char> ok(rules.size(), 1);
    for (size_t i = 0; i < rules.size(); ++i)
      for (const std::string* n : in_block)
        if (search(rules[i].pattern, *n)) {
          ok[i] = 0;
          break;
        }
    return ok;
  };
  const std::vector<char> extra_ok = out_ok(rules_->extra);
  const std::vector<char> dynamic_ok = out_ok(rules_->dynamic);
  const Lookup lookup{&known, &extra_ok, &dynamic_ok};
  std::map<std::string, QuantScheme> out;
  for (const std::string& n : linear_layer_names)
    if (auto s = scheme_for(n, lookup)) out.emplace(n, *s);
  return out;
}

}  // namespace ark
