"""date_qa, generic_instruction, personas and the cleaners of the validator LLM's text."""

from __future__ import annotations

import math
import random
import re
from datetime import date

import pytest

from prompting.llms.base import LLM, Generation, LLMStats, Sampling
from prompting.miner import strategies
from prompting.protocol import PromptRequest
from prompting.rewards.dates import date_reward, parse_dates
from prompting.rewards.stack import RewardStack
from prompting.tasks import TASKS, build_challenges, cleaners, replay
from prompting.tasks.base import MAX_RETRIES
from prompting.tasks.personas import MOODS, PERSONAS, voice_for


class ScriptedLLM(LLM):
    """Stands in for a real instruction-following model (none can be downloaded here):
    answers by the first rule whose pattern is in the prompt, records each batch."""

    def __init__(self, rules: list[tuple[str, str]]):
        self.rules = rules
        self.batches: list[list[str]] = []

    def generate(self, prompts, sampling: Sampling | None = None) -> list[Generation]:
        texts = [p if isinstance(p, str) else p[-1]["content"] for p in prompts]
        self.batches.append(texts)
        out = []
        for text in texts:
            reply = next((r for pattern, r in self.rules if pattern in text), "")
            out.append(Generation(text=reply, tokens=len(reply.split()), seconds=0.0))
        return out

    def tokenizer(self):
        return None

    @property
    def stats(self) -> LLMStats:  # a property, as LLM declares it
        return LLMStats("scripted", "scripted")


# --- cleaners ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "step,raw,prompt,expected",
    [
        ("special_tokens", "<|assistant|>\nWhat is a tuple?</s>", "", "What is a tuple?"),
        ("special_tokens", "[INST] x [/INST] Hello <|im_end|>", "", "x Hello"),
        ("special_tokens", "<start_of_turn>model\nHi<end_of_turn>", "", "Hi"),
        ("preamble", "Sure! Here is a question you could ask:\n\nWhy?", "", "Why?"),
        ("preamble", "Here's the summary of 4 points.", "", ""),
        ("preamble", "Here we go again, said Tom.", "", "Here we go again, said Tom."),
        ("role_prefix", "Assistant: Question: How do I sort?", "", "How do I sort?"),
        ("role_prefix", "**Question:** What is PEP 8?", "", "What is PEP 8?"),
        ("role_prefix", "Questions remain open.", "", "Questions remain open."),
        ("quotes", '"What is a list?"', "", "What is a list?"),
        ("quotes", "\u201cWhy?\u201d", "", "Why?"),
        ("quotes", '"a" and "b"', "", '"a" and "b"'),
        ("first_question", "What is X? And what is Y?", "", "What is X?"),
        ("first_question", "No question here.", "", "No question here."),
        (
            "prompt_echo",
            "Summarize the following passage in two words.\nShort summary.",
            "Summarize the following passage in two words.",
            "Short summary.",
        ),
        ("prompt_echo", "Yes, the passage says so.", "the passage", "Yes, the passage says so."),
    ],
)
def test_each_cleaner_fixes_its_case_and_leaves_the_rest(step, raw, prompt, expected):
    assert cleaners.STEPS[step](raw, prompt) == expected


def test_question_pipeline_on_a_chatty_reply():
    raw = (
        "<|assistant|>\nSure! Here's a question:\n\n**Question:** \"What does the del "
        'statement remove?" Also, why is it useful?</s>'
    )
    assert cleaners.clean(raw, cleaners.QUESTION) == "What does the del statement remove?"


def test_cleaners_on_the_tiny_models_raw_output(tiny_llm):
    """Real bad output: the tiny model's generation decoded with its special tokens and
    its prompt, as a completions server that echoes and does not strip returns it."""
    import torch

    from prompting.llms.base import render_chat

    tok, model = tiny_llm._tokenizer, tiny_llm.model
    prompt = "Write one question about Python lists."
    text = render_chat(tok, [{"role": "user", "content": prompt}])
    ids = tok(text, return_tensors="pt", add_special_tokens=False)
    torch.manual_seed(0)
    with torch.inference_mode():
        out = model.generate(
            **ids, do_sample=True, max_new_tokens=96, num_return_sequences=16, pad_token_id=0
        )
    special = set(tok.all_special_tokens)
    raws = [tok.decode(row, skip_special_tokens=False) for row in out]
    assert all(prompt in r and "<|user|>" in r for r in raws)  # the echo is there
    for raw in raws:
        cleaned = cleaners.clean(raw, cleaners.INSTRUCTION, prompt)
        assert not any(s in cleaned for s in special), cleaned
        assert prompt not in cleaned
        assert cleaned == cleaners.clean(cleaned, cleaners.INSTRUCTION, prompt)  # idempotent


