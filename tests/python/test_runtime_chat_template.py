"""ark's chat-template rendering (its own Jinja interpreter, src/runtime/jinja/) against the reference rendering:
transformers' apply_chat_template(tokenize=False) when transformers imports, else the template run by jinja2
configured as transformers configures it (ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks, loopcontrols,
the generation tag, raise_exception and strftime_now globals, tojson as json.dumps with ensure_ascii=False).

Templates: the real Qwen3 and Llama-3 tokenizer_config.json files in ../shared/data/tokenizers (next to the checkout,
as in CI), and, written here as published, Qwen2.5-Instruct's ChatML with tools, Llama-3.1-Instruct's and
Llama-3.2-Instruct's (dated system header, tools), Mistral-7B-Instruct-v0.1 / Mixtral's (raise_exception on bad role
order), Mistral-7B-Instruct-v0.2's and v0.3's (system message, tools). Every conversation x template x
add_generation_prompt x enable_thinking must give exactly the reference string, or the same error.

ark renders through the binding ark._C.render_chat_template (ChatTemplate::render_json) and, for the plain-text
conversations, through `ark generate --chat --messages ... --print-prompt` (the CLI path users take).
The interpreter's own case table (tests/jinja_test.cpp, kCases) is checked against jinja2 here too, so the C++
test's expectations are Jinja2's.
"""

import copy
import datetime
import functools
import json
import os
import pathlib
import re
import shutil
import subprocess

import pytest

jinja2 = pytest.importorskip("jinja2")
from jinja2.ext import Extension  # noqa: E402
from jinja2.sandbox import ImmutableSandboxedEnvironment  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[2]
ARK = os.environ.get("ARK_BIN", str(REPO / "build" / "ark"))
TOKENIZERS = REPO.parent / "shared" / "data" / "tokenizers"

# --- templates as published -------------------------------------------------------------------------------------

QWEN25_TEMPLATE = r"""{%- if tools %}
    {{- '<|im_start|>system\n' }}
    {%- if messages[0]['role'] == 'system' %}
        {{- messages[0]['content'] }}
    {%- else %}
        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}
    {%- endif %}
    {{- "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>" }}
    {%- for tool in tools %}
        {{- "\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n" }}
{%- else %}
    {%- if messages[0]['role'] == 'system' %}
        {{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}
    {%- else %}
        {{- '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n' }}
    {%- endif %}
{%- endif %}
{%- for message in messages %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) or (message.role == "assistant" and not message.tool_calls) %}
        {{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>' + '\n' }}
    {%- elif message.role == "assistant" %}
        {{- '<|im_start|>' + message.role }}
        {%- if message.content %}
            {{- '\n' + message.content }}
        {%- endif %}
        {%- for tool_call in message.tool_calls %}
            {%- if tool_call.function is defined %}
                {%- set tool_call = tool_call.function %}
            {%- endif %}
            {{- '\n<tool_call>\n{"name": "' }}
            {{- tool_call.name }}
            {{- '", "arguments": ' }}
            {{- tool_call.arguments | tojson }}
            {{- '}\n</tool_call>' }}
        {%- endfor %}
        {{- '<|im_end|>\n' }}
    {%- elif message.role == "tool" %}
        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\n<tool_response>\n' }}
        {{- message.content }}
        {{- '\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
            {{- '<|im_end|>\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
{%- endif %}
"""

