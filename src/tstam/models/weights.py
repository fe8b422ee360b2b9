"""Foreign and native weight files for the T-STAM backbone (docs/design.md, The paper in the code).

One filter, ``checkpoint_filter_fn(state_dict, model)``, turns every supported layout into the
names and shapes of ``model.backbone``:

| file                                 | example key                                       | rule |
|--------------------------------------|---------------------------------------------------|------|
| ``bn_inception-52deb4733.pth``       | ``conv1_7x7_s2_bn.weight`` [1, 64]                | BN tensors [1, C] -> [C]; head ``last_linear`` dropped |
| TSN ImageNet ``bn_inception-9f5...`` | ``fc.weight``                                     | head ``fc`` dropped |
| TSN / tsn-pytorch checkpoint         | ``module.base_model.inception_3a_1x1.weight``     | prefix stripped; ``new_fc`` dropped; ``{"state_dict": ...}`` unwrapped |
| tstam checkpoint                     | ``backbone.inception_3a_se.fc1.weight``            | ``{"model": ...}`` unwrapped; only ``backbone.*`` kept, prefix stripped |

Then: ``num_batches_tracked`` missing from old files is taken from the model; SE parameters
missing from a file without SE keep their (identity) initialisation; a 3-channel first conv
loaded into a flow model is adapted by cross-modality initialisation (``adapt_input_conv``).
Everything else must match: missing keys, unexpected keys and shape mismatches are listed by
name in one error that names the file. ``.pth`` files are read with ``weights_only=True``
(never unpickled), ``.safetensors`` with safetensors.

The public ImageNet files are in ``PRETRAINED`` (URL, SHA-256 prefix, origin, licence; docs/training.md):
``run.init_weights=imagenet`` (or the bare file name ``bn_inception-52deb4733.pth``) is downloaded once
into the cache (``tstam.download``) and read from there; ``weights_file`` turns any value of
``run.init_weights`` into a file.
"""
from __future__ import annotations

import json
import logging
import pickle
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tstam.errors import BadFileError, WeightsError

__all__ = ["WeightsError", "PretrainedFile", "PRETRAINED", "weights_file", "read_torch_file", "read_state_dict",
           "checkpoint_filter_fn", "adapt_input_conv", "load_pretrained"]

_log = logging.getLogger(__name__)

_PREFIXES = ("module.", "base_model.", "backbone.")   # DDP, TSN, tstam; stripped in this order
_HEADS = ("last_linear.", "fc.", "new_fc.")          # ImageNet / TSN classifiers: not backbone
_FIRST_CONV = "conv1_7x7_s2.weight"


@dataclass(frozen=True)
class PretrainedFile:
    """A public weight file that ``run.init_weights=<name>`` downloads into the cache."""

    name: str           # what run.init_weights and ``tstam weights download`` accept
    filename: str       # its published file name (also accepted by run.init_weights)
    url: str
    sha256: str         # the full SHA-256, or the prefix published in the file name (torch.hub's convention)
    origin: str         # who trained it, who converted it
    licence: str

    def path(self) -> Path:
        from tstam.download import cache_dir

        return cache_dir() / "weights" / self.filename


# The hashes are the prefixes in the published names: PyTorch's model_zoo, through which both files
# were first distributed, checked that prefix against the SHA-256 of the bytes it downloaded.
PRETRAINED: dict[str, PretrainedFile] = {f.name: f for f in (
    PretrainedFile(
        "imagenet", "bn_inception-52deb4733.pth",
        "http://data.lip6.fr/cadene/pretrainedmodels/bn_inception-52deb4733.pth", "52deb4733",
        "BN-Inception trained on ImageNet-1k with Caffe by Yuanjun Xiong (TSN), converted to PyTorch by Remi Cadene "
        "(pretrainedmodels, Cadene/pretrained-models.pytorch)",
        "distributed by Cadene/pretrained-models.pytorch (BSD-3-Clause); no licence is stated for the weights "
        "themselves, and ImageNet's terms of access (non-commercial research) apply to what was trained on it"),
    PretrainedFile(
        "tsn_imagenet", "bn_inception-9f5701afb96c8044.pth",
        "https://yjxiong.blob.core.windows.net/models/bn_inception-9f5701afb96c8044.pth", "9f5701afb96c8044",
        "the same Caffe BN-Inception as loaded by TSN's PyTorch code (yjxiong/tsn-pytorch, "
        "tf_model_zoo/bninception)",
        "distributed with yjxiong/tsn-pytorch (BSD-2-Clause); no licence is stated for the weights themselves, and "
        "ImageNet's terms of access (non-commercial research) apply"),
)}


