// Loading tokenizer.json (and tokenizer_config.json) into a TokenizerImpl. Every component type is matched
// against the list ark implements; anything else is refused with its type named, since skipping an unknown
// step would give ids that look plausible and are wrong.
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "ark/error.h"
#include "ark/tokenizer.h"
#include "runtime/tokenizer_impl.h"

namespace ark {

namespace detail {

namespace {

using nlohmann::json;

// Reads fields with the defaults `tokenizers` uses and errors that say where the bad value is.
class Reader {
 public:
  explicit Reader(std::string source) : source_(std::move(source)) {}

  const std::string& source() const { return source_; }

  std::string type_of(const json& j, const std::string& where) const {
    ARK_CHECK(j.is_object(), source_, ": ", where, " must be an object");
    const auto it = j.find("type");
    ARK_CHECK(it != j.end() && it->is_string(), source_, ": ", where, " has no \"type\"");
    return it->get<std::string>();
  }
  bool boolean(const json& j, const char* key, bool fallback, const std::string& where) const {
    const auto it = j.find(key);
    if (it == j.end() || it->is_null()) return fallback;
    ARK_CHECK(it->is_boolean(), source_, ": ", where, ".", key, " must be true or false");
    return it->get<bool>();
  }
  std::string string(const json& j, const char* key, const std::string& where) const {
    const auto it = j.find(key);
    ARK_CHECK(it != j.end() && it->is_string(), source_, ": ", where, ".", key, " must be a string");
    return it->get<std::string>();
  }
  std::optional<std::string> optional_string(const json& j, const char* key, const std::string& where) const {
    const auto it = j.find(key);
    if (it == j.end() || it->is_null()) return std::nullopt;
    ARK_CHECK(it->is_string(), source_, ": ", where, ".", key, " must be a string or null");
    return it->get<std::string>();
  }
  size_t count(const json& j, const char* key, size_t fallback, const std::string& where) const {
    const auto it = j.find(key);
    if (it == j.end() || it->is_null()) return fallback;
    ARK_CHECK(it->is_number_unsigned(), source_, ": ", where, ".", key, " must be a non-negative integer");
    return it->get<size_t>();
  }
  const json& array(const json& j, const char* key, const std::string& where) const {
    const auto it = j.find(key);
    ARK_CHECK(it != j.end() && it->is_array(), source_, ": ", where, ".", key, " must be an array");
    return *it;
  }
  char32_t character(const json& j, const char* key, const std::string& where) const {
    const std::string s = string(j, key, where);
    size_t i = 0;
    ARK_CHECK(!s.empty() && find_invalid_utf8(s) == std::string::npos, source_, ": ", where, ".", key,
              " must be one character");
    const char32_t cp = next_code_point(s, i);
    ARK_CHECK(i == s.size(), source_, ": ", where, ".", key, " must be one character, got '", s, "'");
    return cp;
  }
  Pattern pattern(const json& j, const std::string& where) const {
    const auto it = j.find("pattern");
    ARK_CHECK(it != j.end() && it->is_object() && it->size() == 1, source_, ": ", where,
              ".pattern must be {\"String\": ...} or {\"Regex\": ...}");
    Pattern p;
    if (const auto s = it->find("String"); s != it->end() && s->is_string()) {
      p.literal = s->get<std::string>();
    } else if (const auto r = it->find("Regex"); r != it->end() && r->is_string()) {
      p.regex = std::make_shared<Regex>(r->get<std::string>(), source_ + ": " + where);
    } else {
      throw_error(source_, ": ", where, ".pattern must be {\"String\": ...} or {\"Regex\": ...}, got ",
                  it->dump());
    }
    return p;
  }
  PrependScheme prepend_scheme(const json& j, const std::string& where) const {
    if (const auto s = optional_string(j, "prepend_scheme", where)) {
      if (*s == "always") return PrependScheme::kAlways;
      if (*s == "first") return PrependScheme::kFirst;
      if (*s == "never") return PrependScheme::kNever;
      throw_error(source_, ": ", where, ".prepend_scheme '", *s, "' is not one of always, first, never");
    }
    // Files written before prepend_scheme existed say add_prefix_space instead.
    return boolean(j, "add_prefix_space", true, where) ? PrependScheme::kAlways : PrependScheme::kNever;
  }

  [[noreturn]] void unsupported(const std::string& kind, const std::string& type,
                                const std::string& supported) const {
    throw_error(source_, ": ", kind, " type '", type, "' is not supported (supported: ", supported, ")");
  }

