"""Small fakes of the cost and serving layers for the validation tests (affine step times, no catalog data)."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from infersim.analyze.validate_setup import Setup
from infersim.catalog import Catalog, load_catalog
from infersim.errors import InputError
from infersim.graph.batch import StepShape

HEADER = ("id,source,source_ref,hardware,n_chips,framework,model,weight_dtype,kv_dtype,tp,pp,scenario,batch,qps,"
          "input_len,output_len,metric,value,unit,notes")


@dataclass(frozen=True)
class FakeCoster:
    """step = fixed + per_token * tokens + per_ctx * (decode context + prefill pairs / 1000), on `tp` units."""

    fixed_s: float = 1e-3
    per_token_s: float = 1e-5
    per_ctx_s: float = 1e-8
    kv_tokens: int = 1_000_000

    def step_time(self, shape: StepShape) -> float:
        return (self.fixed_s + self.per_token_s * shape.tokens
                + self.per_ctx_s * (shape.decode_ctx_tokens + shape.prefill_attn_pairs / 1000))

    def step_energy(self, shape: StepShape) -> float:
        return self.step_time(shape) * 100.0

    def decode_affine(self, decode_seqs: int) -> tuple[float, float]:
        return self.fixed_s + self.per_token_s * decode_seqs, self.per_ctx_s

    @property
    def kv_capacity_tokens(self) -> int:
        return self.kv_tokens

    @property
    def idle_power_w(self) -> float:
        return 50.0


@dataclass
class FakeBackend:
    """Costers scale 1/tp; a replica fits only from `min_tp` on; serving = steady-state closed form."""

    min_tp: int = 1
    calls: int = 0

    def coster(self, setup: Setup, tp: int) -> FakeCoster:
        self.calls += 1
        if tp < self.min_tp:
            raise InputError(f"{setup.model} does not fit on TP{tp}")
        base = FakeCoster()
        return replace(base, fixed_s=base.fixed_s / tp, per_token_s=base.per_token_s / tp)

    def allowed_tp(self, setup: Setup) -> tuple[int, ...]:
        return ()

    def concurrency(self, setup: Setup, coster: FakeCoster) -> int:
        return 64

    def serve(self, setup: Setup, tp: int, coster: FakeCoster, requests: int) -> Mapping[str, float]:
        batch = setup.batch or 64
        step = coster.step_time(StepShape(decode_seqs=batch, decode_ctx_tokens=batch * setup.input_len))
        tput = batch / step
        return {"output_throughput": tput, "total_throughput": tput * (1 + setup.input_len / setup.output_len),
                "request_throughput": tput / setup.output_len, "tpot_mean": step * 1e3,
                "ttft_mean": step * 1e3 * 2, "ttft_p99": step * 1e3 * 4, "tpot_p99": step * 1.2e3}


def fake_catalog() -> Catalog:
    """The built-in chips and models, with engine-profile names pointing at placeholder paths."""
    cat = load_catalog()
    engines = {p: Path(f"/nonexistent/{p}.yaml") for p in ("neuron-tnx-2.18", "trtllm-0.17", "trtllm-mlperf-4.0")}
    return Catalog(cat.chips, cat.instances, cat.model_files, {**cat.engine_files, **engines})


def csv_text(*lines: str) -> str:
    return HEADER + "\n" + textwrap.dedent("\n".join(lines)) + "\n"


NEURON_RUN = ("{id},NEURON-2.18,ref,inf2,12,neuron-tnx,llama-3.1-8b,bf16,fp16,24,1,fixed-batch,1,,128,128,"
              "{metric},{value},{unit},{notes}")
