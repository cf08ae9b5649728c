"""When a token quota (Guesty: 5 tokens per client per 24 h) is what blocks, the error says so."""

from __future__ import annotations

from pathlib import Path

from pms_cli.http.tokens import MemoryTokenCache
from tests.conftest import SharedClock
from tests.providers.test_guesty_http import harness


def test_an_exhausted_guesty_token_quota_is_named_in_the_error(
    tmp_path: Path, clock: SharedClock
) -> None:
    h = harness(tmp_path, clock, listings=2, reservations=10, token_quota=1)
    h.sync()
    h.token_cache = MemoryTokenCache()  # another machine that does not share the cache
    result = h.sync()
    assert result.status == "failed"
    assert result.error is not None
    assert "token quota" in result.error["message"]
    assert "5 tokens per client ID per 24 hours" in result.error["message"]
    assert "24-hour window" in result.error["hint"]
