import json

import numpy as np
import pytest
import torch

from screening.models import Ensemble, ModelLoadError, StackedNet, parameters_per_member
from screening.models.config import TrainConfig
from screening.models.ensemble import check_featurizer
from screening.models.metrics import regression_metrics
from screening.models.training import batches_per_epoch, epochs_within_budget, one_cycle, train

PAPER_COUNTS = [
    ("elemnet", 86, 4_631_361),
    ("plain17", 145, 4_705_665),
    ("srnet17", 145, 5_554_529),
    ("irnet17", 145, 5_554_529),
    ("irnet48", 145, 11_525_649),
    ("irnet17", 86, 5_433_697),
    ("irnet48", 86, 11_404_817),
    ("brnet", 86, 4_548_385),
    ("ibrnet", 86, 4_548_385),
]


@pytest.mark.parametrize("arch, d_in, count", PAPER_COUNTS)
def test_parameter_counts_match_the_papers(arch, d_in, count):
    assert parameters_per_member(StackedNet(arch, d_in, members=1)) == count


@pytest.mark.parametrize("arch", ["elemnet", "plain24", "srnet24", "irnet24", "brnet"])
def test_any_input_width_and_stacked_equals_one_by_one(arch):
    x = torch.randn(40, 7)
    net = StackedNet(arch, 7, members=3)
    net.reset_parameters([11, 12, 13])
    net.eval()
    together = net(x)
    assert together.shape == (3, 40)
    for k, seed in enumerate([11, 12, 13]):
        single = StackedNet(arch, 7, members=1)
        single.reset_parameters([seed])
        single.eval()
        torch.testing.assert_close(together[k], single(x)[0], rtol=1e-4, atol=1e-4)  # kernel rounding only
    assert not torch.allclose(together[0], together[1])  # members differ


