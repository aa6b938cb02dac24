import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from prompting.llms import memory
from prompting.llms.base import LLMError, Sampling, backend_class
from prompting.llms.hf import choose_device, choose_dtype
from prompting.llms.tiny import PRESETS
from prompting.llms.vllm import (
    VLLM_ARGUMENTS,
    build_engine_args,
    engine_in_process,
    narrow_visible_devices,
)
from prompting.registry import BACKENDS

ZEPHYR = PRESETS["zephyr-7b"]  # the same keys as zephyr-7b-beta's config.json
H100 = 81559 * 2**20
# vllm 0.24.0: LLM.__init__ parameters and EngineArgs fields we rely on (recorded from the
# wheel; the test below checks the live class instead when vllm is importable).
RECORDED_VLLM_NAMES = {
    "model",
    "tokenizer",
    "tensor_parallel_size",
    "dtype",
    "quantization",
    "seed",
    "gpu_memory_utilization",
    "enforce_eager",
    "max_model_len",
    "max_num_seqs",
    "max_num_batched_tokens",
    "compilation_config",
    "distributed_executor_backend",
    "disable_log_stats",
}


def test_registry_is_lazy_and_named():
    assert BACKENDS.names()[:3] == ["hf", "vllm", "openai"]
    with pytest.raises(LLMError, match="unknown backend 'tgi'; available: hf, vllm, openai"):
        backend_class("tgi")


def test_hf_generates_batched_and_single(tiny_llm):
    prompts = [
        [{"role": "user", "content": "What is a list?"}],
        "Explain tuples.",
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
    ]
    out = tiny_llm.generate(prompts, Sampling(max_tokens=12, temperature=0.0))
    assert len(out) == 3
    for g in out:
        assert 1 <= g.tokens <= 12 and g.seconds > 0 and g.prompt_tokens > 3
        assert isinstance(g.text, str)
    single = tiny_llm.generate([prompts[0]], Sampling(max_tokens=12, temperature=0.0))
    assert single[0].text == out[0].text  # left padding does not change greedy output
    fixed = tiny_llm.generate(["x"], Sampling(max_tokens=9, temperature=0.8, ignore_eos=True))
    assert fixed[0].tokens == 9
    stats = tiny_llm.stats
    assert stats.device == "cpu" and stats.dtype == "float32" and stats.load_seconds > 0


def test_hf_device_and_dtype_choice():
    assert choose_device("auto", True) == "cuda:0"
    assert choose_device("auto", False) == "cpu"
    assert choose_device("cuda:1", True) == "cuda:1"
    with pytest.raises(LLMError, match="no CUDA GPU"):
        choose_device("cuda", False)
    assert choose_dtype("auto", "cuda:0") == "float16"
    assert choose_dtype("auto", "cpu") == "float32"
    assert choose_dtype("bfloat16", "cuda:0") == "bfloat16"


def test_hf_batch_is_cut_to_the_budget(tiny_llm):
    shape, own_shape = memory.ModelShape.from_config(ZEPHYR), tiny_llm.shape
    tiny_llm.shape, tiny_llm.budget_gb, tiny_llm.dtype = shape, 24.0, "float16"
    try:
        assert tiny_llm.max_batch(350, 256) == 67  # (24 - 14.48 - 1.5) GB / 119 MB
        tiny_llm.budget_gb = 15.0
        with pytest.raises(LLMError, match="raise it to at least 16"):
            tiny_llm.max_batch(350, 256)
        # With a budget of one sequence per chunk, a batch of 3 runs as 3 chunks, in order.
        tiny_llm.shape, tiny_llm.dtype = own_shape, "float32"
        weights = memory.weight_bytes(own_shape, "float32") + memory.HF_OVERHEAD_BYTES
        per = memory.hf_sequence_bytes(own_shape, 40, 4, "float32")
        tiny_llm.budget_gb = (weights + 1.5 * per) / memory.GB
        greedy = Sampling(max_tokens=4, temperature=0.0)
        chunked = tiny_llm.generate(["a b", "c d", "e f"], greedy)
        tiny_llm.budget_gb = None
        assert [g.text for g in chunked] == [
            g.text for g in tiny_llm.generate(["a b", "c d", "e f"], greedy)
        ]
    finally:
        tiny_llm.shape, tiny_llm.budget_gb, tiny_llm.dtype = own_shape, None, "float32"


