"""The `modelops` command line: errors to stderr, exit 1 for invalid input, 2 for usage."""

from __future__ import annotations

import enum
import os
import signal
import sys
import threading
import time
from pathlib import Path

import typer

from modelops import diagnostics as diag
from modelops import render as rend
from modelops.gcpause import paused
from modelops.generate import files as gen
from modelops.helpformat import Command, Group
from modelops.repo import Repo, load
from modelops_runtime.config import LOADS_ARTIFACT, RUNTIMES

app = typer.Typer(cls=Group, rich_markup_mode=None, no_args_is_help=True,
                  pretty_exceptions_enable=False,
                  help="GitOps for machine-learning models: one YAML file per model.")

ROOT = typer.Option(Path("."), "--root", help="Repository root.", file_okay=False,
                    exists=True, resolve_path=True)


class Output(enum.StrEnum):
    human = "human"
    json = "json"
    github = "github"


class PlanOutput(enum.StrEnum):
    """What `plan` writes: its own formats, not validate's."""

    markdown = "markdown"
    json = "json"


class SummaryOutput(enum.StrEnum):
    """A run's summary: lines for people, or JSON for machines."""

    human = "human"
    json = "json"


def _model_names(ctx: typer.Context, incomplete: str) -> list[str]:
    """Shell completion for model arguments: the folders under models/."""
    root = Path(ctx.params.get("root") or ".")
    return sorted(p.parent.name for p in (root / "models").glob("*/model.yaml")
                  if p.parent.name.startswith(incomplete))


def _output(choice: Output | None) -> str:
    if choice is not None:
        return choice.value
    return "github" if os.environ.get("GITHUB_ACTIONS") == "true" else "human"


def _report(problems: list[diag.Diagnostic], output: str) -> None:
    if output == "json":
        typer.echo(diag.render(problems, "json"))
    elif problems:
        typer.echo(diag.render(problems, output), err=True)
        if output == "github":  # annotations, plus the readable lines in the log
            typer.echo(diag.render(problems, "human"), err=True)


def _loaded(root: Path, output: str) -> Repo:
    repo = load(root)
    if not repo.ok:
        _report(repo.diagnostics, output)
        files = len({d.file for d in repo.diagnostics})
        typer.echo(f"{len(set(repo.diagnostics))} problem(s) in {files} file(s)", err=True)
        raise typer.Exit(1)
    return repo


Runtime = enum.Enum("Runtime", {name: name for name in RUNTIMES}, type=str)


@app.command(cls=Command)
def new(name: str = typer.Argument(..., metavar="NAME",
                                   help="The model's name (becomes models/NAME/)."),
        runtime: Runtime = typer.Option(..., "--runtime", help="sklearn, onnx, python or custom."),
        pool: str = typer.Option(None, "--pool", help="Join this pool instead of running "
                                                      "dedicated servers."),
        team: str = typer.Option("data-science", "--team", help="Owning team."),
        artifact: Path = typer.Option(None, "--artifact", help="sklearn/onnx file: pins its "
                                      "sha256 and copies it onto the local shared volume."),
        shared: Path = typer.Option(Path("var/volume"), help="Local shared volume."),
        root: Path = ROOT) -> None:
    """Scaffold models/NAME/model.yaml (and model.py for runtime python)."""
    from modelops.scaffold import ScaffoldError, create

    try:
        written = create(root, name, runtime.value, team, pool, artifact,
                         root / shared)
    except ScaffoldError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    for path in written:
        typer.echo(f"created {path.relative_to(root)}")
    steps = ["modelops validate", f"modelops test {name}", "modelops generate",
             "modelops plan   # what the pull request changes in the cluster"]
    if runtime.value in LOADS_ARTIFACT and artifact is None:
        steps.insert(0, f"put the artifact on the shared volume and set its sha256 in "
                        f"models/{name}/model.yaml")
    typer.echo("next:\n" + "\n".join(f"  {step}" for step in steps))


