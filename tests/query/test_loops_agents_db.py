"""Loops and agents (issue 16) on the configured database, written as Flowcept users write
them: ``Flowcept.db`` on DuckDB (the embedded default) and on PostgreSQL, exact values."""

from __future__ import annotations

import random

import pytest

from provwh import (
    PROV_AGENT,
    AgentObject,
    Flowcept,
    FlowceptLightweightLoop,
    FlowceptLoop,
    flowcept_agent_task,
)
from provwh.core.host import host_identity
from provwh.core.ids import agent_id_for
from provwh.query.api import DBAPI


@pytest.fixture(params=("duckdb", "postgres"))
def engine(request, set_env, tmp_path):
    """``Flowcept.db`` (and the run's loader) on a fresh database of each engine."""
    if request.param == "duckdb":
        set_env(PROVWH_DUCKDB_PATH=str(tmp_path / "wh.duckdb"))
    else:
        url = request.getfixturevalue("pg_url")
        set_env(PROVWH_DUCKDB_ENABLED="false", PROVWH_POSTGRES_URL=url)
    yield request.param
    Flowcept.db.close()


@flowcept_agent_task
def plan(goal: str, steps: int = 2) -> list:
    return [f"{goal} {i}" for i in range(steps)]


@flowcept_agent_task(subtype=PROV_AGENT.AI_MODEL_INVOCATION, output_names="answer")
def ask_llm(prompt: str) -> str:
    return prompt.upper()


def _close(a: float, b: float) -> bool:
    return abs(a - b) < 1e-6  # stored times keep microseconds


# --- loops -------------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [FlowceptLoop, FlowceptLightweightLoop])
def test_a_loop_is_its_iterations(engine, cls):
    """Flowcept's loop example: the workflow's tasks are the iterations, one each."""
    iterations = range(1, 5)
    with Flowcept():
        loop = cls(iterations)
        for item in loop:
            loss = random.random()
            loop.end_iter({"item": item, "loss": loss})

    docs = Flowcept.db.get_tasks_from_current_workflow()
    assert len(docs) == len(iterations)
    docs.sort(key=lambda t: t["used"]["i"])
    assert [t["used"] for t in docs] == [{"i": i, "item": i + 1} for i in range(4)]
    assert [t["generated"]["item"] for t in docs] == [1, 2, 3, 4]
    assert {t["activity_id"] for t in docs} == {"loop_iteration"}
    (group,) = {t["group_id"] for t in docs}
    assert Flowcept.db.task_query({"subtype": "whole_loop"}) == []

    names, rows = Flowcept.db.sql_rows(
        "SELECT group_id, loop_name, iteration_count, error_count, duration_s FROM v_loops"
    )
    assert names == ["group_id", "loop_name", "iteration_count", "error_count", "duration_s"]
    ((g, name, n, errors, seconds),) = rows
    assert (g, name, n, errors) == (group, "loop", 4, 0)
    first = min(t["started_at"] for t in docs)
    last = max(t["ended_at"] for t in docs)
    assert _close(seconds, last - first)


def test_whole_loop_task_on_request(engine):
    with Flowcept():
        loop = FlowceptLoop(range(3), loop_name="epochs", item_name="epoch", whole_loop=True)
        for epoch in loop:
            loop.end_iter({"loss": 1 / (epoch + 1)})
    docs = Flowcept.db.get_tasks_from_current_workflow()
    assert len(docs) == 4
    (whole,) = Flowcept.db.task_query({"subtype": "whole_loop"})
    assert (whole["task_id"], whole["activity_id"]) == (loop.whole_loop_task_id, "epochs")
    its = Flowcept.db.task_query({"parent_task_id": whole["task_id"]})
    assert sorted(t["used"]["epoch"] for t in its) == [0, 1, 2]
    _, rows = Flowcept.db.sql_rows("SELECT loop_name, iteration_count, parent_task_id FROM v_loops")
    assert rows == [("epochs", 3, whole["task_id"])]


# --- agents ------------------------------------------------------------------------------------


