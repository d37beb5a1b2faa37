"""``train --resume`` on a run directory that may not be the user's: nothing that came with it
runs without ``--import``/``--trust``, its records are read with one-line errors, and a resume
never rewrites the record into something the seeds did not do (issue 22, items 2, 10, 13)."""

import json
import shutil

import pytest
import yaml

from tests.cli_helpers import cli, train_args

#: imported code proves itself by leaving a marker file beside it
EVIL = (
    "from pathlib import Path\n"
    "Path(__file__).with_name('{marker}').write_text('ran')\n"
    "from ercgraph.graphs.temporal import TemporalBuilder\n"
    "class B(TemporalBuilder):\n"
    "    pass\n"
)


@pytest.fixture(scope="module")
def finished(tmp_path_factory, meld_slice, cache):
    """A finished one-epoch run (the CLI's own config, one seed)."""
    out = tmp_path_factory.mktemp("resume") / "run"
    assert cli(*train_args(out, meld_slice, cache, "--set", "model.hidden=16")) == 0
    return out


def resume(run, root, cache, *extra):
    """``ercgraph train --resume --out RUN`` without ``-c``: the run's own config.yaml."""
    return cli(
        "train", "--resume", "--out", str(run), "--data-root", str(root), "--cache-dir",
        str(cache), *extra,
    )  # fmt: skip


@pytest.fixture
def shipped(tmp_path, finished, monkeypatch):
    """A copy of the run as a stranger could ship it: ``evilmod.py`` (a builder ``evilmod:B``
    on the import path, as the run folder is when it is the working directory) and a plug-in
    file listed under ``imports:``."""
    run = tmp_path / "downloaded"
    shutil.copytree(finished, run)
    (run / "evilmod.py").write_text(EVIL.format(marker="dotted_ran"))
    (run / "plugin.py").write_text(EVIL.format(marker="import_ran").replace("class B", "class C"))
    monkeypatch.syspath_prepend(str(run))
    monkeypatch.delitem(__import__("sys").modules, "evilmod", raising=False)
    return run


def edit_config(run, **changes):
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    for key, value in changes.items():
        sec, _, name = key.partition("__")
        if name:
            cfg[sec][name] = value
        else:
            cfg[sec] = value
    (run / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))


def test_resume_does_not_import_the_runs_files(shipped, meld_slice, cache, capsys):
    edit_config(shipped, imports=[str(shipped / "plugin.py")])
    assert resume(shipped, meld_slice, cache) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert "plugin.py" in err and "--import" in err and "--trust" in err
    assert not (shipped / "import_ran").exists()


def test_resume_does_not_resolve_the_runs_dotted_paths(shipped, meld_slice, cache, capsys):
    edit_config(shipped, graph__builders=["evilmod:B"])
    assert resume(shipped, meld_slice, cache) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "evilmod:B" in err and "--trust" in err
    assert not (shipped / "dotted_ran").exists()
    # --import of some file does not unlock a dotted path either
    other = shipped.parent / "mine.py"
    other.write_text("")
    assert resume(shipped, meld_slice, cache, "--import", str(other)) == 2
    assert not (shipped / "dotted_ran").exists()


def test_explicit_config_inside_the_run_is_the_runs_config(shipped, meld_slice, cache, capsys):
    edit_config(shipped, imports=[str(shipped / "plugin.py")])
    code = resume(shipped, meld_slice, cache, "-c", str(shipped / "config.yaml"))
    assert code == 2 and "--trust" in capsys.readouterr().err
    assert not (shipped / "import_ran").exists()


def test_import_flag_stands_in_for_the_runs_files(shipped, meld_slice, cache):
    edit_config(shipped, imports=[str(shipped / "plugin.py")])
    assert resume(shipped, meld_slice, cache, "--import", str(shipped / "plugin.py")) == 0
    assert (shipped / "import_ran").exists()  # the user named it


def test_trust_imports_and_resolves(shipped, meld_slice, cache):
    edit_config(shipped, imports=[str(shipped / "plugin.py")], graph__builders=["evilmod:B"])
    assert resume(shipped, meld_slice, cache, "--trust") == 0
    assert (shipped / "import_ran").exists() and (shipped / "dotted_ran").exists()


