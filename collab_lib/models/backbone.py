"""timm backbones as feature extractors, plus the input-size check.

Nothing is downloaded unless `pretrained=True` is asked for; a local weights
file (`backbone_weights=`) works without network.
"""
from pathlib import Path

import torch

INPUT_MULTIPLE = 32  # the deepest stage of every backbone here has stride 32


def check_input_size(height: int, width: int, multiple: int = INPUT_MULTIPLE) -> None:
    """Raise a ValueError naming the nearest valid size when H or W is not a multiple of 32."""
    bad = [(axis, n) for axis, n in (("height", height), ("width", width)) if n % multiple or n <= 0]
    if not bad:
        return
    hints = []
    for axis, n in bad:
        lower = max(multiple, (n // multiple) * multiple)
        upper = lower if n < multiple else lower + multiple
        nearest = lower if (n - lower) <= (upper - n) else upper
        hints.append(f"{axis} {n} -> nearest valid {nearest} (or {lower if nearest == upper else upper})")
    raise ValueError(
        f"input size {height}x{width} is not a multiple of {multiple}: "
        + "; ".join(hints)
        + f". Resize or crop the input to multiples of {multiple} (e.g. data option crop_size)."
    )


def create_backbone(
    timm_name: str,
    out_indices,
    pretrained: bool = False,
    backbone_weights: str | Path | None = None,
    **timm_kwargs,
) -> torch.nn.Module:
    """A timm model with `features_only=True`.

    pretrained:       download timm's ImageNet weights (needs network).
    backbone_weights: path to a local state_dict file of the full timm model
                      (e.g. saved with `torch.save(timm.create_model(name).state_dict(), path)`);
                      takes precedence over `pretrained` and needs no network.
    """
    # timm loads torchvision and torch._dynamo (seconds): imported when a backbone is built, so that the
    # settings, the trainer's --help and everything that only reads runs start without it.
    import timm

    kwargs = dict(features_only=True, out_indices=tuple(out_indices), **timm_kwargs)
    if backbone_weights is not None:
        path = Path(backbone_weights)
        if not path.is_file():
            raise FileNotFoundError(f"backbone_weights: no such file {str(path)!r} (expected a state_dict of timm model {timm_name!r})")
        # timm loads a local file through the pretrained config and drops the classifier keys itself.
        return timm.create_model(timm_name, pretrained=True, pretrained_cfg_overlay=dict(file=str(path)), **kwargs)
    if not pretrained:
        return timm.create_model(timm_name, pretrained=False, **kwargs)
    try:
        return timm.create_model(timm_name, pretrained=True, **kwargs)
    except Exception as error:  # no network, hub unreachable, missing cache ...
        raise RuntimeError(
            f"pretrained=True could not fetch timm weights for {timm_name!r} ({type(error).__name__}: {error}). "
            f"Without network, pass backbone_weights='/path/to/{timm_name}.pth' (a state_dict of the full timm model), "
            "or use pretrained=False."
        ) from error
