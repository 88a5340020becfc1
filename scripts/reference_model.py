#!/usr/bin/env python3
"""An independent float64 NumPy forward pass of Qwen2 / Llama / Qwen3 checkpoints and their mixture-of-experts
variants (Qwen2-MoE, Qwen3-MoE, Mixtral) as ark reads them: the oracle for ark's runtime
(tests/python/test_runtime_reference.py) where transformers cannot run, and the weight dequantizer for
scripts/reference_transformers.py.

Written from the published model definitions (transformers' modeling_qwen2 / modeling_llama / modeling_qwen3,
modeling_qwen2_moe / modeling_qwen3_moe / modeling_mixtral) and the on-disk layouts of docs/FORMATS.md; it
shares no code with ark.

MoE routing as transformers writes it: p = softmax(router logits) over all experts, the top_k largest p,
renormalized to sum 1 when norm_topk_prob (Mixtral always). Exact ties go to the lower expert id (a stable
sort); torch.topk leaves the order of ties unspecified, and on CPU it often takes the higher id.

    python scripts/reference_model.py --model DIR --ids 1,2,3 [--logits-out F] [--greedy N]
"""

import argparse
import json
import math
import pathlib
import struct

import numpy as np

AWQ_NIBBLE_OF_COLUMN = [0, 4, 1, 5, 2, 6, 3, 7]  # column c of an 8-column AWQ word sits in nibble [c]
LAYOUTS = {
    "auto_round:auto_gptq": "gptq-v1",
    "auto_round:gptq": "gptq-v1",
    "auto": "gptq-v1",
    "auto_round": "gptq-v2",
    "auto_round:gptqmodel": "gptq-v2",
    "auto_round:auto_awq": "awq",
    "auto_round:awq": "awq",
}
DTYPES = {"F32": np.float32, "F16": np.float16, "I32": np.int32, "I64": np.int64, "F64": np.float64}


def read_safetensors(path):
    """name -> float64 / int array; bf16 widened by hand (NumPy has no bf16)."""
    raw = pathlib.Path(path).read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    data = raw[8 + n :]
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        b, end = e["data_offsets"]
        chunk = data[b:end]
        if e["dtype"] == "BF16":
            u = np.frombuffer(chunk, dtype=np.uint16).astype(np.uint32) << 16
            arr = u.view(np.float32)
        else:
            arr = np.frombuffer(chunk, dtype=DTYPES[e["dtype"]])
        out[name] = arr.reshape(e["shape"])
    return out


def read_checkpoint(model_dir):
    d = pathlib.Path(model_dir)
    tensors = {}
    for f in sorted(d.glob("*.safetensors")):
        tensors.update(read_safetensors(f))
    return tensors


def bit_stream(words, count, bits):
    """Values of `bits` bits laid end to end, little-endian, in the int32 words of each column (axis 0)."""
    w = words.astype(np.int64) & 0xFFFFFFFF
    total = np.zeros((count,) + w.shape[1:], dtype=np.int64)
    for i in range(count):
        bit = i * bits
        v = np.zeros(w.shape[1:], dtype=np.int64)
        for j in range(bits):
            word, off = divmod(bit + j, 32)
            v |= ((w[word] >> off) & 1) << j
        total[i] = v
    return total


def dequantize(t, module, bits, group_size, layout, K, N):
    """W [N, K] float64 from qweight / qzeros / scales (/ g_idx)."""
    scales = t[module + ".scales"].astype(np.float64)  # [G, N]
    if layout == "awq":
        qw = t[module + ".qweight"].astype(np.int64) & 0xFFFFFFFF  # [K, N/8]
        qz = t[module + ".qzeros"].astype(np.int64) & 0xFFFFFFFF  # [G, N/8]
        q = np.zeros((K, N), dtype=np.int64)
        z = np.zeros((qz.shape[0], N), dtype=np.int64)
        for c in range(8):
            shift = 4 * AWQ_NIBBLE_OF_COLUMN[c]
            q[:, c::8] = (qw >> shift) & 15
            z[:, c::8] = (qz >> shift) & 15
    else:
        q = bit_stream(t[module + ".qweight"], K, bits)  # [K, N]
        # zeros pack along N: transpose so the stream runs down axis 0
        z = bit_stream(t[module + ".qzeros"].T, N, bits).T  # [G, N]
        if layout == "gptq-v1":
            z = z + 1
    g_idx = t.get(module + ".g_idx")
    groups = g_idx.astype(np.int64) if g_idx is not None else np.arange(K) // (group_size if group_size > 0 else K)
    w = scales[groups, :] * (q - z[groups, :])  # [K, N]
    return w.T.copy()