def test_users_own_config_keeps_its_imports_and_dotted_paths(
    tmp_path, meld_slice, cache, monkeypatch
):
    """A fresh train from the user's config: imports: and dotted paths work as before."""
    from tests.cli_helpers import REPO

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "evilmod.py").write_text(EVIL.format(marker="dotted_ran"))
    (mine / "plugin.py").write_text(EVIL.format(marker="import_ran").replace("class B", "class C"))
    monkeypatch.syspath_prepend(str(mine))
    monkeypatch.delitem(__import__("sys").modules, "evilmod", raising=False)
    cfg = yaml.safe_load((REPO / "configs/meld_text.yaml").read_text())
    cfg["imports"] = [str(mine / "plugin.py")]
    cfg["graph"] = {"builders": ["evilmod:B"]}
    config = mine / "c.yaml"
    config.write_text(yaml.safe_dump(cfg))
    args = train_args(tmp_path / "run", meld_slice, cache, "--set", "model.hidden=16")
    args[args.index("-c") + 1] = str(config)
    assert cli(*args) == 0
    assert (mine / "import_ran").exists() and (mine / "dotted_ran").exists()


def test_resume_that_shortens_a_run_is_refused(tmp_path, finished, meld_slice, cache, capsys):
    run = tmp_path / "longer"
    shutil.copytree(finished, run)
    assert resume(run, meld_slice, cache, "--set", "train.epochs=2") == 0
    before = (run / "config.yaml").read_bytes()
    assert resume(run, meld_slice, cache, "--set", "train.epochs=1") == 2
    err = capsys.readouterr().err
    assert "seed_0" in err and "2 epochs" in err and "train.epochs" in err
    assert (run / "config.yaml").read_bytes() == before  # the record still says 2 epochs
    assert yaml.safe_load(before)["train"]["epochs"] == 2


def test_corrupt_seed_result_is_one_line(tmp_path, finished, meld_slice, cache, capsys):
    run = tmp_path / "corrupt"
    shutil.copytree(finished, run)
    (run / "seed_0" / "result.json").write_text('{"history": [')
    before = sorted(p.name for p in run.iterdir())
    assert resume(run, meld_slice, cache) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "result.json" in err and "delete the folder" in err and "seed_0" in err
    assert sorted(p.name for p in run.iterdir()) == before


def test_read_only_run_folder_is_refused_before_any_work(
    tmp_path, finished, meld_slice, cache, capsys, monkeypatch
):
    import tempfile

    import ercgraph.train

    run = tmp_path / "readonly"
    shutil.copytree(finished, run)
    real = tempfile.mkstemp

    def read_only(*args, dir=None, **kwargs):  # as on a read-only mount (root ignores chmod)
        if dir is not None and str(run) in str(dir):
            raise PermissionError(30, "Read-only file system")
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    monkeypatch.setattr(ercgraph.train, "prepare", lambda *a, **k: pytest.fail("work started"))
    assert resume(run, meld_slice, cache) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(run) in err and "read-only" in err.lower()


def test_finished_result_still_resumes(tmp_path, finished, meld_slice, cache):
    """The checks above refuse nothing a plain resume of an intact run does."""
    run = tmp_path / "intact"
    shutil.copytree(finished, run)
    assert resume(run, meld_slice, cache) == 0
    assert json.loads((run / "seed_0" / "result.json").read_text())["history"]


@pytest.mark.parametrize("command", ["evaluate", "predict"])
def test_trust_means_the_same_for_evaluate_and_predict(
    command, shipped, meld_slice, cache, tmp_path, capsys
):
    """``evaluate``/``predict`` import the run's ``imports:`` files only with ``--trust``, as
    ``train --resume`` does."""
    edit_config(shipped, imports=[str(shipped / "plugin.py")])
    args = [command, str(shipped)]
    if command == "predict":
        args += [str(meld_slice / "meld" / "test_sent_emo.csv")]
        args += ["--column", "text=Utterance", "--column", "dialogue_id=Dialogue_ID"]
        args += ["--column", "turn=Utterance_ID", "--column", "speaker=Speaker"]
        args += ["--column", "label=Emotion"]
    else:
        args += ["--data-root", str(meld_slice)]
    args += ["--cache-dir", str(cache)]
    out = ["--out", str(tmp_path / "a.csv")] if command == "predict" else []
    assert cli(*args, *out) == 0
    assert not (shipped / "import_ran").exists()
    out = ["--out", str(tmp_path / "b.csv")] if command == "predict" else []
    assert cli(*args, *out, "--trust") == 0
    assert (shipped / "import_ran").exists()
    capsys.readouterr()