def weights_file(value: str | Path) -> Path:
    """The file that ``run.init_weights=value`` names: an existing path as it is; a name of
    ``PRETRAINED`` (or its bare file name, when no such file is here) from the cache, downloaded
    into it first when not there yet (hash-checked; ``tstam.download.download``).

    Raises:
        WeightsError: no such file and no such name; or the download failed (the message names the
            URL and where to put the file by hand).
    """
    from tstam.download import download as fetch

    text = str(value)
    by_file = {f.filename: f for f in PRETRAINED.values()}
    entry = PRETRAINED.get(text)
    if entry is None and Path(text).is_file():
        return Path(text)
    if entry is None and text in by_file:  # the bare published name, not in this folder: the cached copy
        entry = by_file[text]
    if entry is None:
        raise WeightsError(f"{text}: weight file not found; give the path of a weight file, or "
                           f"{' or '.join(PRETRAINED)} to download a public ImageNet file (tstam weights list)")
    return fetch(entry.url, entry.path(), sha256=entry.sha256)


def read_torch_file(path: str | Path, *, error: type[BadFileError] = WeightsError,
                    map_location: str | torch.device = "cpu") -> Any:
    """``torch.load(path, weights_only=True)``, the one place tstam reads a PyTorch file.

    Nothing is ever unpickled: a file holding Python objects other than tensors, lists, dicts,
    strings and numbers is refused, and so is a truncated or foreign file, with ``error`` naming
    the file and the reason (never torch's advice to retry with ``weights_only=False``).
    """
    path = Path(path)
    if not path.is_file():
        raise error(f"{path}: file not found")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except OSError as e:
        reason = f"cannot be read ({e.strerror or e})"
    except Exception as e:  # torch raises many types for foreign, truncated or malicious files
        if isinstance(e, pickle.UnpicklingError) and "weights only" in str(e).lower():
            reason = ("it holds Python objects that only a full unpickling would build, which could run "
                      "code; tstam reads files of plain tensors, lists, dicts, strings and numbers only")
        else:
            detail = str(e).splitlines()[0][:120] if str(e) else "no detail"
            reason = f"truncated, damaged or not a PyTorch file ({type(e).__name__}: {detail})"
    raise error(f"{path}: not a readable weights-only PyTorch file: {reason}")


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a ``.pth``/``.pt`` (``weights_only=True``) or ``.safetensors`` file as a flat dict.

    Wrappers ``{"state_dict": ...}`` (TSN) and ``{"model": ...}`` (tstam) are unwrapped.
    """
    return _read_weights(path)[0]


def _read_weights(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any] | None]:
    """(flat state dict, the tstam ``model_config`` the file records, or None for foreign files)."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: weight file not found")
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as f:
                meta = json.loads((f.metadata() or {}).get("tstam") or "{}")
                return {k: f.get_tensor(k) for k in f.keys()}, meta.get("model_config")
        except Exception as e:  # safetensors raises its own error types
            raise WeightsError(f"{path}: not a readable safetensors file: {e}") from None
    obj = read_torch_file(path)
    config = obj.get("model_config") if isinstance(obj, dict) else None
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(f"{path}: expected a state dict of tensors, got {type(obj).__name__}")
    return obj, config if isinstance(config, dict) else None


