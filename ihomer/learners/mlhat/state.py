"""The flat state of one multi-label Hoeffding adaptive tree.

A tree is a handful of object pools, each a struct of NumPy arrays indexed by an integer id, so
that the numba kernels in :mod:`~ihomer.learners.mlhat.kernels` can walk and update it without
touching Python objects:

* **nodes** (``nd_*``): every node of the main tree and of the alternate subtrees. A node is a
  leaf when ``nd_i[n, ND_LEAF] >= 0`` (the id of its leaf record); otherwise it routes an
  instance left when the value of feature ``ND_FEAT`` (0 when absent from the sparse row) is
  ``<= nd_f[n, NF_THR]``. ``ND_ALT`` is the root of the node's alternate subtree (-1 if none).
  Each node carries an ADWIN state row (``nd_adwin``) and the mean loss since its last reset
  (``NF_ERR``, ``NF_ERR2``, ``NF_ERRN``), the inputs of the drift and alternate-swap tests.
* **leaves** (``lf_*``): per-leaf label counts, the leaf models' accumulated losses
  (``lf_err``: majority labelset, naive Bayes, logistic regression at two step sizes), the
  logistic biases and each model's faded squared error per label (``lf_lv``, one
  ``[kind, label]`` plane per leaf), a small table of the most
  frequent labelsets (bitsets, space-saving counts) and the head of the leaf's linked list of
  statistics rows.
* **rows** (``rw_*``): one row per (leaf, feature) pair *that occurred at the leaf*, holding the
  feature's totals over its non-zero values (``rw_f``: count, sum, sum of squares, min, max) and,
  in ``rw_lv``, its sums per present label (``RV_LSUM``, ``RV_LSQ``) and the two logistic
  models' weights of that feature for every label (``RV_W``, ``RV_W2``). Zeros are never
  stored: a leaf's statistics for an absent value follow from the leaf's total weight. This is
  what keeps a sparse stream sparse: memory grows with the features actually seen at a leaf,
  never with the size of the feature space.
* **hash** (``ht_*``): an open-addressing table (linear probing, backward-shift deletion) from
  ``leaf << 32 | feature`` to row id.
* **global per-feature** arrays: whether every value seen so far was 0 or 1 (``g_bin``, such a
  feature is split and modelled with exact counts) and the largest absolute value (``g_scale``,
  used to scale inputs of the logistic models without breaking sparsity).
* **labels** (``lb_n``, shape ``(1, 1, labels)``): how many learned instances carried each
  label, over the whole tree's life (leaves come and go with splits and swaps); a label at 0
  was never learned as present and every leaf answers it with probability 0.
* ``ctr``: integer counters (free-list heads, usage, event counts) and ``rng``: the xorshift
  state of the Poisson sampler.

Scalar columns of a pool share one 2-D array per dtype (``nd_i``/``nd_f``, ``lf_i``/``lf_f``,
``rw_i``/``rw_f``, columns named by the constants below) and per-label columns one 3-D array
(``lf_lv``, ``rw_lv``): fewer arrays in the named tuple make every kernel that takes it
cheaper to compile. Pools grow by doubling from Python between kernel calls (``grow_*`` below);
free slots are kept on intrusive free lists (nodes through ``ND_LEFT``, leaves through
``LI_NODE``, rows through ``RI_NEXT``).
"""

from __future__ import annotations

from collections import namedtuple

import numpy as np

from ihomer.drift.adwin import ADWIN_STATE_LEN

# ----------------------------------------------------------------------------- counters
C_ROOT = 0
C_NFREE = 1  # head of the free node list
C_NUSED = 2
C_LFREE = 3  # head of the free leaf list
C_LUSED = 4
C_RFREE = 5  # head of the free row list
C_RUSED = 6
C_HUSED = 7
C_L = 8  # labels in use
C_ALT_NEW = 9
C_ALT_SWAP = 10
C_ALT_PRUNE = 11
C_SPLITS = 12
C_SEEN = 13  # instances learned
C_RLIMIT = 14  # most rows allowed (memory bound)
C_NLIMIT = 15  # most nodes allowed
C_ALT_LIVE = 16
C_DEACT = 17  # leaf deactivations
C_INACTIVE = 18  # leaves currently inactive
C_NEED_ROWS = 19  # rows the kernel asked for when it stopped
C_DEPTH = 20  # deepest node ever created (bounds the nodes one instance can add)
C_EMPTY = 21  # instances learned whose label set was empty
# A log of the alternates started (kind 1) and swapped in (kind 2) since the caller last
# emptied it: C_LOG_N entries (kind, C_SEEN when it happened) from C_LOG on, at most
# LOG_SLOTS (later ones are only counted): where each happened, which the counters alone cannot
# tell once a batch spans many instances
C_LOG_N = 22
C_LOG = 23
LOG_SLOTS = 16
LOG_STARTED = 1
LOG_SWAPPED = 2
N_COUNTERS = C_LOG + 2 * LOG_SLOTS

