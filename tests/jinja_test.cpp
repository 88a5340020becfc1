// The Jinja interpreter behind ChatTemplate (src/runtime/jinja/): expressions, statements, whitespace
// control, loop variables, namespace, filters, tests, str/dict methods, errors, and the ChatTemplate API
// over it. Expected strings are what Jinja2 3.1 renders with transformers' settings (sandboxed,
// trim_blocks, lstrip_blocks, loopcontrols); tests/python/test_runtime_chat_template.py checks every row
// of kCases against jinja2 itself, so a wrong expectation here fails there.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "ark/chat_template.h"
#include "ark/error.h"
#include "runtime/jinja/evaluator.h"
#include "runtime/jinja/json.h"
#include "runtime/jinja/parser.h"

namespace ark {
namespace {

std::string render(const std::string& tmpl, const std::string& vars_json = "{}") {
  const jinja::Value vars = jinja::from_json_text(vars_json, "test variables");
  return jinja::render(jinja::parse(tmpl), vars.as_dict());
}

template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

struct Case {
  const char* name;
  const char* tmpl;
  const char* vars;
  const char* expected;
};

// BEGIN CASES (tests/python/test_runtime_chat_template.py reads this table; keep one row per line group)
const Case kCases[] = {
    // expressions
    {"precedence", R"J({{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }} {{ 2 ** 3 ** 2 }} {{ -2 ** 2 }})J", "{}",
     R"J(7 9 64 4)J"},
    {"division",
     R"J({{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 7 / 2 }} {{ 4 / 2 }} {{ 7.5 // 2 }} {{ 1 // 0.1 }} {{ -2.5 % 0.5 }} {{ 1 % -0.5 }})J",
     "{}", R"J(3 -4 1 2 3.5 2.0 3.0 9.0 0.0 -0.0)J"},
    {"concat", R"J({{ 'a' ~ 1 ~ none ~ true }}|{{ 'x' + 'y' }}|{{ [1] + [2] }}|{{ 'ab' * 2 }})J", "{}",
     R"J(a1NoneTrue|xy|[1, 2]|abab)J"},
    {"compare",
     R"J({{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }} {{ 1 == 1.0 }} {{ true == 1 }} {{ 'a' != 'b' }} {{ 'b' >= 'a' }} {{ [1, 2] < [1, 3] }})J",
     "{}", R"J(True False True True True True True)J"},
    {"membership",
     R"J({{ 'b' in 'abc' }} {{ 'z' not in ['a'] }} {{ 'k' in {'k': 1} }} {{ 2 in [1, 2] }} {{ 'q' in nope }})J",
     "{}", R"J(True True True True False)J"},
    {"ternary", R"J({{ x if x else 'zero' }}|{{ 'y' if false }}|{{ 'a' if x else 'b' if y else 'c' }})J",
     R"({"x": 0, "y": 1})", R"J(zero||b)J"},
    {"logic",
     R"J({{ true and 'yes' }} {{ false or 'fb' }} {{ not none }} {{ 0 or '' or 'last' }} {{ not x is defined }})J",
     "{}", R"J(yes fb True last True)J"},
    {"string_literals", R"J({{ 'it\'s' ~ "\u65e5\x41" ~ 'a' 'b' ~ "q\"q" }})J", "{}", R"J(it's日Aabq"q)J"},
    {"literals",
     R"J({{ [1, 'a', none, true, 1.5] }} {{ {'k': [1, 2], 'j': 'it\'s'} }} {{ (1, 2) }} {{ (1,) }} {{ True }} {{ None }} {{ False }})J",
     "{}", R"J([1, 'a', None, True, 1.5] {'k': [1, 2], 'j': "it's"} (1, 2) (1,) True None False)J"},
    {"floats",
     R"J({{ 1.0 }} {{ 0.1 + 0.2 }} {{ 1e20 }} {{ 2.5e-5 }} {{ 10 / 4 }} {{ 1e16 }} {{ 123456.789 }} {{ 0.0001 }})J",
     "{}", R"J(1.0 0.30000000000000004 1e+20 2.5e-05 2.5 1e+16 123456.789 0.0001)J"},
    {"subscripts",
     R"J({{ s[0] }}{{ s[-1] }}{{ s[1:3] }}{{ s[::-1] }}{{ l[::2] }}{{ l[-2:] }}{{ l[:-3] }}{{ l[3:1:-1] }}[{{ l[9] }}]{{ l.0 }})J",
     R"({"s": "日本語です", "l": [1, 2, 3, 4, 5]})", R"J(日す本語すで語本日[1, 3, 5][4, 5][1, 2][4, 3][]1)J"},
    {"attributes",
     R"J({{ m.role }}{{ m['role'] }} {{ m.missing is defined }} {{ m['items'] }} {{ m.get('role') }} [{{ none.x }}])J",
     R"({"m": {"role": "user", "items": 3}})", R"J(useruser False 3 user [])J"},
    {"undefined",
     R"J([{{ nope }}]{{ nope is defined }}{{ nope|length }}{{ nope ~ 'x' }}{% if nope %}T{% else %}F{% endif %}{{ nope == none }}{% for x in nope %}!{% endfor %})J",
     "{}", R"J([]False0xFFalse)J"},
    {"unary", R"J({{ -x }} {{ +x }} {{ - -x }} {{ -1.5 }})J", R"({"x": 3})", R"J(-3 3 3 -1.5)J"},
    // statements
    {"if_elif_else",
     R"J({% for x in [1, 2, 3] %}{% if x == 1 %}a{% elif x == 2 %}b{% else %}c{% endif %}{% endfor %})J",
     "{}", R"J(abc)J"},
    {"for_else",
     R"J({% for x in [] %}x{% else %}empty{% endfor %}{% for x in [1] %}{{ x }}{% else %}no{% endfor %})J",
     "{}", R"J(empty1)J"},
    {"loop_vars",
     R"J({% for x in 'abc' %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }}{{ loop.previtem }}{{ loop.nextitem }};{% endfor %})J",
     "{}", R"J(1032TrueFalse3b;2121FalseFalse3ac;3210FalseTrue3b;)J"},
    {"nested_loops",
     R"J({% for a in [1, 2] %}{% for b in 'xy' %}{{ a }}{{ b }}{{ loop.index }} {% endfor %}{{ loop.index }}|{% endfor %})J",
     "{}", R"J(1x1 1y2 1|2x1 2y2 2|)J"},
    {"for_items",
     R"J({% for k, v in d.items() %}{{ k }}={{ v }},{% endfor %}{% for k, v in d|items %}{{ k }}{% endfor %}{% for k in d %}{{ k }}{% endfor %})J",
     R"({"d": {"b": 1, "a": 2}})", R"J(b=1,a=2,baba)J"},
    {"for_filter",
     R"J({% for m in ms if m.role != 'system' %}{{ loop.index }}{{ m.role }}{{ loop.length }} {% endfor %})J",
     R"({"ms": [{"role": "system"}, {"role": "user"}, {"role": "assistant"}]})", R"J(1user2 2assistant2 )J"},
    {"reverse_loop", R"J({% for m in ms[::-1] %}{{ (ms|length - 1) - loop.index0 }}{{ m }}{% endfor %})J",
     R"({"ms": ["a", "b", "c"]})", R"J(2c1b0a)J"},
    {"scoping",
     R"J({% set x = 1 %}{% for i in [1, 2] %}{{ x }}{% set x = i * 10 %}{{ x }}{% endfor %}{{ x }}{% if true %}{% set x = 5 %}{% endif %}{{ x }})J",
     "{}", R"J(11012015)J"},
    {"namespace",
     R"J({% set ns = namespace(n=0, s='', flag=true) %}{% for i in [1, 2, 3] %}{% set ns.n = ns.n + i %}{% set ns.s = ns.s ~ i %}{% if i == 2 %}{% set ns.flag = false %}{% endif %}{% endfor %}{{ ns.n }} {{ ns.s }} {{ ns.flag }})J",
     "{}", R"J(6 123 False)J"},
    {"loop_controls",
     R"J({% for i in range(10) %}{% if i == 1 %}{% continue %}{% endif %}{% if i == 4 %}{% break %}{% endif %}{{ i }}{% endfor %}|{{ range(2, 8, 3)|list }})J",
     "{}", R"J(023|[2, 5])J"},
    {"macro",
     R"J({% macro tag(name, body='-') %}<{{ name }}>{{ body }}{{ g }}{% endmacro %}{% set g = '!' %}{{ tag('a') }}{{ tag('b', 'x') }}{{ tag(name='c', body=1) }})J",
     "{}", R"J(<a>-!<b>x!<c>1!)J"},
    {"set_forms",
     R"J({% set t %}[{{ 1 + 1 }}]{% endset %}{{ t }}{{ t|length }}{% set a, b = [1, 2] %}{{ b }}{{ a }}{% set c = 1, 2 %}{{ c }})J",
     "{}", R"J([2]321(1, 2))J"},
    {"comment", R"J(a{# hidden {{ x }} #}b)J", "{}", R"J(ab)J"},
    {"raw",
     "{% raw %}{{ x }}{% if %}{% endraw %}|  {% raw -%}  a {{ b }}  {%- endraw %}\n  {% raw %}\nc\n  {% "
     "endraw %}\nd",
     "{}", "{{ x }}{% if %}|  a {{ b }}\nc\nd"},
    {"with_filter_cycle",
     R"J({% set a = 1 %}{% with a = 2, b = a + 10 %}{{ a }}{{ b }}{% endwith %}{{ a }}|{% filter upper | replace('A', '4') %}abc{{ 'x' }}{% endfilter %}|{% for i in range(4) %}{{ loop.cycle('o', 'e') }}{% endfor %})J",
     "{}", R"J(2111|4BCX|oeoe)J"},
    {"generation_tag", R"J({% generation %}kept{% endgeneration %})J", "{}", R"J(kept)J"},
    // whitespace control
    {"trim_blocks", "{% if true %}\nyes\n{% endif %}\nend", "{}", "yes\nend"},
    {"lstrip_blocks", "  {% if true %}\n  x\n  {% endif %}\n", "{}", "  x\n"},
    {"minus", "a  \n  {{- 'b' -}}  \n  c", "{}", "abc"},
    {"minus_blocks", "{%- if true -%} x {%- endif %}|\n  {%- if true %}\n\ty\n{%- endif %}", "{}", "x|\ty"},
    {"plus", "  {%+ if true %}x{% endif +%}\ny", "{}", "  x\ny"},
    {"variable_not_lstripped", "  {{ 'v' }}\n  {{ 'w' }}\n", "{}", "  v\n  w"},
    {"comment_whitespace", "a\n  {# c #}\nb\n{#- d -#}\n c", "{}", "a\nbc"},
    {"lstrip_mid_line", "x {% if true %}y{% endif %} z\n  {% if true %}w{% endif %}", "{}", "x y z\nw"},
    {"crlf", "{% if true %}\r\na\r\n{% endif %}\r\nb\r\n", "{}", "a\nb"},
    // filters
    {"trim_length",
     R"J({{ '  hi  '|trim }}|{{ 'xxhixx'|trim('x') }}|{{ [1, 2, 3]|length }}|{{ '日本'|length }}|{{ {'a': 1}|count }})J",
     "{}", R"J(hi|hi|3|2|1)J"},
    {"tojson",
     R"J({{ d|tojson }}|{{ 'é'|tojson }}|{{ [1, none]|tojson(indent=2) }}|{{ {}|tojson }}|{{ d|tojson(ensure_ascii=true) }}|{{ {'b': 1, 'a': 2}|tojson(sort_keys=true) }})J",
     R"({"d": {"b": "日本\"q\"\n", "a": [1, 2.5, true, null]}})",
     "{\"b\": \"日本\\\"q\\\"\\n\", \"a\": [1, 2.5, true, null]}|\"é\"|[\n  1,\n  null\n]|{}|{\"b\": "
     "\"\\u65e5\\u672c\\\"q\\\"\\n\", \"a\": [1, 2.5, true, null]}|{\"a\": 2, \"b\": 1}"},
    {"tojson_nested_indent", R"J({{ d|tojson(indent=4) }})J", R"({"d": {"a": [1, {}], "b": {"c": []}}})",
     "{\n    \"a\": [\n        1,\n        {}\n    ],\n    \"b\": {\n        \"c\": []\n    }\n}"},
    {"unicode_case",
     R"J({{ 'ÉCOLE Straße ΣΟΦΙΑ'|lower }}|{{ 'élan vital ñ'|upper }}|{{ 'élan ÉTÉ 日本x a-b (c'|title }}|{{ 'ébc DEF'|capitalize }}|{{ 'é1' is lower }}{{ '12' is lower }}{{ 'ÀB' is upper }}|{{ 'ǆemal'.title() }}|{{ 'élan ÉTÉ 日本x a-b'.title() }})J",
     "{}",
     R"J(école straße σοφια|ÉLAN VITAL Ñ|Élan Été 日本x A-B (C|Ébc def|TrueFalseTrue|ǅemal|Élan Été 日本X A-B)J"},
    {"case_filters",
     R"J({{ 12|string ~ 'AbC'|lower ~ 'abc'|upper ~ 'hello wORLD'|title ~ 'hELLO'|capitalize }})J", "{}",
     R"J(12abcABCHello WorldHello)J"},
    {"first_last_join_default",
     R"J({{ [3, 4]|first }}{{ [3, 4]|last }}{{ 'xyz'|last }}{{ [1, 2]|join(', ') }}{{ nope|default('dflt') }}{{ ''|default('e', true) }}{{ 0|default(5) }}{{ nope|d('d') }})J",
     "{}", R"J(34z1, 2dflte0d)J"},
    {"replace_items_list_reverse",
     R"J({{ 'aaa'|replace('a', 'b', 2) }} {{ {'x': 1}|items|list }} {{ 'abc'|list }} {{ [1, 2]|reverse|list }} {{ 'abc'|reverse }})J",
     "{}", R"J(bba [('x', 1)] ['a', 'b', 'c'] [2, 1] cba)J"},
    {"select_map",
     R"J({{ ms|selectattr('role', 'equalto', 'user')|map(attribute='content')|join(',') }}|{{ ms|rejectattr('role', 'eq', 'user')|list|length }}|{{ ms|selectattr('content')|list|length }}|{{ ['A', 'B']|map('lower')|join }})J",
     R"({"ms": [{"role": "user", "content": "a"}, {"role": "assistant", "content": ""}, {"role": "user", "content": "c"}]})",
     R"J(a,c|1|2|ab)J"},
    {"generators",
     R"J({{ [] | select and 'T' }}|{% if ms | selectattr('role', 'equalto', 'x') %}G{% endif %}|{{ ms | selectattr('role') | list | length }}|{{ ([3, 1] | reverse | list)[0] }}|{{ (ms | map(attribute='role') | first) }})J",
     R"({"ms": [{"role": "user"}, {"role": "system"}]})", R"J(T|G|2|1|user)J"},
    {"number_filters",
     R"J({{ '42'|int + 1 }} {{ 'x'|int }} {{ 3.9|int }} {{ '2.5'|float }} {{ -3|abs }} {{ [1, 2, 1]|unique|list }} {{ ['A', 'b', 'a']|unique|list }} {{ ['A', 'a']|unique(true)|list }})J",
     "{}", R"J(43 0 3 2.5 3 [1, 2] ['A', 'b'] ['A', 'a'])J"},
    {"indent", "{{ 'a\\nb\\n\\nc'|indent(2) }}|{{ 'a\\nb'|indent(2, true) }}", "{}",
     "a\n  b\n\n  c|  a\n  b"},
    // tests
    {"tests",
     R"J({{ none is none }} {{ 'a' is string }} {{ {} is mapping }} {{ [] is iterable }} {{ 'a' is sequence }} {{ 1 is number }} {{ true is number }} {{ 1.5 is number }} {{ true is true }} {{ 1 is true }} {{ false is false }} {{ 3 is equalto 3 }} {{ nope is undefined }} {{ 1 is not string }} {{ {} is sequence }} {{ 1 is iterable }})J",
     "{}", R"J(True True True True True True True True True False True True True True True False)J"},
    {"more_tests",
     R"J({{ 5 is odd }} {{ 4 is even }} {{ 9 is divisibleby 3 }} {{ 'a' is in 'abc' }} {{ true is boolean }} {{ 1 is integer }} {{ true is integer }} {{ 'ab' is lower }} {{ x is none }} {{ x is not none and x > 1 }})J",
     R"({"x": 2})", R"J(True True True True True True False True False True)J"},
    // str and dict methods
    {"think_split",
     R"J({{ s.startswith('<think>') }} {{ s.endswith(('x', 'answer')) }} {{ s.split('</think>')[-1].lstrip('\n') }}|{{ s.split('</think>')[0].rstrip('\n').split('<think>')[-1].lstrip('\n') }})J",
     R"({"s": "<think>\nr\n</think>\n\nanswer"})", R"J(True True answer|r)J"},
    {"str_methods",
     R"J({{ ' a  b '.split() }} {{ 'a,b,c'.split(',', 1) }} {{ 'a,b,c'.rsplit(',', 1) }} {{ '  x '.strip() }}|{{ 'xyx'.strip('x') }} {{ 'ab'.replace('b', 'c') }} {{ 'Ab'.lower() }}{{ 'Ab'.upper() }} {{ 'hi there'.title() }} {{ 'abcb'.find('b') }} {{ 'abcb'.count('b') }} {{ '-'.join(['a', 'b']) }})J",
     "{}", R"J(['a', 'b'] ['a', 'b,c'] ['a,b', 'c'] x|y ac abAB Hi There 1 2 a-b)J"},
    {"unicode_strip", R"J([{{ s.strip() }}][{{ s|trim }}][{{ s.split() }}])J",
     R"({"s": "\u3000 日本 語\u00a0"})", R"J([日本 語][日本 語][['日本', '語']])J"},
    {"dict_methods",
     R"J({{ d.get('a') }} {{ d.get('z') }} {{ d.get('z', 7) }} {{ d.keys()|list }} {{ d.values()|list }} {{ d.items()|list }})J",
     R"({"d": {"a": 1, "b": [2]}})", R"J(1 None 7 ['a', 'b'] [1, [2]] [('a', 1), ('b', [2])])J"},
};
// END CASES

