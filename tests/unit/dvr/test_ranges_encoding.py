"""The read side's ranges without an object per range: merging into arrays and encoding
from them give exactly what ``merge_ranges`` and the per-range forms give."""
from __future__ import annotations

import array
import random

import pytest

from fleetcam.domain import dvr
from fleetcam.services import dvrplay


@pytest.mark.parametrize("seed", range(20))
def test_arrays_merge_and_encode_as_range_objects_do(seed: int) -> None:
    rnd = random.Random(seed)
    t = rnd.choice([0, 999, 1_660_000_000_123])
    spans = []
    for _ in range(rnd.randint(0, 40)):
        a = t + rnd.randint(-500, 3000)
        b = a + rnd.randint(-10, 4000)  # empty and reversed spans are dropped
        spans.append((a, b))
        t = max(t, b)
    starts, ends = dvrplay._merge(spans)
    merged = dvr.merge_ranges(spans)
    assert list(starts) == [r.start_ms for r in merged]
    assert list(ends) == [r.end_ms for r in merged]
    for form, enc in dvrplay._FORMS.items():
        assert dvrplay.encode_ranges(starts, ends, form) == ",".join(map(enc, merged)).encode()
    assert dvrplay.encode_ranges(array.array("q"), array.array("q"), "s") == b""