@app.command(cls=Command)
@paused
def validate(root: Path = ROOT,
             output: Output = typer.Option(None, "--output", "-o",
                                           help="human, json, or github annotations "
                                                "(default: github inside GitHub Actions)"),
             base: str = typer.Option(None, "--base", help="Git ref the change is compared "
                                      "with for removed models (default: the merge-base "
                                      "with origin/main or main, when there is one)."),
             allow_removals: bool = typer.Option(False, "--allow-removals",
                                                 help="Accept a change that removes more "
                                                      "models than maxRemovedShare.")) -> None:
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
        typer.echo(f"error: --base: {exc}", err=True)
        raise typer.Exit(2) from None
    if problems:
        _report(problems, out)
        raise typer.Exit(1)
    if out == "json":
        _report([], out)
    else:
        typer.echo(f"ok: {len(repo.models)} model(s), {len(repo.pools)} pool(s)")


@app.command(cls=Command)
@paused
def generate(root: Path = ROOT,
             check: bool = typer.Option(False, "--check",
                                        help="Write nothing; exit 1 if any generated file "
                                             "is missing, stale or orphaned.")) -> None:
    """Generate overlays/ and schemas/ from the specs (deterministic, byte for byte)."""
    repo = _loaded(root, _output(None))
    stale, count = gen.sync(root, repo, write=not check, parallel=True)
    if check:
        if stale:
            typer.echo("generated files are out of date (run `modelops generate`):", err=True)
            typer.echo("\n".join("  " + line for line in stale.lines()), err=True)
            raise typer.Exit(1)
        typer.echo(f"ok: {count} generated file(s) are current")
        return
    typer.echo(f"generated {count} file(s): {len(stale.added)} added, "
               f"{len(stale.changed)} updated, {len(stale.removed)} removed")


@app.command(cls=Command)
@paused
def render(root: Path = ROOT,
           out: Path = typer.Option(None, "--out", help="Also write each rendered overlay "
                                                        "to DIR/<env>/<name>.yaml."),
           output: Output = typer.Option(None, "--output", "-o",
                                         help="human, json, or github annotations for the "
                                              "problems (default: github inside GitHub "
                                              "Actions)")) -> None:
    """Build every overlay with kustomize and validate every object strictly."""
    fmt = _output(output)
    repo = _loaded(root, fmt)
    assert repo.settings is not None
    try:
        count, problems = rend.render(root, repo.settings.kubernetesVersion, out)
    except FileNotFoundError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    _report(problems, fmt)
    if problems:
        typer.echo(f"{len(problems)} problem(s) in rendered manifests", err=True)
        raise typer.Exit(1)
    if fmt != "json":
        typer.echo(f"ok: {count} object(s) rendered and valid for Kubernetes "
                   f"{repo.settings.kubernetesVersion}")


@app.command(cls=Command)
@paused
def plan(base: str = typer.Option(None, "--base", metavar="REF",
                                  help="Compare with this git ref (default: the merge base "
                                       "with origin/main, else main)."),
         root: Path = ROOT,
         output: PlanOutput = typer.Option(PlanOutput.markdown, "--output", "-o",
                                           help="markdown (for a PR comment) or json.")
         ) -> None:
    """What this change does to the cluster: objects, replicas, resources, traffic, capacity."""
    import orjson

    from modelops import plan as planning

    try:
        ref = base or planning.default_base(root)
        result = planning.make_plan(root, ref)
    except planning.PlanError as exc:
        if "does not validate" in str(exc):
            _loaded(root, _output(None))  # prints the located problems
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    if output == PlanOutput.json:
        typer.echo(orjson.dumps(result.to_json(), option=orjson.OPT_INDENT_2).decode())
    else:
        typer.echo(planning.markdown(result), nl=False)


@app.command("test", cls=Command)
def test_models(models: list[str] = typer.Argument(None, metavar="MODEL",
                                                  autocompletion=_model_names,
                                                   help="Models to test (default: all)."),
                root: Path = ROOT,
                shared: Path = typer.Option(Path("var/volume"), help="Where the artifacts are."),
                changed_since: str = typer.Option(None, "--changed-since", metavar="REF",
                                                  help="Only models whose folder changed since "
                                                       "this git ref.")) -> None:
    """Load each model with the real server and check its example request, every version."""
    from modelops import modeltest

    repo = _loaded(root, _output(None))
    names = models or sorted(repo.models)
    if changed_since:
        names = [n for n in names if n in _changed_models(root, changed_since)]
    unknown = [n for n in names if n not in repo.models]
    if unknown:
        typer.echo(f"error: no model named {unknown[0]!r}; models: "
                   f"{', '.join(sorted(repo.models))}",
                   err=True)
        raise typer.Exit(1)
    shared = root / shared  # pathlib: an absolute --shared stays as it is
    failed = 0
    for name in names:
        result = modeltest.run(root, name, shared)
        figures = f"load {result.load_seconds:.2f} s, +{result.memory_bytes / 2**20:.0f} MiB"
        if result.ok:
            typer.echo(f"ok      {name} ({figures})")
        else:
            failed += 1
            typer.echo(f"FAILED  {name} ({figures})", err=True)
            for problem in result.problems:
                typer.echo(f"        {problem}", err=True)
    if not names:
        typer.echo("no models to test")
    if failed:
        raise typer.Exit(1)