TEST(Jinja, CasesRenderAsJinja2Does) {
  for (const Case& c : kCases) {
    SCOPED_TRACE(c.name);
    std::string got;
    try {
      got = "(poisoned: render did not return)";
      got = render(c.tmpl, c.vars);
    } catch (const Error& e) {
      got = std::string("(error) ") + e.what();
    }
    EXPECT_EQ(got, c.expected);
  }
}

TEST(Jinja, RaiseExceptionCarriesTheTemplatesMessage) {
  const std::string msg = error_of([] {
    render(
        "{% for m in messages %}\n{% if m.role == 'tool' %}\n{{ raise_exception('Conversation roles must "
        "alternate') }}"
        "{% endif %}{% endfor %}",
        R"({"messages": [{"role": "user"}, {"role": "tool"}]})");
  });
  EXPECT_NE(msg.find("Conversation roles must alternate"), std::string::npos) << msg;
  EXPECT_NE(msg.find("line 3"), std::string::npos) << msg;
}

TEST(Jinja, ParseErrorsNameTheLineAndConstruct) {
  struct Bad {
    const char* tmpl;
    const char* expect1;
    const char* expect2;
  };
  const Bad bad[] = {
      {"a\n{{ x|nosuch }}", "line 2", "no filter named 'nosuch'"},
      {"{% if x is nosuch %}{% endif %}", "line 1", "no test named 'nosuch'"},
      {"a\n{% if x %}\nb", "line 2", "unclosed '{% if %}'"},
      {"{% for x in y %}\n{% if x %}{% endfor %}", "line 2",
       "the innermost open block is '{% if %}' (line 2)"},
      {"\n\n{{ 1 + }}", "line 3", "expected an expression"},
      {"{{ x", "line 1", "unclosed tag"},
      {"{# never closed", "line 1", "missing end of comment"},
      {"{% include 'x' %}", "line 1", "'include' statement is not supported"},
      {"x\n{% endif %}", "line 2", "unexpected '{% endif %}'"},
      {"{{ 'abc }}", "line 1", "unterminated string"},
      {"{{ a b }}", "line 1", "unexpected tokens"},
      {"{% for x in y recursive %}{% endfor %}", "line 1", "recursive loops are not supported"},
      {"\n{% raw %}x{% endraw", "line 2", "missing end of raw directive"},
      {"{% raw +%}x{% endraw %}", "line 1", "'{% raw +%}' is not valid"},
      {"{% with a %}{% endwith %}", "line 1", "expected '='"},
      {"{% filter nosuch %}x{% endfilter %}", "line 1", "no filter named 'nosuch'"},
      {"{% call m() %}x{% endcall %}", "line 1", "'call' statement is not supported"},
      {"{{ f(*args) }}", "line 1", "*args"},
      {"{{ x ? 1 }}", "line 1", "unexpected character '?'"},
  };
  const std::string deep = "{{ " + std::string(500, '(') + "1" + std::string(500, ')') + " }}";
  EXPECT_NE(error_of([&] { jinja::parse(deep); }).find("nested too deeply"), std::string::npos);
  for (const Bad& b : bad) {
    const std::string msg = error_of([&] { jinja::parse(b.tmpl); });
    EXPECT_NE(msg.find(b.expect1), std::string::npos) << b.tmpl << " -> " << msg;
    EXPECT_NE(msg.find(b.expect2), std::string::npos) << b.tmpl << " -> " << msg;
  }
}

