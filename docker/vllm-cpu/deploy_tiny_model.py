"""deploy-tiny-model: write a tiny Llama-shaped model that the real vLLM engine can serve.

Random weights (seeded), a byte-level BPE tokenizer trained on the spot on a generated corpus,
and a chat template: config.json, generation_config.json, model.safetensors, tokenizer.json,
tokenizer_config.json, special_tokens_map.json. Nothing is downloaded. The same arguments and
seed give the same files, byte for byte.

Usage: deploy-tiny-model OUT_DIR [--layers N] [--hidden H] [--heads A] [--kv-heads K]
       [--intermediate I] [--vocab V] [--max-position P] [--seed S] [--architecture NAME]

The head dimension (hidden / heads) must be at least 32: vLLM's CPU attention kernels reject
smaller ones (16 fails at start-up).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

SPECIAL_TOKENS = ["<unk>", "<s>", "</s>", "<|system|>", "<|user|>", "<|assistant|>"]
CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>\n{{ message['content'] }}</s>\n"
    "{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
WORDS = (  # noqa: SIM905  (one string reads as the corpus it seeds)
    "the model serves tokens from a cache of keys and values while the scheduler batches "
    "requests across ranks and nodes each engine loads weights into memory and answers "
    "prompts with completions chat streams metrics health ready prefill decode transfer "
    "tensor pipeline data parallel expert layer head hidden vocabulary position rope norm "
    "attention projection gate up down embed logits sample temperature top seed one two "
    "three four five six seven eight nine ten hello world question answer user assistant "
    "system deploy plan render start stop supervise restart bench measure predict"
).split()


def fail(message: str) -> None:
    print(f"deploy-tiny-model: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="deploy-tiny-model", description=__doc__.split("\n")[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--kv-heads", type=int, default=2)
    parser.add_argument("--intermediate", type=int, default=0, help="default: 2 x hidden")
    parser.add_argument("--vocab", type=int, default=2048)
    parser.add_argument("--max-position", type=int, default=4096)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--architecture", default="LlamaForCausalLM")
    args = parser.parse_args(argv)
    bounds = {
        "layers": (1, 64),
        "hidden": (32, 8192),
        "heads": (1, 128),
        "kv_heads": (1, 128),
        "intermediate": (0, 32768),
        "vocab": (512, 262144),
        "max_position": (64, 1048576),
    }
    for name, (low, high) in bounds.items():
        value = getattr(args, name)
        if not low <= value <= high:
            fail(f"--{name.replace('_', '-')} {value} is outside {low}..{high}; pick one inside")
    if args.hidden % args.heads:
        fail(f"--hidden {args.hidden} is not a multiple of --heads {args.heads}; make it one")
    if args.hidden // args.heads < 32:
        fail(
            f"head dimension {args.hidden // args.heads} (hidden/heads) is below 32, which "
            "vLLM's CPU attention rejects; raise --hidden or lower --heads"
        )
    if args.heads % args.kv_heads:
        fail(f"--heads {args.heads} is not a multiple of --kv-heads {args.kv_heads}; make it one")
    return args


def corpus(seed: int, lines: int = 4000) -> list[str]:
    rng = random.Random(seed)
    text = []
    for _ in range(lines):
        words = [rng.choice(WORDS) for _ in range(rng.randint(4, 16))]
        if rng.random() < 0.3:
            words.append(str(rng.randint(0, 9999)))
        text.append(" ".join(words) + rng.choice([".", "?", "!", ","]))
    return text


def train_tokenizer(out: Path, vocab: int, max_position: int, seed: int) -> int:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(corpus(seed), trainer=trainer)
    bos = tokenizer.token_to_id("<s>")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos)]
    )
    tokenizer.save(str(out / "tokenizer.json"))
    specials = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "</s>"}
    tokenizer_config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        **specials,
        "model_max_length": max_position,
        "chat_template": CHAT_TEMPLATE,
        "clean_up_tokenization_spaces": False,
    }
    write_json(out / "tokenizer_config.json", tokenizer_config)
    write_json(out / "special_tokens_map.json", specials)
    return int(tokenizer.get_vocab_size())


def write_json(path: Path, data: object) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def write_weights(out: Path, args: argparse.Namespace, intermediate: int) -> int:
    import torch
    from safetensors.torch import save_file

    generator = torch.Generator().manual_seed(args.seed)
    head_dim = args.hidden // args.heads
    hidden, kv = args.hidden, args.kv_heads * head_dim

    def normal(*shape: int) -> torch.Tensor:
        return (torch.randn(*shape, generator=generator) * 0.02).to(torch.bfloat16)

    def ones(size: int) -> torch.Tensor:
        return torch.ones(size, dtype=torch.bfloat16)

    tensors = {"model.embed_tokens.weight": normal(args.vocab, hidden)}
    for i in range(args.layers):
        prefix = f"model.layers.{i}"
        tensors[f"{prefix}.input_layernorm.weight"] = ones(hidden)
        tensors[f"{prefix}.post_attention_layernorm.weight"] = ones(hidden)
        tensors[f"{prefix}.self_attn.q_proj.weight"] = normal(hidden, hidden)
        tensors[f"{prefix}.self_attn.k_proj.weight"] = normal(kv, hidden)
        tensors[f"{prefix}.self_attn.v_proj.weight"] = normal(kv, hidden)
        tensors[f"{prefix}.self_attn.o_proj.weight"] = normal(hidden, hidden)
        tensors[f"{prefix}.mlp.gate_proj.weight"] = normal(intermediate, hidden)
        tensors[f"{prefix}.mlp.up_proj.weight"] = normal(intermediate, hidden)
        tensors[f"{prefix}.mlp.down_proj.weight"] = normal(hidden, intermediate)
    tensors["model.norm.weight"] = ones(hidden)
    tensors["lm_head.weight"] = normal(args.vocab, hidden)
    save_file(tensors, str(out / "model.safetensors"), metadata={"format": "pt"})
    return sum(t.numel() for t in tensors.values())


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    out: Path = args.out_dir
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        fail(f"cannot create {out}: {exc.strerror}; pick a writable folder")
    intermediate = args.intermediate or 2 * args.hidden
    tokens = train_tokenizer(out, args.vocab, args.max_position, args.seed)
    if tokens > args.vocab:
        fail(f"the tokenizer has {tokens} tokens, more than --vocab {args.vocab}; raise --vocab")
    head_dim = args.hidden // args.heads
    config = {
        "architectures": [args.architecture],
        "model_type": "llama",
        "hidden_size": args.hidden,
        "intermediate_size": intermediate,
        "num_hidden_layers": args.layers,
        "num_attention_heads": args.heads,
        "num_key_value_heads": args.kv_heads,
        "head_dim": head_dim,
        "vocab_size": args.vocab,
        "max_position_embeddings": args.max_position,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "hidden_act": "silu",
        "attention_bias": False,
        "mlp_bias": False,
        "tie_word_embeddings": False,
        "initializer_range": 0.02,
        "torch_dtype": "bfloat16",
        "bos_token_id": 1,
        "eos_token_id": 2,
        "pad_token_id": 2,
    }
    write_json(out / "config.json", config)
    write_json(out / "generation_config.json", {"bos_token_id": 1, "eos_token_id": 2})
    params = write_weights(out, args, intermediate)
    print(
        f"deploy-tiny-model: wrote {out} ({args.architecture}, {args.layers} layers, hidden "
        f"{args.hidden}, {args.heads} heads / {args.kv_heads} KV heads, head_dim {head_dim}, "
        f"vocab {args.vocab} ({tokens} trained), max position {args.max_position}, "
        f"{params} parameters, seed {args.seed})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
