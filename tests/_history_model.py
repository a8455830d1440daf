"""A reference model of what Slack should have been told, for generated ERP histories.

The model knows nothing of watermarks, cursors or hashes. It records, per document, the states
the document has been in (only the fields a person sees) and whether the first poll found it
already there. After every poll the real pipeline's Slack messages are read back and held
against it:

1. nothing is announced twice in a row (a duplicate);
2. every announced state is one the document really had, in order, after its baseline;
3. after a poll nothing disturbed, every document's latest state is the last one announced
   (nothing missing), unless it is exactly its baseline and never changed;
4. a document deleted is never announced again.

A state that returns (hold on, off, on again) is announced each time: rule 1 allows it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Hashable, Iterable, Mapping, Sequence

from hypothesis import HealthCheck, settings

from erp_slack.store import Store

# `HYPOTHESIS_PROFILE=deep pytest tests/test_histories.py` searches far longer than CI does.
settings.register_profile(
    "ci", max_examples=60, stateful_step_count=25, deadline=None, derandomize=True, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "deep", max_examples=400, stateful_step_count=40, deadline=None, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
settings.load_profile(PROFILE)

State = tuple[Hashable, ...]


@dataclass
class Doc:
    """One document as the model knows it."""

    states: list[State]
    baseline_at: int | None = None  # index of the state the first poll found, if it was there
    deleted: bool = False
    settled: bool = True  # False while a change raced a poll (it may be seen now or next time)

    @property
    def current(self) -> State:
        return self.states[-1]


@dataclass
class Model:
    docs: dict[str, Doc] = field(default_factory=dict)
    polled: bool = False
    checks: int = 0

    def insert(self, key: str, state: State) -> None:
        self.docs[key] = Doc([state])

    def change(self, key: str, state: State) -> None:
        doc = self.docs[key]
        if state != doc.current:
            doc.states.append(state)

    def delete(self, key: str) -> None:
        self.docs[key].deleted = True

    def first_poll(self) -> None:
        """The first poll records what is there as the baseline (nothing posted)."""
        if not self.polled:
            for doc in self.docs.values():
                if not doc.deleted:
                    doc.baseline_at = len(doc.states) - 1
            self.polled = True

    def check(self, announced: Mapping[str, Sequence[State]], *, settled: bool) -> None:
        """Hold the announcements (per document, in order) against the model."""
        self.checks += 1
        unknown = set(announced) - set(self.docs)
        assert not unknown, f"announced documents the ERP never had: {sorted(unknown)}"
        for key, doc in self.docs.items():
            said = list(announced.get(key, ()))
            for a, b in zip(said, said[1:]):
                assert a != b, f"{key}: {a} announced twice in a row: {said}"
            base = doc.states[doc.baseline_at] if doc.baseline_at is not None else None
            history = doc.states[doc.baseline_at + 1:] if doc.baseline_at is not None else doc.states
            it = iter(history)
            assert all(any(s == h for h in it) for s in said), \
                f"{key}: announced {said}, not in order among the states it had {history}"
            if doc.deleted or not settled or not doc.settled:
                continue
            last = said[-1] if said else base
            assert last == doc.current, f"{key}: is {doc.current} but Slack last heard {last} (announced {said})"

    def settle(self) -> None:
        for doc in self.docs.values():
            doc.settled = True


def announced(store: Store, slack: Any, entity: str, state_of: Any,
              key_of: Any = lambda k: k) -> dict[str, list[State]]:
    """Per document, the states Slack was told of, in delivery order (every message's metadata
    names the deliveries it carries; each names its record and fields)."""
    rows = {r["uid"]: r for r in store.deliveries(dry_run=False, entity=entity)}
    seen: list[dict[str, Any]] = []
    for message in slack.posted():
        payload = (message.get("metadata") or {}).get("event_payload") or {}
        for uid in payload.get("deliveries") or []:
            if uid in rows:
                seen.append(rows[uid])
    import json

    out: dict[str, list[State]] = {}
    for r in sorted(seen, key=lambda r: r["id"]):
        out.setdefault(key_of(r["record_key"]), []).append(state_of(json.loads(r["fields"])))
    return out


def money(value: Any) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.01"))


def pick(items: Iterable[str], index: int) -> str | None:
    pool = sorted(items)
    return pool[index % len(pool)] if pool else None
