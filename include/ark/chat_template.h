// The chat templates the supported architectures ship, rendered natively: a checkpoint's chat_template
// (tokenizer_config.json, a Jinja program) is recognised as one of the families below and rendered by C++
// that produces exactly what transformers' apply_chat_template(messages, tokenize=False) does for plain-text
// conversations (roles system / user / assistant; tests/python/test_runtime_chat_template.py checks it). A
// template of another family is refused with an ark::Error rather than rendered approximately.
//
//   kChatMl  ChatML (<|im_start|>role\n...<|im_end|>\n); Qwen2 / Qwen2.5 put a default system message first
//            when the conversation has none (the text is taken from the template)
//   kQwen3   ChatML with Qwen3's thinking rules: reasoning in earlier assistant turns is dropped, and
//            enable_thinking=false opens the answer with an empty <think></think>
//   kLlama3  <|start_header_id|>role<|end_header_id|>\n\n content (trimmed) <|eot_id|>, BOS first, the
//            assistant header always appended (Llama-3's template has no add_generation_prompt switch)
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace ark {

struct ChatMessage {
  std::string role;  // "system", "user" or "assistant"
  std::string content;
};

class ChatTemplate {
 public:
  enum class Family : uint8_t { kChatMl, kQwen3, kLlama3 };

  // `jinja` is the chat_template string; `bos_token` the tokenizer_config's bos_token text ("" when none).
  static ChatTemplate from_jinja(std::string_view jinja, std::string bos_token = {});
  // Reads `dir`/tokenizer_config.json; throws naming the file when it has no chat_template.
  static ChatTemplate from_dir(const std::filesystem::path& dir);

  Family family() const { return family_; }
  std::string_view family_name() const;
  const std::string& default_system() const { return default_system_; }

  // Throws ark::Error for an empty conversation or a role other than system / user / assistant.
  std::string render(const std::vector<ChatMessage>& messages, bool add_generation_prompt = true,
                     bool enable_thinking = true) const;

 private:
  Family family_ = Family::kChatMl;
  std::string default_system_;  // ChatML only: inserted when messages[0] is not a system message
  std::string bos_token_;
};

}  // namespace ark
