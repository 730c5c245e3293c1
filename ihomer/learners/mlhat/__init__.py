"""Multi-label Hoeffding adaptive tree (MLHAT) on flat arrays and numba kernels.

* :mod:`~ihomer.learners.mlhat.state`: the struct-of-arrays state and its pools;
* :mod:`~ihomer.learners.mlhat.kernels`: the jitted kernels (routing, leaf models, split
  search, drift monitoring, the prequential loop);
* :mod:`~ihomer.learners.mlhat.tree`: the :class:`MLHAT` learner;
* :mod:`~ihomer.learners.mlhat.inspect`: text rendering.
"""

from ihomer.learners.mlhat.tree import MLHAT

__all__ = ["MLHAT"]