def test_memory_arithmetic_matches_zephyr():
    shape = memory.ModelShape.from_config(ZEPHYR)
    assert shape.parameters == 7_241_732_096  # zephyr-7b-beta's parameter count
    assert memory.weight_bytes(shape) == 14_483_464_192  # measured on H100: 14_483_465_216
    assert memory.kv_bytes_per_token(shape) == 131072
    # Quantized: the blocks' linear layers shrink, the embeddings and head stay fp16.
    embeddings = 2 * 32000 * 4096 * 2
    assert memory.weight_bytes(shape, quantization="fp8") == embeddings + (
        shape.parameters - 2 * 32000 * 4096
    )
    assert 4.4e9 < memory.weight_bytes(shape, quantization="awq") < 4.5e9


def test_engine_size_follows_the_budget():
    """The smallest size is the one measured at 16 GB (8 sequences, 1024 batched tokens,
    2048 tokens of context). The budget is all the process holds on the GPU: with vLLM's
    engine core in the validator's process zephyr-7b fp16 needs 16.5 GB (15.9 for vLLM,
    measured peak 15.88 at 16 GB, plus the process's CUDA context, 0.55 measured). Larger
    budgets get more sequences and a longer context."""
    shape = memory.ModelShape.from_config(ZEPHYR)
    small = memory.plan(shape, 16.5, engine_in_process=True)
    assert (small.max_num_seqs, small.max_num_batched_tokens, small.max_model_len) == (
        8,
        1024,
        memory.TASK_MAX_MODEL_LEN,
    )
    assert small.fits and small.needed_gb == 16.5
    # The device-wide peak (the pool, what vLLM uses outside it, the process's context)
    # stays inside the budget.
    held = small.utilization(H100) * H100 + small.outside_pool_bytes + small.process_bytes
    assert held == pytest.approx(16.5e9)
    sizes = [memory.plan(shape, gb, engine_in_process=True) for gb in (16.5, 18, 20, 24, 40)]
    seqs = [fit.max_num_seqs for fit in sizes]
    assert seqs == sorted(seqs) and seqs[-1] == 256
    assert all(fit.fits and fit.comfortable for fit in sizes[1:])
    refused = memory.plan(shape, 16.0, engine_in_process=True)
    assert not refused.fits and refused.needed_gb == 16.5  # the smallest size's figure
    # fp8 halves the blocks: zephyr fits 9.5 GB (vLLM's measured peak 8.81 GB plus the
    # context), not 9.4.
    assert memory.plan(shape, 9.5, quantization="fp8", engine_in_process=True).fits
    assert not memory.plan(shape, 9.4, quantization="fp8", engine_in_process=True).fits
    assert memory.plan(shape, 24.0, max_model_len=4096).max_model_len == 4096
    assert memory.graph_batch_sizes(8) == [1, 2, 4, 8, 16]
    assert memory.graph_batch_sizes(1024)[-1] == 512


