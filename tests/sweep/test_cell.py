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
