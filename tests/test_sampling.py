import random

from prompting.chain.base import Neuron
from prompting.telemetry import Telemetry
from prompting.validator import sampling, scoring
from prompting.validator.state import ValidatorState


def neurons():
    return [
        Neuron(0, "me", "c0", 9000.0, None, True),  # this validator
        Neuron(1, "v1", "c1", 5000.0, "10.0.0.1:1", True),  # big validator: skipped
        Neuron(2, "v2", "c2", 100.0, "10.0.0.2:1", True),  # small permit holder: a miner
        Neuron(3, "m3", "cA", 0.0, "10.0.0.3:1", False),
        Neuron(4, "m4", "cA", 0.0, "10.0.0.3:2", False),  # same coldkey and IP as uid 3
        Neuron(5, "m5", "cB", 0.0, "10.0.0.5:1", False),
    ]


def test_select_skips_self_and_validators_and_is_seeded():
    chosen = sampling.select(neurons(), 10, random.Random(0), "me", vpermit_tao_limit=4096)
    assert [n.uid for n in chosen] == [2, 3, 4, 5]
    a = sampling.select(neurons(), 2, random.Random(3), "me", 4096)
    b = sampling.select(neurons(), 2, random.Random(3), "me", 4096)
    assert a == b and len(a) == 2


def test_unique_coldkeys_and_ips():
    for flags in ({"unique_coldkeys": True}, {"unique_ips": True}):
        for seed in range(10):
            uids = {
                n.uid
                for n in sampling.select(neurons(), 10, random.Random(seed), "me", 4096, **flags)
            }
            assert len(uids & {3, 4}) == 1 and {2, 5} <= uids


def test_cooldown_skips_unreachable_for_a_while():
    now = [100.0]
    cool = sampling.Cooldown(60, clock=lambda: now[0])
    cool.record(3, "refused")
    cool.record(4, "timeout")  # slow, not unreachable
    cool.record(5, "unreachable")
    assert cool.cooling() == {3, 5}
    picked = sampling.select(neurons(), 10, random.Random(0), "me", 4096, cooling=cool.cooling())
    assert [n.uid for n in picked] == [2, 4]
    cool.record(5, "ok")
    now[0] += 61
    assert cool.cooling() == set()


def test_decay_of_unsampled_uids():
    st = ValidatorState(scores=[0.5, 0.5, 0.5], hotkeys=["a", "b", "c"])
    scoring.decay_unsampled(st, [1], 0.1)
    assert st.scores == [0.45, 0.5, 0.45]
    scoring.decay_unsampled(st, [], 0.0)
    assert st.scores == [0.45, 0.5, 0.45]


def test_events_are_bounded_on_disk(tmp_path):
    t = Telemetry(str(tmp_path), retention_mb=0.01)  # 10 kB: this file + one rotated half
    for step in range(200):
        t.log({"step": step, "payload": "x" * 200})
    t.close()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["events.jsonl", "events.jsonl.1"]
    assert sum(p.stat().st_size for p in tmp_path.iterdir()) <= 10_000 + 300
    last = (tmp_path / "events.jsonl").read_text().splitlines()[-1]
    assert '"step": 199' in last
