"""deploy/: what can be checked without a container engine (docs/deploy.md says what was not run).

The compose file parses; every fraudstream command in it (and in docs/deploy.md) parses against
the real CLI; every ``FRAUDSTREAM_…`` variable is a settings field and the environments validate;
ports, topics, volumes and the store agree between services, Prometheus and the proxy; the
Containerfile installs the package with the Makefile's commands, as a non-root user.
"""

from __future__ import annotations

import functools
import os
import re
import shlex
import shutil
import subprocess
import typing
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import msgspec
import pytest
import typer.main
from pydantic import BaseModel

from fraudstream.config import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
REQUIRED = {"kafka", "postgres", "notify", "serve", "dashboard", "prometheus"}
METRICS_PATH = {"detect": "/metrics", "notify": "/metrics", "serve": "/readyz"}


# --- reading the files -------------------------------------------------------------------------


@functools.cache
def compose() -> dict[str, Any]:
    doc = msgspec.yaml.decode(COMPOSE.read_bytes())
    assert isinstance(doc, dict)
    return doc


def services() -> dict[str, dict[str, Any]]:
    found = compose()["services"]
    assert isinstance(found, dict)
    return found


_VAR = re.compile(r"\$(?:(\$)|\{(\w+)(?::?-([^}]*))?\}|(\w+))")


def interpolate(text: str) -> str:
    """Compose's interpolation with an empty environment: ``$$`` is ``$``, ``${X:-d}`` is d; a
    variable without a default fails (the stack must start from this file alone)."""

    def one(m: re.Match[str]) -> str:
        if m.group(1):
            return "$"
        if m.group(3) is None:
            raise AssertionError(f"{m.group(0)} has no default in {COMPOSE.name}")
        return m.group(3)

    return _VAR.sub(one, text)


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    assert isinstance(env, dict), "environment must be a mapping"
    return {str(k): interpolate(str(v)) for k, v in env.items()}


def is_fraudstream(service: dict[str, Any]) -> bool:
    build = service.get("build")
    return isinstance(build, dict) and build.get("dockerfile") == "deploy/Containerfile"


def fraudstream_services() -> dict[str, dict[str, Any]]:
    return {name: s for name, s in services().items() if is_fraudstream(s)}


_OPERATORS = {";", "&&", "||", "|", "&"}


def invocations(words: list[str]) -> list[list[str]]:
    """The ``fraudstream`` command lines (arguments after the program) in a shell word list."""
    found: list[list[str]] = []
    current: list[str] | None = None
    for word in [*words, ";"]:
        if word in _OPERATORS:
            if current is not None:
                found.append(current)
            current = None
        elif current is not None:
            current.append(word)
        elif word == "fraudstream":
            current = []
    return found


def shell_words(script: str) -> list[str]:
    """A shell script's words, comments dropped, each line ended by ``;``."""
    words: list[str] = []
    for line in script.replace("\\\n", " ").splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|")
        lexer.whitespace_split = True
        lexer.commenters = "#"
        words += [*lexer, ";"]
    return words


def commands_of(service: dict[str, Any]) -> list[list[str]]:
    command = service.get("command")
    assert isinstance(command, list), "commands are lists (exec form)"
    words = [interpolate(str(w)) for w in command]
    if words[:2] == ["sh", "-c"]:
        return invocations(shell_words(words[2]))
    return invocations(words)


def cli_parse(args: list[str]) -> tuple[str, dict[str, Any]]:
    """The command's name and parsed parameters: click parses ``args`` exactly as the real CLI
    would (an unknown option, a bad value or a missing argument raises), and runs nothing."""
    from fraudstream.cli import _commands  # noqa: F401  (registers every command)
    from fraudstream.cli._app import app

    command = typer.main.get_command(app)
    path: list[str] = []
    rest = list(args)
    while (subcommands := getattr(command, "commands", None)) is not None:
        assert rest, f"fraudstream {' '.join(path)} needs a subcommand"
        name = rest.pop(0)
        assert name in subcommands, f"no command fraudstream {' '.join([*path, name])}"
        path.append(name)
        command = subcommands[name]
    rest = [word for word in rest if word != "--help"]  # it would exit before checking the rest
    context = command.make_context(" ".join(path), rest)
    return " ".join(path), dict(context.params)


