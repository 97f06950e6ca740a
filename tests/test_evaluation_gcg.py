"""GCG answer parsing and metrics (the runner is tested with the others in `test_evaluation_runners.py`)."""

import numpy as np
import pytest

from sa2va_hf.evaluation import gcg


def test_parse_answer():
    caption, phrases = gcg.parse_answer("A <p>red car</p> [SEG] next to <p> a tree</p> [SEG] .<|im_end|>")
    assert caption == "A red car next to a tree ." and phrases == ["red car", "a tree"]  # official: no re-spacing
    assert gcg.parse_answer("<s>USER: hi ASSISTANT: 'A <p>dog</p> [SEG].\n'") == ("A dog .", ["dog"])


def test_greedy_miou_and_recall_matching():
    ious = np.array([[0.9, 0.6], [0.7, 0.0], [0.0, 0.0]])
    assert gcg.greedy_miou(ious) == pytest.approx((0.9 + 0.0) / 1)  # 0.9 pairs (0, 0); row 1 only has 0 left
    sims = np.ones_like(ious)
    assert gcg.matched_regions(ious, sims) == 1
    assert gcg.matched_regions(np.array([[0.9, 0.0], [0.0, 0.8]]), np.array([[0.2, 1], [1, 1]])) == 0  # stops
    assert gcg.bag_of_words_similarity("a red car", "the red car") == pytest.approx(2 / 3)
