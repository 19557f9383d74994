"""TextLoggerHook: the ``<timestamp>.log.json`` file and the readable text log.

The JSON log has one object a line: first the run meta (``runner.meta`` as plain JSON),
then one line per logged interval with ``mode, epoch, iter, lr, momentum (when the
optimizer has one), memory (CUDA only), time, data_time, <losses>, grad_norm`` for
training and the eval metrics with ``mode: 'val'``. Values are averaged over the
interval and kept at full float precision (mmcv rounds them to 5 decimals).

The readable log goes through ``runner.logger`` in mmcv's format
(``Epoch [1][10/50]\\tlr: 1.000e-02, momentum: 9.000e-01, eta: 0:00:12, time: 0.100,
...``; mmcv does not show the momentum). When that
logger writes to no file, this hook adds ``work_dir/<timestamp>.log`` for the run.
"""

from __future__ import annotations

import datetime
import json
import logging
import shutil
from pathlib import Path
from typing import Any

import torch

from rt3d_tune.registry import HOOKS
from rt3d_tune.runner.hooks.logger.base import LoggerHook, has_momentum, to_plain

__all__ = ["TextLoggerHook"]

_IN_HEADER = ("mode", "epoch", "iter", "lr", "momentum", "time", "data_time", "memory")
_FORMAT = "%(asctime)s - %(name)s - %(levelname)s - %(message)s"


def _first_of_each(values: Any) -> Any:
    """lr/momentum of the first param group: a float, or name -> float for dict optimizers."""
    if isinstance(values, dict):
        return {name: float(group_values[0]) for name, group_values in values.items()}
    return float(values[0])


def _format_rate(name: str, value: Any) -> str:
    if isinstance(value, dict):
        return " ".join(f"{name}_{key}: {val:.3e}" for key, val in value.items())
    return f"{name}: {value:.3e}"


def _on_cuda(runner: Any) -> bool:
    device = getattr(runner, "device", None)
    return device is not None and torch.device(device).type == "cuda" and torch.cuda.is_available()


def _has_file_handler(logger: logging.Logger) -> bool:
    current: logging.Logger | None = logger
    while current is not None:
        if any(isinstance(h, logging.FileHandler) for h in current.handlers):
            return True
        current = current.parent if current.propagate else None
    return False


