"""Engine profiles: every shipped profile loads; calibrated overrides merge per generation; bad files are one
sentence naming the file and field."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from infersim.catalog import DATA_DIR, load_catalog
from infersim.catalog.engines import engine_from_file, load_engine
from infersim.cost.step import StepCostModel
from infersim.errors import InputError
from infersim.graph.batch import decode, prefill
from infersim.graph.numerics import resolve_numerics
from infersim.graph.shard import Parallel

REQUIRED = ("neuron-tnx-2.18", "nxdi-2.2x", "vllm-neuron", "trtllm-0.5", "trtllm-0.6", "trtllm-0.14", "trtllm-0.17",
            "trtllm-mlperf-4.0", "trtllm-mlperf-4.1", "vllm-0.10", "jetstream-pt", "saxml")


def test_every_required_profile_loads_with_provenance() -> None:
    cat = load_catalog()
    for name in REQUIRED:
        p = load_engine(cat, name)
        assert p.name == name and p.families and "*" in p.efficiency and p.provenance.get("*")
        assert 0 < p.eff("any-generation").matmul <= 1 and 0 < p.kv_memory_fraction <= 1
    neuron = load_engine(cat, "neuron-tnx-2.18")
    pairs = zip(neuron.buckets, neuron.buckets[1:], strict=False)
    assert neuron.buckets[0] == 128 and all(b == 2 * a for a, b in pairs)


def _write(root: Path, engine: str, calibration: str | None) -> Path:
    (root / "engines").mkdir(parents=True)
    path = root / "engines" / "toy.yaml"
    path.write_text(engine)
    if calibration is not None:
        (root / "calibration").mkdir()
        (root / "calibration" / "toy.yaml").write_text(calibration)
    return path


TOY = """name: toy
framework: vllm
version: "1"
families: [gpu]
batching: continuous
max_batch: 8
max_tokens_per_step: 512
kv_block_tokens: 16
kv_memory_fraction: 0.9
efficiency:
  "*": {matmul: 0.5, hbm: 0.6}
  hopper: {hbm: 0.7}
provenance: {"*": "test"}
"""


def test_calibration_overrides_merge_over_defaults(tmp_path: Path) -> None:
    cal = 'efficiency:\n  hopper: {matmul: 0.9}\n  ada: {kv_read: 0.3}\nprovenance: {hopper: "fit on 12 rows"}\n'
    p = engine_from_file(_write(tmp_path, TOY, cal))
    assert p.eff("hopper").matmul == 0.9 and p.eff("hopper").hbm == 0.7
    assert p.eff("ada").kv_read == 0.3 and p.eff("ada").matmul == 0.5
    assert p.eff("ampere").matmul == 0.5 and p.provenance["hopper"].startswith("calibrated: fit on 12 rows")


def test_unknown_efficiency_field_is_one_sentence(tmp_path: Path) -> None:
    path = _write(tmp_path, TOY.replace("hbm: 0.7", "hbmm: 0.7"), None)
    with pytest.raises(InputError, match=r'toy.yaml: field "efficiency.hopper.hbmm" is not an Efficiency field'):
        engine_from_file(path)


def test_shipped_calibration_files_name_known_profiles() -> None:
    cal_dir = DATA_DIR / "calibration"
    for path in sorted(cal_dir.glob("*.yaml")) if cal_dir.exists() else []:
        assert (DATA_DIR / "engines" / path.name).exists(), path


def test_a_profile_that_extends_another_states_only_what_changed(tmp_path: Path) -> None:
    base = _write(tmp_path, TOY, None)
    child = base.with_name("toy-2.yaml")
    child.write_text('extends: toy\nname: toy-2\nversion: "2"\nmax_batch: 16\n')
    p = engine_from_file(child)
    assert (p.name, p.version, p.max_batch) == ("toy-2", "2", 16)
    assert p.eff("hopper").hbm == 0.7 and p.kv_memory_fraction == 0.9 and p.provenance["*"] == "test"
    assert engine_from_file(base).max_batch == 8  # the base profile is unchanged


@pytest.mark.parametrize(("extends", "message"), [
    ("tyo", r'toy-2.yaml: field "extends" must name another engine file in .*; allowed: toy$'),
    ("toy-2", r'toy-2.yaml: field "extends" must name another engine file in .*; allowed: toy$'),
])
def test_extending_an_unknown_profile_is_one_sentence(tmp_path: Path, extends: str, message: str) -> None:
    child = _write(tmp_path, TOY, None).with_name("toy-2.yaml")
    child.write_text(f"extends: {extends}\nname: toy-2\n")
    with pytest.raises(InputError, match=message):
        engine_from_file(child)


def test_profiles_that_extend_each_other_in_a_loop_are_refused(tmp_path: Path) -> None:
    base = _write(tmp_path, "extends: toy-2\n" + TOY, None)
    base.with_name("toy-2.yaml").write_text("extends: toy\nname: toy-2\n")
    with pytest.raises(InputError, match=r'field "extends" loops back to'):
        engine_from_file(base)


def test_tensorrt_llm_profiles_rotate_q_and_k_inside_attention() -> None:
    """TensorRT-LLM's GPT attention plugin computes RoPE: its steps have no rope pass and cost no more for it;
    vLLM, Neuron and XLA stacks keep the pass."""
    cat = load_catalog()
    fused = {name for name in REQUIRED if load_engine(cat, name).rope_in_attention}
    assert fused == {n for n in REQUIRED if n.startswith("trtllm")}
    chip = cat.chip("h100-sxm")
    trt = load_engine(cat, "trtllm-0.14")
    fused_sm, apart_sm = (StepCostModel(cat.model("llama-3.1-8b"), chip, cat.instance("p5.48xlarge"), Parallel(tp=1),
                                        resolve_numerics(chip, "bf16"), p)
                          for p in (trt, replace(trt, rope_in_attention=False)))
    for shape in (prefill(1, 2048), decode(16, 1024)):
        without, with_pass = fused_sm.cost(shape), apart_sm.cost(shape)
        assert "attn.rope" in [oc.op.name for oc in with_pass] and "attn.rope" not in [oc.op.name for oc in without]
        assert without.total.seconds < with_pass.total.seconds
