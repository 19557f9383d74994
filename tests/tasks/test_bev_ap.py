"""KITTI R40 BEV average precision against cases computed by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rt3d_tune.tasks.bev_metric import average_precision_r40, evaluate_bev

CLASSES = ("Car", "Pedestrian")


def car(x: float, y: float = 0.0, yaw: float = 0.0) -> list[float]:
    return [x, y, -0.9, 4.0, 2.0, 1.6, yaw]


def ped(x: float, y: float = 0.0) -> list[float]:
    return [x, y, -0.9, 0.8, 0.6, 1.7, 0.0]


def pred(boxes: list[list[float]], scores: list[float], labels: list[int]) -> dict[str, np.ndarray]:
    return {
        "boxes": np.asarray(boxes, dtype=np.float32).reshape(-1, 7),
        "scores": np.asarray(scores, dtype=np.float32),
        "labels": np.asarray(labels, dtype=np.int64),
    }


def gts(boxes: list[list[float]], labels: list[int]) -> tuple[np.ndarray, np.ndarray]:
    return np.asarray(boxes, dtype=np.float32).reshape(-1, 7), np.asarray(labels, dtype=np.int64)


def run(
    results: list[dict], truth: list[tuple[np.ndarray, np.ndarray]], **kw: object
) -> dict[str, float]:
    return evaluate_bev(results, [t[0] for t in truth], [t[1] for t in truth], CLASSES, **kw)


def test_perfect_predictions_score_one_everywhere() -> None:
    truth = [gts([car(10), ped(5, 3)], [0, 1]), gts([car(20, -4, 1.0)], [0])]
    results = [pred([car(10), ped(5, 3)], [0.9, 0.8], [0, 1]), pred([car(20, -4, 1.0)], [0.7], [0])]
    metrics = run(results, truth)
    assert metrics == pytest.approx(
        {
            "bev_AP_Car": 1.0,
            "bev_AP_Pedestrian": 1.0,
            "bev_mAP": 1.0,
            "bev_AP50_Car": 1.0,
            "bev_AP50_Pedestrian": 1.0,
            "bev_mAP50": 1.0,
        }
    )


def test_no_predictions_score_zero() -> None:
    truth = [gts([car(10), ped(5)], [0, 1])]
    metrics = run([pred([], [], [])], truth)
    assert (
        metrics["bev_mAP"] == 0.0 and metrics["bev_AP_Car"] == 0.0 and metrics["bev_mAP50"] == 0.0
    )


def test_a_class_without_ground_truth_is_left_out_of_the_mean() -> None:
    truth = [gts([car(10)], [0])]
    results = [pred([car(10), ped(5)], [0.9, 0.8], [0, 1])]  # the pedestrian is a false positive
    metrics = run(results, truth)
    assert "bev_AP_Pedestrian" not in metrics and "bev_AP50_Pedestrian" not in metrics
    assert metrics["bev_mAP"] == 1.0 and metrics["bev_mAP50"] == 1.0


def test_no_ground_truth_at_all_gives_zero_means() -> None:
    assert run([pred([car(10)], [0.9], [0])], [gts([], [])]) == {"bev_mAP": 0.0, "bev_mAP50": 0.0}


def test_toy_ranking_has_the_hand_computed_r40_value() -> None:
    # 2 cars; ranked detections: TP (0.9), FP (0.8), TP (0.7).
    # precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1: the 20 recall points up to 1/2 get 1,
    # the 20 above get 2/3, so AP = (20 * 1 + 20 * 2/3) / 40 = 5/6.
    truth = [gts([car(10), car(20, 5)], [0, 0])]
    results = [pred([car(10), car(30, -5), car(20, 5)], [0.9, 0.8, 0.7], [0, 0, 0])]
    assert run(results, truth)["bev_AP_Car"] == pytest.approx(5 / 6)


def test_each_ground_truth_is_matched_once() -> None:
    # A duplicate of the first detection is a false positive: the same 5/6 as above.
    truth = [gts([car(10), car(20, 5)], [0, 0])]
    results = [pred([car(10), car(10.1), car(20, 5)], [0.9, 0.8, 0.7], [0, 0, 0])]
    assert run(results, truth)["bev_AP_Car"] == pytest.approx(5 / 6)


def test_ranking_is_over_the_whole_set_and_matching_within_each_sample() -> None:
    # Sample 0's detection lies where sample 1's car is: it matches nothing.
    truth = [gts([car(10)], [0]), gts([car(30)], [0])]
    results = [pred([car(30)], [0.9], [0]), pred([car(30)], [0.5], [0])]
    # ranked: FP (0.9), TP (0.5): precision 1/2 at recall 1/2 (no recall above): 20 * 0.5 / 40
    assert run(results, truth)["bev_AP_Car"] == pytest.approx(0.25)


def test_car_threshold_is_strict_and_ap50_is_loose() -> None:
    # shifted 1 m along its 4 m length: IoU = 3 * 2 / (8 + 8 - 6) = 0.6
    truth = [gts([car(10)], [0])]
    metrics = run([pred([car(11)], [0.9], [0])], truth)
    assert metrics["bev_AP_Car"] == 0.0 and metrics["bev_AP50_Car"] == 1.0


def test_custom_thresholds_replace_the_kitti_ones() -> None:
    truth = [gts([car(10)], [0])]
    metrics = run([pred([car(11)], [0.9], [0])], truth, iou_thresholds={"Car": 0.55})
    assert metrics["bev_AP_Car"] == 1.0


def test_a_detection_of_the_wrong_class_does_not_match() -> None:
    truth = [gts([ped(5)], [1])]
    metrics = run([pred([ped(5)], [0.9], [0])], truth)
    assert metrics["bev_AP_Pedestrian"] == 0.0 and "bev_AP_Car" not in metrics


def test_torch_tensors_are_accepted() -> None:
    truth = [(torch.tensor([car(10)]), torch.tensor([0]))]
    result = {
        "boxes": torch.tensor([car(10)]),
        "scores": torch.tensor([0.5]),
        "labels": torch.tensor([0]),
    }
    assert evaluate_bev([result], [truth[0][0]], [truth[0][1]], CLASSES)["bev_mAP"] == 1.0


def test_mismatched_lengths_and_missing_keys_are_errors() -> None:
    with pytest.raises(ValueError, match="one prediction per sample"):
        run([], [gts([car(10)], [0])])
    with pytest.raises(ValueError, match="lacks"):
        run([{"boxes": np.zeros((0, 7))}], [gts([car(10)], [0])])


@pytest.mark.parametrize(
    "is_tp, num_gt, expected",
    [
        ([True, True], 2, 1.0),
        ([True], 2, 0.5),  # recall never passes 1/2: the upper 20 points get 0
        ([False, True], 1, 0.5),  # precision 1/2 at every recall
        ([], 3, 0.0),
        (
            [True, False, False, True],
            4,
            (10 * 1.0 + 10 * 0.5) / 40,
        ),  # recall 1/4 at p=1, 1/2 at p=1/2
    ],
)
def test_r40_interpolation(is_tp: list[bool], num_gt: int, expected: float) -> None:
    scores = np.linspace(1.0, 0.1, len(is_tp)) if is_tp else np.zeros(0)
    assert average_precision_r40(scores, np.asarray(is_tp, dtype=bool), num_gt) == pytest.approx(
        expected
    )
