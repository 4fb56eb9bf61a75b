"""The JavaScript viewer client (clients/js): its own test cases run in Node and in headless
Chromium against a real node, and ``npm pack`` gives a tarball that installs into an empty
folder and imports. ``make test`` runs them through this file.

Node (and npm) are needed: outside CI the tests skip with the reason when they are missing, as
the browser tests do; in CI (``CI`` set) a missing Node fails them.
"""

from __future__ import annotations

import asyncio
import json
import mimetypes
import os
import re
import shutil
import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, PageErrors, require_chromium
from tests.support.paths import ROOT
from tests.support.servers import Node
from tests.support.util import TIMEOUT_SCALE_ENV, scaled, timeout_scale

if TYPE_CHECKING:
    from playwright.async_api import Browser, Route

NodeFactory = Callable[..., Node]
# What Chromium logs, as console errors, for a handshake refused on purpose and for the client's
# plain-HTTP question about it (docs/protocol.md, "Refusals and close codes").
REFUSAL_LOGS = (r"WebSocket connection to .* failed", r"status of 40[134]")
HOST_TOKEN = "js-client-host-token"
PACKAGE = ROOT / "clients" / "js"


def require_node() -> tuple[str, str]:
    """Paths of ``node`` and ``npm``; skips (developer machine) or fails (CI) without them."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node and npm:
        return node, npm
    reason = "the JS client tests need node and npm (apt-get install nodejs npm)"
    if os.environ.get("CI"):
        pytest.fail(reason + " — CI must run them", pytrace=False)
    pytest.skip(reason)


def websocket_flags(node: str) -> list[str] | None:
    """Flags that give Node a global WebSocket (none on Node 22, a flag on Node 20), or None on an
    older Node (Debian 12's is 18), which has none: the package itself takes no dependency."""
    for flags in ([], ["--experimental-websocket"]):
        check = "process.exit(typeof WebSocket === 'function' ? 0 : 1)"
        probe = subprocess.run([node, *flags, "-e", check], check=False, capture_output=True)
        if probe.returncode == 0:
            return flags
    return None


async def run(argv: list[str], cwd: Path, env: dict[str, str], timeout: float) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        *argv, cwd=cwd, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    try:
        async with asyncio.timeout(scaled(timeout)):
            out, _ = await proc.communicate()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    return proc.returncode or 0, out.decode(errors="replace")


def case_names(kind: str) -> list[str]:
    """The names of the unit or live cases, read from their module (to check every one ran)."""
    text = (PACKAGE / "test" / f"{kind}-cases.js").read_text(encoding="utf-8")
    return re.findall(r'^\s{4}name: "(.*)",$', text, flags=re.MULTILINE)


def node_cases_passed(out: str, kind: str) -> None:
    expected = len(case_names(kind))
    assert expected >= 4
    assert f"# pass {expected}" in out and "# fail 0" in out and "# skipped 0" in out, out[-3000:]


async def test_the_package_unit_cases_pass_in_node() -> None:
    node_bin, _ = require_node()
    env = {**os.environ, "LIVEDROP_JS_CASES": "unit"}
    code, out = await run([node_bin, "--test", "--test-reporter=tap", "test/node.test.js"], PACKAGE, env, timeout=60)
    assert code == 0, out[-6000:]
    node_cases_passed(out, "unit")


async def test_the_package_live_cases_pass_in_node_against_a_real_node(nodes: NodeFactory) -> None:
    node_bin, _ = require_node()
    flags = websocket_flags(node_bin)
    if flags is None:
        # Not a CI failure: the same live cases run in Chromium below; the unit cases ran above.
        pytest.skip("this Node has no WebSocket (Node >= 20 has one): the live cases run in Chromium only")
    server = nodes(env={"LIVEDROP_HOST_TOKENS": HOST_TOKEN})
    env = {
        **os.environ,
        "LIVEDROP_JS_CASES": "live",
        "LIVEDROP_JS_HTTP": server.http,
        "LIVEDROP_JS_HOST_TOKEN": HOST_TOKEN,
        TIMEOUT_SCALE_ENV: str(timeout_scale()),
    }
    argv = [node_bin, *flags, "--test", "--test-reporter=tap", "test/node.test.js"]
    code, out = await run(argv, PACKAGE, env, timeout=120)
    assert code == 0, out[-6000:]
    node_cases_passed(out, "live")


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    require_chromium()
    from playwright.async_api import async_playwright

    playwright = await async_playwright().start()
    try:
        chromium = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()
    finally:
        await playwright.stop()


# Runs every case in the page; the client comes from the node's own /client/ mount.
RUN_CASES = """async ({ hostToken, scale }) => {
  const lib = await import("/client/index.js");
  const { unitCases } = await import("/client-tests/unit-cases.js");
  const { liveCases } = await import("/client-tests/live-cases.js");
  const env = { http: location.origin, hostToken, scale };
  const results = [];
  for (const [kind, cases] of [["unit", unitCases], ["live", liveCases]]) {
    for (const { name, fn } of cases) {
      try {
        await fn(lib, env);
        results.push({ kind, name, error: null });
      } catch (error) {
        results.push({ kind, name, error: String((error && error.stack) || error) });
      }
    }
  }
  return results;
}"""


async def test_the_package_tests_pass_in_chromium_against_a_real_node(nodes: NodeFactory, browser: Browser) -> None:
    server = nodes(env={"LIVEDROP_HOST_TOKENS": HOST_TOKEN})
    errors = PageErrors()
    for pattern in REFUSAL_LOGS:
        errors.allow(pattern)
    context = await browser.new_context()
    try:
        page = await context.new_page()
        errors.watch(page, "cases")

        # The test cases are not part of what the node serves: the browser gets them from disk,
        # under the node's origin (so fetch and WebSocket are same-origin, as for a real page).
        async def serve_tests(route: Route) -> None:
            name = route.request.url.rsplit("/client-tests/", 1)[1].split("?")[0]
            path = PACKAGE / "test" / name
            if "/" in name or not path.is_file():
                await route.fulfill(status=404, body="not found")
                return
            kind = mimetypes.guess_type(name)[0] or "text/plain"
            await route.fulfill(body=path.read_text(encoding="utf-8"), content_type=kind)

        await page.route("**/client-tests/**", serve_tests)
        # A page the node really serves: a page fulfilled by the test would not count as loopback,
        # and Chromium's local-network-access checks would then block its WebSocket to the node.
        await page.goto(f"{server.http}/healthz")
        results: list[dict[str, Any]] = await asyncio.wait_for(
            page.evaluate(RUN_CASES, {"hostToken": HOST_TOKEN, "scale": timeout_scale()}), scaled(120)
        )
        failed = [r for r in results if r["error"]]
        assert not failed, json.dumps(failed, indent=1) + "\n" + "\n".join(errors.errors[:5])
        assert [r["name"] for r in results] == case_names("unit") + case_names("live")
        assert not errors.errors
    finally:
        await context.close()


async def test_npm_pack_installs_into_an_empty_folder_and_imports(tmp_path: Path) -> None:
    node_bin, npm = require_node()
    env = {**os.environ, "npm_config_cache": str(tmp_path / "npm-cache"), "npm_config_update_notifier": "false"}
    code, out = await run([npm, "pack", "--json", "--pack-destination", str(tmp_path)], PACKAGE, env, timeout=60)
    assert code == 0, out
    packed = json.loads(out[out.index("[") :])[0]
    files = {f["path"] for f in packed["files"]}
    assert {"package.json", "README.md", "src/index.js", "src/index.d.ts"} <= files
    assert not any(f.startswith("test/") for f in files), "tests stay out of the package"
    tarball = tmp_path / packed["filename"]

    app = tmp_path / "app"
    app.mkdir()
    (app / "package.json").write_text('{"name": "empty-app", "version": "0.0.0", "private": true}')
    code, out = await run([npm, "install", "--offline", "--no-audit", "--no-fund", str(tarball)], app, env, 60)
    assert code == 0, out
    probe = (
        "const lib = await import('@livedrop/client');"
        "const snap = new lib.Snapshot();"
        "snap.apply({type: 'welcome', show: 's', title: 't', state: 'live', seq: 1, epoch: 'e', server_time: 5,"
        " viewers: 0, can_reserve: false, drops: []});"
        "console.log(JSON.stringify({seq: snap.seq, connect: typeof lib.connect, version: lib.VERSION,"
        " names: Object.keys(lib).sort()}));"
    )
    code, out = await run([node_bin, "--input-type=module", "-e", probe], app, env, 30)
    assert code == 0, out
    version = json.loads((PACKAGE / "package.json").read_text())["version"]
    result = json.loads(out)
    assert result | {"names": None} == {"seq": 1, "connect": "function", "version": version, "names": None}
    # The hand-written types declare exactly what the module exports (no tsc here to check more).
    types = (app / "node_modules" / "@livedrop" / "client" / "src" / "index.d.ts").read_text()
    declared = sorted(re.findall(r"^export declare (?:const|function|class) (\w+)", types, flags=re.MULTILINE))
    assert declared == result["names"]


async def test_the_demo_viewer_page_runs_on_the_package(nodes: NodeFactory, browser: Browser) -> None:
    """The demo page loads the client from the node's /client/ mount (the package's own files,
    byte for byte) and buys through it: a hold, its timer, and a second viewer's stock update."""
    import httpx
    from playwright.async_api import expect

    server = nodes(env={"LIVEDROP_HOST_TOKENS": HOST_TOKEN})
    headers = {"Authorization": f"Bearer {HOST_TOKEN}"}
    async with httpx.AsyncClient(base_url=server.http, headers=headers) as api:
        for path, body in [
            ("/api/shows", {"show_id": "s1", "title": "Client show"}),
            ("/api/shows/s1/drops", {"drop_id": "d1", "sku": "S1", "title": "Sneaker", "total": 3, "hold_seconds": 90}),
            ("/api/drops/d1/launch", {"duration_seconds": 300}),
        ]:
            assert (await api.post(path, json=body)).is_success
        token = (await api.post("/api/shows/s1/tokens", json={"viewer_id": "v-demo"})).json()["token"]
        served = await api.get("/client/client.js")
        assert served.status_code == 200 and "javascript" in served.headers["content-type"]
        assert served.text == (PACKAGE / "src" / "client.js").read_text(encoding="utf-8")

    errors = PageErrors()
    for pattern in REFUSAL_LOGS:
        errors.allow(pattern)
    context = await browser.new_context()
    try:
        page = await context.new_page()
        errors.watch(page, "viewer")
        loaded: list[str] = []
        page.on("request", lambda request: loaded.append(request.url))
        await page.goto(f"{server.http}/demo/shows/s1#token={token}")
        await expect(page.get_by_role("heading", name="Sneaker")).to_be_visible(timeout=scaled(5) * 1000)
        assert f"{server.http}/client/index.js" in loaded and f"{server.http}/client/client.js" in loaded
        await page.get_by_role("button", name="Buy now").click()
        await expect(page.get_by_text("Reserved for you")).to_be_visible(timeout=scaled(5) * 1000)
        await expect(page.get_by_role("timer", name="Hold time left")).to_have_text(re.compile(r"^(1:30|1:[0-2]\d)$"))
        await expect(page.get_by_text("2 of 3 left")).to_be_visible(timeout=scaled(5) * 1000)

        # A refused token (401 in the handshake): the client asks the page's token hook once more, the page has
        # dropped the token by then, and it goes on watching.
        refused = await context.new_page()
        errors.watch(refused, "refused")
        await refused.goto(f"{server.http}/demo/shows/s1#token=e30.forged")
        await expect(refused.get_by_text("Your viewer link has expired")).to_be_visible(timeout=scaled(5) * 1000)
        await expect(refused.get_by_role("heading", name="Sneaker")).to_be_visible(timeout=scaled(5) * 1000)
        await expect(refused.get_by_text("You are watching without a viewer token.")).to_be_visible()

        # An unknown show is refused in the handshake: the page says so and never shows itself live.
        unknown = await context.new_page()
        errors.watch(unknown, "unknown")
        await unknown.goto(f"{server.http}/demo/shows/no-such-show#token={token}")
        await expect(unknown.get_by_text("This show does not exist.")).to_be_visible(timeout=scaled(5) * 1000)
        await expect(unknown.locator("body")).to_have_class(re.compile(r"\boffline\b"))
        assert not errors.errors
    finally:
        await context.close()