def test_the_budget_counts_the_whole_process():
    """The CUDA context and the relevance embedder on the GPU come off vLLM's pool: the
    same budget gives a smaller pool, and the smallest budget grows by their size."""
    shape = memory.ModelShape.from_config(ZEPHYR)
    bare, with_embedder = (
        memory.plan(shape, 24.0, engine_in_process=True, embedder_on_gpu=e) for e in (False, True)
    )
    assert bare.process_bytes == memory.CUDA_CONTEXT_BYTES
    assert with_embedder.process_bytes - bare.process_bytes == memory.EMBEDDER_GPU_BYTES
    assert bare.utilization(H100) - with_embedder.utilization(H100) == pytest.approx(
        memory.EMBEDDER_GPU_BYTES / H100
    )
    smallest = memory.plan(shape, 0, engine_in_process=True, embedder_on_gpu=True)
    assert smallest.needed_gb == 16.7
    on_gpu = engine_args(budget_gb=24.0, embedder_on_gpu=True)["gpu_memory_utilization"]
    assert on_gpu < engine_args(budget_gb=24.0)["gpu_memory_utilization"]
    with pytest.raises(LLMError, match=r"CUDA context and the rest of the process 0\.8 GB"):
        engine_args(budget_gb=16.5, embedder_on_gpu=True)


def test_engine_core_in_process_frees_a_cuda_context():
    """On one GPU the vllm backend runs vLLM's engine core in the validator's process: no
    second CUDA context. In a process of its own (tensor parallel, vllm serve, or the
    operator's VLLM_ENABLE_V1_MULTIPROCESSING=1) zephyr-7b fp16 needs 17.1 GB, not 16.5."""
    shape = memory.ModelShape.from_config(ZEPHYR)
    separate, inside = (memory.plan(shape, 16.5, engine_in_process=p) for p in (False, True))
    assert not separate.fits and inside.fits and separate.needed_gb == 17.1
    assert separate.outside_pool_bytes - inside.outside_pool_bytes == memory.CUDA_CONTEXT_BYTES
    assert memory.plan(shape, 10.1, quantization="fp8").fits
    assert not memory.plan(shape, 10.0, quantization="fp8").fits
    # one GPU and no word from the operator: in process; tensor parallel or an explicit
    # VLLM_ENABLE_V1_MULTIPROCESSING=1: vLLM's own engine process
    assert engine_in_process(1, environ={})
    assert engine_in_process(1, environ={"VLLM_ENABLE_V1_MULTIPROCESSING": "0"})
    assert not engine_in_process(1, environ={"VLLM_ENABLE_V1_MULTIPROCESSING": "1"})
    assert not engine_in_process(2, environ={})
    assert not engine_in_process(1, "ray", environ={})
    assert engine_args(budget_gb=16.5, engine_in_process=True)["max_num_seqs"] == 8
    with pytest.raises(LLMError, match="needs about 17.1 GB"):
        engine_args(budget_gb=16.5, engine_in_process=False)


def engine_args(**kw):
    base = dict(
        model_path="/m",
        config_json=ZEPHYR,
        budget_gb=24.0,
        device_total_bytes=H100,
        gpus=1,
        local_gpu_count=1,
        max_model_len=None,
        dtype="auto",
        quantization="none",
        enforce_eager=False,
        executor="auto",
        seed=None,
        engine_in_process=True,  # as the vllm backend runs on one GPU
    )
    base.update(kw)
    return build_engine_args(**base)


def test_vllm_budget_becomes_engine_arguments():
    args = engine_args(budget_gb=16.5)
    outside = memory.outside_pool_bytes(8, engine_in_process=True) + memory.process_bytes()
    assert args["gpu_memory_utilization"] == pytest.approx((16.5e9 - outside) / H100, abs=1e-4)
    assert (args["max_num_seqs"], args["max_num_batched_tokens"], args["max_model_len"]) == (
        8,
        1024,
        2048,
    )
    assert args["compilation_config"] == {"cudagraph_capture_sizes": [1, 2, 4, 8, 16]}
    assert not args["enforce_eager"] and args["dtype"] == "float16"
    assert "distributed_executor_backend" not in args
    assert set(args) <= RECORDED_VLLM_NAMES and set(VLLM_ARGUMENTS) == RECORDED_VLLM_NAMES
    assert engine_args(budget_gb=24.0)["max_model_len"] == 8192
    # A 24 GB card with a CUDA context open: the plan shrinks to what is free.
    free = engine_args(budget_gb=24.0, device_free_bytes=int(23.5e9))
    assert (
        free["gpu_memory_utilization"]
        < engine_args(budget_gb=23.5)["gpu_memory_utilization"] + 1e-9
    )
    with pytest.raises(LLMError, match="budget is 15"):
        engine_args(budget_gb=24.0, device_free_bytes=int(15e9))
    assert "compilation_config" not in engine_args(enforce_eager=True)