LLAMA31_TEMPLATE = r"""{{- bos_token }}
{%- if custom_tools is defined %}
    {%- set tools = custom_tools %}
{%- endif %}
{%- if not tools_in_user_message is defined %}
    {%- set tools_in_user_message = true %}
{%- endif %}
{%- if not date_string is defined %}
    {%- set date_string = "26 Jul 2024" %}
{%- endif %}
{%- if not tools is defined %}
    {%- set tools = none %}
{%- endif %}

{#- This block extracts the system message, so we can slot it into the right place. #}
{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content']|trim %}
    {%- set messages = messages[1:] %}
{%- else %}
    {%- set system_message = "" %}
{%- endif %}

{#- System message + builtin tools #}
{{- "<|start_header_id|>system<|end_header_id|>\n\n" }}
{%- if builtin_tools is defined or tools is not none %}
    {{- "Environment: ipython\n" }}
{%- endif %}
{%- if builtin_tools is defined %}
    {{- "Tools: " + builtin_tools | reject('equalto', 'code_interpreter') | join(", ") + "\n\n"}}
{%- endif %}
{{- "Cutting Knowledge Date: December 2023\n" }}
{{- "Today Date: " + date_string + "\n\n" }}
{%- if tools is not none and not tools_in_user_message %}
    {{- "You have access to the following functions. To call a function, please respond with JSON for a function call." }}
    {{- 'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.' }}
    {{- "Do not use variables.\n\n" }}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
        {{- "\n\n" }}
    {%- endfor %}
{%- endif %}
{{- system_message }}
{{- "<|eot_id|>" }}

{#- Custom tools are passed in a user message with some extra guidance #}
{%- if tools_in_user_message and not tools is none %}
    {#- Extract the first user message so we can plug it in here #}
    {%- if messages | length != 0 %}
        {%- set first_user_message = messages[0]['content']|trim %}
        {%- set messages = messages[1:] %}
    {%- else %}
        {{- raise_exception("Cannot put tools in the first user message when there's no first user message!") }}
{%- endif %}
    {{- '<|start_header_id|>user<|end_header_id|>\n\n' -}}
    {{- "Given the following functions, please respond with a JSON for a function call " }}
    {{- "with its proper arguments that best answers the given prompt.\n\n" }}
    {{- 'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.' }}
    {{- "Do not use variables.\n\n" }}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
        {{- "\n\n" }}
    {%- endfor %}
    {{- first_user_message + "<|eot_id|>"}}
{%- endif %}

{%- for message in messages %}
    {%- if not (message.role == 'ipython' or message.role == 'tool' or 'tool_calls' in message) %}
        {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' }}
    {%- elif 'tool_calls' in message %}
        {%- if not message.tool_calls|length == 1 %}
            {{- raise_exception("This model only supports single tool-calls at once!") }}
        {%- endif %}
        {%- set tool_call = message.tool_calls[0].function %}
        {%- if builtin_tools is defined and tool_call.name in builtin_tools %}
            {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' -}}
            {{- "<|python_tag|>" + tool_call.name + ".call(" }}
            {%- for arg_name, arg_val in tool_call.arguments | items %}
                {{- arg_name + '="' + arg_val + '"' }}
                {%- if not loop.last %}
                    {{- ", " }}
                {%- endif %}
                {%- endfor %}
            {{- ")" }}
        {%- else  %}
            {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' -}}
            {{- '{"name": "' + tool_call.name + '", ' }}
            {{- '"parameters": ' }}
            {{- tool_call.arguments | tojson }}
            {{- "}" }}
        {%- endif %}
        {%- if builtin_tools is defined %}
            {#- This means we're in ipython mode #}
            {{- "<|eom_id|>" }}
        {%- else %}
            {{- "<|eot_id|>" }}
        {%- endif %}
    {%- elif message.role == "tool" or message.role == "ipython" %}
        {{- "<|start_header_id|>ipython<|end_header_id|>\n\n" }}
        {%- if message.content is mapping or message.content is iterable %}
            {{- message.content | tojson }}
        {%- else %}
            {{- message.content }}
        {%- endif %}
        {{- "<|eot_id|>" }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}
{%- endif %}
"""

# Llama-3.2-Instruct's differs in its date (strftime_now) and has no builtin_tools.
LLAMA32_TEMPLATE = (
    LLAMA31_TEMPLATE.replace(
        '{%- if not date_string is defined %}\n    {%- set date_string = "26 Jul 2024" %}\n{%- endif %}',
        '{%- if not date_string is defined %}\n    {%- if strftime_now is defined %}\n'
        '        {%- set date_string = strftime_now("%d %b %Y") %}\n    {%- else %}\n'
        '        {%- set date_string = "26 Jul 2024" %}\n    {%- endif %}\n{%- endif %}',
    )
)

MISTRAL_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}"
    "{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}"
)

MISTRAL_V2_TEMPLATE = r"""{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content'] %}
    {%- set loop_messages = messages[1:] %}
{%- else %}
    {%- set loop_messages = messages %}
{%- endif %}

{{- bos_token }}
{%- for message in loop_messages %}
    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}
        {{- raise_exception('After the optional system message, conversation roles must alternate user/assistant/user/assistant/...') }}
    {%- endif %}
    {%- if message['role'] == 'user' %}
        {%- if loop.first and system_message is defined %}
            {{- ' [INST] ' + system_message + '\n\n' + message['content'] + ' [/INST]' }}
        {%- else %}
            {{- ' [INST] ' + message['content'] + ' [/INST]' }}
        {%- endif %}
    {%- elif message['role'] == 'assistant' %}
        {{- ' ' + message['content'] + eos_token}}
    {%- else %}
        {{- raise_exception('Only user and assistant roles are supported, with the exception of an initial optional system message!') }}
    {%- endif %}
{%- endfor %}
"""

