// Native chat-template rendering (ark/chat_template.h). Each family mirrors its Jinja source's logic for
// plain-text messages; Python string semantics (str.strip, lstrip('\n'), split) are reproduced where the
// templates use them.
#include "ark/chat_template.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "ark/error.h"

namespace ark {

namespace {

bool contains(std::string_view s, std::string_view needle) {
  return s.find(needle) != std::string_view::npos;
}

// Python's str.strip() with no argument (ASCII whitespace; the templates' inputs are what users type).
std::string py_strip(std::string_view s) {
  const char* ws = " \t\n\r\v\f";
  const size_t b = s.find_first_not_of(ws);
  if (b == std::string_view::npos) return {};
  const size_t e = s.find_last_not_of(ws);
  return std::string(s.substr(b, e - b + 1));
}

std::string strip_chars(std::string_view s, char c, bool left, bool right) {
  size_t b = 0, e = s.size();
  if (left)
    while (b < e && s[b] == c) ++b;
  if (right)
    while (e > b && s[e - 1] == c) --e;
  return std::string(s.substr(b, e - b));
}

void check_roles(const std::vector<ChatMessage>& messages) {
  ARK_CHECK(!messages.empty(), "chat template: the conversation is empty");
  for (size_t i = 0; i < messages.size(); ++i) {
    const std::string& r = messages[i].role;
    ARK_CHECK(r == "system" || r == "user" || r == "assistant", "chat template: message ", i, " has role '",
              r, "' (expected system, user or assistant)");
  }
}

std::string render_chatml(const std::vector<ChatMessage>& m, const std::string& default_system, bool gen) {
  std::string out;
  if (m[0].role != "system" && !default_system.empty())
    out += "<|im_start|>system\n" + default_system + "<|im_end|>\n";
  for (const ChatMessage& msg : m) out += "<|im_start|>" + msg.role + "\n" + msg.content + "<|im_end|>\n";
  if (gen) out += "<|im_start|>assistant\n";
  return out;
}

std::string render_qwen3(const std::vector<ChatMessage>& m, bool gen, bool enable_thinking) {
  std::string out;
  if (m[0].role == "system") out += "<|im_start|>system\n" + m[0].content + "<|im_end|>\n";
  // The last user message (tool responses aside, which plain-text chats do not have).
  int64_t last_query = static_cast<int64_t>(m.size()) - 1;
  for (int64_t i = static_cast<int64_t>(m.size()) - 1; i >= 0; --i) {
    const std::string& c = m[i].content;
    const bool tool_response = c.starts_with("<tool_response>") && c.ends_with("</tool_response>");
    if (m[i].role == "user" && !tool_response) {
      last_query = i;
      break;
    }
  }
  for (size_t i = 0; i < m.size(); ++i) {
    const ChatMessage& msg = m[i];
    if (msg.role == "user" || (msg.role == "system" && i > 0)) {
      out += "<|im_start|>" + msg.role + "\n" + msg.content + "<|im_end|>\n";
    } else if (msg.role == "assistant") {
      std::string content = msg.content, reasoning;
      const size_t close = msg.content.find("</think>");
      if (close != std::string::npos) {
        // content.split('</think>')[-1].lstrip('\n'); reasoning = split[0].rstrip('\n').split('<think>')[-1]
        const size_t last_close = msg.content.rfind("</think>");
        content = strip_chars(std::string_view(msg.content).substr(last_close + 8), '\n', true, false);
        std::string before = strip_chars(std::string_view(msg.content).substr(0, close), '\n', false, true);
        const size_t open = before.rfind("<think>");
        if (open != std::string::npos) before = before.substr(open + 7);
        reasoning = strip_chars(before, '\n', true, false);
      }
      const bool last = i + 1 == m.size();
      if (static_cast<int64_t>(i) > last_query && (last || !reasoning.empty())) {
        out += "<|im_start|>assistant\n<think>\n" + strip_chars(reasoning, '\n', true, true) +
               "\n</think>\n\n" + strip_chars(content, '\n', true, false);
      } else {
        out += "<|im_start|>assistant\n" + content;
      }
      out += "<|im_end|>\n";
    }
  }
  if (gen) {
    out += "<|im_start|>assistant\n";
    if (!enable_thinking) out += "<think>\n\n</think>\n\n";
  }
  return out;
}

std::string render_llama3(const std::vector<ChatMessage>& m, const std::string& bos) {
  std::string out;
  for (size_t i = 0; i < m.size(); ++i) {
    if (i == 0) out += bos;
    out +=
        "<|start_header_id|>" + m[i].role + "<|end_header_id|>\n\n" + py_strip(m[i].content) + "<|eot_id|>";
  }
  return out + "<|start_header_id|>assistant<|end_header_id|>\n\n";
}

}  // namespace

ChatTemplate ChatTemplate::from_jinja(std::string_view jinja, std::string bos_token) {
  ChatTemplate t;
  t.bos_token_ = std::move(bos_token);
  if (contains(jinja, "<|start_header_id|>")) {
    // Llama-3.1+ templates add tool calling and a dated system preamble that this renderer does not follow.
    ARK_CHECK(!contains(jinja, "Cutting Knowledge Date") && !contains(jinja, "tools"),
              "chat template: this Llama-3 template (tools / dated system message) is not supported yet; "
              "supported: Llama-3's, ChatML (Qwen2/2.5), Qwen3's");
    t.family_ = Family::kLlama3;
    return t;
  }
  if (contains(jinja, "<|im_start|>")) {
    if (contains(jinja, "<think>")) {
      t.family_ = Family::kQwen3;
      return t;
    }
    t.family_ = Family::kChatMl;
    for (const char* s : {"You are Qwen, created by Alibaba Cloud. You are a helpful assistant.",
                          "You are a helpful assistant."}) {
      if (contains(jinja, std::string("<|im_start|>system\\n") + s) ||
          contains(jinja, std::string("<|im_start|>system\n") + s)) {
        t.default_system_ = s;
        break;
      }
    }
    return t;
  }
  throw_error(
      "chat template: not a recognised family (supported: ChatML as Qwen2/2.5 ship it, Qwen3's, "
      "Llama-3's)");
}

ChatTemplate ChatTemplate::from_dir(const std::filesystem::path& dir) {
  const auto path = dir / "tokenizer_config.json";
  std::ifstream in(path, std::ios::binary);
  ARK_CHECK(in, path.string(), ": cannot open (needed for --chat)");
  std::ostringstream s;
  s << in.rdbuf();
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(s.str());
  } catch (const nlohmann::json::exception& e) {
    throw_error(path.string(), ": not valid JSON (", e.what(), ")");
  }
  ARK_CHECK(j.contains("chat_template") && j.at("chat_template").is_string(), path.string(),
            ": no chat_template string (needed for --chat)");
  std::string bos;
  if (j.contains("bos_token")) {
    const auto& b = j.at("bos_token");
    if (b.is_string()) bos = b.get<std::string>();
    if (b.is_object() && b.contains("content")) bos = b.at("content").get<std::string>();
  }
  try {
    return from_jinja(j.at("chat_template").get<std::string>(), bos);
  } catch (const Error& e) {
    throw_error(path.string(), ": ", e.what());
  }
}

std::string_view ChatTemplate::family_name() const {
  switch (family_) {
    case Family::kQwen3:
      return "qwen3";
    case Family::kLlama3:
      return "llama3";
    default:
      return "chatml";
  }
}

std::string ChatTemplate::render(const std::vector<ChatMessage>& messages, bool add_generation_prompt,
                                 bool enable_thinking) const {
  check_roles(messages);
  switch (family_) {
    case Family::kQwen3:
      return render_qwen3(messages, add_generation_prompt, enable_thinking);
    case Family::kLlama3:
      return render_llama3(messages, bos_token_);
    default:
      return render_chatml(messages, default_system_, add_generation_prompt);
  }
}

}  // namespace ark