# -- issue 22 review: the run's own config by any path; its saved folders are never used ------
@pytest.fixture
def download(tmp_path, finished):
    """A download holding ``run/`` and a sibling ``extra/`` with a config that imports
    ``extra/plugin.py`` (the run's config plus ``imports:``), and the plug-in."""
    root = tmp_path / "download"
    run = root / "run"
    shutil.copytree(finished, run)
    (root / "extra").mkdir()
    (root / "extra" / "plugin.py").write_text(
        EVIL.format(marker="import_ran").replace("class B", "class C")
    )
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    cfg["imports"] = [str(root / "extra" / "plugin.py")]
    (root / "extra" / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    return run


@pytest.mark.parametrize("given", ["no -c", "-c RUN/config.yaml"])
def test_a_run_config_symlinked_out_of_the_run_is_refused(
    given, download, meld_slice, cache, capsys
):
    link = download / "config.yaml"
    link.unlink()
    link.symlink_to("../extra/config.yaml")
    extra = ["-c", str(link)] if given != "no -c" else []
    capsys.readouterr()
    assert resume(download, meld_slice, cache, *extra) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(link) in err and "symlink" in err, err
    assert not (download.parent / "extra" / "import_ran").exists()
    assert link.is_symlink() and str(link.readlink()) == "../extra/config.yaml"  # untouched


def test_a_config_reached_through_a_symlink_in_the_run_is_the_runs(
    download, meld_slice, cache, capsys
):
    """``-c RUN/shipped/config.yaml`` where ``RUN/shipped`` links out of the run: it came with
    the run, so its imports: are not imported."""
    (download / "shipped").symlink_to("../extra")
    capsys.readouterr()
    code = resume(download, meld_slice, cache, "-c", str(download / "shipped" / "config.yaml"))
    assert code == 2 and "--trust" in capsys.readouterr().err
    assert not (download.parent / "extra" / "import_ran").exists()


def test_resume_never_uses_the_runs_saved_cache_dir_or_out(
    tmp_path, finished, meld_slice, cache, monkeypatch
):
    run = tmp_path / "planted"
    shutil.copytree(finished, run)
    planted = tmp_path / "planted_cache"
    edit_config(run, cache_dir=str(planted), out=str(tmp_path / "planted_out"))
    monkeypatch.setenv("ERCGRAPH_CACHE", str(cache))  # the user's cache, from the environment
    assert cli("train", "--resume", "--out", str(run), "--data-root", str(meld_slice)) == 0
    assert not planted.exists() and not (tmp_path / "planted_out").exists()


def test_resume_never_uses_the_runs_saved_data_root(
    tmp_path, finished, meld_slice, cache, monkeypatch, capsys
):
    run = tmp_path / "rooted"
    shutil.copytree(finished, run)
    edit_config(run, data_root=str(meld_slice))
    before = (run / "config.yaml").read_bytes()
    monkeypatch.delenv("ERCGRAPH_DATA", raising=False)
    capsys.readouterr()
    assert cli("train", "--resume", "--out", str(run), "--cache-dir", str(cache)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--data-root" in err and str(meld_slice) in err, err
    assert (run / "config.yaml").read_bytes() == before
    # where the user says the data is: --data-root, ERCGRAPH_DATA, or --set data_root=
    args = ["train", "--resume", "--out", str(run), "--cache-dir", str(cache)]
    assert cli(*args, "--set", f"data_root={meld_slice}") == 0


def test_a_users_own_config_on_resume_keeps_its_cache_dir(
    tmp_path, finished, meld_slice, cache, monkeypatch
):
    """A config from outside the run, given with -c, is the user's: its cache_dir is used."""
    run = tmp_path / "mine"
    shutil.copytree(finished, run)
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    cfg["cache_dir"] = str(cache)
    (tmp_path / "mine.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    unused = tmp_path / "env_cache"
    monkeypatch.setenv("ERCGRAPH_CACHE", str(unused))
    args = ["train", "--resume", "--out", str(run), "--data-root", str(meld_slice)]
    assert cli(*args, "-c", str(tmp_path / "mine.yaml")) == 0
    assert not unused.exists()


def test_run_config_recognises_every_spelling_of_a_file_in_the_run(tmp_path):
    from ercgraph.rundir import run_config

    run, extra = tmp_path / "run", tmp_path / "extra"
    (run / "seed_0").mkdir(parents=True)
    extra.mkdir()
    (run / "config.yaml").write_text("{}")
    (extra / "config.yaml").write_text("{}")
    (tmp_path / "link").symlink_to(run)
    (run / "shipped").symlink_to(extra)
    os_link = tmp_path / "hard.yaml"
    os_link.hardlink_to(run / "config.yaml")
    inside = [
        run / "config.yaml",
        run / "." / "seed_0" / ".." / "config.yaml",
        tmp_path / "link" / "config.yaml",
        tmp_path / "link" / "shipped" / "config.yaml",
        run / "shipped" / "config.yaml",
        os_link,
    ]
    for path in inside:
        assert run_config(run, path), path
        assert run_config(tmp_path / "link", path), path
    assert not run_config(run, extra / "config.yaml")  # the user's, named by its own path
    assert not run_config(run, run / ".." / "extra" / "config.yaml")
