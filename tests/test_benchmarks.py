"""The benchmark scripts run, with tiny settings, and their JSON lines say what they promise.

Nothing else runs them: a broken flag would otherwise first show up on a lent GPU, where
``benchmarks/device_check.sh`` calls ``bench_model.py`` many times. Each script runs as a
subprocess from the repository root, as the README tells; the slow ones (a pretraining, a
cross-validation, a pool of workers, ``--compile``: minutes on a CPU) are marked ``slow``.
Not run anywhere: CUDA-only settings (``--sdpa-backend cudnn`` / ``efficient``, CUDA graphs,
``--device cuda``), ``readouts.py --task phenotype`` (the demo's full size, fixed).
"""

import importlib.util
import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import brainjepa_sk

ROOT = Path(__file__).parents[1]
BENCHMARKS = ROOT / "benchmarks"
#: Tiny sizes for bench_model.py: 20 regions x 2 patches (40 tokens), batch 2.
TINY = ["--preset", "tiny", "--regions", "20", "--frames", "32", "--batch", "2",
        "--device", "cpu"]


def run_script(name, *args, cwd=ROOT, check=True):
    """Run ``benchmarks/<name>`` with ``args``; return (JSON lines of stdout, the process)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    process = subprocess.run([sys.executable, str(BENCHMARKS / name), *map(str, args)],
                             cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    if check:
        assert process.returncode == 0, process.stderr[-4000:]
    records = [json.loads(line) for line in process.stdout.splitlines()
               if line.startswith("{")]
    return records, process


def load_bench_model():
    spec = importlib.util.spec_from_file_location("bench_model", BENCHMARKS / "bench_model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def check_header(record, *flags):
    """The machine, versions and command that every bench_model.py line carries."""
    assert record["card"] and isinstance(record["card"], str)
    assert record["torch"] == torch.__version__
    assert record["cuda"] == torch.version.cuda
    assert record["brainjepa_sk"] == brainjepa_sk.__version__
    assert "bench_model.py" in record["command"]
    for flag in flags:
        assert str(flag) in record["command"].split()
    assert (record["preset"], record["regions"], record["frames"]) == ("tiny", 20, 32)


def check_machine(record, threads=None):
    """The machine as bench_model.py names the CPU (its model and the threads used), not the
    bare architecture ("x86_64") that platform.processor() gives on Linux."""
    model = load_bench_model().device_name(torch.device("cpu")).rsplit(", ", 1)[0]
    assert re.fullmatch(rf"{re.escape(model)}, {threads or '[0-9]+'} threads",
                        record["machine"]), record["machine"]


def check_train(record, accumulation_steps=1):
    assert record["what"] == "train"
    assert record["accumulation_steps"] == accumulation_steps
    assert record["check_loss_finite_and_falling"] is True
    assert math.isfinite(record["loss_first"]) and record["loss_last"] < record["loss_first"]
    assert record["tokens"] == 40
    assert 0 < record["context_tokens"] < 40 and 0 < record["target_tokens"] < 40
    for key in ("ms_per_step", "samples_per_s", "tflop_per_step"):
        assert record[key] > 0, key
    assert record["samples_per_s"] == pytest.approx(
        record["batch"] * 1e3 / record["ms_per_step"], rel=0.02)
    # FLOPs to 4 significant digits: rounded to 3 decimals, a tiny step's kept two or fewer
    assert record["tflops"] == pytest.approx(
        record["tflop_per_step"] * 1e3 / record["ms_per_step"], rel=0.01)
    assert record["peak_memory_gib"] is None  # no CUDA


def check_embed(record):
    assert record["what"] == "embed"
    for key in ("ms_per_batch", "subjects_per_s", "s_per_subject", "tflop_per_subject"):
        assert record[key] > 0, key
    assert record["subjects_per_s"] == pytest.approx(
        record["batch"] * 1e3 / record["ms_per_batch"], rel=0.02)
    assert record["tflops"] == pytest.approx(
        record["tflop_per_subject"] * record["subjects_per_s"], rel=0.02)


def test_bench_model_train_and_embed_with_peak_and_profile(tmp_path):
    profile = tmp_path / "profile.txt"
    flags = [*TINY, "--what", "both", "--steps", "2", "--warmup", "1", "--peak",
             "--peak-size", "256", "--profile", profile]
    records, _ = run_script("bench_model.py", *flags)
    assert [r["what"] for r in records] == ["train", "embed", "peak_bf16_matmul",
                                            "peak_fp32_matmul"]
    for record in records:
        check_header(record, "--peak", "--profile", "2")
        assert record["precision"] == "fp32"  # auto on the CPU
    train, embed, bf16, fp32 = records
    check_train(train)
    check_embed(embed)
    assert "relative_error_vs_cpu_fp32" not in embed  # fp32 on the CPU is the reference
    for peak in (bf16, fp32):
        assert peak["tflops"] > 0 and peak["matmul_size"] == 256
    # the fractions of the peak of the run's own precision
    assert fp32["train_fraction_of_peak"] > 0 and fp32["embed_fraction_of_peak"] > 0
    assert "train_fraction_of_peak" not in bf16
    text = profile.read_text()
    assert "# train step (eager): 3 iterations" in text and "# embedding: 3 iterations" in text
    assert "aten::" in text


def test_bench_model_bf16_with_accumulation_and_no_warmup():
    """bf16 autocast on the CPU: the embeddings are checked against float32; two
    micro-batches per step; ``--warmup 0`` times from the first step."""
    records, _ = run_script("bench_model.py", *TINY, "--what", "both", "--precision", "bf16",
                            "--accumulation-steps", "2", "--steps", "3", "--warmup", "0")
    assert [r["what"] for r in records] == ["train", "embed"]
    train, embed = records
    for record in records:
        check_header(record, "bf16")
        assert record["precision"] == "bf16" and record["warmup"] == 0
    check_train(train, accumulation_steps=2)
    check_embed(embed)
    assert 0 < embed["relative_error_vs_cpu_fp32"] <= 0.05
    assert embed["check_within_bf16_tolerance"] is True


def test_bench_model_finetune_in_bf16():
    pytest.importorskip("skorch")
    records, _ = run_script("bench_model.py", *TINY, "--what", "finetune", "--precision",
                            "bf16", "--steps", "2", "--warmup", "1")
    (record,) = records
    check_header(record, "finetune")
    assert record["what"] == "finetune" and record["steps"] == 2 and record["epochs"] >= 2
    assert record["check_loss_finite_and_falling"] is True
    assert math.isfinite(record["loss_first"]) and record["loss_last"] < record["loss_first"]
    for key in ("ms_per_step", "samples_per_s", "tflop_per_step"):
        assert record[key] > 0, key
    assert 0 < record["relative_error_vs_cpu_fp32"] <= 0.05
    assert record["check_within_bf16_tolerance"] is True


def test_step_timer_keeps_each_loss_when_its_memory_is_written_again():
    """Under CUDA graphs (``--compile-mode reduce-overhead``) a step's loss is the graph's
    output memory, which the next step's replay writes again: the timer keeps its own copy."""
    from types import SimpleNamespace

    timer = load_bench_model().StepTimer(warmup=5, device=torch.device("cpu"))
    output = torch.tensor(0.75)  # the loss the graph returned
    timer.on_step_end(SimpleNamespace(step=1), output)
    output.fill_(float("nan"))  # the next replay writes into the same memory
    timer.on_step_end(SimpleNamespace(step=2), output)
    assert timer.losses[0].item() == 0.75


