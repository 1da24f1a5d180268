"""Moore-AnimateAnyone name mapping and the pipeline-folder check."""
from __future__ import annotations

import json
import pickle
import shutil

import pytest
import torch

from models.aa2 import tiny

from models.aa2.denoising_unet import expand_conv_in
from models.aa2.moore_convert import convert, group, load_checkpoint, motion_key
from models.aa2.pose_guider import PoseGuider
from models.aa2.weights_check import check_folder

def unet2d(seed):
    return tiny.tiny_unet2d(cross_attention_dim=16, seed=seed)


def motion_unet(seed):
    return tiny.tiny_motion_unet(cross_attention_dim=16, seed=seed)


def to_animatediff(key: str) -> list[str]:
    """Our motion key -> the AnimateDiff / Moore names (written independently of the converter)."""
    head, sep, rest = key.partition(".motion_modules.")
    idx, _, tail = rest.partition(".")
    if tail == "transformer_blocks.0.pos_embed.pe":
        base = f"{head}.motion_modules.{idx}.temporal_transformer.transformer_blocks.0.attention_blocks."
        return [base + "0.pos_encoder.pe", base + "1.pos_encoder.pe"]
    tail = (tail.replace("attn1.", "attention_blocks.0.").replace("attn2.", "attention_blocks.1.")
            .replace("norm1.", "norms.0.").replace("norm2.", "norms.1.").replace("norm3.", "ff_norm."))
    return [f"{head}.motion_modules.{idx}.temporal_transformer.{tail}"]


def test_motion_key_mapping_on_real_animatediff_names():
    assert motion_key("down_blocks.0.motion_modules.0.temporal_transformer.transformer_blocks.0."
                      "attention_blocks.1.to_out.0.weight") == \
        "down_blocks.0.motion_modules.0.transformer_blocks.0.attn2.to_out.0.weight"
    assert motion_key("up_blocks.3.motion_modules.2.temporal_transformer.transformer_blocks.0.norms.0.bias") == \
        "up_blocks.3.motion_modules.2.transformer_blocks.0.norm1.bias"
    assert motion_key("mid_block.motion_modules.0.temporal_transformer.transformer_blocks.0.ff_norm.weight") == \
        "mid_block.motion_modules.0.transformer_blocks.0.norm3.weight"
    assert motion_key("down_blocks.1.motion_modules.0.temporal_transformer.proj_in.weight") == \
        "down_blocks.1.motion_modules.0.proj_in.weight"
    assert motion_key("down_blocks.1.motion_modules.0.temporal_transformer.transformer_blocks.0."
                      "attention_blocks.1.pos_encoder.pe") is None


def test_convert_synthetic_moore_checkpoints(tmp_path):
    src_unet = unet2d(1)                              # Moore's denoising_unet.pth: SD UNet names, 4 ch
    src_ref = unet2d(2)
    src_motion = motion_unet(3)
    src_pose = PoseGuider(32, 3, (16, 32, 96, 256))
    torch.nn.init.normal_(src_pose.conv_out.weight)
    unet_sd = src_unet.state_dict()
    ref_sd = {k: v for k, v in src_ref.state_dict().items() if not k.startswith(("conv_norm_out", "conv_out"))}
    motion_sd = {}
    for k, v in src_motion.state_dict().items():
        if ".motion_modules." in k:
            for name in to_animatediff(k):
                motion_sd[name] = v
    motion_sd["down_blocks.0.motion_modules.0.temporal_transformer.bogus.weight"] = torch.zeros(1)
    paths = {}
    for name, sd in (("denoising_unet", unet_sd), ("reference_unet", ref_sd), ("motion_module", motion_sd),
                     ("pose_guider", src_pose.state_dict())):
        paths[name] = tmp_path / f"{name}.pth"
        torch.save(sd, paths[name])
    loaded = {k: load_checkpoint(p) for k, p in paths.items()}
    assert len(loaded["pose_guider"]) == 16

    den = expand_conv_in(motion_unet(9), 9)
    ref = unet2d(10)
    pose = PoseGuider(32, 3, (16, 32, 96, 256))
    report = convert(denoising_unet=den, reference_unet=ref, pose_guider=pose, unet_sd=loaded["denoising_unet"],
                     reference_sd=loaded["reference_unet"], pose_sd=loaded["pose_guider"],
                     motion_sd=loaded["motion_module"])
    d = den.state_dict()
    assert torch.equal(d["conv_in.weight"][:, :4], unet_sd["conv_in.weight"])
    assert torch.count_nonzero(d["conv_in.weight"][:, 4:]) == 0
    assert torch.equal(d["up_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q.weight"],
                       unet_sd["up_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q.weight"])
    mk = "mid_block.motion_modules.0.transformer_blocks.0.attn2.to_v.weight"
    assert torch.equal(d[mk], src_motion.state_dict()[mk])
    r = ref.state_dict()
    key = "down_blocks.0.attentions.0.proj_in.weight"
    assert torch.equal(r[key], ref_sd[key])
    assert torch.equal(r["conv_out.weight"], unet_sd["conv_out.weight"])
    assert torch.equal(pose.conv_out.weight, src_pose.conv_out.weight)

    den_rep, ref_rep, pose_rep = report.components
    assert den_rep.missing == [] and ref_rep.missing == [] and pose_rep.missing == []
    assert den_rep.unexpected == ["down_blocks.0.motion_modules.0.bogus.weight"]
    assert report.ok
    text = report.text()
    assert "conv_in widened 4 -> 9" in text and "unexpected (ignored): 1" in text and "down_blocks.0: 1" in text
    assert "depth_modulation" in text and "object_guider" in text and "duplicate positional tables" in text

    # Without motion weights the motion modules are reported missing, grouped by block.
    den2 = expand_conv_in(motion_unet(9), 9)
    rep2 = convert(denoising_unet=den2, reference_unet=unet2d(10), pose_guider=PoseGuider(32), unet_sd=unet_sd,
                   reference_sd=ref_sd, pose_sd=None, motion_sd=None)
    groups = group(rep2.components[0].missing)
    assert set(groups) == {"down_blocks.0", "down_blocks.1", "mid_block", "up_blocks.0", "up_blocks.1"}
    assert "no motion_module.pth" in rep2.text()


