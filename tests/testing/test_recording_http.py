"""RecordingHTTPServer through requests and urllib3: records, keyed upserts, idempotency, rejections and faults."""

from __future__ import annotations

import http.client
import json
import os
import threading
import time

import pytest
import requests
import urllib3
from airflow_opsflow_testing.recording_http import RecordingHTTPServer

from airflow_opsflow.sync.destinations.base import OK, Record, TransientError
from airflow_opsflow.sync.destinations.http import HttpEndpointClient
from airflow_opsflow.sync.destinations.transport import HttpTarget, HttpTransport

CUSTOMERS = "/v1/customers"


@pytest.fixture
def api(recording_http: RecordingHTTPServer) -> RecordingHTTPServer:
    recording_http.keyed(CUSTOMERS, key_field="id", delete_path=f"{CUSTOMERS}/delete")
    return recording_http


def test_records_any_method_path_and_body(recording_http: RecordingHTTPServer) -> None:
    s = requests.Session()
    assert s.post(f"{recording_http.url}/hooks/a?x=1&x=2", json={"n": 1}, timeout=5).json() == {"ok": True}
    s.put(f"{recording_http.url}/hooks/b", data=b"\x00raw", headers={"X-Trace": "t1"}, timeout=5)
    s.delete(f"{recording_http.url}/other", timeout=5)
    first, second = recording_http.requests_to("/hooks")
    assert (first.method, first.path, first.query, first.body) == ("POST", "/hooks/a", {"x": ["1", "2"]}, {"n": 1})
    assert (second.body, second.headers["X-Trace"], second.status, second.outcome) == (b"\x00raw", "t1", 200, "applied")
    assert recording_http.bodies("/hooks", method="put") == [b"\x00raw"]
    assert [r.method for r in recording_http.requests] == ["POST", "PUT", "DELETE"] and first.at <= second.at
    recording_http.respond("/other", status=202, body={"queued": True}, headers={"Location": "/jobs/1"})
    answer = s.get(f"{recording_http.url}/other/x", timeout=5)
    assert (answer.status_code, answer.json(), answer.headers["Location"]) == (202, {"queued": True}, "/jobs/1")


def test_keyed_upserts_deletes_and_counters(api: RecordingHTTPServer) -> None:
    s, url = requests.Session(), api.url + CUSTOMERS
    batch = s.post(url, json=[{"id": 1, "name": "Ann"}, {"id": 2, "name": "Bob"}], timeout=5)
    assert batch.json() == {"results": [{"key": "1", "status": "created"}, {"key": "2", "status": "created"}],
                            "created": 2, "updated": 0}
    assert s.post(url, json={"records": [{"id": 2, "name": "Bo"}, {"id": 3}]}, timeout=5).json()["updated"] == 1
    assert s.put(f"{url}/4", json={"name": "Dee"}, timeout=5).status_code == 201  # key from the path
    patched = s.patch(f"{url}/1", json={"id": 1, "tier": "gold"}, timeout=5)
    assert (patched.status_code, patched.json()) == (200, {"id": 1, "name": "Ann", "tier": "gold"})
    assert s.delete(f"{url}/3", timeout=5).status_code == 204 and s.delete(f"{url}/3", timeout=5).status_code == 404
    assert s.post(f"{url}/delete", json={"ids": [4, 99]}, timeout=5).json() == {"deleted": 1, "missing": ["99"]}
    assert s.post(url, json=[{"name": "no key"}], timeout=5).status_code == 400
    assert api.state(CUSTOMERS) == {"1": {"id": 1, "name": "Ann", "tier": "gold"}, "2": {"id": 2, "name": "Bo"}}
    assert s.get(f"{url}/2", timeout=5).json() == {"id": 2, "name": "Bo"} and len(s.get(url, timeout=5).json()) == 2
    assert api.inserts(CUSTOMERS) == {"1": 1, "2": 1, "3": 1, "4": 1}
    assert api.updates(CUSTOMERS) == {"1": 1, "2": 1} and api.deletes(CUSTOMERS) == {"3": 1, "4": 1}