@pytest.mark.parametrize("flags, message", [
    (["--sdpa-backend", "cudnn"], "--sdpa-backend cudnn needs a CUDA device"),
    (["--sdpa-backend", "efficient"], "--sdpa-backend efficient needs a CUDA device"),
    # the micro-batches reach the step: 3 windows do not split in 2
    (["--batch", "3", "--accumulation-steps", "2", "--what", "train"],
     "accumulation_steps=2 must be a positive divisor of the loader's batch size (3)"),
], ids=["cudnn-on-cpu", "efficient-on-cpu", "indivisible-batch"])
def test_bench_model_fails_clearly(flags, message):
    """CUDA-only attention kernels on the CPU; a batch that the micro-batches cannot split."""
    records, process = run_script("bench_model.py", *TINY, "--steps", "1", *flags, check=False)
    assert process.returncode != 0 and not records
    assert message in process.stderr


@pytest.mark.parametrize("flags, message", [
    (["--compile-mode", "reduce-overhead"], "--compile-mode has no effect without --compile"),
    (["--steps", "0"], "--steps and --accumulation-steps must be at least 1"),
    (["--warmup", "-1"], "--warmup at least 0"),
    (["--accumulation-steps", "0"], "--accumulation-steps must be at least 1"),
    # 0 was taken for "not given", and the run used the default batch
    (["--batch", "0"], "--batch must be at least 1"),
], ids=["compile-mode-alone", "no-steps", "negative-warmup", "no-micro-batches", "no-batch"])
def test_bench_model_refuses_flags_that_would_do_nothing(flags, message, capsys):
    bench_model = load_bench_model()
    with pytest.raises(SystemExit):
        bench_model.parse_args([*TINY, *flags])
    assert message in capsys.readouterr().err
    args = bench_model.parse_args([*TINY, "--compile", "--compile-mode", "reduce-overhead",
                                   "--warmup", "0"])
    assert (args.compile_mode, args.warmup) == ("reduce-overhead", 0)


