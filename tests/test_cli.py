"""The command line as users and other tools call it (the contract in README)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import shared_dataset

from ihomer.cli import main

REQUIRED = ("learner", "source", "instances", "seconds", "instances_per_s", "peak_rss_bytes",
            "subset_accuracy", "hamming_loss", "example_precision", "example_recall",
            "example_f1", "micro_precision", "micro_recall", "micro_f1", "macro_precision",
            "macro_recall", "macro_f1")


def test_replay_embedded_default_writes_the_contract(tmp_path: Path, capsys) -> None:
    assert main(["replay", "--quiet", "--learner", "majority", "--out", str(tmp_path),
                 "--plot"]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    for key in REQUIRED:
        assert key in summary, key
    assert summary["instances"] == 593
    assert summary["source"].endswith("emotions.arff.gz")
    assert (tmp_path / "curve.csv").exists() and (tmp_path / "curve.png").exists()
    out = capsys.readouterr().out
    assert "micro_f1" in out and "instances_per_s" in out


def test_convert_then_replay_gives_identical_metrics(tmp_path: Path) -> None:
    src = shared_dataset("flags.arff.gz")
    pq_path = tmp_path / "flags.parquet"
    assert main(["convert", str(src), str(pq_path)]) == 0
    a, b = tmp_path / "a", tmp_path / "b"
    for source, out in ((src, a), (pq_path, b)):
        assert main(["replay", str(source), "--learner", "river-br-ht", "--quiet", "--out",
                     str(out)]) == 0
    sa = json.loads((a / "summary.json").read_text())
    sb = json.loads((b / "summary.json").read_text())
    for key in REQUIRED[6:]:
        assert sa[key] == sb[key], key


def test_limit_param_and_labels_options(tmp_path: Path) -> None:
    src = shared_dataset("water-quality.arff.gz")
    assert main(["replay", str(src), "--labels", "first:14", "--limit", "100", "--quiet",
                 "--learner", "river-br-nb", "--out", str(tmp_path)]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["instances"] == 100
    assert summary["n_labels"] == 14
    # the first 100 of 1,060 are a prefix: recorded as such, never as a full-stream run
    assert summary["limit"] == 100 and summary["stopped"] == "limit"
    assert summary["complete"] is False and summary["stream_instances"] == 1060


def test_the_first_line_says_which_rule_chose_the_labels_before_the_run(capsys,
                                                                         monkeypatch) -> None:
    """It was printed after the run, though a long run is when it matters first."""
    import ihomer.evaluate.prequential as preq

    def no_run(*args: object, **kwargs: object) -> None:
        raise ValueError("the run did not start")

    monkeypatch.setattr(preq, "prequential", no_run)
    assert main(["replay", "--quiet", "--learner", "majority"]) == 2
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 and out[0].startswith("majority on ")
    assert out[0].endswith("emotions.arff.gz (6 labels from xml:emotions.xml, 72 features)")


def test_a_cut_stream_says_it_is_a_prefix_wherever_it_goes(tmp_path: Path, capsys) -> None:
    """The cut lives in the stream's schema, not only in replay's --limit: the Python API's
    runs on a prefix, prefixes of prefixes and convert --limit are never taken for a whole
    stream (convert's file was replayed as "complete": true)."""
    from ihomer.evaluate.prequential import prequential
    from ihomer.learners.registry import make
    from ihomer.stream.sources import default_source, limit_stream, open_stream

    whole = open_stream()
    assert limit_stream(whole, 593) is whole and limit_stream(whole, None) is whole
    cut = limit_stream(whole, 100)
    assert (cut.schema.limit, cut.schema.whole_instances, len(cut)) == (100, 593, 100)
    again = limit_stream(cut, 30)  # the whole source's length stays
    assert (again.schema.limit, again.schema.whole_instances) == (30, 593)
    s = prequential(again, make("majority")).summary
    assert s["complete"] is False and s["stopped"] == "limit"
    assert (s["instances"], s["limit"], s["stream_instances"]) == (30, 30, 593)
    assert main(["convert", str(default_source()), str(tmp_path / "cut.parquet"), "--limit",
                 "100"]) == 0
    assert "100 instances (a prefix: the first of 593 in the stream it was cut from)" in \
        capsys.readouterr().out


def test_a_recording_of_a_prefix_replays_as_a_prefix(tmp_path: Path, capsys) -> None:
    """``convert --limit 100`` made a file whose replay said "complete": true, its metadata
    naming the full ARFF as its source."""
    import pyarrow.parquet as pq

    from ihomer.stream.sources import default_source

    cut, again = tmp_path / "cut.parquet", tmp_path / "again.arrow"
    assert main(["convert", str(default_source()), str(cut), "--limit", "100"]) == 0
    meta = pq.read_schema(cut).metadata
    assert json.loads(meta[b"ihomer.limit"]) == 100
    assert json.loads(meta[b"ihomer.whole_instances"]) == 593
    assert main(["convert", str(cut), str(again), "--limit", "30"]) == 0  # keeps the whole's
    capsys.readouterr()
    for src, n in ((cut, 100), (again, 30)):
        assert main(["replay", str(src), "--quiet", "--learner", "majority", "--out",
                     str(tmp_path / "r")]) == 0
        summary = json.loads((tmp_path / "r" / "summary.json").read_text())
        assert summary["complete"] is False and summary["stopped"] == "limit"
        assert summary["limit"] == summary["instances"] == n
        assert summary["stream_instances"] == 593
        said = capsys.readouterr().out
        assert f"the stream is a prefix, its source's first {n} instances" in said
    whole = tmp_path / "whole.parquet"  # a limit beyond the stream cuts nothing
    assert main(["convert", str(default_source()), str(whole), "--limit", "1000"]) == 0
    assert json.loads(pq.read_schema(whole).metadata[b"ihomer.limit"]) is None
    assert main(["replay", str(whole), "--quiet", "--learner", "majority", "--out",
                 str(tmp_path / "w")]) == 0
    assert json.loads((tmp_path / "w" / "summary.json").read_text())["complete"] is True


def test_a_limit_beyond_the_stream_is_a_complete_run(tmp_path: Path) -> None:
    assert main(["replay", "--limit", "1000", "--quiet", "--learner", "majority", "--out",
                 str(tmp_path)]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["instances"] == summary["stream_instances"] == 593
    assert summary["complete"] is True and summary["stopped"] is None


@pytest.mark.parametrize("argv, message", [
    (["replay", "--learner", "nope"], "unknown learner 'nope'"),
    (["replay", "--learner", "majority", "--param", "x=1"], "no parameter 'x'"),
    (["replay", "--param", "garbage"], "expected KEY=VALUE"),
    (["replay", "/no/such/file.arff"], "no such file"),
    (["replay", "data.csv"], "cannot tell the format"),
    (["replay", "--param", "cluster_delta=abc"],
     "parameter 'cluster_delta' takes float, not 'abc'"),
    (["replay", "--learner", "mlhat", "--param", "grace_period=[1]"],
     "parameter 'grace_period' takes"),
    (["replay", "--param", "cluster_delta=2"], "cluster_delta must be in (0, 1), not 2"),
    (["replay", "--param", "tree=grace_period:50"], "tree must be a dict of MLHAT's arguments"),
])
def test_errors_are_one_clear_line(argv, message, capsys, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data.csv").write_text("a,b\n")
    assert main([*argv, "--quiet"] if argv[0] == "replay" else argv) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


@pytest.mark.parametrize("argv, message", [
    (["replay", "--limit", "-5"], "argument --limit: must be at least 1, not -5"),
    (["replay", "--limit", "ten"], "argument --limit: 'ten' is not an integer"),
    (["replay", "--batch-size", "0"], "argument --batch-size: must be at least 1, not 0"),
    (["replay", "--window", "0"], "argument --window: must be at least 1, not 0"),
    (["replay", "--max-seconds", "-1"], "argument --max-seconds: must be above 0, not -1"),
    (["replay", "--max-seconds", "nan"], "argument --max-seconds: must be above 0, not nan"),
    (["replay", "--featurizer-queue", "-1"], "argument --featurizer-queue: must be at least 0"),
    (["convert", "a.arff", "b.parquet", "--limit", "0"], "argument --limit: must be at least 1"),
])
def test_bad_numbers_are_refused_before_anything_runs(argv, message, capsys) -> None:
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


@pytest.mark.parametrize("command", ["replay", "convert"])
def test_every_option_says_what_it_does_and_its_default(command: str) -> None:
    """replay's --batch-size and convert's --labels, --layout and --limit had no help, and
    --window did not show its default."""
    import argparse

    from ihomer.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for action in sub.choices[command]._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        assert action.help, action.dest
        if action.default not in (None, False, []):
            assert str(action.default) in action.help, action.dest


def test_a_warning_is_one_line(tmp_path: Path) -> None:
    src = tmp_path / "gappy.arff"
    src.write_text("@relation g\n@attribute a numeric\n@attribute y {0,1}\n@data\n"
                   + "".join(f"{'?' if i == 3 else i % 4},{i % 2}\n" for i in range(40)))
    run = subprocess.run([sys.executable, "-m", "ihomer.cli", "replay", str(src), "--labels",
                          "last:1", "--learner", "majority", "--quiet"],
                         capture_output=True, text=True, check=True)
    assert run.stderr.splitlines() == [
        "ihomer: warning: MajorityLabelset: missing feature values are left out of their rows "
        "(read as absent, i.e. 0); the first in feature 'a'"]


def test_console_script_runs() -> None:
    out = subprocess.run([sys.executable, "-m", "ihomer.cli", "learners"], capture_output=True,
                         text=True, check=True).stdout
    assert "majority" in out and "river-br-nb" in out


def _long_recording(path: Path, n: int = 40_000) -> Path:
    """A synthetic stream long enough that a Python learner is still at it seconds in."""
    import numpy as np

    from ihomer.stream.base import Batch, InMemoryStream, Schema
    from ihomer.stream.recorded import write_recorded

    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 3))
    y = np.column_stack([x[:, 0] > 0, x[:, 1] > 0])
    schema = Schema(feature_names=("a", "b", "c"), label_names=("p", "q"), source="synthetic")
    write_recorded(InMemoryStream(schema, Batch.from_dense(x, y)), path)
    return path


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT"])
def test_a_signal_ends_the_replay_and_keeps_its_results(tmp_path: Path, sig: str) -> None:
    # Before, Ctrl-C printed a KeyboardInterrupt traceback from inside a kernel and wrote
    # nothing, 66,000 instances into imdb.
    import signal
    import time

    src = _long_recording(tmp_path / "long.parquet")
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "ihomer.cli", "replay", str(src),
                             "--learner", "river-br-nb", "--out", str(out), "--predictions"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            restore_signals=True)
    seen = b""
    deadline = time.monotonic() + 120
    while b"river-br-nb on long.parquet: " not in seen and time.monotonic() < deadline:
        seen += proc.stderr.read1(4096)  # the bar's description once the clock runs
    time.sleep(0.5)
    proc.send_signal(getattr(signal, sig))
    stdout, stderr = proc.communicate(timeout=120)
    stderr = (seen + stderr).decode()
    assert proc.returncode == 128 + getattr(signal, sig), stderr
    assert "Traceback" not in stderr
    assert f"ihomer: {sig}: stopping after the instances under way" in stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["stopped"] == "interrupted" and not summary["complete"]
    assert 0 < summary["instances"] < 40_000 and summary["stream_instances"] == 40_000
    assert f"stopped by {sig}: metrics over the first {summary['instances']} of 40000" in \
        stdout.decode()
    lines = (out / "predictions.jsonl").read_text().splitlines()
    assert len(lines) == summary["instances"]  # the answers the metrics cover
    # the metrics are those of a run cut at the same instance
    assert main(["replay", str(src), "--learner", "river-br-nb", "--quiet", "--limit",
                 str(summary["instances"]), "--out", str(tmp_path / "cut")]) == 0
    cut = json.loads((tmp_path / "cut" / "summary.json").read_text())
    for key in REQUIRED[6:]:
        assert summary[key] == cut[key], key