TEST(Jinja, RenderErrorsNameTheLineAndConstruct) {
  struct Bad {
    const char* tmpl;
    const char* expect1;
    const char* expect2;
  };
  const Bad bad[] = {
      {"\n{{ nope.x }}", "line 2", "'nope' is undefined"},
      {"{{ m.a.b }}", "line 1", "no attribute 'a'"},
      {"{{ x|dictsort }}", "line 1", "'dictsort' filter is not supported"},
      {"{{ 1 + 'a' }}", "line 1", "unsupported operand"},
      {"{{ 'a' + 1 }}", "line 1", "can only concatenate str"},
      {"{{ 1 // 0 }}", "line 1", "division or modulo by zero"},
      {"{% break %}", "line 1", "outside a for loop"},
      {"{% set x = 1 %}\n{% set x.y = 2 %}", "line 2", "namespace"},
      {"{{ 'a'.format(1) }}", "line 1", "str.format is not supported"},
      {"{{ '%s' % 1 }}", "line 1", "'%' string formatting"},
      {"{% for a, b in [[1, 2, 3]] %}{% endfor %}", "line 1", "cannot unpack 3 values into 2"},
      {"{{ {}|tojson }}{{ x|tojson }}", "line 1", "not JSON serializable"},
      {"{{ 1 < 'a' }}", "line 1", "'<' not supported"},
      {"{{ [1] | map('string') }}", "line 1", "printing a generator"},
      {"{{ [1] | select | length }}", "line 1", "has no len()"},
      {"{{ [1] | select | last }}", "line 1", "not reversible"},
      {"{{ [1] | select | tojson }}", "line 1", "not JSON serializable"},
      {"{% macro m(a) %}{% endmacro %}{{ m(1, 2) }}", "line 1", "takes 1 arguments"},
      {"{{ 'a'.startswith('a', 1) }}", "line 1", "start/end are not supported"},
      {"{{ 9223372036854775807 + 1 }}", "line 1", "integer overflow"},
      {"{{ 2 ** 64 }}", "line 1", "integer overflow"},
      {"{{ 'ab' * 1000000000000 }}", "line 1", "too large"},
      {"{% macro m() %}{{ m() }}{% endmacro %}\n{{ m() }}", "line 1", "nested more than 64 deep"},
  };
  for (const Bad& b : bad) {
    const std::string msg = error_of([&] { render(b.tmpl, R"({"m": {}})"); });
    EXPECT_NE(msg.find(b.expect1), std::string::npos) << b.tmpl << " -> " << msg;
    EXPECT_NE(msg.find(b.expect2), std::string::npos) << b.tmpl << " -> " << msg;
  }
}

