"""The equal-compute study's report: the control is summed over languages only when every
language has one, and the renders are reported per level and language beside their control."""

from __future__ import annotations

import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from equal_compute_report import combined, rendered  # noqa: E402

from dualmind.evaluate.report import Rendering, SystemBits  # noqa: E402


def bits(decoder_nll: float, shuffled_nll: float | None) -> SystemBits:
    return SystemBits(core_nll=1.0, decoder_nll=decoder_nll, text_bytes=100, split_bytes=100,
                      shuffled_nll=shuffled_nll)


def test_bits_taken_from_the_core_sum_over_languages():
    total = combined({"en": bits(10.0, 30.0), "ru": bits(20.0, 60.0)})
    assert total.shuffled_nll == 90.0
    assert math.isclose(total.taken_from_core_bpb, 60.0 / (math.log(2) * 200))


def test_a_language_without_its_control_leaves_the_total_without_one():
    total = combined({"en": bits(10.0, 30.0), "ru": bits(20.0, None)})
    assert total.shuffled_nll is None and total.taken_from_core_bpb is None


def test_renders_are_reported_per_level_and_language_beside_the_control():
    def scene(chrf, control):
        return Rendering("the original", "hyper", "the render", chrf, 0.5, "", control, 0.25)

    text = "\n".join(rendered({"lossless": {"en": [scene(90.0, 30.0), scene(80.0, 20.0)]},
                               "semantic": {"ru": [scene(30.0, None)]}}))
    assert "lossless, en, 2 scenes: chrF **85.0** (control 25.0), words in order 25%" in text
    assert "semantic, ru, 1 scene: chrF **30.0** (control -)" in text
    assert text.count("decoder (chrF") == 2  # the first render of each level and language
