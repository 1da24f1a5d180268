"""LPIPS and FVD from local weight files (random weights in the public key layouts,
backend/training/metrics/tiny.py)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from backend.training.metrics import fvd, i3d, lpips, tiny
from backend.training.metrics.state_dicts import MetricWeightsError
from tests.cli import inhabit


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    root = tmp_path_factory.mktemp("metric-weights")
    return {"lpips": tiny.save_random_lpips(str(root / "lpips.safetensors")),
            "lpips_dir": tiny.save_random_lpips(str(root / "lpips-parts"), folder=True),
            "i3d": tiny.save_random_i3d(str(root / "rgb_random.pt"))}


def _noisy(x, sigma, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (x + sigma * torch.randn(x.shape, generator=g)).clamp(-1, 1)


def test_lpips_zero_on_itself_grows_with_noise_symmetric(weights):
    model = lpips.load_lpips(weights["lpips"])
    x = torch.rand(2, 3, 48, 48, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad():
        same = model(x, x)
        d = [model(x, _noisy(x, s)) for s in (0.05, 0.2, 0.6)]
        back = model(_noisy(x, 0.2), x)
    assert torch.all(same == 0)
    assert torch.all(0 < d[0]) and torch.all(d[0] < d[1]) and torch.all(d[1] < d[2])
    assert torch.allclose(back, d[1], rtol=1e-5, atol=1e-7)
    parts = lpips.load_lpips(weights["lpips_dir"])   # the folder of two files gives the same network
    with torch.no_grad():
        assert torch.allclose(parts(x, _noisy(x, 0.2)), d[1])


def test_lpips_pack_merges_the_two_public_files(weights, tmp_path):
    folder = weights["lpips_dir"]
    out = tmp_path / "lpips.safetensors"
    proc = inhabit("weights", "lpips-pack", "--alexnet", f"{folder}/alexnet.pth", "--lpips", f"{folder}/alex.pth",
                   "--out", out)
    assert proc.returncode == 0 and out.is_file(), proc.stdout + proc.stderr
    proc = inhabit("weights", "lpips-pack", "--alexnet", f"{folder}/alex.pth", "--lpips", f"{folder}/alex.pth",
                   "--out", tmp_path / "bad.safetensors")
    assert proc.returncode == 2 and "lacks 10 keys (features.0.weight" in proc.stdout, proc.stdout
    assert not (tmp_path / "bad.safetensors").exists()


def test_fvd_zero_on_itself_grows_with_perturbation(weights):
    net = i3d.load_i3d(weights["i3d"])
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (1, 32, 32, 3)).astype(np.int16)
    clips = [np.clip(base + rng.integers(-40, 40, (3, 32, 32, 3)), 0, 255).astype(np.uint8) for _ in range(4)]
    real = fvd.clip_features(net, clips, size=32)
    assert real.shape == (4, i3d.FEATURES)
    assert abs(fvd.frechet_distance(real, real)) < 1e-6 * float(np.trace(np.cov(real, rowvar=False)))
    dists = []
    for sigma in (10, 60):
        fake = [np.clip(c + rng.normal(0, sigma, c.shape), 0, 255).astype(np.uint8) for c in clips]
        dists.append(fvd.frechet_distance(real, fvd.clip_features(net, fake, size=32)))
    assert 0 < dists[0] < dists[1], dists
    logits = fvd.clip_features(net, clips, size=32, features="logits")
    assert logits.shape == (4, i3d.NUM_CLASSES) and abs(fvd.frechet_distance(logits, logits)) < 1e-6 * float(
        np.trace(np.cov(logits, rowvar=False)))
    assert net(fvd.prepare(fvd.clip_windows(clips[0])[0], 32)).shape == (1, i3d.NUM_CLASSES)


def test_frechet_distance_of_gaussians_matches_closed_form():
    rng = np.random.default_rng(3)
    a, b = rng.normal(0, 1, (4000, 3)), rng.normal(0.5, 2, (4000, 3))
    # N(0, I) vs N(0.5, 4I): |mu|^2 = 0.75, trace term 3 * (1 + 4 - 2 * 2) = 3
    assert abs(fvd.frechet_distance(a, b) - 3.75) < 0.25


def test_short_clips_are_stretched_long_ones_windowed():
    clip = np.arange(3)[:, None, None, None] * np.ones((3, 2, 2, 3), np.uint8)
    (w,) = fvd.clip_windows(clip, 16)
    assert w.shape[0] == 16 and list(w[:, 0, 0, 0]) == sorted(w[:, 0, 0, 0]) and set(w[:, 0, 0, 0]) == {0, 1, 2}
    assert len(fvd.clip_windows(np.zeros((40, 2, 2, 3), np.uint8), 16)) == 2


def test_wrong_keys_are_one_sentence(weights, tmp_path):
    with pytest.raises(MetricWeightsError, match=r"is not I3D .* lacks \d+ keys \(Conv3d_1a_7x7"):
        i3d.load_i3d(weights["lpips"])
    sd = torch.load(weights["i3d"], weights_only=True)
    sd["Mixed_5c.b0.conv3d.weight"] = sd["Mixed_5c.b0.conv3d.weight"][:10]
    del sd["logits.conv3d.bias"]
    bad = tmp_path / "bad.pt"
    torch.save(sd, bad)
    with pytest.raises(MetricWeightsError) as err:
        i3d.load_i3d(str(bad))
    msg = str(err.value)
    assert "lacks 1 keys (logits.conv3d.bias)" in msg and "Mixed_5c.b0.conv3d.weight (10," in msg
    assert msg.count(".") >= 1 and msg.endswith("docs/evaluation.md for the expected key names.")
    with pytest.raises(MetricWeightsError, match="is not a file"):
        lpips.load_lpips(str(tmp_path / "missing.safetensors"))


def test_eval_adds_lpips_and_fvd_columns(tiny_dataset, weights, tmp_path):
    out = tmp_path / "eval"
    proc = inhabit("eval", "--data", tiny_dataset, "--split", "test", "--engine", "preview", "--baseline",
                   "--lpips-weights", weights["lpips"], "--i3d", weights["i3d"], "--i3d-size", "32", "--out", out,
                   "--fvd-features", "logits", timeout=300, env={"OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = (out / "eval.md").read_text()
    assert "| LPIPS | FVD |" in table
    report = json.loads((out / "eval.json").read_text())
    for label, row in report["engines"].items():
        assert 0 < row["lpips"] < 1 and row["fvd"] >= 0 and row["fvd_windows"] == 1, (label, row)
        assert row["fvd_features"] == "logits"
    proc = inhabit("eval", "--data", tiny_dataset, "--baseline", "--i3d", weights["lpips"], "--out", tmp_path / "e2")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "--i3d: " in proc.stderr and "is not I3D" in proc.stderr
    proc = inhabit("eval", "--data", tiny_dataset, "--baseline", "--lpips-weights", tmp_path / "nope", "--out",
                   tmp_path / "e3")
    assert proc.returncode == 2 and "--lpips-weights" in proc.stderr and "does not exist" in proc.stderr
