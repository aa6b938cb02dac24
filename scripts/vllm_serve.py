"""Start ``vllm serve`` (an OpenAI-compatible server) sized by the validator's own budget.

    python scripts/vllm_serve.py --neuron.model_id HuggingFaceH4/zephyr-7b-beta \\
        --neuron.llm_max_allowed_memory_in_gb 24 [--neuron.gpus 2] -- --port 8000
    python scripts/vllm_serve.py ... --print          # only print the command

The engine arguments are the ones the in-process ``vllm`` backend would use for the same
flags (``prompting.llms.vllm.build_engine_args``): a budget that cannot work is refused
here, before the server loads. Everything after ``--`` goes to vLLM unchanged (port,
host, API key, served model name). Validators then run with
``--neuron.llm_backend openai --neuron.openai_base_url http://HOST:PORT/v1``.
"""

from __future__ import annotations

import os
import shlex
import sys


def main(argv: list[str] | None = None) -> int:
    from prompting.config import parse_config
    from prompting.llms import memory
    from prompting.llms.base import LLMError
    from prompting.llms.embedded import resolve_model
    from prompting.llms.vllm import (
        build_engine_args,
        engine_flags,
        keep_compile_caches,
        serve_flags,
    )

    argv = list(sys.argv[1:] if argv is None else argv)
    passthrough = argv[argv.index("--") + 1 :] if "--" in argv else []
    ours = argv[: argv.index("--")] if "--" in argv else argv
    only_print = "--print" in ours
    config = parse_config("validator", [a for a in ours if a != "--print"], prog="vllm_serve.py")
    n = config.neuron
    import torch

    if not torch.cuda.is_available():
        print("vllm_serve.py: error: no CUDA GPU visible", file=sys.stderr)
        return 1
    _, total = torch.cuda.mem_get_info(0)
    path = resolve_model(n.model_id, n.full_path)
    try:
        args = build_engine_args(
            model_path=path,
            config_json=memory.load_model_config(path),
            device_total_bytes=total,
            local_gpu_count=torch.cuda.device_count(),
            **engine_flags(config),
        )
    except LLMError as exc:
        print(f"vllm_serve.py: error: {exc}", file=sys.stderr)
        return 2
    keep_compile_caches(n.full_path)
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model"]
    cmd += serve_flags(args) + passthrough
    print(shlex.join(cmd), flush=True)
    if only_print:
        return 0
    os.execv(sys.executable, cmd)  # the server replaces this process (and its CUDA context)


if __name__ == "__main__":
    sys.exit(main())
