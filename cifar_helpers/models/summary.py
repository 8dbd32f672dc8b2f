"""Count, trace and compare: the numbers behind notebook 04 and Fig 2.

All counts come from module objects and a forward pass, never from
formulas typed in by hand, so they follow the models when the models change.

- `count_parameters`: trainable parameters.
- `count_macs`: multiply-adds of the Conv2d and Linear layers, measured with
  forward hooks (conv: output elements × in_channels/groups × kh × kw;
  linear: rows × in_features × out_features). Batch norm, ReLU, pooling and
  the residual additions are not counted: they cost a few operations per
  element, small next to the convolutions.
- `trace_model`: one row per top-level child (stage), with its output shape.
- `compare_blocks`: a basic block against a bottleneck block with the same
  input and output channels, to check the report's claim that the
  bottleneck has one more convolution yet fewer parameters and less
  computation.
- `decayed_weights`: per stage of a trained network, the share of its
  weights and batch-norm scales that have decayed to zero.
"""

from __future__ import annotations

from typing import Sequence

import pandas as pd
import torch
from torch import nn

from cifar_helpers.models.custom_resnet import Bottleneck
from cifar_helpers.models.resnet import BasicBlock

IMAGE_SHAPE = (1, 3, 32, 32)
RESIDUAL_BLOCKS = (BasicBlock, Bottleneck)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def count_macs(module: nn.Module, input_shape: Sequence[int] = IMAGE_SHAPE) -> int:
    """Multiply-adds of all Conv2d and Linear layers for one input of `input_shape`.

    The count is for the whole input batch: the default batch of 1 gives the
    cost per image.
    """
    return sum(_layer_macs(module, input_shape).values())


def format_shape(shape: Sequence[int]) -> str:
    """(64, 16, 16) -> '64×16×16'."""
    return "×".join(str(int(n)) for n in shape)


def trace_model(model: nn.Module, input_shape: Sequence[int] = IMAGE_SHAPE) -> pd.DataFrame:
    """One row per top-level child, in the order the forward pass calls them.

    The first row is the input itself. Columns: `stage` (the child's name),
    `output_shape` per image ('64×16×16'; a vector is just '512'),
    `blocks` (residual blocks in the stage, 0 if none), `channels` (the first
    output dimension), `params` and `macs` (per image, Conv2d and Linear only).
    """
    children = dict(model.named_children())
    outputs: list[tuple[str, tuple[int, ...]]] = []
    handles = [
        child.register_forward_hook(lambda _m, _i, out, name=name: outputs.append((name, tuple(out.shape[1:]))))
        for name, child in children.items()
    ]
    try:
        layer_macs = _layer_macs(model, input_shape)
    finally:
        for handle in handles:
            handle.remove()

    rows = [dict(stage="input", output_shape=format_shape(input_shape[1:]), blocks=0,
                 channels=int(input_shape[1]), params=0, macs=0)]
    batch = int(input_shape[0])
    for name, shape in outputs:
        child = children[name]
        rows.append(
            dict(
                stage=name,
                output_shape=format_shape(shape),
                blocks=sum(isinstance(m, RESIDUAL_BLOCKS) for m in child.modules()),
                channels=int(shape[0]),
                params=count_parameters(child),
                macs=sum(v for k, v in layer_macs.items() if k == name or k.startswith(name + ".")) // batch,
            )
        )
    return pd.DataFrame(rows, columns=["stage", "output_shape", "blocks", "channels", "params", "macs"])


def model_summary(model: nn.Module, input_shape: Sequence[int] = IMAGE_SHAPE) -> str:
    """A short text summary: the model's name, totals, and the trace table."""
    table = trace_model(model, input_shape)
    header = (
        f"{type(model).__name__}: {count_parameters(model):,} trainable parameters, "
        f"{int(table['macs'].sum()):,} multiply-adds per {format_shape(input_shape[1:])} input"
    )
    thousands = "{:,}".format  # 1,574,400 reads at a glance, as in the header; 1574400 does not
    return header + "\n" + table.to_string(index=False, formatters={"params": thousands, "macs": thousands})


def compare_blocks(
    widths: Sequence[int] = (64, 128, 256, 512),
    spatial: Sequence[int] = (16, 8, 4, 2),
    bottleneck_factor: int = 4,
) -> pd.DataFrame:
    """Basic block vs bottleneck block, C -> C at stride 1, for each stage width C.

    Both blocks have batch norm after each convolution (the basic block with
    `batch_norm=True`), so the only difference is the convolutions. Each
    width is measured at its stage's spatial size in the Custom ResNet.
    Ratios are bottleneck / basic.
    """
    if len(widths) != len(spatial):
        raise ValueError(f"compare_blocks: give one spatial size per width, got widths={widths}, spatial={spatial}")
    rows = []
    for width, size in zip(widths, spatial):
        basic = BasicBlock(width, width, stride=1, batch_norm=True)
        bottleneck = Bottleneck(width, width, stride=1, bottleneck_factor=bottleneck_factor, dropout=0.0)
        shape = (1, width, size, size)
        row = dict(width=width, spatial=size)
        for label, block in (("basic", basic), ("bottleneck", bottleneck)):
            row[f"{label}_convs"] = sum(isinstance(m, nn.Conv2d) for m in block.modules())
            row[f"{label}_params"] = count_parameters(block)
            row[f"{label}_macs"] = count_macs(block, shape)
        row["params_ratio"] = row["bottleneck_params"] / row["basic_params"]
        row["macs_ratio"] = row["bottleneck_macs"] / row["basic_macs"]
        rows.append(row)
    columns = ["width", "spatial"] + [f"{label}_{count}" for count in ("convs", "params", "macs")
                                      for label in ("basic", "bottleneck")] + ["params_ratio", "macs_ratio"]
    return pd.DataFrame(rows, columns=columns)


