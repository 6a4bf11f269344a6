"""The AsyncAPI document: it names every subject, the real AsyncAPI CLI finds it valid, and
real sealed events match the schemas it publishes.

The CLI comes from npm. It is found at $KAPOK_ASYNCAPI_CLI, else in the git-ignored cache
.ci/cache/asyncapi, else installed there once (about a minute). If it cannot be installed the
test fails and says why: a document nobody validated is not skipped quietly.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from importlib import import_module
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from kapok.asyncapi import build_document
from kapok.cli import main as kapok_main
from shared.bus.naming import Naming
from shared.contracts import GENESIS, REGISTRY, Event
from shared.contracts.envelope import seal
from shared.settings import PRODUCERS

CLI_PACKAGE = "@asyncapi/cli@4.1.1"  # the version these tests were written against
ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".ci" / "cache" / "asyncapi"
CACHED_CLI = CACHE / "node_modules" / ".bin" / "asyncapi"
INSTALL_TIMEOUT_S = 900

# The first test to need the CLI may install it (about 70 s from a cold npm cache, 1.5 GB of
# node_modules) inside its setup, which pytest-timeout counts against that test.
pytestmark = pytest.mark.timeout(INSTALL_TIMEOUT_S + 120)


@pytest.fixture(scope="session")
def asyncapi_cli() -> Path:
    configured = os.environ.get("KAPOK_ASYNCAPI_CLI")
    if configured:
        if not Path(configured).is_file():
            pytest.fail(f"KAPOK_ASYNCAPI_CLI={configured} is not a file")
        return Path(configured)
    if CACHED_CLI.is_file():
        return CACHED_CLI
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail(
            "the AsyncAPI CLI is needed and npm is not on PATH: install Node.js 20+ and npm, "
            "or set KAPOK_ASYNCAPI_CLI to an asyncapi executable"
        )
    CACHE.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    try:
        installed = subprocess.run(
            [npm, "install", "--prefix", str(CACHE), "--no-audit", "--no-fund", CLI_PACKAGE],
            capture_output=True,
            text=True,
            timeout=INSTALL_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"npm install {CLI_PACKAGE} took over {INSTALL_TIMEOUT_S}s")
    if installed.returncode != 0 or not CACHED_CLI.is_file():
        pytest.fail(
            f"could not install {CLI_PACKAGE} into {CACHE} (exit {installed.returncode}); "
            f"is the npm registry reachable? set KAPOK_ASYNCAPI_CLI to skip the install.\n"
            f"{installed.stderr[-3000:]}"
        )
    print(f"installed {CLI_PACKAGE} in {time.monotonic() - started:.0f}s")
    return CACHED_CLI


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    # The CLI otherwise sends usage metrics, with the document's text, to a metrics service,
    # and waits on the network to do it: switch that off for every run.
    settings = tmp_path / "asyncapi-analytics.json"
    settings.write_text(
        json.dumps({"analyticsEnabled": "false", "infoMessageShown": "true", "userID": "ci"})
    )
    return {**os.environ, "CI": "true", "ASYNCAPI_METRICS_CONFIG_PATH": str(settings)}


def validate(cli: Path, document: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(cli), "validate", str(document), "--fail-severity", "warn"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def test_the_document_lists_every_event_subject_and_the_dead_letters() -> None:
    document = build_document()
    naming = Naming()
    channels = {channel["address"]: channel for channel in document["channels"].values()}

    expected = {naming.event_subject(t.source, t.type_name()) for t in REGISTRY.types()}
    commands = {
        naming.command_subject(service, name)
        for service in PRODUCERS
        for name in import_module(f"services.{service}.application.commands").COMMANDS
    }
    assert set(channels) == expected | commands | {naming.dead_letter_subject("{consumer}")}
    assert document["asyncapi"] == "3.0.0"

    messages = document["components"]["messages"]
    schemas = document["components"]["schemas"]

    def message_of(channel: dict[str, Any]) -> dict[str, Any]:
        return messages[unquote(channel["messages"]["Message"]["$ref"].rsplit("/", 1)[-1])]  # type: ignore[no-any-return]

    for event_type in REGISTRY.types():
        name = event_type.type_name()
        channel = channels[naming.event_subject(event_type.source, name)]
        message = message_of(channel)
        envelope = schemas[message["payload"]["$ref"].split("/")[-1]]
        assert envelope["properties"]["type"]["const"] == name
        assert envelope["properties"]["data"]["$ref"] == f"#/components/schemas/{name}"
        assert message["correlationId"]["location"] == "$message.payload#/correlation_id"
    dead_letters = channels[naming.dead_letter_subject("{consumer}")]
    assert "consumer" in dead_letters["parameters"]
    assert "correlationId" not in message_of(dead_letters)
    receive_call = channels[naming.command_subject("hotline", "ReceiveCall")]
    assert receive_call["bindings"]["nats"]["queue"] == "hotline"
    request = messages[
        unquote(receive_call["messages"]["SubscribeMessage"]["$ref"].rsplit("/", 1)[-1])
    ]
    assert request["payload"]["$ref"] == "#/components/schemas/ReceiveCall"


def test_the_asyncapi_cli_finds_the_document_valid(
    asyncapi_cli: Path, cli_env: dict[str, str], tmp_path: Path
) -> None:
    written = tmp_path / "asyncapi.json"
    assert kapok_main(["asyncapi", "--output", str(written)]) == 0

    result = validate(asyncapi_cli, written, cli_env)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "is valid" in result.stdout, result.stdout
    assert "0 errors, 0 warnings" in result.stdout, result.stdout


def test_the_asyncapi_cli_really_checks(
    asyncapi_cli: Path, cli_env: dict[str, str], tmp_path: Path
) -> None:
    # Proof that a passing validation means something: break one payload schema, see it fail.
    broken = copy.deepcopy(build_document())
    broken["components"]["schemas"]["AidDelivered"]["properties"]["persons_served"]["type"] = (
        "wholenumber"
    )
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(broken))

    result = validate(asyncapi_cli, path, cli_env)

    assert result.returncode != 0
    assert "persons_served" in result.stdout + result.stderr


# Validates bodies against the document's own schemas with ajv, the JSON Schema validator
# the AsyncAPI CLI itself depends on (so it is already in the CLI's node_modules).
CHECK_BODIES_JS = """
const fs = require("fs");
const Ajv = require("ajv");
const addFormats = require("ajv-formats");
const [documentPath, bodiesPath] = process.argv.slice(2);
const ajv = new Ajv({ strict: false, allErrors: true });
addFormats(ajv);
ajv.addFormat("decimal", /^[0-9]+(\\.[0-9]+)?$/);
ajv.addSchema(JSON.parse(fs.readFileSync(documentPath, "utf8")), "asyncapi");
const results = {};
for (const [name, { schema, body }] of Object.entries(JSON.parse(fs.readFileSync(bodiesPath)))) {
  const check = ajv.getSchema(`asyncapi#/components/schemas/${schema}`);
  results[name] = check(body) ? null : ajv.errorsText(check.errors);
}
console.log(JSON.stringify(results));
"""


def test_real_events_match_the_documented_schemas(
    asyncapi_cli: Path,
    examples: dict[str, Event],
    make_body: Callable[..., dict[str, Any]],
    tmp_path: Path,
) -> None:
    node = shutil.which("node")
    assert node is not None, "node is needed to check bodies against the document"
    node_modules = next(
        (
            parent
            for parent in asyncapi_cli.resolve().parents
            if parent.name == "node_modules" and (parent / "ajv").is_dir()
        ),
        CACHE / "node_modules",
    )
    document = tmp_path / "asyncapi.json"
    document.write_text(json.dumps(build_document()))
    bodies: dict[str, Any] = {}
    for position, (name, example) in enumerate(examples.items(), start=1):
        body = json.loads(seal(make_body(example, position=position, prev_hash=GENESIS)))
        bodies[name] = {"schema": f"{name}Envelope", "body": body}
    # And one that must fail, so that passing means something: money as a JSON number.
    funds = copy.deepcopy(bodies["FundsReceived"])
    funds["body"]["data"]["amount_yuan"] = 136210.5
    bodies["money as a number"] = funds
    (tmp_path / "bodies.json").write_text(json.dumps(bodies, ensure_ascii=False))
    (tmp_path / "check.js").write_text(CHECK_BODIES_JS)

    result = subprocess.run(
        [node, str(tmp_path / "check.js"), str(document), str(tmp_path / "bodies.json")],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "NODE_PATH": str(node_modules)},
    )
    assert result.returncode == 0, result.stderr
    errors = json.loads(result.stdout)

    assert "amount_yuan" in errors.pop("money as a number")
    assert errors == dict.fromkeys(examples)
