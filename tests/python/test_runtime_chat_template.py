"""ark's native chat-template rendering (`ark generate --chat --print-prompt`) against the reference rendering:
transformers' apply_chat_template(tokenize=False) when transformers imports, else the template run by jinja2
configured as transformers configures it (sandboxed, trim_blocks, lstrip_blocks, loopcontrols). Templates: the
real Qwen3 and Llama-3 tokenizer_config.json files in ../shared/data/tokenizers, and Qwen2.5's ChatML.
"""

import json
import os
import pathlib
import shutil
import subprocess

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
ARK = os.environ.get("ARK_BIN", str(REPO / "build" / "ark"))
TOKENIZERS = REPO.parent / "shared" / "data" / "tokenizers"

QWEN25_TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' %}\n"
    "    {{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}\n"
    "{%- else %}\n"
    "    {{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}\n"
    "{%- endif %}\n"
    "{%- for message in messages %}\n"
    "    {%- if (message.role == \"user\") or (message.role == \"system\" and not loop.first) or "
    "(message.role == \"assistant\") %}\n"
    "        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}\n"
    "    {%- endif %}\n"
    "{%- endfor %}\n"
    "{%- if add_generation_prompt %}\n"
    "    {{- '<|im_start|>assistant\\n' }}\n"
    "{%- endif %}\n"
)

CONVERSATIONS = [
    [{"role": "user", "content": "Hello!"}],
    [{"role": "system", "content": "You answer in French."}, {"role": "user", "content": "  What is 2+2?\n"}],
    [
        {"role": "user", "content": "Name a colour."},
        {"role": "assistant", "content": "Blue."},
        {"role": "user", "content": "Another, in 日本語 please 🎨"},
    ],
    [
        {"role": "system", "content": "Think first."},
        {"role": "user", "content": "2+3?"},
        {"role": "assistant", "content": "<think>\nadd them\n</think>\n\n5"},
        {"role": "user", "content": "and 4+4?"},
    ],
    [{"role": "user", "content": "def f(x):\n    return x * 2\n\nExplain\tthis."}],
]


def reference_render(model_dir, messages, enable_thinking):
    config = json.loads((model_dir / "tokenizer_config.json").read_text())
    try:
        from transformers import AutoTokenizer  # noqa: PLC0415

        tok = AutoTokenizer.from_pretrained(str(model_dir))
        kwargs = {} if enable_thinking else {"enable_thinking": False}
        return tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, **kwargs)
    except ImportError:
        pass
    jinja2 = pytest.importorskip("jinja2")
    from jinja2.sandbox import ImmutableSandboxedEnvironment  # noqa: PLC0415

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
    env.filters["tojson"] = lambda x, **kw: json.dumps(x, ensure_ascii=False)
    tmpl = env.from_string(config["chat_template"])
    extra = {} if enable_thinking else {"enable_thinking": False}

    def token_text(t):
        return t["content"] if isinstance(t, dict) else t

    return tmpl.render(messages=messages, add_generation_prompt=True, bos_token=token_text(config.get("bos_token") or ""),
                       eos_token=token_text(config.get("eos_token") or ""), **extra)


def template_dir(tmp_path, name):
    d = tmp_path / name
    d.mkdir()
    src = TOKENIZERS / ("llama3" if name == "llama3" else "qwen3")
    if not src.exists():
        pytest.skip(f"{src} is missing")
    shutil.copy(src / "tokenizer.json", d / "tokenizer.json")
    config = json.loads((src / "tokenizer_config.json").read_text())
    if name == "qwen2.5":
        config["chat_template"] = QWEN25_TEMPLATE
    (d / "tokenizer_config.json").write_text(json.dumps(config))
    return d


@pytest.mark.parametrize("name,enable_thinking", [("qwen3", True), ("qwen3", False), ("llama3", True),
                                                  ("qwen2.5", True)])
def test_rendering_matches_reference(tmp_path, name, enable_thinking):
    if not pathlib.Path(ARK).exists():
        pytest.fail(f"{ARK} is missing: build first or set ARK_BIN")
    d = template_dir(tmp_path, name)
    for i, messages in enumerate(CONVERSATIONS):
        f = tmp_path / f"conv{i}.json"
        f.write_text(json.dumps(messages, ensure_ascii=False))
        cmd = [ARK, "generate", "--model", str(d), "--chat", "--messages", str(f), "--print-prompt"]
        if not enable_thinking:
            cmd.append("--no-think")
        got = subprocess.run(cmd, check=True, capture_output=True).stdout.decode("utf-8")
        want = reference_render(d, messages, enable_thinking)
        assert got == want, f"{name} conversation {i}:\nark: {got!r}\nref: {want!r}"