def _changed_models(root: Path, ref: str) -> set[str]:
    import subprocess

    proc = subprocess.run(["git", "diff", "--name-only", f"{ref}...HEAD", "--", "models"],
                          cwd=root, capture_output=True, text=True)
    if proc.returncode != 0:
        typer.echo(f"error: git diff against {ref!r} failed: {proc.stderr.strip()}", err=True)
        raise typer.Exit(2)
    untracked = subprocess.run(["git", "status", "--porcelain", "--", "models"], cwd=root,
                               capture_output=True, text=True).stdout
    paths = proc.stdout.split() + [line[3:] for line in untracked.splitlines()]
    return {p.split("/")[1] for p in paths if p.count("/") >= 2}


@app.command(cls=Command)
def catalog(root: Path = ROOT,
            serve_it: bool = typer.Option(False, "--serve", help="Serve the page instead of "
                                                                 "printing the data."),
            server: str = typer.Option("http://127.0.0.1:8080", help="The local `modelops "
                                       "serve` whose models' readiness the page shows."),
            host: str = typer.Option("127.0.0.1", help="Address the page listens on "
                                                       "(with --serve)."),
            port: int = typer.Option(8082, help="Port the page listens on (with --serve)."),
            shared: Path = typer.Option(Path("var/volume"), help="Local stand-in for the "
                                        "shared volume, whose drift summaries the page "
                                        "charts.")) -> None:
    """The model catalog: every model, its versions, traffic and live readiness."""
    import orjson

    from modelops.generate.contract import catalog_config

    repo = _loaded(root, _output(None))
    assert repo.settings is not None
    data = catalog_config(repo, repo.settings.local_environment, server.rstrip("/"))
    if not serve_it:
        typer.echo(orjson.dumps(data.model_dump(mode="json"), option=orjson.OPT_INDENT_2).decode())
        return
    import uvicorn

    from modelops_catalog.app import create_catalog_app

    typer.echo(f"catalog on http://{host}:{port}/catalog (readiness from {server})", err=True)
    shared = root / shared
    uvicorn.run(create_catalog_app(data, shared_root=shared), host=host, port=port,
                log_level="warning")


@app.command(cls=Command)
def serve(targets: list[str] = typer.Argument(None, metavar="MODEL_SPEC_OR_DIR",
                                              autocompletion=_model_names,
                                              help="Models, specs or folders (default: all)."),
          root: Path = ROOT,
          host: str = typer.Option("127.0.0.1", help="Address to listen on."),
          port: int = typer.Option(8080, help="Port to listen on."),
          grpc_port: int = typer.Option(8081, "--grpc-port",
                                        help="Port of the gRPC endpoint (0: none)."),
          shared: Path = typer.Option(Path("var/volume"), help="Local stand-in for the shared "
                                      "volume (artifacts/, datasets/, logs/).")) -> None:
    """Serve the models locally with the same server that runs in the cluster."""
    from modelops.serve import SelectionError, local_config, selection
    from modelops_runtime.options import ServerOptions
    from modelops_runtime.server import run

    repo = _loaded(root, _output(None))
    try:
        names = selection(repo, targets or [])
    except SelectionError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    config = local_config(repo, names)
    if not config.models:
        typer.echo("nothing to serve: no models matched", err=True)
        raise typer.Exit(1)
    shared = root / shared
    grpc = f" and gRPC on {host}:{grpc_port}" if grpc_port else ""
    typer.echo(f"serving {', '.join(m.name for m in config.models)} on http://{host}:{port}"
               f"{grpc} (docs: http://{host}:{port}/docs)", err=True)
    for model in config.models:
        example = repo.models[model.name].obj.spec.example
        if example is not None:
            body = example.request.model_dump_json(exclude_none=True)
            typer.echo(f"  curl -s -H 'content-type: application/json' "
                       f"http://{host}:{port}/v2/models/{model.name}/infer -d '{body}'", err=True)
    from modelops_runtime.registry import Registry

    registry = Registry(config, shared, root)
    registry.start_loading()
    nothing = threading.Event()
    threading.Thread(target=_report_loading, args=(registry, shared, nothing),
                     daemon=True).start()
    run(config, ServerOptions(host=host, port=port, grpc_port=grpc_port, shared_root=shared),
        root, registry)
    if nothing.is_set():
        raise typer.Exit(1)


