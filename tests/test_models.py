"""The AA2 building blocks, on tiny configs of the real diffusers classes."""
import copy

import pytest
import torch

from models.aa2 import tiny

from models.aa2.denoising_unet import add_after_conv_in, blend_objects, expand_conv_in
from models.aa2.depth_modulation import DepthModulation
from models.aa2.object_guider import ObjectGuider, decoder_blend_levels
from models.aa2.pose_guider import PoseGuider
from models.aa2.reference_attention import ReferenceBank, fuse_reference, spatial_self_attention_names

torch.set_grad_enabled(False)


def tiny_unet2d(in_channels=4):
    return tiny.tiny_unet2d(in_channels, cross_attention_dim=16, seed=0)


def tiny_motion(in_channels=4):
    return tiny.tiny_motion_unet(in_channels, cross_attention_dim=16, seed=1)


@pytest.mark.parametrize("mode", ["mid_up", "all"])
def test_reference_fusion_with_identical_inputs_reproduces_plain_unet(mode):
    unet = tiny_unet2d()
    ref = copy.deepcopy(unet)
    x = torch.randn(1, 4, 8, 8)
    enc = torch.randn(1, 1, 16)
    plain = unet(x, 10, encoder_hidden_states=enc).sample
    # Bank at the same timestep so every fused layer sees its own tokens twice.
    bank = ReferenceBank(mode)
    handles_t = 10
    names = spatial_self_attention_names(ref, mode)
    assert names and all(("mid_block" in n or "up_blocks" in n) for n in names) == (mode == "mid_up")
    modules = dict(ref.named_modules())
    hs = []
    for n in names:
        hs.append(modules[n].register_forward_pre_hook(
            lambda m, a, k, _n=n: bank.tokens.__setitem__(_n, (a[0] if a else k["hidden_states"])),
            with_kwargs=True))
    ref(x, handles_t, encoder_hidden_states=enc)
    for h in hs:
        h.remove()
    with fuse_reference(unet, bank, num_frames=1):
        fused = unet(x, 10, encoder_hidden_states=enc).sample
    assert torch.allclose(fused, plain, atol=1e-5), (fused - plain).abs().max()
    # ... and a different reference really changes the output.
    other = ReferenceBank(mode).compute(ref, torch.randn(1, 4, 8, 8), enc)
    with fuse_reference(unet, other, num_frames=1):
        changed = unet(x, 10, encoder_hidden_states=enc).sample
    assert (changed - plain).abs().max() > 1e-4
    # Hooks are gone afterwards.
    assert torch.equal(unet(x, 10, encoder_hidden_states=enc).sample, plain)


def test_reference_bank_feeds_every_frame_of_motion_unet_with_cfg():
    ref = tiny_unet2d()
    unet = tiny_motion()
    bank = ReferenceBank("mid_up").compute(ref, torch.randn(1, 4, 8, 8), torch.randn(1, 1, 16))
    x = torch.randn(2, 4, 3, 8, 8)       # CFG batch of 2, 3 frames
    with fuse_reference(unet, bank, num_frames=3):
        out = unet(x, 5, encoder_hidden_states=torch.randn(6, 1, 16)).sample
    assert out.shape == (2, 4, 3, 8, 8)


def test_zero_initialised_environment_channels_leave_output_unchanged():
    four = tiny_motion(4)
    nine = expand_conv_in(copy.deepcopy(four), 9)
    assert nine.config.in_channels == 9 and nine.conv_in.weight.shape[1] == 9
    assert torch.count_nonzero(nine.conv_in.weight[:, 4:]) == 0
    z = torch.randn(1, 4, 2, 8, 8)
    extra = torch.randn(1, 5, 2, 8, 8)
    enc = torch.randn(2, 1, 16)
    a = four(z, 7, encoder_hidden_states=enc).sample
    b = nine(torch.cat([z, extra], 1), 7, encoder_hidden_states=enc).sample
    assert torch.equal(a, b)


def test_pose_guider_layout_and_zero_init():
    g = PoseGuider(320, 3, (16, 32, 96, 256))
    out = g(torch.rand(2, 3, 64, 48))
    assert out.shape == (2, 320, 8, 6)
    assert torch.count_nonzero(out) == 0          # zero-init out conv: adds nothing untrained
    assert len(g.state_dict()) == 16               # Moore's pose_guider.pth has 16 keys


def test_pose_features_are_added_after_conv_in():
    unet = tiny_motion(4)
    z = torch.randn(1, 4, 2, 8, 8)
    enc = torch.randn(2, 1, 16)
    plain = unet(z, 3, encoder_hidden_states=enc).sample
    with add_after_conv_in(unet, torch.zeros(2, 32, 8, 8)):
        same = unet(z, 3, encoder_hidden_states=enc).sample
    with add_after_conv_in(unet, torch.randn(2, 32, 8, 8)):
        moved = unet(z, 3, encoder_hidden_states=enc).sample
    assert torch.equal(plain, same) and not torch.allclose(plain, moved)


def test_depth_modulation_starts_as_identity_and_mixes_time_once_trained():
    m = DepthModulation(32, (4, 8, 8, 16), num_heads=2)
    pose = torch.randn(3, 32, 4, 4)
    depth = torch.rand(3, 1, 32, 32)
    assert torch.equal(m(pose, depth, 3), pose)
    torch.nn.init.normal_(m.to_out.weight, std=0.1)
    torch.nn.init.normal_(m.temporal.weight, std=0.1)
    out = m(pose, depth, 3)
    assert out.shape == pose.shape and not torch.allclose(out, pose)
    # Temporal conv: changing frame 0's depth changes frame 1's output.
    d2 = depth.clone()
    d2[0] = torch.rand(1, 32, 32)
    assert not torch.allclose(m(pose, d2, 3)[1], out[1])


def test_spatial_blending_at_init_is_near_identity():
    unet = tiny_motion(4)
    names, levels = decoder_blend_levels(unet.config)
    assert names[0] == "mid_block.attentions.0" and len(names) == 3
    guider = ObjectGuider(4, (32, 64), blend_levels=levels)
    feats = guider(torch.randn(2, 4, 8, 8))
    assert [f.shape[1:] for f in feats] == [(32, 8, 8), (64, 4, 4)]
    z = torch.randn(1, 4, 2, 8, 8)
    enc = torch.randn(2, 1, 16)
    plain = unet(z, 3, encoder_hidden_states=enc).sample
    with blend_objects(unet, guider, names, feats):
        blended = unet(z, 3, encoder_hidden_states=enc).sample
    diff = (blended - plain).abs().max().item()
    assert 0 < diff < 0.05 * plain.abs().max().item()
    # The gate opens when trained (a positive bias pulls in object features).
    for conv in guider.blend:
        torch.nn.init.constant_(conv.bias, 6.0)
    with blend_objects(unet, guider, names, feats):
        opened = unet(z, 3, encoder_hidden_states=enc).sample
    assert (opened - plain).abs().max().item() > 10 * diff


def test_conv_in_cannot_shrink():
    with pytest.raises(ValueError, match="cannot shrink"):
        expand_conv_in(tiny_motion(9), 4)
