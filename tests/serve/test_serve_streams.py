"""The live streams (``/api/v1/stream/tasks``, ``/stream/workflows``) read with httpx from a
real ``provwh serve`` while the real loader loads batch files into its database, on both
engines; PostgreSQL's stream woken by the loader's NOTIFY, not by its poll."""

from __future__ import annotations

import queue
import signal
import threading
import time
from typing import Any

import httpx
import orjson
import pytest
from conftest import ENGINES
from query_helpers import load, write_batches
from serve_helpers import _chromium

WF, CAMP = "wf-live", "camp-live"
T0 = 1_700_000_000.0


def _task(i: int, wf: str = WF, **extra: Any) -> dict[str, Any]:
    return {
        "type": "task",
        "task_id": f"t{i:02d}",
        "workflow_id": wf,
        "campaign_id": CAMP,
        "activity_id": "step",
        "status": "RUNNING",
        "started_at": T0 + i,
        "used": {"i": i},
        **extra,
    }


class Stream:
    """An SSE stream read in a thread: its events, parsed, in a queue."""

    def __init__(self, base: str, path: str, **params: Any) -> None:
        self.events: queue.Queue = queue.Queue()
        self.comments: list[str] = []
        self.status: int | None = None
        self.headers: dict[str, str] = {}
        self.client = httpx.Client(base_url=base, timeout=httpx.Timeout(10, read=120))
        headers = params.pop("headers", None)
        self.thread = threading.Thread(target=self._read, args=(path, params, headers))
        self.thread.daemon = True
        self.thread.start()

    def _read(self, path: str, params: dict, headers: dict | None) -> None:
        try:
            with self.client.stream("GET", path, params=params, headers=headers) as resp:
                self.status, self.headers = resp.status_code, dict(resp.headers)
                event: dict[str, str] = {}
                for line in resp.iter_lines():
                    if line.startswith(":"):
                        self.comments.append(line)
                    elif line:
                        name, _, value = line.partition(":")
                        event[name] = value.removeprefix(" ")
                    elif "data" in event:
                        event["data"] = orjson.loads(event["data"])
                        self.events.put(event)
                        event = {}
                    else:
                        event = {}  # the retry line
        except Exception as exc:  # closed by the test, or the server went
            self.events.put({"closed": repr(exc)})
            return
        self.events.put({"closed": "end of stream"})

    def next(self, timeout: float = 30) -> dict[str, Any]:
        try:
            return self.events.get(timeout=timeout)
        except queue.Empty:
            pytest.fail(f"no event in {timeout} s")

    def quiet(self, seconds: float) -> bool:
        """No event for ``seconds``."""
        try:
            event = self.events.get(timeout=seconds)
        except queue.Empty:
            return True
        self.events.put(event)
        return False

    def close(self) -> None:
        self.client.close()


@pytest.fixture
def streams():
    opened: list[Stream] = []

    def open_(server, path: str, **params: Any) -> Stream:
        opened.append(Stream(server.url, path, **params))
        return opened[-1]

    yield open_
    for s in opened:
        s.close()


def _load(server, options: list[str], tmp_path, name: str, batches: list[list[dict]]) -> None:
    """The real loader, in this process, into the server's database."""
    from provwh.warehouse.duck import DuckTarget
    from provwh.warehouse.pg import PgTarget

    paths = write_batches(tmp_path / name, batches)
    load(DuckTarget(options[1]) if server.engine == "duckdb" else PgTarget(options[1]), paths)


def _ids(event: dict) -> list[str]:
    return [t["task_id"] for t in event["data"]["tasks"]]