def test_idempotency_key_replays_the_first_answer(api: RecordingHTTPServer) -> None:
    s, url = requests.Session(), api.url + CUSTOMERS
    first = s.post(url, json={"id": 7, "v": 1}, headers={"Idempotency-Key": "k1"}, timeout=5)
    again = s.post(url, json={"id": 7, "v": 1}, headers={"Idempotency-Key": "k1"}, timeout=5)
    assert (first.status_code, again.status_code, again.json()) == (201, 201, {"id": 7, "v": 1})
    assert again.headers["Idempotent-Replayed"] == "true" and "Idempotent-Replayed" not in first.headers
    assert api.updates(CUSTOMERS) == {} and [r.replay for r in api.requests] == [False, True]
    other = s.post(url, json={"id": 7, "v": 2}, headers={"Idempotency-Key": "k1"}, timeout=5)
    assert other.status_code == 400 and "same parameters" in other.json()["error"]
    assert api.state(CUSTOMERS)["7"] == {"id": 7, "v": 1}


def test_concurrent_idempotent_request_gets_409(api: RecordingHTTPServer) -> None:
    api.hang_next(0.5)
    body, key = {"id": 8}, {"Idempotency-Key": "k2"}
    slow = threading.Thread(target=requests.post, args=(api.url + CUSTOMERS,), kwargs={"json": body, "headers": key})
    slow.start()
    time.sleep(0.15)
    assert requests.post(api.url + CUSTOMERS, json=body, headers=key, timeout=5).status_code == 409
    slow.join()
    assert requests.post(api.url + CUSTOMERS, json=body, headers=key, timeout=5).headers["Idempotent-Replayed"]
    assert [r.outcome for r in api.requests] == ["conflict", "applied", "replayed"]  # recorded as they finished


def test_lost_answer_is_replayed_to_a_retry_with_the_same_key(api: RecordingHTTPServer) -> None:
    api.drop_response_next()
    headers = {"Idempotency-Key": "row-42"}
    with pytest.raises(requests.ConnectionError):
        requests.post(api.url + CUSTOMERS, json={"id": 42}, headers=headers, timeout=5)
    retried = requests.post(api.url + CUSTOMERS, json={"id": 42}, headers=headers, timeout=5)
    assert retried.status_code == 201 and retried.headers["Idempotent-Replayed"] == "true"
    assert api.inserts(CUSTOMERS) == {"42": 1} and api.updates(CUSTOMERS) == {}
    assert [(r.status, r.outcome) for r in api.requests] == [(None, "applied"), (201, "replayed")]


def test_reject_when_refuses_the_whole_batch(api: RecordingHTTPServer) -> None:
    api.reject_when(lambda r: "@" not in r.get("email", "@"), status=422, message="invalid email")
    rows = [{"id": 1, "email": "a@x"}, {"id": 2, "email": "nope"}, {"id": 3, "email": "c@x"}]
    refused = requests.post(api.url + CUSTOMERS, json={"records": rows}, headers={"Idempotency-Key": "b1"}, timeout=5)
    assert (refused.status_code, refused.json()) == (422, {"error": "invalid email"}) and api.state(CUSTOMERS) == {}
    statuses = [requests.post(api.url + CUSTOMERS, json=row, timeout=5).status_code for row in rows]  # split
    assert statuses == [201, 422, 201] and sorted(api.state(CUSTOMERS)) == ["1", "3"]
    rows[1]["email"] = "b@x"  # rejected requests stored nothing: the same key now executes
    fixed = requests.post(api.url + CUSTOMERS, json={"records": rows}, headers={"Idempotency-Key": "b1"}, timeout=5)
    assert fixed.status_code == 200 and "Idempotent-Replayed" not in fixed.headers
    assert api.inserts(CUSTOMERS) == {"1": 1, "2": 1, "3": 1}


def test_rate_limit_answers_429_with_retry_after(recording_http: RecordingHTTPServer) -> None:
    recording_http.rate_limit(5, per_seconds=1.0)
    s = requests.Session()
    answers = [s.post(recording_http.url + "/calls", json={"i": i}, timeout=5) for i in range(6)]
    assert [a.status_code for a in answers] == [200] * 5 + [429]
    assert [a.headers["X-RateLimit-Remaining"] for a in answers] == ["4", "3", "2", "1", "0", "0"]
    assert answers[-1].headers["Retry-After"] == "1" and answers[-1].headers["X-RateLimit-Limit"] == "5"
    assert int(answers[-1].headers["X-RateLimit-Reset"]) >= int(time.time())
    pool = urllib3.PoolManager(retries=urllib3.Retry(total=3, status_forcelist=[429], allowed_methods=None))
    started = time.monotonic()
    assert pool.request("POST", recording_http.url + "/calls", json={"i": 6}).status == 200
    assert time.monotonic() - started >= 0.5  # urllib3 slept the Retry-After
    assert [r.outcome for r in recording_http.requests].count("rate_limited") == 2