def test_named_agent_with_its_tool_and_model_calls(engine):
    with Flowcept(workflow_name="agentic", agent_name="planner") as f:
        plan("dinner")
        ask_llm("hi")
    planner = agent_id_for("planner")
    buffered = [r for r in Flowcept.read_buffer_file() if r["type"] == "agent"]

    agents = Flowcept.db.agent_query({"name": "planner"})
    assert agents == [
        {
            "type": "agent",
            "agent_id": planner,
            "name": "planner",
            "user": host_identity()["user"],
            "workflow_id": f.current_workflow_id,
            "campaign_id": f.campaign_id,
            "registered_at": agents[0]["registered_at"],
        }
    ]
    assert _close(agents[0]["registered_at"], buffered[0]["registered_at"])
    agent = Flowcept.db.get_agent_object(planner)
    assert isinstance(agent, AgentObject)
    assert (agent.agent_id, agent.name, agent.workflow_id) == (
        planner,
        "planner",
        f.current_workflow_id,
    )
    assert Flowcept.db.get_agent_object("nobody") is None

    calls = Flowcept.db.task_query({"agent_id": planner}, sort=[("started_at", 1)])
    assert [(t["activity_id"], t["subtype"]) for t in calls] == [
        ("plan", "agent_tool"),
        ("ask_llm", "ai_model_invocation"),
    ]
    assert calls[1]["generated"] == {"answer": "HI"}
    assert Flowcept.db.get_workflow_object(f.current_workflow_id).agent_id == planner

    names, rows = Flowcept.db.sql_rows(
        "SELECT agent_id, name, workflow_count, task_count, tool_call_count, model_call_count,"
        " error_count FROM v_agents"
    )
    assert rows == [(planner, "planner", 1, 2, 1, 1, 0)]

    # the buffer file answers the same, queried in place
    files = DBAPI.from_files("flowcept_buffer.jsonl")
    assert files.agent_query({}) == agents
    files.close()


def test_the_same_agent_across_runs_is_one_agent(engine):
    for goal in ("lunch", "dinner"):
        with Flowcept(workflow_name=goal, agent_name="planner"):
            plan(goal, steps=1)
    planner = agent_id_for("planner")
    assert [a["agent_id"] for a in Flowcept.db.agent_query({})] == [planner]
    _, rows = Flowcept.db.sql_rows("SELECT workflow_count, task_count FROM v_agents")
    assert rows == [(2, 2)]


def test_insert_query_and_delete_agents(engine):
    db = Flowcept.db
    critic = db.insert_or_update_agent(
        AgentObject("critic-1", "critic", extra_metadata={"model": "m-1"})
    )
    assert critic.agent_id == "critic-1"
    searcher = db.insert_or_update_agent({"name": "searcher", "user": "ana"})
    assert searcher.agent_id == agent_id_for("searcher")
    db.insert_or_update_agent({"agent_id": "critic-1", "extra_metadata": {"tools": 2}})
    with pytest.raises(ValueError, match="agent_id or a name"):
        db.insert_or_update_agent({"user": "nobody"})

    assert [a["name"] for a in db.agent_query({}, sort=[("name", 1)])] == ["critic", "searcher"]
    assert db.agent_query({"agent_id": "critic-1"}, projection=["name", "extra_metadata"]) == [
        {"name": "critic", "extra_metadata": {"model": "m-1", "tools": 2}}
    ]
    assert db.agent_query({"extra_metadata.model": "m-1"}, projection=["agent_id"]) == [
        {"agent_id": "critic-1"}
    ]
    assert db.agent_query({"user": {"$in": ["ana", "bob"]}}, projection=["name"]) == [
        {"name": "searcher"}
    ]
    assert db.query({"name": "critic"}, collection="agents", projection=["agent_id"]) == [
        {"agent_id": "critic-1"}
    ]

    assert db.delete_agents_with_filter({"name": "nobody"}) is True
    assert len(db.agent_query({})) == 2
    assert db.delete_agents_with_filter({"name": {"$in": ["critic"]}}) is True
    assert [a["name"] for a in db.agent_query({})] == ["searcher"]
    assert db.delete_agents_with_filter({}) is True
    assert db.agent_query({}) == []


def test_derive_agents_takes_name_and_workflow_from_the_agent_record(engine):
    with Flowcept(workflow_name="agentic", agent_name="planner") as f:
        plan("tea", steps=1)
    with Flowcept(agent_id="anonymous"):
        plan("coffee", steps=1)
    planner = agent_id_for("planner")
    (record,) = Flowcept.db.agent_query({"agent_id": planner})
    derived = {a["agent_id"]: a for a in Flowcept.db.derive_agents()}
    assert sorted(derived) == sorted([planner, "anonymous"])
    assert (derived[planner]["name"], derived[planner]["workflow_id"]) == (
        "planner",
        f.current_workflow_id,
    )
    assert derived[planner]["registered_at"] == record["registered_at"]
    assert (derived[planner]["task_count"], derived[planner]["activities"]) == (1, ["plan"])
    assert (derived["anonymous"]["name"], derived["anonymous"]["workflow_id"]) == (None, None)
