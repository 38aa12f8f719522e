"""@agent_flowcept_task: tool calls as tasks, directly and through a real MCP server."""

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from provwh import Flowcept, flowcept_task
from provwh.adapters.agent import agent_flowcept_task
from provwh.core import ids as context

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _tasks():
    return [r for r in Flowcept.read_buffer_file() if r["type"] == "task"]


@agent_flowcept_task
def search(query: str, limit: int = 3) -> list:
    """Search the catalogue."""
    return [f"{query}-{i}" for i in range(limit)]


@agent_flowcept_task(agent_id="planner", output_names="plan")
async def make_plan(goal: str) -> str:
    await asyncio.sleep(0)
    return f"plan for {goal}"


@agent_flowcept_task
def broken(x: int) -> int:
    raise ValueError(f"no good: {x}")


@agent_flowcept_task
async def broken_async(x: int) -> int:
    raise ValueError(f"no good: {x}")


def test_sync_and_async_tool_calls():
    with Flowcept(agent_id="agent-7"):
        assert search("cats", limit=2) == ["cats-0", "cats-1"]
        assert asyncio.run(make_plan("dinner")) == "plan for dinner"
        search("dogs", agent_id="agent-9")  # a call-time agent_id wins
    first, plan, second = sorted(_tasks(), key=lambda t: t["started_at"])
    assert first["activity_id"] == "search"
    assert first["subtype"] == "agent_tool"
    assert first["used"] == {"query": "cats", "limit": 2}
    assert first["generated"] == {"arg_0": ["cats-0", "cats-1"]}
    assert first["status"] == "FINISHED"
    assert first["started_at"] <= first["ended_at"]
    assert first["agent_id"] == "agent-7"  # from the controller
    assert plan["agent_id"] == "planner"  # the decorator's option beats the controller's
    assert plan["used"] == {"goal": "dinner"}
    assert plan["generated"] == {"plan": "plan for dinner"}
    assert second["agent_id"] == "agent-9"
    assert second["used"] == {"query": "dogs", "limit": 3}


def test_errors_are_recorded_and_reraised():
    with Flowcept():
        with pytest.raises(ValueError, match="no good: 1"):
            broken(1)
        with pytest.raises(ValueError, match="no good: 2"):
            asyncio.run(broken_async(2))
    tasks = sorted(_tasks(), key=lambda t: t["started_at"])
    assert [(t["activity_id"], t["status"], t["stderr"]) for t in tasks] == [
        ("broken", "ERROR", "no good: 1"),
        ("broken_async", "ERROR", "no good: 2"),
    ]
    assert all("generated" not in t and t["ended_at"] >= t["started_at"] for t in tasks)


def test_nested_calls_link_to_their_parent():
    @flowcept_task
    def agent_step(question):
        return search(question, limit=1)

    with Flowcept():
        agent_step("q")
    step, tool = sorted(_tasks(), key=lambda t: t["activity_id"])
    assert (step["activity_id"], tool["activity_id"]) == ("agent_step", "search")
    assert tool["parent_task_id"] == step["task_id"]


def test_calls_inside_a_flow_belong_to_its_workflow():
    with Flowcept() as ctl:
        token = context.current_workflow_id.set("flow-workflow")
        try:
            search("in flow")
        finally:
            context.current_workflow_id.reset(token)
        search("in session")
    inside, outside = sorted(_tasks(), key=lambda t: t["started_at"])
    assert inside["workflow_id"] == "flow-workflow"
    assert outside["workflow_id"] == ctl.current_workflow_id


def test_without_capture_the_tool_runs_untouched():
    assert search("x", limit=1, agent_id="ignored") == ["x-0"]
    assert asyncio.run(make_plan("y", agent_id="ignored")) == "plan for y"
    with pytest.raises(ValueError):
        broken(3)
    assert search.__name__ == "search" and search.__doc__ == "Search the catalogue."
    assert asyncio.iscoroutinefunction(make_plan)


