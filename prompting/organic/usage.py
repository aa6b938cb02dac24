"""Token counts for the ``usage`` of an organic answer, in the validator's tokenizer.

The miners' tokenizers are theirs (a miner counts ``max_tokens`` with its own,
docs/protocol.md 10.5); what a user is told they used is counted here, with one
tokenizer for every answer whichever miner wrote it. A private copy of the model's
tokenizer, on a thread of its own: a HuggingFace fast tokenizer used from a second
thread while the model thread changes its padding raises "Already borrowed", and a
prompt of 256 KiB takes tens of milliseconds the event loop must not wait for.
"""

from __future__ import annotations

import asyncio
import copy
from concurrent.futures import ThreadPoolExecutor


def tokenizer_of(llm) -> object | None:
    """The model's HuggingFace tokenizer, or None (no model, or a backend without one)."""
    tokenizer = getattr(llm, "tokenizer", None) if llm is not None else None
    return tokenizer if callable(getattr(tokenizer, "encode", None)) else None


class TokenCounter:
    def __init__(self, tokenizer):
        self._tokenizer = copy.deepcopy(tokenizer)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tokens")

    def _count(self, messages: list[dict], completion: str) -> dict[str, int]:
        from prompting.llms.base import render_chat

        tok = self._tokenizer
        if getattr(tok, "chat_template", None):  # as the model reads the messages
            text = render_chat(tok, messages)
        else:
            text = "\n".join(m["content"] for m in messages)
        prompt = len(tok(text, add_special_tokens=False).input_ids)
        answer = len(tok(completion, add_special_tokens=False).input_ids)
        return {
            "prompt_tokens": prompt,
            "completion_tokens": answer,
            "total_tokens": prompt + answer,
        }

    async def usage(self, messages: list[dict], completion: str) -> dict[str, int]:
        """OpenAI's ``usage`` object for these messages and this answer."""
        return await asyncio.get_running_loop().run_in_executor(
            self._thread, self._count, messages, completion
        )

    def close(self) -> None:
        self._thread.shutdown(wait=False)
