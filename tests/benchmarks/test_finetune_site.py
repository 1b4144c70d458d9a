"""The fine-tune benchmark's site: whole volumes simulated as one acquisition, the low dose its thinning."""

import numpy as np

from tests.conftest import load_benchmark


def test_site_volumes_are_thinned_pairs_of_one_acquisition():
    bench = load_benchmark("finetune_site")
    volumes = bench.simulate_volumes(2, seed=0, context=1, site={"grid": 32, "recon": [2, 4]})
    assert len(volumes) == 2
    for v in volumes:
        assert v["low"].shape == v["full"].shape == v["truth"].shape == v["lesions"].shape == (3, 32, 32)
        assert float(v["low"].min()) >= 0 and float(v["full"].min()) >= 0
        # OSEM preserves counts: the low dose holds about the fraction of the full dose's counts
        assert abs(v["low"].sum() / v["full"].sum() - bench.SITE["fraction"]) < 0.02
        assert abs(v["full"].sum() / v["truth"].sum() - 1) < 0.1
    assert not np.array_equal(volumes[0]["truth"], volumes[1]["truth"])
