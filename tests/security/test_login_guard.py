"""Issue 13, item 3: login lockout without a check-then-record race, bounded password hashing
(per name, per client, in total), long names refused before any work, a throttle of bounded
memory, and a per-client limit so one client cannot lock every name. On a live server
(threads sending at once) and on the guard itself with a fake clock."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from bot.users import service as user_service
from bot.web.login_guard import LoginGuard, LoginLimits, LoginRefused
from tests.db_fixtures import database_url, db, keyring, migrated_engine  # noqa: F401
from tests.web.conftest import PASSWORDS, USERS, Browserless, add_role_users, console_config, live_server  # noqa: F401


@pytest.fixture()
def console_with(db, database_url, dialogs_copy, tmp_path):
    """A live console whose login limits a test chooses."""
    add_role_users(db)
    servers = []

    def start(**limits):
        from bot.web.app import create_app

        config = console_config(database_url, dialogs_copy.root, tmp_path / f"data{len(servers)}",
                                login_limits=LoginLimits(**limits))
        context = live_server(create_app(config, engine=db))
        servers.append(context)
        return context.__enter__()

    yield start
    for context in servers:
        context.__exit__(None, None, None)


class HashCounter:
    """Wraps the scrypt call the login runs: how many ran, and the most at the same time."""

    def __init__(self, monkeypatch) -> None:
        self.lock = threading.Lock()
        self.running = self.peak = self.calls = 0
        original = user_service._scrypt

        def counted(*args, **kwargs):
            with self.lock:
                self.calls += 1
                self.running += 1
                self.peak = max(self.peak, self.running)
            try:
                return original(*args, **kwargs)
            finally:
                with self.lock:
                    self.running -= 1

        monkeypatch.setattr(user_service, "_scrypt", counted)


def _login_form(server) -> tuple[dict, str]:
    """A session cookie and its CSRF token, as a browser gets them from the login page."""
    browser = Browserless(server.url)
    csrf = browser.refresh_csrf("/login")
    cookies = dict(browser.http.cookies)
    browser.close()
    return cookies, csrf


def _post_logins(server, attempts: list[tuple[str, str]], workers: int) -> list[httpx.Response]:
    cookies, csrf = _login_form(server)
    start = threading.Barrier(min(workers, len(attempts)))

    def one(attempt: tuple[str, str]) -> httpx.Response:
        name, password = attempt
        with httpx.Client(base_url=server.url, cookies=cookies, timeout=120) as http:
            try:
                start.wait(timeout=30)
            except threading.BrokenBarrierError:
                pass
            return http.post("/login", data={"name": name, "password": password, "csrf_token": csrf})

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(one, attempts))


def test_login_60_concurrent_wrong_passwords_evaluate_at_most_the_limit(console_with, monkeypatch):
    server = console_with()
    hashes = HashCounter(monkeypatch)
    responses = _post_logins(server, [(USERS["writer"], f"guess-{i:03d}-x") for i in range(60)], workers=60)
    codes = [r.status_code for r in responses]
    assert set(codes) <= {401, 429}, codes
    evaluated = codes.count(401)
    assert 1 <= evaluated <= LoginLimits().max_failures_per_name, codes
    assert hashes.calls == evaluated  # every refused attempt was refused before its hash
    # One at a time, the name takes the rest of its 5 failures, then it is locked, even for the
    # right password: over the whole run at most 5 guesses were evaluated.
    cookies, csrf = _login_form(server)
    with httpx.Client(base_url=server.url, cookies=cookies, timeout=60) as http:
        for _ in range(10):
            wrong = http.post("/login", data={"name": USERS["writer"], "password": "one-more-guess", "csrf_token": csrf})
            if wrong.status_code == 429:
                break
            evaluated += 1
        right = http.post("/login", data={"name": USERS["writer"], "password": PASSWORDS["writer"], "csrf_token": csrf})
    assert evaluated == LoginLimits().max_failures_per_name == hashes.calls
    assert right.status_code == 429 and "登录失败次数过多" in right.text and right.headers["Retry-After"]


def test_login_flood_of_unknown_names_runs_a_bounded_number_of_hashes(console_with, monkeypatch):
    # Client limits out of the way (every test request comes from 127.0.0.1): the total bound is tested.
    server = console_with(max_hashes_total=3, max_hashes_per_client=1000, max_failures_per_client=10_000,
                          max_waiting=1000, max_wait_s=600)
    hashes = HashCounter(monkeypatch)
    responses = _post_logins(server, [(f"nobody-{i}", "wrong-password") for i in range(40)], workers=40)
    assert [r.status_code for r in responses] == [401] * 40
    assert hashes.calls == 40 and hashes.peak <= 3
    guard = server.app.state.login_guard
    assert guard.peak_hashes <= 3
    # A real user still gets in once the flood is through.
    assert Browserless(server.url).login("ops").get("/ops/packs").status_code == 200


def test_login_hashes_per_name_are_bounded(console_with, monkeypatch):
    server = console_with(max_failures_per_name=50, max_hashes_per_name=1, max_hashes_per_client=1000,
                          max_failures_per_client=10_000)
    hashes = HashCounter(monkeypatch)
    responses = _post_logins(server, [(USERS["manager"], "wrong-password") for _ in range(20)], workers=20)
    codes = [r.status_code for r in responses]
    assert set(codes) <= {401, 429} and hashes.calls == codes.count(401) and hashes.peak == 1
    busy = [r for r in responses if r.status_code == 429]
    assert all("同时进行的登录太多" in r.text for r in busy)


def test_login_name_over_100_characters_is_refused_before_any_work(console_with, monkeypatch):
    server = console_with()
    hashes = HashCounter(monkeypatch)
    cookies, csrf = _login_form(server)
    long_name = "名" * 101
    response = httpx.post(f"{server.url}/login", cookies=cookies,
                          data={"name": long_name, "password": "x" * 10, "csrf_token": csrf})
    assert response.status_code == 400 and "用户名最多 100 个字符" in response.text
    assert long_name not in response.text
    huge_password = httpx.post(f"{server.url}/login", cookies=cookies,
                               data={"name": USERS["ops"], "password": "p" * 5000, "csrf_token": csrf})
    assert huge_password.status_code == 400
    assert hashes.calls == 0 and server.app.state.login_guard.tracked() == (0, 0)


def test_login_one_client_cannot_lock_every_name(console_with):
    server = console_with(max_failures_per_client=12)
    cookies, csrf = _login_form(server)
    codes = []
    with httpx.Client(base_url=server.url, cookies=cookies, timeout=60) as http:
        for i in range(20):
            name = f"target-{i % 10}"  # two tries each on ten names
            codes.append(http.post("/login", data={"name": name, "password": "wrong-pass",
                                                   "csrf_token": csrf}).status_code)
        refused = http.post("/login", data={"name": USERS["ops"], "password": PASSWORDS["ops"], "csrf_token": csrf})
    assert codes[:12] == [401] * 12 and set(codes[12:]) == {429}
    assert refused.status_code == 429 and "此网络地址登录失败次数过多" in refused.text
    # The names themselves are not locked: 2 failures or fewer each, far from the per-name limit.
    guard: LoginGuard = server.app.state.login_guard
    attempt = guard.reserve("target-0", "10.0.0.9")  # another client
    attempt.failed()
    attempt = guard.reserve(USERS["ops"], "10.0.0.9")
    attempt.succeeded()


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_login_guard_reserves_atomically_from_many_threads():
    guard = LoginGuard(LoginLimits(max_hashes_per_name=100, max_hashes_per_client=100))
    outcomes: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(50)

    def try_once(i: int) -> None:
        barrier.wait()
        try:
            guard.reserve("victim", f"10.0.{i}.1")
            result = "reserved"
        except LoginRefused:
            result = "refused"
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=try_once, args=(i,)) for i in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes.count("reserved") == LoginLimits().max_failures_per_name


def test_login_guard_memory_is_bounded_and_forgets_old_failures():
    clock = FakeClock()
    limits = LoginLimits(max_tracked=100, window_s=60)
    guard = LoginGuard(limits, clock=clock)
    for i in range(5000):
        guard.reserve(f"name-{i}", f"client-{i % 700}").failed()
        clock.now += 0.001
    names, clients = guard.tracked()
    assert names <= 100 and clients <= 100
    # A success leaves nothing behind; failures older than the window are dropped.
    guard.reserve("someone", "client-x").succeeded()
    assert "someone" not in guard._names.tracks
    clock.now += 61
    guard.reserve("fresh", "client-y").failed()
    clock.now += 61
    for i in range(10):
        guard.reserve(f"later-{i}", "client-z").failed()
    assert "fresh" not in guard._names.tracks and guard.tracked()[0] <= 100
    # A name locked by 5 failures is free again after the window.
    for _ in range(5):
        guard.reserve("locked", "client-l").failed()
    with pytest.raises(LoginRefused):
        guard.reserve("locked", "client-l2")
    clock.now += 61
    guard.reserve("locked", "client-l3").succeeded()