// --- ChatTemplate over the interpreter ----------------------------------------------------------------

const char* kQwen25Template =
    "{%- if messages[0]['role'] == 'system' %}\n"
    "    {{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}\n"
    "{%- else %}\n"
    "    {{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful "
    "assistant.<|im_end|>\\n' }}\n"
    "{%- endif %}\n"
    "{%- for message in messages %}\n"
    "    {%- if (message.role == \"user\") or (message.role == \"system\" and not loop.first) or "
    "(message.role == \"assistant\") %}\n"
    "        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}\n"
    "    {%- endif %}\n"
    "{%- endfor %}\n"
    "{%- if add_generation_prompt %}\n"
    "    {{- '<|im_start|>assistant\\n' }}\n"
    "{%- endif %}\n";

TEST(ChatTemplate, RendersChatMlWithDefaultSystemByRunningTheTemplate) {
  const ChatTemplate t = ChatTemplate::from_jinja(kQwen25Template);
  EXPECT_EQ(
      t.render({{"user", "Hi"}}),
      "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
      "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(t.render({{"system", "Be brief."}, {"user", "Hi"}, {"assistant", "Hello"}}, false),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
            "<|im_start|>assistant\nHello<|im_end|>\n");
}

TEST(ChatTemplate, PassesSpecialTokensAndEnableThinkingOnlyWhenGiven) {
  const ChatTemplate t = ChatTemplate::from_jinja(
      "{{ bos_token }}|{{ eos_token is defined }}|{{ enable_thinking is defined }}|{{ enable_thinking }}|"
      "{{ tools is none }}|{{ add_generation_prompt }}|{{ messages|length }}",
      {{"bos_token", "<s>"}});
  EXPECT_EQ(t.render({{"user", "x"}}), "<s>|False|False||True|True|1");
  EXPECT_EQ(t.render({{"user", "x"}}, false, false), "<s>|False|True|False|True|False|1");
}