def test_vllm_refuses_a_budget_that_cannot_hold_the_model():
    with pytest.raises(LLMError) as err:
        engine_args(budget_gb=14.0)
    message = str(err.value)
    assert "needs about 16.5 GB" in message and "--neuron.llm_max_allowed_memory_in_gb" in message
    assert "weights 14.5 GB + KV cache for 2048 tokens 0.3 GB" in message
    with pytest.raises(LLMError, match="exceeds the 85.5 GB"):
        engine_args(budget_gb=100.0)
    # fp8 fits where fp16 does not; two GPUs make 10 GB enough.
    assert engine_args(budget_gb=14.0, quantization="fp8")["quantization"] == "fp8"
    two = engine_args(budget_gb=10.0, gpus=2, local_gpu_count=2, engine_in_process=False)
    assert two["tensor_parallel_size"] == 2


def test_compile_caches_live_under_the_state_folder(tmp_path):
    from prompting.llms.vllm import keep_compile_caches

    env = {"TRITON_CACHE_DIR": "/mine"}
    caches = keep_compile_caches(str(tmp_path), env)
    assert caches["VLLM_CACHE_ROOT"] == str(tmp_path / "cache" / "vllm")
    assert caches["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "cache" / "inductor")
    assert caches["TRITON_CACHE_DIR"] == "/mine"  # the operator's own choice wins


def test_vllm_executor_and_passthrough():
    args = engine_args(
        gpus=4, local_gpu_count=2, quantization="awq", enforce_eager=True, dtype="bfloat16", seed=5
    )
    assert args["distributed_executor_backend"] == "ray"
    assert args["quantization"] == "awq" and args["enforce_eager"] and args["seed"] == 5
    assert engine_args(executor="mp")["distributed_executor_backend"] == "mp"


def test_vllm_device_selection_honours_visible_devices():
    assert narrow_visible_devices("auto", 1, "3,1") is None
    assert narrow_visible_devices("cuda:1", 1, "3,1") == "1"
    assert narrow_visible_devices("cuda:1", 2, None) == "1,2"
    assert narrow_visible_devices("cuda:1", 1, "GPU-aaa,GPU-bbb") == "GPU-bbb"
    with pytest.raises(Exception, match="shows only 2"):
        narrow_visible_devices("cuda:2", 1, "GPU-aaa,GPU-bbb")


def test_vllm_argument_names_exist_in_the_installed_vllm():
    vllm = pytest.importorskip("vllm")
    import inspect

    from vllm.engine.arg_utils import EngineArgs

    names = set(inspect.signature(vllm.LLM.__init__).parameters) | set(
        inspect.signature(EngineArgs).parameters
    )
    assert set(VLLM_ARGUMENTS) <= names
    # the switch that keeps the engine core in the validator's process still exists
    from vllm import envs

    from prompting.llms.vllm import ENGINE_PROCESS_VARIABLE

    assert ENGINE_PROCESS_VARIABLE in envs.environment_variables


class ChatServer:
    """A real OpenAI-compatible chat completions endpoint on 127.0.0.1.

    With ``scorer`` (an HF backend) it also answers as ``vllm serve`` does for
    ``score``: ``POST /tokenize`` (chat messages through the template, or a plain
    prompt) and ``POST /v1/completions`` with ``echo`` + ``logprobs``, the numbers
    computed by that model; ``prompt_logprobs=False`` leaves the logprobs out (a server
    that does not echo them), ``tokenize=False`` has no /tokenize (404)."""

    def __init__(
        self,
        fail_first: int = 0,
        scorer=None,
        prompt_logprobs: bool = True,
        tokenize: bool = True,
    ):
        self.calls, self.fail_first = [], fail_first
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def answer(self, status: int, reply: dict | None = None):
                data = json.dumps(reply or {}).encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.calls.append((self.path, self.headers.get("Authorization"), body))
                if len(outer.calls) <= outer.fail_first:
                    self.send_response(503)
                    self.end_headers()
                    return
                if self.path == "/tokenize" and scorer is not None and tokenize:
                    return self.answer(200, outer.tokenize(scorer, body))
                if self.path == "/v1/completions" and scorer is not None:
                    return self.answer(200, outer.complete(scorer, body, prompt_logprobs))
                if self.path != "/v1/chat/completions":
                    return self.answer(404, {"detail": "Not Found"})
                reply = {
                    "choices": [
                        {
                            "message": {"content": " echo: " + body["messages"][-1]["content"]},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {"prompt_tokens": 7, "completion_tokens": 3},
                }
                self.answer(200, reply)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @staticmethod
    def tokenize(scorer, body: dict) -> dict:
        """vLLM's /tokenize: chat messages rendered with the template, or a prompt."""
        tok = scorer.tokenizer
        if "messages" in body:
            text = tok.apply_chat_template(
                body["messages"],
                tokenize=False,
                add_generation_prompt=body["add_generation_prompt"],
            )
            special = body.get("add_special_tokens", False)
        else:
            text, special = body["prompt"], body.get("add_special_tokens", True)
        tokens = tok(text, add_special_tokens=special).input_ids
        return {"tokens": tokens, "count": len(tokens), "max_model_len": scorer.context}

    @staticmethod
    def complete(scorer, body: dict, prompt_logprobs: bool) -> dict:
        """vLLM's /v1/completions with echo: the prompt's tokens and their logprobs (the
        first None), then one greedy token, from one plain forward of ``scorer``."""
        import torch

        ids = body["prompt"]
        with torch.inference_mode():
            logits = scorer.model(torch.tensor([ids])).logits[0].float().log_softmax(-1)
        token_logprobs = [None] + [logits[k - 1, ids[k]].item() for k in range(1, len(ids))]
        new = int(logits[-1].argmax())
        token_logprobs.append(logits[-1, new].item())
        k = int(body.get("logprobs") or 0)
        top = (
            [None]
            + [  # vLLM's shape: the top-k of each position, by token text
                {scorer.tokenizer.decode([int(t)]): v.item() for v, t in zip(*row.topk(k))}
                for row in logits[:-1]
            ]
        )
        logprobs = {
            "tokens": [scorer.tokenizer.decode([t]) for t in ids + [new]],
            "token_logprobs": token_logprobs,
            "top_logprobs": top + [None] if k else None,
            "text_offset": None,
        }
        choice = {"text": "", "finish_reason": "length", "logprobs": None}
        if prompt_logprobs and body.get("echo") and body.get("logprobs") is not None:
            choice["logprobs"] = logprobs
        return {"choices": [choice], "usage": {"prompt_tokens": len(ids), "completion_tokens": 1}}

    def close(self):
        self.httpd.shutdown()


def test_openai_backend_against_a_local_server():
    from prompting.llms.openai import OpenAILLM

    server = ChatServer(fail_first=1)
    llm = OpenAILLM("zephyr", server.url, api_key="k", timeout=5, retries=2, backoff=0.01)
    try:
        out = llm.generate(
            ["one", [{"role": "user", "content": "two"}]], Sampling(max_tokens=5, seed=3)
        )
        assert [g.text for g in out] == ["echo: one", "echo: two"]
        assert out[0].tokens == 3 and out[0].prompt_tokens == 7
        path, auth, body = server.calls[-1]
        assert path == "/v1/chat/completions" and auth == "Bearer k"
        assert body["max_tokens"] == 5 and body["seed"] == 3 and body["model"] == "zephyr"
        assert len(server.calls) == 3  # one 503 retried
    finally:
        llm.close()
        server.close()


def test_openai_backend_gives_up_with_a_clear_error():
    from prompting.llms.openai import OpenAILLM

    server = ChatServer(fail_first=100)
    llm = OpenAILLM("m", server.url, timeout=5, retries=1, backoff=0.01)
    try:
        with pytest.raises(LLMError, match="failed after 2 attempts: HTTP 503"):
            llm.generate(["x"])
    finally:
        llm.close()
        server.close()
    dead = OpenAILLM("m", "http://127.0.0.1:9/v1", timeout=1, retries=0)
    with pytest.raises(LLMError, match="ConnectError"):
        dead.generate(["x"])
    dead.close()


def test_serve_flags_carry_the_engine_arguments():
    """scripts/vllm_serve.py starts `vllm serve` with what the in-process backend uses."""
    from prompting.llms.vllm import serve_flags

    flags = serve_flags(engine_args(budget_gb=17.1, engine_in_process=False))  # vllm serve
    assert flags[0] == "/m" and "--tokenizer" not in flags and "--enforce-eager" not in flags
    assert flags[flags.index("--max-num-seqs") + 1] == "8"
    assert flags[flags.index("--max-num-batched-tokens") + 1] == "1024"
    assert json.loads(flags[flags.index("--compilation-config") + 1]) == {
        "cudagraph_capture_sizes": [1, 2, 4, 8, 16]
    }
    assert "--enforce-eager" in serve_flags(engine_args(enforce_eager=True))


def test_engine_flags_are_one_list_for_the_backend_and_the_server():
    """EngineFlags is made from --neuron.* once; build_engine_args takes it whole or as
    keywords (scripts/vllm_serve.py) to the same arguments, and a refused budget names
    the fp8 figure at the engine's start as check_env does."""
    from dataclasses import asdict, fields

    from prompting.config import default_config, flag_default
    from prompting.llms.vllm import EngineFlags, engine_flags

    flags = EngineFlags.from_config(default_config())
    assert flags.budget_gb == flag_default("neuron.llm_max_allowed_memory_in_gb")
    assert flags.executor == flag_default("neuron.distributed_executor")
    assert engine_flags(default_config()) == asdict(flags)
    assert {f.name for f in fields(EngineFlags)} == set(asdict(flags))
    base = dict(model_path="/m", config_json=ZEPHYR, device_total_bytes=H100, local_gpu_count=1)
    assert build_engine_args(**base, flags=flags) == build_engine_args(**base, **asdict(flags))
    # vLLM's engine core in a process of its own (the default here): fp8 needs 10.1 GB
    with pytest.raises(LLMError, match=r"or use --neuron.quantization fp8 \(needs 10\.1\)"):
        build_engine_args(**base, budget_gb=14.0)


def test_prompt_logprobs_are_read_after_a_prefix_cache_hit():
    """vLLM lists the positions it computed: with a cache hit of C tokens, [None] then
    positions C+1 onwards (the 2026-12-07 H100 failure: a 600-token prompt, 496 cached,
    104 entries, read as if they began at position 0)."""
    from prompting.llms.vllm import prompt_logprob_at

    full = [None] + [{"pos": p} for p in range(1, 600)]  # no hit: every position
    assert prompt_logprob_at(full, 600, 500) == {"pos": 500}
    assert prompt_logprob_at(full, 600, 0) is None
    hit = [None] + [{"pos": p} for p in range(497, 600)]  # 496 cached: 104 entries
    assert len(hit) == 104
    assert prompt_logprob_at(hit, 600, 500) == {"pos": 500}
    assert prompt_logprob_at(hit, 600, 599) == {"pos": 599}
    assert prompt_logprob_at(hit, 600, 496) is None  # predicted from a cached state
    assert prompt_logprob_at(hit, 600, 10) is None
