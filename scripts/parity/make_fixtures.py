#!/usr/bin/env python3
"""Parity fixtures for crates/model: tiny random-weight models made and saved by
transformers, with the logits and perplexity transformers computes for them.

Run by developers when a family is added or a fixture must change, never by CI:

    python3 -m venv /tmp/venv-parity
    /tmp/venv-parity/bin/pip install -r scripts/parity/requirements.txt
    /tmp/venv-parity/bin/python scripts/parity/make_fixtures.py

It (re)writes, for each family, `crates/model/tests/fixtures/parity/<family>/`:
- `model/`, a Hugging Face directory: `config.json` and `model.safetensors` (f32) as
  `save_pretrained` writes them, and `tokenizer.json`, byte-level BPE over the 256 byte
  tokens (no merges), so every text encodes and `eval` / `run` can load the directory
  (the expected outputs stay outside it: the crate's loader reads every `*.safetensors`
  of a directory that has no index);
- `expected.safetensors`: `input_ids` (i64, [seq]) and `logits` (f32, [seq, vocab]),
  transformers' eval-mode f32 forward with eager attention on one sequence;
- `expected.json`: the text the ids encode, the sequence length, and the perplexity
  (tokens 2..seq predicted from their prefixes, as crates/model/src/ppl.rs scores a
  window), plus the library versions that made it.

Everything is seeded: a rerun with the pinned versions writes the same numbers.
Weights are redrawn at unit scale (transformers' own init, std 0.02, gives near-uniform
logits that would hide a wrong forward): linear weights N(0, 1/fan_in), embeddings
N(0, 4/hidden), norm weights near their identity, biases N(0, 0.5^2).
crates/model/tests/parity.rs checks the crate against these files.
"""

import json
import math
import shutil
import sys
from pathlib import Path

import safetensors.torch
import tokenizers
import torch
import transformers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "crates" / "model" / "tests" / "fixtures" / "parity"

VOCAB = 256
# 43 bytes -> 43 tokens: crosses the sliding windows below (8 and 16).
TEXT = "Pruning keeps the weights that matter most."
SLIDING = 16
# One seed per family, fixed so adding a family leaves the others' fixtures alone.
SEEDS = {
    "llama": 1000,
    "mistral": 1001,
    "qwen2": 1002,
    "qwen3": 1003,
    "gemma2": 1004,
    "gemma3": 1005,
    "phi3": 1006,
    "qwen2_head": 1007,
    "qwen2_sliding": 1008,
}
# Families whose saved config.json is rewritten to tie_word_embeddings: true.
FLIP_TIE = {"qwen2_head"}
# Families whose saved config.json loses `layer_types` (transformers 5 writes it), as
# configs written before transformers 5 are: the blocks that use the sliding window
# then follow from use_sliding_window and max_window_layers.
DROP_LAYER_TYPES = {"qwen2_sliding"}

COMMON = dict(
    vocab_size=VOCAB,
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=16,
    max_position_embeddings=128,
    rms_norm_eps=1e-6,
    bos_token_id=1,
    eos_token_id=2,
    pad_token_id=0,
    attn_implementation="eager",
)


def rope(theta, scaling=None):
    """rope_theta / rope_scaling in the form this transformers version takes."""
    if int(transformers.__version__.split(".")[0]) >= 5:
        params = {"rope_type": "default", "rope_theta": theta}
        if scaling:
            params.update(scaling)
        return {"rope_parameters": params}
    out = {"rope_theta": theta}
    if scaling:
        out["rope_scaling"] = scaling
    return out


