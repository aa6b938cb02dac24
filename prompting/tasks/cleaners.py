"""Small cleaning steps for the validator LLM's own text (questions, instructions,
references) before it reaches a miner or the reward stack.

Chat models wrap what they were asked for: "Sure! Here is a question:", a role tag
they were trained on, quotes, several questions where one was asked, the prompt
repeated back, or a special token a server did not strip. Each step fixes one of
these and leaves other text alone; a task names the steps it needs, in order.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

# Chat-template markers of the model families a validator runs (zephyr/mistral,
# llama 2/3, chatml, gemma, phi) and generic <|...|> tokens.
_SPECIAL = re.compile(
    r"<\|[a-z_]+(?:\|[a-z_]+)*\|>|</?s>|<unk>|<pad>|\[/?INST\]|<<\/?SYS>>"
    r"|<start_of_turn>(?:user|model)?|<end_of_turn>|<bos>|<eos>",
    re.IGNORECASE,
)
_ROLE_LINE = re.compile(
    r"^\s*(?:\*\*)?(?:assistant|user|system|ai|bot|model|response|output|"
    r"question|instruction|answer|summary|request|q)(?:\*\*)?\s*[:：](?:\*\*)?\s*",
    re.IGNORECASE,
)
# "Sure! Here is a question you could ask:" and the like, when a whole first line.
_PREAMBLE = re.compile(
    r"^\s*(?:sure|certainly|of course|okay|ok|absolutely|great)?[!,.]?\s*"
    r"(?:here(?:'s| is| are| you go)|below is)\b[^\n]{0,80}[:.]\s*(?:\n+|$)",
    re.IGNORECASE,
)
_QUOTES = ('"', "'", "`", "\u201c\u201d", "\u2018\u2019", "\u00ab\u00bb")
_FINAL = ".!?\"')]`*”’"  # characters a finished text may end with
_SENTENCE_STOP = re.compile(r"[.!?][\"')”’]?(?=\s)")
_ECHO_MIN_CHARS = 24  # a shorter overlap with the prompt is coincidence, not an echo


def strip_special_tokens(text: str, prompt: str = "") -> str:
    return re.sub(r"[ \t]{2,}", " ", _SPECIAL.sub(" ", text)).strip()


def strip_preamble(text: str, prompt: str = "") -> str:
    return _PREAMBLE.sub("", text, count=1).strip()


def strip_role_prefix(text: str, prompt: str = "") -> str:
    """Drop leading role / label tags ("Assistant:", "**Question:**", "Q:"), repeatedly."""
    previous = None
    while previous != text:
        previous, text = text, _ROLE_LINE.sub("", text, count=1).lstrip()
    return text


def strip_quotes(text: str, prompt: str = "") -> str:
    """Remove one pair of quotes or backticks around the whole text."""
    text = text.strip()
    while len(text) >= 2:
        for pair in _QUOTES:
            open_, close = (pair, pair) if len(pair) == 1 else (pair[0], pair[1])
            if text.startswith(open_) and text.endswith(close):
                inner = text[len(open_) : -len(close)].strip()
                if open_ not in inner and close not in inner:
                    text = inner
                    break
        else:
            return text
    return text


def cut_at_first_question(text: str, prompt: str = "") -> str:
    """Keep the first question only: text up to the first '?' (and a quote closing it)."""
    end = text.find("?")
    if end < 0:
        return text.strip()
    end += 1
    if text[end : end + 1] in ('"', "'", "\u201d", "\u2019", "\u00bb", "`"):
        end += 1
    return text[:end].strip()


def drop_prompt_echo(text: str, prompt: str = "") -> str:
    """Remove the prompt when the model repeats it: as a prefix, or line by line."""
    if not prompt:
        return text
    norm_prompt = " ".join(prompt.split())
    norm_text = " ".join(text.split())
    if len(norm_prompt) >= _ECHO_MIN_CHARS and norm_text.startswith(norm_prompt):
        return norm_text[len(norm_prompt) :].strip()
    prompt_lines = {" ".join(ln.split()) for ln in prompt.splitlines()}
    kept = [
        ln
        for ln in text.splitlines()
        if not (len(ln.strip()) >= _ECHO_MIN_CHARS and " ".join(ln.split()) in prompt_lines)
    ]
    return "\n".join(kept).strip()


def drop_unfinished(text: str, prompt: str = "") -> str:
    """Cut a text that stopped mid-sentence (out of tokens) back to its last full
    sentence; a text with no full sentence is left as it is."""
    text = text.strip()
    if not text or text[-1] in _FINAL:
        return text
    ends = [m.end() for m in _SENTENCE_STOP.finditer(text)]
    return text[: ends[-1]].strip() if ends else text


Step = Callable[[str, str], str]
STEPS: dict[str, Step] = {
    "special_tokens": strip_special_tokens,
    "prompt_echo": drop_prompt_echo,
    "preamble": strip_preamble,
    "role_prefix": strip_role_prefix,
    "quotes": strip_quotes,
    "first_question": cut_at_first_question,
    "unfinished": drop_unfinished,
}
# What a reference or free text gets; questions and instructions add their own steps.
TEXT = ("special_tokens", "prompt_echo", "preamble", "role_prefix")
QUESTION = (*TEXT, "quotes", "first_question", "quotes")
INSTRUCTION = (*TEXT, "quotes")
REFERENCE = (*TEXT, "unfinished")  # a reference must not stop mid-sentence


def clean(text: str, steps: Sequence[str] = TEXT, prompt: str = "") -> str:
    """Run ``steps`` (names of STEPS) in order; ``prompt`` is what the model was asked."""
    for name in steps:
        text = STEPS[name](text, prompt)
    return text.strip()