@HOOKS.register_module()
class TextLoggerHook(LoggerHook):
    """Log to ``work_dir/<timestamp>.log.json`` and to ``runner.logger``.

    Args:
        interval, ignore_last, reset_flag, by_epoch: as for :class:`LoggerHook`.
        interval_exp_name: print ``Exp name: ...`` (when ``runner.meta`` has
            ``exp_name``) every this many iterations.
        out_dir: when given, the files of ``work_dir`` ending with ``out_suffix`` are
            copied to ``out_dir/<work_dir name>/`` at the end of the run.
        out_suffix: which files ``out_dir`` receives.
        keep_local: keep the local files after copying them to ``out_dir``.
    """

    def __init__(
        self,
        by_epoch: bool = True,
        interval: int = 10,
        ignore_last: bool = True,
        reset_flag: bool = False,
        interval_exp_name: int = 1000,
        out_dir: str | None = None,
        out_suffix: str | tuple[str, ...] = (".log.json", ".log", ".py"),
        keep_local: bool = True,
    ) -> None:
        super().__init__(interval, ignore_last, reset_flag, by_epoch)
        self.interval_exp_name = interval_exp_name
        self.out_dir = out_dir
        self.out_suffix = (out_suffix,) if isinstance(out_suffix, str) else tuple(out_suffix)
        self.keep_local = keep_local
        self.time_sec_tot = 0.0
        self.start_iter = 0
        self.json_log_path: Path | None = None
        self._json_file: Any = None  # open from the first JSON line to after_run
        self._file_handler: logging.FileHandler | None = None

    def before_run(self, runner: Any) -> None:
        super().before_run(runner)
        self.start_iter = runner.iter
        work_dir = Path(runner.work_dir)
        work_dir.mkdir(parents=True, exist_ok=True)
        self.json_log_path = work_dir / f"{runner.timestamp}.log.json"
        if not _has_file_handler(runner.logger):
            handler = logging.FileHandler(work_dir / f"{runner.timestamp}.log", mode="a")
            handler.setFormatter(logging.Formatter(_FORMAT))
            runner.logger.addHandler(handler)
            self._file_handler = handler
        if runner.meta is not None:
            self._dump_log(runner.meta)

    def after_run(self, runner: Any) -> None:
        self.close_after_error(runner)
        if self.out_dir is not None:
            self._copy_out(Path(runner.work_dir), runner.logger)

    def close_after_error(self, runner: Any) -> None:
        if self._json_file is not None:
            self._json_file.close()
            self._json_file = None
        if self._file_handler is not None:
            runner.logger.removeHandler(self._file_handler)
            self._file_handler.close()
            self._file_handler = None

    def _copy_out(self, work_dir: Path, logger: logging.Logger) -> None:
        target = Path(self.out_dir) / work_dir.name  # type: ignore[arg-type]
        target.mkdir(parents=True, exist_ok=True)
        for path in sorted(work_dir.iterdir()):
            if path.is_file() and path.name.endswith(self.out_suffix):
                shutil.copy2(path, target / path.name)
                if not self.keep_local:
                    path.unlink()
                logger.info("%s was copied to %s", path.name, target)

    def _dump_log(self, log_dict: Any) -> None:
        assert self.json_log_path is not None, "before_run sets the JSON log path"
        if self._json_file is not None and self._json_file.name != str(self.json_log_path):
            self._json_file.close()  # a new run of this hook logs to a new file
            self._json_file = None
        if self._json_file is None:
            self._json_file = open(self.json_log_path, "a", encoding="utf-8")  # noqa: SIM115
        self._json_file.write(json.dumps(to_plain(log_dict)) + "\n")
        self._json_file.flush()  # each line is on disk as it is logged

    def _log_info(self, log_dict: dict[str, Any], runner: Any) -> None:
        meta = runner.meta or {}
        if "exp_name" in meta and (
            self.every_n_iters(runner, self.interval_exp_name)
            or (self.by_epoch and self.end_of_epoch(runner))
        ):
            runner.logger.info(f"Exp name: {meta['exp_name']}")

        if log_dict["mode"] == "train":
            if self.by_epoch:
                text = (
                    f"Epoch [{log_dict['epoch']}][{log_dict['iter']}/{len(runner.data_loader)}]\t"
                )
            else:
                text = f"Iter [{log_dict['iter']}/{runner.max_iters}]\t"
            text += _format_rate("lr", log_dict["lr"]) + ", "
            if "momentum" in log_dict:
                text += _format_rate("momentum", log_dict["momentum"]) + ", "
            if "time" in log_dict:
                self.time_sec_tot += log_dict["time"] * self.interval
                time_sec_avg = self.time_sec_tot / (runner.iter - self.start_iter + 1)
                eta_sec = time_sec_avg * (runner.max_iters - runner.iter - 1)
                text += f"eta: {datetime.timedelta(seconds=int(eta_sec))}, "
                data_time = log_dict.get("data_time", 0.0)
                text += f"time: {log_dict['time']:.3f}, data_time: {data_time:.3f}, "
                if "memory" in log_dict:
                    text += f"memory: {log_dict['memory']}, "
        elif self.by_epoch:
            text = f"Epoch(val) [{log_dict['epoch']}][{log_dict['iter']}]\t"
        else:
            text = f"Iter(val) [{log_dict['iter']}]\t"

        items = []
        for name, value in log_dict.items():
            if name in _IN_HEADER:
                continue
            if isinstance(value, float):
                items.append(f"{name}: {value:.4f}")
            else:
                items.append(f"{name}: {value}")
        runner.logger.info(text + ", ".join(items))

    def log(self, runner: Any) -> dict[str, Any]:
        """Write one JSON line and one text line for the buffer's output; return the JSON object."""
        output = runner.log_buffer.output
        mode = self.get_mode(runner)
        log_dict: dict[str, Any] = {
            "mode": mode,
            "epoch": self.get_epoch(runner),
            "iter": int(output["eval_iter_num"])
            if "eval_iter_num" in output
            else self.get_iter(runner, inner_iter=True),
            "lr": _first_of_each(runner.current_lr()),
        }
        if has_momentum(runner.optimizer):
            log_dict["momentum"] = _first_of_each(runner.current_momentum())
        if "time" in output and _on_cuda(runner):
            log_dict["memory"] = int(torch.cuda.max_memory_allocated() // (1024 * 1024))
        for name in ("time", "data_time"):
            if name in output:
                log_dict[name] = to_plain(output[name])
        for name, value in output.items():
            if name not in log_dict and name != "eval_iter_num":
                log_dict[name] = to_plain(value)

        self._log_info(log_dict, runner)
        self._dump_log(log_dict)
        return log_dict