# --- personas ----------------------------------------------------------------------------


def test_personas_vary_per_seed_are_recorded_and_replay():
    voices = {(voice_for("qa", s).persona, voice_for("qa", s).mood) for s in range(200)}
    assert len({p for p, _ in voices}) == len(PERSONAS) and len({m for _, m in voices}) == len(
        MOODS
    )
    assert voice_for("qa", 7) == voice_for("qa", 7)
    task = TASKS["math"]()
    first_lines = set()
    for seed in range(20):
        c = task.finish(task.draft(seed))
        voice = voice_for("math", seed)
        assert c.meta["persona"] == voice.persona.who and c.meta["mood"] == voice.mood.name
        assert c.prompt_text.startswith(voice.opening) and "The answer is <number>" in c.prompt_text
        first_lines.add(c.prompt_text.split("\n", 1)[0])
        assert replay(c) == c
    assert len(first_lines) >= 10  # no fixed template to match


# --- date_qa -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text,expected",
    [
        ("It is on 2027-01-11.", [date(2027, 1, 11)]),
        ("11 January 2027", [date(2027, 1, 11)]),
        ("Monday, 11th of Jan. 2027 it is", [date(2027, 1, 11)]),
        ("On January 11, 2027 (a Monday).", [date(2027, 1, 11)]),
        ("Sept. 3rd", [date(2027, 9, 3)]),  # no year: the question's year
        ("march the 21st, 2027", [date(2027, 3, 21)]),
        ("03/04/2027", [date(2027, 4, 3), date(2027, 3, 4)]),
        ("11.01.27", [date(2027, 1, 11)]),  # 1/11 would be a November reading too
        ("First 5 May 2027, later 6 May 2027", [date(2027, 5, 5)]),
        ("May I say: no idea", []),
        ("31 February 2027", []),
    ],
)
def test_date_forms(text, expected):
    found = parse_dates(text, 2027)
    assert found[: len(expected)] == expected and (expected or not found)


def test_date_reward_decays_with_distance():
    assert date_reward("11 January 2027", "2027-01-11") == 1.0
    assert date_reward("It's the 12th of January, 2027.", "2027-01-11") == pytest.approx(
        math.exp(-1 / 3)
    )
    assert date_reward("February 11, 2027", "2027-01-11") < 1e-4
    assert date_reward("03/04/2027", "2027-03-04") == 1.0  # month-first reading
    assert date_reward("no date", "2027-01-11") == 0.0
    assert date_reward("10 Jan 2027", "2027-01-11", tolerance_days=1) == 1.0


def test_date_qa_retrieval_is_rewarded_and_noise_is_not(embedder):
    task, stack = TASKS["date_qa"](), RewardStack(lambda: embedder)
    retrieval = strategies.retrieval(embedder)
    noise = strategies.random_text(0)
    good, bad = [], []
    for seed in range(12):
        c = task.finish(task.draft(seed))
        assert c.reference in {iso for iso, _ in _window(c)} and c.meta["event"] in c.context
        request = PromptRequest(
            task=c.task, challenge_id=c.challenge_id, messages=c.messages, step=1, timeout=5
        )
        answers = [retrieval(request), noise(request)]
        totals = stack.score(c, answers).totals
        good.append(totals[0])
        bad.append(totals[1])
        assert replay(c) == c
    assert sum(good) / len(good) > 0.8 and max(bad) == 0.0


def _window(challenge):
    from prompting.datasets.offline import dataset

    return dataset("holidays").window(challenge.source_id)


