"""Every resource declares the raw keys its mapping relies on, so a renamed field is noticed.

A resource with no ``required``/``expected`` keys turns a renamed ``firstName`` into rows with
NULL names and exit 0 (issue 15: Smoobu and Guesty guests did); this enforces the declaration,
and checks the declared keys against each provider's sandbox records.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pms_cli.providers import get_provider
from pms_cli.providers.base import Resource
from pms_cli.sync.engine import DRIFT_MIN_RECORDS
from tests.conftest import SharedClock
from tests.helpers import Harness

PROVIDERS = ("hostaway", "smoobu", "lodgify", "guesty", "beds24")
RESOURCES = [(p, r) for p in PROVIDERS for r in get_provider(p).resources]


@pytest.mark.parametrize(("provider", "resource"), RESOURCES, ids=lambda x: getattr(x, "name", x))
def test_every_resource_declares_required_and_expected_keys(
    provider: str, resource: Resource
) -> None:
    assert resource.required, f"{provider} {resource.name} declares no required keys"
    assert resource.expected, f"{provider} {resource.name} declares no expected keys"


@pytest.mark.parametrize(
    ("provider", "renamed"), [("smoobu", "firstName"), ("guesty", "firstName")]
)
def test_a_renamed_guest_first_name_is_schema_drift_not_a_silent_null(
    tmp_path: Path, clock: SharedClock, provider: str, renamed: str
) -> None:
    h = Harness(provider, tmp_path, clock, listings=2, reservations=DRIFT_MIN_RECORDS * 2)
    guests = h.state.guests
    assert len(guests) >= DRIFT_MIN_RECORDS
    for guest in guests.values():
        guest["given_name"] = guest.pop(renamed, None)
    result = h.sync(resources=["guests"])
    assert result.status == "partial", result.to_dict()
    assert result.error is not None and result.error["code"] == "schema_drift"
    assert renamed in result.error["message"]
