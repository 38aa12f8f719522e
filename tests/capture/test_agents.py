"""PROV-AGENT capture: ``Flowcept(agent_name=...)``, ``AgentObject``, ``@flowcept_agent_task``,
written as a Flowcept user writes them; the records are read back from the buffer file."""

import uuid

import pytest
from capture_helpers import tasks_of, workflows_of

from provwh import PROV_AGENT, AgentObject, Flowcept, flowcept_agent_task
from provwh.core.host import host_identity
from provwh.core.ids import AGENT_NAMESPACE, agent_id_for

PLANNER_ID = str(uuid.uuid5(uuid.UUID(AGENT_NAMESPACE), "planner"))


def agents_of(records):
    return [r for r in records if r.get("type") == "agent"]


@flowcept_agent_task
def plan(goal: str, steps: int = 2) -> list:
    return [f"{goal} {i}" for i in range(steps)]


@flowcept_agent_task(subtype=PROV_AGENT.AI_MODEL_INVOCATION, output_names="answer")
def ask_llm(prompt: str) -> str:
    return prompt.upper()


def test_agent_id_is_derived_from_the_name():
    assert agent_id_for("planner") == PLANNER_ID
    assert agent_id_for("planner") != agent_id_for("critic")


def test_named_agent_is_recorded_with_its_tasks():
    with Flowcept(workflow_name="agentic", agent_name="planner") as f:
        assert f.agent_id == PLANNER_ID
        assert plan("dinner") == ["dinner 0", "dinner 1"]
        assert ask_llm("hi") == "HI"
    records = Flowcept.read_buffer_file()
    (agent,) = agents_of(records)
    assert agent == {
        "type": "agent",
        "agent_id": PLANNER_ID,
        "name": "planner",
        "workflow_id": f.current_workflow_id,
        "campaign_id": f.campaign_id,
        "registered_at": agent["registered_at"],
        "user": host_identity()["user"],
    }
    assert isinstance(agent["registered_at"], float)
    (wf,) = workflows_of(records)
    assert wf["agent_id"] == PLANNER_ID
    first, second = tasks_of(records)
    assert (first["activity_id"], first["subtype"], first["agent_id"]) == (
        "plan",
        "agent_tool",
        PLANNER_ID,
    )
    assert first["used"] == {"goal": "dinner", "steps": 2}
    assert first["generated"] == {"arg_0": ["dinner 0", "dinner 1"]}
    assert (second["activity_id"], second["subtype"], second["agent_id"]) == (
        "ask_llm",
        "ai_model_invocation",
        PLANNER_ID,
    )
    assert second["generated"] == {"answer": "HI"}
    assert len(records) == 4  # workflow, agent, 2 tasks


def test_given_agent_id_wins_over_the_derived_one():
    with Flowcept(agent_name="critic", agent_id="critic-7"):
        plan("x", steps=1)
    records = Flowcept.read_buffer_file()
    assert [(a["agent_id"], a["name"]) for a in agents_of(records)] == [("critic-7", "critic")]
    assert [t["agent_id"] for t in tasks_of(records)] == ["critic-7"]


def test_agent_id_alone_records_no_agent():
    """As before agents had records: ``Flowcept(agent_id=...)`` only names the agent."""
    with Flowcept(agent_id="agent-3"):
        plan("y", steps=1)
    records = Flowcept.read_buffer_file()
    assert agents_of(records) == []
    assert [t["agent_id"] for t in tasks_of(records)] == ["agent-3"]
    assert workflows_of(records)[0]["agent_id"] == "agent-3"


def test_save_agent_publishes_other_agents():
    with Flowcept(workflow_name="team") as f:
        critic = f.save_agent(AgentObject(name="critic"))
        tool = f.save_agent({"agent_id": "tool-1", "name": "search", "extra_metadata": {"v": 2}})
        with pytest.raises(ValueError, match="no agent"):
            f.save_agent()
    assert critic.agent_id == agent_id_for("critic")
    assert tool.agent_id == "tool-1"
    found = {a["agent_id"]: a for a in agents_of(Flowcept.read_buffer_file())}
    assert sorted(found) == sorted([agent_id_for("critic"), "tool-1"])
    assert found["tool-1"]["extra_metadata"] == {"v": 2}
    assert found["tool-1"]["user"] == host_identity()["user"]
    assert "workflow_id" not in found["tool-1"]


def test_agent_object_round_trip():
    agent = AgentObject("a-1", "planner", workflow_id="wf-1", campaign_id="c-1")
    assert AgentObject.agent_id_field() == "agent_id"
    d = agent.to_dict()
    assert d == {
        "type": "agent",
        "agent_id": "a-1",
        "name": "planner",
        "workflow_id": "wf-1",
        "campaign_id": "c-1",
        "registered_at": d["registered_at"],
    }
    back = AgentObject.from_dict(d)
    assert back == agent
    assert (back.agent_id, back.name, back.user, back.extra_metadata) == (
        "a-1",
        "planner",
        None,
        None,
    )
    assert AgentObject.deserialize(agent.serialize()) == agent


def test_agent_tasks_without_a_capture_just_run():
    assert plan("z", steps=1) == ["z 0"]
