import multiprocessing
import time

import pytest

from prompting.chain import ChainError, normalize, retry_after_blocks
from prompting.chain.bittensor import BittensorChain, neuron_from_sdk, result_from_sdk
from prompting.chain.local import LocalChain
from tests.fake_subtensor import FakeSubtensor, sdk_neuron


def _register_many(path, start):
    chain = LocalChain(path)
    for i in range(start, start + 25):
        chain.register(f"hk{i}", f"ck{i}", endpoint=f"127.0.0.1:{i}")


def test_local_chain_registration_weights_and_blocks(tmp_path):
    path = str(tmp_path / "chain.json")
    chain = LocalChain(path, hotkey="val", block_seconds=0.01)
    assert chain.register("val", "cv", stake=5000, validator_permit=True) == 0
    assert chain.register("m1", "c1", endpoint="127.0.0.1:1") == 1
    assert chain.register("m1", "c1", endpoint="127.0.0.1:2") == 1  # update, same uid
    graph = LocalChain(path).metagraph()  # another handle reads the same file
    assert [(n.uid, n.hotkey, n.endpoint) for n in graph] == [
        (0, "val", None),
        (1, "m1", "127.0.0.1:2"),
    ]
    result = chain.set_weights([0, 1], [0.0, 3.0])
    assert result.success and chain.weights()[-1]["uids"] == [1]
    assert chain.weights()[-1]["weights"] == [1.0]
    assert not chain.set_weights([7], [1.0]).success
    assert not LocalChain(path, hotkey="m1").set_weights([1], [1.0]).success  # no permit
    b1 = chain.block()
    import time

    time.sleep(0.05)
    assert chain.block() > b1
    chain.register("m1-new", "c9", uid=1)  # hotkey replaced at uid 1
    assert chain.metagraph()[1].hotkey == "m1-new"


def test_local_chain_is_safe_for_concurrent_writers(tmp_path):
    path = str(tmp_path / "chain.json")
    LocalChain(path)
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_register_many, args=(path, s)) for s in (0, 100, 200)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    graph = LocalChain(path).metagraph()
    assert len(graph) == 75 and [n.uid for n in graph] == list(range(75))
    assert len({n.hotkey for n in graph}) == 75


def test_local_chain_corrupt_file_is_a_clear_error(tmp_path):
    path = tmp_path / "chain.json"
    path.write_text("{not json")
    with pytest.raises(ChainError, match="corrupt"):
        LocalChain(str(path))


def test_normalize():
    assert normalize([1, 2, 3], [1.0, 0.0, 3.0]) == ([1, 3], [0.25, 0.75])
    assert normalize([1], [0.0]) == ([], [])


# --- the bittensor adapter, on the SDK's own types ------------------------------------


class RecordedClient:
    """Stands in for bittensor.SyncClient (no chain here); returns recorded SDK objects."""

    def __init__(self, network, fail=None, graph=None, hyperparameters=None):
        self.network, self.fail, self.graph, self.executed = network, fail, graph, []
        self.block = 4242
        self.hyperparameters = hyperparameters or {
            "weights_version": 0,
            "weights_rate_limit": 100,
            "commit_reveal_weights_enabled": False,
        }
        outer = self

        class Subnets:
            def metagraph(self, netuid):
                if outer.fail:
                    raise outer.fail
                return outer.graph

            def subnet_hyperparameters(self, netuid):
                return outer.hyperparameters

        self.subnets = Subnets()

    def block_time(self):
        return 12.0

    def execute(self, intent, wallet):
        from bittensor.result import ExtrinsicResult

        self.executed.append(intent)
        return (
            ExtrinsicResult(success=False, message="rate limited", error=None)
            if intent.netuid == 99
            else ExtrinsicResult(True, "ok")
        )