def test_holiday_passages_are_stable_and_varied():
    from prompting.datasets.offline import dataset

    calendars = dataset("holidays")
    docs = [calendars.get(random.Random(s)) for s in range(30)]
    assert len({d.title for d in docs}) >= 15
    for doc in docs:
        assert calendars.by_id(doc.id) == doc
        events = calendars.window(doc.id)
        assert 3 <= len(events) <= calendars.WINDOW
        assert len({name for _, name in events}) == len(events)  # names identify dates
        for iso, name in events:
            assert name in doc.text and re.search(str(date.fromisoformat(iso).day), doc.text)


# --- generic_instruction and multi-stage batching -------------------------------------------


# Replies grounded in the passages of seed 4 (attribute access, code blocks, try).
WRITER_REPLY = (
    "<|assistant|>\nSure! Here is a request:\n\n"
    '"Can you explain how descriptors return the computed attribute value?"</s>'
)
ANSWER = (
    "A descriptor's __get__() method returns the computed attribute value or raises an "
    "AttributeError exception."
)
RULES = [
    ("a curious user would ask", WRITER_REPLY),
    ("descriptors return the computed", ANSWER),
    ("Write one question", "Question: What is a block in a Python program?"),
    ("Answer the question", "A block is a piece of Python program text executed as a unit."),
    ("Summarize", "If no except clause matches, the search for a handler continues outside."),
]


def test_generic_instruction_two_stages_batched_with_other_tasks():
    llm = ScriptedLLM(RULES)
    tasks = [TASKS[n](use_llm=True) for n in ("generic_instruction", "qa", "summarization")]
    drafts = [t.draft(4) for t in tasks]
    generic, qa, summary = build_challenges(drafts, llm, Sampling())
    assert [len(b) for b in llm.batches] == [3, 2]  # stage 1 of all three, then stage 2
    instruction = "Can you explain how descriptors return the computed attribute value?"
    assert generic.meta["kind"] == "llm" and generic.reference == ANSWER
    assert generic.prompt_text == voice_for("generic_instruction", 4).phrase(instruction)
    assert llm.batches[1][0] == generic.prompt_text  # the reference answers what miners get
    assert generic.llm_outputs == [WRITER_REPLY, ANSWER] and replay(generic) == generic
    assert qa.meta["kind"] == "llm" and summary.meta["kind"] == "llm"
    assert {c.meta["outcome"] for c in (generic, qa, summary)} == {"first_try"}


def test_generic_instruction_falls_back_without_a_usable_request():
    task = TASKS["generic_instruction"](use_llm=True)
    llm = ScriptedLLM([("a curious user would ask", "</s> Okay.")])
    (c,) = build_challenges([task.draft(1)], llm, Sampling())
    assert len(llm.batches) == 1 + MAX_RETRIES and c.meta["kind"] == "template"
    assert c.meta["rejections"] == {"instruction/too_short": 1 + MAX_RETRIES}
    assert c.reference == c.context and c.reference.split(". ")[0][:40] in c.prompt_text
    assert replay(c) == c


def test_generic_instruction_stages_on_the_tiny_model(tiny_llm):
    """The real HF backend through both stages (its text is noise, so only the plumbing
    is checked: every output recorded, the noise rejected, no special tokens reach the
    miner, replayable)."""
    task = TASKS["generic_instruction"](use_llm=True)
    (c,) = build_challenges([task.draft(2)], tiny_llm, Sampling(max_tokens=24, seed=0))
    assert c.meta["outcome"] == "fallback" and replay(c) == c
    assert len(c.llm_outputs) == sum(c.meta["rejections"].values()) == 1 + MAX_RETRIES
    assert "<|" not in c.prompt_text and "</s>" not in c.prompt_text


def test_cloze_is_not_solved_by_a_string_search():
    """The blanked sentence stands blanked in the passage too, and the phrase is chosen
    where the rest of the passage lacks it: searching the challenge finds no answer."""
    qa = TASKS["qa"]()
    found_elsewhere = 0
    for seed in range(40):
        c = qa.finish(qa.draft(seed))
        assert c.meta["kind"] == "cloze"
        assert c.context in c.prompt_text and "_____" in c.context
        assert c.meta["question"] in c.context  # the quoted sentence, blanked, is in it
        found_elsewhere += c.reference.lower() in c.prompt_text.lower()
    assert found_elsewhere <= 4, found_elsewhere  # only where every phrase recurs