def families():
    """name -> (config class, model class, config kwargs)."""
    t = transformers
    return {
        # Llama 3.1-style rope scaling; original_max_position_embeddings and theta chosen
        # so the head's frequencies fall in all three llama3 regimes (kept, blended,
        # divided by factor).
        "llama": (
            t.LlamaConfig,
            t.LlamaForCausalLM,
            dict(
                **rope(
                    10000.0,
                    {
                        "rope_type": "llama3",
                        "factor": 8.0,
                        "low_freq_factor": 1.0,
                        "high_freq_factor": 4.0,
                        "original_max_position_embeddings": 32,
                    },
                ),
                tie_word_embeddings=False,
            ),
        ),
        "mistral": (
            t.MistralConfig,
            t.MistralForCausalLM,
            dict(**rope(10000.0), sliding_window=SLIDING, tie_word_embeddings=False),
        ),
        # How Qwen2.5-0.5B/1.5B ship: q/k/v biases (always on in Qwen2) and a tied head;
        # no sliding window (use_sliding_window false).
        "qwen2": (
            t.Qwen2Config,
            t.Qwen2ForCausalLM,
            dict(**rope(1000000.0), tie_word_embeddings=True, use_sliding_window=False),
        ),
        # A checkpoint whose config.json says tied but whose file holds its own
        # lm_head.weight (saved untied, config flipped after: see FLIP_TIE). transformers 5
        # then does NOT tie ("both are present in the checkpoints with different values")
        # and uses the file's head; the reference follows it.
        "qwen2_head": (
            t.Qwen2Config,
            t.Qwen2ForCausalLM,
            dict(**rope(1000000.0), tie_word_embeddings=False, use_sliding_window=False),
        ),
        # Qwen2 with use_sliding_window: block 0 full attention, block 1 (from
        # max_window_layers on) a window of 8 tokens.
        "qwen2_sliding": (
            t.Qwen2Config,
            t.Qwen2ForCausalLM,
            dict(
                **rope(1000000.0),
                tie_word_embeddings=True,
                use_sliding_window=True,
                sliding_window=8,
                max_window_layers=1,
            ),
        ),
        # Qwen3-0.6B: q/k RMSNorm per head, no biases, tied head.
        "qwen3": (
            t.Qwen3Config,
            t.Qwen3ForCausalLM,
            dict(**rope(1000000.0), tie_word_embeddings=True, use_sliding_window=False),
        ),
        # Gemma 2: layer 0 local (sliding), layer 1 global; soft-capping small enough to
        # bite at this scale (the real models use 50 and 30).
        "gemma2": (
            t.Gemma2Config,
            t.Gemma2ForCausalLM,
            dict(
                **rope(10000.0),
                sliding_window=8,
                query_pre_attn_scalar=24,
                attn_logit_softcapping=5.0,
                final_logit_softcapping=10.0,
                hidden_activation="gelu_pytorch_tanh",
                tie_word_embeddings=True,
            ),
        ),
        # Gemma 3 text model: local layer (rope base 10k) then global (1M), q/k norms.
        "gemma3": (
            t.Gemma3TextConfig,
            t.Gemma3ForCausalLM,
            gemma3_kwargs(),
        ),
        # Phi-3: fused qkv_proj and gate_up_proj, sliding window.
        "phi3": (
            t.Phi3Config,
            t.Phi3ForCausalLM,
            dict(**rope(10000.0), sliding_window=SLIDING, tie_word_embeddings=False),
        ),
    }


def gemma3_kwargs():
    kw = dict(
        sliding_window=8,
        query_pre_attn_scalar=24,
        hidden_activation="gelu_pytorch_tanh",
        tie_word_embeddings=True,
        layer_types=["sliding_attention", "full_attention"],
    )
    if int(transformers.__version__.split(".")[0]) >= 5:
        kw["rope_parameters"] = {
            "full_attention": {"rope_type": "default", "rope_theta": 1000000.0},
            "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
        }
    else:
        kw.update(rope_theta=1000000.0, rope_local_base_freq=10000.0)
    return kw


