"""The `modelops` command line, on click (its help layout and its shell completion):
errors to stderr, exit 1 for invalid input or a failed check, 2 for a usage error."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click
from click.shell_completion import CompletionItem
from pydantic import ValidationError

from modelops import diagnostics as diag
from modelops import render as rend
from modelops.gcpause import paused
from modelops.generate import files as gen
from modelops.push import use_store
from modelops.repo import Repo, load
from modelops_runtime.config import LOADS_ARTIFACT, RUNTIMES

if TYPE_CHECKING:
    from modelops.broker import LocalBroker
    from modelops_runtime.config import ServerConfig
    from modelops_runtime.options import ServerOptions

EXIT_CODES = ("Exit codes: 0 success; 1 invalid input or a failed check (the problems are "
              "on stderr); 2 usage error (an unknown option, a bad value).")
FORMATS = ("human", "json", "github")


def fail(message: str | None = None, code: int = 1) -> NoReturn:
    """Stop with `error: message` on stderr."""
    if message:
        click.echo(f"error: {message}", err=True)
    raise SystemExit(code)


def _model_names(ctx: click.Context, param: click.Parameter,
                 incomplete: str) -> list[CompletionItem]:
    """Shell completion for model arguments: the folders under models/."""
    root = Path(ctx.params.get("root") or ".")
    return [CompletionItem(p.parent.name)
            for p in sorted((root / "models").glob("*/model.yaml"))
            if p.parent.name.startswith(incomplete)]


def _path(**kwargs: Any) -> click.Path:
    return click.Path(path_type=Path, **kwargs)


root_option = click.option("--root", type=_path(file_okay=False, exists=True, resolve_path=True),
                           default=".", show_default=True, metavar="DIR",
                           help="Repository root.")


def shared_option(what: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return click.option("--shared", type=_path(), default="var/volume", show_default=True,
                         metavar="DIR", help=f"Local stand-in for the shared volume {what}.")


def output_option(choices: tuple[str, ...], default: str | None,
                  text: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return click.option("--output", "-o", type=click.Choice(choices), default=default,
                        show_default=default is not None, help=text)


def _output(choice: str | None) -> str:
    if choice is not None:
        return choice
    return "github" if os.environ.get("GITHUB_ACTIONS") == "true" else "human"


def _report(problems: list[diag.Diagnostic], output: str) -> None:
    if output == "json":
        click.echo(diag.formatted(problems, "json"))
    elif problems:
        click.echo(diag.formatted(problems, output), err=True)
        if output == "github":  # annotations, plus the readable lines in the log
            click.echo(diag.formatted(problems, "human"), err=True)


def _loaded(root: Path, output: str) -> Repo:
    repo = load(root)
    if not repo.ok:
        _report(repo.diagnostics, output)
        files = len({d.file for d in repo.diagnostics})
        click.echo(f"{len(set(repo.diagnostics))} problem(s) in {files} file(s)", err=True)
        raise SystemExit(1)
    return repo


@click.group(epilog=EXIT_CODES)
def app() -> None:
    """GitOps for machine-learning models: one YAML file per model.

    Tab completion: add `eval "$(_MODELOPS_COMPLETE=bash_source modelops)"` to ~/.bashrc
    (zsh_source for zsh, fish_source for fish)."""


@app.command(epilog=EXIT_CODES)
@click.argument("name", metavar="NAME")
@click.option("--runtime", type=click.Choice(RUNTIMES), required=True,
              help="What serves the model.")
@click.option("--pool", metavar="POOL", help="Join this pool instead of running dedicated "
                                             "servers.")
@click.option("--team", default="data-science", show_default=True, help="Owning team.")
@click.option("--artifact", type=_path(dir_okay=False), metavar="FILE",
              help="The trained file (sklearn, onnx, python): pins its sha256 and copies it "
                   "onto the local shared volume.")
@shared_option("(artifacts/)")
@root_option
def new(name: str, runtime: str, pool: str | None, team: str, artifact: Path | None,
        shared: Path, root: Path) -> None:
    """Scaffold models/NAME/model.yaml (and model.py for runtime python)."""
    from modelops.scaffold import ScaffoldError, create

    try:
        written = create(root, name, runtime, team, pool, artifact, root / shared)
    except ScaffoldError as exc:
        fail(str(exc))
    for path in written:
        click.echo(f"created {path.relative_to(root)}")
    steps = ["modelops validate", f"modelops test {name}", "modelops generate",
             "modelops plan   # what the pull request changes in the cluster"]
    if runtime in LOADS_ARTIFACT and artifact is None:
        steps.insert(0, f"put the artifact on the shared volume and set its sha256 in "
                        f"models/{name}/model.yaml")
    click.echo("next:\n" + "\n".join(f"  {step}" for step in steps))


@app.command(epilog=EXIT_CODES)
@root_option
@output_option(FORMATS, None, "Problems as human lines, json, or github annotations "
                              "(default: github inside GitHub Actions, else human).")
@click.option("--base", metavar="REF", help="Git ref the change is compared with for removed "
                                            "models (default: the merge-base with origin/main "
                                            "or main, when there is one).")
@click.option("--allow-removals", is_flag=True,
              help="Accept a change that removes more models than maxRemovedShare.")
@paused
def validate(root: Path, output: str | None, base: str | None, allow_removals: bool) -> None:
    """Check every spec under models/ and the platform settings; report all problems."""
    from modelops import removals
    from modelops.plan import PlanError, default_base

    out = _output(output)
    repo = _loaded(root, out)
    try:
        ref = base or default_base(root)
    except PlanError:
        ref = None  # not a git checkout with a main branch: nothing to compare with
    try:
        problems = removals.check(root, repo, ref, allow_removals) if ref else []
    except ValueError as exc:
        fail(f"--base: {exc}", 2)
    if problems:
        _report(problems, out)
        raise SystemExit(1)
    if out == "json":
        _report([], out)
    else:
        click.echo(f"ok: {len(repo.models)} model(s), {len(repo.pools)} pool(s)")


@app.command(epilog=EXIT_CODES)
@root_option
@click.option("--check", is_flag=True, help="Write nothing; exit 1 if any generated file is "
                                            "missing, stale or orphaned.")
@paused
def generate(root: Path, check: bool) -> None:
    """Generate overlays/ and schemas/ from the specs (deterministic, byte for byte)."""
    repo = _loaded(root, _output(None))
    stale, count = gen.sync(root, repo, write=not check, parallel=True)
    if check:
        if stale:
            click.echo("generated files are out of date (run `modelops generate`):", err=True)
            click.echo("\n".join("  " + line for line in stale.lines()), err=True)
            raise SystemExit(1)
        click.echo(f"ok: {count} generated file(s) are current")
        return
    click.echo(f"generated {count} file(s): {len(stale.added)} added, "
               f"{len(stale.changed)} updated, {len(stale.removed)} removed")


@app.command(epilog=EXIT_CODES)
@root_option
@click.option("--out", type=_path(file_okay=False), metavar="DIR",
              help="Also write each rendered overlay to DIR/<env>/<name>.yaml.")
@output_option(FORMATS, None, "Problems as human lines, json, or github annotations "
                              "(default: github inside GitHub Actions, else human).")
@paused
def render(root: Path, out: Path | None, output: str | None) -> None:
    """Build every overlay with kustomize and validate every object strictly."""
    fmt = _output(output)
    repo = _loaded(root, fmt)
    assert repo.settings is not None
    try:
        count, problems = rend.render(root, repo.settings.kubernetesVersion, out)
    except FileNotFoundError as exc:
        fail(str(exc))
    _report(problems, fmt)
    if problems:
        click.echo(f"{len(problems)} problem(s) in rendered manifests", err=True)
        raise SystemExit(1)
    if fmt != "json":
        click.echo(f"ok: {count} object(s) rendered and valid for Kubernetes "
                   f"{repo.settings.kubernetesVersion}")


@app.command(epilog=EXIT_CODES)
@click.option("--base", metavar="REF", help="Compare with this git ref (default: the merge "
                                            "base with origin/main, else main).")
@root_option
@output_option(("markdown", "json"), "markdown", "markdown (for a PR comment) or json.")
@click.option("--prometheus", metavar="URL", envvar="MODELOPS_PROMETHEUS_URL",
              help="Prometheus's HTTP API: the plan then lists the models that served no "
                   "request for unusedModels.afterDays (platform/settings.yaml). "
                   "[env: MODELOPS_PROMETHEUS_URL]")
@paused
def plan(base: str | None, root: Path, output: str, prometheus: str | None) -> None:
    """What this change does to the cluster: objects, replicas, resources, traffic, capacity."""
    import orjson

    from modelops import plan as planning

    try:
        ref = base or planning.default_base(root)
        result = planning.make_plan(root, ref, prometheus)
    except planning.PlanError as exc:
        if "does not validate" in str(exc):
            _loaded(root, _output(None))  # prints the located problems
        fail(str(exc))
    if output == "json":
        click.echo(orjson.dumps(result.to_json(), option=orjson.OPT_INDENT_2).decode())
    else:
        click.echo(planning.markdown(result), nl=False)


@app.command("test", epilog=EXIT_CODES)
@click.argument("models", nargs=-1, metavar="[MODEL]...", shell_complete=_model_names)
@root_option
@shared_option("(the artifacts)")
@click.option("--changed-since", metavar="REF",
              help="Only models whose folder changed since this git ref.")
def test_models(models: tuple[str, ...], root: Path, shared: Path,
                changed_since: str | None) -> None:
    """Load each MODEL (default: all) with the real server and check its example request,
    for every version."""
    from modelops import modeltest
    from modelops_runtime.objectstore import has_credentials

    repo = _loaded(root, _output(None))
    use_store(repo.settings)
    names = list(models) or sorted(repo.models)
    if changed_since:
        names = [n for n in names if n in _changed_models(root, changed_since)]
    unknown = [n for n in names if n not in repo.models]
    if unknown:
        fail(f"no model named {unknown[0]!r}; models: {', '.join(sorted(repo.models))}")
    shared = root / shared  # pathlib: an absolute --shared stays as it is
    failed = 0
    for name in names:
        if not has_credentials() and (stored := modeltest.stored_artifact(repo, name)):
            line = (f"its artifact {stored} is in the object store and no credentials are set "
                    "(a pull request from a fork gets no repository secrets): a maintainer's "
                    "run, or one with credentials, tests it")
            if _output(None) == "github":
                click.echo(f"::warning file=models/{name}/model.yaml::{line}")
            click.echo(f"skipped {name}: {line}", err=True)
            continue
        result = modeltest.run(root, name, shared)
        figures = f"load {result.load_seconds:.2f} s, +{result.memory_bytes / 2**20:.0f} MiB"
        if result.ok:
            click.echo(f"ok      {name} ({figures})")
        else:
            failed += 1
            click.echo(f"FAILED  {name} ({figures})", err=True)
            for problem in result.problems:
                click.echo(f"        {problem}", err=True)
    if not names:
        click.echo("no models to test")
    if failed:
        raise SystemExit(1)


@app.command(epilog=EXIT_CODES)
@root_option
@click.option("--serve", "serve_it", is_flag=True,
              help="Serve the page instead of printing the data.")
@click.option("--server", default="http://127.0.0.1:8080", show_default=True, metavar="URL",
              help="The local `modelops serve` whose models' readiness the page shows.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address the page listens on (with --serve).")
@click.option("--port", type=int, default=8082, show_default=True,
              help="Port the page listens on (with --serve).")
@shared_option("(the drift summaries the page charts)")
def catalog(root: Path, serve_it: bool, server: str, host: str, port: int,
            shared: Path) -> None:
    """The model catalog: every model, its versions, traffic and live readiness."""
    import orjson

    from modelops.generate.contract import catalog_config

    repo = _loaded(root, _output(None))
    assert repo.settings is not None
    data = catalog_config(repo, repo.settings.local_environment, server.rstrip("/"))
    if not serve_it:
        click.echo(orjson.dumps(data.model_dump(mode="json"), option=orjson.OPT_INDENT_2).decode())
        return
    import uvicorn

    from modelops_catalog.app import create_catalog_app

    click.echo(f"catalog on http://{host}:{port}/catalog (readiness from {server})", err=True)
    uvicorn.run(create_catalog_app(data, shared_root=root / shared), host=host, port=port,
                log_level="warning")


@app.command(epilog=EXIT_CODES)
@click.argument("targets", nargs=-1, metavar="[MODEL_SPEC_OR_DIR]...",
                shell_complete=_model_names)
@root_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=int, default=8080, show_default=True, help="Port to listen on.")
@click.option("--grpc-port", type=int, default=8081, show_default=True,
              help="Port of the gRPC endpoint (0: none).")
@shared_option("(artifacts/, datasets/, logs/, results/)")
@click.option("--broker", is_flag=True,
              help="Start a RabbitMQ broker on 127.0.0.1 (Debian's rabbitmq-server) for the "
                   "models whose spec sets `async`: their infer routes then take "
                   "`Prefer: respond-async`. Stopped with the server.")
@click.option("--scale-to-zero", is_flag=True,
              help="Let the models whose spec sets `autoscaling.minReplicas: 0` sleep: this "
                   "server relays their requests through their queues (implies --broker), "
                   "and each runs in a process of its own only while it has work, stopped "
                   "after its `idleSeconds`, as KEDA scales it in the cluster.")
def serve(targets: tuple[str, ...], root: Path, host: str, port: int, grpc_port: int,
          shared: Path, broker: bool, scale_to_zero: bool) -> None:
    """Serve each MODEL_SPEC_OR_DIR (a model's name, its spec or a folder; default: all)
    locally, with the same server that runs in the cluster."""
    from modelops.serve import SelectionError, local_config, selection, sleepers
    from modelops_runtime.options import ServerOptions
    from modelops_runtime.registry import Registry
    from modelops_runtime.server import run

    repo = _loaded(root, _output(None))
    use_store(repo.settings)
    try:
        names = selection(repo, list(targets))
    except SelectionError as exc:
        fail(str(exc))
    config = local_config(repo, names, scale_to_zero)
    if not config.models:
        click.echo("nothing to serve: no models matched", err=True)
        raise SystemExit(1)
    shared = root / shared
    try:
        options = ServerOptions(host=host, port=port, grpc_port=grpc_port, shared_root=shared)
    except ValidationError as exc:  # MODELOPS_* variables set in the shell
        fail(exc.errors()[0]["msg"].removeprefix("Value error, "))
    for option, number in (("--port", port), ("--grpc-port", grpc_port)):
        if number and not _free(host, number):
            fail(f"port {number} on {host} is in use (another `modelops serve`, or `make "
                 f"demo`?); choose another with {option}")
    grpc = f" and gRPC on {host}:{grpc_port}" if grpc_port else ""
    click.echo(f"serving {', '.join(m.name for m in config.models)} on http://{host}:{port}"
               f"{grpc} (docs: http://{host}:{port}/docs)", err=True)
    for model in config.models:
        example = repo.models[model.name].obj.spec.example
        if example is not None:
            body = example.request.model_dump_json(exclude_none=True)
            click.echo(f"  curl -s -H 'content-type: application/json' "
                       f"http://{host}:{port}/v2/models/{model.name}/infer -d '{body}'", err=True)
    sleeping = sleepers(repo, config)
    if scale_to_zero and not sleeping:
        fail("--scale-to-zero: none of the models served sets `autoscaling.minReplicas: 0`")
    local_broker = _start_broker(root, options, config, bool(sleeping)) \
        if broker or sleeping else None
    supervisor = None
    if sleeping:
        from modelops.sleep import Supervisor

        assert local_broker is not None
        supervisor = Supervisor(sleeping, local_broker.url, local_broker.management_url,
                                shared, local_broker.folder / "runners")
        supervisor.start()
        click.echo(f"asleep until asked: {', '.join(s.name for s in sleeping)} (each wakes "
                   "in a process of its own, and sleeps again after its idleSeconds)",
                   err=True)
    registry = Registry(config, shared, root)
    registry.start_loading()
    nothing = threading.Event()
    threading.Thread(target=_report_loading, args=(registry, shared, nothing),
                     daemon=True).start()
    try:
        run(config, options, root, registry, supervisor.nudge if supervisor else None)
    finally:
        if supervisor is not None:
            supervisor.stop()
        if local_broker is not None:
            local_broker.stop()
    if nothing.is_set():
        raise SystemExit(1)


def _start_broker(root: Path, options: ServerOptions, config: ServerConfig,
                  management: bool = False) -> LocalBroker:
    """A broker of this run's own (its data under build/), for `serve --broker`; with its
    management API for `--scale-to-zero`'s supervisor."""
    from pydantic import SecretStr

    from modelops.broker import BrokerError, start

    queued = [m.name for m in config.models if m.asynchronous]
    if not queued:
        fail("--broker: none of the models served sets `async` in its spec")
    click.echo("starting RabbitMQ on 127.0.0.1 ...", err=True)
    try:
        local = start(root / "build" / f"broker-{os.getpid()}", management=management)
    except BrokerError as exc:
        fail(str(exc))
    options.broker_url = SecretStr(local.url)
    click.echo(f"asynchronous: {', '.join(queued)} (add -H 'Prefer: respond-async', then GET "
               "the Location it answers)", err=True)
    return local


model_argument = click.argument("name", metavar="MODEL", shell_complete=_model_names)
job_shared = shared_option("(reads datasets/, writes artifacts/ or datasets/)")


@app.command(epilog=EXIT_CODES)
@model_argument
@root_option
@job_shared
def train(name: str, root: Path, shared: Path) -> None:
    """Check MODEL's data, train, score against the serving version and publish
    artifacts/MODEL/vN/ with metrics.json and lineage.json (what the CronJob runs)."""
    from modelops_jobs.config import score_line
    from modelops_jobs.training import TrainingFailed
    from modelops_jobs.training import train as run_training

    config, code_dir = _job_config(root, name)
    if config is None or config.training is None:
        fail(f"model {name!r} declares no training (spec.training)")
    shared = root / shared
    try:
        trained = run_training(config, shared, code_dir)
    except TrainingFailed as exc:
        fail(f"training stopped, nothing written: {exc}")
    holdout = trained.metrics["holdout"]
    serving = trained.metrics.get("serving") or {}
    versus = score_line(serving)
    click.echo(f"trained {name} {trained.version}: {score_line(holdout)} on {holdout['rows']} "
               "holdout rows"
               + (f" (serving {serving['version']}: {versus})" if versus else ""))
    click.echo(f"  {trained.artifact} sha256 {trained.sha256}")
    click.echo(f"next: modelops propose {name}")


@app.command(epilog=EXIT_CODES)
@model_argument
@root_option
@shared_option("(reads the trained runs under artifacts/)")
@click.option("--push", "to_store", is_flag=True,
              help="Push the trained file to the object store (as `modelops push` does) and "
                   "point the version there instead of at the shared volume.")
def propose(name: str, root: Path, shared: Path, to_store: bool) -> None:
    """Add MODEL's newest trained version to models/MODEL/model.yaml as a canary, with its
    metrics and lineage, for a pull request."""
    from modelops.propose import ProposeError
    from modelops.propose import propose as add_version

    repo = _loaded(root, _output(None))
    original = (root / "models" / name / "model.yaml").read_text() if name in repo.models else ""
    try:
        version, weight = add_version(repo, name, root / shared, to_store)
    except ProposeError as exc:
        fail(str(exc))
    edited = load(root)
    if not edited.ok:  # never leave a spec that does not validate
        _report(edited.diagnostics, _output(None))
        (root / "models" / name / "model.yaml").write_text(original)
        fail("the edited spec did not validate; it is left as it was")
    click.echo(f"proposed {name} {version} at {weight}% in models/{name}/model.yaml")
    click.echo(f"next: modelops test {name} && modelops generate && modelops plan")


@app.command(epilog=EXIT_CODES)
@model_argument
@click.option("--version", "version", required=True, metavar="VERSION",
              help="The version to point at the pushed file (added with weight 0 if the "
                   "spec has no such version).")
@click.argument("file", type=_path(dir_okay=False, exists=True), metavar="FILE")
@root_option
def push(name: str, version: str, file: Path, root: Path) -> None:
    """Upload FILE to the object store of platform/settings.yaml under a key made from its
    sha256 (a re-push uploads nothing), write its s3:// URI and sha256 into MODEL's
    VERSION in models/MODEL/model.yaml (comments kept), and validate again.

    Credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or MODELOPS_S3_CREDENTIALS
    (a folder with files access-key-id and secret-access-key)."""
    from modelops.push import PushError
    from modelops.push import push as upload

    repo = _loaded(root, _output(None))
    spec_path = root / "models" / name / "model.yaml"
    original = spec_path.read_text() if name in repo.models else ""
    try:
        pushed = upload(repo, name, version, file)
    except PushError as exc:
        fail(str(exc))
    click.echo(f"{'pushed' if pushed.uploaded else 'already in the store:'} {pushed.uri}")
    edited = load(root)
    if not edited.ok:  # never leave a spec that does not validate
        _report(edited.diagnostics, _output(None))
        spec_path.write_text(original)
        fail("the edited spec did not validate; it is left as it was")
    click.echo(f"{'added' if pushed.added else 'set'} {name} {version} in "
               f"models/{name}/model.yaml (sha256 {pushed.sha256[:12]}...)")
    click.echo(f"next: modelops test {name} && modelops generate && modelops plan")


@app.command(epilog=EXIT_CODES)
@model_argument
@root_option
@job_shared
@click.option("--workers", type=click.IntRange(1, 32), default=1, show_default=True,
              help="Processes scoring in parallel, each taking every n-th input file (as the "
                   "Indexed Job's pods do).")
@click.option("--date", metavar="YYYY-MM-DD",
              help="The output partition's date (default: today).")
def batch(name: str, root: Path, shared: Path, workers: int, date: str | None) -> None:
    """Score MODEL's batch input dataset into its output dataset, exactly once (what the
    CronJob runs)."""
    import datetime
    from concurrent.futures import ProcessPoolExecutor

    from modelops_jobs import batch as batching
    from modelops_jobs.data import DataError
    from modelops_runtime.objectstore import StoreError
    from modelops_runtime.runtimes import ArtifactError

    config, code_dir = _job_config(root, name)
    if config is None or config.batch is None:
        fail(f"model {name!r} declares no batch job (spec.batch)")
    shared = root / shared
    date = date or datetime.date.today().isoformat()
    try:
        if workers == 1:
            results = [batching.run(config, shared, code_dir, 0, 1, date)]
        else:
            with ProcessPoolExecutor(workers) as processes:
                results = list(processes.map(
                    batching.run, [config] * workers, [shared] * workers,
                    [code_dir] * workers, range(workers), [workers] * workers,
                    [date] * workers))
    except (ValueError, DataError, ArtifactError, StoreError) as exc:
        fail(str(exc))
    rows = sum(r.rows for r in results)
    click.echo(f"scored {rows} row(s) from {sum(r.written for r in results)} file(s) into "
               f"{batching.output_dir(config, shared, date).relative_to(shared)} "
               f"({sum(r.skipped for r in results)} already done)")
    rejected = {source: reason for r in results for source, reason in r.rejected.items()}
    for source, reason in sorted(rejected.items()):
        click.echo(f"error: {source}: {reason} (set aside in _rejected/; the other files "
                   f"are scored)", err=True)
    if rejected:
        raise SystemExit(1)


@app.group(epilog=EXIT_CODES)
def logs() -> None:
    """Prediction logs on the shared volume."""


@logs.command("compact", epilog=EXIT_CODES)
@root_option
@shared_option("(reads logs/, writes datasets/)")
@output_option(("human", "json"), "human", "human, or json: the run's summary for machines.")
def logs_compact(root: Path, shared: Path, output: str) -> None:
    """Compact closed prediction logs into Parquet datasets, with drift summaries (what the
    CronJob runs in the cluster)."""
    import orjson

    from modelops.generate.contract import compactor_config
    from modelops_compactor.compactor import Compactor

    config = compactor_config(_loaded(root, _output(None)), None)
    shared = root / shared
    try:
        summary = Compactor(shared, config).run()
    except Exception as exc:  # DuckDB and file errors: nothing was consumed
        fail(f"compaction failed, logs left in place: {exc}")
    if output == "json":
        click.echo(orjson.dumps(summary.as_dict(), option=orjson.OPT_INDENT_2).decode())
    else:
        _print_compaction(summary, shared)
    for name, reason in sorted(summary.rejected.items()):
        click.echo(f"error: logs/{name} is unreadable, set aside in logs/_compactor/rejected/: "
                   f"{reason}", err=True)
    if summary.rejected:
        raise SystemExit(1)


def _changed_models(root: Path, ref: str) -> set[str]:
    import subprocess

    proc = subprocess.run(["git", "diff", "--name-only", f"{ref}...HEAD", "--", "models"],
                          cwd=root, capture_output=True, text=True)
    if proc.returncode != 0:
        fail(f"git diff against {ref!r} failed: {proc.stderr.strip()}", 2)
    untracked = subprocess.run(["git", "status", "--porcelain", "--", "models"], cwd=root,
                               capture_output=True, text=True).stdout
    paths = proc.stdout.split() + [line[3:] for line in untracked.splitlines()]
    return {p.split("/")[1] for p in paths if p.count("/") >= 2}


def _free(host: str, port: int) -> bool:
    """Whether a server could listen on host:port now."""
    import socket

    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def _report_loading(registry, shared: Path, nothing: threading.Event) -> None:
    """Once loading is over, each model's state on stderr (a failure with its reason and
    what fixes it); the server stops with exit 1 when no model could load."""
    registry.wait_loaded()
    models = registry.describe()
    for model in models:
        if model["state"] == "asleep":
            click.echo(f"  asleep  {model['name']} (wakes on its first request)", err=True)
        elif model["state"] == "ready":
            versions = ", ".join(v["name"] for v in model["versions"])
            click.echo(f"  ready   {model['name']} ({versions})", err=True)
        else:
            click.echo(f"  failed  {model['name']}: {model['reason']}", err=True)
    if any("does not exist" in m["reason"] for m in models if m["state"] != "ready"):
        click.echo(f"  the example artifacts are built with: python -m modelops.examples {shared} "
                   "(make demo does it)", err=True)
    if not any(m["state"] in ("ready", "asleep") for m in models):
        click.echo("error: no model could load; stopping", err=True)
        nothing.set()
        for _ in range(600):  # once the server handles SIGTERM (a drain, not a kill)
            if signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, None):
                break
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGTERM)


