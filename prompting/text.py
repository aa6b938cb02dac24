"""Text patterns and word splitting shared by datasets, tasks, rewards and miners.

One definition each, so that what a task calls a sentence, a reward calls a word and a
miner calls the passage stay the same thing.
"""

from __future__ import annotations

import re

# A sentence ends at . ! or ? followed by space and a capital or an opening parenthesis.
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z(])")
# A fenced code block (```python, ```py or bare ```); group 1 is the code.
FENCE = re.compile(r"```(?:python|py)?\s*\n(.*?)```", re.DOTALL)
# The parts of a challenge as the task templates lay them out (docs/protocol.md).
PASSAGE = re.compile(r"Passage:\s*\n(.*?)(?:\n\n|\Z)", re.DOTALL)
QUESTION = re.compile(r"Question:\s*(.*?)(?:\n\n|\Z)", re.DOTALL)
QUOTED = re.compile(r"\"(.+?)\"", re.DOTALL)
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


def words(text: str) -> list[str]:
    """Lower-cased words (letters and digits, an apostrophe suffix kept): the unit of
    every word count, overlap and ROUGE score."""
    return _WORD.findall(text.lower())
