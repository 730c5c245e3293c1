"""Text rendering of an :class:`~ihomer.learners.mlhat.MLHAT` tree."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ihomer.learners.mlhat import kernels as K
from ihomer.learners.mlhat.state import (
    C_L,
    C_ROOT,
    LF_W,
    LI_ACTIVE,
    LI_LSN,
    MODEL_NAMES,
    ND_ALT,
    ND_FEAT,
    ND_LEAF,
    ND_LEFT,
    ND_RIGHT,
    NF_THR,
)

if TYPE_CHECKING:
    from ihomer.learners.mlhat.tree import MLHAT


def _majority_labels(tree: MLHAT, lf: int) -> list[int]:
    s = tree._state
    n = int(s.lf_i[lf, LI_LSN])
    if n == 0:
        return []
    best = int(np.argmax(s.lf_lscnt[lf, :n]))
    bits = s.lf_lsbits[lf, best]
    return [lab for lab in range(int(s.ctr[C_L])) if (int(bits[lab >> 6]) >> (lab & 63)) & 1]


def render_tree(tree: MLHAT, max_depth: int | None = None, max_labels: int = 5) -> str:
    """One line per node, children indented under their parent.

    A split reads ``feature <= threshold`` (binary features: ``feature absent`` /
    ``feature present``); a leaf reads its weight, its current model and its majority
    labelset; ``[alt]`` marks a node that is growing an alternate subtree.
    """
    s = tree._state
    fnames = tree.feature_vocab.names
    lnames = tree.label_vocab.names
    lines: list[str] = []

    def fname(f: int) -> str:
        return str(fnames[f]) if f < len(fnames) else f"f{f}"

    def walk(n: int, depth: int, prefix: str) -> None:
        pad = "    " * depth
        alt = " [alt]" if s.nd_i[n, ND_ALT] >= 0 else ""
        lf = int(s.nd_i[n, ND_LEAF])
        if lf >= 0:
            labs = _majority_labels(tree, lf)
            shown = ", ".join(str(lnames[lab]) if lab < len(lnames) else f"lab{lab}"
                              for lab in labs[:max_labels])
            more = f", +{len(labs) - max_labels}" if len(labs) > max_labels else ""
            state = "" if s.lf_i[lf, LI_ACTIVE] == 1 else " inactive"
            lines.append(f"{pad}{prefix}leaf w={s.lf_f[lf, LF_W]:.0f} "
                         f"model={MODEL_NAMES[K.leaf_choice(s, lf)]}{state} "
                         f"{{{shown}{more}}}{alt}")
            return
        lines.append(f"{pad}{prefix}split{alt}")
        if max_depth is not None and depth >= max_depth:
            lines.append(f"{pad}    ...")
            return
        f = int(s.nd_i[n, ND_FEAT])
        if s.g_bin[f]:
            left, right = f"{fname(f)} absent", f"{fname(f)} present"
        else:
            t = float(s.nd_f[n, NF_THR])
            left, right = f"{fname(f)} <= {t:.6g}", f"{fname(f)} > {t:.6g}"
        walk(int(s.nd_i[n, ND_LEFT]), depth + 1, f"if {left}: ")
        walk(int(s.nd_i[n, ND_RIGHT]), depth + 1, f"if {right}: ")

    walk(int(s.ctr[C_ROOT]), 0, "")
    return "\n".join(lines)
