"""Depth noise and dropout as CONTRACTS section 3 specifies."""

import numpy as np

from lab.sensor import add_depth_noise


def test_noise_grows_with_range_squared_and_drops_one_percent():
    rng = np.random.default_rng(0)
    depth = np.full((480, 640), 0.5, dtype=np.float32)
    depth[:, 320:] = 1.0
    noisy = add_depth_noise(depth, rng, factor=1.0, dropout=0.01, on_edges=False)
    kept = noisy > 0
    assert abs((~kept).mean() - 0.01) < 0.001
    near = (noisy - depth)[:, :320][kept[:, :320]]
    far = (noisy - depth)[:, 320:][kept[:, 320:]]
    assert abs(near.std() - 0.0015) < 0.0001
    assert abs(far.std() - 0.006) < 0.0003


def test_hard_dropout_clusters_on_edges():
    rng = np.random.default_rng(1)
    depth = np.full((480, 640), 0.7, dtype=np.float32)
    depth[150:330, 200:440] = 0.6  # a box on the table: its outline is the depth edge
    noisy = add_depth_noise(depth, rng, factor=2.0, dropout=0.05, on_edges=True)
    dropped = noisy == 0
    assert 0.045 < dropped.mean() < 0.06
    edge_band = np.zeros_like(dropped)
    edge_band[145:335, 195:445] = True
    edge_band[155:325, 205:435] = False
    # The band is ~3% of the image but holds far more than its share of the dropped pixels.
    assert dropped[edge_band].mean() > 10 * dropped[~edge_band].mean()