MISTRAL_V3_TEMPLATE = r"""{%- if messages[0]["role"] == "system" %}
    {%- set system_message = messages[0]["content"] %}
    {%- set loop_messages = messages[1:] %}
{%- else %}
    {%- set loop_messages = messages %}
{%- endif %}
{%- if not tools is defined %}
    {%- set tools = none %}
{%- endif %}
{%- set user_messages = loop_messages | selectattr("role", "equalto", "user") | list %}

{#- This block checks for alternating user/assistant messages, skipping tool calling messages #}
{%- set ns = namespace() %}
{%- set ns.index = 0 %}
{%- for message in loop_messages %}
    {%- if not (message.role == "tool" or message.role == "tool_results" or (message.tool_calls is defined and message.tool_calls is not none)) %}
        {%- if (message["role"] == "user") != (ns.index % 2 == 0) %}
            {{- raise_exception("After the optional system message, conversation roles must alternate user/assistant/user/assistant/...") }}
        {%- endif %}
        {%- set ns.index = ns.index + 1 %}
    {%- endif %}
{%- endfor %}

{{- bos_token }}
{%- for message in loop_messages %}
    {%- if message["role"] == "user" %}
        {%- if tools is not none and (message == user_messages[-1]) %}
            {{- "[AVAILABLE_TOOLS] [" }}
            {%- for tool in tools %}
                {%- set tool = tool.function %}
                {{- '{"type": "function", "function": {' }}
                {%- for key, val in tool.items() if key != "return" %}
                    {%- if val is string %}
                        {{- '"' + key + '": "' + val + '"' }}
                    {%- else %}
                        {{- '"' + key + '": ' + val|tojson }}
                    {%- endif %}
                    {%- if not loop.last %}
                        {{- ", " }}
                    {%- endif %}
                {%- endfor %}
                {{- "}}" }}
                {%- if not loop.last %}
                    {{- ", " }}
                {%- else %}
                    {{- "]" }}
                {%- endif %}
            {%- endfor %}
            {{- "[/AVAILABLE_TOOLS]" }}
            {%- endif %}
        {%- if loop.last and system_message is defined %}
            {{- "[INST] " + system_message + "\n\n" + message["content"] + "[/INST]" }}
        {%- else %}
            {{- "[INST] " + message["content"] + "[/INST]" }}
        {%- endif %}
    {%- elif message.tool_calls is defined and message.tool_calls is not none %}
        {{- "[TOOL_CALLS] [" }}
        {%- for tool_call in message.tool_calls %}
            {%- set out = tool_call.function|tojson %}
            {{- out[:-1] }}
            {%- if not tool_call.id is defined or tool_call.id|length != 9 %}
                {{- raise_exception("Tool call IDs should be alphanumeric strings with length 9!") }}
            {%- endif %}
            {{- ', "id": "' + tool_call.id + '"}' }}
            {%- if not loop.last %}
                {{- ", " }}
            {%- else %}
                {{- "]" + eos_token }}
            {%- endif %}
        {%- endfor %}
    {%- elif message["role"] == "assistant" %}
        {{- " " + message["content"]|trim + eos_token}}
    {%- elif message["role"] == "tool_results" or message["role"] == "tool" %}
        {%- if message.content is defined and message.content.content is defined %}
            {%- set content = message.content.content %}
        {%- else %}
            {%- set content = message.content %}
        {%- endif %}
        {{- '[TOOL_RESULTS] {"content": ' + content|string + ", " }}
        {%- if not message.tool_call_id is defined or message.tool_call_id|length != 9 %}
            {{- raise_exception("Tool call IDs should be alphanumeric strings with length 9!") }}
        {%- endif %}
        {{- '"call_id": "' + message.tool_call_id + '"}[/TOOL_RESULTS]' }}
    {%- else %}
        {{- raise_exception("Only user and assistant roles are supported, with the exception of an initial optional system message!") }}
    {%- endif %}
{%- endfor %}
"""