# ----------------------------------------------------------------------------- parameters
P_GRACE = 0
P_DELTA = 1
P_TAU = 2
P_NTHR = 3
P_LR = 4
P_ALPHA = 5
P_ADWIN_DELTA = 6
P_SWITCH = 7
P_DWIN = 8
P_MAXDEPTH = 9
P_POISSON = 10
P_MEM_PERIOD = 11
P_LOSS = 12
P_LR2 = 13
P_NONEMPTY = 14  # predict the top label rather than an empty set (see kernels.emit_labelset)
P_THRESH = 15  # per-label decision threshold
P_FADE = 16  # fading factor of the leaf models' prequential losses
P_MIX = 17  # rate of the per-label mixture of the leaf models (< 0: each leaf's best model)
N_PARAMS = 18

# leaf models
M_MAJ = 0
M_NB = 1
M_LR = 2  # logistic regression, small step
M_LR2 = 3  # logistic regression, large step
N_MODELS = 4
MODEL_NAMES = ("majority", "naive_bayes", "logistic", "logistic_fast")

LABELSET_SLOTS = 16  # labelsets tracked per leaf (space-saving)

# ----------------------------------------------------------------------------- pool columns
ND_FEAT, ND_LEFT, ND_RIGHT, ND_LEAF, ND_ALT, ND_DEPTH, ND_ISALT = range(7)  # nd_i (int32)
NF_THR, NF_ERR, NF_ERR2, NF_ERRN = range(4)  # nd_f (float64)
LI_NODE, LI_ACTIVE, LI_HEAD, LI_NROWS, LI_LSN = range(5)  # lf_i (int32)
LF_W, LF_SW, LF_WLAST, LF_LSDIST = range(4)  # lf_f (float64)
LV_LAB, LV_SLAB, LV_BIAS, LV_BIAS2 = range(4)  # lf_lv[leaf, kind, label]
LV_ERR = 4  # lf_lv[leaf, LV_ERR + model, label]: the model's faded squared error on the label
N_LV = LV_ERR + N_MODELS
RI_FEAT, RI_LEAF, RI_NEXT = range(3)  # rw_i (int32)
RF_CNT, RF_SUM, RF_SQ, RF_MIN, RF_MAX = range(5)  # rw_f (float64)
RV_LSUM, RV_LSQ, RV_W, RV_W2 = range(4)  # rw_lv[row, kind, label]

TreeState = namedtuple(
    "TreeState",
    [
        "nd_i", "nd_f", "nd_adwin",
        "lf_i", "lf_f", "lf_err", "lf_lv", "lf_lsbits", "lf_lscnt",
        "rw_i", "rw_f", "rw_lv", "lb_n",
        "ht_key", "ht_val", "g_bin", "g_scale", "ctr", "rng",
    ],
)

NODE_FIELDS = ("nd_i", "nd_f", "nd_adwin")
LEAF_FIELDS = ("lf_i", "lf_f", "lf_err", "lf_lv", "lf_lsbits", "lf_lscnt")
ROW_FIELDS = ("rw_i", "rw_f", "rw_lv")
LABEL_FIELDS = ("lf_lv", "rw_lv", "lb_n")  # label axis 2


