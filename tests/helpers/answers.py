"""Answers the scripted models give, computed from the bundle they are handed."""

from __future__ import annotations

from distill.schemas import Bundle

TASK = "Add a tax rates table and lookup by region: what are the steps?"
HEDGE = "I'm not sure; it is hard to say without more context about the billing code."


def grounded_answer(bundle: Bundle) -> str:
    """An answer that passes the gate: the top piece's own steps (supported by it), every
    validation step of the bundle it holds, and its citation."""
    top = (bundle.exemplars + bundle.warnings)[0]
    steps = "\n".join(f"- {s.step}" for s in bundle.validation_steps if s.id == top.id)
    return f"{top.response}\nValidation:\n{steps}\nSources: [{top.id}]"


def reworded_answer(bundle: Bundle) -> str:
    """A passing answer that is new: the top piece's sentences with their words in another
    order (every word is in the playbook, so it is supported; no run of three words is, so it
    is no reuse), and its validation steps likewise."""
    top = (bundle.exemplars + bundle.warnings)[0]
    steps = [s.step for s in bundle.validation_steps if s.id == top.id]
    lines = [" ".join(reversed(line.split())) for line in [*top.response.splitlines(), *steps]]
    return "\n".join([*lines, f"Sources: [{top.id}]"])


PLAIN = "Add a unique key per event and skip events already seen; verify it on a replay."


def grounded_answer_or_plain(bundle: Bundle) -> str:
    """The grounded answer when something was retrieved, else a plain one (the baseline)."""
    if bundle.exemplars or bundle.warnings:
        return grounded_answer(bundle)
    return PLAIN


def paced_answer(bundle: Bundle) -> str:
    """``HEDGE`` when the task says "hedge", else the grounded answer or the plain one."""
    if "hedge" in bundle.task.lower():
        return HEDGE
    return grounded_answer_or_plain(bundle)
