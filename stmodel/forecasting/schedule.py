"""Hierarchical temporal aggregation (Pangu-Weather): reach each lead with as few
model steps as possible, greedily using the longest model that fits."""

from __future__ import annotations

from collections.abc import Sequence


def greedy_steps(lead_hours: int, model_hours: Sequence[int]) -> list[int]:
    """E.g. 56 h with (24, 6, 1) -> [24, 24, 6, 1, 1]."""
    steps, remaining = [], lead_hours
    for dt in sorted(set(model_hours), reverse=True):
        count, remaining = divmod(remaining, dt)
        steps += [dt] * count
    if remaining:
        raise ValueError(
            f"lead {lead_hours} h cannot be reached with steps of {sorted(set(model_hours))} h"
        )
    return steps


def rollout_plan(
    leads_hours: Sequence[int], model_hours: Sequence[int]
) -> list[tuple[int, int, int]]:
    """Steps (from_lead, dt, to_lead) reaching every requested lead, sharing prefixes.

    Each lead uses its greedy schedule; a state computed once (say 48 h by
    24 + 24) serves every lead whose schedule passes through it. The plan is
    ordered so each step's input exists, and bounded memory only needs the
    states still to be continued from.
    """
    plan: dict[int, tuple[int, int]] = {}
    for lead in sorted(leads_hours):
        at = 0
        for dt in greedy_steps(lead, model_hours):
            plan.setdefault(at + dt, (at, dt))
            at += dt
    return [(start, dt, end) for end, (start, dt) in sorted(plan.items())]
