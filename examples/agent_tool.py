"""An MCP agent tool whose calls are provenance tasks (the capture document's MCP example).

The tool is served by an MCP server (``pip install mcp``) and called in-process through an MCP
client, as an agent would call it; ``@agent_flowcept_task`` records each call (tool name,
arguments, result or error, timing, agent id, ``subtype="agent_tool"``). No LLM framework is
needed: the "model" here is a stand-in function.
"""

import asyncio

from provwh import Flowcept
from provwh.adapters.agent import agent_flowcept_task

try:  # mcp 2.x calls FastMCP MCPServer
    from mcp.server.mcpserver import MCPServer as FastMCP
except ImportError:
    from mcp.server.fastmcp import FastMCP

mcp = FastMCP("AnC_Agent_mock")


def build_llm_model():
    """A stand-in for an LLM client: answers with a deterministic text."""
    return lambda messages: f"answer to: {messages[-1]['content']}"


def generate_prompt(x, y):
    return [
        {"role": "system", "content": "You are a careful assistant."},
        {"role": "user", "content": f"combine {x} and {y}"},
    ]


@mcp.tool()
@agent_flowcept_task  # Must be in this order: @mcp.tool() then @agent_flowcept_task
def tool_example(x: int, y: int, campaign_id: str | None = None) -> str:
    """Ask the (mock) model to combine two numbers."""
    llm = build_llm_model()
    messages = generate_prompt(x, y)
    return llm(messages)


async def agent_session():
    try:
        from mcp import Client
    except ImportError:  # mcp 1.x: an in-memory client session
        from mcp.shared.memory import create_connected_server_and_client_session

        async with create_connected_server_and_client_session(mcp._mcp_server) as session:
            return await session.call_tool("tool_example", {"x": 1, "y": 2})
    async with Client(mcp) as client:
        return await client.call_tool("tool_example", {"x": 1, "y": 2})


if __name__ == "__main__":
    with Flowcept(workflow_name="agent_tools", agent_id="AnC_Agent_mock"):
        result = asyncio.run(agent_session())
        print(result.content[0].text)

    (task,) = [m for m in Flowcept.read_buffer_file() if m["type"] == "task"]
    print(task["activity_id"], task["agent_id"], task["used"], task["generated"])