@pytest.mark.parametrize("engine", ENGINES)
def test_each_loaded_task_arrives_once_in_load_order(engine, database, start_server, streams,
                                                     tmp_path):  # fmt: skip
    options = database(engine, loaded=False)
    server = start_server(options)
    stream = streams(server, "/api/v1/stream/tasks", workflow_id=WF, poll_interval=0.2, limit=3)
    first = stream.next()
    assert stream.status == 200 and stream.headers["content-type"].startswith("text/event-stream")
    assert first["event"] == "tasks"
    assert first["data"] == {"tasks": [], "cursor": None, "truncated": False}  # nothing loaded

    # one transaction: 5 tasks of the workflow (and others'), sent 3 + 2, once each
    _load(server, options, tmp_path, "a", [[
        {"type": "workflow", "workflow_id": WF, "name": "live", "campaign_id": CAMP},
        *[_task(i) for i in range(5)], _task(90, wf="wf-other"),
    ]])  # fmt: skip
    e1, e2 = stream.next(), stream.next()
    assert [_ids(e1), _ids(e2)] == [["t00", "t01", "t02"], ["t03", "t04"]]
    assert [e1["data"]["truncated"], e2["data"]["truncated"]] == [True, False]
    assert e1["data"]["cursor"] == e2["data"]["cursor"]  # one transaction, one load time
    assert e1["id"] == repr(e1["data"]["cursor"])
    assert e1["data"]["tasks"][0] == server.get("/api/v1/tasks/t00").json()  # as /tasks has it

    # a later transaction: a task captured long before the others still arrives, and a
    # merged task arrives again, as it now is
    _load(server, options, tmp_path, "b", [[
        _task(5, started_at=T0 - 3600), {"type": "task", "task_id": "t01", "status": "FINISHED",
                                          "ended_at": T0 + 30},
    ]])  # fmt: skip
    e3 = stream.next()
    assert sorted(_ids(e3)) == ["t01", "t05"] and not e3["data"]["truncated"]
    assert {t["task_id"]: t["status"] for t in e3["data"]["tasks"]} == {
        "t01": "FINISHED",
        "t05": "RUNNING",
    }
    assert e3["data"]["cursor"] > e2["data"]["cursor"]
    assert stream.quiet(1.0)  # nothing sent twice, nothing else

    # reconnecting from a cursor: what loaded at or after it, nothing before
    again = streams(server, "/api/v1/stream/tasks", workflow_id=WF, since=e3["data"]["cursor"])
    assert sorted(_ids(again.next())) == ["t01", "t05"]
    resumed = streams(server, "/api/v1/stream/tasks", campaign_id=CAMP,
                      headers={"Last-Event-ID": e2["id"]})  # fmt: skip
    event = resumed.next()
    assert _ids(event) == ["t00", "t02", "t03", "t04", "t90", "t01", "t05"]  # load order, id
    assert event["data"]["cursor"] == e3["data"]["cursor"]


@pytest.mark.parametrize("engine", ENGINES)
def test_workflows_stream(engine, database, start_server, streams, tmp_path):
    options = database(engine, loaded=False)
    server = start_server(options)
    stream = streams(server, "/api/v1/stream/workflows", campaign_id=CAMP, poll_interval=0.2)
    assert stream.next()["data"] == {"workflows": [], "cursor": None, "truncated": False}
    _load(server, options, tmp_path, "a", [[
        {"type": "workflow", "workflow_id": WF, "name": "live", "campaign_id": CAMP},
        {"type": "workflow", "workflow_id": "wf-elsewhere", "campaign_id": "camp-other"},
        _task(1),
    ]])  # fmt: skip
    event = stream.next()
    assert event["event"] == "workflows"
    assert [w["workflow_id"] for w in event["data"]["workflows"]] == [WF]
    assert event["data"]["workflows"][0] == server.get(f"/api/v1/workflows/{WF}").json()
    assert isinstance(event["data"]["cursor"], float) and not event["data"]["truncated"]
    assert stream.quiet(1.0)  # a task alone changes no workflow


def test_postgres_streams_are_woken_by_the_loaders_notify(database, start_server, streams,
                                                          tmp_path):  # fmt: skip
    options = database("postgres", loaded=False)
    server = start_server(options)
    stream = streams(server, "/api/v1/stream/tasks", workflow_id=WF, poll_interval=30)
    other = streams(server, "/api/v1/stream/tasks", workflow_id="wf-other", poll_interval=30)
    assert stream.next()["data"]["tasks"] == [] and other.next()["data"]["tasks"] == []
    time.sleep(1.0)  # the server LISTENs from its start; this leaves it time to
    for round_, ids in enumerate((["t00", "t01"], ["t02"])):
        _load(server, options, tmp_path, f"b{round_}", [[_task(int(i[1:])) for i in ids]])
        loaded = time.monotonic()
        event = stream.next(timeout=25)
        waited = time.monotonic() - loaded
        assert _ids(event) == ids
        assert waited < 5, f"the event came {waited:.1f} s after the load: a poll, not NOTIFY"
    assert other.quiet(0.5)  # not its workflow: not woken, nothing to send


