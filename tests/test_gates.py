"""Quality gates on the validator LLM's text: hand-written bad cases, the staged
regeneration and fallback, the event counts, and the real SmolLM2 model's own output."""

from __future__ import annotations

import pytest

from prompting.datasets.base import Document
from prompting.llms.base import Sampling
from prompting.tasks import TASKS, build_challenges, gates, replay
from prompting.tasks import templates as t
from prompting.tasks.base import MAX_RETRIES
from prompting.telemetry import gate_event
from tests.test_tasks import ScriptedLLM

PASSAGE = (
    "The del statement removes the binding of a name from the local or global namespace. "
    "Deleting a name that is not bound raises a NameError exception. Deleting an attribute "
    "reference asks the primary object to remove that attribute."
)


@pytest.mark.parametrize(
    "text,reason",
    [
        ("What does the del statement remove from a namespace?", None),
        ("", "empty"),
        ("Question: What does the del statement remove?", "role_label"),
        ("What does del remove?\nAnswer: a binding", "role_label"),
        ("The del statement removes a binding.", "not_a_question"),
        ("What does del remove? Why does it raise NameError?", "several_questions"),
        ("What is the capital of France and its population?", "ungrounded"),
        ("Can the items of a tuple have different types?", "example_copy"),
        (
            "Does deleting a name that is not bound raises a NameError exception always?",
            "passage_echo",
        ),
        ("Write one question that the passage answers about del?", "prompt_echo"),
        ("What is the del del del del del del del del del del?", "repetitive"),
    ],
)
def test_question_gate(text, reason):
    examples = [q for _, q, _ in t.QUESTION_EXAMPLES]
    assert gates.question(text, PASSAGE, examples) == reason


@pytest.mark.parametrize(
    "text,reason",
    [
        ("It removes the binding of a name from the namespace.", None),
        ("What does the del statement remove from a namespace?", "prompt_echo"),
        ("Answer: it removes the binding of the name.", "role_label"),
        ("Removes it.", "too_short"),
        ("Paris is the largest city of France and its capital.", "ungrounded"),
        (PASSAGE, "passage_echo"),
    ],
)
def test_reference_gate(text, reason):
    passage = PASSAGE + " " + PASSAGE.replace("del", "pass")  # long enough for the echo rule
    if text == PASSAGE:
        text = passage
    assert (
        gates.reference(text, "What does the del statement remove from a namespace?", passage)
        == reason
    )


@pytest.mark.parametrize(
    "text,reason",
    [
        ("Can you explain when I would use del on a global name?", None),
        ("Explain how deleting an attribute reference works, with an example.", None),
        ("The del statement.", "too_short"),
        ("The del statement is a statement that removes names from namespaces.", "not_a_request"),
        ("Give me a recipe for pancakes with blueberries and maple syrup.", "ungrounded"),
        ("When del removes a name, the binding is gone from the namespace.", "not_a_request"),
        ("What a great question. Del removes names. Bindings go. So it goes.", "not_a_request"),
    ],
)
def test_instruction_gate(text, reason):
    assert gates.instruction(text, PASSAGE) == reason


def test_grounding_counts_content_words_only():
    assert gates.grounding("What is the namespace binding?", PASSAGE) == 1.0
    assert gates.grounding("What is a banana?", PASSAGE) == 0.0
    assert gates.grounding("What is it?", PASSAGE) == 0.0  # no content words at all


GOOD_Q = "What does the del statement remove?"
ECHO_Q = "Deleting a name that is not bound raises a NameError exception, right?"
GOOD_A = "It removes the binding of a name from the local or global namespace."


def test_a_rejected_stage_is_regenerated_in_the_next_batch_with_a_new_seed():
    class Sequenced(ScriptedLLM):
        """Question replies in turn: a sentence of the passage first, then a good one."""

        def __init__(self):
            super().__init__([("Answer the question", GOOD_A)])
            self.questions = iter([ECHO_Q, GOOD_Q])
            self.seeds = []

        def generate(self, prompts, sampling=None):
            self.seeds.append(sampling.seed)
            out = super().generate(prompts, sampling)
            for prompt, generation in zip(prompts, out):
                if "Write one question" in prompt[-1]["content"]:
                    generation.text = next(self.questions)
            return out

    llm = Sequenced()
    task = TASKS["qa"](use_llm=True)
    draft = task.draft(3)
    draft.document = Document(draft.document.id, draft.document.title, PASSAGE)
    (c,) = build_challenges([draft], llm, Sampling(seed=5))
    assert c.meta["kind"] == "llm" and c.meta["outcome"] == "regenerated"
    assert c.meta["rejections"] == {"question/passage_echo": 1}
    assert c.reference == GOOD_A and GOOD_Q in c.prompt_text
    assert llm.seeds == [5, 6, 7]  # a retry does not reuse the seed of the rejected text
    assert gate_event(c) == {
        "gate/outcome": "regenerated",
        "gate/rejected/qa/question/passage_echo": 1,
    }


def test_a_stage_that_keeps_failing_falls_back_after_the_retries():
    llm = ScriptedLLM([("Write one question", "Sure! The answer is 42.")])
    task = TASKS["qa"](use_llm=True)
    (c,) = build_challenges([task.draft(1)], llm, Sampling())
    assert len(llm.batches) == 1 + MAX_RETRIES
    assert c.meta["kind"] == "cloze" and c.meta["outcome"] == "fallback"
    assert c.meta["rejections"] == {"question/not_a_question": 1 + MAX_RETRIES}
    assert replay(c) == c


@pytest.mark.slow
def test_real_model_outputs_pass_through_the_gates_and_nothing_bad_leaks(smollm2):
    """SmolLM2-135M-Instruct writes qa and generic_instruction challenges (fixed seeds):
    whatever it writes, what reaches miners carries no label, echo or attached answer,
    every rejection is recorded, and the LLM wrote at least some of them itself."""
    drafts = [
        TASKS[name](use_llm=True).draft(seed)
        for name in ("qa", "generic_instruction")
        for seed in range(3)
    ]
    challenges = build_challenges(drafts, smollm2, Sampling(seed=0))
    llm_written = 0
    for draft, c in zip(drafts, challenges):
        assert len(c.llm_outputs) == len(draft.accepted) + len(draft.rejections)
        assert replay(c) == c
        if c.meta["kind"] != "llm":
            assert c.meta["outcome"] == "fallback"
            continue
        llm_written += 1
        request = c.meta["llm_request"]
        assert "?" in request or gates.instruction(request, c.context) is None
        assert gates.common(c.reference) is None and gates.common(request) is None
        assert gates.reference(c.reference, request, c.context) is None
        assert "<|" not in c.prompt_text + c.reference
    assert llm_written >= 3