def _report_loading(registry, shared: Path, nothing: threading.Event) -> None:
    """Once loading is over, each model's state on stderr (a failure with its reason and
    what fixes it); the server stops with exit 1 when no model could load."""
    registry.wait_loaded()
    models = registry.describe()
    for model in models:
        if model["state"] == "ready":
            versions = ", ".join(v["name"] for v in model["versions"])
            typer.echo(f"  ready   {model['name']} ({versions})", err=True)
        else:
            typer.echo(f"  failed  {model['name']}: {model['reason']}", err=True)
    if any("does not exist" in m["reason"] for m in models if m["state"] != "ready"):
        typer.echo(f"  the example artifacts are built with: python -m modelops.examples {shared} "
                   "(make demo does it)", err=True)
    if not any(m["state"] == "ready" for m in models):
        typer.echo("error: no model could load; stopping", err=True)
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
        typer.echo(f"error: no model named {name!r}; models: {', '.join(sorted(repo.models))}",
                   err=True)
        raise typer.Exit(1)
    assert repo.settings is not None
    spec_file = repo.models[name]
    code = str((root / "models" / name / "model.py").resolve())
    config = job_config(spec_file, spec_file.envs[repo.settings.local_environment],
                        code if spec_file.obj.spec.runtime == "python" else None)
    return config, root / "models" / name


MODEL = typer.Argument(..., metavar="MODEL", autocompletion=_model_names,
                       help="The model, by name.")
SHARED = typer.Option(Path("var/volume"), "--shared", help="Local stand-in for the shared "
                      "volume (reads datasets/, writes artifacts/ or datasets/).")


@app.command(cls=Command)
def train(name: str = MODEL, root: Path = ROOT, shared: Path = SHARED) -> None:
    """Check the data, train, score against the serving version and publish
    artifacts/MODEL/vN/ with metrics.json and lineage.json (what the CronJob runs)."""
    from modelops_jobs.config import score_line
    from modelops_jobs.training import TrainingFailed
    from modelops_jobs.training import train as run_training

    config, code_dir = _job_config(root, name)
    if config is None or config.training is None:
        typer.echo(f"error: model {name!r} declares no training (spec.training)", err=True)
        raise typer.Exit(1)
    shared = root / shared
    try:
        trained = run_training(config, shared, code_dir)
    except TrainingFailed as exc:
        typer.echo(f"error: training stopped, nothing written: {exc}", err=True)
        raise typer.Exit(1) from None
    holdout = trained.metrics["holdout"]
    serving = trained.metrics.get("serving") or {}
    versus = score_line(serving)
    typer.echo(f"trained {name} {trained.version}: {score_line(holdout)} on {holdout['rows']} "
               "holdout rows"
               + (f" (serving {serving['version']}: {versus})" if versus else ""))
    typer.echo(f"  {trained.artifact} sha256 {trained.sha256}")
    typer.echo(f"next: modelops propose {name}")


@app.command(cls=Command)
def propose(name: str = MODEL, root: Path = ROOT, shared: Path = SHARED) -> None:
    """Add the newest trained version to models/MODEL/model.yaml as a canary, with its
    metrics and lineage, for a pull request."""
    from modelops.propose import ProposeError
    from modelops.propose import propose as add_version

    repo = _loaded(root, _output(None))
    shared = root / shared
    original = (root / "models" / name / "model.yaml").read_text() if name in repo.models else ""
    try:
        version, weight = add_version(repo, name, shared)
    except ProposeError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    edited = load(root)
    if not edited.ok:  # never leave a spec that does not validate
        _report(edited.diagnostics, _output(None))
        (root / "models" / name / "model.yaml").write_text(original)
        typer.echo("error: the edited spec did not validate; it is left as it was", err=True)
        raise typer.Exit(1)
    typer.echo(f"proposed {name} {version} at {weight}% in models/{name}/model.yaml")
    typer.echo(f"next: modelops test {name} && modelops generate && modelops plan")