def test_stream_parameters_are_checked(database, start_server):
    server = start_server(database("duckdb", loaded=False))
    for params, detail in (
        ({"poll_interval": 0}, "poll_interval: Input should be greater than or equal to 0.1"),
        ({"poll_interval": 61}, "poll_interval: Input should be less than or equal to 60"),
        (
            {"since": "soon"},
            "since: Input should be a valid number, unable to parse string as a number",
        ),
        ({"since": 1e15}, "since: not a time in epoch seconds: 1000000000000000.0"),
        ({"limit": 0}, "limit: Input should be greater than or equal to 1"),
    ):
        resp = server.get("/api/v1/stream/tasks", params=params)
        assert (resp.status_code, resp.json()) == (400, {"detail": detail})
    resp = server.get("/api/v1/stream/workflows", headers={"Last-Event-ID": "x"})
    assert resp.json() == {"detail": "Last-Event-ID: not a cursor: 'x'"}


@pytest.mark.parametrize("engine", ENGINES)
def test_the_server_stops_promptly_with_streams_open(engine, database, start_server, streams):
    server = start_server(database(engine, loaded=False))
    opened = [streams(server, "/api/v1/stream/tasks", poll_interval=60) for _ in range(3)]
    for s in opened:
        assert s.next()["event"] == "tasks"
    began = time.monotonic()
    assert server.stop(signal.SIGTERM, timeout=20) == 0
    assert time.monotonic() - began < 10
    assert server.out_path.read_text().endswith("provwh serve: stopped\n")
    assert "Traceback" not in server.err_path.read_text()
    for s in opened:
        assert "closed" in s.next(timeout=10)  # the streams ended with the server


def test_a_running_workflows_page_follows_its_stream(database, start_server, streams, tmp_path):
    """The page of a running workflow names its stream from the page's newest load time and
    loads the script that follows it (``static/live.js``); a finished workflow's does not.
    The parts the script refreshes are marked, and a page fetched again shows what landed."""
    options = database("duckdb", loaded=False)
    server = start_server(options)
    done = {"type": "workflow", "workflow_id": "wf-done", "name": "done", "ended_at": T0 + 9}
    _load(server, options, tmp_path, "a", [[
        {"type": "workflow", "workflow_id": WF, "name": "live", "started_at": T0},
        _task(0), done, _task(50, wf="wf-done", status="FINISHED", ended_at=T0 + 51),
    ]])  # fmt: skip
    page = server.get(f"/workflows/{WF}").text
    src = page.split('data-live-src="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
    path, _, query = src.partition("?")
    params = dict(p.split("=", 1) for p in query.split("&"))
    assert path == "/api/v1/stream/tasks" and params["workflow_id"] == WF
    assert params["poll_interval"] == "2"
    assert '<script src="/static/live.js" defer></script>' in page
    for part in ("summary", "activities", "tasks"):
        assert f'data-live="{part}"' in page
    stream = streams(server, path, **params)
    first = stream.next()
    assert _ids(first) == ["t00"] and first["data"]["cursor"] == float(params["since"])
    _load(server, options, tmp_path, "b", [[_task(1)]])
    assert _ids(stream.next()) == ["t01"]
    assert 'href="/tasks/t01"' in server.get(f"/workflows/{WF}").text
    # headless Chromium (screenshots, these tests) gets the page as rendered, and is not held
    # forever by a stream its virtual time would wait for
    done_ = _chromium(["--virtual-time-budget=5000", "--dump-dom", f"{server.url}/workflows/{WF}"],
                      tmp_path / "profile")  # fmt: skip
    assert done_.returncode == 0 and 'data-live-state="off"' in done_.stdout
    finished = server.get("/workflows/wf-done").text
    assert "data-live-src" not in finished and "live.js" not in finished
    script = server.get("/static/live.js")
    assert script.headers["content-type"].startswith("text/javascript")
    assert "EventSource" in script.text and "data-live" in script.text
