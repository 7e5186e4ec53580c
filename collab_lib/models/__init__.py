"""The two students and `build_student`.

CNN: DeepLabV3+ on a timm CNN. ViT: SegFormer (MiT encoder). Both return a
`StudentOutput(low, embed, logits, kind)` at stride 4.
"""
from functools import partial

from torch import nn

from .backbone import check_input_size, create_backbone
from .deeplabv3plus import DeepLabV3Plus
from .output import STUDENT_KINDS, StudentOutput
from .segformer import SegFormer

# A plain dict, not a registry: read it to see every student the kit has. Its names are
# collab_lib.names.STUDENT_NAMES (the settings offer them without importing torch; a test checks they agree).
STUDENTS = {
    "deeplabv3plus_resnet18": partial(DeepLabV3Plus, backbone="resnet18"),
    "deeplabv3plus_mobilenetv2": partial(DeepLabV3Plus, backbone="mobilenetv2_100"),
    "deeplabv3plus_resnet50": partial(DeepLabV3Plus, backbone="resnet50"),
    "segformer_b0": partial(SegFormer, variant="b0"),
    "segformer_b1": partial(SegFormer, variant="b1"),
    "segformer_b2": partial(SegFormer, variant="b2"),
}


def build_student(name: str, num_classes: int, pretrained: bool = False, **options) -> nn.Module:
    """Build a student by name.

    options: `backbone_weights` (local timm state_dict file), and per family
    `aspp_channels`, `decoder_channels`, `skip_channels` (DeepLabV3+) or
    `decoder_channels`, `dropout` (SegFormer).
    The module has `.kind` ("cnn"/"vit"), `.low_channels`, `.embed_channels`, `.num_classes`.
    """
    if name not in STUDENTS:
        raise ValueError(f"unknown student {name!r}; valid names: {', '.join(STUDENTS)}")
    if not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an int >= 2, got {num_classes!r}")
    return STUDENTS[name](num_classes=num_classes, pretrained=pretrained, **options)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


__all__ = [
    "STUDENTS", "STUDENT_KINDS", "StudentOutput", "build_student", "count_parameters",
    "check_input_size", "create_backbone", "DeepLabV3Plus", "SegFormer",
]
