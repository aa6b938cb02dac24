"""btauth/1 signing and verification (bittensor.http_auth), and who may call a miner.

Wallet helpers live here too: the local subnet and the tests make real sr25519
wallets in a folder of their own, with no password.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from prompting.chain.base import Neuron

RESPONSE_METHOD = "RESPONSE"  # signs a miner's answer; never valid as a request
# The one wire form of each btauth/1 header value (docs/protocol.md, 2.2). The SDK's
# verify takes more (a nonce with leading zeros or a sign, whose signed line is then
# its integer; a signature without 0x or in upper case; a crypto type by number), and
# an implementation in another language that signs or checks the header's text as
# sent would disagree with it on each of them; so both sides here refuse them.
HEADER_FORMS = {
    "x-bittensor-nonce": re.compile(r"[1-9][0-9]{0,19}"),
    "x-bittensor-signature": re.compile(r"0x[0-9a-f]{128}"),
    "x-bittensor-crypto": re.compile(r"sr25519|ed25519"),
}


def check_form(headers: Mapping[str, str]) -> None:
    """Raise MalformedAuth for a btauth/1 header present in another form than the one
    the protocol names (missing headers are the SDK's verify's to refuse)."""
    from bittensor.http_auth import MalformedAuth

    for key, value in headers.items():
        form = HEADER_FORMS.get(key.lower())
        if form is not None and not form.fullmatch(value):
            raise MalformedAuth(f"{key} is not in its one form ({form.pattern})")


def sign(wallet, path: str, body: bytes, receiver_ss58: str) -> dict[str, str]:
    from bittensor import http_auth

    return http_auth.sign(wallet, method="POST", path=path, body=body, receiver_ss58=receiver_ss58)


def verify(headers, body: bytes, path: str, self_hotkey: str, nonce_store=None):
    """Return the caller's hotkey; raise bittensor.http_auth.AuthError subclasses.
    ``path``: the request target as received, its query string included."""
    from bittensor import http_auth

    check_form(headers)
    caller = http_auth.verify(
        headers,
        body,
        method="POST",
        path=path,
        self_hotkey_ss58=self_hotkey,
        nonce_store=nonce_store,
    )
    return caller.hotkey_ss58


def response_target(path: str, request_nonce: str) -> str:
    """What a response signature covers besides its body: the request it answers."""
    return f"{path}?request_nonce={request_nonce}"


def sign_response(
    signer, path: str, body: bytes, caller_ss58: str, request_nonce: str
) -> dict[str, str]:
    """Headers proving the miner's hotkey wrote ``body`` for this caller and request."""
    from bittensor import http_auth

    return http_auth.sign(
        signer,
        method=RESPONSE_METHOD,
        path=response_target(path, request_nonce),
        body=body,
        receiver_ss58=caller_ss58,
    )


def verify_response(
    headers, body: bytes, path: str, self_hotkey: str, request_nonce: str, nonce_store
) -> str:
    """The hotkey that signed a miner's response to our request; raises AuthError."""
    from bittensor import http_auth

    check_form(headers)
    signer = http_auth.verify(
        headers,
        body,
        method=RESPONSE_METHOD,
        path=response_target(path, request_nonce),
        self_hotkey_ss58=self_hotkey,
        nonce_store=nonce_store,
    )
    return signer.hotkey_ss58


def request_nonce(headers) -> str:
    from bittensor.http_auth import HEADER_NONCE

    return next((v for k, v in headers.items() if k.lower() == HEADER_NONCE.lower()), "")


def load_or_create_wallet(name: str, hotkey: str, path: str):
    """A bittensor Wallet; creates unencrypted keys if the wallet does not exist yet."""
    import bittensor as bt

    wallet = bt.Wallet(name=name, hotkey=hotkey, path=path)
    if not wallet.hotkey_file.exists_on_device():
        wallet.create_new_coldkey(use_password=False, overwrite=False, suppress=True)
        wallet.create_new_hotkey(use_password=False, overwrite=False, suppress=True)
    return wallet


def open_wallet(name: str, hotkey: str, path: str):
    """An existing wallet; a clear error if its hotkey is missing or unreadable."""
    import bittensor as bt

    wallet = bt.Wallet(name=name, hotkey=hotkey, path=path)
    try:
        wallet.hotkey  # noqa: B018 - reads and decodes the key file
    except Exception as exc:  # noqa: BLE001 - keyfile errors vary by cause
        raise SystemExit(
            f"cannot read hotkey {name}/{hotkey} under {path}: {exc}. Create it "
            f"with: btcli wallet new-hotkey --wallet.name {name} "
            f"--wallet.hotkey {hotkey}"
        ) from None
    return wallet


@dataclass
class CallerPolicy:
    """A caller is served if listed in ``allow``, or the metagraph shows it with a
    validator permit or at least ``min_stake``."""

    min_stake: float
    allow: frozenset[str] = frozenset()


class Authorizer:
    """Caches the metagraph (refreshed every ``ttl`` seconds) to decide who is served."""

    def __init__(
        self,
        policy: CallerPolicy,
        metagraph: Callable[[], Iterable[Neuron]] | None,
        ttl: float = 60.0,
    ):
        self.policy = policy
        self._metagraph = metagraph
        self.ttl = ttl
        self._by_hotkey: dict[str, Neuron] = {}
        self._fetched = float("-inf")
        self._lock = threading.Lock()

    def _refresh(self) -> None:
        if self._metagraph is None or time.monotonic() - self._fetched < self.ttl:
            return
        with self._lock:
            if time.monotonic() - self._fetched < self.ttl:
                return
            try:
                self._by_hotkey = {n.hotkey: n for n in self._metagraph()}
            except Exception:  # noqa: BLE001 - keep the last good view if the chain fails
                pass
            self._fetched = time.monotonic()

    def reason_to_refuse(self, hotkey: str) -> str | None:
        if hotkey in self.policy.allow:
            return None
        self._refresh()
        neuron = self._by_hotkey.get(hotkey)
        if neuron is None:
            return "caller is not registered on this subnet"
        if neuron.validator_permit or neuron.stake >= self.policy.min_stake:
            return None
        return f"caller has no validator permit and stake below {self.policy.min_stake:g}"