TEST(ChatTemplate, AnEmptyOneRefusesToRender) {
  const ChatTemplate t;
  EXPECT_NE(error_of([&] { t.render({{"user", "x"}}); }).find("ChatTemplate: empty"), std::string::npos);
  EXPECT_NE(error_of([&] { t.render_json("{}"); }).find("ChatTemplate: empty"), std::string::npos);
}

TEST(ChatTemplate, RenderJsonTakesMessagesWithAnyKeys) {
  const ChatTemplate t = ChatTemplate::from_jinja(
      "{% for m in messages %}{{ m.role }}:{{ m.content }}"
      "{% for c in m.tool_calls|default([]) %}[{{ c.function.name }}({{ c.function.arguments|tojson }})]{% "
      "endfor %}"
      ";{% endfor %}{{ tools|length }}{{ add_generation_prompt }}");
  EXPECT_EQ(t.render_json(R"({"messages": [{"role": "user", "content": "go"},
      {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "f", "arguments": {"x": "日", "n": 1}}}]}],
      "tools": [{"name": "f"}]})"),
            "user:go;assistant:[f({\"x\": \"日\", \"n\": 1})];1False");
  EXPECT_NE(error_of([&] { t.render_json("[1]"); }).find("expected a JSON object"), std::string::npos);
  EXPECT_NE(error_of([&] { t.render_json("{bad"); }).find("not valid JSON"), std::string::npos);
}

