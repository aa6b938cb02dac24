"""ROUGE-L and the word tokenizer shared by the text rewards and penalties."""

from __future__ import annotations

from prompting.text import words

# Short function words. Running English is about 40% of them; a list of a text's
# frequent words has almost none, which is how the degenerate penalty tells them apart.
FUNCTION_WORDS = frozenset(
    "the a an and or of to in on for with by from as at is are was were be been it its "
    "this that these those which who what when where how why can you your i me my we our "
    "not no do does did has have had will would should could may might than then there "
    "their they them he she his her if so but about into also more most such only".split()
)


def lcs_length(a: list[str], b: list[str]) -> int:
    """Longest common subsequence of two word lists (rapidfuzz's compiled LCS: the
    pure-Python table held the GIL that the model thread waits for)."""
    from rapidfuzz.distance import LCSseq

    return LCSseq.similarity(a, b)


def rouge_l(candidate: str, reference: str, max_words: int = 2000) -> tuple[float, float, float]:
    """ROUGE-L (precision, recall, F1) on lower-cased words; inputs cut at max_words."""
    c, r = words(candidate)[:max_words], words(reference)[:max_words]
    if not c or not r:
        return 0.0, 0.0, 0.0
    lcs = lcs_length(c, r)
    if lcs == 0:
        return 0.0, 0.0, 0.0
    p, rec = lcs / len(c), lcs / len(r)
    return p, rec, 2 * p * rec / (p + rec)


def copied_mask(candidate: list[str], source: list[str], min_run: int) -> list[bool]:
    """Which words of ``candidate`` sit in a run of at least ``min_run`` consecutive
    words that also occurs, in order, in ``source``."""
    if len(candidate) < min_run or len(source) < min_run:
        return [False] * len(candidate)
    grams = {tuple(source[i : i + min_run]) for i in range(len(source) - min_run + 1)}
    mask = [False] * len(candidate)
    for i in range(len(candidate) - min_run + 1):
        if tuple(candidate[i : i + min_run]) in grams:
            mask[i : i + min_run] = [True] * min_run
    return mask


def without_runs(text: str, source: str, min_run: int) -> str:
    """``text`` (as lower-cased words) minus its runs of ``min_run``+ words from
    ``source``: what an answer says beyond restating the question."""
    t = words(text)
    return " ".join(w for w, copied in zip(t, copied_mask(t, words(source), min_run)) if not copied)
