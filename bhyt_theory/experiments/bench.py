"""Benchmarks behind ``make bench``: they measure and report, they assert nothing.

Four figures, each set against its target and measured in one run; the
throughput and sweep ratios at each requested torch thread count (default 1 and 2):

1. Monte Carlo throughput: the matmul FLOP/s a streamed run achieves, divided by
   the FLOP/s of a plain dense ``torch.matmul`` of the block's largest shape on
   the same machine, measured in the same run (target ≥ 0.8 at widths 512 and
   1024, batch × T = 1024). Reported for the forward pass alone and for the whole
   streamed run (weights drawn, block built, ``c_attn`` computed, probes
   evaluated). The blocks have the Llama-374M proportions (head dim 64, 4 query
   heads per KV head, MLP 4·width; at width 1024 the 374M block itself). Each
   ratio is given twice: per wall-clock second, and per CPU second of the
   process (all threads), which other processes on shared cores disturb less.
2. Mean-field time of ``meanfield.predict`` at depth 1024, T 64 (target < 0.5 s;
   an absolute time, so only meaningful on unshared cores).
3. Peak resident memory of a streamed Monte Carlo run at depth 1024 over that at
   depth 16 (target ≤ 1.2×), each the high-water mark of a fresh process.
4. What a user pays for a sweep: the wall time of a full ``montecarlo.sweep``
   (every scheme × depths {8, 16, 32, 64} × 4 seeds at width 256, T 128, batch 4,
   no cache) over the time the matmuls of its deepest runs alone would take at the
   dense-matmul rate measured in the same run (target ≤ 1.3): sharing prefixes
   and weight draws should leave little beyond those matmuls. At 2 threads also
   with the sweep's tasks (one per seed) on 2 Dask worker processes of one thread
   each, against the same 2-thread dense rate: what ``--workers 2`` buys.

The streamed run of 1 and the serial sweep of 4 are also split by part
(``cost_split``): matmuls, the attention kernel, the seeded weight draw and the
rest, each in units of the ideal matmul time. The first three are a floor that no
saving elsewhere can go below; the bench sets it against each target's allowance
(1 / 0.8 = 1.25 for a ratio of 0.8). A second floor (``block_floor``) takes the
rest as low as the project's tools can: one block's forward pass, without probe or
construction, eager or compiled by ``torch.compile`` (its element-wise work fused),
whichever is faster, plus its weight draw; a target whose allowance is below it
cannot be met by removing interpreter or element-wise overhead, only by faster
matmuls or a faster draw.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
import warnings
from typing import Callable, Sequence

import pandas as pd
import torch

from ..numerics.inputs import InputSpec, gaussian_inputs
from ..numerics.model import DRAW_LABEL, SCHEMES, StackConfig, build_block, draw_weights, linear_shapes
from ..theory.meanfield import predict
from . import executor
from .heap import keep_freed_heap
from .montecarlo import stream_trace, sweep


def block_matmul_flops(config: StackConfig, batch: int, length: int) -> int:
    """Matmul FLOPs (2 per multiply-add) of one block's forward pass.

    Notes
    -----
    With ``N = batch · length`` tokens, width ``d``, ``H`` query and ``H_kv``
    key/value heads of size ``h``, MLP width ``f``:

    - projections: ``2N·d·h·(H + 2H_kv)`` (Q, K, V) ``+ 2N·H·h·d`` (O);
    - attention: ``2 · batch · H · h · T(T+1)`` for ``QKᵀ`` and ``PV`` together,
      counting only the causal (j ≤ t) products that are needed, so a kernel
      that computes the full square is not credited for the masked half;
    - SwiGLU: ``3 · 2N·d·f`` (gate, up, down).

    Norms, RoPE, softmax and the element-wise products are not matmuls and are
    not counted.
    """
    n, d, h, f = batch * length, config.width, config.head_dim, config.mlp_width
    projections = 2 * n * d * h * (config.heads + 2 * config.kv_heads) + 2 * n * config.heads * h * d
    attention = 2 * batch * config.heads * h * length * (length + 1)
    return projections + attention + 3 * 2 * n * d * f


def _synchronise(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _times(work: Callable[[], object], device: str) -> tuple[float, float]:
    """Wall-clock and process CPU seconds (all threads) of ``work()``."""
    _synchronise(device)
    start, start_cpu = time.perf_counter(), time.process_time()
    work()
    _synchronise(device)
    return time.perf_counter() - start, time.process_time() - start_cpu


def _best_seconds(work: Callable[[], object], device: str, repeats: int) -> float:
    """The shortest wall time of ``repeats`` calls of ``work()`` after a warm-up call."""
    work()
    return min(_times(work, device)[0] for _ in range(repeats))


def dense_matmul_operands(rows: int, inner: int, columns: int, device: str = "cpu") -> Callable[[], object]:
    """A ``rows × inner`` by ``inner × columns`` float32 ``torch.matmul``, ready to time."""
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(rows, inner, generator=generator).to(device)
    b = torch.randn(inner, columns, generator=generator).to(device)
    return lambda: torch.matmul(a, b)


@torch.no_grad()
def monte_carlo_throughput(config: StackConfig, batch: int, length: int, repeats: int = 5) -> dict:
    """Achieved matmul FLOP/s of a streamed run and of the bare forward pass,
    each over the dense-matmul rate of the block's MLP shape, measured alongside.

    The three are timed in turn, ``repeats`` rounds after a warm-up round, and
    each keeps its shortest time: on a shared machine that is the least
    disturbed measurement, and interleaving gives all three the same chances.

    Returns a dict with ``flops_per_block``, ``dense``, ``forward`` and
    ``streamed`` (FLOP per wall second), the two ratios ``forward_ratio`` and
    ``streamed_ratio``, and the same ratios per process CPU second
    (``forward_cpu_ratio``, ``streamed_cpu_ratio``). ``streamed_split``: the streamed run's
    best wall time over its matmuls' time at the dense rate (``1 / streamed_ratio``), split
    into the parts of ``cost_split`` (one more, profiled run).
    """
    device = config.device
    keep_freed_heap()  # the policy of streamed runs, from the first round of both
    x = gaussian_inputs(config.width, batch, length, InputSpec().std, 1).to(device)
    blocks = [build_block(config, layer, 0) for layer in range(config.depth)]

    def forward():
        h = x
        for block in blocks:
            h = block(h)
        return h

    rows, inner, columns = batch * length, config.width, config.mlp_width
    work = {
        "dense": dense_matmul_operands(rows, inner, columns, device),
        "forward": forward,
        "streamed": lambda: stream_trace(config, 0, x),
    }
    best = {name: math.inf for name in work}
    best_cpu = dict(best)
    for round_ in range(repeats + 1):
        for name, job in work.items():
            seconds, cpu_seconds = _times(job, device)
            if round_:
                best[name] = min(best[name], seconds)
                best_cpu[name] = min(best_cpu[name], cpu_seconds)
    flops = block_matmul_flops(config, batch, length) * config.depth
    work_flops = {"dense": 2 * rows * inner * columns, "forward": flops, "streamed": flops}
    rates = {name: work_flops[name] / best[name] for name in work}
    cpu_rates = {name: work_flops[name] / best_cpu[name] for name in work}
    # The streamed run's best wall time in units of its matmuls at the dense rate, split by part.
    in_ideal = rates["dense"] / rates["streamed"]
    return {
        "streamed_split": {part: share * in_ideal for part, share in cost_split(work["streamed"]).items()},
        "flops_per_block": flops / config.depth, **rates,
        "forward_ratio": rates["forward"] / rates["dense"], "streamed_ratio": rates["streamed"] / rates["dense"],
        "forward_cpu_ratio": cpu_rates["forward"] / cpu_rates["dense"],
        "streamed_cpu_ratio": cpu_rates["streamed"] / cpu_rates["dense"],
    }


# How ``cost_split`` groups torch's operators and the operators they enclose; the rest is
# "other": element-wise work, statistics, block construction and the interpreter between
# operators. ``DRAW_LABEL`` spans the whole weight draw on the calling thread, also while
# its chunks run on others.
COST_PARTS = {"aten::mm": "matmul", "aten::addmm": "matmul", "aten::bmm": "matmul",
              "aten::_scaled_dot_product_flash_attention_for_cpu": "attention kernel",
              "aten::normal_": "weight draw", DRAW_LABEL: "weight draw"}
PARTS = ("matmul", "attention kernel", "weight draw", "other")


def cost_split(work: Callable[[], object]) -> dict[str, float]:
    """Shares of one profiled ``work()`` (``torch.profiler``, CPU) in ``COST_PARTS`` and "other".

    Each share is the parts' operators' own time (``self_cpu_time_total``: on the calling
    thread, so an operator spread over several threads counts once, by its duration) over
    the sum of every operator's own time plus the time between them (the run's wall time
    under the profiler, from inside the profiled block: the profiler's start and stop,
    a second or more the first time in a process, are not the work's). The shares sum to 1.
    An operator goes to the part of the innermost of itself and its enclosing operators
    or labelled ranges that ``COST_PARTS`` names (the scaling inside ``draw_weights`` is
    weight draw), else to "other".
    """
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        start = time.perf_counter()
        work()
        wall = time.perf_counter() - start
    split = dict.fromkeys(PARTS, 0.0)
    for event in profiler.events():
        enclosing = event
        while enclosing is not None and enclosing.name not in COST_PARTS:
            enclosing = enclosing.cpu_parent
        split["other" if enclosing is None else COST_PARTS[enclosing.name]] += event.self_cpu_time_total / 1e6
    profiled = sum(split.values())
    split["other"] += max(0.0, wall - profiled)
    return {part: seconds / max(wall, profiled) for part, seconds in split.items()}


def block_floor(configs: Sequence[StackConfig], batch: int, length: int, repeats: int = 5) -> dict:
    """What a streamed block costs at least: its faster forward pass (eager or compiled) and its weight draw.

    For each config (one per scheme of a sweep), block 0 of seed 0 runs on Gaussian
    inputs without a probe, eager and compiled by ``torch.compile`` (inductor, default
    mode, which fuses the norms, RoPE, SwiGLU and residual adds into a few loops;
    ``torch.compiler.reset()`` first, so each compiles in this process), each timed as
    the best of ``repeats`` calls after a warm-up. The layer's weight draw
    (``model.draw_weights``: its chunks on the torch threads) is timed the same way.
    A streamed run also builds the block, computes ``c_attn`` and evaluates its probes,
    so the faster forward plus the draw is a floor under it that no saving outside
    the block's fused arithmetic can go below.

    Returns seconds per block: ``eager`` and ``compiled`` (means over ``configs``),
    ``draw`` (one draw over ``len(configs)``: the schemes of one seed share each layer's
    draw in a sweep; all configs must have the same weight shapes), ``compile_seconds``
    (the first compiled calls, summed) and ``max_relative_difference`` (the largest
    ``|compiled − eager|`` over ``max |eager|``: inductor fuses and reorders float32
    arithmetic, so the two differ by rounding, not more).
    """
    shapes = {linear_shapes(config) for config in configs}
    if len(shapes) != 1:
        raise ValueError(f"block_floor needs configs with one set of weight shapes, got {sorted(shapes)}")
    shape = shapes.pop()
    device = configs[0].device
    eager, compiled, compile_seconds, difference = [], [], 0.0, 0.0
    with torch.no_grad(), warnings.catch_warnings():
        # Dynamo traces through the rotary tables' lru_cache; the difference below checks the result.
        warnings.filterwarnings("ignore", message="Dynamo detected a call to a `functools.lru_cache`")
        for config in configs:
            x = gaussian_inputs(config.width, batch, length, InputSpec().std, 1).to(device=device,
                                                                                    dtype=config.torch_dtype)
            block = build_block(config, 0, 0)
            eager.append(_best_seconds(lambda: block(x), device, repeats))
            torch.compiler.reset()
            fused = torch.compile(block)
            seconds, _ = _times(lambda: fused(x), device)
            compile_seconds += seconds
            compiled.append(_best_seconds(lambda: fused(x), device, repeats))
            reference = block(x)
            difference = max(difference, float((fused(x) - reference).abs().max() / reference.abs().max()))
    torch.compiler.reset()
    draw = _best_seconds(lambda: draw_weights(shape, configs[0].init_std, 0), device, repeats)
    return {"eager": sum(eager) / len(eager), "compiled": sum(compiled) / len(compiled), "draw": draw / len(configs),
            "compile_seconds": compile_seconds, "max_relative_difference": difference}


def dense_rate(config: StackConfig, batch: int, length: int, repeats: int = 5) -> float:
    """FLOP/s of the dense ``torch.matmul`` of ``config``'s MLP shape at ``batch · length``
    rows, the best of ``repeats`` after a warm-up."""
    rows, inner, columns = batch * length, config.width, config.mlp_width
    work = dense_matmul_operands(rows, inner, columns, config.device)
    return 2 * rows * inner * columns / _best_seconds(work, config.device, repeats)


def sweep_base(width: int, length: int, device: str) -> dict:
    """The bench sweep's configuration besides scheme and depth: heads of size 64 (at least one)."""
    return {"width": width, "heads": max(1, width // 64), "seq_len": length, "device": device}


def sweep_cost(
    schemes: tuple[str, ...], depths: tuple[int, ...], seeds: int, width: int = 256, length: int = 128, batch: int = 4,
    device: str = "cpu", workers: int | None = None,
) -> dict:
    """Wall and CPU seconds of ``montecarlo.sweep`` over ``schemes × depths × range(seeds)``
    (no cache, no progress), and the seconds the matmuls of its deepest runs alone take
    at the dense rate (``dense_rate`` at this process's torch thread count, measured
    just before and just after the sweep; the faster of the two).

    ``workers``: run the sweep's tasks on a local Dask cluster of that many worker
    processes, one torch thread each (``executor.backend``), the cluster's start-up
    included in the time; ``cpu_seconds`` is then this process's alone.

    Returns a dict with ``seconds``, ``cpu_seconds``, ``matmul_seconds`` (deepest
    runs' ``block_matmul_flops`` over the dense rate; ``block_matmul_seconds`` per block), ``dense`` (FLOP/s),
    ``ratio`` (``seconds / matmul_seconds``) and ``runs``; serially also ``split``:
    ``ratio`` split into the parts of ``cost_split``, by the shares of one more, profiled
    sweep of one seed.
    """
    base = sweep_base(width, length, device)
    config = StackConfig(depth=max(depths), **base)
    before = dense_rate(config, batch, length)

    def run(count: int = seeds) -> None:
        with executor.backend(workers=workers), executor.torch_threads(1 if workers else torch.get_num_threads()):
            sweep({"scheme": list(schemes), "depth": list(depths)}, range(count), InputSpec(batch=batch),
                  base=base, cache_dir=None, progress=False)

    seconds, cpu_seconds = _times(run, device)
    rate = max(before, dense_rate(config, batch, length))
    block_seconds = block_matmul_flops(config, batch, length) / rate
    matmul_seconds = len(schemes) * seeds * max(depths) * block_seconds
    cost = {"seconds": seconds, "cpu_seconds": cpu_seconds, "matmul_seconds": matmul_seconds,
            "block_matmul_seconds": block_seconds, "dense": rate, "ratio": seconds / matmul_seconds,
            "runs": len(schemes) * len(depths) * seeds}
    if workers is None:
        cost["split"] = {part: share * cost["ratio"] for part, share in cost_split(lambda: run(1)).items()}
    return cost


def meanfield_seconds(config: StackConfig) -> tuple[float, float]:
    """Wall-clock and process CPU seconds of ``meanfield.predict(config)``."""
    return _times(lambda: predict(config), "cpu")


_CHILD = """
import json, sys, time
import torch
from bhyt_theory.numerics.model import StackConfig
from bhyt_theory.numerics.inputs import InputSpec, gaussian_inputs
from bhyt_theory.experiments.montecarlo import stream_trace

def high_water_kib():
    with open("/proc/self/status") as status:
        return int(next(line for line in status if line.startswith("VmHWM:")).split()[1])

config = StackConfig(**json.loads(sys.argv[1]))
batch, length = int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(1)
x = gaussian_inputs(config.width, batch, length, InputSpec().std, 1)
baseline = high_water_kib()
start = time.perf_counter()
table = stream_trace(config, 0, x)
seconds = time.perf_counter() - start
print(json.dumps({"baseline_kib": baseline, "peak_kib": high_water_kib(), "seconds": seconds, "rows": len(table)}))
"""


def streamed_peak_memory(config: StackConfig, batch: int, length: int) -> dict:
    """Peak resident memory (``VmHWM`` of ``/proc/self/status``, KiB; Linux) of a
    fresh process running one streamed Monte Carlo run of ``config``, and its
    high-water mark before the run (after imports and inputs).

    A fresh process per measurement, because torch's CPU allocations are
    invisible to ``tracemalloc`` and a process's peak never falls; ``VmHWM``
    rather than ``ru_maxrss``, which survives ``exec`` and would report the
    parent's peak.
    """
    result = subprocess.run(
        [sys.executable, "-c", _CHILD, json.dumps(config.as_dict()), str(batch), str(length)],
        capture_output=True, text=True, check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def run_bench(
    widths: tuple[int, ...] = (512, 1024),
    throughput_depth: int = 4,
    batch: int = 8,
    length: int = 128,
    memory_width: int = 256,
    memory_depths: tuple[int, int] = (16, 1024),
    meanfield_lengths: tuple[int, ...] = (64,),
    meanfield_schemes: tuple[str, ...] = ("bhyt",),
    threads: tuple[int, ...] = (1, 2),
    sweep_schemes: tuple[str, ...] = SCHEMES,
    sweep_depths: tuple[int, ...] = (8, 16, 32, 64),
    sweep_seeds: int = 4,
    sweep_width: int = 256,
    sweep_length: int = 128,
    device: str = "cpu",
    log: Callable[[str], None] = lambda message: print(message, file=sys.stderr, flush=True),
) -> pd.DataFrame:
    """Every benchmark of the module docstring, as a table of figures and targets.

    Memory is measured first, in child processes, then, at each thread count of
    ``threads``, throughput at each width and the full sweep (``sweep_cost``) — at a
    count above 1 on a CPU also on that many Dask workers of one thread each, the
    sweep's tasks in parallel — then mean-field time, all in this process. Columns:
    ``figure``, ``value``, ``target``, ``meets`` (empty where no target applies), ``setting``.
    """
    rows = []

    def add(figure, value, setting, target="", meets=""):
        rows.append({"figure": figure, "value": value, "target": target, "meets": meets, "setting": setting})

    def add_split(run: str, unit: str, split: dict, setting: str, allowance: float, target: str) -> None:
        """A row per part of ``split`` (``cost_split``'s parts, in units of ``unit``), and one for
        the floor the parts other than "other" set, against ``allowance``."""
        for part, value in split.items():
            add(f"{run}: {part} time / {unit}", value, setting)
        floor = sum(value for part, value in split.items() if part != "other")
        add(f"{run}: {' + '.join(PARTS[:-1])} / {unit}", floor, setting, target, bool(floor <= allowance))

    def add_floor(run: str, configs: list[StackConfig], batch_: int, ideal: float, unit: str, setting: str,
                  allowance: float, target: str) -> None:
        """Rows of ``block_floor(configs)`` in units of ``ideal`` (one block's matmuls at the dense
        rate), and the faster of the two forwards plus the draw against ``allowance``."""
        try:
            floor = block_floor(configs, batch_, configs[0].seq_len)
        except Exception as error:  # torch.compile needs a working C++ compiler on a CPU
            log(f"{run}: compiled floor skipped: {type(error).__name__}: {error}")
            return
        for name, key in (("block forward, eager", "eager"), ("block forward, compiled", "compiled"),
                          ("weight draw", "draw")):
            add(f"{run} floor: {name} / {unit}", floor[key] / ideal, setting)
        add(f"{run} floor: torch.compile seconds", floor["compile_seconds"], setting)
        add(f"{run} floor: compiled / eager, max relative difference", floor["max_relative_difference"], setting)
        value = (min(floor["eager"], floor["compiled"]) + floor["draw"]) / ideal
        add(f"{run} floor: faster forward + weight draw / {unit}", value, setting, target, bool(value <= allowance))

    def throughput(width: int, count: int) -> None:
        config = StackConfig(scheme="bhyt", depth=throughput_depth, width=width, heads=width // 64,
                             kv_heads=max(1, width // 256), mlp_width=4 * width, seq_len=length, device=device)
        log(f"throughput: width {width}, {count} threads")
        t = monte_carlo_throughput(config, batch, length)
        setting = (f"bhyt, width {width}, heads {config.heads}, KV heads {config.kv_heads}, MLP {config.mlp_width}, "
                   f"depth {throughput_depth}, batch {batch}, T {length}, {device}, {count} threads")
        add(f"dense matmul GFLOP/s ({batch * length}×{width}·{width}×{config.mlp_width})", t["dense"] / 1e9, setting)
        add("Monte Carlo forward GFLOP/s", t["forward"] / 1e9, setting)
        add("Monte Carlo streamed-run GFLOP/s", t["streamed"] / 1e9, setting)
        for name, key in (("forward", "forward"), ("streamed run", "streamed")):
            ratio, cpu_ratio = t[f"{key}_ratio"], t[f"{key}_cpu_ratio"]
            target = 0.8 if name == "forward" or count == 1 else 0.7
            add(f"{name} / dense matmul (wall)", ratio, setting, f"≥ {target}", bool(ratio >= target))
            add(f"{name} / dense matmul (CPU seconds)", cpu_ratio, setting, f"≥ {target}", bool(cpu_ratio >= target))
        # A ratio of at least `target` allows 1 / target times the matmuls' time.
        allowance = (1 / target, f"≤ {1 / target:.2f} (= 1 / {target})")
        add_split("streamed run", "matmuls at the dense rate", t["streamed_split"], setting, *allowance)
        add_floor("streamed run", [config], batch, t["flops_per_block"] / t["dense"], "matmuls at the dense rate",
                  setting, *allowance)

    peaks = {}
    for depth in memory_depths:
        config = StackConfig(scheme="bhyt", depth=depth, width=memory_width, heads=4, seq_len=64)
        log(f"peak memory: depth {depth}")
        peaks[depth] = streamed_peak_memory(config, 4, 64)
        setting = f"bhyt, depth {depth}, width {memory_width}, heads 4, batch 4, T 64, fresh process, 1 thread"
        add(f"peak resident MiB, depth {depth}", peaks[depth]["peak_kib"] / 1024, setting)
        add(f"resident MiB before the run, depth {depth}", peaks[depth]["baseline_kib"] / 1024, setting)
        add(f"streamed run seconds, depth {depth}", peaks[depth]["seconds"], setting)
    shallow, deep = memory_depths
    ratio = peaks[deep]["peak_kib"] / peaks[shallow]["peak_kib"]
    add(f"peak resident depth {deep} / depth {shallow}", ratio, f"width {memory_width}", "≤ 1.2", bool(ratio <= 1.2))
    config = StackConfig(scheme="bhyt", depth=deep, width=memory_width, heads=4)
    weights = sum(p.numel() for p in build_block(config, 0, 0).parameters()) * deep * 4 / 2**20
    add(f"float32 weights of a whole depth-{deep} Stack MiB (not streamed, for scale)", weights, f"width {memory_width}")

    def full_sweep(count: int, workers: int | None) -> None:
        how = f"{workers} Dask workers × 1 thread" if workers else f"{count} threads"
        log(f"full sweep: {how}")
        try:
            c = sweep_cost(sweep_schemes, sweep_depths, sweep_seeds, sweep_width, sweep_length, 4, device, workers)
        except ImportError as error:  # Dask is the optional extra "distributed"
            log(f"full sweep on Dask workers skipped: {error}")
            return
        setting = (f"{len(sweep_schemes)} schemes × depths {list(sweep_depths)} × {sweep_seeds} seeds, width "
                   f"{sweep_width}, T {sweep_length}, batch 4, {device}, {how}; dense rate at {count} threads")
        add("full sweep seconds (wall)", c["seconds"], setting)
        add("full sweep seconds (CPU, this process)" if workers else "full sweep seconds (CPU)",
            c["cpu_seconds"], setting)
        add("deepest runs' matmul seconds at the dense rate", c["matmul_seconds"], setting)
        add("full sweep / deepest runs' matmuls (wall)", c["ratio"], setting, "≤ 1.3", bool(c["ratio"] <= 1.3))
        if "split" in c:
            add_split("full sweep", "deepest runs' matmuls", c["split"], setting, 1.3, "≤ 1.3")
            config = StackConfig(**sweep_base(sweep_width, sweep_length, device))
            add_floor("full sweep", [config.replace(scheme=scheme) for scheme in sweep_schemes], 4,
                      c["block_matmul_seconds"], "deepest runs' matmuls",
                      f"{setting}; forwards: mean over the schemes; draw: one per seed and layer", 1.3, "≤ 1.3")

    for count in threads:
        with executor.torch_threads(count):
            for width in widths:
                throughput(width, count)
            full_sweep(count, None)
            if count > 1 and device == "cpu":
                full_sweep(count, count)

    for length_mf in meanfield_lengths:
        for scheme in meanfield_schemes:
            config = StackConfig(scheme=scheme, depth=1024, width=256, heads=4, seq_len=length_mf)
            log(f"mean field: {scheme}, T {length_mf}")
            seconds, cpu_seconds = meanfield_seconds(config)
            setting = f"{scheme}, depth 1024, width 256, heads 4, T {length_mf}, uniform causal attention"
            add("mean-field predict seconds (wall)", seconds, setting, "< 0.5 s", bool(seconds < 0.5))
            add("mean-field predict seconds (CPU)", cpu_seconds, setting, "< 0.5 s", bool(cpu_seconds < 0.5))
    return pd.DataFrame(rows)