def layer_schemes(config):
    """module name -> (bits, group_size, layout) for quantized modules, per the configs make-model writes."""
    qc = config.get("quantization_config")
    if not qc:
        return None
    return qc


def scheme_of(qc, name):
    if qc is None:
        return None
    bits, gs = qc["bits"], qc["group_size"]
    extra = qc.get("extra_config", {})
    if name in extra:
        bits = extra[name].get("bits", bits)
        gs = extra[name].get("group_size", gs)
    elif name == "lm_head":
        return None
    if bits >= 16:
        return None
    return bits, gs, LAYOUTS[qc["packing_format"]]


MOE_DEFAULTS = {  # transformers' config defaults: experts' keys, experts, top-k, expert size, shared, norm_topk_prob
    "Qwen2MoeForCausalLM": (("num_experts",), 60, 4, 1408, 5632, False),
    # transformers 5 maps num_experts onto num_local_experts for these two and writes the latter
    "Qwen3MoeForCausalLM": (("num_experts", "num_local_experts"), 128, 8, 768, 0, False),
    "MixtralForCausalLM": (("num_local_experts", "num_experts"), 8, 2, None, 0, True),
}


def moe_config(c):
    """None for a dense architecture, else a dict of the sparse MLP's sizes and which layers are sparse."""
    arch = c["architectures"][0]
    if arch not in MOE_DEFAULTS:
        return None
    keys, e, k, inter, shared, norm = MOE_DEFAULTS[arch]
    m = {
        "experts": next((c[x] for x in keys if c.get(x)), e),
        "top_k": c.get("num_experts_per_tok") or k,
        "inter": c["intermediate_size"] if inter is None else (c.get("moe_intermediate_size") or inter),
        "shared": (c.get("shared_expert_intermediate_size") or shared) if arch == "Qwen2MoeForCausalLM" else 0,
        "norm": True if arch == "MixtralForCausalLM" else bool(c.get("norm_topk_prob", norm)),
    }
    step = 1 if arch == "MixtralForCausalLM" else (c.get("decoder_sparse_step") or 1)
    only = [] if arch == "MixtralForCausalLM" else (c.get("mlp_only_layers") or [])
    m["sparse"] = [i not in only and (i + 1) % step == 0 for i in range(c["num_hidden_layers"])]
    return m


def route(p, top_k, norm):
    """Expert ids and weights of one token from its softmax probabilities p [E]; ties to the lower id."""
    top = np.argsort(-p, kind="stable")[:top_k]
    w = p[top]
    if norm:
        w = w / w.sum()
    return top, w


