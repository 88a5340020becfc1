// A checkpoint's chat template (tokenizer_config.json's chat_template, a Jinja program) executed by ark's
// own small Jinja interpreter (src/runtime/jinja/), so that any checkpoint's template renders exactly as
// transformers' apply_chat_template(messages, tokenize=False) renders it: Jinja2 with trim_blocks,
// lstrip_blocks and loop controls, the globals raise_exception and strftime_now, and tojson as json.dumps
// with ensure_ascii=False. The variables a template sees are the ones transformers passes: messages,
// add_generation_prompt, tools and documents (none unless given), the tokenizer's special-token strings
// (bos_token, eos_token, pad_token, ..., additional_special_tokens; absent when the config has none) and
// enable_thinking when the caller gives it.
//
// The template is parsed once, when the ChatTemplate is made: bad syntax, an unknown filter or test, or a
// construct the interpreter does not support throws ark::Error naming the line. Rendering throws
// ark::Error for what the template itself rejects (raise_exception's message is kept) or does wrong
// (attribute of an undefined value, a type error), always with the line; it never renders approximately.
// docs/RUNTIME.md lists the supported Jinja subset.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ark {

struct ChatMessage {
  std::string role;  // "system", "user", "assistant", "tool", ...: the template decides what it accepts
  std::string content;
};

class ChatTemplate {
 public:
  // `source` is the chat_template text; `special_tokens` maps variable names (bos_token, eos_token, ...)
  // to their text. Throws ark::Error for a template that does not parse.
  static ChatTemplate from_jinja(std::string_view source,
                                 std::map<std::string, std::string> special_tokens = {});
  // Reads `dir`/tokenizer_config.json (chat_template as a string, or the "default" entry of a list of
  // named templates; `dir`/chat_template.jinja wins when present, as newer transformers save it there) and
  // its special tokens (special_tokens_map.json overriding them when present). Throws naming the file when
  // there is no template or it does not parse.
  static ChatTemplate from_dir(const std::filesystem::path& dir);

  // Plain-text messages (role, content). `enable_thinking` is passed to the template only when given.
  std::string render(const std::vector<ChatMessage>& messages, bool add_generation_prompt = true,
                     std::optional<bool> enable_thinking = std::nullopt) const;
  // Any variables, as a JSON object: {"messages": [...], "add_generation_prompt": true, "tools": [...],
  // ...}; messages may carry any keys (tool_calls, reasoning_content, ...). The special tokens, tools=none,
  // documents=none and add_generation_prompt=false are the defaults the object overrides.
  std::string render_json(std::string_view variables_json) const;

  const std::string& source() const;

  struct Impl;  // the parsed program and default variables (src/runtime/chat_template.cpp)

 private:
  void check_made() const;

  // Immutable once made: copies share it and renders may run concurrently.
  std::shared_ptr<const Impl> impl_;
};

}  // namespace ark