def test_bittensor_metagraph_mapping():
    from types import SimpleNamespace

    graph = SimpleNamespace(
        neurons=[sdk_neuron(0, permit=True, stake_tao=5000), sdk_neuron(1, axon=None)]
    )
    chain = BittensorChain(
        "test", 1, wallet=None, client_factory=lambda n: RecordedClient(n, graph=graph)
    )
    neurons = chain.metagraph()
    assert neurons[0].validator_permit and neurons[0].stake == pytest.approx(5000)
    assert neurons[1].endpoint is None and neurons[1].stake == pytest.approx(12.5)
    assert chain.block() == 4242
    assert neuron_from_sdk(sdk_neuron(3)).hotkey == "hk3"


def test_bittensor_set_weights_builds_the_intent():
    client = RecordedClient("test")
    chain = BittensorChain("test", 7, wallet="W", client_factory=lambda n: client)
    result = chain.set_weights([3, 5, 8], [1.0, 3.0, 0.0])
    assert result.success
    intent = client.executed[-1]
    assert type(intent).__name__ == "SetWeights" and intent.netuid == 7
    assert list(intent.uids) == [3, 5] and list(intent.weights) == pytest.approx([0.25, 0.75])
    bad = BittensorChain("test", 99, wallet="W", client_factory=lambda n: client)
    assert not bad.set_weights([1], [1.0]).success


def test_bittensor_errors_and_timeouts_become_chain_errors():
    import time

    chain = BittensorChain(
        "test", 1, None, client_factory=lambda n: RecordedClient(n, fail=ConnectionError("refused"))
    )
    with pytest.raises(ChainError, match="metagraph on test failed: ConnectionError"):
        chain.metagraph()

    def slow_factory(network):
        time.sleep(1.0)
        return RecordedClient(network)

    slow = BittensorChain("test", 1, None, timeout=0.2, client_factory=slow_factory)
    with pytest.raises(ChainError, match="timed out after 0.2 s"):
        slow.block()


def test_result_mapping():
    from bittensor.result import ExtrinsicResult

    assert result_from_sdk(ExtrinsicResult(True, "")).message == "ok"
    assert not result_from_sdk(ExtrinsicResult(False, "nope")).success


def test_set_weights_through_the_sdk_sends_weights_version_and_names_the_path(wallets):
    """The SDK's own SetWeights build against a node in memory: the subnet's
    weights_version goes out as version_key (read from storage when the runtime's map
    lacks the name), and the path named is the one the SDK took."""
    v = wallets["validator"]
    node = FakeSubtensor(
        7,
        [(v.hotkey.ss58_address, True, None), ("hk1", False, "1.2.3.4:1")],
        WeightsVersionKey=2013,
    )
    node.hidden.add("weights_version")
    chain = BittensorChain("test", 7, wallet=v, client_factory=lambda n: node)
    result = chain.set_weights([1], [1.0])
    assert result.success and result.path == "set_weights", result
    assert node.executed[-1].version_key == 2013
    (block, call, params) = node.applied[-1]
    assert call == "set_mechanism_weights" and params["version_key"] == 2013
    assert params["dests"] == [1] and params["weights"] == [65535]
    node.storage.update(CommitRevealWeightsEnabled=True, LastUpdate=[0, 0])
    result = chain.set_weights([1], [1.0])
    assert result.path == "commit_reveal" and "drand round" in result.message
    assert node.applied[-1][1] == "commit_timelocked_mechanism_weights"
    # an override older than the subnet's: sent as given, and the node refuses it
    node.storage.update(CommitRevealWeightsEnabled=False, LastUpdate=[0, 0])
    pinned = BittensorChain("test", 7, wallet=v, client_factory=lambda n: node, version_key=7)
    refused = pinned.set_weights([1], [1.0])
    assert node.executed[-1].version_key == 7
    assert (
        not refused.success
        and refused.path == ""
        and "IncorrectWeightVersionKey" in (refused.message)
    )


def test_the_sdks_rate_limit_refusal_names_the_blocks_left(wallets):
    v = wallets["validator"]
    node = FakeSubtensor(1, [(v.hotkey.ss58_address, True, None), ("hk1", False, None)])
    node.storage["LastUpdate"] = [node.now() - 40, 0]  # set 40 of 100 blocks ago
    chain = BittensorChain("test", 1, wallet=v, client_factory=lambda n: node)
    with pytest.raises(ChainError) as refused:
        chain.set_weights([1], [1.0])
    assert retry_after_blocks(str(refused.value)) == 60 and not node.applied