@app.command(cls=Command)
def batch(name: str = MODEL, root: Path = ROOT, shared: Path = SHARED,
          workers: int = typer.Option(1, "--workers", min=1, max=32,
                                      help="Processes scoring in parallel, each taking every "
                                           "n-th input file (as the Indexed Job's pods do)."),
          date: str = typer.Option(None, "--date", metavar="YYYY-MM-DD",
                                   help="The output partition's date (default: today).")) -> None:
    """Score the model's batch input dataset into its output dataset, exactly once (what
    the CronJob runs)."""
    import datetime
    from concurrent.futures import ProcessPoolExecutor

    from modelops_jobs import batch as batching
    from modelops_jobs.data import DataError
    from modelops_runtime.runtimes import ArtifactError

    config, code_dir = _job_config(root, name)
    if config is None or config.batch is None:
        typer.echo(f"error: model {name!r} declares no batch job (spec.batch)", err=True)
        raise typer.Exit(1)
    shared = root / shared
    date = date or datetime.date.today().isoformat()
    try:
        if workers == 1:
            results = [batching.run(config, shared, code_dir, 0, 1, date)]
        else:
            with ProcessPoolExecutor(workers) as pool:
                results = list(pool.map(batching.run, [config] * workers, [shared] * workers,
                                        [code_dir] * workers, range(workers),
                                        [workers] * workers, [date] * workers))
    except (ValueError, DataError, ArtifactError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    rows = sum(r.rows for r in results)
    typer.echo(f"scored {rows} row(s) from {sum(r.written for r in results)} file(s) into "
               f"{batching.output_dir(config, shared, date).relative_to(shared)} "
               f"({sum(r.skipped for r in results)} already done)")


logs = typer.Typer(cls=Group, rich_markup_mode=None, no_args_is_help=True,
                   help="Prediction logs on the shared volume.")
app.add_typer(logs, name="logs")


@logs.command("compact", cls=Command)
def logs_compact(root: Path = ROOT,
                 shared: Path = typer.Option(Path("var/volume"), help="Local stand-in for the "
                                             "shared volume (reads logs/, writes datasets/)."),
                 output: SummaryOutput = typer.Option(SummaryOutput.human, "--output", "-o",
                                                      help="human, or json: the run's summary "
                                                           "for machines.")) -> None:
    """Compact closed prediction logs into Parquet datasets, with drift summaries
    (what the CronJob runs in the cluster)."""
    import orjson

    from modelops.generate.contract import compactor_config
    from modelops_compactor.compactor import Compactor

    config = compactor_config(_loaded(root, _output(None)), None)
    shared = root / shared
    try:
        summary = Compactor(shared, config).run()
    except Exception as exc:  # DuckDB and file errors: nothing was consumed
        typer.echo(f"error: compaction failed, logs left in place: {exc}", err=True)
        raise typer.Exit(1) from None
    if output is SummaryOutput.json:
        typer.echo(orjson.dumps(summary.as_dict(), option=orjson.OPT_INDENT_2).decode())
    else:
        _print_compaction(summary, shared)
    for name, reason in sorted(summary.rejected.items()):
        typer.echo(f"error: logs/{name} is unreadable, set aside in logs/_compactor/rejected/: "
                   f"{reason}", err=True)
    if summary.rejected:
        raise typer.Exit(1)


def _print_compaction(summary, shared: Path) -> None:
    typer.echo(f"compacted {summary.records} record(s) ({summary.rows} row(s)) from "
               f"{summary.files} file(s) into {len(summary.partitions)} partition(s) under "
               f"{shared / 'datasets'}")
    for partition, report in sorted(summary.drift.items()):
        if "error" in report:
            typer.echo(f"  {partition}: drift not measured: {report['error']}")
        for feature, result in report.get("features", {}).items():
            typer.echo(f"  {partition}: {feature} psi {result['psi']} ({result['drift']})")


def main() -> None:
    try:
        app(prog_name="modelops")
    except KeyboardInterrupt:
        sys.exit(130)