def bottleneck_claim_holds(table: pd.DataFrame) -> bool:
    """The report's claim, at every width: more convolutions, yet fewer parameters and fewer MACs."""
    return bool(
        (table["bottleneck_convs"] > table["basic_convs"]).all()
        and (table["bottleneck_params"] < table["basic_params"]).all()
        and (table["bottleneck_macs"] < table["basic_macs"]).all()
    )


def _layer_macs(model: nn.Module, input_shape: Sequence[int]) -> dict[str, int]:
    """MACs per Conv2d / Linear module (by qualified name) for one forward pass."""
    macs: dict[str, int] = {}

    def hook(name: str):
        def record(module: nn.Module, _inputs, output: torch.Tensor) -> None:
            if isinstance(module, nn.Conv2d):
                kh, kw = module.kernel_size
                count = output.numel() * (module.in_channels // module.groups) * kh * kw
            else:
                count = output.numel() * module.in_features
            macs[name] = macs.get(name, 0) + count

        return record

    handles = [
        module.register_forward_hook(hook(name))
        for name, module in model.named_modules()
        if isinstance(module, (nn.Conv2d, nn.Linear))
    ]
    try:
        _forward_zeros(model, input_shape)
    finally:
        for handle in handles:
            handle.remove()
    return macs


def _forward_zeros(model: nn.Module, input_shape: Sequence[int]) -> None:
    """One forward pass on zeros in eval mode, without gradients; the model's mode is restored."""
    reference = next(model.parameters(), None)
    device = reference.device if reference is not None else torch.device("cpu")
    dtype = reference.dtype if reference is not None and reference.is_floating_point() else torch.float32
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(tuple(input_shape), device=device, dtype=dtype))
    finally:
        model.train(was_training)


def decayed(tensor: torch.Tensor) -> torch.Tensor:
    """Where a float32 tensor holds zero or a denormal number (below float32's smallest normal, 1.2e-38): a
    weight that has decayed this far does nothing, and on many CPUs every operation on it is slow."""
    return tensor.abs() < torch.finfo(torch.float32).tiny


def denormal_share(tensors) -> float:
    """The share of float32 numbers in `tensors` that are denormal (nonzero, below the smallest normal): the
    numbers that many CPUs compute with several times slower (benchmarks/RESULTS.md)."""
    found = total = 0
    for t in tensors:
        if torch.is_tensor(t) and t.dtype == torch.float32:
            found += int((decayed(t) & (t != 0)).sum())
            total += t.numel()
    return found / max(total, 1)


@torch.no_grad()
def zero_denormals_(tensors) -> None:
    """Set every denormal float32 number in `tensors` to zero, in place: what FLUSH_DENORMALS does to the weights
    and the optimizer's state after each optimizer step (engine.train.make_optimizer). Unlike the CPU's
    flush-to-zero flag, which `torch.set_flush_denormal` sets for the calling thread only, this reaches every
    thread and device alike."""
    for t in tensors:
        if torch.is_tensor(t) and t.dtype == torch.float32:
            t.masked_fill_(decayed(t), 0.0)


def decayed_weights(state_dict: dict[str, torch.Tensor]) -> pd.DataFrame:
    """Per stage (the first part of a parameter's name), the share of the convolution and linear weights, and of
    the batch-norm scales (a 1-D weight beside a running variance), that `decayed` finds: a zero scale silences
    its channel for good, since its channel then passes no gradient back."""
    rows: dict[str, list[int]] = {}
    for name, tensor in state_dict.items():
        if not name.endswith("weight") or not tensor.is_floating_point():
            continue
        is_scale = tensor.dim() == 1 and f"{name[:-len('weight')]}running_var" in state_dict
        counts = rows.setdefault(name.split(".")[0], [0, 0, 0, 0])
        offset = 2 if is_scale else 0
        counts[offset] += int(decayed(tensor).sum())
        counts[offset + 1] += tensor.numel()
    table = pd.DataFrame(
        {"weights": [c[1] for c in rows.values()],
         "decayed weights (%)": [100 * c[0] / c[1] if c[1] else float("nan") for c in rows.values()],
         "batch-norm scales": [c[3] for c in rows.values()],
         "decayed scales (%)": [100 * c[2] / c[3] if c[3] else float("nan") for c in rows.values()]},
        index=pd.Index(list(rows), name="stage"))
    return table.round(1)
