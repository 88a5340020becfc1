"""tools/train_default_model.py without torch: the Brown detokenizer on hand-written cases, the held-out split,
the tokenizer it trains (Qwen-style specials after the BPE vocabulary, identical ids in ark), and that its
prepare step reproduces the held-out text the repository ships (when ../shared/data/corpora is present)."""

import json
import pathlib
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tools"))
import train_default_model as t  # noqa: E402

CORPORA = REPO.parent / "shared" / "data" / "corpora"
HELDOUT = REPO / "tests" / "data" / "heldout_en.txt"


@pytest.mark.parametrize(
    "tagged,plain",
    [
        ("The/at jury/nn said/vbd ``/`` no/at evidence/nn ''/'' ./.", 'The jury said "no evidence".'),
        ("Mayor-nominate/nn-tl Ivan/np Allen/np Jr./np ./.", "Mayor-nominate Ivan Allen Jr."),
        ("costs/nns ,/, (/( 1/2/cd percent/nn )/) ;/. yes/rb ?/.", "costs, (1/2 percent); yes?"),
        ("It/pps is/bez --/-- perhaps/rb --/-- `/` odd/jj '/' !/.", "It is -- perhaps -- 'odd'!"),
    ],
)
def test_brown_sentence(tagged, plain):
    assert t.brown_sentence(tagged) == plain


def test_brown_document_joins_sentences_and_paragraphs():
    raw = "\n\n\tA/at b/nn ./.\n\tC/at d/nn ./.\n\n\n\tE/at f/nn ./.\n"
    assert t.brown_document(raw) == "A b. C d.\nE f."


def test_split_heldout_is_seeded_by_document_and_fraction():
    docs = [(f"d{i}", "x" * (100 + i)) for i in range(200)]
    train, held = t.split_heldout(docs, 0.05, seed=3)
    again_train, again_held = t.split_heldout(docs, 0.05, seed=3)
    assert (train, held) == (again_train, again_held)
    assert t.split_heldout(docs, 0.05, seed=4)[1] != held
    assert sorted(train + held) == sorted(docs)
    chars = sum(len(x) for _, x in held)
    total = sum(len(x) for _, x in docs)
    assert 0.05 * total <= chars < 0.05 * total + 300  # stops at the first document past the fraction


def test_tokenizer_specials_follow_the_bpe_vocabulary(tmp_path, ark_bin):
    docs = HELDOUT.read_text(encoding="utf-8").split("\n\n")[:8]
    tok = t.train_tokenizer(docs, 320)
    assert [tok.token_to_id(s) for s in t.SPECIAL_TOKENS] == [317, 318, 319]
    tok.save(str(tmp_path / "tokenizer.json"))
    cfg = t.tokenizer_config(tok)
    assert cfg["eos_token"] == "<|endoftext|>" and set(cfg["added_tokens_decoder"]) == {"317", "318", "319"}
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(cfg))
    text = docs[0][:300] + " <|im_start|>user\nHi<|im_end|><|endoftext|>"
    want = tok.encode(text, add_special_tokens=False).ids
    assert want[-1] == 317 and 318 in want and 319 in want  # specials match whole, not as BPE pieces
    (tmp_path / "t.txt").write_text(text, encoding="utf-8")
    r = subprocess.run([ark_bin, "tokenize", "--tokenizer", str(tmp_path), "--file", str(tmp_path / "t.txt"), "--ids",
                        "--no-special"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.strip().splitlines()[-1]) == want


@pytest.mark.skipif(not CORPORA.is_dir(), reason=f"{CORPORA} absent: the shipped held-out text cannot be rebuilt")
def test_prepare_reproduces_the_shipped_heldout_text(tmp_path):
    r = subprocess.run([sys.executable, str(REPO / "tools" / "train_default_model.py"), "prepare", "--corpora",
                        str(CORPORA), "--out", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "heldout.txt").read_bytes() == HELDOUT.read_bytes()
    assert HELDOUT.stat().st_size < 1_000_000
    assert len(list((tmp_path / "train").glob("*.txt"))) > 400  # Brown: 500 samples, 5% held out
