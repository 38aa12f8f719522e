"""Captured prints and log calls: per run, in order, thread-safe, nothing lost."""

from __future__ import annotations

import sys
import threading

from provwh.flows import FlowConfig, flow, task
from provwh.flows.logs import RoutingStream


@task
def shout(tag, i):
    print(f"<{tag}-{i}>")


def _run_threads(targets):
    threads = [threading.Thread(target=t) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def _concurrent(config, capsys):
    n, lines = 6, 150
    barrier = threading.Barrier(n + 1)

    @flow(flow_config=config)
    def f(tag):
        barrier.wait()
        for i in range(lines):
            shout(tag, i)
            if i % 50 == 0:
                print(f"<{tag}-body-{i}>")

    def plain():
        barrier.wait()
        for i in range(lines):
            print(f"<plain-{i}>")

    runs = [f(f"f{k}") for k in range(n)]
    _run_threads([r.execute for r in runs] + [plain])
    return runs, capsys.readouterr().out, lines


def _expected(tag, lines):
    out = []
    for i in range(lines):
        out.append((f"<{tag}-{i}>", "shout"))
        if i % 50 == 0:
            out.append((f"<{tag}-body-{i}>", None))
    return out


def test_each_run_sees_only_its_lines_and_nothing_is_lost(capsys):
    runs, out, lines = _concurrent(FlowConfig(), capsys)
    for k, run in enumerate(runs):
        got = [(e["msg"], e["task"]) for e in run.captured_logs()]
        assert got == _expected(f"f{k}", lines)
        assert {e["flow_id"] for e in run.captured_logs()} == {run.flow_id}
        for msg, _ in got:
            assert out.count(msg) == 1  # echoed once to the real stdout
    for i in range(lines):
        assert out.count(f"<plain-{i}>") == 1
    assert not isinstance(sys.stdout, RoutingStream)


def test_without_console_echo_flow_lines_stay_in_the_run(capsys):
    runs, out, lines = _concurrent(FlowConfig(log_to_console=False), capsys)
    for k, run in enumerate(runs):
        assert [(e["msg"], e["task"]) for e in run.captured_logs()] == _expected(f"f{k}", lines)
        assert f"<f{k}-" not in out
    assert [ln for ln in out.splitlines()] == [f"<plain-{i}>" for i in range(lines)]


def test_log_calls_levels_order_and_echo(capsys):
    @task
    def work(this_task):
        this_task.log_info("task info")
        this_task.log_debug("task debug")
        this_task.log_error("task error")

    @flow
    def f(this_flow):
        this_flow.log_info("Starting process")
        print("printed")
        work()
        this_flow.log_info(42)

    run = f().execute()
    logs = run.captured_logs()
    assert [(e["level"], e["msg"], e["task"], e["source"]) for e in logs] == [
        ("INFO", "Starting process", None, "log"),
        ("INFO", "printed", None, "stdout"),
        ("INFO", "task info", "work", "log"),
        ("DEBUG", "task debug", "work", "log"),
        ("ERROR", "task error", "work", "log"),
        ("INFO", "42", None, "log"),
    ]
    assert [e["task_id"] for e in logs][2:5] == [run.executed_tasks[0].task_id] * 3
    assert all(len(e["time"]) == 8 and e["time"][2] == ":" for e in logs)
    stamps = [e["timestamp"] for e in logs]
    assert stamps == sorted(stamps)
    captured = capsys.readouterr()
    assert captured.out == "Starting process\nprinted\ntask info\n42\n"  # no debug by default
    assert captured.err == "task error\n"


def test_console_level_filters_echo_not_capture(capsys):
    @flow(flow_config={"console_level": "ERROR"})
    def quiet(this_flow):
        print("hidden print")
        this_flow.log_info("hidden info")
        this_flow.log_error("shown error")

    @flow(flow_config={"console_level": "DEBUG"})
    def loud(this_flow):
        this_flow.log_debug("shown debug")

    assert len(quiet().execute().captured_logs()) == 3
    loud().execute()
    captured = capsys.readouterr()
    assert captured.out == "shown debug\n"
    assert captured.err == "shown error\n"


def test_partial_lines_are_joined_and_flushed_at_the_end(capsys):
    @task
    def parts():
        print("a", end="")
        print("b", "c")
        print("x\ny", end="")

    @flow
    def f():
        parts()
        print("tail", end="")

    run = f().execute()
    assert [(e["msg"], e["task"]) for e in run.captured_logs()] == [
        ("ab c", "parts"),
        ("x", "parts"),
        ("y", "parts"),
        ("tail", None),
    ]
    assert capsys.readouterr().out == "ab c\nx\nytail"


def test_log_to_memory_off_keeps_nothing():
    @flow(flow_config={"log_to_memory": False, "log_to_console": False})
    def f(this_flow):
        print("x")
        this_flow.log_info("y")
        shout("t", 1)

    run = f().execute()
    assert run.captured_logs() == []


def test_prints_outside_flows_pass_through(capsys):
    print("before")

    @flow(flow_config={"log_to_console": False})
    def f():
        print("inside")

    f().execute()
    print("after")
    assert capsys.readouterr().out == "before\nafter\n"
    assert not isinstance(sys.stdout, RoutingStream)


def test_routing_stream_delegates_attributes(capsys):
    seen = {}

    @flow
    def f():
        seen["wrapped"] = isinstance(sys.stdout, RoutingStream)
        sys.stdout.writelines(["one\n", "two\n"])
        sys.stdout.flush()
        seen["encoding"] = sys.stdout.encoding

    run = f().execute()
    assert seen["wrapped"] is True
    assert seen["encoding"] == sys.stdout.encoding
    assert [e["msg"] for e in run.captured_logs()] == ["one", "two"]