def words_for(label_cap: int) -> int:
    """64-bit words of a labelset bitset over ``label_cap`` labels."""
    return max(1, (label_cap + 63) // 64)


HASH_SLOT_BYTES = 8 + 4  # ht_key (int64) and ht_val (int32)


def pool_row_bytes(label_cap: int) -> int:
    """Bytes one statistics row takes in the row pool (``rw_i``, ``rw_f``, ``rw_lv``)."""
    return 4 * 8 * label_cap + 5 * 8 + 3 * 4


def row_bytes(label_cap: int) -> int:
    """Bytes one statistics row costs, its two hash slots included."""
    return pool_row_bytes(label_cap) + 2 * HASH_SLOT_BYTES


def hash_slots(row_cap: int) -> int:
    """Slots of the hash table for a row pool of ``row_cap``: a power of two, at least twice."""
    hcap = 16
    while hcap < 2 * max(row_cap, 1):
        hcap *= 2
    return hcap


def rows_within(nbytes: int, label_cap: int) -> int:
    """Most rows whose pool and hash table (rounded up to a power of two) fit in ``nbytes``."""
    if nbytes <= 0:
        return 0
    rows = nbytes // row_bytes(label_cap)
    return max(0, min(rows, (nbytes - HASH_SLOT_BYTES * hash_slots(rows))
                      // pool_row_bytes(label_cap)))


def empty_state(node_cap: int, row_cap: int, label_cap: int, feature_cap: int,
                seed: int) -> TreeState:
    """A state with every slot free (no root yet)."""
    ctr = np.zeros(N_COUNTERS, dtype=np.int64)
    ctr[C_NFREE] = ctr[C_LFREE] = ctr[C_RFREE] = -1
    ctr[C_ROOT] = -1
    s = TreeState(
        nd_i=np.zeros((0, 7), np.int32), nd_f=np.zeros((0, 4)),
        nd_adwin=np.zeros((0, ADWIN_STATE_LEN)),
        lf_i=np.zeros((0, 5), np.int32), lf_f=np.zeros((0, 4)), lf_err=np.zeros((0, N_MODELS)),
        lf_lv=np.zeros((0, N_LV, label_cap)),
        lf_lsbits=np.zeros((0, LABELSET_SLOTS, words_for(label_cap)), np.uint64),
        lf_lscnt=np.zeros((0, LABELSET_SLOTS)),
        rw_i=np.zeros((0, 3), np.int32), rw_f=np.zeros((0, 5)),
        rw_lv=np.zeros((0, 4, label_cap)), lb_n=np.zeros((1, 1, label_cap)),
        ht_key=np.full(16, -1, np.int64), ht_val=np.zeros(16, np.int32),
        g_bin=np.ones(feature_cap, np.uint8), g_scale=np.zeros(feature_cap),
        ctr=ctr, rng=np.array([_seed_word(seed)], dtype=np.uint64),
    )
    s = grow_nodes(s, node_cap)
    return grow_rows(s, row_cap)


def _seed_word(seed: int) -> int:
    """A non-zero 64-bit xorshift state derived from ``seed`` (splitmix64 finaliser)."""
    z = (int(seed) + 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    z ^= z >> 31
    return z or 1


def _extend(a: np.ndarray, new_len: int, fill: float | int = 0) -> np.ndarray:
    """A copy of ``a`` with ``new_len`` entries on axis 0, the new ones ``fill``."""
    out = np.full((new_len, *a.shape[1:]), fill, dtype=a.dtype)
    out[: len(a)] = a
    return out


def _resized(a: np.ndarray, new_len: int, fill: float | int = 0) -> np.ndarray:
    """``a`` grown (new entries ``fill``) or cut to ``new_len`` entries on axis 0, in place
    where NumPy allows it: the allocator can then move a large pool without holding the old
    and the new copy at once (the row pool is most of a tree); a view is copied instead."""
    old = len(a)
    try:
        a.resize((new_len, *a.shape[1:]), refcheck=False)
    except ValueError:  # a view, or not contiguous
        return _extend(a[:new_len], new_len, fill)
    a[old:] = fill
    return a


def grow_nodes(s: TreeState, new_cap: int) -> TreeState:
    """Node and leaf pools with ``new_cap`` slots (same capacity: a leaf belongs to a node).

    Free slots read -1 in every integer column (``ND_DEPTH`` -1 marks a free node,
    ``LI_ACTIVE`` -1 a free leaf).
    """
    old = len(s.nd_i)
    if new_cap <= old:
        return s
    upd = {f: _extend(getattr(s, f), new_cap) for f in NODE_FIELDS + LEAF_FIELDS}
    upd["nd_i"][old:] = -1
    upd["lf_i"][old:] = -1
    new = np.arange(old, new_cap, dtype=np.int32)
    # thread the new slots onto the free lists, in increasing id order
    upd["nd_i"][new[:-1], ND_LEFT] = new[1:]
    upd["nd_i"][new[-1], ND_LEFT] = s.ctr[C_NFREE]
    upd["lf_i"][new[:-1], LI_NODE] = new[1:]
    upd["lf_i"][new[-1], LI_NODE] = s.ctr[C_LFREE]
    s.ctr[C_NFREE] = old
    s.ctr[C_LFREE] = old
    return s._replace(**upd)


def grow_rows(s: TreeState, new_cap: int) -> TreeState:
    """Row pool with ``new_cap`` slots and a hash table of at least twice that many."""
    old = len(s.rw_i)
    if new_cap <= old:
        return s
    upd = {f: _resized(getattr(s, f), new_cap) for f in ROW_FIELDS}
    upd["rw_i"][old:] = -1  # RI_LEAF -1 marks a free row
    new = np.arange(old, new_cap, dtype=np.int32)
    upd["rw_i"][new[:-1], RI_NEXT] = new[1:]
    upd["rw_i"][new[-1], RI_NEXT] = s.ctr[C_RFREE]
    s.ctr[C_RFREE] = old
    s = s._replace(**upd)
    hcap = hash_slots(new_cap)
    if hcap > len(s.ht_key):
        s = rehash(s, hcap)
    return s


def shrink_rows(s: TreeState, new_cap: int) -> TreeState:
    """Row pool cut to ``new_cap`` slots, after :func:`~ihomer.learners.mlhat.kernels.compact_rows`
    moved the ``C_RUSED`` rows in use to the front (so ``new_cap >= C_RUSED``).

    The arrays are shrunk in place where NumPy allows it (see ``_resized``); the free list
    and the hash table are rebuilt.
    """
    used = int(s.ctr[C_RUSED])
    if new_cap < used:
        raise ValueError(f"cannot keep {used} rows in {new_cap} slots")
    s = s._replace(**{f: _resized(getattr(s, f), new_cap) for f in ROW_FIELDS})
    s.rw_i[used:, :] = -1
    free = np.arange(used, new_cap, dtype=np.int32)
    if len(free):
        s.rw_i[free[:-1], RI_NEXT] = free[1:]
    s.ctr[C_RFREE] = used if used < new_cap else -1
    return rehash(s, hash_slots(new_cap))


def rehash(s: TreeState, hcap: int) -> TreeState:
    """A fresh hash table of ``hcap`` slots holding every live row."""
    from ihomer.learners.mlhat.kernels import ht_fill

    s = s._replace(ht_key=np.full(hcap, -1, np.int64), ht_val=np.zeros(hcap, np.int32))
    s.ctr[C_HUSED] = 0
    ht_fill(s)
    return s


def grow_labels(s: TreeState, new_cap: int) -> TreeState:
    """Room for ``new_cap`` labels in every per-label array; new labels start with zeros."""
    old = s.lf_lv.shape[2]
    if new_cap <= old:
        return s
    from ihomer.learners.mlhat.kernels import widen_in_place

    upd = {}
    for f in LABEL_FIELDS:
        a = getattr(s, f)
        rows, kinds = a.shape[:2]
        try:  # the row pool is most of a tree: widen it where it lies, never twice in memory
            a.resize((rows * kinds * new_cap,), refcheck=False)
        except ValueError:  # a view: copy
            b = np.zeros((rows, kinds, new_cap), dtype=a.dtype)
            b[:, :, :old] = a
            upd[f] = b
        else:
            widen_in_place(a, rows, kinds, old, new_cap)
            a.shape = (rows, kinds, new_cap)  # the same array, still owning its buffer
            upd[f] = a
    w_old, w_new = s.lf_lsbits.shape[2], words_for(new_cap)
    if w_new > w_old:
        bits = np.zeros((s.lf_lsbits.shape[0], LABELSET_SLOTS, w_new), np.uint64)
        bits[:, :, :w_old] = s.lf_lsbits
        upd["lf_lsbits"] = bits
    return s._replace(**upd)


def grow_features(s: TreeState, new_cap: int) -> TreeState:
    """Room for ``new_cap`` features in the global per-feature arrays."""
    old = len(s.g_bin)
    if new_cap <= old:
        return s
    return s._replace(g_bin=_extend(s.g_bin, new_cap, 1), g_scale=_extend(s.g_scale, new_cap))


def state_bytes(s: TreeState) -> int:
    """Bytes held by every array of the state."""
    return int(sum(a.nbytes for a in s))
