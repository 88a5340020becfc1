"""`ark tokenize` against the Hugging Face `tokenizers` library on the real tokenizer files of Qwen3, Llama-3 and
Llama-2: identical ids for thousands of strings (prose, code, CJK, emoji, mixed scripts, numbers, white-space runs,
special-token strings, odd Unicode, random code points), identical decoded text, streaming decode equal to the
whole decode, and round trips. The seed is fresh each run (printed); set ARK_TEST_SEED to replay one."""

import json
import os
import pathlib
import random
import re
import subprocess
import tarfile
import unicodedata

import pytest

tokenizers = pytest.importorskip("tokenizers")

REPO = pathlib.Path(__file__).resolve().parents[2]
TOKENIZERS_DIR = REPO.parent / "shared" / "data" / "tokenizers"
CORPORA_DIR = REPO.parent / "shared" / "data" / "corpora"
NAMES = ["qwen3", "llama3", "llama2"]
STRINGS_PER_CATEGORY = 400


@pytest.fixture(scope="module")
def ark(request):
    # ARK_BIN lets an engineer point the test at a private build folder.
    return os.environ.get("ARK_BIN") or request.getfixturevalue("ark_bin")


@pytest.fixture(scope="module")
def seed():
    value = int(os.environ.get("ARK_TEST_SEED", random.SystemRandom().randrange(1 << 31)))
    print(f"ARK_TEST_SEED={value}")
    return value


def tokenizer_dir(name):
    path = TOKENIZERS_DIR / name
    if not (path / "tokenizer.json").exists():
        pytest.skip(f"{path}/tokenizer.json is absent (shared data not mounted)")
    return path


@pytest.fixture(scope="module")
def corpus_sentences(tmp_path_factory):
    """Sentences of English prose from the shared corpora (tgz), extracted to a temporary folder."""
    archive = CORPORA_DIR / "nlp-corpus-4.4.0.tgz"
    if not archive.exists():
        pytest.skip(f"{archive} is absent (shared data not mounted)")
    out = tmp_path_factory.mktemp("corpus")
    with tarfile.open(archive) as tar:
        members = [m for m in tar.getmembers() if re.fullmatch(r"package/builds/doc-\d+\.json", m.name)]
        tar.extractall(out, members=members)  # regular files under package/builds only
    sentences = []
    for path in sorted((out / "package" / "builds").glob("doc-*.json")):
        sentences.extend(s for s in json.loads(path.read_text(encoding="utf-8")) if isinstance(s, str))
    assert len(sentences) > 1000
    return sentences


CODE = [
    "def f(x):\n    return x ** 2  # square\n",
    "for (int i = 0; i < n; ++i) {\n\tsum += a[i] * b[i];\n}\n",
    '{"key": [1, 2.5e-3, null, true], "nested": {"a": "b\\n"}}',
    "#include <vector>\nint main() { std::vector<int> v{1,2,3}; return v.size(); }",
    "SELECT id, name FROM users WHERE age >= 18 ORDER BY name DESC;",
    "    if err != nil {\n        return fmt.Errorf(\"wrap: %w\", err)\n    }",
    "x = [i for i in range(10) if i % 2 == 0]\r\nprint(x)\r\n",
    "<div class=\"row\"><span>&nbsp;&amp;</span></div>",
    "$ ls -la | grep '^d' && echo \"done\" >> /tmp/log.txt 2>&1",
    "fn main() -> Result<(), Box<dyn Error>> { let s: &'static str = \"hi\"; Ok(()) }",
    "    \n\n\t\t  lambda: None\n",
]
CJK = [
    "你好，世界！今天天气很好。", "机器学习模型的量化可以减少内存占用。", "日本語のテキスト、ひらがなとカタカナ。",
    "東京都は日本の首都です。", "한국어 문장도 시험합니다.", "안녕하세요 세계", "中文English混合text测试123",
    "「引用」『二重』【括弧】〔亀甲〕", "全角スペース　と半角 スペース", "繁體中文與简体中文",
]
EMOJI = ["😀", "👍🏽", "👨‍👩‍👧‍👦", "🇺🇸🇯🇵", "❤️", "🏳️‍🌈", "🤖 says hi", "a😀b", "🧑🏿‍🚀🚀", "☕️ and 🍰"]
SCRIPTS = [
    "Привет, как дела?", "Γειά σου Κόσμε", "مرحبا بالعالم", "שלום עולם", "नमस्ते दुनिया", "สวัสดีชาวโลก",
    "Xin chào thế giới", "Ελληνικά και русский и English", "Tiếng Việt có dấu", "Zażółć gęślą jaźń",
    "Straße Größe Ärger", "İstanbul ıi", "ǅemal ǈ", "ﬁne ﬂow", "Ⅻ ① ⁵ ½",
]
ODD = [
    "\u0301", "\u0301abc", "e\u0301", "e\u0301\u0301", "\u1e0b\u0323", "\u0071\u0307\u0323", "\u1100\u1161\u11a8",
    "A\u030a", "\u212b", "\u2126", "\ufeffBOM", "zero\u200bwidth", "a\u200db", "\ufffd", "\uffff", "\U0010ffff",
    "\ue000private", "\x00\x01\x1f\x7f", "tab\there", "\u00a0nbsp\u00a0", "\u2028line\u2029para", "\u0085nel",
    "\u3000ideo", "\u0300\u0301\u0302\u0303", "क्षत्रिय", "\u0e01\u0e34\u0e4a", "Å", "Å", "ﷺ", "\U0001d400\U0001d7ce",
]
SPACES = [" ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", "\r", " \n ", "\u00a0", "\u3000", "\u2009", "\t \t", "    "]


