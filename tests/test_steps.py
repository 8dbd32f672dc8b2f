"""Training steps: every mode computes the eager step; graph bookkeeping checked without a GPU."""

from __future__ import annotations

import math

import pytest
import torch

from cifar_helpers.engine.config import ConfigError, TrainConfig
from cifar_helpers.models import build_model
from cifar_helpers.engine.fast import (
    GRAPH_MODES,
    STEP_MODES,
    CompiledStep,
    GraphedStep,
    make_step,
    onecycle_factor,
    optimizer_options,
    resolve_mode,
)
from cifar_helpers.engine.steps import EagerStep
from cifar_helpers.engine.train import make_scheduler, train_model

CPU = torch.device("cpu")


def tiny_model(seed=0):
    torch.manual_seed(seed)
    return build_model("dnn", hidden=(16, 16))  # no dropout: replays draw no random numbers


def batches(sizes, seed=1):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(n, 3, 32, 32, generator=g), torch.randint(0, 10, (n,), generator=g)) for n in sizes]


def run(step, data):
    loss_sum, correct = torch.zeros(()), torch.zeros((), dtype=torch.int64)
    for inputs, labels in data:
        step(inputs, labels, loss_sum, correct)
    return loss_sum, correct


def sgd(model, mode, lr=0.05):
    return torch.optim.SGD(model.parameters(), momentum=0.9, weight_decay=5e-4,
                           **optimizer_options(mode, "sgd", CPU, lr))


def assert_same_parameters(a, b, **tolerance):
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(p, q, msg=lambda m: f"{name}: {m}", **tolerance)


# ----------------------------------------------------------------------------- choosing a mode

def test_unknown_mode_lists_the_modes():
    with pytest.raises(ValueError, match="STEP_MODE must be one of .*'eager'.*'cuda_graph'"):
        make_step("warp", tiny_model(), None, False, CPU)
    with pytest.raises(ConfigError, match="STEP_MODE must be one of"):
        TrainConfig.for_model("dnn", step_mode="graph")
    assert set(GRAPH_MODES) < set(STEP_MODES)


@pytest.mark.parametrize("mode", GRAPH_MODES)
def test_cuda_graph_modes_on_the_cpu_say_what_to_use(mode):
    model = tiny_model()
    with pytest.raises(ValueError, match=rf"STEP_MODE='{mode}'.*needs a CUDA GPU.*trains on cpu.*'auto'"):
        make_step(mode, model, sgd(model, mode), False, CPU)


def test_auto_is_graphs_on_cuda_and_eager_elsewhere():
    assert resolve_mode("auto", torch.device("cuda")) == "cuda_graph"
    assert resolve_mode("auto", CPU) == "eager"
    model = tiny_model()
    assert type(make_step("auto", model, sgd(model, "auto"), False, CPU)) is EagerStep


def test_optimizer_options_fused_and_tensor_lr_for_graphs():
    eager = optimizer_options("eager", "adam", CPU, 1e-3)
    assert eager["lr"] == 1e-3 and "capturable" not in eager
    graph = optimizer_options("cuda_graph", "adam", CPU, 1e-3)
    assert isinstance(graph["lr"], torch.Tensor) and graph["lr"].item() == pytest.approx(1e-3)
    assert graph.get("fused") == eager.get("fused")
    # Both optimizers accept them.
    model = tiny_model()
    torch.optim.Adam(model.parameters(), weight_decay=5e-4, **graph)
    torch.optim.SGD(model.parameters(), momentum=0.9, nesterov=True, **graph)


# ----------------------------------------------------------------------------- eager

def test_eager_step_adds_summed_loss_and_correct_count():
    model = tiny_model()
    step = EagerStep(model, sgd(model, "eager", lr=1e-30), False, CPU)  # lr ~0: the weights stay put
    data = batches([6, 4])
    expected_loss = expected_correct = 0
    with torch.no_grad():
        for inputs, labels in data:
            logits = model(inputs)
            expected_loss += torch.nn.functional.cross_entropy(logits, labels, reduction="sum").item()
            expected_correct += (logits.argmax(1) == labels).sum().item()
    loss_sum, correct = run(step, data)
    assert loss_sum.item() == pytest.approx(expected_loss, rel=1e-5)
    assert correct.item() == expected_correct and correct.dtype == torch.int64


