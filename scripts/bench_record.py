"""What a CPU benchmark's result file starts with, and how it is written: once for
``benchmark_challenges.py`` and ``benchmark_rewards.py``, which had each their own copy
(issue 29), so that every such file says the same things the same way (when, the exact
command, which machine and how many torch threads, which model and backend) and is
written whole or not at all.

A sibling module, not part of ``prompting``: the scripts import it by name because
Python puts their folder first on ``sys.path`` when one runs.
"""

from __future__ import annotations

import datetime
import os
import platform
import sys

from prompting.atomic import write_json


def header(script: str, argv: list[str] | None, config) -> dict:
    """The first keys of a result: the date, the command that reproduces it (``argv``,
    or this process's arguments), the machine, the model and its backend."""
    import torch

    return {
        "date": datetime.date.today().isoformat(),
        "command": f"python scripts/{script} " + " ".join(argv or sys.argv[1:]),
        "device": f"{platform.machine()} {os.cpu_count()} cores, torch threads "
        f"{torch.get_num_threads()}",
        "model": config.neuron.model_id,
        "backend": config.neuron.llm_backend,
    }


def write(path: str, result: dict) -> None:
    """``result`` to ``path`` through the project's atomic writer (a run killed while it
    writes leaves the last whole file), indented for review in a diff."""
    write_json(path, result, indent=2)
    print("wrote", path)