def special_strings(name):
    added = [t["content"] for t in json.loads((tokenizer_dir(name) / "tokenizer.json").read_text())["added_tokens"]]
    return added[:40] + ["<|im_", "<|endoftext", "</s", "<s", "<unk", "<|begin_of_text|", "<<|im_end|>>"]


def random_code_point(rng):
    ranges = [(0x20, 0x7e), (0xa0, 0x24f), (0x300, 0x36f), (0x370, 0x52f), (0x590, 0x6ff), (0x900, 0x97f),
              (0xe00, 0xe7f), (0x1100, 0x11ff), (0x2000, 0x206f), (0x3000, 0x30ff), (0x4e00, 0x9fff),
              (0xac00, 0xd7a3), (0xe000, 0xe0ff), (0xff00, 0xffef), (0x1f300, 0x1faff), (0x10000, 0x10ffff)]
    # Only characters assigned by Unicode 14 (Python's tables): PCRE2 10.42 does not know the letters and digits
    # of Unicode 15/16 that `tokenizers` (Oniguruma) classifies, a documented difference.
    while True:
        lo, hi = rng.choice(ranges)
        c = chr(rng.randint(lo, hi))
        if unicodedata.category(c) != "Cn":
            return c


def make_texts(name, sentences, rng):
    specials = special_strings(name)
    texts = []
    pick = lambda pool: rng.choice(pool)
    for _ in range(STRINGS_PER_CATEGORY):
        texts.append(pick(sentences))
    for _ in range(STRINGS_PER_CATEGORY // 5):
        texts.append(" ".join(rng.sample(sentences, 5)))  # paragraphs
    for _ in range(STRINGS_PER_CATEGORY // 2):
        texts.append(pick(CODE) if rng.random() < 0.5 else pick(CODE) + pick(SPACES) + pick(CODE))
    for pool in (CJK, EMOJI, SCRIPTS, ODD):
        for _ in range(STRINGS_PER_CATEGORY // 2):
            parts = [pick(pool) for _ in range(rng.randint(1, 3))]
            parts.insert(rng.randint(0, len(parts)), pick(sentences)[: rng.randint(0, 30)])
            texts.append(pick(["", " ", "\n"]).join(parts))
    for _ in range(STRINGS_PER_CATEGORY):  # numbers
        n = rng.choice([str(rng.randint(0, 10**rng.randint(1, 25))), f"{rng.uniform(-1e6, 1e6):.{rng.randint(0, 8)}f}",
                        f"{rng.randint(0, 10**9):,}", f"+1 ({rng.randint(100, 999)}) {rng.randint(100, 999)}-{rng.randint(1000, 9999)}",
                        "".join(rng.choice("0123456789٠١٢٣٤٥٦٧٨٩०१२३") for _ in range(rng.randint(1, 12)))])
        texts.append(pick(["", "x", "v", "$", " ", "id"]) + n + pick(["", "%", " apples", "."]))
    for _ in range(STRINGS_PER_CATEGORY):  # white space runs between words
        words = pick(sentences).split()[: rng.randint(1, 8)]
        texts.append("".join(pick(SPACES) * rng.randint(1, 3) + w for w in words) + pick(SPACES) * rng.randint(0, 4))
    for _ in range(STRINGS_PER_CATEGORY):  # special-token strings inside text
        s = pick(sentences)[: rng.randint(0, 60)]
        for _ in range(rng.randint(1, 3)):
            at = rng.randint(0, len(s))
            s = s[:at] + pick(["", " ", "\n", "  "]) + pick(specials) + pick(["", " ", "\n"]) + s[at:]
        texts.append(s)
    for _ in range(STRINGS_PER_CATEGORY):  # random code points
        texts.append("".join(random_code_point(rng) for _ in range(rng.randint(0, 40))))
    texts += ["", " ", "\n", "a", "  leading", "trailing  ", "a" * 3000, " " * 500, "ab" * 800, "\n" * 100]
    return texts


def run_jsonl(ark, name, lines, tmp_path, *flags):
    path = tmp_path / f"{name}-input.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    r = subprocess.run([ark, "tokenize", "--tokenizer", str(tokenizer_dir(name)), "--file", str(path), "--jsonl",
                        *flags], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    out = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(out) == len(lines)
    return out


def first_mismatches(texts, got, want, limit=5):
    bad = [(t, g, w) for t, g, w in zip(texts, got, want) if g != w]
    return len(bad), [f"text={t!r}\n  ark={g}\n  hf ={w}" for t, g, w in bad[:limit]]


@pytest.mark.parametrize("name", NAMES)
def test_encode_matches_hugging_face(ark, name, seed, corpus_sentences, tmp_path):
    rng = random.Random(f"{seed}-{name}")
    reference = tokenizers.Tokenizer.from_file(str(tokenizer_dir(name) / "tokenizer.json"))
    texts = make_texts(name, corpus_sentences, rng)
    assert len(texts) > 3000
    for add_special in (True, False):
        want = [e.ids for e in reference.encode_batch(texts, add_special_tokens=add_special)]
        got = run_jsonl(ark, name, texts, tmp_path, *([] if add_special else ["--no-special"]))
        count, examples = first_mismatches(texts, got, want)
        assert count == 0, f"seed {seed}, add_special_tokens={add_special}: {count} of {len(texts)} differ:\n" + "\n".join(examples)


@pytest.mark.parametrize("name", NAMES)
def test_decode_and_stream_match_hugging_face(ark, name, seed, corpus_sentences, tmp_path):
    rng = random.Random(f"{seed}-{name}-decode")
    reference = tokenizers.Tokenizer.from_file(str(tokenizer_dir(name) / "tokenizer.json"))
    texts = make_texts(name, corpus_sentences, rng)
    id_lists = [e.ids for e in reference.encode_batch(texts, add_special_tokens=True)]
    vocab = reference.get_vocab_size(with_added_tokens=True)
    # Arbitrary id sequences too: they split characters across tokens and produce invalid UTF-8.
    id_lists += [[rng.randrange(vocab) for _ in range(rng.randint(1, 30))] for _ in range(500)]
    for skip in (False, True):
        flags = ["--skip-special"] if skip else []
        want = reference.decode_batch(id_lists, skip_special_tokens=skip)
        got = run_jsonl(ark, name, id_lists, tmp_path, *flags)
        count, examples = first_mismatches(id_lists, got, want)
        assert count == 0, f"seed {seed}, skip_special_tokens={skip}: {count} differ:\n" + "\n".join(examples)
        # Streaming equals the whole decode for ids of real text (see StreamDecoder for the one exception, which
        # arbitrary byte-token sequences can hit).
        n = len(texts)
        streamed = run_jsonl(ark, name, id_lists[:n], tmp_path, "--stream", *flags)
        count, examples = first_mismatches(id_lists[:n], streamed, want[:n])
        assert count == 0, f"seed {seed}, stream, skip_special_tokens={skip}: {count} differ:\n" + "\n".join(examples)


@pytest.mark.parametrize("name", NAMES)
def test_round_trip(ark, name, seed, corpus_sentences, tmp_path):
    """decode(encode(text)) gives the text back (NFC-normalized where the tokenizer normalizes)."""
    rng = random.Random(f"{seed}-{name}-round-trip")
    specials = special_strings(name)
    texts = [t for t in make_texts(name, corpus_sentences, rng) if not any(s in t for s in specials)]
    ids = run_jsonl(ark, name, texts, tmp_path, "--no-special")
    decoded = run_jsonl(ark, name, ids, tmp_path)
    nfc = name == "qwen3"
    want = [unicodedata.normalize("NFC", t) if nfc else t for t in texts]
    count, examples = first_mismatches(texts, decoded, want)
    assert count == 0, f"seed {seed}: {count} of {len(texts)} do not round-trip:\n" + "\n".join(examples)


def test_ids_outside_the_vocabulary_are_clear_errors(ark, tmp_path):
    # The library skips an id it does not have, as Hugging Face's decode does (a model's vocabulary may be
    # padded past the tokenizer's); ids a user gives `ark tokenize` to decode are checked instead.
    name = "qwen3"
    vocab = tokenizers.Tokenizer.from_file(str(tokenizer_dir(name) / "tokenizer.json")).get_vocab_size(True)
    base = [ark, "tokenize", "--tokenizer", str(tokenizer_dir(name))]
    ok = subprocess.run([*base, "--decode", f"0,{vocab - 1}"], capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    for bad in (str(vocab), "-3", "12,x"):
        r = subprocess.run([*base, "--decode", bad], capture_output=True, text=True, timeout=60)
        assert r.returncode == 1 and r.stdout == "" and "--decode" in r.stderr, (bad, r.stderr)
    assert f"id {vocab} is not in the tokenizer's vocabulary (ids 0..{vocab - 1})" in subprocess.run(
        [*base, "--decode", str(vocab)], capture_output=True, text=True, timeout=60).stderr
    path = tmp_path / "ids.jsonl"
    path.write_text("[1, 2]\n[3, %d]\n" % (vocab + 5))
    r = subprocess.run([*base, "--file", str(path), "--jsonl"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and r.stdout == "" and "line 2" in r.stderr and f"id {vocab + 5}" in r.stderr, r.stderr
