"""A miner strategy: reverse the words of the challenge's last line."""

from __future__ import annotations

from prompting.miner.base import Strategy


class Reverser(Strategy):
    name = "example_reverser"

    def answer(self, request) -> str:
        last = request.messages[-1].content.splitlines()[-1]
        return " ".join(reversed(last.split()))
