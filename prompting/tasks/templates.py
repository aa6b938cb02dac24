"""Every prompt the validator sends to its own LLM or to miners, in one place."""

QA_WRITER = (
    "Read the passage and write one question that it answers, worded as {asker} would "
    "ask it, then the answer.\n"
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
INSTRUCTION_WRITER = (
    "Write one request that {asker} might send to an AI assistant about the subject of "
    "this passage: a task to explain, compare, give an example or advise. Reply with the "
    "request only, in their words.\n\nPassage:\n{passage}"
)
INSTRUCTIONS = (  # without a real LLM: open requests about the passage's first sentence
    'I read this: "{sentence}" Can you explain what it means, with a short example?',
    '"{sentence}" What should I know about this? Give me the main points.',
    'Explain this so I can pass it on to a colleague: "{sentence}"',
    'Describe what this means and when it matters: "{sentence}"',
)