def test_fail_next_scoped_to_a_path_with_headers(recording_http: RecordingHTTPServer) -> None:
    recording_http.fail_next(2, status=502, retry_after=3, headers={"X-Upstream": "down"}, path_prefix="/a")
    assert requests.get(recording_http.url + "/b", timeout=5).status_code == 200
    failed = requests.post(recording_http.url + "/a", json={}, timeout=5)
    assert (failed.status_code, failed.headers["Retry-After"], failed.headers["X-Upstream"]) == (502, "3", "down")
    assert [requests.post(recording_http.url + "/a", json={}, timeout=5).status_code for _ in range(2)] == [502, 200]


def test_hang_next_times_the_client_out_but_still_writes(api: RecordingHTTPServer) -> None:
    api.hang_next(0.6)
    with pytest.raises(requests.Timeout):
        requests.post(api.url + CUSTOMERS, json={"id": "slow"}, timeout=0.2)
    deadline = time.monotonic() + 3
    while "slow" not in api.state(CUSTOMERS) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert api.inserts(CUSTOMERS) == {"slow": 1}
    api.latency(0.3)
    with pytest.raises(requests.Timeout):
        requests.get(api.url + CUSTOMERS, timeout=0.1)


def test_require_auth_and_http_conn(recording_http: RecordingHTTPServer, http_conn: str) -> None:
    from airflow.models.connection import Connection

    recording_http.require_auth(RecordingHTTPServer.basic("bot", "s3cret"))
    denied = requests.get(recording_http.url + "/x", timeout=5)
    assert (denied.status_code, denied.headers["WWW-Authenticate"]) == (401, "Basic")
    assert requests.get(recording_http.url + "/x", auth=("bot", "s3cret"), timeout=5).status_code == 200
    assert [r.outcome for r in recording_http.requests] == ["unauthorized", "applied"]
    conn = Connection.from_json(os.environ["AIRFLOW_CONN_HTTP_DEFAULT"], conn_id=http_conn)
    assert (http_conn, conn.conn_type, conn.schema, conn.login) == ("http_default", "http", "http", None)
    assert f"{conn.schema}://{conn.host}:{conn.port}" == recording_http.url  # how HttpHook builds its base URL
    env = recording_http.http_connection("api", login="bot", password="s3cret", headers={"X-Key": "k"}, timeout=5)
    with_auth = Connection.from_json(env["AIRFLOW_CONN_API"], conn_id="api")
    assert (with_auth.login, with_auth.password) == ("bot", "s3cret")
    assert with_auth.extra_dejson == {"X-Key": "k", "timeout": 5}  # headers, and HttpHook's own timeout option


def test_keep_alive_throughput(recording_http: RecordingHTTPServer) -> None:
    recording_http.keyed("/bulk")
    conn = http.client.HTTPConnection(recording_http.host, recording_http.port, timeout=5)
    started = time.monotonic()
    for i in range(2000):
        conn.request("POST", "/bulk", body=json.dumps({"id": i}), headers={"Content-Type": "application/json"})
        assert conn.getresponse().read()
    # Both ends share one interpreter here; the bound only catches stalls (Nagle + delayed ACK: ~25 req/s).
    assert time.monotonic() - started < 5
    assert len(recording_http.state("/bulk")) == 2000 and len(recording_http.requests) == 2000


def test_the_sync_transport_retries_a_key_still_in_progress(api: RecordingHTTPServer) -> None:
    # A batch re-sent after a crash may reach the server while its killed twin is still being processed.
    dest = HttpEndpointClient(HttpTransport(HttpTarget(api.url), 2), endpoint=CUSTOMERS, batch_size=10,
                           idempotency_key=True, sync_id="s")
    batch = [Record("9", (9,), {"id": 9, "v": "a"}, "h9", write_id="run-1")]
    api.hang_next(0.5)
    twin = threading.Thread(target=dest.send, args=("upsert", batch))
    twin.start()
    time.sleep(0.15)
    with pytest.raises(TransientError, match="still in progress"):  # retried by the engine, not refused
        dest.send("upsert", batch)
    twin.join()
    assert dest.send("upsert", batch) == [OK]
    assert [r.outcome for r in api.requests] == ["conflict", "applied", "replayed"]
    dest.close()
