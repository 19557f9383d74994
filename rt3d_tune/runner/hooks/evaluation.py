"""EvalHook: run the model over the val data, evaluate, log the metrics, keep the best checkpoint.

mmcv 1.7 semantics. Evaluation runs after a train epoch (``by_epoch``) or after a
train iteration, every ``interval``; with ``start``, first once ``(cur + 1) >= start``
and then every ``interval`` after it (and once before training when the run starts at
or past ``start``). The metrics of ``dataset.evaluate(results, **eval_kwargs)`` go to
the log buffer (logged with mode 'val'), to ``runner.eval_results`` and
``runner.eval_round`` (read by later hooks of the same stage, like the search
layer's report hook).

Data-parallel (mmcv's DistEvalHook): every rank predicts its shard of the val data,
the predictions are gathered in dataset order without the sampler's padding (each
sample evaluated exactly once), rank 0 runs ``dataset.evaluate`` and every rank gets
its metrics, so every rank decides alike (best checkpoint, probes, reports).

Better than mmcv: a best score of 0 still counts (mmcv skips a falsy score), and an
evaluation before training is logged (mmcv's loggers clear it unlogged).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from rt3d_tune.errors import ConfigError
from rt3d_tune.registry import HOOKS
from rt3d_tune.runner.base import to_device
from rt3d_tune.runner.dist import broadcast_object, gather_in_order, get_dist_info, unwrap_model
from rt3d_tune.runner.hook import Hook
from rt3d_tune.runner.hooks.logger.base import LoggerHook, to_plain

__all__ = ["EvalHook", "build_eval_hook", "infer_rule", "single_device_test"]

DEFAULT_GREATER_KEYS = (
    "acc",
    "top",
    "AR@",
    "auc",
    "precision",
    "mAP",
    "mDice",
    "mIoU",
    "mAcc",
    "aAcc",
)
DEFAULT_LESS_KEYS = ("loss",)
RULES: dict[str, Callable[[float, float], bool]] = {
    "greater": lambda x, y: x > y,
    "less": lambda x, y: x < y,
}
_INIT_VALUE = {"greater": -math.inf, "less": math.inf}


def infer_rule(key: str, greater_keys: Sequence[str], less_keys: Sequence[str]) -> str:
    """'greater' or 'less' for a metric name, as mmcv infers it.

    An exact (case-insensitive) match with a greater key, then with a less key, then a
    substring match in the same order.

    Raises:
        ConfigError: no key matches.
    """
    name = key.lower()
    greater = [k.lower() for k in greater_keys]
    less = [k.lower() for k in less_keys]
    if name in greater:
        return "greater"
    if name in less:
        return "less"
    if any(k in name for k in greater):
        return "greater"
    if any(k in name for k in less):
        return "less"
    raise ConfigError(
        f"cannot tell whether a larger or a smaller {key!r} is better",
        key_path="save_best",
        given=key,
        hint="set evaluation.rule='greater' or 'less' (or add the key to greater_keys/less_keys)",
    )


def single_device_test(model: torch.nn.Module, data_loader: Any, device: Any) -> list[Any]:
    """Predictions of ``model`` for every sample of ``data_loader``, batch after batch.

    Each batch is moved to ``device``; the model's ``forward_test(batch)`` (else
    ``model(batch, return_loss=False)``) must return a list of per-sample predictions.
    The model runs in eval mode without gradients and gets its previous mode back.

    Raises:
        TypeError: the model returns something other than a list or tuple.
    """
    was_training = model.training
    model.eval()
    results: list[Any] = []
    try:
        with torch.no_grad():
            for batch in data_loader:
                batch = to_device(batch, device)
                if callable(getattr(model, "forward_test", None)):
                    predictions = model.forward_test(batch)
                else:
                    predictions = model(batch, return_loss=False)
                if not isinstance(predictions, (list, tuple)):
                    raise TypeError(
                        f"{type(model).__name__}.forward_test must return a list of per-sample "
                        f"predictions, got {type(predictions).__name__}"
                    )
                results.extend(predictions)
    finally:
        model.train(was_training)
    return results


def _check_positive_int(value: Any, key: str, allow_zero: bool = False) -> None:
    low = 0 if allow_zero else 1
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(
            f"EvalHook {key} must be an int >= {low}",
            key_path=key,
            expected=f"an int >= {low} (epochs, or iterations when by_epoch=False)",
            given=value,
        )


@HOOKS.register_module()
class EvalHook(Hook):
    """Evaluate on ``dataloader`` periodically; optionally keep the best checkpoint.

    Args:
        dataloader: the val data loader (its ``dataset`` has ``evaluate``).
        interval: evaluate every ``interval`` epochs (``by_epoch``) or iterations.
        start: first epoch/iteration (1-based count of finished ones) to evaluate at;
            None means at every ``interval``.
        by_epoch: count epochs (else iterations).
        save_best: a metric name, 'auto' (the first metric returned), or None. The best
            checkpoint is ``best_<key>_epoch_<n>.pth`` (``iter_<n>``) in ``work_dir``;
            the previous best file is deleted.
        rule: 'greater' or 'less'; inferred from the key when None.
        greater_keys: extra substrings meaning larger is better.
        less_keys: extra substrings meaning smaller is better.
        test_fn: ``test_fn(model, dataloader) -> list`` of per-sample predictions;
            default :func:`single_device_test` on the runner's device.
        **eval_kwargs: passed to ``dataset.evaluate`` (``metric='bbox'``, ...).

    Raises:
        ConfigError: a bad interval, start, by_epoch, save_best or rule, or a rule that
            cannot be inferred from ``save_best``.
    """

    def __init__(
        self,
        dataloader: Any,
        interval: int = 1,
        start: int | None = None,
        by_epoch: bool = True,
        save_best: str | None = None,
        rule: str | None = None,
        greater_keys: str | Sequence[str] | None = None,
        less_keys: str | Sequence[str] | None = None,
        test_fn: Callable[[torch.nn.Module, Any], list[Any]] | None = None,
        **eval_kwargs: Any,
    ) -> None:
        if not hasattr(dataloader, "dataset") or not callable(
            getattr(dataloader.dataset, "evaluate", None)
        ):
            raise ConfigError(
                "the evaluation data loader's dataset has no evaluate()",
                key_path="data.val.type",
                expected="a dataset with evaluate(results, **kwargs) -> dict[str, float]",
                given=type(getattr(dataloader, "dataset", dataloader)).__name__,
            )
        _check_positive_int(interval, "interval")
        if start is not None:
            _check_positive_int(start, "start", allow_zero=True)
        if not isinstance(by_epoch, bool):
            raise ConfigError(
                "EvalHook by_epoch must be a bool", key_path="by_epoch", given=by_epoch
            )
        if save_best is not None and not isinstance(save_best, str):
            raise ConfigError(
                "save_best must be a metric name, 'auto' or None",
                key_path="save_best",
                given=save_best,
            )
        if rule is not None and rule not in RULES:
            raise ConfigError(
                "unknown comparison rule",
                key_path="rule",
                expected="'greater', 'less' or None",
                given=rule,
            )
        self.dataloader = dataloader
        self.interval = interval
        self.start = start
        self.by_epoch = by_epoch
        self.save_best = save_best
        self.eval_kwargs = eval_kwargs
        self.test_fn = test_fn
        self.greater_keys = DEFAULT_GREATER_KEYS + tuple(
            [greater_keys] if isinstance(greater_keys, str) else greater_keys or ()
        )
        self.less_keys = DEFAULT_LESS_KEYS + tuple(
            [less_keys] if isinstance(less_keys, str) else less_keys or ()
        )
        self.rule = rule
        self.key_indicator = save_best
        if save_best not in (None, "auto") and rule is None:
            self.rule = infer_rule(save_best, self.greater_keys, self.less_keys)
        self.best_ckpt_path: str | None = None
        self._initial = True

    # when ---------------------------------------------------------------------------
    def _should_evaluate(self, runner: Any) -> bool:
        current = runner.epoch if self.by_epoch else runner.iter
        if self.start is None:
            return (current + 1) % self.interval == 0
        if current + 1 < self.start:
            return False
        return (current + 1 - self.start) % self.interval == 0

    def before_run(self, runner: Any) -> None:
        if not hasattr(runner, "eval_round"):
            runner.eval_round = 0
        if not hasattr(runner, "eval_results"):
            runner.eval_results = {}
        if self.save_best is not None:
            runner.meta.setdefault("hook_msgs", {})
            self.best_ckpt_path = runner.meta["hook_msgs"].get("best_ckpt")

    def before_train_epoch(self, runner: Any) -> None:
        if self.by_epoch and self._initial:
            self._initial = False
            if self.start is not None and runner.epoch >= self.start:
                self._evaluate_before_training(runner)

    def before_train_iter(self, runner: Any) -> None:
        if not self.by_epoch and self._initial:
            self._initial = False
            if self.start is not None and runner.iter >= self.start:
                self._evaluate_before_training(runner)

    def after_train_epoch(self, runner: Any) -> None:
        if self.by_epoch and self._should_evaluate(runner):
            self._do_evaluate(runner)

    def after_train_iter(self, runner: Any) -> None:
        if not self.by_epoch and self._should_evaluate(runner):
            # The loggers run after this hook: let them write this iteration's training
            # line first, so that the buffer holds only the metrics afterwards.
            for hook in _logger_hooks(runner):
                hook.after_train_iter(runner)
            self._do_evaluate(runner)

    def _evaluate_before_training(self, runner: Any) -> None:
        self._do_evaluate(runner)
        # The loggers clear the buffer before the epoch starts: log the metrics now.
        for hook in _logger_hooks(runner):
            hook.after_train_epoch(runner)

    # what ---------------------------------------------------------------------------
    def _do_evaluate(self, runner: Any) -> None:
        metrics = self.evaluate(runner, self._predict(runner))
        if self.save_best is not None:
            self._save_best(runner, metrics)

    def _predict(self, runner: Any) -> list[Any]:
        """Every val sample's prediction, in dataset order (gathered from every rank)."""
        model = unwrap_model(runner.model)  # inference needs no gradient sync
        if self.test_fn is None:
            part = single_device_test(model, self.dataloader, runner.device)
        else:
            part = self.test_fn(model, self.dataloader)
        if get_dist_info()[1] == 1:
            return part
        return gather_in_order(to_device(part, "cpu"), len(self.dataloader.dataset))

    def _dataset_metrics(self, results: list[Any]) -> dict[str, Any]:
        """``dataset.evaluate`` on rank 0; its metrics (or its error) on every rank."""
        if get_dist_info()[1] == 1:
            return self._evaluate_dataset(results)
        error: Exception | None = None
        metrics: dict[str, Any] | None = None
        if get_dist_info()[0] == 0:
            try:
                metrics = self._evaluate_dataset(results)
            except Exception as err:  # the other ranks must not wait for it forever
                error = err
        shared = broadcast_object(metrics if error is None else f"{type(error).__name__}: {error}")
        if error is not None:
            raise error
        if isinstance(shared, str):
            raise RuntimeError(f"the evaluation failed on rank 0: {shared}")
        return shared

    def _evaluate_dataset(self, results: list[Any]) -> dict[str, Any]:
        raw = self.dataloader.dataset.evaluate(results, **self.eval_kwargs)
        if not isinstance(raw, Mapping):
            raise TypeError(
                f"{type(self.dataloader.dataset).__name__}.evaluate must return a dict of "
                f"metrics, got {type(raw).__name__}"
            )
        return {str(name): to_plain(value) for name, value in raw.items()}

    def compute_metrics(self, runner: Any) -> dict[str, Any]:
        """Evaluate the model as it is now and return the metrics, recording nothing.

        The same predictions and ``dataset.evaluate`` as a scheduled evaluation, but the
        log buffer, ``runner.eval_results``, ``runner.eval_round`` and the best
        checkpoint are left alone: what a rung probe (``rt3d_tune.backends.probe``)
        evaluates with.

        Raises:
            TypeError: ``evaluate`` returned something other than a mapping.
        """
        return self._dataset_metrics(self._predict(runner))

    def evaluate(self, runner: Any, results: list[Any]) -> dict[str, Any]:
        """Call ``dataset.evaluate``; put the metrics in the log buffer and on the runner.

        Raises:
            TypeError: ``evaluate`` returned something other than a mapping.
        """
        metrics = self._dataset_metrics(results)
        runner.log_buffer.output["eval_iter_num"] = len(self.dataloader)
        runner.log_buffer.output.update(metrics)
        runner.log_buffer.ready = True
        runner.eval_results = {
            name: float(value)
            for name, value in metrics.items()
            if isinstance(value, (int, float)) and not isinstance(value, bool)
        }
        runner.eval_round = getattr(runner, "eval_round", 0) + 1
        return metrics

    def _save_best(self, runner: Any, metrics: Mapping[str, Any]) -> None:
        if not metrics:
            runner.logger.warning(
                "evaluation returned no metrics; the best checkpoint is not updated"
            )
            return
        if self.key_indicator == "auto":
            self.key_indicator = next(iter(metrics))
            if self.rule is None:
                self.rule = infer_rule(self.key_indicator, self.greater_keys, self.less_keys)
        key = str(self.key_indicator)
        if key not in metrics:
            raise ConfigError(
                "save_best names a metric the evaluation does not return",
                key_path="save_best",
                expected=f"one of {', '.join(map(repr, metrics))}",
                given=key,
            )
        score = float(metrics[key])
        assert self.rule is not None, "the rule is set with the key"
        hook_msgs = runner.meta.setdefault("hook_msgs", {})
        best = float(hook_msgs.get("best_score", _INIT_VALUE[self.rule]))
        if not RULES[self.rule](score, best):
            return
        hook_msgs["best_score"] = score
        if self.best_ckpt_path and Path(self.best_ckpt_path).is_file():
            Path(self.best_ckpt_path).unlink()
            runner.logger.info("The previous best checkpoint %s was removed", self.best_ckpt_path)
        unit, count = ("epoch", runner.epoch + 1) if self.by_epoch else ("iter", runner.iter + 1)
        # metric names like 'KITTI/Car_3D' must not turn into folders
        name = f"best_{key.replace('/', '_')}_{unit}_{count}.pth"
        self.best_ckpt_path = str(Path(runner.work_dir) / name)
        hook_msgs["best_ckpt"] = self.best_ckpt_path
        # the file name is fixed here: a template without '{}' formats to itself
        runner.save_checkpoint(runner.work_dir, filename_tmpl=name, create_symlink=False)
        runner.logger.info("Now best checkpoint is saved as %s.", name)
        runner.logger.info("Best %s is %.4f at %d %s.", key, score, count, unit)


def _logger_hooks(runner: Any) -> list[LoggerHook]:
    if getattr(runner, "rank", 0):  # loggers write: rank 0 only
        return []
    return [hook for hook in runner.hooks if isinstance(hook, LoggerHook)]


def build_eval_hook(
    evaluation_cfg: Mapping[str, Any] | None,
    dataloader: Any,
    by_epoch_default: bool,
    key_path: str = "evaluation",
) -> Hook:
    """Build the hook of an ``evaluation = dict(...)`` config.

    ``type`` defaults to 'EvalHook'; ``by_epoch`` defaults to the runner's
    (``by_epoch_default``); every other key is passed on (unknown ones reach
    ``dataset.evaluate``). The data loader is not copied.

    Raises:
        ConfigError: a bad value, with ``key_path`` in front of the key.
    """
    cfg = dict(evaluation_cfg or {})
    cfg.setdefault("type", "EvalHook")
    cfg.setdefault("by_epoch", by_epoch_default)
    try:
        return HOOKS.build(cfg, default_args={"dataloader": dataloader}, key_path=key_path)
    except ConfigError as err:
        if err.key_path and err.key_path.startswith((key_path, "data.")):
            raise
        raise err.with_context(key_path=key_path) from err
