"""Every rejection case, per provider, and the signed deliveries each documented scheme makes.

Rejections answer one identical 401 body whatever went wrong (no detail leaked), are counted
by reason, and never reach the inbox.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import pytest

from pms_cli.webhooks.guesty import TOLERANCE_SECONDS, sign_svix, verify_svix
from pms_cli.webhooks.lodgify import signature
from tests.webhooks.conftest import PROVIDERS, Rig

UNAUTHORIZED = {"error": "unauthorized"}


def one_delivery(rig: Rig) -> Any:
    """A real delivery made by the sandbox (documented payload + authentication)."""
    rig.create(1)
    hooks = rig.sender.take()
    assert hooks, "the sandbox queued no webhook"
    return hooks[0]


def assert_rejected(rig: Rig, response: Any, reason: str) -> None:
    assert response.status_code == 401
    assert response.json() == UNAUTHORIZED
    assert rig.receiver.metrics[f"rejected.{reason}"] == 1
    assert rig.store.inbox_counts() == {}


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_delivery_signed_by_the_sandbox_is_accepted_and_stored(
    provider: str, rig_factory: Any
) -> None:
    rig = rig_factory(provider)
    hook = one_delivery(rig)
    response = rig.post(hook.body, hook.headers, url=hook.url)
    assert response.status_code == 200
    assert response.json() == {"ok": True}
    assert rig.store.inbox_counts() == {"pending": 1}


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_delivery_for_an_unknown_connection_is_rejected(provider: str, rig_factory: Any) -> None:
    rig = rig_factory(provider)
    hook = one_delivery(rig)
    url = hook.url.replace(rig.conn.id, "00000000-0000-0000-0000-000000000000")
    assert_rejected(rig, rig.post(hook.body, hook.headers, url=url), "unknown_connection")


def test_a_connection_of_another_provider_is_rejected_like_an_unknown_one(
    rig_factory: Any,
) -> None:
    rig = rig_factory("smoobu")
    hook = one_delivery(rig)
    url = hook.url.replace("/webhooks/smoobu/", "/webhooks/beds24/")
    assert_rejected(rig, rig.post(hook.body, hook.headers, url=url), "unknown_connection")


def test_an_unknown_provider_in_the_path_is_not_found(rig_factory: Any) -> None:
    rig = rig_factory("smoobu")
    response = rig.post(b"{}", url=f"{rig.url.replace('/smoobu/', '/airbnb/')}")
    assert response.status_code == 404


# --- Guesty (Svix) --------------------------------------------------------------------------


def test_guesty_rejects_a_bad_signature(rig_factory: Any) -> None:
    rig = rig_factory("guesty")
    hook = one_delivery(rig)
    headers = {**hook.headers, "svix-signature": "v1," + base64.b64encode(b"x" * 32).decode()}
    assert_rejected(rig, rig.post(hook.body, headers, url=hook.url), "bad_signature")


def test_guesty_rejects_a_body_changed_after_signing(rig_factory: Any) -> None:
    rig = rig_factory("guesty")
    hook = one_delivery(rig)
    body = hook.body.replace(b'"reservation.created.v2"', b'"reservation.updated.v2"')
    assert body != hook.body
    assert_rejected(rig, rig.post(body, hook.headers, url=hook.url), "bad_signature")


@pytest.mark.parametrize("skew", [-(TOLERANCE_SECONDS + 1), TOLERANCE_SECONDS + 1])
def test_guesty_rejects_a_stale_or_future_timestamp_even_when_correctly_signed(
    rig_factory: Any, skew: int
) -> None:
    rig = rig_factory("guesty")
    hook = one_delivery(rig)
    secret = rig.secrets()["webhook_secret"].get_secret_value()
    stamp = int(rig.clock.time()) + skew
    headers = {
        **hook.headers,
        "svix-timestamp": str(stamp),
        "svix-signature": sign_svix(secret, hook.headers["svix-id"], stamp, hook.body),
    }
    assert_rejected(rig, rig.post(hook.body, headers, url=hook.url), "stale_timestamp")


def test_guesty_rejects_a_delivery_signed_with_another_endpoints_secret(rig_factory: Any) -> None:
    rig = rig_factory("guesty")
    hook = one_delivery(rig)
    other = "whsec_" + base64.b64encode(b"another endpoint's key 32 bytes!").decode()
    stamp = int(hook.headers["svix-timestamp"])
    headers = {
        **hook.headers,
        "svix-signature": sign_svix(other, hook.headers["svix-id"], stamp, hook.body),
    }
    assert_rejected(rig, rig.post(hook.body, headers, url=hook.url), "bad_signature")


def test_guesty_rejects_a_delivery_without_svix_headers(rig_factory: Any) -> None:
    rig = rig_factory("guesty")
    hook = one_delivery(rig)
    headers = {"Content-Type": "application/json"}
    assert_rejected(rig, rig.post(hook.body, headers, url=hook.url), "missing_signature")


def test_svix_verification_matches_the_documented_example() -> None:
    # The worked example of Svix's / Standard Webhooks' documentation.
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    msg_id, stamp = "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330
    body = b'{"test": 2432232314}'
    expected = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    assert sign_svix(secret, msg_id, stamp, body) == expected
    headers = {"svix-id": msg_id, "svix-timestamp": str(stamp), "svix-signature": expected}
    assert verify_svix(secret, headers, body, now=stamp + 10) == msg_id


def test_svix_accepts_any_of_several_signatures_during_a_secret_rotation() -> None:
    secret = "whsec_" + base64.b64encode(b"k" * 24).decode()
    now = time.time()
    good = sign_svix(secret, "msg_1", int(now), b"{}")
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(int(now)),
        "webhook-signature": f"v1,bm90IGl0 {good}",
    }
    assert verify_svix(secret, headers, b"{}", now) == "msg_1"


# --- Lodgify (ms-signature) -----------------------------------------------------------------


def test_lodgify_rejects_a_bad_signature(rig_factory: Any) -> None:
    rig = rig_factory("lodgify")
    hook = one_delivery(rig)
    headers = {**hook.headers, "ms-signature": "sha256=" + "0" * 64}
    assert_rejected(rig, rig.post(hook.body, headers, url=hook.url), "bad_signature")


def test_lodgify_rejects_a_delivery_signed_with_a_wrong_secret(rig_factory: Any) -> None:
    rig = rig_factory("lodgify")
    hook = one_delivery(rig)
    headers = {**hook.headers, "ms-signature": signature("not-the-subscription-secret", hook.body)}
    assert_rejected(rig, rig.post(hook.body, headers, url=hook.url), "bad_signature")


def test_lodgify_rejects_a_delivery_without_signature(rig_factory: Any) -> None:
    rig = rig_factory("lodgify")
    hook = one_delivery(rig)
    assert_rejected(rig, rig.post(hook.body, {}, url=hook.url), "missing_signature")


def test_lodgify_signature_is_hmac_sha256_hex_of_the_raw_body() -> None:
    body = b'{"action":"booking_change","booking":{"id":1}}'
    digest = hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert signature("s3cret", body) == f"sha256={digest}"


def test_lodgify_accepts_upper_case_hex(rig_factory: Any) -> None:
    rig = rig_factory("lodgify")
    hook = one_delivery(rig)
    headers = {**hook.headers, "ms-signature": hook.headers["ms-signature"].upper()}
    assert rig.post(hook.body, headers, url=hook.url).status_code == 200


# --- Hostaway (Basic auth) ------------------------------------------------------------------


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_hostaway_rejects_a_wrong_password(rig_factory: Any) -> None:
    rig = rig_factory("hostaway")
    hook = one_delivery(rig)
    login = rig.secrets()["webhook_login"].get_secret_value()
    headers = {**hook.headers, "Authorization": basic(login, "guessed")}
    assert_rejected(rig, rig.post(hook.body, headers, url=hook.url), "wrong_secret")


def test_hostaway_rejects_a_delivery_without_basic_auth(rig_factory: Any) -> None:
    rig = rig_factory("hostaway")
    hook = one_delivery(rig)
    headers = {"Content-Type": "application/json"}
    assert_rejected(rig, rig.post(hook.body, headers, url=hook.url), "missing_credentials")


def test_hostaway_rejects_garbage_in_the_authorization_header(rig_factory: Any) -> None:
    rig = rig_factory("hostaway")
    hook = one_delivery(rig)
    headers = {**hook.headers, "Authorization": "Basic %%%not-base64"}
    assert_rejected(rig, rig.post(hook.body, headers, url=hook.url), "bad_credentials")


# --- Smoobu and Beds24 (per-connection token) -----------------------------------------------


def test_smoobu_rejects_a_wrong_token_in_the_url(rig_factory: Any) -> None:
    rig = rig_factory("smoobu")
    hook = one_delivery(rig)
    url = hook.url.split("?")[0] + "?token=guessed-token"
    assert_rejected(rig, rig.post(hook.body, hook.headers, url=url), "wrong_secret")


def test_smoobu_rejects_a_url_without_token(rig_factory: Any) -> None:
    rig = rig_factory("smoobu")
    hook = one_delivery(rig)
    url = hook.url.split("?")[0]
    assert_rejected(rig, rig.post(hook.body, hook.headers, url=url), "missing_credentials")


def test_beds24_rejects_a_wrong_custom_header_token(rig_factory: Any) -> None:
    rig = rig_factory("beds24")
    hook = one_delivery(rig)
    headers = {**hook.headers, "X-Pms-Webhook-Token": "guessed-token"}
    assert_rejected(rig, rig.post(hook.body, headers, url=hook.url), "wrong_secret")


def test_beds24_accepts_the_token_in_the_url_instead_of_the_header(rig_factory: Any) -> None:
    rig = rig_factory("beds24")
    hook = one_delivery(rig)
    token = rig.secrets()["webhook_token"].get_secret_value()
    headers = {k: v for k, v in hook.headers.items() if k != "X-Pms-Webhook-Token"}
    response = rig.post(hook.body, headers, url=f"{hook.url}?token={token}")
    assert response.status_code == 200


def test_beds24_version_1_reads_the_query_and_never_stores_the_card_form(
    rig_factory: Any,
) -> None:
    rig = rig_factory("beds24")
    token = rig.secrets()["webhook_token"].get_secret_value()
    booking_id = next(iter(rig.sandbox.bookings))
    url = f"{rig.url}?token={token}&bookid={booking_id}&status=modify"
    response = rig.post(b"cvv=123&cardnumber=4111111111111111", {}, url=url)
    assert response.status_code == 200
    (row,) = rig.store.inbox_list()
    assert row.payload["change"]["external_id"] == str(booking_id)
    assert "4111" not in json.dumps(row.payload)


def test_a_connection_without_webhook_secrets_rejects_everything(rig_factory: Any) -> None:
    rig = rig_factory("smoobu", configure=False)
    response = rig.post(b"{}", url=f"{rig.url}?token=anything")
    assert_rejected(rig, response, "not_configured")


# --- body problems --------------------------------------------------------------------------


def test_malformed_json_from_an_authenticated_sender_is_400_and_kept_for_inspection(
    rig_factory: Any,
) -> None:
    rig = rig_factory("lodgify")
    hook = one_delivery(rig)
    secret = rig.secrets()["webhook_secret.booking_new_any_status"].get_secret_value()
    body = b'{"action": "booking_new_any_status", "booking": {'
    response = rig.post(body, {"ms-signature": signature(secret, body)}, url=hook.url)
    assert response.status_code == 400
    assert response.json() == {"error": "bad request"}
    (row,) = rig.store.inbox_list()
    assert row.status == "invalid"
    assert row.payload == {
        "size": len(body),
        "content_type": "",
        "sha256": hashlib.sha256(body).hexdigest(),
        "excerpt": body.decode(),
    }
    assert rig.receiver.metrics["rejected.malformed"] == 1


def test_malformed_json_from_an_unauthenticated_sender_is_401_and_not_stored(
    rig_factory: Any,
) -> None:
    rig = rig_factory("lodgify")
    hook = one_delivery(rig)
    assert_rejected(rig, rig.post(b"{not json", {}, url=hook.url), "missing_signature")


def test_a_body_without_the_record_id_is_400(rig_factory: Any) -> None:
    rig = rig_factory("smoobu")
    hook = one_delivery(rig)
    body = json.dumps({"action": "updateReservation", "data": {"type": "reservation"}}).encode()
    assert rig.post(body, hook.headers, url=hook.url).status_code == 400


@pytest.mark.parametrize("declared", [True, False])
def test_an_oversized_body_is_413_before_any_verification(rig_factory: Any, declared: bool) -> None:
    rig = rig_factory("smoobu")
    rig.options.max_body_bytes = 4096
    body = b'{"pad": "' + b"x" * 5000 + b'"}'

    async def chunks() -> Any:
        yield body[:3000]
        yield body[3000:]

    import asyncio

    async def go() -> Any:
        async with rig.client() as client:
            content: Any = body if declared else chunks()
            return await client.post(rig.url + "?token=x", content=content)

    response = asyncio.run(go())
    assert response.status_code == 413
    assert rig.receiver.metrics["rejected.oversized"] == 1
    assert rig.store.inbox_counts() == {}


def test_unknown_events_are_acknowledged_and_ignored(rig_factory: Any) -> None:
    rig = rig_factory("smoobu")
    token = rig.secrets()["webhook_token"].get_secret_value()
    body = json.dumps({"action": "newMessage", "data": {"id": 1, "booking": {"id": 2}}}).encode()
    assert rig.post(body, {}, url=f"{rig.url}?token={token}").status_code == 200
    assert rig.store.inbox_counts() == {"ignored": 1}
    assert rig.apply() == 0


def test_rejections_and_stored_events_never_contain_the_secret(
    rig_factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    rig = rig_factory("smoobu")
    token = rig.secrets()["webhook_token"].get_secret_value()
    hook = one_delivery(rig)
    rig.post(hook.body, hook.headers, url=hook.url)
    bad = rig.post(hook.body, hook.headers, url=hook.url.replace(token, token[:-2] + "zz"))
    assert bad.status_code == 401
    assert token not in bad.text
    # The receiver's own log lines (the test client's httpx log shows what it sent).
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("pms"))
    assert "rejected" in ours
    assert token not in ours
    for row in rig.store.inbox_list():
        assert token not in json.dumps(row.payload)
    assert token not in json.dumps(dict(rig.receiver.metrics))
