"""The two students: shapes, kinds, gradients, sizes, parameters, weights loading."""
import pytest
import timm
import torch

from collab_lib.models import STUDENTS, StudentOutput, build_student, check_input_size, count_parameters

ALL = ["deeplabv3plus_resnet18", "deeplabv3plus_mobilenetv2", "segformer_b0", "segformer_b1"]


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("size", [(64, 64), (96, 160)])
def test_forward_backward_at_stride_four(name, size):
    torch.manual_seed(0)
    student = build_student(name, num_classes=5)
    x = torch.randn(2, 3, *size)
    out = student(x)
    assert isinstance(out, StudentOutput)
    h, w = size[0] // 4, size[1] // 4
    assert out.low.shape == (2, student.low_channels, h, w)
    assert out.embed.shape == (2, student.embed_channels, h, w)
    assert out.logits.shape == (2, 5, h, w)
    assert out.kind == student.kind == ("cnn" if name.startswith("deeplab") else "vit")
    out.logits.sum().backward()
    # Every trainable parameter of backbone, decoder and classifier gets a gradient.
    missing = [n for n, p in student.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, missing
    assert student.classifier.weight.grad.abs().sum() > 0


def test_mit_b0_encoder_is_exact():
    # pvt_v2_b0 with mlp_ratios=(4,4,4,4) is MiT-B0: 3,319,392 encoder parameters.
    student = build_student("segformer_b0", num_classes=19)
    assert count_parameters(student.backbone) == 3_319_392
    # timm's default pvt_v2_b0 (mlp ratio 8 in stages 1-2) is PVTv2, not MiT: a different count.
    assert count_parameters(timm.create_model("pvt_v2_b0", features_only=True)) != 3_319_392


def test_deeplab_decoder_structure():
    student = build_student("deeplabv3plus_resnet18", num_classes=3)
    assert len(student.aspp.branches) == 4  # 1x1 + three atrous rates
    assert [b[0].dilation for b in student.aspp.branches[1:]] == [(6, 6), (12, 12), (18, 18)]
    assert student.skip[0].out_channels == 48
    assert sum(isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3) for m in student.fuse.modules()) == 2
    assert student.backbone.feature_info.reduction()[-1] == 16  # output stride 16


@pytest.mark.parametrize("height,width,nearest", [(100, 64, "96"), (64, 81, "96"), (20, 64, "32")])
def test_bad_input_size_names_nearest(height, width, nearest):
    with pytest.raises(ValueError, match=f"nearest valid {nearest}"):
        check_input_size(height, width)
    student = build_student("segformer_b0", num_classes=3)
    with pytest.raises(ValueError, match="multiple of 32"):
        student(torch.randn(1, 3, height, width))


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError) as error:
        build_student("unet", num_classes=3)
    for name in STUDENTS:
        assert name in str(error.value)


def test_local_backbone_weights_file_is_loaded(tmp_path):
    torch.manual_seed(1)
    reference = timm.create_model("resnet18", pretrained=False)
    path = tmp_path / "resnet18.pth"
    torch.save(reference.state_dict(), path)
    student = build_student("deeplabv3plus_resnet18", num_classes=3, backbone_weights=path)
    loaded = dict(student.backbone.named_parameters())
    assert torch.equal(loaded["conv1.weight"], reference.conv1.weight)
    assert torch.equal(loaded["layer4.1.conv2.weight"], reference.layer4[1].conv2.weight)
    with pytest.raises(FileNotFoundError, match="backbone_weights"):
        build_student("segformer_b0", num_classes=3, backbone_weights=tmp_path / "missing.pth")


def test_pretrained_without_network_names_the_local_option(monkeypatch):
    real_create = timm.create_model

    def offline_create(name, pretrained=False, **kwargs):
        if pretrained and "pretrained_cfg_overlay" not in kwargs:
            raise OSError("could not reach huggingface.co")
        return real_create(name, pretrained=pretrained, **kwargs)

    monkeypatch.setattr(timm, "create_model", offline_create)  # the backbone imports timm when it builds one
    with pytest.raises(RuntimeError, match="backbone_weights="):
        build_student("segformer_b0", num_classes=3, pretrained=True)


def test_channels_last_changes_only_rounding_and_at_most_the_dropout_draw():
    """What a channels-last run changes (README "Longer training", the placebo): float rounding for both
    students, and at most which elements the dropouts drop (the CNN's ASPP nn.Dropout, SegFormer's
    Dropout2d). Whether a draw changes is a property of torch's mask filling on the host's kernels (memory
    order), not of the kit, so it is not asserted: with dropout off, training mode agrees too, on any build."""
    import copy

    torch.manual_seed(0)
    x = torch.randn(2, 3, 64, 64)
    for name in ("segformer_b0", "deeplabv3plus_resnet18"):
        nchw = build_student(name, num_classes=5, decoder_channels=32)
        nhwc = copy.deepcopy(nchw).to(memory_format=torch.channels_last)
        x_cl = x.contiguous(memory_format=torch.channels_last)
        with torch.no_grad():  # eval mode (no dropout, BN running stats untouched): the layouts agree up to rounding
            assert torch.allclose(nchw.eval()(x).logits, nhwc.eval()(x_cl).logits, atol=1e-4), name
        # Every dropout kind (the CNN's nn.Dropout in ASPP, SegFormer's Dropout2d before its classifier) off.
        dropouts = [m for model in (nchw, nhwc) for m in model.modules()
                    if isinstance(m, torch.nn.modules.dropout._DropoutNd)]
        assert any(m.p > 0 for m in dropouts), name  # each student has one that drops (so this test tests it)
        for module in dropouts:
            module.p = 0.0
        nchw.train(), nhwc.train()
        assert torch.allclose(nchw(x).logits, nhwc(x_cl).logits, atol=1e-4), name