def test_checkpoints_are_loaded_without_unpickling_code(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"w": torch.zeros(1), "obj": shutil.copy}, path)   # a callable: needs full unpickling
    with pytest.raises(pickle.UnpicklingError):
        load_checkpoint(path)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    from models.aa2.tiny import tiny_pipeline
    out = tmp_path_factory.mktemp("pipe")
    tiny_pipeline().save_pretrained(out)
    return out


def test_check_accepts_a_saved_pipeline(saved):
    ok, lines = check_folder(str(saved))
    assert ok, lines
    assert lines[-1] == "folder OK"


def test_check_names_each_problem(saved, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(saved, bad)
    shutil.rmtree(bad / "object_guider")
    cfg = json.loads((bad / "denoising_unet" / "config.json").read_text())
    cfg["in_channels"] = 4
    (bad / "denoising_unet" / "config.json").write_text(json.dumps(cfg))
    idx = json.loads((bad / "model_index.json").read_text())
    idx["vae"] = ["some_package", "Evil"]
    (bad / "model_index.json").write_text(json.dumps(idx))
    ok, lines = check_folder(str(bad))
    assert not ok
    text = "\n".join(lines)
    assert "object_guider: config.json missing" in text
    assert "in_channels is 4, expected 9" in text
    assert "conv_in.weight has 9 inputs, config says 4" in text
    assert "vae: library" in text
    from models.aa2.pipeline import load_pipeline
    with pytest.raises(ValueError, match="some_package"):
        load_pipeline(str(bad))


def test_check_of_a_non_pipeline_folder(tmp_path):
    ok, lines = check_folder(str(tmp_path))
    assert not ok and "no model_index.json" in lines[0]


def test_weights_cli_check(saved, tmp_path):
    from backend.cli import main
    assert main(["weights", "check", str(saved)]) == 0
    assert main(["weights", "check", str(tmp_path)]) == 1


def test_weights_convert_cli_builds_a_loadable_folder(tmp_path):
    """``inhabit weights convert`` on tiny stand-ins of every input folder."""
    from backend.cli import main
    from models.aa2.pipeline import load_pipeline

    sd15 = tmp_path / "sd15"
    src = unet2d(1)
    src.save_config(sd15 / "unet")
    moore = tmp_path / "moore"
    moore.mkdir()
    torch.save(src.state_dict(), moore / "denoising_unet.pth")
    torch.save({k: v for k, v in unet2d(2).state_dict().items() if not k.startswith(("conv_norm_out", "conv_out"))},
               moore / "reference_unet.pth")
    torch.save(PoseGuider(32, 3, (16, 32, 96, 256)).state_dict(), moore / "pose_guider.pth")
    tiny.tiny_vae().save_pretrained(tmp_path / "vae")
    tiny.tiny_image_encoder(projection_dim=16).save_pretrained(tmp_path / "enc")
    out = tmp_path / "out"
    rc = main(["weights", "convert", "--moore", str(moore), "--sd15", str(sd15), "--vae", str(tmp_path / "vae"),
               "--image-encoder", str(tmp_path / "enc"), "--out", str(out)])
    assert rc == 0
    ok, lines = check_folder(str(out))
    assert ok, lines
    pipe = load_pipeline(str(out))
    assert pipe.config.fusion_mode == "all" and pipe.denoising_unet.config.in_channels == 9
    assert torch.equal(pipe.denoising_unet.conv_in.weight[:, :4], src.conv_in.weight)
    assert main(["weights", "convert", "--moore", str(tmp_path / "none"), "--sd15", str(sd15), "--vae", "x",
                 "--image-encoder", "y", "--out", str(tmp_path / "o2")]) == 1


def _tiny_inputs(tmp_path, wrap=lambda sd: sd, ref_source=None):
    """Tiny stand-ins of every folder ``inhabit weights convert`` reads; returns its arguments."""

    sd15 = tmp_path / "sd15"
    src = unet2d(1)
    src.save_config(sd15 / "unet")
    moore = tmp_path / "moore"
    moore.mkdir()
    torch.save(wrap(src.state_dict()), moore / "denoising_unet.pth")
    ref_sd = ref_source or {k: v for k, v in unet2d(2).state_dict().items()
                            if not k.startswith(("conv_norm_out", "conv_out"))}
    torch.save(wrap(ref_sd), moore / "reference_unet.pth")
    torch.save(wrap(PoseGuider(32, 3, (16, 32, 96, 256)).state_dict()), moore / "pose_guider.pth")
    motion = {}
    for k, v in motion_unet(3).state_dict().items():
        if ".motion_modules." in k:
            for name in to_animatediff(k):
                motion[name] = v
    torch.save(wrap(motion), moore / "motion_module.pth")
    from models.aa2.tiny import tiny_image_encoder, tiny_vae
    tiny_vae().save_pretrained(tmp_path / "vae")
    tiny_image_encoder(projection_dim=16).save_pretrained(tmp_path / "enc")
    return src, ["weights", "convert", "--moore", str(moore), "--sd15", str(sd15), "--vae", str(tmp_path / "vae"),
                 "--image-encoder", str(tmp_path / "enc")]


@pytest.mark.parametrize("prefix", ["module.", "model.", "_orig_mod.", "module._orig_mod."])
def test_convert_strips_wrapper_prefixes_and_takes_motion_heads(tmp_path, prefix, capsys):
    from backend.cli import main
    from models.aa2.pipeline import load_pipeline
    src, argv = _tiny_inputs(tmp_path, wrap=lambda sd: {prefix + k: v for k, v in sd.items()})
    out = tmp_path / "out"
    assert main([*argv, "--out", str(out), "--motion-heads", "2"]) == 0
    assert "motion modules: 2 attention heads (--motion-heads)" in capsys.readouterr().out
    pipe = load_pipeline(str(out))
    assert pipe.denoising_unet.config.motion_num_attention_heads == 2
    assert torch.equal(pipe.denoising_unet.conv_in.weight[:, :4], src.conv_in.weight)
    assert not [p for p in tmp_path.iterdir() if ".partial-" in p.name]


def test_motion_heads_come_from_the_checkpoints_config(tmp_path, capsys):
    from backend.cli import main
    _, argv = _tiny_inputs(tmp_path)
    (tmp_path / "moore" / "motion_module.json").write_text(json.dumps({"motion_num_attention_heads": 2}))
    assert main([*argv, "--out", str(tmp_path / "out")]) == 0
    assert "2 attention heads (from the checkpoint's config)" in capsys.readouterr().out


def test_a_mismatch_exits_1_and_leaves_no_output_folder(tmp_path, capsys):
    from backend.cli import main
    ref = {k: v for k, v in unet2d(2).state_dict().items() if not k.startswith(("conv_norm_out", "conv_out"))}
    ref["down_blocks.0.attentions.0.proj_in.weight"] = torch.zeros(3, 3)  # wrong shape
    _, argv = _tiny_inputs(tmp_path, ref_source=ref)
    out = tmp_path / "out"
    assert main([*argv, "--out", str(out), "--motion-heads", "2"]) == 1
    text = capsys.readouterr().out
    assert "shape mismatch" in text and "nothing was written" in text
    assert not out.exists() and not [p for p in tmp_path.iterdir() if ".partial-" in p.name]