LLAMA_TOKENS = {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"}
MISTRAL_TOKENS = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}
QWEN_TOKENS = {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"}


def real_template(name):
    path = TOKENIZERS / name / "tokenizer_config.json"
    if not path.exists():
        pytest.skip(f"{path} is missing (../shared/data next to the checkout)")
    config = json.loads(path.read_text())
    tokens = {k: config[k] for k in ("bos_token", "eos_token", "pad_token", "unk_token") if isinstance(config.get(k), str)}
    return config["chat_template"], tokens


TEMPLATES = {
    "qwen3": lambda: real_template("qwen3"),
    "llama3": lambda: real_template("llama3"),
    "qwen2.5": lambda: (QWEN25_TEMPLATE, QWEN_TOKENS),
    "llama3.1": lambda: (LLAMA31_TEMPLATE, LLAMA_TOKENS),
    "llama3.2": lambda: (LLAMA32_TEMPLATE, LLAMA_TOKENS),
    "mistral": lambda: (MISTRAL_TEMPLATE, MISTRAL_TOKENS),
    "mistral-v0.2": lambda: (MISTRAL_V2_TEMPLATE, MISTRAL_TOKENS),
    "mistral-v0.3": lambda: (MISTRAL_V3_TEMPLATE, MISTRAL_TOKENS),
}

# --- conversations ---------------------------------------------------------------------------------------------

CONVERSATIONS = {
    "one_user": [{"role": "user", "content": "Hello!"}],
    "system_user": [{"role": "system", "content": "You answer in French."}, {"role": "user", "content": "  What is 2+2?\n"}],
    "multi_turn": [
        {"role": "user", "content": "Name a colour."},
        {"role": "assistant", "content": "Blue."},
        {"role": "user", "content": "Another, in 日本語 please 🎨"},
    ],
    "system_multi_turn": [
        {"role": "system", "content": "Be brief.\n"},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": " Hello there "},
        {"role": "user", "content": "Bye"},
        {"role": "assistant", "content": "Goodbye."},
    ],
    "think_earlier_turn": [
        {"role": "system", "content": "Think first."},
        {"role": "user", "content": "2+3?"},
        {"role": "assistant", "content": "<think>\nadd them\n</think>\n\n5"},
        {"role": "user", "content": "and 4+4?"},
    ],
    "think_last_turn": [
        {"role": "user", "content": "2+3?"},
        {"role": "assistant", "content": "<think>\n\nadd them\n\n</think>\n\n\n5\n"},
    ],
    "think_no_open_tag": [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "reasoning only</think>answer"},
        {"role": "user", "content": "q2"},
        {"role": "assistant", "content": "<think>r2</think>a2"},
    ],
    "code_and_tabs": [{"role": "user", "content": "def f(x):\n    return x * 2\n\nExplain\tthis."}],
    "cjk_and_spaces": [
        {"role": "system", "content": "\u3000日本語で答えてください。\u3000"},
        {"role": "user", "content": "東京の天気は？ \u00a0"},
        {"role": "assistant", "content": "晴れです。"},
        {"role": "user", "content": "ありがとう 😊"},
    ],
    "empty_content": [{"role": "user", "content": ""}, {"role": "assistant", "content": ""}, {"role": "user", "content": "x"}],
    "quotes_and_braces": [{"role": "user", "content": "He said \"{{ not jinja }}\" and {% this %} \\ too"}],
    "system_only": [{"role": "system", "content": "Only a system message."}],
    "two_users": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}],
    "assistant_first": [{"role": "assistant", "content": "I start."}, {"role": "user", "content": "ok"}],
}

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather in a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string", "description": "e.g. 東京"}, "days": {"type": "integer"}},
                "required": ["city"],
            },
        },
    }
]

TOOL_CONVERSATION = [
    {"role": "system", "content": "Use tools."},
    {"role": "user", "content": "Weather in Paris?"},
    {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {"id": "abcDEF123", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris", "days": 2}}}
        ],
    },
    {"role": "tool", "tool_call_id": "abcDEF123", "content": "{\"temp\": 21.5, \"sky\": \"clear\"}"},
    {"role": "assistant", "content": "It is 21.5 °C and clear."},
    {"role": "user", "content": "Thanks"},
]

# --- the reference --------------------------------------------------------------------------------------------