def test_bench_model_counts_cpu_attention_flops_once_however_often_it_runs():
    # the guard looked for the op's overload, while the registry is keyed by its packet: a
    # second main() in one process raised "duplicate registrations"
    from torch.utils import flop_counter

    bench_model = load_bench_model()
    bench_model.count_cpu_attention_flops()
    bench_model.count_cpu_attention_flops()
    op = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    if op is not None:
        assert op in flop_counter.flop_registry


@pytest.mark.parametrize("device, message", [
    ("gpu", "--device gpu is not a torch device: auto, cpu, cuda, cuda:1, ..."),
    pytest.param("cuda", "--device cuda: CUDA is not available here",
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is here")),
], ids=["not-a-device", "cuda-without-cuda"])
def test_bench_model_names_a_device_it_cannot_use(device, message):
    # before: torch's RuntimeError, or an AssertionError from CUDA's lazy start, with a traceback
    with pytest.raises(SystemExit, match=re.escape(message)):
        load_bench_model().main([*TINY, "--device", device])


_STUB = """import json, os, sys
with open(os.environ["STUB_LOG"], "a") as f:
    f.write(json.dumps(sys.argv[1:]) + "\\n")
"""


def _device_check_calls(tmp_path, **env):
    """Run ``device_check.sh`` with a stand-in Python that records its calls, wheels carried
    (so that the fine-tuning steps run) and the test files beside it, with ``env`` added to
    the environment: the calls, in order, and the ``$OUT`` folder."""
    work, out = tmp_path / "work", tmp_path / "out"
    work.mkdir()
    (work / "benchmarks").symlink_to(BENCHMARKS)
    (work / "tests").symlink_to(ROOT / "tests")
    (work / ".wheels").mkdir()
    (work / ".wheels" / "skorch-0-py3-none-any.whl").touch()
    stub, log = tmp_path / "stub.py", tmp_path / "calls.jsonl"
    stub.write_text(_STUB)
    env = {**os.environ, "OUT": str(out), "PY": f"{sys.executable} {stub}",
           "STUB_LOG": str(log), **env}
    process = subprocess.run(["bash", str(BENCHMARKS / "device_check.sh")], cwd=work, env=env,
                             capture_output=True, text=True, timeout=120)
    assert process.returncode == 0, process.stderr[-4000:]
    return [json.loads(line) for line in log.read_text().splitlines()], out


@pytest.mark.skipif(not (shutil.which("bash") and shutil.which("timeout")),
                    reason="needs bash and timeout")
def test_device_check_calls_bench_model_with_flags_it_takes(tmp_path):
    """``device_check.sh`` with a stand-in Python that records its calls: every
    ``bench_model.py`` command line (with the README's CPU ``BENCH_ARGS``) parses, and the
    test files it hands to pytest exist."""
    bench_args = "--preset tiny --regions 60 --frames 64 --batch 4 --device cpu --peak-size 1024"
    calls, out = _device_check_calls(tmp_path, BENCH_ARGS=bench_args)
    bench_model = load_bench_model()
    parsed = []
    for call in calls:
        if call[0] == "benchmarks/bench_model.py":
            assert call[1:1 + len(bench_args.split())] == bench_args.split()
            parsed.append(bench_model.parse_args(call[1:]))
        elif call[:2] == ["-m", "pytest"]:
            assert "gpu" in call
            files = [arg for arg in call if arg.startswith("tests/")]
            assert "tests/test_finetune.py" in files
            for name in files:
                assert (ROOT / name).is_file(), name
    seen = {(a.what, a.compile, a.compile_mode, a.sdpa_backend, a.accumulation_steps, a.peak,
             a.profile is not None) for a in parsed}
    assert len(parsed) == 8
    assert seen == {
        ("both", False, None, "auto", 1, True, True),
        ("both", True, None, "auto", 1, False, False),
        ("finetune", False, None, "auto", 1, False, False),
        ("finetune", True, None, "auto", 1, False, False),
        ("both", False, None, "cudnn", 1, False, False),
        ("both", False, None, "flash", 1, False, False),
        ("train", False, None, "auto", 2, False, False),
        ("train", True, "reduce-overhead", "auto", 1, False, False),
    }
    assert all(a.preset == "tiny" and a.device == "cpu" for a in parsed)
    assert (out / "device.txt").exists() and (out / "gpu_tests.txt").exists()


@pytest.mark.skipif(not (shutil.which("bash") and shutil.which("timeout")),
                    reason="needs bash and timeout")
@pytest.mark.parametrize("part", ["core", "levers"])
def test_device_check_in_two_parts_runs_each_step_once(tmp_path, part):
    """``PART=core`` then ``PART=levers`` (two device calls, so that a failed first part
    leaves time to rerun it) run the steps of one whole call between them, each once: the
    tests and the steps timed first in core, the levers in the other."""
    calls, _ = _device_check_calls(tmp_path, PART=part)
    tested = [call for call in calls if call[:2] == ["-m", "pytest"]]
    bench_model = load_bench_model()
    steps = sorted((a.what, a.compile, a.sdpa_backend, a.accumulation_steps)
                   for a in (bench_model.parse_args(call[1:]) for call in calls
                             if call[0] == "benchmarks/bench_model.py"))
    if part == "core":
        assert len(tested) == 1
        assert steps == [("both", False, "auto", 1), ("both", True, "auto", 1),
                         ("finetune", False, "auto", 1)]
    else:
        assert not tested
        assert steps == [("both", False, "cudnn", 1), ("both", False, "flash", 1),
                         ("finetune", True, "auto", 1), ("train", False, "auto", 2),
                         ("train", True, "auto", 1)]


@pytest.mark.skipif(not shutil.which("bash"), reason="needs bash")
def test_device_check_refuses_an_unknown_part(tmp_path):
    """A misspelt ``PART`` stops before anything runs, naming the parts."""
    log = tmp_path / "calls.jsonl"
    (tmp_path / "stub.py").write_text(_STUB)
    env = {**os.environ, "OUT": str(tmp_path / "out"), "STUB_LOG": str(log),
           "PY": f"{sys.executable} {tmp_path / 'stub.py'}", "PART": "cores"}
    process = subprocess.run(["bash", str(BENCHMARKS / "device_check.sh")], cwd=tmp_path,
                             env=env, capture_output=True, text=True, timeout=60)
    assert process.returncode == 2
    assert "PART must be all, core or levers, got 'cores'" in process.stderr
    assert not log.exists()


#: A Python that records its calls, whose pip refuses the wheels (its reason first, then more
#: lines) and in which skorch does not import (``python -c`` fails).
_NO_SKORCH_STUB = _STUB + """if sys.argv[1:3] == ["-m", "pip"]:
    print("ERROR: Package 'skorch' requires a different Python")
    print("\\n".join(f"line {i} of pip's advice" for i in range(4)))
    sys.exit(1)
if sys.argv[1] == "-c":
    sys.exit(1)
"""


@pytest.mark.skipif(not (shutil.which("bash") and shutil.which("timeout")),
                    reason="needs bash and timeout")
def test_device_check_leaves_fine_tuning_out_where_skorch_does_not_import(tmp_path):
    """Wheels carried but skorch not importable (a failed install): the fine-tuning test file,
    which imports skorch, is not handed to pytest (its collection error would stop every test)
    and fine-tuning is not timed; pip's whole output, its reason included, is kept."""
    work, out = tmp_path / "work", tmp_path / "out"
    work.mkdir()
    (work / "benchmarks").symlink_to(BENCHMARKS)
    (work / ".wheels").mkdir()
    (work / ".wheels" / "skorch-0-py3-none-any.whl").touch()
    stub, log = tmp_path / "stub.py", tmp_path / "calls.jsonl"
    stub.write_text(_NO_SKORCH_STUB)
    env = {**os.environ, "OUT": str(out), "PY": f"{sys.executable} {stub}",
           "STUB_LOG": str(log)}
    process = subprocess.run(["bash", str(BENCHMARKS / "device_check.sh")], cwd=work, env=env,
                             capture_output=True, text=True, timeout=120)
    assert process.returncode == 0, process.stderr[-4000:]
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    (tests,) = [call for call in calls if call[:2] == ["-m", "pytest"]]
    assert "tests/test_pretrain.py" in tests and "tests/test_finetune.py" not in tests
    bench = [call for call in calls if call[0] == "benchmarks/bench_model.py"]
    assert len(bench) == 6 and not any("finetune" in call for call in bench)
    assert (out / "no_finetune.txt").exists()
    assert "requires a different Python" in (out / "wheels.txt").read_text()


#: A Python that records its calls and, for the compiled pretraining step (``--what both
#: --compile``), notes SIGTERM and goes on, as a training loop in a long compilation does.
_STUBBORN_STUB = """import json, os, signal, sys, time
with open(os.environ["STUB_LOG"], "a") as f:
    f.write(json.dumps(sys.argv[1:]) + "\\n")
if "--compile" in sys.argv and "both" in sys.argv:
    signal.signal(signal.SIGTERM, lambda signum, frame: None)
    time.sleep(60)
"""


@pytest.mark.skipif(not (shutil.which("bash") and shutil.which("timeout")),
                    reason="needs bash and timeout")
def test_device_check_ends_a_step_that_outlives_its_limit(tmp_path):
    """A step that goes on after its limit's SIGTERM (a loop in a long compilation notes it
    and stops only after its step) is killed soon after, and the next steps still run."""
    work, out = tmp_path / "work", tmp_path / "out"
    work.mkdir()
    (work / "benchmarks").symlink_to(BENCHMARKS)
    stub, log = tmp_path / "stub.py", tmp_path / "calls.txt"
    stub.write_text(_STUBBORN_STUB)
    env = {**os.environ, "OUT": str(out), "PY": f"{sys.executable} {stub}",
           "STUB_LOG": str(log), "COMPILE_S": "1", "KILL_S": "1"}
    process = subprocess.run(["bash", str(BENCHMARKS / "device_check.sh")], cwd=work, env=env,
                             capture_output=True, text=True, timeout=45)
    assert process.returncode == 0, process.stderr[-4000:]
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    compiled = [i for i, call in enumerate(calls) if "--compile" in call and "both" in call]
    assert len(compiled) == 1 and len(calls) > compiled[0] + 1
    assert calls[-1][-2:] == ["--compile-mode", "reduce-overhead"]  # the last step ran


def test_mask_counts():
    records, _ = run_script("mask_counts.py")
    assert [r["grid"] for r in records] == ["paper (450 regions x 10 patches)", "demo (100 x 6)"]
    paper = records[0]
    assert (paper["tokens"], paper["static_context"], paper["static_target"]) == (4500, 804, 745)
    for record in records:
        assert 0 < record["static_context"] < record["per_batch_mean_context"] < record["tokens"]
        assert 0 < record["static_target"] < record["per_batch_mean_target"] < record["tokens"]


def test_mask_counts_takes_its_options():
    # it read no arguments: --help, and any mistyped option, ran the whole count instead
    records, process = run_script("mask_counts.py", "--help")
    assert not records and "--batches" in process.stdout
    records, process = run_script("mask_counts.py", "--batchs", "10", check=False)
    assert process.returncode == 2 and not records and "--batchs" in process.stderr
    records, _ = run_script("mask_counts.py", "--batches", "10")
    assert [r["tokens"] for r in records] == [4500, 600]


def test_bench_synthetic():
    records, _ = run_script("bench_synthetic.py", "--subjects", "4", "--timepoints", "50",
                            "--regions", "10", "--repeats", "2")
    (record,) = records
    assert record["benchmark"] == "make_brain_dynamics" and record["subjects"] == 4
    assert len(record["seconds"]) == 2 and record["best_s"] == min(record["seconds"]) >= 0
    check_machine(record)


def test_position_share():
    records, _ = run_script("position_share.py", "--regions", "10", "--frames", "32",
                            "--windows", "2")
    assert len(records) == 6  # three models x two patch initialisations
    assert {r["patch_embed_init"] for r in records} == {"trunc_normal", "xavier"}
    for record in records:
        assert 0 < record["position_share"] <= 1


@pytest.mark.slow
def test_bench_model_compiled():
    """``--compile`` (the step, the encoder, skorch's ``compile=True``): minutes on a CPU."""
    pytest.importorskip("skorch")
    flags = [*TINY, "--compile", "--steps", "2", "--warmup", "1"]
    records, _ = run_script("bench_model.py", *flags, "--what", "both")
    (finetune,), _ = run_script("bench_model.py", *flags, "--what", "finetune")
    train, embed = records
    for record in (train, embed, finetune):
        check_header(record, "--compile")
        assert record["compile"] is True
    check_train(train)
    check_embed(embed)
    assert finetune["check_loss_finite_and_falling"] is True


@pytest.mark.slow
def test_load_weights(tmp_path):
    records, _ = run_script("load_weights.py", "--preset", "tiny", "--regions", "20",
                            "--repeats", "2")
    assert [r["repeat"] for r in records] == [0, 1]
    for record in records:
        assert record["machine"] and record["torch"] == torch.__version__
        assert record["brainjepa_sk"] == brainjepa_sk.__version__
        assert "load_weights.py" in record["command"]
        assert record["file_mib"] > 0 and record["load_s"] > 0


def test_checkpoint_digests(tmp_path):
    """With the run file, each save hashes at least the files it writes and the resume check
    after it at most those; without it nothing is hashed. The folder is left empty."""
    for mode in ("digests", "plain"):
        records, _ = run_script("checkpoint_digests.py", "--mib", "1", "--saves", "2",
                                "--mode", mode, "--resume", "--folder", tmp_path)
        assert [r["save"] for r in records] == [1, 2]
        for record in records:
            assert record["machine"] and record["torch"] == torch.__version__
            assert "checkpoint_digests.py" in record["command"] and record["mode"] == mode
            assert record["files_mib"] == 1 and record["save_s"] > 0
            if mode == "digests":
                assert record["hashed_mib"] >= record["files_mib"]
                assert record["resume_hashed_mib"] <= record["files_mib"]
            else:
                # no run file: nothing is hashed, at the save or at the resume check
                assert record["hashed_mib"] == record["digest_s"] == 0
                assert record["resume_hashed_mib"] == 0
    assert list(tmp_path.iterdir()) == []


def test_cpu_attention():
    records, _ = run_script("cpu_attention.py", "--tokens", "40", "--heads", "2",
                            "--head-dim", "8", "--chunk", "16", "--repeats", "1")
    assert [(r["kernel"], r["dtype"]) for r in records] == [
        (kernel, dtype) for dtype in ("float32", "bfloat16")
        for kernel in ("sdpa", "math", "chunked")]
    for record in records:
        assert record["machine"] and record["torch"] == torch.__version__
        assert "cpu_attention.py" in record["command"]
        assert record["ms_per_call"] > 0 and record["tflops"] > 0
        assert (record["chunk"] == 16) == (record["kernel"] == "chunked")
        # Every kernel computes the same attention: float32 ones agree with the reference
        # closely, bfloat16 ones within its precision.
        tolerance = 1e-5 if record["dtype"] == "float32" else 0.02
        assert record["relative_error_vs_sdpa_fp32"] < tolerance, record


@pytest.mark.slow
def test_demo_sweep_makes_data_runs_a_job_and_summarizes(tmp_path):
    """The two steps of the search, as device_check.sh runs the second: one job, one worker."""
    pytest.importorskip("brainspace")
    data, out = tmp_path / "data.npz", tmp_path / "sweep.jsonl"
    run_script("demo_sweep.py", "make-data", "--out", data, "--seeds", "0", "--n-subjects", "20",
               "--n-timepoints", "100", "--n-regions", "40")
    records, process = run_script("demo_sweep.py", "run", "--data", data, "--out", out,
                                  "--workers", "1", "--device", "cpu", "--plan", "focus",
                                  "--limit", "1")
    (record,) = records
    assert [json.loads(line) for line in out.read_text().splitlines()] == records
    assert record["seed"] == 0 and record["random"] is False
    assert math.isfinite(record["loss_first"]) and record["loss_last"] < record["loss_first"]
    for readout in ("mean", "roi", "roi_std", "roi_meanstd", "meanstd", "roi_std_subject"):
        auc, r2 = record[readout]
        assert 0 <= auc <= 1 and math.isfinite(r2)
    assert "job failed" not in process.stdout
    _, summary = run_script("demo_sweep.py", "run", "--data", data, "--out", out,
                            "--summary-only")
    assert f"{record['name']:<18}" in summary.stdout and "mean of 1 seeds" in summary.stdout


@pytest.mark.slow
def test_pretraining_probe():
    records, _ = run_script("pretraining_probe.py", "--pretrain-subjects", "20", "--epochs", "1",
                            "--evals", "1", "--depth", "1", "--predictor-depth", "1",
                            "--threads", "1", "--controls", "1")
    control, start, end = records
    assert control["control"] == 1000 and start["step"] == 0 and end["step"] > 0
    assert math.isfinite(end["loss"])
    for record in records:
        for readout in ("ln_roi_std", "ln_mean", "noln_roi_std"):
            auc, r2 = record[readout]
            assert 0 <= auc <= 1 and math.isfinite(r2)


@pytest.mark.slow
def test_readouts_windows():
    pytest.importorskip("nilearn")
    # 20 regions: the default sparsity 0.9 keeps one connection per region, too few
    records, _ = run_script("readouts.py", "--subjects", "10", "--timepoints", "192",
                            "--regions", "20", "--sparsity", "0.85", "--epochs", "1",
                            "--controls", "1")
    *scores, total = records
    assert {(r["regions"], r["sparsity"]) for r in scores} == {(20, 0.85)}
    assert total["seconds"] >= 0
    names = {(r["task"], r["readout"]) for r in scores}
    assert ("direction", "lag-one covariance") in names
    assert ("identification", "random 0: tokens + tangent") in names
    assert len(scores) == 5 + 2 * 2 * 5  # baselines, then two encoders x five readouts x 2
    for record in scores:
        assert 0 <= record["score"] <= 1


def test_readouts_fit_every_tangent_reference_on_training_windows_only(monkeypatch, capsys):
    """The tangent projections' reference connectivity (the mean of the series fitted on) is
    estimated on the training windows: the first halves for identification, each training fold
    for direction, never on a held-out window."""
    pytest.importorskip("nilearn")
    spec = importlib.util.spec_from_file_location("readouts", BENCHMARKS / "readouts.py")
    readouts = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(readouts)
    tangent_fits = []  # how many series each tangent projection was fitted on

    class RecordingConnectivityMeasure(readouts.ConnectivityMeasure):
        def fit(self, X, y=None):
            if self.kind == "tangent":
                tangent_fits.append(len(X))
            return super().fit(X, y)

        def fit_transform(self, X, y=None, confounds=None):
            if self.kind == "tangent":
                tangent_fits.append(len(X))
            return super().fit_transform(X, y, confounds=confounds)

    monkeypatch.setattr(readouts, "ConnectivityMeasure", RecordingConnectivityMeasure)
    # 10 subjects x 2 windows: identification trains on the 10 first windows; direction on
    # 40 windows (forward and reversed), 5 folds of 2 subjects, so it trains on 32
    readouts.main(["--subjects", "10", "--timepoints", "192", "--regions", "20",
                   "--sparsity", "0.85", "--epochs", "1", "--controls", "0"])
    scores = [json.loads(line) for line in capsys.readouterr().out.splitlines()][:-1]
    assert {(r["task"], r["readout"]) for r in scores} >= {
        ("direction", "tangent FC"), ("direction", "pretrained: tokens + tangent"),
        ("identification", "tangent FC"), ("identification", "pretrained: tokens + tangent")}
    # raw windows and the pretrained tokens: one identification fit and five fold fits each
    assert sorted(tangent_fits) == [10] * 2 + [32] * 10


@pytest.mark.slow
def test_finetune_both_tasks():
    pytest.importorskip("skorch")
    pytest.importorskip("nilearn")
    records, _ = run_script("finetune.py", "--task", "both", "--subjects", "12", "--folds", "2",
                            "--id-subjects", "6", "--id-timepoints", "192", "--epochs", "1",
                            "--ft-epochs", "1", "--pooling", "roi_std", "--no-final-norm")
    methods = {"fine-tuning", "linear probe", "from scratch", "tangent FC + linear",
               "embedding (mean) + linear", "embedding (roi_std, before final norm) + linear"}
    for task, targets in (("phenotype", {"group", "age"}), ("identification", {None})):
        scored = [r for r in records if r.get("task") == task and "method" in r]
        assert {(r.get("target"), r["method"]) for r in scored} == {
            (t, m) for t in targets for m in methods}
        for record in scored:
            assert math.isfinite(record["mean"])
            assert len(record.get("folds", [0, 0])) == 2
    assert all(r["ft_pooling"] == "roi_std" and r["ft_final_norm"] is False for r in records)
    assert records[-1]["step"] == "total"


@pytest.mark.slow
def test_stream_memory_every_mode():
    model = '{"embed_dim": 32, "depth": 1, "num_heads": 2}'
    small = ["--gigabytes", "0.003", "--batch", "2", "--workers", "0", "--threads", "1",
             "--predictor-depth", "1", "--model-size", model, "--steps", "2"]
    for estimator, warmup in (("pretrainer", "0"), ("classifier", "1")):
        (record,), _ = run_script("stream_memory.py", *small, "--warmup", warmup,
                                  "--estimator", estimator)
        assert record["estimator"] == estimator and record["n_subjects"] == 4
        # the size of the files written (4 subjects of 450 x 490 float32), not 0.0
        assert record["corpus_gb"] == pytest.approx(4 * 450 * 490 * 4 / 1e9, rel=0.01)
        for key in ("peak_rss_main_gib", "peak_pss_tree_gib", "windows_per_s", "n_windows"):
            assert record[key] > 0, key
        assert record["seconds_before_first_step"] >= 0  # to 0.1 s: 0 on a fast machine
        assert math.isfinite(record["final_loss"])
        check_machine(record, threads=1)
    records, _ = run_script("stream_memory.py", *small, "--loader")
    assert [r["workers"] for r in records] == [0, 1, 2]
    assert all(r["windows_per_s"] > 0 for r in records)
    for record in records:
        check_machine(record, threads=1)
    (phases,), _ = run_script("stream_memory.py", *small, "--phases")
    assert phases["benchmark"] == "phases" and phases["gradients_s"] > 0
    check_machine(phases, threads=1)
    # too few windows for the steps asked: a clear error from the fresh process, not a
    # line without its throughput
    _, process = run_script("stream_memory.py", *small[:-1], "100", "--warmup", "1",
                            check=False)
    assert process.returncode != 0
    assert "ran out before --warmup 1 + --steps 100" in process.stderr
