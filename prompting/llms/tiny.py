"""Build random-weight chat models of a real architecture: speed without a model hub.

- ``tiny`` (the ``tiny`` model id): a MistralForCausalLM (the architecture of
  zephyr-7b-beta, shrunk) made once into the model cache, for tests that need a fast
  model of the right shape. Its text is noise; the validator skips an LLM with random
  weights (the default model is SmolLM2, ``prompting.llms.embedded``), and everything
  that loads it is the same code that loads a real model id.
- ``--preset zephyr-7b``: full size, for GPU benchmarks: speed does not depend on
  weight values.

Both get a byte-level BPE tokenizer trained on Python's own documentation and a
zephyr-style chat template.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from prompting.llms.cache import is_built, models_dir, save_model

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "<|{{ message['role'] }}|>\n{{ message['content'] }}{{ eos_token }}\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
SPECIAL_TOKENS = ["<unk>", "<s>", "</s>", "<|system|>", "<|user|>", "<|assistant|>"]

PRESETS = {
    "tiny": dict(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=4096,
        max_position_embeddings=2048,
    ),
    # zephyr-7b-beta's architecture (MistralForCausalLM, 7.24 B parameters).
    "zephyr-7b": dict(
        hidden_size=4096,
        intermediate_size=14336,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=8,
        vocab_size=32000,
        max_position_embeddings=32768,
    ),
}
BUILD_VERSION = 1  # bump when the recipe changes so caches rebuild


def training_text(limit_chars: int = 2_000_000) -> list[str]:
    """English text that ships with every CPython: the pydoc topic pages."""
    from pydoc_data.topics import topics

    texts, total = [], 0
    for key in sorted(topics):
        texts.append(topics[key])
        total += len(topics[key])
        if total > limit_chars:
            break
    return texts


def build_tokenizer(vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(training_text(), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="</s>"
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def build_model(
    out_dir: str | os.PathLike,
    preset: str = "tiny",
    seed: int = 0,
    dtype: str = "float32",
    device: str = "cpu",
) -> Path:
    """Write a random-weight model + tokenizer to ``out_dir`` (atomically)."""
    import torch
    from transformers import MistralConfig, MistralForCausalLM

    from prompting.compat import loading_models

    out = Path(out_dir)
    spec = PRESETS[preset]
    tokenizer = build_tokenizer(min(spec["vocab_size"], 32000))
    config = MistralConfig(
        **spec,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
        sliding_window=None,
        torch_dtype=dtype,
    )
    torch.manual_seed(seed)
    with loading_models(), torch.device(device):
        model = MistralForCausalLM(config).to(getattr(torch, dtype))
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    info = {"preset": preset, "seed": seed, "version": BUILD_VERSION}
    return save_model(out, model, tokenizer, info)


def tiny_model_path(state_dir: str | os.PathLike) -> Path:
    return models_dir(state_dir) / f"tiny-mistral-v{BUILD_VERSION}"


def ensure_tiny_model(state_dir: str | os.PathLike) -> Path:
    """Path of the tiny model in ``state_dir``'s model cache, built on first use (~5 s)."""
    path = tiny_model_path(state_dir)
    if not is_built(path):
        build_model(path, "tiny")
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Build a random-weight chat model.")
    parser.add_argument("out", help="output folder")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="tiny")
    parser.add_argument("--dtype", default="float16")
    parser.add_argument("--device", default="cpu", help="cuda builds a 7B model in seconds")
    args = parser.parse_args(argv)
    print(build_model(args.out, args.preset, dtype=args.dtype, device=args.device))


if __name__ == "__main__":
    main()
