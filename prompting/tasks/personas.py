"""Personas and moods: every challenge reads as a particular user wrote it.

A fixed template lets a miner recognise the task from its wording and answer with
a canned pattern. Each challenge instead gets a persona and a mood, drawn from its
own seed (so ``replay`` gives the same text), and is phrased the way that user would
write: an opening in their voice, the task's request, a closing. When the validator
runs a real LLM, the persona and mood also go into the prompts that write questions
and instructions. Both are recorded in the challenge's ``meta`` and in the event.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Persona:
    who: str  # "a nurse working night shifts"
    wants: str  # how they like answers, in their words


PERSONAS = (
    Persona("a nurse working night shifts", "plain words, no jargon"),
    Persona("a high-school physics teacher", "something I can explain to a class"),
    Persona("a retired accountant learning to code", "a careful, step by step answer"),
    Persona("a backend developer on call", "the short version"),
    Persona("a first-year computer science student", "an answer I can check against my notes"),
    Persona("a journalist on a deadline", "the facts, straight"),
    Persona("a data analyst who mostly writes SQL", "something precise"),
    Persona("a small-business owner", "an answer without fluff"),
    Persona("a technical writer", "clear and correct wording"),
    Persona("a graduate student in linguistics", "exact wording"),
    Persona("a hobbyist who builds robots at weekends", "a practical answer"),
    Persona("a librarian", "an accurate, sourced answer"),
)


@dataclass(frozen=True)
class Mood:
    name: str
    openings: tuple[str, ...]  # "{who}" is the persona
    closings: tuple[str, ...]


MOODS = (
    Mood(
        "curious",
        ("Hi! I'm {who} and I've been wondering about this.", "Hello, {who} here, just curious."),
        ("Thanks, I'd love to understand it.", "Thank you!"),
    ),
    Mood(
        "in a hurry",
        ("Quick one, I'm {who} and short on time.", "{who} here, in a rush:"),
        ("Please be quick.", "Keep it short, thanks."),
    ),
    Mood(
        "frustrated",
        ("I'm {who} and I've been stuck on this for an hour.", "Ugh. I'm {who}."),
        ("Please just get it right.", "I really need this to work."),
    ),
    Mood(
        "polite",
        ("Good morning. I am {who}; could you help me, please?", "Hello, I'm {who}."),
        ("Many thanks in advance.", "I appreciate your help."),
    ),
    Mood(
        "skeptical",
        ("I'm {who} and I've heard conflicting things about this.", "{who} here, not convinced."),
        ("Make sure it's actually right.", "Double-check it, please."),
    ),
    Mood(
        "cheerful",
        ("Hey there! I'm {who} and loving this stuff.", "Hiya, {who} here :)"),
        ("Cheers!", "Thanks a lot!"),
    ),
)


@dataclass(frozen=True)
class Voice:
    """A persona in a mood, with the opening and closing picked for one challenge."""

    persona: Persona
    mood: Mood
    opening: str
    closing: str

    def phrase(self, request: str) -> str:
        """The task's request as this user writes it."""
        return f"{self.opening}\n\n{request}\n\nI'd like {self.persona.wants}. {self.closing}"

    def describe(self) -> str:
        """For the validator LLM's prompts: who is asking and how they feel."""
        return f"{self.persona.who}, who is {self.mood.name}"

    def meta(self) -> dict[str, str]:
        return {"persona": self.persona.who, "mood": self.mood.name}


def voice_for(task: str, seed: int) -> Voice:
    """The voice of challenge (task, seed): its own stream, so tasks' draws are unchanged."""
    rng = random.Random(f"persona:{task}:{seed}")
    persona, mood = rng.choice(PERSONAS), rng.choice(MOODS)
    opening = rng.choice(mood.openings).format(who=persona.who)
    return Voice(persona, mood, opening[0].upper() + opening[1:], rng.choice(mood.closings))
