"""Shared fixtures: a tiny model built once per session, real wallets in temp folders,
the real AnglE embedder. Nothing here touches a network but loopback."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Built and converted models (tiny, smollm2) are made once into one cache that every
# test state folder, and the validators and miners tests start, share.
os.environ.setdefault("PROMPTING_MODEL_CACHE", os.path.join(REPO, ".cache", "models"))


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory):
    """State folder holding the tiny model (built once per test session)."""
    from prompting.llms.tiny import ensure_tiny_model

    root = tmp_path_factory.mktemp("state")
    ensure_tiny_model(root)
    return root


@pytest.fixture(scope="session")
def tiny_llm(model_dir):
    from prompting.llms.hf import HFLLM

    llm = HFLLM("tiny", device="cpu", state_dir=str(model_dir))
    yield llm
    llm.close()


@pytest.fixture(scope="session")
def smollm2(tmp_path_factory):
    """The default model (SmolLM2-135M-Instruct from its wheel), loaded once per session."""
    from prompting.llms.hf import HFLLM

    llm = HFLLM("smollm2", device="cpu", state_dir=str(tmp_path_factory.mktemp("state")))
    yield llm
    llm.close()


@pytest.fixture(scope="session")
def embedder():
    from prompting.rewards.relevance import shared_embedder

    return shared_embedder()


@pytest.fixture(scope="session")
def wallets(tmp_path_factory):
    """Real sr25519 wallets: a validator, two miners and an outsider."""
    from prompting.network.auth import load_or_create_wallet

    root = str(tmp_path_factory.mktemp("wallets"))
    return {
        name: load_or_create_wallet(name, "default", root)
        for name in ("validator", "miner", "miner2", "outsider")
    }