class GenerationTag(Extension):
    """transformers' AssistantTracker, for rendering: {% generation %} ... {% endgeneration %} renders its body."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return jinja2.nodes.Scope(body, lineno=lineno)


def reference_env():
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[GenerationTag, "jinja2.ext.loopcontrols"])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.datetime.now().strftime(fmt)
    return env


@functools.lru_cache(maxsize=None)
def compiled(template):
    return reference_env().from_string(template)


def transformers_render(template, tokens, variables):
    """apply_chat_template itself when transformers imports (it needs a tokenizer; the Qwen3 one serves)."""
    try:
        from transformers import PreTrainedTokenizerFast  # noqa: PLC0415
    except ImportError:
        return None
    tok_file = TOKENIZERS / "qwen3" / "tokenizer.json"
    if not tok_file.exists():
        return None
    tok = PreTrainedTokenizerFast(tokenizer_file=str(tok_file), **tokens)
    kwargs = {k: v for k, v in variables.items() if k not in ("messages", "tools", "add_generation_prompt")}
    return tok.apply_chat_template(variables["messages"], tools=variables.get("tools"), chat_template=template,
                                   tokenize=False, add_generation_prompt=variables.get("add_generation_prompt", False),
                                   **kwargs)


def reference_render(template, tokens, variables):
    """The reference text, or ("error", message) when the template raises."""
    try:
        got = transformers_render(template, tokens, variables)
        if got is not None:
            return got
        args = {"tools": None, "documents": None, "add_generation_prompt": False, **tokens, **variables}
        return compiled(template).render(**args)
    except jinja2.exceptions.TemplateError as e:
        return ("error", str(e))


def ark_render(template, tokens, variables):
    from ark import _C  # noqa: PLC0415

    try:
        return _C.render_chat_template(template, json.dumps(variables, ensure_ascii=False), tokens)
    except ValueError as e:
        return ("error", str(e))


def assert_same(got, want, what):
    if isinstance(want, tuple):
        assert isinstance(got, tuple), f"{what}: the reference raised {want[1]!r}, ark rendered {got!r}"
        assert want[1] in got[1], f"{what}: ark's error {got[1]!r} does not carry the template's {want[1]!r}"
    else:
        assert got == want, f"{what}:\nark: {got!r}\nref: {want!r}"


@pytest.fixture(scope="module")
def binding():
    try:
        from ark import _C  # noqa: PLC0415
    except ImportError as e:
        pytest.fail(f"ark._C is missing ({e}): build the extension or set ARK_BUILD_DIR")
    if not hasattr(_C, "render_chat_template"):
        pytest.fail("ark._C has no render_chat_template: rebuild the extension")
    return _C


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_conversations_match_reference(binding, name):
    template, tokens = TEMPLATES[name]()
    checked = 0
    for conv_name, messages in CONVERSATIONS.items():
        for add_generation_prompt in (True, False):
            for thinking in (None, True, False):
                variables = {"messages": messages, "add_generation_prompt": add_generation_prompt}
                if thinking is not None:
                    variables["enable_thinking"] = thinking
                what = f"{name} / {conv_name} / add_generation_prompt={add_generation_prompt} / enable_thinking={thinking}"
                assert_same(ark_render(template, tokens, variables), reference_render(template, tokens, variables), what)
                checked += 1
    assert checked == len(CONVERSATIONS) * 6


@pytest.mark.parametrize("name", ["qwen3", "qwen2.5", "llama3.1", "llama3.2", "mistral-v0.3"])
def test_tools_and_tool_calls_match_reference(binding, name):
    template, tokens = TEMPLATES[name]()
    for tools in (None, TOOLS):
        for messages in (TOOL_CONVERSATION, TOOL_CONVERSATION[1:]):
            for extra in ({}, {"tools_in_user_message": False}, {"date_string": "01 Feb 2025"}):
                variables = {"messages": messages, "tools": tools, "add_generation_prompt": True, **extra}
                assert_same(ark_render(template, tokens, variables), reference_render(template, tokens, variables),
                            f"{name} / tools={tools is not None} / {len(messages)} messages / {extra}")


def test_qwen3_reasoning_content_key(binding):
    template, tokens = TEMPLATES["qwen3"]()
    messages = [{"role": "user", "content": "q"},
                {"role": "assistant", "content": "a", "reasoning_content": "\nthought\n"}]
    for add in (True, False):
        variables = {"messages": messages, "add_generation_prompt": add}
        assert_same(ark_render(template, tokens, variables), reference_render(template, tokens, variables), f"add={add}")


@pytest.mark.parametrize("name", ["qwen3", "llama3"])
def test_checkpoint_directory_gives_the_templates_variables(binding, name):
    """ChatTemplate::from_dir: the template and the special tokens come from the checkpoint's files."""
    template, tokens = TEMPLATES[name]()
    for messages, tools in ((CONVERSATIONS["system_multi_turn"], None), (TOOL_CONVERSATION, TOOLS)):
        variables = {"messages": messages, "tools": tools, "add_generation_prompt": True}
        got = binding.render_chat_template_dir(str(TOKENIZERS / name), json.dumps(variables, ensure_ascii=False))
        assert_same(got, reference_render(template, tokens, variables), f"{name} from its directory")