class Reference:
    def __init__(self, model_dir):
        d = pathlib.Path(model_dir)
        self.c = c = json.loads((d / "config.json").read_text())
        t = read_checkpoint(d)
        qc = layer_schemes(c)
        self.arch = c["architectures"][0]
        self.H = c["hidden_size"]
        self.nh = c["num_attention_heads"]
        self.nkv = c.get("num_key_value_heads") or self.nh
        self.D = c.get("head_dim") or self.H // self.nh
        self.eps = c.get("rms_norm_eps", 1e-6)

        def weight(module, K, N):
            if module + ".qweight" in t:
                bits, gs, layout = scheme_of(qc, module)
                return dequantize(t, module, bits, gs, layout, K, N)
            return t[module + ".weight"].astype(np.float64)

        def maybe(name):
            return t[name].astype(np.float64) if name in t else None

        self.weight = weight
        self.embed = t["model.embed_tokens.weight"].astype(np.float64)
        self.layers = []
        q_out, kv_out, I = self.nh * self.D, self.nkv * self.D, c["intermediate_size"]
        self.moe = moe_config(c)
        # Mixtral keeps its block_sparse_moe module in AutoRound's exports, with the experts' original
        # w1 (gate) / w3 (up) / w2 (down) names in checkpoints written before transformers 5.
        block = "block_sparse_moe" if "model.layers.0.block_sparse_moe.gate.weight" in t else "mlp"
        w1 = f"model.layers.0.{block}.experts.0.w1"
        w123 = w1 + ".qweight" in t or w1 + ".weight" in t
        parts = ("w1", "w3", "w2") if w123 else ("gate_proj", "up_proj", "down_proj")
        for i in range(c["num_hidden_layers"]):
            p = f"model.layers.{i}."
            L = {
                "in_norm": maybe(p + "input_layernorm.weight"),
                "post_norm": maybe(p + "post_attention_layernorm.weight"),
                "q_norm": maybe(p + "self_attn.q_norm.weight"),
                "k_norm": maybe(p + "self_attn.k_norm.weight"),
            }
            sparse = self.moe is not None and self.moe["sparse"][i]
            mlp = [] if sparse else [("mlp.gate_proj", self.H, I), ("mlp.up_proj", self.H, I), ("mlp.down_proj", I, self.H)]
            for name, K, N in [
                ("self_attn.q_proj", self.H, q_out),
                ("self_attn.k_proj", self.H, kv_out),
                ("self_attn.v_proj", self.H, kv_out),
                ("self_attn.o_proj", q_out, self.H),
            ] + mlp:
                L[name] = (weight(p + name, K, N), maybe(p + name + ".bias"))
            if sparse:
                m, EI = self.moe, self.moe["inter"]
                ex = p + block + ".experts."
                L["router"] = t[p + block + ".gate.weight"].astype(np.float64)  # [E, H]
                L["experts"] = [
                    (weight(f"{ex}{e}.{parts[0]}", self.H, EI), weight(f"{ex}{e}.{parts[1]}", self.H, EI),
                     weight(f"{ex}{e}.{parts[2]}", EI, self.H))
                    for e in range(m["experts"])
                ]
                L["shared"] = None
                if m["shared"]:
                    se, SI = p + "mlp.shared_expert.", m["shared"]
                    L["shared"] = (weight(se + "gate_proj", self.H, SI), weight(se + "up_proj", self.H, SI),
                                   weight(se + "down_proj", SI, self.H))
                    L["shared_gate"] = t[p + "mlp.shared_expert_gate.weight"].astype(np.float64)  # [1, H]
            self.layers.append(L)
        self.norm = t["model.norm.weight"].astype(np.float64)
        if "lm_head.weight" in t or "lm_head.qweight" in t:
            self.lm_head = weight("lm_head", self.H, c["vocab_size"])
        else:
            self.lm_head = self.embed
        self.inv_freq = self._inv_freq()

    def _inv_freq(self):
        c, D = self.c, self.D
        rope = c.get("rope_parameters") or c.get("rope_scaling") or {}
        theta = rope.get("rope_theta", c.get("rope_theta", 10000.0))
        inv = 1.0 / theta ** (np.arange(0, D, 2, dtype=np.float64) / D)
        kind = rope.get("rope_type", rope.get("type", "default"))
        if kind == "linear":
            inv = inv / rope["factor"]
        elif kind == "llama3":
            f, lo, hi = rope["factor"], rope["low_freq_factor"], rope["high_freq_factor"]
            old = rope["original_max_position_embeddings"]
            wavelen = 2 * math.pi / inv
            out = np.where(wavelen > old / lo, inv / f, inv)
            smooth = (old / wavelen - lo) / (hi - lo)
            mid = (wavelen >= old / hi) & (wavelen <= old / lo)
            out = np.where(mid, (1 - smooth) * inv / f + smooth * inv, out)
            inv = out
        elif kind != "default":
            raise ValueError(f"rope type {kind} not in this reference")
        return inv

    def rms(self, x, w):
        return w * (x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + self.eps))

    def rope(self, x, pos):
        # x [T, heads, D]; rotate-half
        ang = pos[:, None] * self.inv_freq[None, :]  # [T, D/2]
        cos = np.concatenate([np.cos(ang)] * 2, axis=-1)[:, None, :]
        sin = np.concatenate([np.sin(ang)] * 2, axis=-1)[:, None, :]
        h = self.D // 2
        rot = np.concatenate([-x[..., h:], x[..., :h]], axis=-1)
        return x * cos + rot * sin

    def logits(self, ids):
        """Logits [T, vocab] of every position of one sequence."""
        T = len(ids)
        x = self.embed[np.array(ids)]
        pos = np.arange(T, dtype=np.float64)
        mask = np.triu(np.full((T, T), -np.inf), 1)
        group = self.nh // self.nkv

        def lin(h, wb):
            w, b = wb
            y = h @ w.T
            return y + b if b is not None else y

        for L in self.layers:
            h = self.rms(x, L["in_norm"])
            q = lin(h, L["self_attn.q_proj"]).reshape(T, self.nh, self.D)
            k = lin(h, L["self_attn.k_proj"]).reshape(T, self.nkv, self.D)
            v = lin(h, L["self_attn.v_proj"]).reshape(T, self.nkv, self.D)
            if L["q_norm"] is not None:
                q = self.rms(q, L["q_norm"])
                k = self.rms(k, L["k_norm"])
            q, k = self.rope(q, pos), self.rope(k, pos)
            out = np.zeros((T, self.nh, self.D))
            for hd in range(self.nh):
                s = q[:, hd, :] @ k[:, hd // group, :].T / math.sqrt(self.D) + mask
                s = np.exp(s - s.max(axis=-1, keepdims=True))
                s /= s.sum(axis=-1, keepdims=True)
                out[:, hd, :] = s @ v[:, hd // group, :]
            x = x + lin(out.reshape(T, -1), L["self_attn.o_proj"])
            h = self.rms(x, L["post_norm"])
            if "router" in L:
                x = x + self.sparse_mlp(h, L)
                continue
            g = lin(h, L["mlp.gate_proj"])
            u = lin(h, L["mlp.up_proj"])
            x = x + lin(g / (1 + np.exp(-g)) * u, L["mlp.down_proj"])
        return self.rms(x, self.norm) @ self.lm_head.T

    @staticmethod
    def gated_mlp(h, gud):
        g, u, d = gud
        a = h @ g.T
        return (a / (1 + np.exp(-a)) * (h @ u.T)) @ d.T

    def routing(self, h, L):
        """Per token: expert ids and weights. Logits one expert at a time and exp one value at a time, so that
        equal router rows give bit-equal probabilities (a matrix product or a vectorized exp may round columns
        differently)."""
        m = self.moe
        logits = np.stack([h @ L["router"][e] for e in range(m["experts"])], axis=-1)  # [T, E]
        mx = logits.max(axis=-1, keepdims=True)
        p = np.vectorize(math.exp)(logits - mx)
        p /= p.sum(axis=-1, keepdims=True)
        return [route(p[t], m["top_k"], m["norm"]) for t in range(h.shape[0])]

    def sparse_mlp(self, h, L):
        out = np.zeros_like(h)
        for t, (ids, w) in enumerate(self.routing(h, L)):
            for e, we in zip(ids, w):
                out[t] += we * self.gated_mlp(h[t : t + 1], L["experts"][e])[0]
        if L["shared"] is not None:
            gate = 1 / (1 + np.exp(-(h @ L["shared_gate"].T)))  # [T, 1]
            out += gate * self.gated_mlp(h, L["shared"])
        return out

    def greedy(self, ids, n, stop=()):
        seq = list(ids)
        out = []
        for _ in range(n):
            nxt = int(np.argmax(self.logits(seq)[-1]))
            if nxt in stop:
                break
            out.append(nxt)
            seq.append(nxt)
        return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--ids", required=True, help="comma-separated prompt token ids")
    ap.add_argument("--logits-out", help="write the prompt's logits as float32 [n][vocab]")
    ap.add_argument("--greedy", type=int, default=0, help="greedy tokens to generate (printed as JSON)")
    a = ap.parse_args()
    ref = Reference(a.model)
    ids = [int(x) for x in a.ids.split(",")]
    if a.logits_out:
        ref.logits(ids).astype(np.float32).tofile(a.logits_out)
    if a.greedy:
        print(json.dumps(ref.greedy(ids, a.greedy)))


if __name__ == "__main__":
    main()
