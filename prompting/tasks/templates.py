"""Every prompt the validator sends to its own LLM or to miners, in one place."""

QA_WRITER = (
    "Read the passage and write one question that it answers, then the answer.\n"
    "Reply exactly as:\nQuestion: <question>\nAnswer: <answer>\n\nPassage:\n{passage}"
)
QA_CHALLENGE = (
    "Answer the question using the passage.\n\nPassage:\n{passage}\n\nQuestion: {question}"
)
CLOZE_CHALLENGE = (
    "Read the passage, then give the words that fill the blank in this sentence from it:\n"
    '"{sentence}"\n\nPassage:\n{passage}'
)
SUMMARY_WRITER = "Summarize the following passage in two or three sentences.\n\n{passage}"
SUMMARY_CHALLENGE = "Summarize the following passage in two or three sentences.\n\n{passage}"
MATH_CHALLENGE = "Solve this problem. End with 'The answer is <number>'.\n\n{problem}"
DEBUG_CHALLENGE = (
    "This Python function has exactly one bug (a changed operator, a missing line or two "
    "swapped names). Return the corrected function, complete, in one ```python block.\n\n"
    "```python\n{code}\n```"
)
BLANK = "_____"
