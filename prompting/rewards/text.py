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
    words that also occurs, in order, in ``source`` (the runs in any order; swap the
    two for the source's words that the candidate repeats)."""
    if len(candidate) < min_run or len(source) < min_run:
        return [False] * len(candidate)
    grams = {tuple(source[i : i + min_run]) for i in range(len(source) - min_run + 1)}
    mask = [False] * len(candidate)
    for i in range(len(candidate) - min_run + 1):
        if tuple(candidate[i : i + min_run]) in grams:
            mask[i : i + min_run] = [True] * min_run
    return mask


Block = tuple[int, int, int, int]  # candidate[i1:i2] == source[j1:j2]


def aligned_blocks(candidate: list[str], source: list[str]) -> list[Block]:
    """The stretches of the two texts' in-order alignment (their longest common
    subsequence) where they match, in order."""
    from rapidfuzz.distance import LCSseq

    if not candidate or not source:
        return []
    return [
        (op.src_start, op.src_end, op.dest_start, op.dest_end)
        for op in LCSseq.opcodes(candidate, source)
        if op.tag == "equal"
    ]


def edited_copy(
    candidate: list[str],
    source: list[str],
    min_words: int,
    max_gap: int,
    blocks: list[Block] | None = None,
) -> tuple[list[bool], list[bool]]:
    """Which words of ``candidate`` (and of ``source``) belong to a copy of ``source``
    made with light edits: stretches of the two texts' in-order alignment where matched
    words follow each other with at most ``max_gap`` words inserted or dropped on either
    side between them (an article dropped, a synonym swapped, a filler put in), holding
    at least ``min_words`` matched words. Exact runs are such copies too. ``blocks``: the
    two texts' ``aligned_blocks``, where the caller has them already."""
    cand_mask, src_mask = [False] * len(candidate), [False] * len(source)
    chain: list[Block] = []

    def close() -> None:
        if sum(i2 - i1 for i1, i2, _, _ in chain) >= min_words:
            for i1, i2, j1, j2 in chain:
                cand_mask[i1:i2] = [True] * (i2 - i1)
                src_mask[j1:j2] = [True] * (j2 - j1)

    for block in aligned_blocks(candidate, source) if blocks is None else blocks:
        if chain and (block[0] - chain[-1][1] > max_gap or block[2] - chain[-1][3] > max_gap):
            close()
            chain = []
        chain.append(block)
    close()
    return cand_mask, src_mask


def without_copies(text: str, source: str, min_run: int, max_gap: int) -> str:
    """``text`` (as lower-cased words) minus what it copies of ``source``, verbatim in
    runs of ``min_run``+ words or lightly edited (``edited_copy``): its own words."""
    t, src = words(text), words(source)
    runs = copied_mask(t, src, min_run)
    edited, _ = edited_copy(t, src, min_run, max_gap)
    return " ".join(w for w, r, e in zip(t, runs, edited) if not (r or e))


def without_runs(text: str, source: str, min_run: int) -> str:
    """``text`` (as lower-cased words) minus its runs of ``min_run``+ words from
    ``source``: what an answer says beyond restating the question."""
    t = words(text)
    return " ".join(w for w, copied in zip(t, copied_mask(t, words(source), min_run)) if not copied)


# Share of the ROUGE-L that a shown passage's lead or bag of words earns against the
# reference which an answer must pass before it counts (scripts/benchmark_rewards.py).
PASSAGE_ROUGE_SHARE = 0.5


def beyond_baseline(value: float, base: float) -> float:
    """``value`` beyond ``base``, rescaled so that 1 stays 1: (value - base) / (1 - base)."""
    return min(1.0, max(0.0, (value - base) / (1.0 - base))) if base < 1 else 0.0