# ----------------------------------------------------------------------------- CUDA graph bookkeeping

class FakeCapture:
    """Stands in for CUDA graph capture: records nothing, and a replay runs the body eagerly.

    Like a real capture it does not run the step while capturing, and a replay
    sees only what the body reads: the static buffers it closed over.
    """

    def __init__(self):
        self.captures = 0
        self.replays = 0

    def __call__(self, body):
        self.captures += 1

        def replay():
            self.replays += 1
            body()
        return replay


def test_graphed_step_matches_eager_with_partial_batches_and_a_schedule():
    # Three "epochs" of 40 images in batches of 16: 16, 16, 8 (the last one partial).
    sizes = [16, 16, 8] * 3
    data = batches(sizes)
    results = {}
    for kind in ("eager", "graphed"):
        model = tiny_model()
        optimizer = sgd(model, "cuda_graph")
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda k: 1 / (1 + k))
        if kind == "eager":
            step = EagerStep(model, optimizer, False, CPU)
        else:
            capture = FakeCapture()
            step = GraphedStep(model, optimizer, False, CPU, warmup_steps=2, capture=capture)
        loss_sum, correct = torch.zeros(()), torch.zeros((), dtype=torch.int64)
        for inputs, labels in data:
            step(inputs, labels, loss_sum, correct)
            scheduler.step()
        results[kind] = (model, loss_sum, correct, optimizer)
    (eager_model, eager_loss, eager_correct, _), (graph_model, graph_loss, graph_correct, graph_opt) = \
        results["eager"], results["graphed"]
    torch.testing.assert_close(graph_loss, eager_loss)
    assert graph_correct.item() == eager_correct.item()
    assert_same_parameters(graph_model, eager_model)
    # Size 16 ran eagerly twice, then was captured; size 8 (the partial batch) likewise, one epoch later.
    assert step.captured_sizes == [8, 16] and capture.captures == 2
    assert dict(step.eager_runs) == {16: 2, 8: 2}
    assert capture.replays == len(sizes) - 4
    # The scheduler updated the graph's lr tensor in place: the same object all along.
    assert graph_opt.param_groups[0]["lr"] is step.lrs[0]
    assert step.lrs[0].item() == pytest.approx(0.05 / (1 + len(sizes)))


def test_graphed_step_copies_each_batch_into_its_static_buffers():
    model = tiny_model()
    capture = FakeCapture()
    step = GraphedStep(model, sgd(model, "cuda_graph"), False, CPU, warmup_steps=0, capture=capture)
    (x1, y1), (x2, y2) = batches([8, 8])
    run(step, [(x1, y1)])
    buffers = step.graphs[8].inputs
    run(step, [(x2, y2)])
    assert step.graphs[8].inputs is buffers and torch.equal(buffers, x2) and torch.equal(step.graphs[8].labels, y2)
    assert buffers.data_ptr() != x2.data_ptr()


def test_graphed_step_takes_back_a_replaced_learning_rate():
    model = tiny_model()
    optimizer = sgd(model, "cuda_graph")
    step = GraphedStep(model, optimizer, False, CPU, warmup_steps=0, capture=FakeCapture())
    lr = step.lrs[0]
    run(step, batches([8]))
    optimizer.param_groups[0]["lr"] = 0.02  # as load_state_dict or a user would
    run(step, batches([8], seed=2))
    assert optimizer.param_groups[0]["lr"] is lr and lr.item() == pytest.approx(0.02)
    optimizer.param_groups[0]["lr"] = torch.tensor(0.03, dtype=torch.float64)
    run(step, batches([8], seed=3))
    assert optimizer.param_groups[0]["lr"] is lr and lr.item() == pytest.approx(0.03)


def test_graphed_step_without_capture_needs_cuda():
    model = tiny_model()
    with pytest.raises(ValueError, match="needs a CUDA device"):
        GraphedStep(model, sgd(model, "cuda_graph"), False, CPU)


