"""The bench scripts a user runs by hand: their mistakes are one-line errors, their results
reproduce under ``ihomer replay`` (same seed), and committed results are not overwritten.

Each test runs a script as a person would (its own process) on the smallest shared streams;
skipped without the shared datasets.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SHARED

from ihomer.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
ANCHORS = SHARED.parent / "anchors" / "published_prequential.csv"
REPLAY_SEED = build_parser().parse_args(["replay"]).seed

pytestmark = pytest.mark.skipif(not (SHARED / "MANIFEST.csv").exists() or not ANCHORS.exists(),
                                reason=f"shared datasets or anchors not available at {SHARED}")


def bench(script: str, *args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run ``bench/SCRIPT`` with ``args``, reading the same shared folder as the tests."""
    env = {**os.environ, "IHOMER_SHARED": str(SHARED.parent)}
    return subprocess.run([sys.executable, str(BENCH / script), *map(str, args)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120)


def assert_one_line_error(proc: subprocess.CompletedProcess[str], *names: str) -> None:
    """Failed, without a traceback, with a message naming each of ``names``."""
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr, proc.stderr
    for name in names:
        assert name in proc.stderr, (name, proc.stderr)


# --- tune_ihomer.py ---------------------------------------------------------------------------


def test_tune_help_shows_both_config_syntaxes() -> None:
    proc = bench("tune_ihomer.py", "--help")
    assert proc.returncode == 0, proc.stderr
    assert "LEARNER:{DICT LITERAL}" in proc.stdout
    assert "LEARNER:KEY=VALUE" in proc.stdout
    assert "--seed" in proc.stdout


@pytest.mark.parametrize(("config", "names"), [
    ("ihomer:bogus=1", ["bogus"]),
    ('ihomer:{"bogus": 1}', ["bogus"]),
    ("ihomer:mode=bogus", ["mode", "bogus"]),
    ('ihomer:{"mode": "bogus"}', ["mode", "bogus"]),
    ('ihomer:{"n_min": 5', ["n_min"]),
    ("nosuch", ["nosuch", "ihomer"]),
    ("ihomer:oops", ["oops", "KEY=VALUE"]),
])
def test_tune_bad_config_is_one_line_error(tmp_path: Path, config: str,
                                           names: list[str]) -> None:
    out = tmp_path / "t.json"
    proc = bench("tune_ihomer.py", "--out", out, "--datasets", "flags", "ihomer", config)
    assert_one_line_error(proc, *names)
    assert proc.stdout == ""  # refused before the first (valid) configuration ran
    assert not out.exists()


def test_tune_unknown_dataset_is_one_line_error(tmp_path: Path) -> None:
    proc = bench("tune_ihomer.py", "--out", tmp_path / "t.json", "--datasets", "flags,nosuch",
                 "ihomer")
    assert_one_line_error(proc, "nosuch")


def test_tune_refuses_existing_out(tmp_path: Path) -> None:
    out = tmp_path / "t.json"
    out.write_text("{}")
    proc = bench("tune_ihomer.py", "--out", out, "--datasets", "flags", "ihomer")
    assert_one_line_error(proc, "--update", "--replace")
    assert out.read_text() == "{}"


def tuned_both_ways(tmp_path: Path, dataset: str, literal: str, spec: str,
                    params: dict) -> dict:
    """Run one configuration written in both syntaxes; both must mean ``params`` and score
    alike. Returns the configurations tune_ihomer.py wrote."""
    out = tmp_path / "t.json"
    proc = bench("tune_ihomer.py", "--out", out, "--datasets", dataset, literal, spec)
    assert proc.returncode == 0, proc.stderr
    configs = json.loads(out.read_text())["configs"]
    assert set(configs) == {literal, spec}  # keyed by the text, as tuning.json
    assert configs[literal]["params"] == configs[spec]["params"] == params
    assert configs[literal]["datasets"] == configs[spec]["datasets"]
    return configs


def test_tune_syntaxes_agree_and_reproduce_with_replay(tmp_path: Path) -> None:
    """The dict literal and bench/run.py's form build the same learner, seeded as ``ihomer
    replay`` seeds it: random clusters (seed-dependent) score as replay scores them."""
    literal = 'ihomer:{"partition": "random", "n_min": 50}'
    spec = "ihomer:partition=random:n_min=50"
    configs = tuned_both_ways(tmp_path, "emotions", literal, spec,
                              {"partition": "random", "n_min": 50})
    assert configs[literal]["seed"] == configs[spec]["seed"] == REPLAY_SEED

    run = tmp_path / "replay"
    proc = subprocess.run(
        [sys.executable, "-m", "ihomer.cli", "replay", str(SHARED / "emotions.arff.gz"),
         "--learner", "ihomer", "--param", "partition=random", "--param", "n_min=50",
         "--out", str(run), "--quiet"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((run / "summary.json").read_text())
    for key, value in configs[spec]["datasets"]["emotions"].items():
        assert value == pytest.approx(summary[key], abs=1e-12), key


def test_tune_spec_form_carries_dict_values(tmp_path: Path) -> None:
    """bench/run.py's form splits at ``:KEY=`` only, so ``tree={...}`` with its own colons
    is one parameter and means what the dict literal form means."""
    tuned_both_ways(tmp_path, "flags", 'ihomer:{"tree": {"grace_period": 50, "tau": 0.1}, '
                    '"mode": "flat"}', 'ihomer:tree={"grace_period": 50, "tau": 0.1}:mode=flat',
                    {"tree": {"grace_period": 50, "tau": 0.1}, "mode": "flat"})


def test_run_learners_split_outside_brackets_and_checked_first(tmp_path: Path) -> None:
    """``--learners``: a comma inside a dict value does not split a learner, and a learner
    that does not parse stops the run in one line before anything runs."""
    proc = bench("run.py", "--learners", "mlhat:tree_oops,noop", "--datasets", "flags",
                 "--out", tmp_path / "r", "--runs", tmp_path / "runs")
    assert_one_line_error(proc, "tree_oops", "KEY=VALUE")
    assert not (tmp_path / "r").exists()
    proc = bench("run.py", "--learners", "noop,mlhat:grace_period=50:tau=0.1,"
                 "ihomer:tree={'grace_period': 50, 'tau': 0.1}", "--datasets", "flags",
                 "--out", tmp_path / "r", "--runs", tmp_path / "runs", "--jobs", "1")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads((tmp_path / "r" / "results.json").read_text())["rows"]
    assert sorted(r["learner"] for r in rows) == sorted([
        "noop", "mlhat:grace_period=50:tau=0.1", "ihomer:tree={'grace_period': 50, 'tau': 0.1}"])
    assert all(r["status"] == "ok" for r in rows), rows


def test_run_exit_code_speaks_for_its_own_runs(tmp_path: Path) -> None:
    """``--update`` keeps a failed row of an earlier run in the report, but a rerun whose own
    runs all succeed exits 0; a run that fails now exits 1 and names itself on stderr."""
    out, runs = tmp_path / "r", tmp_path / "runs"
    proc = bench("run.py", "--learners", "noop", "--datasets", "flags", "--out", out,
                 "--runs", runs)
    assert proc.returncode == 0, proc.stderr
    data = json.loads((out / "results.json").read_text())
    data["rows"].append({**data["rows"][0], "learner": "majority", "status": "error: boom"})
    (out / "results.json").write_text(json.dumps(data))
    proc = bench("run.py", "--learners", "noop", "--datasets", "flags", "--out", out,
                 "--runs", runs, "--update")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert {(r["learner"], r["status"]) for r in rows} == {("noop", "ok"),
                                                           ("majority", "error: boom")}
    bad = tmp_path / "bad.arff"
    bad.write_text("not an arff file\n")
    proc = bench("run.py", "--learners", "noop", "--datasets", bad, "--out", out,
                 "--runs", runs, "--update")
    assert proc.returncode == 1
    assert "failed: noop on bad.arff:" in proc.stderr and "boom" not in proc.stderr, proc.stderr


def test_run_names_own_streams_by_file_name(tmp_path: Path) -> None:
    """A stream of one's own is named by its file name, so a copy of a shared dataset neither
    overwrites that dataset's run nor takes its published numbers; two files of one name in two
    folders are refused before anything runs."""
    own = tmp_path / "a" / "flags.arff.gz"
    own.parent.mkdir()
    shutil.copy(SHARED / "flags.arff.gz", own)
    shutil.copy(SHARED / "flags.xml", own.parent / "flags.xml")
    out = tmp_path / "r"
    proc = bench("run.py", "--learners", "noop", "--datasets", f"flags,{own}", "--out", out,
                 "--runs", tmp_path / "runs", "--limit", "50")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert {(r["dataset"], r.get("file")) for r in rows} == {("flags", None),
                                                            ("flags.arff.gz", str(own))}
    assert len({r["run_dir"] for r in rows}) == 2
    other = tmp_path / "b" / "flags.arff.gz"
    other.parent.mkdir()
    shutil.copy(own, other)
    proc = bench("run.py", "--learners", "noop", "--datasets", f"{own},{other}", "--out",
                 tmp_path / "r2", "--runs", tmp_path / "runs")
    assert_one_line_error(proc, "two streams named 'flags.arff.gz'")
    assert not (tmp_path / "r2").exists()


def test_run_scores_a_recording_of_a_prefix_as_partial(tmp_path: Path) -> None:
    """A recording made with ``convert --limit`` is a prefix of its stream: never a full run."""
    cut = tmp_path / "flags-cut.parquet"
    assert subprocess.run([sys.executable, "-m", "ihomer.cli", "convert",
                           SHARED / "flags.arff.gz", cut, "--limit", "50"]).returncode == 0
    out = tmp_path / "r"
    proc = bench("run.py", "--learners", "noop", "--datasets", cut, "--out", out, "--runs",
                 tmp_path / "runs")
    assert proc.returncode == 0, proc.stderr
    [row] = json.loads((out / "results.json").read_text())["rows"]
    assert row["status"] == "partial" and row["complete"] is False
    assert (row["instances"], row["stream_instances"]) == (50, 194)


def test_tune_config_seed_overrides_seed_option(tmp_path: Path) -> None:
    out = tmp_path / "t.json"
    proc = bench("tune_ihomer.py", "--out", out, "--datasets", "flags", "--seed", "3",
                 "ihomer:seed=7", "mlhat")
    assert proc.returncode == 0, proc.stderr
    configs = json.loads(out.read_text())["configs"]
    assert configs["ihomer:seed=7"]["seed"] == 7
    assert configs["mlhat"]["seed"] == 3


# --- restructure_dip.py -----------------------------------------------------------------------


def test_restructure_dip_help_names_default_out_and_guard() -> None:
    proc = bench("restructure_dip.py", "--help")
    assert proc.returncode == 0, proc.stderr
    text = " ".join(proc.stdout.split())
    assert "bench/results/restructure_dip.json" in text
    for option in ("--window", "--param", "--seed", "--replace"):
        assert option in text


def test_restructure_dip_refuses_existing_out(tmp_path: Path) -> None:
    out = tmp_path / "dip.json"
    out.write_text("{}")
    proc = bench("restructure_dip.py", "flags", "--window", "20", "--out", out)
    assert_one_line_error(proc, "--replace")
    assert out.read_text() == "{}"


@pytest.mark.parametrize(("args", "names"), [
    (["nosuch"], ["nosuch"]),
    (["flags", "--param", "mode=bogus"], ["mode", "bogus"]),
    (["flags", "--param", "bogus=1"], ["bogus"]),
    (["flags", "--param", "tree={'bogus': 1}"], ["tree", "bogus"]),
])
def test_restructure_dip_bad_input_is_one_line_error(tmp_path: Path, args: list[str],
                                                     names: list[str]) -> None:
    out = tmp_path / "dip.json"
    proc = bench("restructure_dip.py", *args, "--window", "20", "--out", out)
    assert_one_line_error(proc, *names)
    assert not out.exists()


def test_restructure_dip_reads_a_file_and_records_the_seed(tmp_path: Path) -> None:
    """A path is a stream of one's own (its labels from the sibling NAME.xml), not a name to
    which ``.arff.gz`` is appended; the seed written is replay's default."""
    shutil.copy(SHARED / "flags.arff.gz", tmp_path / "mine.arff.gz")
    shutil.copy(SHARED / "flags.xml", tmp_path / "mine.xml")
    out = tmp_path / "dip.json"
    out.write_text("{}")
    proc = bench("restructure_dip.py", tmp_path / "mine.arff.gz", "--window", "20", "--out",
                 out, "--replace")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(out.read_text())
    assert data["seed"] == REPLAY_SEED
    assert data["window"] == 20
    assert list(data["datasets"]) == ["mine.arff.gz"]  # a file is named by its file name


# --- compare.py -------------------------------------------------------------------------------


def results_csv(path: Path, rows: list[tuple[str, str, str, int]]) -> Path:
    """A small ``results.csv`` of ``(learner, dataset, status, instances)`` rows."""
    fields = ["learner", "dataset", "status", "instances", "complete", "seconds",
              "warm_up_seconds", "subset_accuracy", "hamming_loss", "example_f1", "micro_f1",
              "macro_f1", "run_dir"]
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        for learner, dataset, status, n in rows:
            w.writerow({"learner": learner, "dataset": dataset, "status": status,
                        "instances": n, "complete": status == "ok", "seconds": 0.5,
                        "warm_up_seconds": 0.1, "subset_accuracy": 0.3, "hamming_loss": 0.2,
                        "example_f1": 0.6, "micro_f1": 0.65, "macro_f1": 0.6, "run_dir": ""})
    return path


def test_compare_missing_results_is_one_line_error(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "results.csv"
    proc = bench("compare.py", missing, "--learner", "ihomer")
    assert_one_line_error(proc, str(missing), "not found")


def test_compare_unknown_learner_lists_the_learners_there(tmp_path: Path) -> None:
    path = results_csv(tmp_path / "results.csv", [("ihomer", "emotions", "ok", 593),
                                                  ("mlhat", "emotions", "ok", 593)])
    proc = bench("compare.py", path, "--learner", "nosuch")
    assert_one_line_error(proc, "nosuch", "ihomer", "mlhat")


def test_compare_leaves_out_partial_runs_and_says_why(tmp_path: Path) -> None:
    """A partial run, and a ``--limit`` run recorded ``ok`` by an older replay (fewer instances
    than the stream has), are never set beside the published full-stream numbers."""
    path = results_csv(tmp_path / "results.csv", [("ihomer", "emotions", "ok", 593),
                                                  ("ihomer", "yeast", "partial", 500),
                                                  ("ihomer", "scene", "ok", 100)])
    proc = bench("compare.py", path, "--learner", "ihomer")
    assert proc.returncode == 0, proc.stderr
    assert "2 partial runs left out" in proc.stdout
    assert "prefix of the stream" in proc.stdout
    agg = json.loads(proc.stdout[proc.stdout.index("\n{") + 1:])
    assert agg["datasets"] == 1
    assert sorted(agg["left_out"]["partial"]) == ["scene", "yeast"]


def test_compare_takes_published_whole_seconds_for_what_they_say(tmp_path: Path) -> None:
    """iSOUPT's flags time is recorded as 0 s: the speed-up read "0x" and set the minimum. A
    time under the 1-s resolution gives no speed-up; another gives the range it allows."""
    path = results_csv(tmp_path / "results.csv", [("mlhat", "flags", "ok", 194),
                                                  ("mlhat", "emotions", "ok", 593)])
    proc = bench("compare.py", path, "--learner", "mlhat", "--published", "iSOUPT")
    assert proc.returncode == 0, proc.stderr
    table = {line.split(" | ")[0].lstrip("| "): line for line in proc.stdout.splitlines()
             if line.startswith("| flags") or line.startswith("| emotions")}
    assert table["flags"].endswith("| 0.500 | 0.10 | <1 | n/a |")
    assert table["emotions"].endswith("| 0.500 | 0.10 | 3 | 5-8x |")  # 2.5 to 4 s over 0.5 s
    assert "0x" not in proc.stdout.split("\n{")[0]
    assert ("Smallest speed-up over the published run time: at least 5x (emotions: 5-8x). Not "
            "computed where the published time is recorded as 0 s, under its resolution of 1 "
            "s: flags.") in proc.stdout
    agg = json.loads(proc.stdout[proc.stdout.index("\n{") + 1:])
    assert agg["min_speedup"] == 5.0 and agg["min_speedup_dataset"] == "emotions"
    assert agg["speedup_not_computed"] == ["flags"]


def test_compare_nothing_comparable_fails(tmp_path: Path) -> None:
    path = results_csv(tmp_path / "results.csv", [("ihomer", "yeast", "partial", 500)])
    proc = bench("compare.py", path, "--learner", "ihomer")
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert "1 partial run left out" in proc.stdout


def test_a_run_that_dies_silently_says_how() -> None:
    """A run killed with nothing on stderr (the out-of-memory killer's SIGKILL, a JVM crash)
    is recorded with how it ended, not as ``error: ?``."""
    sys.path.insert(0, str(BENCH))
    from run import failure_reason

    assert failure_reason(-9, "") == "killed by SIGKILL (out of memory?), nothing on stderr"
    assert failure_reason(-6, "\n  \n") == "killed by SIGABRT, nothing on stderr"
    assert failure_reason(3, "") == "exit code 3, nothing on stderr"
    assert failure_reason(2, "warning\nihomer: error: no such file\n") == "no such file"
    died = subprocess.run([sys.executable, "-c", "import os, signal; "
                           "os.kill(os.getpid(), signal.SIGKILL)"], capture_output=True,
                          text=True)
    assert failure_reason(died.returncode, died.stderr).startswith("killed by SIGKILL")