def byte_tokenizer():
    """Byte-level BPE over the 256 byte symbols, no merges: token id = byte order of
    the GPT-2 byte alphabet."""
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    assert len(alphabet) == VOCAB
    vocab = {s: i for i, s in enumerate(alphabet)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    return tok


@torch.no_grad()
def redraw(model, gen):
    """Unit-scale weights: see the module docs."""
    for name, p in model.named_parameters():
        if name.endswith("norm.weight") or name.endswith("layernorm.weight"):
            # Gemma stores norms as (1 + w): near identity either way.
            offset = 0.0 if "gemma" in type(model).__name__.lower() else 1.0
            p.copy_(offset + 0.1 * torch.randn(p.shape, generator=gen))
        elif name.endswith(".bias"):
            p.copy_(0.5 * torch.randn(p.shape, generator=gen))
        elif "embed_tokens" in name:
            # 2/sqrt(hidden): a tied head then gives logits of a few units, not a
            # saturated softmax (Gemma multiplies by sqrt(hidden) on input).
            p.copy_(torch.randn(p.shape, generator=gen) * 2.0 / math.sqrt(p.shape[1]))
        elif p.dim() == 2:
            p.copy_(torch.randn(p.shape, generator=gen) / math.sqrt(p.shape[1]))
        else:
            raise SystemExit(f"no rule to redraw parameter {name} {tuple(p.shape)}")


def make(family, cfg_cls, model_cls, kwargs, tok, seed):
    torch.manual_seed(seed)
    args = dict(COMMON)
    args.update(kwargs)
    cfg = cfg_cls(**args)
    model = model_cls(cfg).to(torch.float32).eval()
    redraw(model, torch.Generator().manual_seed(seed))
    if cfg.tie_word_embeddings:
        assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()

    d = OUT / family
    if d.exists():
        shutil.rmtree(d)
    mdir = d / "model"
    mdir.mkdir(parents=True)
    model.save_pretrained(mdir, safe_serialization=True)
    tok.save(str(mdir / "tokenizer.json"))
    if family in FLIP_TIE | DROP_LAYER_TYPES:
        cfg_path = mdir / "config.json"
        cfg_json = json.loads(cfg_path.read_text())
        if family in FLIP_TIE:
            cfg_json["tie_word_embeddings"] = True
        if family in DROP_LAYER_TYPES:
            del cfg_json["layer_types"]
        cfg_path.write_text(json.dumps(cfg_json, indent=2, sort_keys=True) + "\n")
    gen_cfg = mdir / "generation_config.json"
    if gen_cfg.exists():
        gen_cfg.unlink()

    # The reference is computed on the model as transformers reloads it from disk, so
    # the fixture checks what a user of the saved directory gets.
    model = model_cls.from_pretrained(
        mdir, dtype=torch.float32, attn_implementation="eager"
    )
    model = model.eval()
    ids = tok.encode(TEXT).ids
    input_ids = torch.tensor([ids], dtype=torch.long)
    logits = model(input_ids=input_ids).logits[0].float()
    nll = torch.nn.functional.cross_entropy(
        logits[:-1].double(), input_ids[0, 1:], reduction="mean"
    ).item()
    safetensors.torch.save_file(
        {"input_ids": input_ids[0].contiguous(), "logits": logits.contiguous()},
        str(d / "expected.safetensors"),
    )
    meta = {
        "family": family,
        "hf_class": model_cls.__name__,
        "text": TEXT,
        "seq_len": len(ids),
        "mean_nll": nll,
        "ppl": math.exp(nll),
        "seed": seed,
        "attn_implementation": "eager",
        "versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "safetensors": safetensors.__version__,
            "tokenizers": tokenizers.__version__,
        },
    }
    (d / "expected.json").write_text(json.dumps(meta, indent=2) + "\n")
    size = sum(f.stat().st_size for f in d.rglob("*") if f.is_file())
    print(f"{family:8} {model_cls.__name__:22} ppl {meta['ppl']:.6g}  {size / 1024:.0f} KiB")


def main():
    torch.use_deterministic_algorithms(True)
    tok = byte_tokenizer()
    only = set(sys.argv[1:])
    for family, (cfg_cls, model_cls, kwargs) in families().items():
        if only and family not in only:
            continue
        make(family, cfg_cls, model_cls, kwargs, tok, SEEDS[family])


if __name__ == "__main__":
    main()