def settings_of(env: dict[str, str], monkeypatch: pytest.MonkeyPatch, cwd: Path) -> Settings:
    """Settings as the container builds them: the image's ENV, then the service's environment."""
    for name in list(os.environ):
        if name.startswith("FRAUDSTREAM_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(cwd)  # no .env of the developer's
    for name, value in {**containerfile_env(), **env}.items():
        if name.startswith("FRAUDSTREAM_"):
            monkeypatch.setenv(name, value)
    return Settings()


def is_settings_field(name: str) -> bool:
    """Whether pydantic-settings reads ``name`` into a field (it silently ignores the others)."""
    if not name.startswith("FRAUDSTREAM_"):
        return False
    model: type[BaseModel] = Settings
    parts = name.removeprefix("FRAUDSTREAM_").lower().split("__")
    for i, part in enumerate(parts):
        field = model.model_fields.get(part)
        if field is None:
            return False
        kind = field.annotation
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            model = kind
            continue
        return i == len(parts) - 1 or typing.get_origin(kind) is dict
    return False


@functools.cache
def containerfile() -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` with continuation lines joined and comments dropped."""
    steps: list[tuple[str, str]] = []
    pending = ""
    for line in (DEPLOY / "Containerfile").read_text().splitlines():
        if line.lstrip().startswith("#") or not line.strip():
            continue
        pending += line.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        word, _, rest = pending.strip().partition(" ")
        steps.append((word.upper(), " ".join(rest.split())))
        pending = ""
    assert not pending, "the Containerfile ends inside a continued line"
    return steps


def containerfile_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for word, rest in containerfile():
        if word == "ENV":
            for item in shlex.split(rest):
                name, _, value = item.partition("=")
                env[name] = value
    return env


def containerfile_runs() -> list[list[str]]:
    """Every command of every RUN, split at ``&&``."""
    runs: list[list[str]] = []
    for word, rest in containerfile():
        if word == "RUN":
            current: list[str] = []
            for token in shell_words(rest):
                if token == "&&":
                    runs.append(current)
                    current = []
                else:
                    current.append(token)
            runs.append(current)
    return runs


def makefile_install() -> tuple[str, list[list[str]]]:
    """The Makefile's ``$(PYTHON)`` and the commands of its install recipe, variables expanded."""
    text = (ROOT / "Makefile").read_text()
    variables = dict(re.findall(r"^(\w+)\s*[?:]?=\s*(.*?)\s*$", text, flags=re.M))

    def expand(value: str) -> str:
        while (m := re.search(r"\$\((\w+)\)", value)) is not None:
            value = value.replace(m.group(0), variables[m.group(1)])
        return value

    recipe = re.search(r"^\$\(STAMP\):.*\n((?:\t.*\n)+)", text, flags=re.M)
    assert recipe is not None, "the Makefile's install recipe ($(STAMP)) is gone"
    lines = [expand(line.strip()) for line in recipe.group(1).splitlines()]
    commands: list[list[str]] = []
    for line in lines:
        for part in line.split("||"):
            commands.append(shlex.split(part))
    return expand(variables["PYTHON"]), commands


def service_kind(service: dict[str, Any]) -> str | None:
    """``detect``, ``notify``, ``serve``, ``dashboard``, … for a long-running fraudstream
    service (its one command), else None."""
    lines = commands_of(service)
    return cli_parse(lines[0])[0] if len(lines) == 1 else None


# --- the compose file --------------------------------------------------------------------------


def test_compose_has_the_stack() -> None:
    names = set(services())
    assert names >= REQUIRED
    kinds = [service_kind(s) for s in fraudstream_services().values()]
    assert kinds.count("detect") >= 2, "two detectors"
    assert {"notify", "serve", "dashboard", "train"} <= set(kinds)
    kafka = services()["kafka"]
    assert str(kafka["image"]).startswith("apache/kafka:")
    roles = set(environment(kafka)["KAFKA_PROCESS_ROLES"].split(","))
    assert roles == {"broker", "controller"}, "KRaft, one combined node"
    assert not any("ZOOKEEPER" in k for k in environment(kafka))


def test_every_fraudstream_command_parses() -> None:
    for name, service in fraudstream_services().items():
        lines = commands_of(service)
        if name == "pod":
            assert lines == [], "the pod only holds the network namespace"
            continue
        assert lines, f"{name} runs no fraudstream command"
        for args in lines:
            cli_parse(args)  # raises on an unknown command or option, a bad value


def test_the_cli_check_can_fail() -> None:
    assert cli_parse(["detect", "--quiet"])[1]["quiet"] is True
    with pytest.raises(AssertionError, match="no command"):
        cli_parse(["detector"])
    with pytest.raises(Exception, match="No such option"):
        cli_parse(["detect", "--metrics-port", "9464"])
    with pytest.raises(Exception, match="valid integer"):
        cli_parse(["train", "--rows", "many"])


def test_every_fraudstream_variable_is_a_settings_field() -> None:
    names = set(containerfile_env())
    for service in services().values():
        names |= set(environment(service))
    ours = {n for n in names if n.startswith("FRAUDSTREAM_")}
    assert ours, "no FRAUDSTREAM_ variable found"
    assert sorted(n for n in ours if not is_settings_field(n)) == []


def test_the_field_check_can_fail() -> None:
    assert is_settings_field("FRAUDSTREAM_DETECT__METRICS_PORT")
    assert is_settings_field("FRAUDSTREAM_REPLAY__COLUMNS__AMOUNT")  # a mapping's key
    assert not is_settings_field("FRAUDSTREAM_DETECT__METRIC_PORT")
    assert not is_settings_field("FRAUDSTREAM_DETECT__METRICS_PORT__X")
    assert not is_settings_field("FRAUDSTREAM_KAFKA")
    assert not is_settings_field("FRAUDSTREAM_METRICS_PORT")


def test_every_environment_validates_and_they_agree(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    resolved = {
        name: settings_of(environment(s), monkeypatch, tmp_path)
        for name, s in fraudstream_services().items()
    }
    kafka = environment(services()["kafka"])["KAFKA_ADVERTISED_LISTENERS"]
    internal = dict(item.split("://") for item in kafka.split(","))["PLAINTEXT"]
    postgres = environment(services()["postgres"])
    for name, s in resolved.items():
        if name == "pod":
            continue
        assert s.kafka.bootstrap_servers == internal, name
        url = urlsplit(s.store_url())
        assert (url.scheme, url.hostname, url.port) == ("postgresql", "postgres", 5432), name
        assert url.username == postgres["POSTGRES_USER"], name
        assert url.password == postgres["POSTGRES_PASSWORD"], name
        assert url.path == f"/{postgres['POSTGRES_DB']}", name
    detectors = [n for n, s in fraudstream_services().items() if service_kind(s) == "detect"]
    assert len({resolved[n].detect.group_id for n in detectors}) == 1, "one consumer group"
    ports = [resolved[n].detect.metrics_port for n in detectors]
    assert 0 not in ports and len(set(ports)) == len(ports)


def test_topics_are_created_as_the_settings_name_them(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    script = interpolate(str(services()["topics"]["command"][0]))
    created = {name: int(n) for name, n in re.findall(r"^create (\S+) (\d+)$", script, re.M)}
    assert "--bootstrap-server kafka:9092" in script
    s = settings_of(environment(services()["detect-1"]), monkeypatch, tmp_path)
    p = s.kafka.partitions
    topics = s.topics
    assert created == {
        topics.transactions: p,
        topics.alerts: p,
        topics.dlq: p,
        topics.labels: p,
        s.api.decisions_topic: s.api.decisions_partitions,
    }
    assert environment(services()["kafka"])["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> named volume (or host path)."""
    found: dict[str, str] = {}
    for item in service.get("volumes", []):
        source, target, *_ = str(item).split(":")
        found[target] = source
    return found


def test_models_and_state_volumes_are_where_the_settings_look(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    model_volumes: set[str] = set()
    state_volumes: set[str] = set()
    for name, service in fraudstream_services().items():
        kind = service_kind(service)
        s = settings_of(environment(service), monkeypatch, tmp_path)
        if kind in {"detect", "serve", "dashboard"} or name == "train":
            model_volumes.add(mounts(service)[str(s.models_dir)])
        if kind == "detect":
            state_volumes.add(mounts(service)[str(s.detect.snapshot_dir or s.data_dir)])
    declared = set(compose()["volumes"])
    assert len(model_volumes) == 1 and model_volumes <= declared, "one models volume"
    assert len(state_volumes) == 1 and state_volumes <= declared, "detectors share snapshots"


def listen_port(name: str, service: dict[str, Any], s: Settings) -> tuple[str, int]:
    """``(kind, port)`` a service's health and metrics are served on."""
    kind = service_kind(service)
    _, params = cli_parse(commands_of(service)[0])
    if kind == "detect":
        return kind, s.detect.metrics_port
    if kind == "notify":
        return kind, s.notify.metrics_port
    if kind == "serve":
        return kind, params["port"] or s.api.port
    if kind == "dashboard":
        return kind, params["port"] or s.dashboard.port
    raise AssertionError(f"{name}: no listening port known for {kind}")


def test_prometheus_scrapes_every_metrics_endpoint(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    prometheus = services()["prometheus"]
    assert "./prometheus.yml:/etc/prometheus/prometheus.yml:ro" in prometheus["volumes"]
    config = msgspec.yaml.decode((DEPLOY / "prometheus.yml").read_bytes())
    scraped = {
        (job["job_name"], target, static.get("labels", {}).get("service"))
        for job in config["scrape_configs"]
        for static in job["static_configs"]
        for target in static["targets"]
    }
    expected = set()
    for name, service in fraudstream_services().items():
        if service_kind(service) not in METRICS_PATH:
            continue
        s = settings_of(environment(service), monkeypatch, tmp_path)
        kind, port = listen_port(name, service, s)
        assert port, f"{name} serves no metrics"
        if kind == "serve":
            assert (cli_parse(commands_of(service)[0])[1]["host"] or s.api.host) == "0.0.0.0"
            host = name  # by name, over the compose network
        else:  # 127.0.0.1 only: Prometheus must share the network namespace
            assert service.get("network_mode") == prometheus["network_mode"], name
            host = "127.0.0.1"
        expected.add((f"fraudstream-{kind}", f"{host}:{port}", name))
    assert scraped == expected


def test_healthchecks_ask_the_process_on_its_own_port(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    paths = {**METRICS_PATH, "dashboard": "/_stcore/health"}
    checked = 0
    for name, service in fraudstream_services().items():
        if "healthcheck" not in service:
            continue
        s = settings_of(environment(service), monkeypatch, tmp_path)
        kind, port = listen_port(name, service, s)
        probe = " ".join(service["healthcheck"]["test"])
        assert f"'http://127.0.0.1:{port}{paths[kind]}'" in probe, name
        checked += 1
    assert checked >= 5


def test_the_dashboard_is_published_through_its_proxy(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    dashboard = services()["dashboard"]
    proxy = services()["dashboard-proxy"]
    assert dashboard["network_mode"] == proxy["network_mode"] == "service:pod"
    s = settings_of(environment(dashboard), monkeypatch, tmp_path)
    _, port = listen_port("dashboard", dashboard, s)
    command = proxy["command"]
    assert command[command.index("--to") + 1] == f"127.0.0.1:{port}"
    inside = command[command.index("--from") + 1].lstrip(":")
    published = {str(p).rsplit(":", 1)[1] for p in services()["pod"]["ports"]}
    assert inside in published


def test_prometheus_config_passes_promtool() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (make prometheus installs it)")
    done = subprocess.run(
        [promtool, "check", "config", str(DEPLOY / "prometheus.yml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


# --- the Containerfile -------------------------------------------------------------------------


def test_containerfile_installs_as_the_makefile_does() -> None:
    python, make = makefile_install()
    venv_make = next(c[-1] for c in make if c[1:3] == ["-m", "venv"])
    runs = containerfile_runs()
    venv = [c for c in runs if c[1:3] == ["-m", "venv"]]
    assert len(venv) == 1 and venv[0][0] == python, "the venv is made with the Makefile's python"
    image_venv = venv[0][3]

    def pip_lines(commands: list[list[str]], root: str) -> list[list[str]]:
        pip = f"{root}/bin/pip"
        return [["VENV/bin/pip", *c[1:]] for c in commands if c and c[0] == pip]

    make_pip = pip_lines(make, venv_make)
    image_pip = pip_lines(runs, image_venv)
    upgrade, install = make_pip
    assert "-e" in install and ".[dev]" in install
    assert image_pip == [upgrade, [w.replace(".[dev]", ".") for w in install if w != "-e"]]
    steps = dict(containerfile())
    assert steps["FROM"] == "${PYTHON_IMAGE}"
    base = steps["ARG"].split("=", 1)[1]
    assert base.startswith(f"python:{python.removeprefix('python')}-")
    assert "[dev]" not in (DEPLOY / "Containerfile").read_text()


def test_containerfile_copies_what_pip_reads_and_its_ignore_file_keeps_it() -> None:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    copied: set[str] = set()
    workdir = ""
    for word, rest in containerfile():
        if word == "WORKDIR":
            workdir = rest
        if word == "COPY":
            *sources, target = rest.split()
            assert workdir == "/build" and target in {"./", "./src"}
            copied |= set(sources)
        if word == "RUN" and "pip install -q ." in rest:
            assert workdir == "/build"
    assert copied == {"pyproject.toml", project["readme"], "src"}
    assert all((ROOT / c).exists() for c in copied)
    ignore = [
        line.strip()
        for line in (DEPLOY / "Containerfile.dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert ignore[0] == "*", "everything else stays out of the build context"
    assert {f"!{c}" for c in copied} <= set(ignore)


def test_containerfile_runs_fraudstream_as_a_non_root_user() -> None:
    steps = containerfile()
    user = [rest for word, rest in steps if word == "USER"][-1]
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) > 0 and gid.isdigit() and int(gid) > 0
    made = [c for c in containerfile_runs() if c[:1] in (["groupadd"], ["useradd"])]
    assert [c[c.index("--gid") + 1] for c in made] == [gid, gid], "the user's group is USER's"
    assert made[1][made[1].index("--uid") + 1] == uid
    env = containerfile_env()
    venv = next(c[3] for c in containerfile_runs() if c[1:3] == ["-m", "venv"])
    assert env["PATH"].startswith(f"{venv}/bin:"), "fraudstream is on the PATH"
    assert [rest for word, rest in steps if word == "CMD"][-1].startswith('["fraudstream"')
    chowned = [rest for word, rest in steps if word == "RUN" and "chown -R" in rest]
    assert len(chowned) == 1 and f"chown -R {user} /var/lib/fraudstream" in chowned[0]
    for path in (env["FRAUDSTREAM_DATA_DIR"], env["FRAUDSTREAM_MODELS_DIR"]):
        assert path.startswith("/var/lib/fraudstream/"), "the user owns it"


def test_compose_builds_this_containerfile() -> None:
    for name, service in fraudstream_services().items():
        context = (COMPOSE.parent / service["build"]["context"]).resolve()
        assert context == ROOT, name
        assert (context / service["build"]["dockerfile"]).is_file(), name
        assert service["image"] == "fraudstream:local", "one image for every process"


# --- docs/deploy.md ----------------------------------------------------------------------------


def test_every_fraudstream_command_in_the_deploy_doc_parses() -> None:
    text = (ROOT / "docs" / "deploy.md").read_text()
    blocks = re.findall(r"```(?:bash|sh)\n(.*?)```", text, flags=re.S)
    lines = [args for block in blocks for args in invocations(shell_words(block))]
    assert len(lines) >= 5
    for args in lines:
        cli_parse(args)