def _job_config(root: Path, name: str):
    """A model's job.yaml as the cluster's would be, for the local environment, with its
    code read from models/<name>/."""
    from modelops.generate.contract import job_config

    repo = _loaded(root, _output(None))
    if name not in repo.models:
        fail(f"no model named {name!r}; models: {', '.join(sorted(repo.models))}")
    assert repo.settings is not None
    use_store(repo.settings)
    spec_file = repo.models[name]
    code = str((root / "models" / name / "model.py").resolve())
    config = job_config(spec_file, spec_file.envs[repo.settings.local_environment],
                        code if spec_file.obj.spec.runtime == "python" else None)
    return config, root / "models" / name


def _print_compaction(summary, shared: Path) -> None:
    click.echo(f"compacted {summary.records} record(s) ({summary.rows} row(s)) from "
               f"{summary.files} file(s) into {len(summary.partitions)} partition(s) under "
               f"{shared / 'datasets'}")
    for partition, report in sorted(summary.drift.items()):
        if "error" in report:
            click.echo(f"  {partition}: drift not measured: {report['error']}")
        for feature, result in report.get("features", {}).items():
            click.echo(f"  {partition}: {feature} psi {result['psi']} ({result['drift']})")


def main() -> None:
    try:
        app(prog_name="modelops")
    except KeyboardInterrupt:
        sys.exit(130)
