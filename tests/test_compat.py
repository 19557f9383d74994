"""The release gate of the private library uses (``rt3d_tune._compat``)."""

from __future__ import annotations

import pytest

from rt3d_tune._compat import checked_release


@pytest.mark.parametrize(
    "version, checked",
    [("2.60.0", True), ("2.60.3rc1", True), ("2.61.0", False), ("2.6.0", False),
     ("3.60.0", False), ("dev", False), ("", False)],
)
def test_only_the_checked_major_minor_releases_pass(version: str, checked: bool) -> None:
    assert checked_release(version, {(2, 60)}) is checked


# torch ---------------------------------------------------------------------------------
torch = pytest.importorskip("torch")

from torch import nn  # noqa: E402
from torch.nn.modules.batchnorm import _BatchNorm  # noqa: E402

from rt3d_tune.runner import _torch_private  # noqa: E402
from rt3d_tune.runner._torch_private import (  # noqa: E402
    CHECKED_TORCH,
    norm_classes,
    own_iterator_copy,
)

UNKNOWN = "99.0.0"


class _OwnBatchNorm(_BatchNorm):
    """A library's BatchNorm deriving from torch's private base directly."""


def _torch_checked() -> bool:
    return checked_release(torch.__version__, CHECKED_TORCH)


@pytest.mark.parametrize("version", ["installed", UNKNOWN])
def test_norm_classes(version: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if version != "installed":
        monkeypatch.setattr(torch, "__version__", version)
    private = version == "installed" and _torch_checked()
    batch, instance = norm_classes("batch"), norm_classes("instance")
    for layer in (nn.BatchNorm1d(2), nn.BatchNorm2d(2), nn.SyncBatchNorm(2)):
        assert isinstance(layer, batch) and not isinstance(layer, instance)
    assert isinstance(nn.InstanceNorm2d(2), instance) and not isinstance(nn.GroupNorm(1, 2),
                                                                        batch + instance)
    # only the private base knows a class that derives from it directly
    assert isinstance(_OwnBatchNorm(2), batch) is private
    with pytest.raises(ValueError, match="'group'"):
        norm_classes("group")


def _loader(**kwargs: object) -> torch.utils.data.DataLoader:
    data = torch.utils.data.TensorDataset(torch.arange(12.0))
    return torch.utils.data.DataLoader(data, batch_size=5, shuffle=False, **kwargs)


@pytest.mark.parametrize("version", ["installed", UNKNOWN])
def test_own_iterator_copy_leaves_the_persistent_workers_alone(
        version: str, monkeypatch: pytest.MonkeyPatch) -> None:
    loader = _loader(num_workers=1, persistent_workers=True)
    expected = [batch[0].tolist() for batch in loader]
    workers = loader._iterator  # the run's persistent-worker iterator
    assert workers is not None
    if version != "installed":
        monkeypatch.setattr(torch, "__version__", version)
    twin = own_iterator_copy(loader)
    assert [batch[0].tolist() for batch in twin] == expected
    assert [batch[0].tolist() for batch in twin] == expected
    assert loader._iterator is workers  # not touched, not shut down
    assert [batch[0].tolist() for batch in loader] == expected
    # the checked releases copy the loader; elsewhere a new one without persistent workers
    assert twin.persistent_workers is (version == "installed" and _torch_checked())
    assert twin.batch_sampler is loader.batch_sampler
    loader._iterator._shutdown_workers()


def test_own_iterator_copy_of_a_plain_iterable() -> None:
    batches = [[1], [2]]
    assert own_iterator_copy(batches) == batches and own_iterator_copy(batches) is not batches


def test_the_torch_gate_reads_the_installed_release(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _torch_private._checked() is _torch_checked()
    monkeypatch.setattr(torch, "__version__", UNKNOWN)
    assert _torch_private._checked() is False


# mmengine ------------------------------------------------------------------------------
@pytest.fixture
def mm() -> object:
    return pytest.importorskip("mmengine")


def _mmengine_checked(mm: object) -> bool:
    from rt3d_tune.backends.mmengine._mmengine_private import CHECKED_MMENGINE

    return checked_release(mm.__version__, CHECKED_MMENGINE)  # type: ignore[attr-defined]


@pytest.mark.parametrize("version", ["installed", UNKNOWN])
def test_val_outputs(version: str, mm: object, monkeypatch: pytest.MonkeyPatch) -> None:
    from mmengine.runner import loops
    from mmengine.structures import BaseDataElement

    from rt3d_tune.backends.mmengine._mmengine_private import val_outputs

    private = version == "installed" and _mmengine_checked(mm)
    if version != "installed":
        monkeypatch.setattr(mm, "__version__", version)
    calls = []
    real = loops._update_losses

    def spy(outputs: list, losses: dict) -> tuple[list, dict]:
        calls.append(len(outputs))
        return real(outputs, losses)

    monkeypatch.setattr(loops, "_update_losses", spy)
    preds = [BaseDataElement(metainfo={"i": i}) for i in range(2)]
    loss = BaseDataElement(loss={"loss_cls": torch.tensor(0.5)})
    assert val_outputs([*preds, loss]) == preds
    assert val_outputs(list(preds)) == preds
    assert val_outputs([*preds, BaseDataElement(loss={}, extra=1)])[-1].extra == 1
    assert bool(calls) is private


@pytest.mark.parametrize("version", ["installed", UNKNOWN])
def test_count_updates(version: str, mm: object, monkeypatch: pytest.MonkeyPatch) -> None:
    from mmengine.optim import OptimWrapper

    from rt3d_tune.backends.mmengine._mmengine_private import count_updates

    private = version == "installed" and _mmengine_checked(mm)
    if version != "installed":
        monkeypatch.setattr(mm, "__version__", version)
    model = nn.Linear(2, 1)
    wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1), accumulative_counts=3)
    wrapper._inner_count = 5  # where the run is
    public = []
    monkeypatch.setattr(wrapper, "initialize_count_status",
                        lambda *args: public.append(args)
                        or OptimWrapper.initialize_count_status(wrapper, *args))
    count_updates(wrapper, model, 7)
    assert bool(public) is not private
    # 7 updates in stretches of 3: steps after the 3rd, 6th and 7th (the last, partial)
    stepped = []
    for _ in range(7):
        before = model.weight.detach().clone()
        wrapper.update_params(model(torch.ones(1, 2)).sum())
        stepped.append(not torch.equal(before, model.weight))
    assert stepped == [False, False, True, False, False, True, True]
    assert wrapper.inner_count == 7
    assert (wrapper._max_counts, wrapper._remainder_counts) == (7, 1)
