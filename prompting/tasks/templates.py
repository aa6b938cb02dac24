"""Every prompt the validator sends to its own LLM or to miners, in one place."""

# The validator LLM's prompts are few-shot: a worked example or two in the same chat
# format teaches even a 135M model the shape of the reply, which the gates then check.
QUESTION_WRITER = (
    "Write one question that the passage answers. Reply with the question only.\n\n"
    "Passage:\n{passage}"
)
EXAMPLE_PASSAGES = (
    'The "pass" statement does nothing. It can be used when a statement is required '
    "syntactically but the program requires no action.",
    "A tuple is an immutable sequence. Tuples are written as comma-separated values, "
    "usually inside parentheses, and can hold items of different types.",
)
QUESTION_EXAMPLES = (  # (passage, question, answer) for the question and answer writers
    (
        EXAMPLE_PASSAGES[0],
        "What does the pass statement do?",
        "It does nothing; it fills a place where a statement is required but no action is needed.",
    ),
    (
        EXAMPLE_PASSAGES[1],
        "Can the items of a tuple have different types?",
        "Yes, a tuple can hold items of different types.",
    ),
)
QA_CHALLENGE = (
    "Answer the question using the passage.\n\nPassage:\n{passage}\n\nQuestion: {question}"
)
CLOZE_CHALLENGE = (
    "A phrase of this sentence is blanked out, here and in the passage below. Give the "
    'words that fill the blank:\n"{sentence}"\n\nPassage:\n{passage}'
)
SUMMARY_EXAMPLES = (  # (passage, summary)
    (
        EXAMPLE_PASSAGES[1] + " Because a tuple cannot be changed, it can be used as a "
        "dictionary key, while a list cannot. A tuple of one item needs a trailing comma.",
        "Tuples are immutable sequences of comma-separated values that may mix types. "
        "Being immutable, they can serve as dictionary keys, and a one-item tuple needs a "
        "trailing comma.",
    ),
)
SUMMARY_CHALLENGE = "Summarize this passage in two or three sentences.\n\nPassage:\n{passage}"
MATH_CHALLENGE = "Solve this problem. End with 'The answer is <number>'.\n\n{problem}"
DEBUG_CHALLENGE = (
    "This Python function has exactly one bug (a changed operator, a missing line or two "
    "swapped names). Return the corrected function, complete, in one ```python block.\n\n"
    "```python\n{code}\n```"
)
BLANK = "_____"
DATE_QUESTIONS = (
    "On what date is {event} in {country} in {year}?",
    "When does {country} observe {event} in {year}? Give the exact date.",
    "What is the date of {event} in {country} in {year}?",
)
DATE_CHALLENGE = (
    "Answer with the date, using the passage.\n\nPassage:\n{passage}\n\nQuestion: {question}"
)
# No persona here: a small model told who asks writes about the asker, not the
# passage (measured: 3 of 12 requests usable with one, 7 of 12 without). The accepted
# request reaches miners in the persona's voice all the same.
INSTRUCTION_WRITER = (
    "Write one question a curious user would ask an AI assistant about this passage. "
    "Reply with the question only.\n\nPassage:\n{passage}"
)
INSTRUCTION_EXAMPLES = (  # (passage, request, answer)
    (
        EXAMPLE_PASSAGES[0],
        "Can you show me a short example of where I would need the pass statement?",
        "Use pass where Python needs a statement but you have nothing to do yet, for "
        "example an empty class or function body: class Placeholder: pass.",
    ),
    (
        EXAMPLE_PASSAGES[1],
        "Compare tuples and lists and tell me when I should pick a tuple.",
        "Both are sequences, but a tuple is immutable while a list can change. Pick a "
        "tuple for fixed records or dictionary keys, and a list when items are added or "
        "removed.",
    ),
)
INSTRUCTIONS = (  # without a real LLM: open requests about the passage's first sentence
    'I read this: "{sentence}" Can you explain what it means, with a short example?',
    '"{sentence}" What should I know about this? Give me the main points.',
    'Explain this so I can pass it on to a colleague: "{sentence}"',
    'Describe what this means and when it matters: "{sentence}"',
)
