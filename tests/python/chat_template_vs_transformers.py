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

# The test module imports pytest; a stub that covers what it uses at import time is enough.
class _Skip(Exception):
    pass


def _skip(message):
    raise _Skip(message)


class _Mark:
    def parametrize(self, *args, **kwargs):
        return lambda f: f


stub = types.ModuleType("pytest")
stub.importorskip = __import__
stub.skip = stub.fail = _skip
stub.mark = _Mark()
stub.fixture = lambda *a, **k: a[0] if a and callable(a[0]) else (lambda f: f)
stub.param = lambda *a, **k: a
sys.modules["pytest"] = stub
spec = importlib.util.spec_from_file_location("t", pathlib.Path(__file__).with_name("test_runtime_chat_template.py"))
t = importlib.util.module_from_spec(spec)
spec.loader.exec_module(t)

import transformers  # noqa: E402

print("transformers", transformers.__version__)
checked = differ = 0


def check(template, tokens, variables, what):
    global checked, differ
    checked += 1
    try:
        theirs = t.transformers_render(template, tokens, variables)
    except jinja2.exceptions.TemplateError as e:
        theirs = ("error", str(e))
    try:
        args = {"tools": None, "documents": None, "add_generation_prompt": False, **tokens, **variables}
        ours = t.reference_env().from_string(template).render(**args)
    except jinja2.exceptions.TemplateError as e:
        ours = ("error", str(e))
    if theirs != ours:
        differ += 1
        print("DIFF", what, "\n transformers:", repr(theirs)[:400], "\n reference:   ", repr(ours)[:400])


for name, get in t.TEMPLATES.items():
    template, tokens = get()
    for conv, messages in t.CONVERSATIONS.items():
        for add in (True, False):
            for thinking in (None, True, False):
                variables = {"messages": messages, "add_generation_prompt": add}
                if thinking is not None:
                    variables["enable_thinking"] = thinking
                check(template, tokens, variables, f"{name}/{conv}/{add}/{thinking}")
    for tools in (None, t.TOOLS):
        for messages in (t.TOOL_CONVERSATION, t.TOOL_CONVERSATION[1:]):
            for extra in ({}, {"tools_in_user_message": False}, {"date_string": "01 Feb 2025"}):
                variables = {"messages": messages, "tools": tools, "add_generation_prompt": True, **extra}
                check(template, tokens, variables, f"{name}/tools={tools is not None}/{len(messages)}/{extra}")
print(checked, "cases,", differ, "differ")
sys.exit(1 if differ else 0)
