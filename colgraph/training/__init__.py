"""Training: a run is assembled, then looped.

* :mod:`~colgraph.training.assembly`: config -> geometry -> data -> task -> optimizer ->
  schedule -> state restored from ``train.resume`` / ``train.init_from`` -> hooks
  (:func:`assemble` returns a :class:`Run`);
* :mod:`~colgraph.training.loop`: :func:`train`, the loop itself (forward, loss, backward,
  the non-finite guard, update, hooks; Ctrl-C saves at the batch boundary and raises
  :class:`Interrupted`);
* :mod:`~colgraph.training.hooks`: the step / epoch hook contract and the built-in hooks
  (logs, plasticity, sheet growth, progress, epoch callbacks, checkpoints, figures);
* :mod:`~colgraph.training.state`: the run state (epoch, step, batch, skipped, the epoch's
  sums so far, RNG);
* :mod:`~colgraph.training.guard`, :mod:`~colgraph.training.optim`,
  :mod:`~colgraph.training.sources`, :mod:`~colgraph.training.evaluation`,
  :mod:`~colgraph.training.logs`: the named calls the loop makes.

Checkpoints are written and read by :mod:`colgraph.checkpoint` and turned back into models
by :mod:`colgraph.restore` (``load_model``, ``build_model``): import them from there.
"""
from .assembly import Run, assemble
from .evaluation import evaluate
from .hooks import Hook
from .loop import Interrupted, train
from .optim import param_groups
from .state import RunState

__all__ = ["train", "Interrupted", "evaluate", "Run", "assemble", "Hook", "RunState", "param_groups"]
