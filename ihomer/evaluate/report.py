"""Files and tables made from a prequential run: CSV series, events, plots, a terminal table."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ihomer.evaluate.prequential import Result
    from ihomer.learners.base import Predictions
    from ihomer.stream.base import Batch

PLOTTED = ("micro_f1", "example_f1", "subset_accuracy", "hamming_loss")


#: One (colour, line style) per event kind on every plot. The curves take the first colours
#: of the cycle (blue, orange); the kinds differ in both colour and style, since thin vertical
#: lines of two warm colours (drift was brown, restructure red) cannot be told apart.
EVENT_STYLES: dict[str, tuple[str, Any]] = {
    "restructure": ("tab:red", "-"),
    "drift": ("black", ":"),
    "handover": ("tab:purple", "-."),
    "alternate_swap": ("tab:green", (0, (6, 2, 1, 2, 1, 2))),
}

def write_curve_csv(curve: list[dict[str, float]], path: Path) -> None:
    with path.open("w", newline="") as f:
        if not curve:
            return
        w = csv.DictWriter(f, fieldnames=list(curve[0]))
        w.writeheader()
        w.writerows(curve)


def write_events_csv(events: list[dict[str, Any]], path: Path) -> None:
    fields = ["instance", "kind", "detail"]
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        for e in events:
            w.writerow({k: e.get(k, "") for k in fields})


class AnswerWriter:
    """Writes each instance's truth and answer as one JSON line, while the replay runs:
    ``{"instance": i, "id": event id or null, "true": [labels], "predicted": [labels],
    "scores": [scores of the predicted labels] or null}``, labels by name. Pass
    :meth:`write` as ``prequential(..., on_answers=...)``; rows reach the file as the parts
    are scored, so a run stopped early keeps those of the instances its metrics cover."""

    def __init__(self, path: Path, label_names: Callable[[], list[Any]]) -> None:
        self.path = path
        self._names = label_names
        self._file = path.open("w", encoding="utf-8")

    def write(self, first: int, part: Batch, pred: Predictions) -> None:
        names = self._names()
        lines = []
        for i in range(len(part)):
            a, b = part.label_indptr[i], part.label_indptr[i + 1]
            c, d = pred.indptr[i], pred.indptr[i + 1]
            lines.append(json.dumps({
                "instance": first + i,
                "id": None if part.event_ids is None else part.event_ids[i],
                "true": [names[j] for j in part.label_ids[a:b].tolist()],
                "predicted": [names[j] for j in pred.label_ids[c:d].tolist()],
                "scores": None if pred.scores is None else
                [round(float(v), 6) for v in pred.scores[c:d]],
            }))
        self._file.write("\n".join(lines) + "\n" if lines else "")

    def close(self) -> None:
        self._file.close()


def write_plot(result: Result, path: Path) -> Path:
    """Rolling (solid) and cumulative (dashed) metrics over the stream, events as lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curve = result.curve
    x = [row["instance"] for row in curve]
    fig, axes = plt.subplots(2, 2, figsize=(11, 7), sharex=True)
    kinds = sorted({str(e.get("kind")) for e in result.events},
                   key=lambda k: (k not in EVENT_STYLES, k))
    spare = iter([("tab:olive", "--"), ("tab:cyan", "--"), ("tab:grey", "-"),
                  ("tab:pink", "-")] * 10)
    styles = {k: EVENT_STYLES.get(k) or next(spare) for k in kinds}
    for ax, key in zip(axes.ravel(), PLOTTED, strict=True):
        window = result.summary.get("window")
        ax.plot(x, [row[f"rolling_{key}"] for row in curve], label=f"rolling ({window})")
        ax.plot(x, [row[key] for row in curve], "--", label="cumulative")
        for kind in kinds:
            at = [e["instance"] for e in result.events if str(e.get("kind")) == kind]
            for i, inst in enumerate(at):
                ax.axvline(inst, color=styles[kind][0], linestyle=styles[kind][1], alpha=0.8,
                           lw=1.1, label=kind if i == 0 else None)
        ax.set_title(key.replace("_", " "))
        ax.grid(alpha=0.3)
    axes[1, 0].set_xlabel("instances")
    axes[1, 1].set_xlabel("instances")
    axes[0, 0].legend(fontsize=8)
    s = result.summary
    fig.suptitle(f"{s.get('learner')} on {Path(str(s.get('source'))).name}: "
                 f"{s.get('instances')} instances, {s.get('instances_per_s', 0):.0f} inst/s")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def format_table(rows: Iterable[dict[str, Any]], columns: list[str]) -> str:
    """A plain aligned text table (floats with 4 decimals)."""
    rows = list(rows)

    def cell(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.4f}"
        return str(v)

    body = [[cell(r.get(c, "")) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(b[i]) for b in body]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.rjust(w) if i else v.ljust(w) for i, (v, w) in
                        enumerate(zip(b, widths, strict=True))) for b in body]
    return "\n".join(lines)
