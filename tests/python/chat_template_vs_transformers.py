"""Checks test_runtime_chat_template.py's reference (jinja2 configured as transformers) against transformers' own
apply_chat_template over the same templates, conversations, flags and tool conversations. CI has no transformers
that runs on its torch, so this is run by hand with a Python that has transformers (no pytest needed):

    /work/ar-venv/bin/python tests/python/chat_template_vs_transformers.py    # transformers 5.24: 768 cases, 0 differ
"""

import importlib.util
import pathlib
import sys
import types

import jinja2

# The test module imports pytest; a stub is enough to load its data and helpers.
fake = types.ModuleType("pytest")
fake.importorskip = lambda name: __import__(name)
class Skip(Exception): pass
def skip(msg): raise Skip(msg)
fake.skip = skip
fake.fail = skip
class Mark:
    def parametrize(self, *a, **k): return lambda f: f
fake.mark = Mark()
fake.fixture = lambda *a, **k: (lambda f: f) if not (a and callable(a[0])) else a[0]
fake.param = lambda *a, **k: a
fake.raises = None
sys.modules["pytest"] = fake
spec = importlib.util.spec_from_file_location("t", str(pathlib.Path(__file__).with_name("test_runtime_chat_template.py")))
t = importlib.util.module_from_spec(spec); spec.loader.exec_module(t)
import transformers  # noqa: E402

print("transformers", transformers.__version__)
n = bad = 0
def check(name, template, tokens, variables, what):
    global n, bad
    n += 1
    try:
        tf = t.transformers_render(template, tokens, variables)
    except jinja2.exceptions.TemplateError as e:
        tf = ("error", str(e))
    try:
        args = {"tools": None, "documents": None, "add_generation_prompt": False, **tokens, **variables}
        ref = t.reference_env().from_string(template).render(**args)
    except jinja2.exceptions.TemplateError as e:
        ref = ("error", str(e))
    if tf != ref:
        bad += 1
        print("DIFF", what, "\n tf :", repr(tf)[:400], "\n ref:", repr(ref)[:400])
for name, get in t.TEMPLATES.items():
    template, tokens = get()
    for cn, msgs in t.CONVERSATIONS.items():
        for add in (True, False):
            for th in (None, True, False):
                v = {"messages": msgs, "add_generation_prompt": add}
                if th is not None: v["enable_thinking"] = th
                check(name, template, tokens, v, f"{name}/{cn}/{add}/{th}")
    for tools in (None, t.TOOLS):
        for msgs in (t.TOOL_CONVERSATION, t.TOOL_CONVERSATION[1:]):
            for extra in ({}, {"tools_in_user_message": False}, {"date_string": "01 Feb 2025"}):
                check(name, template, tokens, {"messages": msgs, "tools": tools, "add_generation_prompt": True, **extra}, f"{name}/tools={tools is not None}/{len(msgs)}/{extra}")
print(n, "cases,", bad, "differ")
sys.exit(1 if bad else 0)