TEST(ChatTemplate, FromDirReadsTheTemplateAndSpecialTokensAsTransformersDoes) {
  const auto dir = std::filesystem::temp_directory_path() / ("ark_jinja_test_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto write = [&](const char* name, const std::string& text) {
    std::ofstream(dir / name, std::ios::binary) << text;
  };
  write(
      "tokenizer_config.json",
      R"({"bos_token": null, "eos_token": {"content": "</s>"}, "pad_token": "", "additional_special_tokens": ["<a>"],
            "chat_template": [{"name": "tool_use", "template": "tools"},
                              {"name": "default", "template": "{{ bos_token is defined }}{{ eos_token }}{{ pad_token is defined }}{{ additional_special_tokens }}"}]})");
  EXPECT_EQ(ChatTemplate::from_dir(dir).render({}), "False</s>False['<a>']");
  write("special_tokens_map.json",
        R"({"bos_token": {"content": "<s>", "lstrip": false}, "eos_token": "</e>"})");
  EXPECT_EQ(ChatTemplate::from_dir(dir).render({}), "True</e>False['<a>']");
  std::filesystem::remove(dir / "special_tokens_map.json");
  write("chat_template.jinja", "from the file\n");
  EXPECT_EQ(ChatTemplate::from_dir(dir).render({}), "from the file");
  write("chat_template.jinja", "{% if %}");
  const std::string msg = error_of([&] { ChatTemplate::from_dir(dir); });
  EXPECT_NE(msg.find("chat_template.jinja"), std::string::npos) << msg;
  EXPECT_NE(msg.find("line 1"), std::string::npos) << msg;
  std::filesystem::remove(dir / "chat_template.jinja");
  write("tokenizer_config.json", R"({"eos_token": "</s>"})");
  EXPECT_NE(error_of([&] { ChatTemplate::from_dir(dir); }).find("no chat_template"), std::string::npos);
  std::filesystem::remove_all(dir);
}

// The real Qwen3 template (when ../shared/data is next to the checkout) against a prompt written by hand.
TEST(ChatTemplate, Qwen3TemplateDropsEarlierReasoningAndHonoursEnableThinking) {
  const auto dir = std::filesystem::path(ARK_SOURCE_DIR).parent_path() / "shared/data/tokenizers/qwen3";
  if (!std::filesystem::exists(dir / "tokenizer_config.json")) GTEST_SKIP() << dir << " is missing";
  const ChatTemplate t = ChatTemplate::from_dir(dir);
  EXPECT_EQ(t.render({{"user", "2+2?"}, {"assistant", "<think>\nadd\n</think>\n\n4"}, {"user", "and 3+3?"}}),
            "<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n4<|im_end|>\n"
            "<|im_start|>user\nand 3+3?<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(t.render({{"user", "x"}}, true, false),
            "<|im_start|>user\nx<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n");
  EXPECT_EQ(t.render({{"system", "S"}, {"user", "u"}, {"assistant", "<think>r</think>a"}}, false),
            "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nu<|im_end|>\n"
            "<|im_start|>assistant\n<think>\nr\n</think>\n\na<|im_end|>\n");
}

}  // namespace
}  // namespace ark
