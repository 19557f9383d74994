"""The tutorial's ``MyHook(a, b)``: records every stage it is called at."""

from __future__ import annotations

from typing import Any, ClassVar

from rt3d_tune.registry import HOOKS
from rt3d_tune.runner.hook import Hook


@HOOKS.register_module()
class MyHook(Hook):
    """Records ``(stage, runner.epoch, runner.iter)`` for the six stages of the tutorial.

    Args:
        a: any value, kept as ``self.a``.
        b: any value, kept as ``self.b``.

    ``MyHook.instances`` lists every hook built, so a test can find the one a runner
    built from ``custom_hooks``.
    """

    instances: ClassVar[list[MyHook]] = []

    def __init__(self, a: Any, b: Any) -> None:
        self.a = a
        self.b = b
        self.calls: list[tuple[str, int | None, int | None]] = []
        MyHook.instances.append(self)

    def _record(self, stage: str, runner: Any) -> None:
        self.calls.append((stage, getattr(runner, "epoch", None), getattr(runner, "iter", None)))

    def stages_called(self) -> list[str]:
        """The stage names, in call order."""
        return [stage for stage, _, _ in self.calls]

    def before_run(self, runner: Any) -> None:
        self._record("before_run", runner)

    def after_run(self, runner: Any) -> None:
        self._record("after_run", runner)

    def before_epoch(self, runner: Any) -> None:
        self._record("before_epoch", runner)

    def after_epoch(self, runner: Any) -> None:
        self._record("after_epoch", runner)

    def before_iter(self, runner: Any) -> None:
        self._record("before_iter", runner)

    def after_iter(self, runner: Any) -> None:
        self._record("after_iter", runner)