# ----------------------------------------------------------------------------- torch.compile

def test_compiled_step_matches_eager():
    # Inductor (C++ on the CPU; gcc dominates the ~20 s) for one batch size: the real compile, one shape.
    data = batches([8, 8, 8])
    eager_model, compiled_model = tiny_model(), tiny_model()
    eager = run(EagerStep(eager_model, sgd(eager_model, "eager"), False, CPU), data)
    compiled = run(CompiledStep(compiled_model, sgd(compiled_model, "compile"), False, CPU), data)
    torch.testing.assert_close(compiled[0], eager[0], rtol=1e-4, atol=1e-5)
    assert compiled[1].item() == eager[1].item()
    assert_same_parameters(compiled_model, eager_model, rtol=1e-4, atol=1e-5)


def test_compiled_step_handles_a_partial_batch():
    # The last partial batch compiles a second static-shape graph; aot_eager keeps the test fast.
    data = batches([8, 8, 3, 8, 3])
    eager_model, compiled_model = tiny_model(), tiny_model()
    eager = run(EagerStep(eager_model, sgd(eager_model, "eager"), False, CPU), data)
    step = CompiledStep(compiled_model, sgd(compiled_model, "compile"), False, CPU,
                        options={"backend": "aot_eager", "dynamic": False})
    compiled = run(step, data)
    torch.testing.assert_close(compiled[0], eager[0])
    assert compiled[1].item() == eager[1].item()
    assert_same_parameters(compiled_model, eager_model)


# ----------------------------------------------------------------------------- the fast profile's schedule

def test_onecycle_rises_then_falls_to_zero():
    total = 100
    factors = [onecycle_factor(k, total, 0.2) for k in range(total)]
    assert factors[0] == pytest.approx(1 / 20) and factors[19] == pytest.approx(1.0)
    assert max(factors) == pytest.approx(1.0) and factors[-1] == pytest.approx(1 / 81)
    assert all(a < b for a, b in zip(factors[:19], factors[1:20]))
    assert all(a > b for a, b in zip(factors[19:], factors[20:]))


def test_onecycle_is_stepped_per_batch_in_training(fake_data, tmp_path):
    cfg = TrainConfig.for_model("dnn", epochs=3, batch_size=50, optimizer="sgd", lr=0.05, nesterov=True,
                                scheduler="onecycle", warmup_fraction=0.25, subset=[100, 20], step_mode="auto")
    record = train_model(cfg, fake_data, device="cpu", results_dir=tmp_path / "r", checkpoint_dir=tmp_path / "c",
                         log=lambda line: None)
    steps_per_epoch = 2
    expected = [0.05 * onecycle_factor(e * steps_per_epoch, 3 * steps_per_epoch, 0.25) for e in range(3)]
    assert [row["lr"] for row in record["history"]] == pytest.approx(expected)
    assert all(math.isfinite(row["train_loss"]) for row in record["history"])


def test_make_scheduler_steps_per_epoch_only_for_step_lr():
    model = tiny_model()
    optimizer = sgd(model, "eager")
    step_lr = make_scheduler(TrainConfig.for_model("custom_resnet"), optimizer)
    assert isinstance(step_lr, torch.optim.lr_scheduler.StepLR)
    assert make_scheduler(TrainConfig.for_model("dnn"), optimizer) is None


@pytest.mark.parametrize("overrides, message", [
    ({"nesterov": True}, "NESTEROV=True needs OPTIMIZER='sgd'"),
    ({"optimizer": "sgd", "momentum": 0.0, "nesterov": True}, "NESTEROV=True needs"),
    ({"nesterov": "yes"}, "NESTEROV must be True or False"),
    ({"warmup_fraction": 1.0}, r"WARMUP_FRACTION must be in \[0, 1\)"),
    ({"scheduler": "cosine"}, "SCHEDULER must be one of"),
])
def test_fast_profile_parameters_are_validated(overrides, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig.for_model("custom_resnet", **overrides)
