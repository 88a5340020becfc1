// Chat templates (ark/chat_template.h): reading the checkpoint's template and special tokens, and the
// variables transformers gives the template; the Jinja interpreter itself is src/runtime/jinja/.
#include "ark/chat_template.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "ark/error.h"
#include "runtime/jinja/evaluator.h"
#include "runtime/jinja/json.h"
#include "runtime/jinja/parser.h"

namespace ark {

struct ChatTemplate::Impl {
  std::string source;
  jinja::Body program;
  jinja::Dict defaults;  // special tokens, tools/documents = none, add_generation_prompt = false
};

namespace {

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  ARK_CHECK(in, path.string(), ": cannot open (needed for --chat)");
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

constexpr const char* kSpecialTokenNames[] = {
    "bos_token", "eos_token", "unk_token",  "sep_token",
    "pad_token", "cls_token", "mask_token", "additional_special_tokens"};

// An AddedToken is written either as its text or as {"content": text, ...}.
std::optional<std::string> token_text(const nlohmann::json& j) {
  if (j.is_string()) return j.get<std::string>();
  if (j.is_object() && j.contains("content") && j.at("content").is_string())
    return j.at("content").get<std::string>();
  return std::nullopt;
}

std::shared_ptr<ChatTemplate::Impl> make_impl(std::string source, jinja::Dict special_tokens) {
  auto impl = std::make_shared<ChatTemplate::Impl>();
  impl->program = jinja::parse(source);
  impl->source = std::move(source);
  impl->defaults = std::move(special_tokens);
  impl->defaults.set("tools", jinja::Value::none());
  impl->defaults.set("documents", jinja::Value::none());
  impl->defaults.set("add_generation_prompt", jinja::Value(false));
  return impl;
}

}  // namespace

ChatTemplate ChatTemplate::from_jinja(std::string_view source,
                                      std::map<std::string, std::string> special_tokens) {
  jinja::Dict tokens;
  for (auto& [k, v] : special_tokens) tokens.set(k, jinja::Value(std::move(v)));
  ChatTemplate t;
  t.impl_ = make_impl(std::string(source), std::move(tokens));
  return t;
}

ChatTemplate ChatTemplate::from_dir(const std::filesystem::path& dir) {
  const auto path = dir / "tokenizer_config.json";
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_file(path));
  } catch (const nlohmann::json::exception& e) {
    throw_error(path.string(), ": not valid JSON (", e.what(), ")");
  }
  ARK_CHECK(j.is_object(), path.string(), ": expected a JSON object");
  std::string source;
  std::filesystem::path source_file = path;
  const auto jinja_file = dir / "chat_template.jinja";
  if (std::filesystem::exists(jinja_file)) {
    source = read_file(jinja_file);
    source_file = jinja_file;
  } else {
    ARK_CHECK(j.contains("chat_template"), path.string(), ": no chat_template (needed for --chat)");
    const auto& ct = j.at("chat_template");
    if (ct.is_string()) {
      source = ct.get<std::string>();
    } else if (ct.is_array()) {
      // Named templates ([{"name": "default", "template": ...}, {"name": "tool_use", ...}]): transformers
      // uses "default" when no tools are given.
      for (const auto& entry : ct)
        if (entry.is_object() && entry.value("name", "") == "default" && entry.contains("template") &&
            entry.at("template").is_string())
          source = entry.at("template").get<std::string>();
      ARK_CHECK(!source.empty(), path.string(), ": chat_template lists no \"default\" template");
    } else {
      throw_error(path.string(), ": chat_template must be a string or a list of named templates");
    }
  }
  // transformers' special_tokens_map: the attributes that are set and non-empty. special_tokens_map.json,
  // when the directory has one, overrides tokenizer_config.json's entries, as from_pretrained applies it.
  nlohmann::json special = nlohmann::json::object();
  for (const char* name : kSpecialTokenNames)
    if (j.contains(name)) special[name] = j.at(name);
  const auto map_path = dir / "special_tokens_map.json";
  if (std::filesystem::exists(map_path)) {
    nlohmann::json m;
    try {
      m = nlohmann::json::parse(read_file(map_path));
    } catch (const nlohmann::json::exception& e) {
      throw_error(map_path.string(), ": not valid JSON (", e.what(), ")");
    }
    ARK_CHECK(m.is_object(), map_path.string(), ": expected a JSON object");
    for (const char* name : kSpecialTokenNames)
      if (m.contains(name)) special[name] = m.at(name);
  }
  jinja::Dict tokens;
  for (const char* name : kSpecialTokenNames) {
    if (!special.contains(name)) continue;
    const auto& v = special.at(name);
    if (v.is_array()) {
      jinja::List list;
      for (const auto& x : v)
        if (auto text = token_text(x)) list.push_back(jinja::Value(*text));
      if (!list.empty()) tokens.set(name, jinja::Value(std::move(list)));
    } else if (auto text = token_text(v); text && !text->empty()) {
      tokens.set(name, jinja::Value(*text));
    }
  }
  ChatTemplate t;
  try {
    t.impl_ = make_impl(std::move(source), std::move(tokens));
  } catch (const Error& e) {
    throw_error(source_file.string(), ": ", e.what());
  }
  return t;
}

std::string ChatTemplate::render(const std::vector<ChatMessage>& messages, bool add_generation_prompt,
                                 std::optional<bool> enable_thinking) const {
  check_made();
  jinja::Dict vars = impl_->defaults;
  jinja::List list;
  for (const ChatMessage& m : messages) {
    jinja::Dict d;
    d.set("role", jinja::Value(m.role));
    d.set("content", jinja::Value(m.content));
    list.push_back(jinja::Value(std::move(d)));
  }
  vars.set("messages", jinja::Value(std::move(list)));
  vars.set("add_generation_prompt", jinja::Value(add_generation_prompt));
  if (enable_thinking) vars.set("enable_thinking", jinja::Value(*enable_thinking));
  return jinja::render(impl_->program, vars);
}

std::string ChatTemplate::render_json(std::string_view variables_json) const {
  check_made();
  const jinja::Value given = jinja::from_json_text(variables_json, "chat template variables");
  ARK_CHECK(given.is_dict(), "chat template variables: expected a JSON object");
  jinja::Dict vars = impl_->defaults;
  for (const auto& [k, v] : given.as_dict().items) vars.set(k, v);
  return jinja::render(impl_->program, vars);
}

const std::string& ChatTemplate::source() const {
  check_made();
  return impl_->source;
}

void ChatTemplate::check_made() const {
  ARK_CHECK(impl_, "ChatTemplate: empty (make one with from_jinja or from_dir)");
}

}  // namespace ark