def test_import_provwh_imports_no_adapter_dependency():
    code = (
        "import sys, provwh; "
        "print(sorted(m for m in ('torch', 'dask', 'distributed', 'mcp') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# -- through a real MCP server (FastMCP in mcp 1.x, MCPServer in mcp 2.x) -------------------------
def _server(name):
    pytest.importorskip("mcp")
    try:
        from mcp.server.mcpserver import Context, MCPServer
    except ImportError:
        from mcp.server.fastmcp import Context
        from mcp.server.fastmcp import FastMCP as MCPServer
    return MCPServer(name), Context


async def _call(server, calls):
    """Call tools in-process through an MCP client session; returns the client's results."""
    try:
        from mcp import Client
    except ImportError:  # mcp 1.x
        from mcp.shared.memory import create_connected_server_and_client_session

        async with create_connected_server_and_client_session(server._mcp_server) as session:
            tools = (await session.list_tools()).tools
            return tools, [await session.call_tool(n, a) for n, a in calls]
    async with Client(server) as client:
        tools = (await client.list_tools()).tools
        return tools, [await client.call_tool(n, a) for n, a in calls]


def _schema(tool):
    return getattr(tool, "input_schema", None) or tool.inputSchema


def _is_error(result):
    return getattr(result, "is_error", None) or getattr(result, "isError", False)


def test_mcp_server_tool_calls():
    mcp, Context = _server("provwh_test_agent")

    @mcp.tool()
    @agent_flowcept_task  # must be in this order: @mcp.tool() then @agent_flowcept_task
    def add(x: int, y: int, campaign_id: str | None = None) -> int:
        """Add two numbers."""
        return x + y

    @mcp.tool()
    @agent_flowcept_task(agent_id="mcp-agent")
    async def shout(text: str, ctx: Context) -> str:
        """Upper-case a text (asks for the request context, which is not an input)."""
        return text.upper()

    @mcp.tool()
    @agent_flowcept_task
    def fail(reason: str) -> str:
        raise RuntimeError(reason)

    with Flowcept(agent_id="controller-agent", campaign_id="camp-1"):
        tools, results = asyncio.run(
            _call(
                mcp,
                [
                    ("add", {"x": 2, "y": 3}),
                    ("shout", {"text": "hi"}),
                    ("fail", {"reason": "tool broke"}),
                ],
            )
        )
        with pytest.raises(Exception) as raised:  # the server's own call path re-raises
            asyncio.run(mcp.call_tool("fail", {"reason": "direct"}))
    schemas = {t.name: _schema(t) for t in tools}
    assert set(schemas["add"]["properties"]) == {"x", "y", "campaign_id"}
    assert schemas["add"]["required"] == ["x", "y"]
    assert set(schemas["shout"]["properties"]) == {"text"}
    assert [_is_error(r) for r in results] == [False, False, True]
    cause = raised.value.__cause__ or raised.value
    assert "direct" in str(cause)

    tasks = {(t["activity_id"], t["used"].get("reason")): t for t in _tasks()}
    assert len(tasks) == 4
    add_task = tasks[("add", None)]
    assert add_task["used"] == {"x": 2, "y": 3, "campaign_id": None}
    assert add_task["generated"] == {"arg_0": 5}
    assert add_task["campaign_id"] == "camp-1"
    assert add_task["agent_id"] == "controller-agent"
    assert add_task["subtype"] == "agent_tool"
    shout_task = tasks[("shout", None)]
    assert shout_task["used"] == {"text": "hi"}
    assert shout_task["generated"] == {"arg_0": "HI"}
    assert shout_task["agent_id"] == "mcp-agent"
    for reason in ("tool broke", "direct"):
        failed = tasks[("fail", reason)]
        assert (failed["status"], failed["stderr"]) == ("ERROR", reason)


def test_agent_example(tmp_path):
    pytest.importorskip("mcp")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROVWH_")}
    env["PROVWH_DUCKDB_ENABLED"] = "false"
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / "agent_tool.py")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    records = Flowcept.read_buffer_file(str(tmp_path / "flowcept_buffer.jsonl"))
    tools = [r for r in records if r["type"] == "task" and r.get("subtype") == "agent_tool"]
    assert {t["activity_id"] for t in tools} == {"tool_example"}
