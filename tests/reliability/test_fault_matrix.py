"""Every provider under every fault: the sync converges to a clean sync's rows, or stops with a
clear error from which a rerun converges; cursors never move past unwritten rows."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.reliability import scenario

#: Two pages of bookings per provider keep the matrix quick; bench/faults.py runs three.
CI_BOOKINGS = {"hostaway": 250, "smoobu": 150, "lodgify": 80, "guesty": 150, "beds24": 150}
CASES = [
    pytest.param(provider, name, id=f"{provider}-{name}")
    for provider in scenario.PROVIDERS
    for name in scenario.matrix(provider)
]
#: Faults a single run absorbs by retrying (fewer failures in a row than max_attempts).
ABSORBED = {
    "429 storm, Retry-After",
    "429 storm, no Retry-After",
    "5xx bursts",
    "slow responses",
    "timeouts",
    "connection resets",
    "truncated JSON",
    "malformed JSON",
    "token expiry mid-sync",
    "duplicates across pages",
}


@pytest.mark.parametrize(("provider", "name"), CASES)
def test_sync_under_fault_converges_to_the_rows_of_a_clean_sync(
    provider: str, name: str, tmp_path: Path
) -> None:
    faults = scenario.matrix(provider)[name]
    outcome = scenario.run(
        provider, name, faults, tmp_path, bookings=CI_BOOKINGS[provider], max_page=100
    )
    assert outcome.injected > 0, "the fault never struck: the scenario tests nothing"
    assert outcome.problems == []
    assert (outcome.lost, outcome.changed, outcome.extra, outcome.duplicated) == (0, 0, 0, 0)
    assert outcome.converged, outcome
    if name in ABSORBED:
        assert outcome.statuses == ["succeeded"]
    elif name == "5xx outage":  # longer than the retries: a clear error, then the rerun resumes
        assert outcome.statuses[0] in ("failed", "partial")
        assert outcome.errors[0] == "provider_unavailable"
    elif name == "schema drift: record without id":  # skipped, reported, fetched again
        assert outcome.statuses == ["partial", "succeeded"]
        assert outcome.skipped == 1
