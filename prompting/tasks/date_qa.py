"""Dates of events: a passage lists a country's public holidays in one year; the miner
gives the date of one of them. Rewarded by distance from the true date (``dates``).

The source is offline (``HolidayCalendars``); the passage's date style varies per
document and the miner may answer in any usual written form.
"""

from __future__ import annotations

from prompting.datasets.offline import dataset
from prompting.tasks import templates as t
from prompting.tasks.base import Challenge, Draft, Task


class DateQATask(Task):
    name = "date_qa"
    rewards = {"date": 1.0}
    penalties = ("empty", "too_long", "refusal")

    def draft(self, seed: int) -> Draft:
        rng = self.rng(seed)
        calendars = dataset("holidays")
        doc = calendars.get(rng)
        iso, event = rng.choice(calendars.window(doc.id))
        return Draft(self, seed, doc, {"date": iso, "event": event, "q": rng.randrange(99)})

    def finish(self, draft: Draft) -> Challenge:
        doc, s = draft.document, draft.state
        question = t.DATE_QUESTIONS[s["q"] % len(t.DATE_QUESTIONS)].format(
            event=s["event"], country=doc.title, year=s["date"][:4]
        )
        return self.challenge(
            draft,
            t.DATE_CHALLENGE.format(passage=doc.text, question=question),
            s["date"],
            doc.text,
            event=s["event"],
            question=question,
        )
