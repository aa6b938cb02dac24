"""btstream/1: a miner's answer streamed as JSON lines, every line signed.

The streamed answer to ``POST /v1/prompt/stream`` (docs/protocol.md, section 10) is a
sequence of lines, each one JSON object::

    {"i": 1, "type": "delta", "data": "The pass", "hash": "<hex>", "sig": "0x<hex>"}
    ...
    {"i": n, "type": "end", "data": "{\"answer\": 0.8}", "hash": "<hex>", "sig": "0x<hex>"}

``hash`` is a running sha256 over everything streamed so far, seeded with the request's
nonce and both hotkeys, and ``sig`` is the miner's hotkey signature of
``btstream/1\\n<hash>``. So each line proves, on its own and at once, that the miner
wrote it and everything before it for this validator and this request: a validator can
show a user each chunk as it arrives and still prove who wrote every one, and a
forged, reordered, dropped or replayed line fails at the line where it happens.
Signing a line costs about 0.04 ms and verifying it 0.05 ms (sr25519, this CPU).

``StreamReader`` is the one reader of a stream's bytes (the validator's client and
``scripts/miner_conformance.py`` both use it, so they judge every stream alike):
lines end with LF (a CR before it is JSON whitespace), blank lines are skipped and are
not lines, and the caps hold per line and for the whole stream.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

STREAM_CONTEXT = "btstream/1"
STREAM_HEADER = "X-Bittensor-Stream"  # value: btstream/1, on every streamed answer
STREAM_MEDIA_TYPE = "application/x-ndjson"
DELTA, END = "delta", "end"
MAX_DELTA_CHARS = 16_000  # code points of a delta's decoded text
# One line, newline excluded: room for any delta of MAX_DELTA_CHARS code points however
# it is escaped (12 bytes per code point at most: a \u-escaped surrogate pair) plus the
# line's other fields, so the line cap never refuses a delta the delta cap allows.
MAX_LINE_BYTES = 256 * 1024
CRYPTO_TYPES = {"sr25519": 1, "ed25519": 0}
SIGNATURE_FORM = re.compile(r"0x[0-9a-f]{128}")  # lower case, as in btauth/1 (3.1)


class StreamError(Exception):
    """A streamed answer broke the protocol. ``status`` is what the validator records:
    ``forged`` (a signature, hash or index that is not the miner's own running chain)
    or ``invalid`` (not a line of the protocol's shape)."""

    def __init__(self, status: str, reason: str):
        super().__init__(reason)
        self.status = status


def seed_hash(request_nonce: str, miner_ss58: str, validator_ss58: str) -> str:
    """h_0: binds the stream to one request of one validator to one miner."""
    text = f"{STREAM_CONTEXT}\n{request_nonce}\n{miner_ss58}\n{validator_ss58}"
    return hashlib.sha256(text.encode()).hexdigest()


def next_hash(previous: str, index: int, kind: str, data: str) -> str:
    """h_i = sha256(h_{i-1} "\\n" i "\\n" type "\\n" data), hex."""
    return hashlib.sha256(f"{previous}\n{index}\n{kind}\n{data}".encode()).hexdigest()


def signed_bytes(hash_hex: str) -> bytes:
    """What the miner's hotkey signs for a line: the context, so a line signature can
    never pass for a btauth/1 payload (which starts ``btauth/1``), and the hash."""
    return f"{STREAM_CONTEXT}\n{hash_hex}".encode()


def chunk_text(text: str, words_per_chunk: int = 4) -> list[str]:
    """A finished answer cut into deltas of a few words each (spaces kept), so a miner
    whose model returns whole texts still streams; joined they are ``text`` again."""
    if not text:
        return []
    pieces, current, count = [], [], 0
    for token in text.split(" "):
        current.append(token)
        count += 1
        if count >= words_per_chunk:
            pieces.append(" ".join(current) + " ")
            current, count = [], 0
    tail = " ".join(current)
    if tail:
        pieces.append(tail)
    elif pieces:
        pieces[-1] = pieces[-1][:-1]  # the trailing space was not in the text
    # keep every delta under the cap, whatever the words' lengths
    out: list[str] = []
    for piece in pieces:
        out.extend(piece[i : i + MAX_DELTA_CHARS] for i in range(0, len(piece), MAX_DELTA_CHARS))
    return out


class StreamSigner:
    """The miner's side: turns deltas and the final timings into signed lines."""

    def __init__(self, signer, request_nonce: str, validator_ss58: str):
        self.signer = signer
        self.index = 0
        self.hash = seed_hash(request_nonce, signer.ss58_address, validator_ss58)

    def line(self, kind: str, data: str) -> bytes:
        self.index += 1
        self.hash = next_hash(self.hash, self.index, kind, data)
        sig = "0x" + self.signer.sign(signed_bytes(self.hash)).hex()
        obj = {"i": self.index, "type": kind, "data": data, "hash": self.hash, "sig": sig}
        return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"

    def delta(self, text: str) -> bytes:
        return self.line(DELTA, text)

    def end(self, timings: dict[str, float]) -> bytes:
        return self.line(END, json.dumps(timings, separators=(",", ":")))


@dataclass
class Line:
    kind: str
    data: str


class StreamVerifier:
    """The validator's side: checks each line against the running hash and the queried
    hotkey's signature before anything of it is used."""

    def __init__(self, request_nonce: str, miner_ss58: str, validator_ss58: str, scheme: str):
        if scheme not in CRYPTO_TYPES:
            raise StreamError("forged", f"unknown signature scheme {scheme!r}")
        self.miner = miner_ss58
        self.crypto = CRYPTO_TYPES[scheme]
        self.index = 0
        self.hash = seed_hash(request_nonce, miner_ss58, validator_ss58)
        self.ended = False

    def feed(self, raw: bytes) -> Line:
        """One line (without its newline); raises StreamError."""
        from bittensor import sp_core

        if self.ended:
            raise StreamError("invalid", "a line after the end line")
        try:
            obj = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise StreamError("invalid", f"line {self.index + 1} is not JSON") from None
        if not isinstance(obj, dict):
            raise StreamError("invalid", f"line {self.index + 1} is not a JSON object")
        index, kind, data = obj.get("i"), obj.get("type"), obj.get("data")
        claimed, sig = obj.get("hash"), obj.get("sig")
        if (
            type(index) is not int
            or kind not in (DELTA, END)
            or not isinstance(data, str)
            or not isinstance(claimed, str)
            or not isinstance(sig, str)
        ):
            raise StreamError("invalid", f"line {self.index + 1} lacks i, type, data, hash or sig")
        if kind == DELTA and len(data) > MAX_DELTA_CHARS:
            raise StreamError("invalid", f"delta {index} over {MAX_DELTA_CHARS} characters")
        if kind == END and not _is_object(data):
            raise StreamError("invalid", f"end line {index}: data is not a JSON object")
        if index != self.index + 1:
            raise StreamError("forged", f"line {index} where {self.index + 1} was due")
        try:
            expected = next_hash(self.hash, index, kind, data)
        except UnicodeEncodeError:  # a lone surrogate (\ud800): no UTF-8 text, no hash
            raise StreamError("invalid", f"line {index}: data is not Unicode text") from None
        if claimed != expected:
            raise StreamError("forged", f"line {index}: hash is not the running hash")
        if not SIGNATURE_FORM.fullmatch(sig):
            raise StreamError(
                "forged", f"line {index}: signature not 0x + 128 lower-case hex digits"
            )
        try:
            valid = sp_core.verify(
                signed_bytes(expected), bytes.fromhex(sig[2:]), self.miner, self.crypto
            )
        except ValueError:
            valid = False
        if not valid:
            raise StreamError("forged", f"line {index}: signature is not the miner's")
        self.index, self.hash = index, expected
        if kind == END:
            self.ended = True
        return Line(kind, data)


def _is_object(data: str) -> bool:
    try:
        return isinstance(json.loads(data), dict)
    except ValueError:
        return False


def check_headers(headers: Mapping[str, str]) -> str:
    """A 200's headers (docs/protocol.md 10.2): the media type and the stream marker
    are required; returns the lines' signature scheme (``X-Bittensor-Crypto``, default
    sr25519). Raises StreamError (``invalid``)."""
    lower = {k.lower(): v for k, v in headers.items()}
    media = lower.get("content-type", "").split(";")[0].strip().lower()
    if media != STREAM_MEDIA_TYPE:
        raise StreamError("invalid", f"Content-Type {media or 'absent'}, not {STREAM_MEDIA_TYPE}")
    marker = lower.get(STREAM_HEADER.lower())
    if marker != STREAM_CONTEXT:
        raise StreamError("invalid", f"{STREAM_HEADER} {marker or 'absent'}, not {STREAM_CONTEXT}")
    return lower.get("x-bittensor-crypto", "sr25519")


class StreamReader:
    """A stream's bytes in, verified lines out, whatever the chunking. Raises
    StreamError at the first fault: a line over MAX_LINE_BYTES, the stream over
    ``max_bytes``, or what the verifier refuses; ``close`` at the stream's end raises
    when the end line never came."""

    def __init__(self, verifier: StreamVerifier, max_bytes: int):
        self.verifier = verifier
        self.max_bytes = max_bytes
        self.size = 0
        self._pending = bytearray()  # the line being received (linear in its bytes)

    def feed(self, chunk: bytes) -> Iterator[Line]:
        """The chunk's complete lines, each verified only when the one before it has been
        taken: a caller that uses each line as it comes never gets one past a fault."""
        self.size += len(chunk)
        if self.size > self.max_bytes:
            raise StreamError("invalid", f"stream over {self.max_bytes} bytes")
        start = 0
        while (end := chunk.find(b"\n", start)) != -1:
            self._pending += chunk[start:end]
            raw = bytes(self._pending)
            self._pending.clear()
            if (line := self._line(raw)) is not None:
                yield line
            start = end + 1
        self._pending += chunk[start:]
        if len(self._pending) > MAX_LINE_BYTES:
            raise StreamError("invalid", f"a line over {MAX_LINE_BYTES} bytes")

    def close(self) -> list[Line]:
        """The stream ended: its last line may lack the LF; the end line must be in."""
        tail = self._line(bytes(self._pending))
        self._pending.clear()
        if not self.verifier.ended:
            raise StreamError("invalid", "the stream ended without its end line")
        return [] if tail is None else [tail]

    def _line(self, raw: bytes) -> Line | None:
        if len(raw) > MAX_LINE_BYTES:
            raise StreamError("invalid", f"a line over {MAX_LINE_BYTES} bytes")
        if not raw.strip():  # a blank line is no line of the stream
            return None
        return self.verifier.feed(raw)


def parse_timings(data: str) -> dict[str, float]:
    """The end line's timings (at most 16 numeric entries; anything else is dropped)."""
    try:
        obj = json.loads(data)
    except ValueError:
        return {}
    if not isinstance(obj, dict):
        return {}
    out = {}
    for key, value in list(obj.items())[:16]:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out[str(key)] = float(value)
    return out