def adapt_input_conv(weight: torch.Tensor, in_chans: int) -> torch.Tensor:
    """Cross-modality initialisation (TSN): average an RGB kernel (O, 3, k, k) over its input
    channels and copy the mean to ``in_chans`` channels (10 for 5 stacked flow fields)."""
    if weight.dim() != 4:
        raise ValueError(f"expected a conv weight (O, I, k, k), got shape {tuple(weight.shape)}")
    return weight.mean(dim=1, keepdim=True).expand(-1, in_chans, -1, -1).contiguous()


def _strip(key: str) -> str:
    for prefix in _PREFIXES:
        if key.startswith(prefix):
            key = key[len(prefix):]
    return key


def checkpoint_filter_fn(state_dict: Mapping[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """Map a foreign state dict onto ``model`` (a ``BNInception``): rename, drop heads, reshape.

    Returns a dict with only the keys the file provides; ``load_pretrained`` fills and checks
    the rest. Reshapes a stored tensor only where the model's tensor is 1-D with the same
    number of elements (BN ``[1, C]`` -> ``[C]``).
    """
    target = model.state_dict()
    native = any(k.removeprefix("module.").startswith("backbone.") for k in state_dict)
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        if native and not key.removeprefix("module.").startswith("backbone."):
            continue  # a whole tstam model: its attention head and classifier are not backbone
        key = _strip(key)
        if key.startswith(_HEADS):
            continue
        if key in target:
            want = target[key]
            if value.shape != want.shape and want.dim() == 1 and value.numel() == want.numel():
                value = value.reshape(want.shape)  # BN [1, C] -> [C]
            elif key == _FIRST_CONV and value.dim() == 4 and value.shape[1] == 3 and want.shape[1] != 3:
                value = adapt_input_conv(value, want.shape[1])  # RGB conv1 -> flow stream
        out[key] = value
    return out


def load_pretrained(model: nn.Module, path: str | Path, *, strict_se: bool = False) -> nn.Module:
    """Load backbone weights from any supported file into ``model`` (a TSTAM or a BNInception).

    Args:
        model: a ``TSTAM`` (weights go to ``model.backbone``) or a ``BNInception``.
        path: ``.pth``/``.pt``/``.safetensors`` in any layout of the module docstring.
        strict_se: also require SE parameters to be in the file (a file trained with SE).

    Raises:
        WeightsError: naming the file and listing missing / unexpected / mismatched keys.
    """
    backbone = getattr(model, "backbone", model)
    raw, config = _read_weights(path)
    gate = (config or {}).get("se_gate")
    if gate and (config or {}).get("se_blocks") and backbone.se_blocks and gate != backbone.se_gate:
        raise WeightsError(f"{path}: its SE blocks were trained with the {gate!r} gate but this model uses "
                           f"{backbone.se_gate!r}; the same SE weights mean other channel scales under another gate: "
                           f"set model.se_gate={gate} (or model.se_blocks=[] to use the backbone without SE)")
    sd = checkpoint_filter_fn(raw, backbone)
    target = backbone.state_dict()
    unexpected = sorted(k for k in sd if k not in target)
    mismatched = sorted(
        f"{k}: file {tuple(sd[k].shape)} vs model {tuple(target[k].shape)}"
        for k in sd if k in target and sd[k].shape != target[k].shape
    )
    missing = []
    for key in target:
        if key in sd:
            continue
        if key.endswith("num_batches_tracked") or ("_se." in key and not strict_se):
            sd[key] = target[key]  # absent from old files / new SE blocks keep their init
        else:
            missing.append(key)
    if missing or unexpected or mismatched:
        lines = [f"{path}: does not fit the {type(backbone).__name__} backbone"]
        for title, keys in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", mismatched)):
            if keys:
                shown = ", ".join(keys[:20]) + (f", ... ({len(keys)} in all)" if len(keys) > 20 else "")
                lines.append(f"  {title} ({len(keys)}): {shown}")
        raise WeightsError("\n".join(lines))
    backbone.load_state_dict(sd, strict=True)
    _log.info("loaded %d backbone tensors from %s", len(sd), path)
    return model