def test_rate_limit_refusals_name_the_blocks_to_wait():
    assert retry_after_blocks("weights were set 2 blocks ago; retry in ~3 blocks") == 3
    assert retry_after_blocks("connection reset") is None


def test_local_chain_keeps_its_weights_rate_limit(tmp_path):
    chain = LocalChain(str(tmp_path / "c.json"), hotkey="v", block_seconds=0.05)
    chain.register("v", "c", validator_permit=True)
    chain.register("m", "c")
    chain.set_weights_rate_limit(4)
    assert chain.set_weights([1], [1.0]).success
    refused = chain.set_weights([1], [1.0])
    assert not refused.success and retry_after_blocks(refused.message) in (3, 4)
    time.sleep(0.25)
    assert chain.set_weights([1], [1.0]).success


class Wallet:
    class hotkey:  # noqa: N801 - the SDK's attribute shape
        ss58_address = "hk1"


def test_miner_publishes_its_endpoint_once():
    from types import SimpleNamespace

    graph = SimpleNamespace(neurons=[sdk_neuron(0), sdk_neuron(1, axon=None)])
    client = RecordedClient("test", graph=graph)
    chain = BittensorChain("test", 3, wallet=Wallet, client_factory=lambda n: client)
    assert chain.serve("5.6.7.8", 8091) is True
    intent = client.executed[-1]
    assert type(intent).__name__ == "ServeAxon"
    assert (intent.netuid, intent.ip, intent.port) == (3, "5.6.7.8", 8091)
    graph.neurons[1] = sdk_neuron(1, axon="5.6.7.8:8091")  # the chain shows it now
    assert chain.serve("5.6.7.8", 8091) is False and len(client.executed) == 1
    graph.neurons.pop()
    with pytest.raises(ChainError, match="not registered"):
        chain.serve("5.6.7.8", 8091)


def test_the_miner_publishes_its_external_address_or_its_own():
    import importlib.util
    import os

    from prompting.config import parse_config
    from tests.conftest import REPO

    spec = importlib.util.spec_from_file_location("miner", os.path.join(REPO, "neurons/miner.py"))
    miner = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(miner)

    class Chain:
        served = []

        def serve(self, ip, port):
            self.served.append((ip, port))
            return True

    chain = Chain()
    args = ["--chain.network", "finney", "--miner.external_ip", "203.0.113.5"]
    miner.publish_endpoint(chain, parse_config("miner", args), 8091)
    miner.publish_endpoint(
        chain, parse_config("miner", [*args, "--miner.external_port", "443"]), 8091
    )
    assert chain.served == [("203.0.113.5", 8091), ("203.0.113.5", 443)]


def test_an_endpoint_on_chain_is_not_re_published_ipv6_too(wallets):
    """ServeAxon through the SDK's build: published once, then recognised as the
    metagraph prints it (``[v6]:port``), so a restart sends nothing."""
    m = wallets["miner"]
    node = FakeSubtensor(2, [("hk0", True, None), (m.hotkey.ss58_address, False, None)])
    chain = BittensorChain("test", 2, wallet=m, client_factory=lambda n: node)
    assert chain.serve("2001:db8::7", 8091) is True
    assert node.applied[-1][2]["ip_type"] == 6 and node.neurons[1][2] == "[2001:db8::7]:8091"
    assert chain.serve("2001:db8::7", 8091) is False
    assert chain.serve("203.0.113.5", 8091) is True and node.neurons[1][2] == "203.0.113.5:8091"
    assert chain.serve("203.0.113.5", 8091) is False
    assert [c for _, c, _ in node.applied] == ["serve_axon", "serve_axon"]


def test_a_miner_address_that_is_no_ip_is_refused_at_the_flag():
    import subprocess
    import sys

    from tests.conftest import REPO

    proc = subprocess.run(
        [sys.executable, "neurons/miner.py", "--miner.external_ip", "my.host.example"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().endswith(
        "--miner.external_ip: expected an IPv4 or IPv6 address (got 'my.host.example')"
    )