 private:
  std::string source_;
};

std::unique_ptr<Normalizer> parse_normalizer(const Reader& r, const json& j, const std::string& where) {
  const std::string type = r.type_of(j, where);
  if (type == "NFC") return make_unicode_normalizer(NormalForm::kNfc);
  if (type == "NFD") return make_unicode_normalizer(NormalForm::kNfd);
  if (type == "NFKC") return make_unicode_normalizer(NormalForm::kNfkc);
  if (type == "NFKD") return make_unicode_normalizer(NormalForm::kNfkd);
  if (type == "Prepend") return make_prepend_normalizer(r.string(j, "prepend", where));
  if (type == "Replace") return make_replace_normalizer(r.pattern(j, where), r.string(j, "content", where));
  if (type == "Strip") {
    return make_strip_normalizer(r.boolean(j, "strip_left", true, where),
                                 r.boolean(j, "strip_right", true, where));
  }
  if (type == "Sequence") {
    std::vector<std::unique_ptr<Normalizer>> parts;
    const json& list = r.array(j, "normalizers", where);
    for (size_t i = 0; i < list.size(); ++i) {
      parts.push_back(parse_normalizer(r, list[i], where + ".normalizers[" + std::to_string(i) + "]"));
    }
    return make_sequence_normalizer(std::move(parts));
  }
  r.unsupported("normalizer", type, "NFC, NFD, NFKC, NFKD, Prepend, Replace, Strip, Sequence");
}

SplitBehavior parse_behavior(const Reader& r, const json& j, const std::string& where) {
  const std::string b = r.string(j, "behavior", where);
  if (b == "Removed") return SplitBehavior::kRemoved;
  if (b == "Isolated") return SplitBehavior::kIsolated;
  if (b == "MergedWithPrevious") return SplitBehavior::kMergedWithPrevious;
  if (b == "MergedWithNext") return SplitBehavior::kMergedWithNext;
  if (b == "Contiguous") return SplitBehavior::kContiguous;
  throw_error(r.source(), ": ", where, ".behavior '", b,
              "' is not one of Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous");
}

std::unique_ptr<PreTokenizer> parse_pre_tokenizer(const Reader& r, const json& j, const std::string& where) {
  const std::string type = r.type_of(j, where);
  if (type == "Split") {
    return make_split_pre_tokenizer(r.pattern(j, where), parse_behavior(r, j, where),
                                    r.boolean(j, "invert", false, where));
  }
  if (type == "ByteLevel") {
    return make_byte_level_pre_tokenizer(r.boolean(j, "add_prefix_space", true, where),
                                         r.boolean(j, "use_regex", true, where));
  }
  if (type == "Metaspace") {
    return make_metaspace_pre_tokenizer(r.character(j, "replacement", where), r.prepend_scheme(j, where),
                                        r.boolean(j, "split", true, where));
  }
  if (type == "Digits") return make_digits_pre_tokenizer(r.boolean(j, "individual_digits", false, where));
  if (type == "Sequence") {
    std::vector<std::unique_ptr<PreTokenizer>> parts;
    const json& list = r.array(j, "pretokenizers", where);
    for (size_t i = 0; i < list.size(); ++i) {
      parts.push_back(parse_pre_tokenizer(r, list[i], where + ".pretokenizers[" + std::to_string(i) + "]"));
    }
    return make_sequence_pre_tokenizer(std::move(parts));
  }
  r.unsupported("pre_tokenizer", type, "Split, ByteLevel, Metaspace, Digits, Sequence");
}

struct DecoderTraits {
  bool byte_level = false, byte_fallback = false;
};

std::unique_ptr<Decoder> parse_decoder(const Reader& r, const json& j, const std::string& where,
                                       DecoderTraits& t) {
  const std::string type = r.type_of(j, where);
  if (type == "ByteLevel") {
    t.byte_level = true;
    return make_byte_level_decoder();
  }
  if (type == "Metaspace")
    return make_metaspace_decoder(r.character(j, "replacement", where), r.prepend_scheme(j, where));
  if (type == "Replace") return make_replace_decoder(r.pattern(j, where), r.string(j, "content", where));
  if (type == "ByteFallback") {
    t.byte_fallback = true;
    return make_byte_fallback_decoder();
  }
  if (type == "Fuse") return make_fuse_decoder();
  if (type == "Strip") {
    return make_strip_decoder(r.string(j, "content", where), r.count(j, "start", 0, where),
                              r.count(j, "stop", 0, where));
  }
  if (type == "Sequence") {
    std::vector<std::unique_ptr<Decoder>> parts;
    const json& list = r.array(j, "decoders", where);
    for (size_t i = 0; i < list.size(); ++i) {
      parts.push_back(parse_decoder(r, list[i], where + ".decoders[" + std::to_string(i) + "]", t));
    }
    return make_sequence_decoder(std::move(parts));
  }
  r.unsupported("decoder", type, "ByteLevel, Metaspace, Replace, ByteFallback, Fuse, Strip, Sequence");
}

std::unique_ptr<BpeModel> parse_model(const Reader& r, const json& j) {
  const std::string where = "model";
  ARK_CHECK(j.is_object(), r.source(), ": \"model\" must be an object");
  // Old files leave "type" out; `tokenizers` then recognises BPE by its merges.
  const std::string type = j.contains("type") ? r.type_of(j, where) : (j.contains("merges") ? "BPE" : "?");
  if (type != "BPE") r.unsupported("model", type, "BPE");
  if (const auto d = j.find("dropout"); d != j.end() && !d->is_null()) {
    ARK_CHECK(d->is_number() && d->get<double>() == 0.0, r.source(),
              ": model.dropout is not supported (it makes tokenization random); expected null or 0");
  }
  const auto vocab_it = j.find("vocab");
  ARK_CHECK(vocab_it != j.end() && vocab_it->is_object(), r.source(), ": model.vocab must be an object");
  Vocab vocab;
  vocab.reserve(vocab_it->size());
  for (const auto& [token, id] : vocab_it->items()) {
    ARK_CHECK(id.is_number_integer() && id.get<int64_t>() >= 0 && id.get<int64_t>() < (int64_t{1} << 31),
              r.source(), ": model.vocab['", token, "'] must be a non-negative integer id");
    vocab.emplace(token, id.get<int32_t>());
  }
  std::vector<std::pair<std::string, std::string>> merges;
  const json& list = r.array(j, "merges", where);
  merges.reserve(list.size());
  for (size_t i = 0; i < list.size(); ++i) {
    const json& m = list[i];
    if (m.is_string()) {
      const std::string s = m.get<std::string>();
      const size_t space = s.find(' ');
      ARK_CHECK(space != std::string::npos && s.find(' ', space + 1) == std::string::npos, r.source(),
                ": model.merges[", i, "] = '", s, "' must be two tokens separated by one space");
      merges.emplace_back(s.substr(0, space), s.substr(space + 1));
    } else {
      ARK_CHECK(m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string(), r.source(),
                ": model.merges[", i, "] must be \"a b\" or [\"a\", \"b\"]");
      merges.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
    }
  }
  BpeOptions options;
  options.unk_token = r.optional_string(j, "unk_token", where);
  options.continuing_subword_prefix = r.optional_string(j, "continuing_subword_prefix", where).value_or("");
  options.end_of_word_suffix = r.optional_string(j, "end_of_word_suffix", where).value_or("");
  options.fuse_unk = r.boolean(j, "fuse_unk", false, where);
  options.byte_fallback = r.boolean(j, "byte_fallback", false, where);
  options.ignore_merges = r.boolean(j, "ignore_merges", false, where);
  return std::make_unique<BpeModel>(std::move(vocab), merges, std::move(options), r.source());
}

// The post-processor decides only what encode(text, true) adds around the text.
void parse_post_processor(const Reader& r, const json& j, const std::string& where, TokenizerImpl& t) {
  const std::string type = r.type_of(j, where);
  if (type == "ByteLevel") return;  // it adjusts offsets only
  if (type == "Sequence") {
    const json& list = r.array(j, "processors", where);
    for (size_t i = 0; i < list.size(); ++i) {
      parse_post_processor(r, list[i], where + ".processors[" + std::to_string(i) + "]", t);
    }
    return;
  }
  if (type == "BertProcessing" || type == "RobertaProcessing") {
    auto id_of = [&](const char* key) {
      const auto it = j.find(key);
      ARK_CHECK(it != j.end() && it->is_array() && it->size() == 2 && (*it)[1].is_number_integer(),
                r.source(), ": ", where, ".", key, " must be [token, id]");
      return (*it)[1].get<int32_t>();
    };
    t.template_prefix.insert(t.template_prefix.begin(), id_of("cls"));
    t.template_suffix.push_back(id_of("sep"));
    return;
  }
  if (type != "TemplateProcessing") {
    r.unsupported("post_processor", type,
                  "TemplateProcessing, ByteLevel, BertProcessing, RobertaProcessing, Sequence");
  }
  const auto specials = j.find("special_tokens");
  ARK_CHECK(specials != j.end() && specials->is_object(), r.source(), ": ", where,
            ".special_tokens must be an object");
  std::vector<int32_t> prefix, suffix;
  bool seen_sequence = false;
  const json& single = r.array(j, "single", where);
  for (size_t i = 0; i < single.size(); ++i) {
    const json& item = single[i];
    const std::string at = where + ".single[" + std::to_string(i) + "]";
    if (const auto seq = item.find("Sequence"); seq != item.end()) {
      ARK_CHECK(!seen_sequence && r.string(*seq, "id", at) == "A", r.source(), ": ", at,
                ": the single template must hold sequence A exactly once");
      seen_sequence = true;
    } else if (const auto sp = item.find("SpecialToken"); sp != item.end()) {
      const std::string name = r.string(*sp, "id", at);
      const auto entry = specials->find(name);
      ARK_CHECK(entry != specials->end(), r.source(), ": ", at, ": special token '", name,
                "' is not in special_tokens");
      for (const json& id : r.array(*entry, "ids", where + ".special_tokens['" + name + "']")) {
        ARK_CHECK(id.is_number_integer(), r.source(), ": ", where, ".special_tokens['", name,
                  "'].ids must be integers");
        (seen_sequence ? suffix : prefix).push_back(id.get<int32_t>());
      }
    } else {
      throw_error(r.source(), ": ", at, " must be {\"Sequence\": ...} or {\"SpecialToken\": ...}");
    }
  }
  ARK_CHECK(seen_sequence, r.source(), ": ", where, ".single has no sequence A");
  t.template_prefix.insert(t.template_prefix.begin(), prefix.begin(), prefix.end());
  t.template_suffix.insert(t.template_suffix.end(), suffix.begin(), suffix.end());
}

std::optional<std::string> config_token(const Reader& r, const json& config, const char* key) {
  const auto it = config.find(key);
  if (it == config.end() || it->is_null()) return std::nullopt;
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object()) return r.string(*it, "content", key);
  throw_error(r.source(), ": ", key, " must be a string, {\"content\": ...} or null");
}

}  // namespace

std::shared_ptr<TokenizerImpl> parse_tokenizer(std::string_view tokenizer_json, std::string_view config_json,
                                               const std::string& source) {
  Reader r(source);
  json j;
  try {
    j = json::parse(tokenizer_json);
  } catch (const json::exception& e) {
    throw_error(source, ": not valid JSON: ", e.what());
  }
  ARK_CHECK(j.is_object(), source, ": expected a JSON object at the top level");
  if (const auto t = j.find("truncation"); t != j.end() && !t->is_null()) {
    throw_error(source, ": truncation is not supported (expected null): ark never cuts a prompt silently");
  }

  auto impl = std::make_shared<TokenizerImpl>();
  impl->source = source;
  try {
    const auto model = j.find("model");
    ARK_CHECK(model != j.end(), source, ": no \"model\"");
    impl->model = parse_model(r, *model);
    if (const auto n = j.find("normalizer"); n != j.end() && !n->is_null()) {
      impl->normalizer = parse_normalizer(r, *n, "normalizer");
    }
    if (const auto p = j.find("pre_tokenizer"); p != j.end() && !p->is_null()) {
      impl->pre_tokenizer = parse_pre_tokenizer(r, *p, "pre_tokenizer");
    }
    if (const auto p = j.find("post_processor"); p != j.end() && !p->is_null()) {
      parse_post_processor(r, *p, "post_processor", *impl);
    }
    if (const auto d = j.find("decoder"); d != j.end() && !d->is_null()) {
      DecoderTraits traits;
      impl->decoder = parse_decoder(r, *d, "decoder", traits);
      impl->decoder_is_byte_level = traits.byte_level;
      impl->decoder_has_byte_fallback = traits.byte_fallback;
    }

    if (const auto added = j.find("added_tokens"); added != j.end() && !added->is_null()) {
      ARK_CHECK(added->is_array(), source, ": added_tokens must be an array");
      for (size_t i = 0; i < added->size(); ++i) {
        const json& a = (*added)[i];
        const std::string where = "added_tokens[" + std::to_string(i) + "]";
        ARK_CHECK(a.is_object(), source, ": ", where, " must be an object");
        AddedToken token;
        const auto id = a.find("id");
        ARK_CHECK(id != a.end() && id->is_number_integer() && id->get<int64_t>() >= 0 &&
                      id->get<int64_t>() < (int64_t{1} << 31),
                  source, ": ", where, ".id must be a non-negative integer");
        token.id = id->get<int32_t>();
        token.content = r.string(a, "content", where);
        token.special = r.boolean(a, "special", false, where);
        token.single_word = r.boolean(a, "single_word", false, where);
        token.lstrip = r.boolean(a, "lstrip", false, where);
        token.rstrip = r.boolean(a, "rstrip", false, where);
        token.normalized = r.boolean(a, "normalized", !token.special, where);
        ARK_CHECK(!token.content.empty(), source, ": ", where, ".content is empty");
        impl->added_tokens.push_back(std::move(token));
      }
    }
  } catch (const json::exception& e) {
    throw_error(source, ": unexpected JSON value: ", e.what());
  }

  // Ids: the model's vocabulary, then added tokens over it (an added token wins on a shared id, as in
  // `tokenizers`).
  int64_t max_id = -1;
  for (const auto& [token, id] : impl->model->vocab()) max_id = std::max<int64_t>(max_id, id);
  for (const AddedToken& a : impl->added_tokens) max_id = std::max<int64_t>(max_id, a.id);
  impl->id_to_token.assign(static_cast<size_t>(max_id + 1), std::string());
  for (const auto& [token, id] : impl->model->vocab()) impl->id_to_token[id] = token;
  Vocab special_contents;
  for (const AddedToken& a : impl->added_tokens) {
    impl->id_to_token[a.id] = a.content;
    impl->added_by_content[a.content] = a.id;
    if (a.special) special_contents.emplace(a.content, a.id);
  }
  impl->id_is_special.assign(impl->id_to_token.size(), 0);
  for (size_t id = 0; id < impl->id_to_token.size(); ++id) {
    impl->id_is_special[id] = special_contents.count(impl->id_to_token[id]) ? 1 : 0;
  }
  for (const AddedToken& a : impl->added_tokens) {
    if (a.normalized) {
      std::string pattern = a.content;
      if (impl->normalizer) impl->normalizer->apply(pattern);
      impl->normalized_matcher.add(std::move(pattern), &a);
    } else {
      impl->raw_matcher.add(a.content, &a);
    }
  }
  for (int32_t id : impl->template_prefix) {
    ARK_CHECK(id >= 0 && static_cast<size_t>(id) < impl->id_to_token.size(), source, ": post_processor id ",
              id, " is outside the vocabulary");
  }
  for (int32_t id : impl->template_suffix) {
    ARK_CHECK(id >= 0 && static_cast<size_t>(id) < impl->id_to_token.size(), source, ": post_processor id ",
              id, " is outside the vocabulary");
  }

  // BOS/EOS: tokenizer_config.json names them; the template is the fallback.
  if (!impl->template_prefix.empty()) impl->bos_id = impl->template_prefix.front();
  if (!impl->template_suffix.empty()) impl->eos_id = impl->template_suffix.back();
  if (!config_json.empty()) {
    const Reader cr(source + " (tokenizer_config.json)");
    json config;
    try {
      config = json::parse(config_json);
    } catch (const json::exception& e) {
      throw_error(cr.source(), ": not valid JSON: ", e.what());
    }
    ARK_CHECK(config.is_object(), cr.source(), ": expected a JSON object at the top level");
    for (const auto& [key, slot] :
         {std::pair{"bos_token", &impl->bos_id}, std::pair{"eos_token", &impl->eos_id}}) {
      if (const auto name = config_token(cr, config, key)) {
        const auto id = impl->lookup(*name);
        ARK_CHECK(id.has_value(), cr.source(), ": ", key, " '", *name, "' is not in the vocabulary");
        *slot = *id;
      }
    }
  }
  return impl;
}

}  // namespace detail

namespace {

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  ARK_CHECK(in.good(), "tokenizer: cannot open '", path.string(), "'");
  std::ostringstream buffer;
  buffer << in.rdbuf();
  ARK_CHECK(!in.bad(), "tokenizer: cannot read '", path.string(), "'");
  return buffer.str();
}

}  // namespace

Tokenizer Tokenizer::load(const std::string& path) {
  namespace fs = std::filesystem;
  fs::path file = path;
  std::error_code ec;
  if (fs::is_directory(file, ec)) file /= "tokenizer.json";
  ARK_CHECK(
      fs::is_regular_file(file, ec), "tokenizer: '", file.string(),
      "' does not exist (expected a checkpoint directory holding tokenizer.json, or a tokenizer.json file)");
  const fs::path config = file.parent_path() / "tokenizer_config.json";
  const std::string config_text = fs::is_regular_file(config, ec) ? read_file(config) : std::string();
  return Tokenizer(detail::parse_tokenizer(read_file(file), config_text, file.string()));
}

Tokenizer Tokenizer::from_json(std::string_view tokenizer_json, std::string_view config_json,
                               const std::string& source) {
  return Tokenizer(detail::parse_tokenizer(tokenizer_json, config_json, source));
}

}  // namespace ark
