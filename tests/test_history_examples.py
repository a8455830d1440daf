"""Histories worth keeping, replayed step by step through the same machines as plain tests.

Each is one Hypothesis found (or that a known hole needs), written out so that it runs on every
CI run whatever the random search does.
"""

from __future__ import annotations

import pytest

from tests.test_histories import GpHistory, SysproHistory

pytestmark = pytest.mark.slow


def _syspro(transport: str = "enet", **start) -> SysproHistory:
    m = SysproHistory()
    m.start(transport=transport, **{"ts_format": "hex", "first": 0x0A1F00, "cap": None, "page_size": 2, **start})
    return m


@pytest.mark.parametrize("transport", ["enet", "odata"])
def test_an_invoice_held_released_and_held_again_is_announced_each_time(transport):
    m = _syspro(transport)
    try:
        m.poll()
        m.insert(amount=120, supplier="0000001")
        m.poll()
        for status in ("H", "", "H"):
            m.set_status(i=0, status=status)
            m.poll()
        assert m.model.checks == 5
    finally:
        m.teardown()


@pytest.mark.parametrize("first", [0x100000, 0x99_0000_0000])
def test_rowversions_without_hex_letters_lose_no_insert_payment_or_status(first):
    m = _syspro("enet", first=first, ts_format="hex", cap=1, page_size=3)
    try:
        m.poll()
        for n in range(4):
            m.insert(amount=100 + n, supplier="0000002")
        m.pay(i=1, part=2)
        m.set_status(i=2, status="H")
        m.poll()
        m.poll()
    finally:
        m.teardown()


def test_switching_transport_after_the_baseline_posts_what_changed_meanwhile():
    m = _syspro("enet")
    try:
        m.insert(amount=300, supplier="0000003")
        m.poll()  # the baseline: nothing posted
        m.set_reference(i=0, reference="PO 4410")
        m.switch_transport()
        m.poll()  # OData's first poll: not a baseline, the change is news
        m.insert(amount=301, supplier="0000001")
        m.switch_transport()
        m.poll()
    finally:
        m.teardown()


def test_a_row_deleted_between_pages_hides_no_other_row():
    m = _syspro("odata", page_size=1)
    try:
        m.poll()
        for n in range(4):
            m.insert(amount=10 + n, supplier="0000001")
        m.poll()
        for n in range(4):
            m.set_reference(i=n, reference="credit note")
        m.poll_while_the_erp_changes(i=0, what="delete")
        m.poll()
    finally:
        m.teardown()


def test_a_gp_clock_glitch_then_a_fix_hides_no_later_change():
    m = GpHistory()
    m.start(page_size=None, envelope="payload")
    try:
        m.poll()
        m.clock_glitch(hours=3)
        m.insert(amount=50, vendor="ACETRAVE0001")
        m.poll()
        m.clock_glitch(hours=0)
        m.hold(i=0, hold=True)
        m.poll()
        m.hold(i=0, hold=False)
        m.poll()
    finally:
        m.teardown()
