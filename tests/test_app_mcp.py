"""`python -m app --mcp` serves the named endpoints as MCP tools (Gradio's `mcp_server=True`): the tools are listed
over HTTP with the MCP client (streamable HTTP at /gradio_api/mcp/), each with its parameters described from the
endpoint's docstring; the page's own events are not tools. Without the flag there is no MCP server. Slow:
`python -m pytest -m slow tests/test_app_mcp.py`."""

import asyncio
import os
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamablehttp_client
from test_app_client import _free_port, _stop, app_server, wait_for_page  # noqa: F401  (the shared server fixture)

ROOT = Path(__file__).resolve().parent.parent
TOOLS = {"reason", "compare", "neighbours", "switching_stats", "examples", "checkpoints"}

pytestmark = pytest.mark.slow


async def list_tools(url: str) -> list:
    async with streamablehttp_client(url) as (read, write, _):
        async with ClientSession(read, write) as session:
            await session.initialize()
            return (await session.list_tools()).tools


@pytest.fixture(scope="module")
def mcp_url():
    work = Path(tempfile.mkdtemp(prefix="app-mcp-"))
    port = _free_port()
    command = [sys.executable, "-m", "app", "--checkpoint", "tiny", "--mcp", "--host", "127.0.0.1", "--port",
               str(port), "--cache-dir", str(work / "cache"), "--event-store", str(work / "events"),
               "--gallery-per-family", "1", "--registry", str(work / "none.json")]  # fmt: skip
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False", HF_HUB_OFFLINE="1")
    log = work / "server.log"
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT)
    try:
        wait_for_page(f"http://127.0.0.1:{port}/", process, log)
        yield f"http://127.0.0.1:{port}/gradio_api/mcp/"
    finally:
        _stop(process)


def test_the_endpoints_are_tools_with_described_inputs(mcp_url):
    tools = {tool.name: tool for tool in asyncio.run(list_tools(mcp_url))}
    assert set(tools) == TOOLS, "the named endpoints, and none of the page's events"
    reason = tools["reason"]
    assert "latent sketches" in reason.description
    properties = reason.inputSchema["properties"]
    assert {"image", "question", "mode", "seed", "example_id", "checkpoint", "include_latents"} <= set(properties)
    assert "registered name" in properties["checkpoint"]["description"]
    assert "2**63 - 1" in properties["seed"]["description"]
    assert "shuffled-latents" in properties["mode"]["description"]
    for name, tool in tools.items():  # every input of every tool says what it is
        for parameter, schema in tool.inputSchema.get("properties", {}).items():
            assert schema.get("description"), f"{name}.{parameter} has no description"


def test_without_the_flag_there_is_no_mcp_server(app_server):  # noqa: F811
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(f"{app_server}gradio_api/mcp/schema", timeout=10)
    assert caught.value.code == 404
