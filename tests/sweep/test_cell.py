"""What a cell measures of its trained model: parameters, GMACs, latency ratio and throughput."""
from fusionlab.config import RunConfig
from fusionlab.sweep.cell import measure_costs
from fusionlab.sweep.config import LatencySection

TIMED = ("latency_ratio", "throughput_ips", "throughput_batch", "throughput_device")


def _config(fusion=None) -> RunConfig:
    config = RunConfig()  # the CPU demo preset
    config.model.fusion = fusion
    return config


def test_costs_carry_the_encoder_throughput_and_where_it_was_measured():
    config = _config("add")
    costs = measure_costs(config.model.architecture(), config, LatencySection(runs=2, warmup=1))
    assert costs["throughput_ips"] > 0 and costs["latency_ratio"] > 0
    assert (costs["throughput_batch"], costs["throughput_device"]) == (1, "cpu")


def test_without_latency_neither_latency_nor_throughput_is_timed():
    config = _config()
    costs = measure_costs(config.model.architecture(), config, LatencySection(enabled=False))
    assert [costs[key] for key in TIMED] == [None] * len(TIMED)
    assert costs["gmacs"] > 0 and costs["latency_settings"]["enabled"] is False


def test_costs_are_those_of_an_eager_copy_whatever_the_run_trained_with(monkeypatch):
    import torch

    import fusionlab.models.cost as cost
    from fusionlab.models.speed import apply_speed_options

    config = _config("add")
    plain = config.model.architecture()
    sped = config.model.architecture()
    sped.load_state_dict(plain.state_dict())
    apply_speed_options(sped, channels_last=True, compiled=True)
    timed = []
    monkeypatch.setattr(cost, "latency_ratios", lambda models, *a: timed.append(models["model"]) or {"model": 1.5})
    monkeypatch.setattr(cost, "encoder_throughput", lambda model, *a: timed.append(model) or 2.0)

    costs = [measure_costs(model, config, LatencySection(runs=2, warmup=1)) for model in (plain, sped)]

    assert costs[0] == costs[1]
    for model in timed:
        assert model is not sped and model is not plain
        assert all(module._compiled_call_impl is None for module in model.modules())
        assert all(p.is_contiguous() for p in model.parameters())
        assert not model.training
        for name, value in model.state_dict().items():
            assert torch.equal(value, sped.state_dict()[name])