def test_an_unwritable_out_is_refused_before_the_run(tmp_path: Path, capsys) -> None:
    (tmp_path / "afile").write_text("")
    for out in (tmp_path / "afile", tmp_path / "afile" / "sub"):
        assert main(["replay", "--quiet", "--learner", "majority", "--out", str(out)]) == 2
        captured = capsys.readouterr()
        assert f"--out {out}: cannot write the results there" in captured.err
        assert "Traceback" not in captured.err and "micro_f1" not in captured.out  # not run


def test_convert_checks_where_it_writes_before_reading(tmp_path: Path, capsys) -> None:
    """A missing folder failed after the whole input was read, naming a .tmp file."""
    (tmp_path / "afile").write_text("")
    never_read = str(tmp_path / "no-such-input.arff")  # an output error must come first
    out = tmp_path / "afile" / "x.parquet"
    assert main(["convert", never_read, str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{out}: cannot write the results there" in err
    assert "no-such-input" not in err and ".tmp" not in err
    out = tmp_path / "conv" / "deeper" / "emotions.parquet"  # made, as replay's --out is
    from ihomer.stream.sources import default_source

    assert main(["convert", str(default_source()), str(out), "--limit", "3"]) == 0
    assert out.exists()


def test_a_results_folder_says_what_ran_and_holds_nothing_older(tmp_path: Path) -> None:
    from ihomer import __version__

    src = _long_recording(tmp_path / "s.parquet", n=300)
    assert main(["replay", "--quiet", "--learner", "majority", "--out", str(tmp_path / "r"),
                 "--plot"]) == 0
    assert (tmp_path / "r" / "curve.png").exists()
    assert main(["replay", str(src), "--quiet", "--learner", "majority", "--out",
                 str(tmp_path / "r")]) == 0
    assert not (tmp_path / "r" / "curve.png").exists()  # the first run's plot
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["source"] == str(src)  # the recording replayed, not what it was made from
    assert summary["ihomer_version"] == __version__ and summary["started"].endswith("+00:00")
    assert summary["command"] == (f"ihomer replay {src} --quiet --learner majority --out "
                                  f"{tmp_path / 'r'}")


@pytest.mark.parametrize("case", ["empty", "labels"])
def test_a_replay_that_would_mislead_is_refused(tmp_path: Path, capsys, case: str) -> None:
    if case == "empty":
        src = tmp_path / "empty.arff"
        src.write_text("@relation e\n@attribute a numeric\n@attribute y {0,1}\n@data\n")
        argv, message = [str(src), "--labels", "last:1"], "the stream has no instances"
    else:
        src = _long_recording(tmp_path / "s.parquet", n=50)
        argv, message = [str(src), "--labels", "first:1"], "a recorded stream carries its labels"
    assert main(["replay", *argv, "--quiet", "--learner", "majority"]) == 2
    assert message in capsys.readouterr().err


def test_the_predictions_file_gives_the_summarys_metrics_to_river(tmp_path: Path) -> None:
    from river import metrics

    assert main(["replay", "--quiet", "--learner", "mlhat", "--limit", "300", "--predictions",
                 "--out", str(tmp_path)]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    rows = [json.loads(line) for line in (tmp_path / "predictions.jsonl").open()]
    assert [r["instance"] for r in rows] == list(range(300))
    labels = sorted({lab for r in rows for lab in r["true"] + r["predicted"]})
    micro = metrics.multioutput.MicroAverage(metrics.F1())
    exact = metrics.multioutput.ExactMatch()
    for r in rows:
        y = {lab: lab in r["true"] for lab in labels}
        p = {lab: lab in r["predicted"] for lab in labels}
        micro.update(y, p)
        exact.update(y, p)
        assert len(r["scores"]) == len(r["predicted"])
    assert summary["micro_f1"] == pytest.approx(micro.get(), abs=1e-12)
    assert summary["subset_accuracy"] == pytest.approx(exact.get(), abs=1e-12)
    # a later run without --predictions leaves no stale answers behind
    assert main(["replay", "--quiet", "--learner", "majority", "--out", str(tmp_path)]) == 0
    assert not (tmp_path / "predictions.jsonl").exists()


def test_a_seed_among_the_parameters_that_disagrees_with_seed_is_refused(capsys) -> None:
    """--param seed=3 was silently overridden by --seed's default 42."""
    assert main(["replay", "--quiet", "--limit", "5", "--param", "seed=3"]) == 2
    assert "seed=3 among its parameters disagrees" in capsys.readouterr().err
    assert main(["replay", "--quiet", "--limit", "5", "--param", "seed=3", "--seed", "3"]) == 0


def test_learners_name_lists_every_parameter_with_its_default_and_meaning(capsys) -> None:
    assert main(["learners", "ihomer"]) == 0
    out = capsys.readouterr().out
    for line in ("partition='odac'", "warm_start=True", "handover=True", "mode='homer'",
                 "cluster_delta=0.1"):
        assert line in out, line
    assert "ablation" in out  # partition's documentation
    flat = " ".join(out.split())
    # a choice's every value, past the first sentence of its entry (decode's was cut there)
    assert '"seen": that union' in flat and '"f1": also the set of highest expected' in flat
    assert "set by --seed (default 42)" in out
    from ihomer.learners.registry import available

    for name in available():  # river-br-* take only a seed: that listing failed on max(())
        assert main(["learners", name]) == 0, name
    assert main(["learners", "nope"]) == 2
    assert "unknown learner 'nope'" in capsys.readouterr().err


def test_the_progress_bar_shows_the_metrics_of_the_instances_it_counts(tmp_path: Path) -> None:
    """Each redraw of the bar shows the cumulative metrics after the instances it counts (it
    showed the previous batch's: 0.0000 at 256 of emotions' 593); checked against replays of
    those prefixes."""
    import os
    import re

    env = {**os.environ, "TQDM_MININTERVAL": "0"}  # every update redraws
    proc = subprocess.run([sys.executable, "-m", "ihomer.cli", "replay", "--out",
                           str(tmp_path / "all")], capture_output=True, text=True,
                          timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    shown = {int(n): float(f) for n, f in re.findall(r"(\d+)/593 \[[^]]*micro_f1=([0-9.]+)",
                                                       proc.stderr)}
    assert {256, 512, 593} <= set(shown)
    for n in (256, 512):
        out = tmp_path / str(n)
        assert main(["replay", "--limit", str(n), "--quiet", "--out", str(out)]) == 0
        prefix = json.loads((out / "summary.json").read_text())
        assert shown[n] == pytest.approx(prefix["micro_f1"], abs=5e-5), n
    final = json.loads((tmp_path / "all" / "summary.json").read_text())
    assert shown[593] == pytest.approx(final["micro_f1"], abs=5e-5)
