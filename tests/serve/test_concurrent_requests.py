"""A browser asks the API several things at once (the Assessments page: the list and the review queue).
The Lambda handler's resolver serves one request at a time per environment (it keeps the current event on
the app object), so the local server must not let two requests interleave in it."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.serve.conftest import StartServer

pytestmark = pytest.mark.allow_hosts(["127.0.0.1"])

ROUNDS = 40


def test_concurrent_requests_to_different_routes_each_get_their_own_answer(start_server: StartServer) -> None:
    server = start_server()

    def get(path: str) -> tuple[int, dict[str, object]]:
        response = requests.get(f"{server.base_url}{path}", timeout=10)
        return response.status_code, response.json()

    with ThreadPoolExecutor(max_workers=4) as pool:
        for _ in range(ROUNDS):
            listed = pool.submit(get, "/assessments?limit=5")
            queue = pool.submit(get, "/reviews?limit=5")
            missing = pool.submit(get, "/assessments/no-such-id")
            assert listed.result() == (200, {"assessments": [], "next_token": None})
            assert queue.result() == (200, {"entries": []})
            status, body = missing.result()
            assert status == 404, body
