import asyncio
import importlib.util
import logging
import subprocess
import sys

import pytest

from prompting import compat
from tests.conftest import REPO


def test_uvloop_policy_is_detected_and_replaced(caplog):
    uvloop = pytest.importorskip("uvloop")
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    try:
        loop = asyncio.new_event_loop()
        assert type(loop).__module__.startswith("uvloop")  # what vLLM's threads would get
        loop.close()
        with caplog.at_level(logging.WARNING):
            assert compat.guard_event_loop_policy() is True
        assert not compat.event_loop_policy_is_uvloop()
        loop = asyncio.new_event_loop()
        assert not type(loop).__module__.startswith("uvloop")
        loop.close()
        assert [r for r in caplog.records if "uvloop" in r.getMessage()]
        assert compat.guard_event_loop_policy() is False  # idempotent, silent
    finally:
        asyncio.set_event_loop_policy(None)


def test_angle_emb_fails_to_import_without_the_shim():
    """angle-emb imports bitsandbytes/datasets at module level; we install neither."""
    if importlib.util.find_spec("bitsandbytes") or importlib.util.find_spec("datasets"):
        pytest.skip("training-only modules are installed here; nothing to prevent")
    proc = subprocess.run(
        [sys.executable, "-c", "import angle_emb"], cwd=REPO, capture_output=True, text=True
    )
    assert proc.returncode != 0 and "No module named" in proc.stderr


def test_angle_emb_imports_through_the_shim_and_leaves_no_stand_ins():
    code = (
        "import sys; from prompting.compat import import_angle; A = import_angle();"
        "print(A.__name__, 'bitsandbytes' in sys.modules, 'datasets' in sys.modules)"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert proc.stdout.splitlines()[-1].split() == ["AnglE", "False", "False"], proc.stderr[-2000:]


def test_transformers_without_angle_names_gives_the_fix(monkeypatch):
    # A transformers release that dropped a name angle-emb imports (simulated by asking
    # for one that no release has): our message, not a traceback inside angle_emb.
    monkeypatch.setattr(
        compat,
        "ANGLE_TRANSFORMERS_NAMES",
        (*compat.ANGLE_TRANSFORMERS_NAMES, "RemovedInTransformers6"),
    )
    monkeypatch.delitem(sys.modules, "angle_emb", raising=False)
    with pytest.raises(compat.CompatError, match="RemovedInTransformers6"):
        compat.import_angle()


def test_pydantic_1_is_refused(monkeypatch):
    import pydantic

    assert compat.check_pydantic().startswith("2.")
    monkeypatch.setattr(pydantic, "VERSION", "1.10.13")
    with pytest.raises(compat.CompatError, match="pydantic>=2.6"):
        compat.check_pydantic()


@pytest.mark.parametrize(
    "value,entries",
    [
        (None, None),
        ("", ()),
        ("0,2", ("0", "2")),
        ("1,foo,2", ("1",)),
        ("GPU-8c1f7a2e-aaaa,GPU-0001", ("GPU-8c1f7a2e-aaaa", "GPU-0001")),
        ("MIG-1234", ("MIG-1234",)),
        (" 3 , 1", ("3", "1")),
    ],
)
def test_visible_devices_parsing(value, entries):
    assert compat.parse_visible_devices(value).entries == entries


def test_visible_devices_errors_and_matching():
    with pytest.raises(compat.CompatError, match="twice"):
        compat.parse_visible_devices("0,0")
    visible = compat.parse_visible_devices("GPU-bbb,GPU-aaa")
    assert visible.physical(1) == "GPU-aaa"
    with pytest.raises(compat.CompatError, match="shows only 2"):
        visible.physical(2)
    gpus = [{"index": 0, "uuid": "GPU-aaa111"}, {"index": 1, "uuid": "GPU-bbb222"}]
    assert compat.match_device("GPU-bbb", gpus)["index"] == 1
    assert compat.match_device("1", gpus)["uuid"] == "GPU-bbb222"
    assert compat.match_device("GPU-ccc", gpus) is None


def test_release_freed_memory_returns_pages_to_the_os():
    import ctypes

    import psutil

    if not compat.release_freed_memory():
        pytest.skip("not glibc")
    libc = ctypes.CDLL("libc.so.6")
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    blocks = [libc.malloc(4096) for _ in range(50_000)]  # 200 MB of small blocks
    for b in blocks[:-1]:  # the last one pins the heap top: free() alone cannot shrink it
        libc.free(b)
    before = psutil.Process().memory_info().rss
    assert compat.release_freed_memory()
    after = psutil.Process().memory_info().rss
    libc.free(blocks[-1])
    assert before - after > 100e6


def test_a_model_loads_whole_while_another_thread_is_loading_one(tmp_path):
    """transformers 5 makes ``tie_weights`` a no-op for every thread while it builds a
    model; SmolLM2 (tied lm_head) loaded in that window kept its lm_head on the meta
    device and the validator died at start (CI, 2026-12-03; without the lock, a load in
    this window gives an untied lm_head on meta). The other thread does what the
    embedder's ``from_pretrained`` does, under the lock, for long enough to be certain."""
    import threading

    from transformers.initialization import no_tie_weights

    from prompting.config import DEFAULT_MODEL
    from prompting.llms.embedded import resolve_model
    from prompting.llms.hf import HFLLM

    compat.import_transformers("AutoModelForCausalLM", "AutoTokenizer")
    resolve_model(DEFAULT_MODEL, tmp_path)  # converted before, not inside, the window
    inside = threading.Event()

    def other_load():
        with compat.loading_models(), no_tie_weights():
            inside.set()
            threading.Event().wait(2.0)

    thread = threading.Thread(target=other_load)
    thread.start()
    inside.wait()
    llm = HFLLM(DEFAULT_MODEL, device="cpu", dtype="float32", state_dir=str(tmp_path))
    thread.join()
    model = llm.model
    assert model.lm_head.weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()
    assert not [n for n, p in model.named_parameters() if p.device.type == "meta"]
    llm.close()


# A second thread runs a plain ``import transformers`` (as a plug-in or a benchmark
# might); the check starts once that import is under way, so every run lands in the
# window where the import system hands out the half-built module.
CONCURRENT_IMPORT = """
import sys, threading, time
from prompting import compat

def plain_import():
    import transformers  # noqa: F401

thread = threading.Thread(target=plain_import)
thread.start()
while "transformers" not in sys.modules:
    time.sleep(0.001)
assert thread.is_alive(), "the other import finished before the check: no race tested"
{call}
thread.join()
print("whole")
"""
CONCURRENT_CALLS = {
    "import_angle": "assert compat.import_angle().__name__ == 'AnglE'",
    "import_transformers": "compat.import_transformers('AutoModel', 'AutoTokenizer')",
}


@pytest.mark.parametrize("run", range(3))
@pytest.mark.parametrize("entry", sorted(CONCURRENT_CALLS))
def test_the_import_check_waits_for_another_threads_plain_import(entry: str, run: int):
    """Before: "transformers 5.24.0 lacks AutoModel, AutoModelForCausalLM, ..." (5 of 5
    runs) from a check that read the module object a half-finished import had bound.
    Each run is a fresh process: the race exists only at a process's first import."""
    code = CONCURRENT_IMPORT.format(call=CONCURRENT_CALLS[entry])
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0 and proc.stdout.split()[-1:] == ["whole"], proc.stderr[-2000:]