def toy_data(n=400, d=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    y = x[:, 0] * 2 + x[:, 1] ** 2 - x[:, 2] * x[:, 3]
    return x[: n * 3 // 4], y[: n * 3 // 4], x[n * 3 // 4 :], y[n * 3 // 4 :]


@pytest.fixture
def float64():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


@pytest.mark.parametrize("arch, schedule", [("irnet17", "onecycle"), ("ibrnet", "plateau")])
def test_training_together_equals_training_apart(arch, schedule, float64, monkeypatch):
    import screening.models.training as training

    x, y, xv, yv = toy_data()
    kw = dict(architecture=arch, epochs=2, batch_size=64, schedule=schedule, seed=1, plateau_patience=1)
    net = StackedNet(arch, 12, 3)
    net.reset_parameters([1000, 1001, 1002])
    train(net, x, y, xv, yv, TrainConfig(members=3, **kw))
    for k in range(3):
        monkeypatch.setattr(training, "member_seeds", lambda config, k=k: [1000 + k])
        single = StackedNet(arch, 12, 1)
        single.reset_parameters([1000 + k])
        train(single, x, y, xv, yv, TrainConfig(members=1, **kw))
        torch.testing.assert_close(net(xv)[k], single(xv)[0], rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("save_share", [1e12, 1e-12])  # every epoch; only the first and last
def test_resume_after_interruption_equals_uninterrupted_run(tmp_path, float64, monkeypatch, save_share):
    """With checkpoints spaced out (a tiny SAVE_SHARE: written after the first epoch and at the
    end only, as on a GPU whose epochs are faster than a write), the crash loses the unsaved
    epochs, which are trained again to the same result."""
    import screening.models.training as training

    monkeypatch.setattr(training, "SAVE_SHARE", save_share)
    writes = []
    real_save = training._save_state
    monkeypatch.setattr(training, "_save_state", lambda *a: (writes.append(a[2].epoch), real_save(*a)))
    x, y, xv, yv = toy_data()
    config = TrainConfig(architecture="srnet17", members=2, epochs=4, batch_size=64, seed=3)

    def fresh():
        net = StackedNet("srnet17", 12, 2)
        net.reset_parameters(training.member_seeds(config))
        return net

    reference = fresh()
    train(reference, x, y, xv, yv, config)

    real = training.evaluate_members
    calls = {"n": 0}

    def dies_in_third_epoch(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(training, "evaluate_members", dies_in_third_epoch)
    with pytest.raises(KeyboardInterrupt):
        train(fresh(), x, y, xv, yv, config, state_dir=tmp_path)
    monkeypatch.setattr(training, "evaluate_members", real)
    assert writes == ([1, 2] if save_share > 1 else [1])  # died in the 3rd epoch
    resumed = fresh()
    run, history = train(resumed, x, y, xv, yv, config, state_dir=tmp_path)
    assert run.epoch == 4 and [h["epoch"] for h in history] == [1, 2, 3, 4]
    assert writes[-1] == 4  # a finished run is always saved
    torch.testing.assert_close(resumed(xv), reference(xv), rtol=1e-9, atol=1e-9)

    with pytest.raises(ValueError, match="different configuration"):
        train(
            fresh(), x, y, xv, yv, TrainConfig(architecture="srnet17", members=2, epochs=4, lr=0.5), state_dir=tmp_path
        )
    wider = StackedNet("srnet17", 13, 2)  # same configuration, another featurizer's width
    with pytest.raises(ValueError, match="different network .*shape"):
        train(wider, torch.cat([x, x[:, :1]], 1), y, torch.cat([xv, xv[:, :1]], 1), yv, config, state_dir=tmp_path)


def test_epochs_within_budget():
    assert epochs_within_budget(200, 2, elapsed_s=100, epoch_s=50, budget_s=7200) == 2 + 142
    assert epochs_within_budget(200, 2, elapsed_s=100, epoch_s=10, budget_s=7200) == 200  # at most the epochs asked for
    assert epochs_within_budget(200, 2, elapsed_s=8000, epoch_s=10, budget_s=7200) == 2  # over budget: stop now


def test_one_cycle_is_fitted_to_the_time_budget(tmp_path, monkeypatch):
    """--max-minutes with one-cycle: a slow machine gets fewer epochs, but a whole schedule
    (warm-up, then annealed to the end), planned from the pace of the second epoch; the plan is
    kept when the run resumes. A fake clock makes the pace exact: a training step takes 1 s, so
    an epoch of 300 rows in batches of 64 (5 steps) 5 s."""
    import screening.models.training as training

    class Clock:
        t = 0.0

        def perf_counter(self):
            return self.t

    clock = Clock()
    monkeypatch.setattr(training, "time", clock)
    x, y, xv, yv = (t.float() for t in toy_data())
    config = TrainConfig(architecture="irnet17", members=2, epochs=50, batch_size=64, max_minutes=1.0)
    net = StackedNet("irnet17", 12, 2)
    net.reset_parameters([1, 2])
    net.register_forward_pre_hook(lambda module, args: setattr(clock, "t", clock.t + 1.0) if module.training else None)
    run, history = train(net, x, y, xv, yv, config, state_dir=tmp_path)
    assert run.epoch == run.planned_epochs == len(history) == 2 + (60 - 10) // (1.02 * 5)  # 11 of 50
    assert history[-1]["lr"][0] < 1e-3 / 500  # annealed at the end of the fitted schedule
    assert max(h["lr"][0] for h in history) == pytest.approx(1e-3, rel=0.05)  # the whole warm-up ran
    fitted = [one_cycle(e * 5 - 1, run.epoch * 5, 1e-3) for e in range(1, run.epoch + 1)]
    assert [h["lr"][0] for h in history][1:] == pytest.approx(
        fitted[1:]
    )  # logged from the plan's schedule (epoch 2 too)
    epochs_unbounded = [one_cycle(s, 50 * 5, 1e-3) for s in range(0, 50 * 5, 5)]
    assert epochs_unbounded[run.epoch - 1] > 1e-4  # the 50-epoch schedule cut at this point would not be
    again = StackedNet("irnet17", 12, 2)  # resuming a finished run keeps its plan, trains no more
    rerun, _ = train(again, x, y, xv, yv, config, state_dir=tmp_path)
    assert rerun.epoch == run.epoch and rerun.planned_epochs == run.planned_epochs
    roomy = TrainConfig(architecture="irnet17", members=2, epochs=4, batch_size=64, max_minutes=60)
    assert train(net, x, y, xv, yv, roomy)[0].epoch == 4  # a budget that holds every epoch changes nothing


def test_early_stopping_keeps_best_weights():
    x, y, xv, yv = (t.float() for t in toy_data())
    config = TrainConfig(
        architecture="elemnet", members=2, epochs=30, batch_size=32, lr=3e-2, schedule="constant", patience=2
    )
    net = StackedNet("elemnet", 12, 2)
    net.reset_parameters([5, 6])
    run, history = train(net, x, y, xv, yv, config)
    assert run.epoch < 30  # stopped early
    val = np.array([h["val_mae"] for h in history])
    np.testing.assert_allclose(run.best_mae, val.min(axis=0))
    net.eval()
    final = (net(xv) - yv).abs().mean(dim=1).detach().numpy()
    np.testing.assert_allclose(final, val.min(axis=0), rtol=1e-5)


def test_no_batch_of_a_handful_of_rows():
    """BatchNorm trains on each batch's statistics: a last batch of 2 rows (78,850 rows in 512s)
    made training diverge. Such a remainder is skipped (different rows each epoch); one of at
    least half a batch, or the only batch, is kept."""
    assert [batches_per_epoch(n, 512) for n in (78_850, 72_082, 400, 512, 513, 768)] == [154, 141, 1, 1, 1, 2]
    x, y, xv, yv = (t.float() for t in toy_data())  # 300 training rows
    seen: list[int] = []
    net = StackedNet("irnet17", 12, 2)
    net.reset_parameters([1, 2])
    net.register_forward_pre_hook(lambda module, args: seen.append(args[0].shape[-2]) if module.training else None)
    _, history = train(net, x, y, xv, yv, TrainConfig(architecture="irnet17", members=2, epochs=2, batch_size=149))
    assert seen == [149, 149] * 2  # 300 = 2 x 149 + 2: the 2 are left out
    assert len(history) == 2 and all(np.isfinite(h["train_mae"]).all() for h in history)
    seen.clear()
    train(net, x, y, xv, yv, TrainConfig(architecture="irnet17", members=2, epochs=1, batch_size=200))
    assert seen == [200, 100]  # 100 is half a batch: kept


def test_training_without_validation_rows_keeps_the_last_epoch(tmp_path):
    from safetensors.torch import load_file

    x, y, xv, yv = (t.float() for t in toy_data())
    none = torch.zeros(0, 12), torch.zeros(0)
    config = TrainConfig(architecture="srnet17", members=2, epochs=3, batch_size=64)
    net = StackedNet("srnet17", 12, 2)
    net.reset_parameters([1, 2])
    run, history = train(net, x, y, *none, config)
    assert run.best_epoch == [2, 2] and [h["val_mae"] for h in history] == [None] * 3
    # the same training with validation rows: its last epoch (saved in the state) is this net
    twin = StackedNet("srnet17", 12, 2)
    twin.reset_parameters([1, 2])
    train(twin, x, y, xv, yv, config, state_dir=tmp_path)
    last = load_file(str(tmp_path / "state.safetensors"))
    for name, tensor in net.state_dict().items():
        torch.testing.assert_close(tensor, last[f"net.{name}"], rtol=0, atol=0)
    with pytest.raises(ValueError, match="need validation rows"):
        train(net, x, y, *none, TrainConfig(architecture="srnet17", members=2, epochs=1, patience=3))
    with pytest.raises(ValueError, match="need validation rows"):
        train(net, x, y, *none, TrainConfig.for_architecture("ibrnet", members=2, epochs=1))


def test_an_auxiliary_source_trains_through_its_own_output_unit():
    """Rows of another source whose values sit 2 units above the primary's (another database's
    reference energies) teach the shared network without shifting the primary predictions;
    pooled into one output they pull them up. In 8 epochs that pull is 0.35-0.71 (seeds 1-8 in
    pairs, 2 cores) and the own unit's offset -0.07-0.00; where the training runs differs by
    processor (an AMX Xeon rounds its matrix products differently), hence the wide margins."""
    from screening.models.inference import FoldedNet

    x, y, xv, yv = (t.float() for t in toy_data(n=1200))
    xa, ya = torch.randn(900, 12, generator=torch.Generator().manual_seed(5)), None
    ya = xa[:, 0] * 2 + xa[:, 1] ** 2 - xa[:, 2] * xa[:, 3] + 2.0
    x_all, y_all = torch.cat([x, xa]), torch.cat([y, ya])
    source = torch.cat([torch.zeros(len(x), dtype=torch.long), torch.ones(len(xa), dtype=torch.long)])
    config = TrainConfig(architecture="irnet17", members=2, epochs=8, batch_size=128, weight_decay=0.0)
    bias = {}
    for heads in (1, 2):
        net = StackedNet("irnet17", 12, 2, heads=heads)
        net.reset_parameters([1, 2])
        train(net, x_all, y_all, xv, yv, config, source=source if heads == 2 else None)
        net.eval()
        if heads == 2:
            with torch.no_grad():
                both = net(xv)
            assert both.shape == (2, len(xv), 2)
            assert float((both[..., 1] - both[..., 0]).mean()) == pytest.approx(
                2.0, abs=0.5
            )  # the offset is the head's
            folded = FoldedNet(net)(xv)
            net.keep_primary_head()
            with torch.no_grad():
                torch.testing.assert_close(net(xv), both[..., 0])  # the ordinary network, same primary predictions
            torch.testing.assert_close(folded, both[..., 0], rtol=1e-4, atol=1e-4)  # validation reads head 0
            assert net.output.weight.shape[-1] == 1 and net.heads == 1
        with torch.no_grad():
            bias[heads] = float((net(xv) - yv).mean())
    assert abs(bias[2]) < 0.15 < 0.25 < bias[1], bias
    with pytest.raises(ValueError, match="output head"):
        train(StackedNet("irnet17", 12, 2, heads=2), x, y, xv, yv, config)  # no sources given


def test_plateau_reduces_member_learning_rates():
    x, y, xv, yv = (t.float() for t in toy_data())
    config = TrainConfig.for_architecture(
        "ibrnet", members=2, epochs=6, batch_size=64, lr=1e-3, plateau_patience=1, plateau_min_delta=10.0
    )
    assert config.schedule == "plateau" and config.patience == 50
    net = StackedNet("ibrnet", 12, 2)
    net.reset_parameters([1, 2])
    run, history = train(net, x, y, xv, yv, config)
    assert history[0]["lr"] == pytest.approx([1e-3, 1e-3]) and run.lr[0] < 1e-5


def test_one_cycle_shape():
    lrs = [one_cycle(s, 1000, 1e-3) for s in range(1000)]
    assert lrs[0] == pytest.approx(4e-5) and max(lrs) == pytest.approx(1e-3, rel=1e-3)
    assert lrs[-1] < 1e-6


def make_ensemble(d_in=231, members=2, featurizer="magpie145+elemfrac86"):
    net = StackedNet("irnet17", d_in, members)
    net.reset_parameters(list(range(members)))
    card = {"architecture": "irnet17", "d_in": d_in, "members": members, "featurizer": featurizer}
    return Ensemble(net, torch.zeros(d_in), torch.ones(d_in), 0.5, 2.0, card)


def test_checkpoint_round_trip_and_fp16(tmp_path):
    model = make_ensemble()
    x = np.random.default_rng(0).normal(size=(50, 231)).astype(np.float32)
    mean, _, members = model.predict(x)
    np.testing.assert_allclose(mean, members.mean(axis=0), rtol=1e-6)
    model.save(tmp_path / "fp32")
    loaded = Ensemble.load(tmp_path / "fp32")
    np.testing.assert_array_equal(loaded.predict(x)[0], mean)
    check_featurizer(loaded)
    model.save(tmp_path / "fp16", half=True)
    assert (tmp_path / "fp16" / "model.safetensors").stat().st_size < 0.6 * (
        tmp_path / "fp32" / "model.safetensors"
    ).stat().st_size
    scale = np.abs(mean).max()  # an untrained IRNet's outputs reach tens of units
    np.testing.assert_allclose(Ensemble.load(tmp_path / "fp16").predict(x)[0], mean, rtol=0, atol=0.01 * scale)


def test_bad_checkpoints_give_clear_errors(tmp_path, capsys):
    model = make_ensemble()
    good = model.save(tmp_path / "good")
    weights = (good / "model.safetensors").read_bytes()

    with pytest.raises(ModelLoadError, match="does not exist"):
        Ensemble.load(tmp_path / "absent")
    truncated = tmp_path / "truncated"
    model.save(truncated)
    (truncated / "model.safetensors").write_bytes(weights[: len(weights) // 3])
    with pytest.raises(ModelLoadError, match="sha256 recorded in .*card.json: the weights are corrupt"):
        Ensemble.load(truncated)
    garbage = tmp_path / "garbage"
    model.save(garbage)
    (garbage / "model.safetensors").write_bytes(b"\x80\x04pickle!" * 10)
    with pytest.raises(ModelLoadError, match="weights are corrupt"):
        Ensemble.load(garbage)
    card = json.loads((garbage / "card.json").read_text())
    (garbage / "card.json").write_text(json.dumps({k: v for k, v in card.items() if k != "weights_sha256"}))
    with pytest.raises(ModelLoadError, match="corrupt or truncated"):  # a card without the hash: safetensors' own check
        Ensemble.load(garbage)
    unknown = tmp_path / "unknown"
    model.save(unknown)
    card = json.loads((unknown / "card.json").read_text())
    (unknown / "card.json").write_text(json.dumps(card | {"architecture": "resnet9000"}))
    with pytest.raises(ModelLoadError, match="unknown architecture 'resnet9000'"):
        Ensemble.load(unknown)
    mismatch = tmp_path / "mismatch"
    model.save(mismatch)
    (mismatch / "card.json").write_text(json.dumps(card | {"d_in": 145}))
    with pytest.raises(ModelLoadError, match="does not match its card"):
        Ensemble.load(mismatch)
    flipped = tmp_path / "flipped"  # header intact, 400 bytes of weights changed: plausible numbers, wrong model
    model.save(flipped)
    damaged = bytearray(weights)
    damaged[-1000:-600] = bytes(b ^ 0x5A for b in damaged[-1000:-600])
    (flipped / "model.safetensors").write_bytes(bytes(damaged))
    with pytest.raises(ModelLoadError, match=f"{flipped / 'model.safetensors'} does not match the sha256"):
        Ensemble.load(flipped)
    from screening.cli import main

    (tmp_path / "in.csv").write_text("formula\nFe2O3\n")
    assert (
        main(["predict", "--model", str(flipped), "--data", str(tmp_path / "in.csv"), "--out", str(tmp_path / "p.csv")])
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        len(err) == 1 and "model.safetensors does not match the sha256" in err[0] and not (tmp_path / "p.csv").exists()
    )
    wrong_width = make_ensemble(featurizer="magpie145")
    with pytest.raises(ModelLoadError, match="gives 145 features but the model expects 231"):
        check_featurizer(wrong_width)
    with pytest.raises(ValueError, match="expects 231 features"):
        model.predict(np.zeros((3, 145), np.float32))


def test_regression_metrics():
    m = regression_metrics([1.0, 2.0, 3.0], [1.0, 2.5, 2.0])
    assert m["mae"] == pytest.approx(0.5) and m["rmse"] == pytest.approx(np.sqrt(1.25 / 3))
    assert m["r2"] == pytest.approx(1 - 1.25 / 2.0)
    with pytest.raises(ValueError):
        regression_metrics([], [])


def test_config_validation():
    with pytest.raises(ValueError, match="unknown architecture"):
        TrainConfig(architecture="transformer")
    with pytest.raises(ValueError, match="unknown schedule"):
        TrainConfig(schedule="cosine")


@pytest.mark.parametrize("arch", ["elemnet", "plain17", "srnet17", "irnet17", "brnet"])
@pytest.mark.parametrize("memberwise", [False, True])
def test_folded_inference_equals_the_module(arch, memberwise, float64):
    """BatchNorm folded into the linear layers: the same function (float64: to 1e-10), and
    bfloat16 close to it; stacked (the CPU's way) or one member at a time with the bias and ReLU
    in the product's epilogue (the GPU's)."""
    from screening.models.inference import FoldedNet

    net = StackedNet(arch, 9, members=2)
    net.reset_parameters([3, 4])
    _randomize_batchnorm(net)
    net.eval()
    x = torch.randn(64, 9)
    with torch.no_grad():
        expected = net(x)
    exact = FoldedNet(net, torch.float64, memberwise)(x).double()
    torch.testing.assert_close(exact, expected.double(), rtol=0, atol=1e-10)
    low = FoldedNet(net, torch.bfloat16, memberwise)(x).double()
    assert (low - expected).abs().max() < 0.06 * expected.abs().max()  # 17 layers of ~3 significant digits


def _randomize_batchnorm(net, seed=0):
    g = torch.Generator().manual_seed(seed)
    from screening.models.layers import StackedBatchNorm

    for module in net.modules():
        if isinstance(module, StackedBatchNorm):
            with torch.no_grad():
                for tensor, low in ((module.weight, 0.5), (module.running_var, 0.2)):
                    tensor.copy_(low + torch.rand(tensor.shape, generator=g, dtype=tensor.dtype))
                for tensor in (module.bias, module.running_mean):
                    tensor.copy_(0.3 * torch.randn(tensor.shape, generator=g, dtype=tensor.dtype))


def test_the_kept_cpu_program_follows_weights_changed_in_place():
    net = StackedNet("irnet17", 12, 2)
    net.reset_parameters([0, 1])
    _randomize_batchnorm(net)
    model = Ensemble(net, torch.full((12,), 0.1), torch.full((12,), 1.5), 0.5, 2.0, {"featurizer": "columns:a"})
    x = np.random.default_rng(0).normal(size=(300, 12))
    before = model.predict_members(x)
    np.testing.assert_array_equal(model.predict_members(x), before)  # the kept program, the same numbers
    with torch.no_grad():
        net.output.bias.add_(1.0)  # every prediction moves by target_std = 2
    np.testing.assert_allclose(model.predict_members(x), before + 2.0, rtol=1e-5, atol=1e-4)
    from screening.models.layers import StackedBatchNorm

    for module in net.modules():  # BatchNorm statistics changed in place count too
        if isinstance(module, StackedBatchNorm):
            module.running_mean.add_(0.5)
    assert np.abs(model.predict_members(x) - (before + 2.0)).max() > 1e-3


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
@pytest.mark.parametrize("arch", ["elemnet", "srnet17", "irnet17", "brnet"])
def test_cuda_predictions_equal_the_cpu_ones(arch):
    """The GPU path (pinned, overlapped copies; members one at a time with fused epilogues; mean
    and spread on the GPU) computes the same thing as the CPU path; its kept scorer follows
    weights changed in place."""
    net = StackedNet(arch, 12, 3)
    net.reset_parameters([0, 1, 2])
    _randomize_batchnorm(net)
    model = Ensemble(net, torch.full((12,), 0.1), torch.full((12,), 1.5), 0.5, 2.0, {"featurizer": "columns:a"})
    x = np.random.default_rng(0).normal(size=(1001, 12))  # float64: converted on the way
    cpu = model.predict_members(x)
    cpu_bf16 = model.predict_members(x, bf16=True)
    model.to("cuda")
    for _ in range(2):  # the second call reuses the kept scorer
        gpu = model.predict_members(x, batch_size=300)
        np.testing.assert_allclose(gpu, cpu, rtol=1e-4, atol=1e-3)  # outputs up to ~200 here
    for got, want in zip(model.predict(x, batch_size=300), (cpu.mean(0), cpu.std(0), cpu)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-3)
    gpu_bf16 = model.predict_members(x, batch_size=300, bf16=True)
    scale = np.abs(cpu).max()
    assert np.abs(gpu_bf16 - cpu).max() < 0.03 * scale and np.abs(gpu_bf16 - cpu_bf16).max() < 0.03 * scale
    with torch.no_grad():
        net.output.bias.add_(1.0)  # every prediction moves by target_std = 2
    np.testing.assert_allclose(model.predict_members(x, batch_size=300), cpu + 2.0, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(model.predict_members(x[:7], batch_size=300), cpu[:, :7] + 2.0, rtol=1e-4, atol=1e-3)


def test_predict_refuses_an_existing_or_folder_out_before_any_work(tmp_path, capsys):
    from screening.cli import main

    (tmp_path / "in.csv").write_text("formula\nFe2O3\n")
    (tmp_path / "taken.parquet").write_text("keep me")
    for out, why in ((tmp_path / "taken.parquet", "exists"), (tmp_path, "is a folder")):
        assert (
            main(
                [
                    "predict",
                    "--model",
                    str(tmp_path / "no-model"),
                    "--data",
                    str(tmp_path / "in.csv"),
                    "--out",
                    str(out),
                ]
            )
            == 2
        )
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and why in err[0]  # refused before the (missing) model is even looked at
    assert (tmp_path / "taken.parquet").read_text() == "keep me"
    assert (
        main(["predict", "--model", str(tmp_path), "--data", str(tmp_path), "--out", str(tmp_path / "p.parquet")]) == 2
    )
    assert "card.json is missing" in capsys.readouterr().err or "is a folder" in capsys.readouterr().err


def test_predictions_name_the_raw_spread_and_the_calibrated_std_apart():
    import pandas as pd

    from screening.models.ensemble import predict_frame

    model = make_ensemble(d_in=86, featurizer="elemfrac86")
    frame = pd.DataFrame({"formula": ["Fe2O3", "LiCoO2", "Xx"]})
    raw, rejected = predict_frame(model, frame)
    assert "pred_sigma" not in raw.columns and [r.formula for r in rejected] == ["Xx"]
    assert not raw["dilute"].any()
    model.card["uncertainty"] = {"scale": 3.0, "floor": 0.02}
    calibrated, _ = predict_frame(model, frame)
    np.testing.assert_allclose(calibrated["pred_sigma"], np.sqrt((3.0 * calibrated["pred_std"]) ** 2 + 0.02**2))