def test_mistral_role_order_errors_carry_the_message(binding):
    bad = [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]
    got = ark_render(MISTRAL_TEMPLATE, MISTRAL_TOKENS, {"messages": bad})
    assert isinstance(got, tuple) and "Conversation roles must alternate user/assistant/user/assistant/..." in got[1]
    got = ark_render(MISTRAL_TEMPLATE, MISTRAL_TOKENS,
                     {"messages": [{"role": "user", "content": "a"}, {"role": "system", "content": "s"}]})
    assert isinstance(got, tuple) and "Only user and assistant roles are supported!" in got[1]


def test_bad_templates_are_refused_with_their_line(binding):
    for source, needle in [("a\n{% if x %}", "line 2"), ("{{ x | nosuch }}", "no filter named 'nosuch'"),
                           ("{% include 'x' %}", "'include' statement is not supported")]:
        with pytest.raises(ValueError, match=re.escape(needle)):
            binding.render_chat_template(source, "{}")


# --- the C++ case table against jinja2 -------------------------------------------------------------------------


def cpp_string_literals(text):
    """The concatenated value of the C++ string literals in `text` (raw and plain, with the escapes used)."""
    out, i = [], 0
    while i < len(text):
        m = re.compile(r'R"([^(]*)\(').match(text, i)
        if m:
            end = text.index(")" + m.group(1) + '"', m.end())
            out.append(text[m.end():end])
            i = end + len(m.group(1)) + 2
        elif text[i] == '"':
            j, s = i + 1, []
            while text[j] != '"':
                if text[j] == "\\":
                    s.append({"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\"}[text[j + 1]])
                    j += 2
                else:
                    s.append(text[j])
                    j += 1
            out.append("".join(s))
            i = j + 1
        elif text[i] == ",":
            out.append(None)
            i += 1
        else:
            i += 1
    fields, cur = [], None
    for piece in out:
        if piece is None:
            if cur is not None:
                fields.append(cur)
            cur = None
        else:
            cur = (cur or "") + piece
    if cur is not None:
        fields.append(cur)
    return fields


def cpp_cases():
    src = (REPO / "tests" / "jinja_test.cpp").read_text(encoding="utf-8")
    table = src[src.index("// BEGIN CASES"):src.index("// END CASES")]
    table = table[table.index("{", table.index("kCases")) + 1:]
    cases = []
    for m in re.finditer(r'\n    \{("(?:[^"\\]|\\.)*",.*?)\},(?=\n)', table, re.S):
        name, tmpl, variables, expected = cpp_string_literals(m.group(1))
        cases.append(pytest.param(tmpl, variables, expected, id=name))
    return cases


CPP_CASES = cpp_cases()


def test_cpp_case_table_was_read():
    assert len(CPP_CASES) >= 40


@pytest.mark.parametrize("tmpl,variables,expected", CPP_CASES)
def test_cpp_case_expectations_are_jinja2s(tmpl, variables, expected):
    assert compiled(tmpl).render(**json.loads(variables)) == expected


# --- random expressions against jinja2 -----------------------------------------------------------------------------

FUZZ_STRINGS = ["''", "'a'", "'Ab c'", "' x '", "'日本'", "'a,b,,c'", "'\\n t\\n'", "'É'", "'abc'"]
FUZZ_BINARY = ["+", "-", "*", "/", "//", "%", "~", "==", "!=", "<", ">=", "and", "or", "in", "not in"]
FUZZ_FILTERS = ["length", "string", "lower", "upper", "trim", "first", "last", "list", "reverse", "join", "join(',')",
                "default('D')", "tojson", "abs", "int", "float", "title", "capitalize", "count", "replace('a', 'Z')",
                "indent(2)", "unique | list", "select | list", "map('upper') | join"]
FUZZ_TESTS = ["defined", "none", "string", "number", "mapping", "sequence", "iterable", "true", "false", "integer",
              "float", "odd", "lower"]
FUZZ_METHODS = ["startswith('a')", "endswith('c')", "split(',')", "split()", "strip()", "lstrip()", "rstrip('c')",
                "upper()", "lower()", "title()", "replace('b', 'Q')", "find('b')", "count('a')"]
FUZZ_SUBSCRIPTS = ["0", "-1", "1:", ":-1", "::-1", "::2", "1", "2:1:-1"]
FUZZ_VARIABLES = {"x": 3, "s": "hello, World", "l": [3, 1, 2, "a"], "d": {"k": 1, "j": [1, 2]}}


def random_expression(rng, depth=0):
    """An expression over literals, the variables above, operators, filters, tests, subscripts and str methods."""
    def literal():
        c = rng.randrange(8)
        if c == 0:
            return str(rng.choice([0, 1, -1, 2, 7, -7, 3, 10, 100]))
        if c == 1:
            return rng.choice(["0.5", "1.0", "-2.5", "1e3", "0.1", "3.0"])
        if c == 2:
            return rng.choice(["none", "true", "false"])
        if c == 3 and depth < 3:
            return "[" + ", ".join(random_expression(rng, depth + 1) for _ in range(rng.randrange(4))) + "]"
        if c == 4 and depth < 3:
            return "{" + ", ".join(f"{rng.choice(FUZZ_STRINGS)}: {random_expression(rng, depth + 1)}"
                                   for _ in range(rng.randrange(3))) + "}"
        if c == 5:
            return rng.choice(["x", "s", "l", "d", "nope"])
        return rng.choice(FUZZ_STRINGS)

    if depth > 3:
        return literal()
    sub = lambda: random_expression(rng, depth + 1)  # noqa: E731
    c = rng.randrange(10)
    if c < 3:
        return literal()
    if c == 3:
        return f"({sub()} {rng.choice(FUZZ_BINARY)} {sub()})"
    if c == 4:
        return f"({sub()} | {rng.choice(FUZZ_FILTERS)})"
    if c == 5:
        return f"({sub()} is {rng.choice(['', 'not '])}{rng.choice(FUZZ_TESTS)})"
    if c == 6:
        return f"({sub()} if {sub()} else {sub()})"
    if c == 7:
        base = rng.choice(["s", "l", "x", "d", "[1, 2, 3]", "nope"] + FUZZ_STRINGS)
        return f"{base}[{rng.choice(FUZZ_SUBSCRIPTS)}]"
    if c == 8:
        return f"{rng.choice(FUZZ_STRINGS)}.{rng.choice(FUZZ_METHODS)}"
    return f"(not {sub()})"


def test_random_expressions_match_jinja2(binding):
    """Seeded (ARK_TEST_SEED replays): ark prints what jinja2 prints, or both refuse. ark's documented refusals
    (%-formatting, printing a generator) are skipped."""
    import random  # noqa: PLC0415

    seed = int(os.environ.get("ARK_TEST_SEED", random.SystemRandom().randrange(1 << 31)))
    print(f"random expressions: seed {seed} (replay with ARK_TEST_SEED={seed})")
    rng = random.Random(seed)
    env = reference_env()
    variables = json.dumps(FUZZ_VARIABLES)
    compared = 0
    for _ in range(1500):
        source = "{{ " + random_expression(rng) + " }}"
        try:
            # A fresh copy each time: jinja2's indent filter extends a list argument in place.
            want = env.from_string(source).render(**copy.deepcopy(FUZZ_VARIABLES))
        except Exception:  # noqa: BLE001 - any Python error is a refusal to match
            want = None
        try:
            got = binding.render_chat_template(source, variables)
        except ValueError as e:
            if "printf-style" in str(e) or "printing a generator" in str(e):
                continue
            got = None
        if want is not None and ("<generator" in want or "iterator object" in want):
            continue
        assert got == want, f"seed {seed}: {source}\nark: {got!r}\nref: {want!r}"
        compared += 1
    assert compared > 1000


WS_TEXT = ["", " ", "  ", "\n", "\n  ", "  \n", "\t", "a", "b c", "\n\n", " x\n", "\r\n", "日"]


def random_template(rng, depth=0):
    """Text with spaces, tabs and newlines around tags carrying random -/+ whitespace control, nested blocks."""
    def text():
        return "".join(rng.choice(WS_TEXT) for _ in range(rng.randrange(3)))

    def tag(body, ends=("", "", "-", "+")):
        return "{%" + rng.choice(("", "", "-", "+")) + " " + body + " " + rng.choice(ends) + "%}"

    out = []
    for _ in range(rng.randrange(1, 4)):
        out.append(text())
        c = rng.randrange(8)
        if c == 0:
            out.append("{{" + rng.choice(["", "-"]) + " x " + rng.choice(["", "-"]) + "}}")
        elif c == 1:
            out.append("{#" + rng.choice(["", "", "-", "+"]) + " c " + rng.choice(["", "", "-", "+"]) + "#}")
        elif c == 2 and depth < 3:
            branch = tag("else") + random_template(rng, depth + 1) if rng.random() < 0.5 else ""
            out.append(tag("if x") + random_template(rng, depth + 1) + branch + tag("endif"))
        elif c == 3 and depth < 3:
            out.append(tag("for i in l") + random_template(rng, depth + 1) + "{{ i }}" + tag("endfor"))
        elif c == 4:
            out.append(tag("set y = 1"))
        elif c == 5 and depth < 2:
            out.append(tag("raw", ("", "", "-")) + text() + "{{ z }}" + text() + tag("endraw"))
        elif c == 6:
            out.append("{{ 'q' }}")
    out.append(text())
    return "".join(out)


def test_random_whitespace_control_matches_jinja2(binding):
    """Seeded (ARK_TEST_SEED replays): trim_blocks, lstrip_blocks, -/+ on every kind of tag, raw, CRLF."""
    import random  # noqa: PLC0415

    seed = int(os.environ.get("ARK_TEST_SEED", random.SystemRandom().randrange(1 << 31)))
    print(f"random templates: seed {seed} (replay with ARK_TEST_SEED={seed})")
    rng = random.Random(seed)
    env = reference_env()
    for _ in range(800):
        source = random_template(rng)
        variables = {"x": rng.random() < 0.5, "l": [1, 2][:rng.randrange(3)]}
        try:
            want = env.from_string(source).render(**variables)
        except jinja2.exceptions.TemplateError:
            want = None
        try:
            got = binding.render_chat_template(source, json.dumps(variables))
        except ValueError:
            got = None
        assert got == want, f"seed {seed}: {source!r} {variables}\nark: {got!r}\nref: {want!r}"


# --- the CLI path -----------------------------------------------------------------------------------------------


# Each run loads a tokenizer (about a second here), so a few cases: the rest is covered through the binding.
@pytest.mark.parametrize("name,no_think,conversations", [
    ("qwen3", False, ("system_user", "think_earlier_turn", "cjk_and_spaces")),
    ("qwen3", True, ("think_earlier_turn",)),
    ("llama3.1", False, ("system_user", "cjk_and_spaces")),
    ("mistral", False, ("multi_turn", "two_users")),  # the second is refused with the template's message
])
def test_generate_print_prompt_matches_reference(tmp_path, name, no_think, conversations):
    if not pathlib.Path(ARK).exists():
        pytest.fail(f"{ARK} is missing: build first or set ARK_BIN")
    template, tokens = TEMPLATES[name]()
    src = TOKENIZERS / ("llama3" if name.startswith("llama") else "qwen3")
    if not src.exists():
        pytest.skip(f"{src} is missing")
    d = tmp_path / "model"
    d.mkdir()
    shutil.copy(src / "tokenizer.json", d / "tokenizer.json")
    (d / "tokenizer_config.json").write_text(json.dumps({"chat_template": template, **tokens}))
    for conv_name in conversations:
        messages = CONVERSATIONS[conv_name]
        f = tmp_path / f"{conv_name}.json"
        f.write_text(json.dumps(messages, ensure_ascii=False))
        cmd = [ARK, "generate", "--model", str(d), "--chat", "--messages", str(f), "--print-prompt"]
        if no_think:
            cmd.append("--no-think")
        variables = {"messages": messages, "add_generation_prompt": True}
        if no_think:
            variables["enable_thinking"] = False
        want = reference_render(template, tokens, variables)
        r = subprocess.run(cmd, capture_output=True)
        if isinstance(want, tuple):
            assert r.returncode != 0 and want[1] in r.stderr.decode("utf-8"), f"{name} / {conv_name}: {r.stderr!r}"
        else:
            assert r.returncode == 0, r.stderr.decode("utf-8")
            assert r.stdout.decode("utf-8") == want, f"{name} / {conv_name}"
