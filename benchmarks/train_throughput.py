"""Training throughput: `openwit-train` beside open_clip's trainer (`open_clip_train.main`).

Same model (openwit's config, given to open_clip as an equivalent config JSON; parameter counts are
checked to agree), same shards, batch, precision, learning-rate schedule, loader workers, threads
and number of steps, one final checkpoint on each side. Reports per tool, median over `--repeat`
alternating runs:

- steady samples/s: steps after `--skip-steps` (warm-up and loader start excluded), from
  openwit's OUT/metrics.jsonl (`time` stamps of the log records: everything in the loop counts)
  and from open_clip's log lines (its running `Batch (t)` average × steps, also everything between
  batches);
- whole-command samples/s: steps × batch / wall time of the command (start-up, shard reading,
  tokenizer, model build, final checkpoint, exit);
- data wait: the fraction of the steady part spent waiting for the loader (openwit's `data_wait`,
  open_clip's `Data (t)`);
- achieved GFLOP/s = steady samples/s × 3 × forward FLOPs per sample (`forward_flops`, a
  multiply-add = 2 FLOPs) and, with `--peak-tflops`, MFU.

CPU (the tested path):
    .venv/bin/python benchmarks/train_throughput.py --model tiny-vit --batch-size 64 --steps 60 --repeat 3 [--threads 1]
GPU (ViT-B/32, bf16 autocast, batch 256, 224 px shards, 989 TFLOP/s peak for H100/H200 bf16):
    .venv/bin/python benchmarks/train_throughput.py --gpu [--repeat 3]

Shards are built once under benchmarks/work/train_throughput/ from the 1,000 CIFAR-10 test JPEGs
in ../shared/data/images/cifar10 (8 shards × 125, caption "a photo of a {class}"; resized to
`--image-size` when it is not 32). Both trainers read them with `--dataset-resampled`, so one
"epoch" is exactly `--steps` batches without a loader restart.

open_clip runs in benchmarks/.venv-openclip (open-clip-torch 3.3 + open_clip_train); this file is
also its entry point there (`openclip-worker`: registers the config folder, then calls main).
"""
from __future__ import annotations

import argparse
import io
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tarfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"
CIFAR_TGZ = SHARED / "images" / "cifar10" / "cifar10_test_100_per_class_jpg.tar.gz"
BPE = SHARED / "clip" / "bpe_simple_vocab_16e6.txt.gz"
WORK = ROOT / "benchmarks" / "work" / "train_throughput"
OPENWIT_TRAIN = ROOT / ".venv" / "bin" / "openwit-train"
OPENCLIP_PY = ROOT / "benchmarks" / ".venv-openclip" / "bin" / "python"
OC_MODEL_PREFIX = "owbench-"


# --- open_clip side (runs inside benchmarks/.venv-openclip; imports nothing from openwit) -------------
def openclip_worker(argv: list[str]) -> int:
    """`openclip-worker CONFIG_DIR [count MODEL | open_clip_train args...]`."""
    import open_clip

    open_clip.add_model_config(argv[0])
    if argv[1] == "count":
        model = open_clip.create_model(argv[2])
        print(json.dumps({"parameters": sum(p.numel() for p in model.parameters()),
                          "parameters_visual": sum(p.numel() for p in model.visual.parameters()),
                          "torch": __import__("torch").__version__, "open_clip": open_clip.__version__}))
        return 0
    from open_clip_train.main import main

    main(argv[1:])
    return 0


# --- shards -------------------------------------------------------------------------------------------
def build_shards(image_size: int, shards: int = 8, per_shard: int = 125) -> Path:
    """WebDataset tars like tests/shard_helpers.write_shard (key.jpg, key.json, key.txt) plus
    NNNNN_stats.json; built once per image size."""
    out = WORK / f"shards_{image_size}px"
    done = out / ".complete"
    if done.exists():
        return out
    from PIL import Image

    out.mkdir(parents=True, exist_ok=True)
    with tarfile.open(CIFAR_TGZ) as tgz:
        members = sorted((m for m in tgz.getmembers() if m.name.endswith(".jpg")), key=lambda m: m.name)
        pool = []
        for m in members[: shards * per_shard]:
            data = tgz.extractfile(m).read()
            if image_size != 32:
                img = Image.open(io.BytesIO(data)).convert("RGB").resize((image_size, image_size), Image.BICUBIC)
                buf = io.BytesIO()
                img.save(buf, "JPEG", quality=90)
                data = buf.getvalue()
            pool.append((data, f"a photo of a {m.name.split('/')[-2]}"))
    if len(pool) < shards * per_shard:
        raise SystemExit(f"{CIFAR_TGZ}: {len(pool)} JPEGs, need {shards * per_shard}")

    def add(tar, name, data):
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode = len(data), 0, 0o644
        tar.addfile(info, io.BytesIO(data))

    for s in range(shards):
        with tarfile.open(out / f"{s:05d}.tar", "w", format=tarfile.USTAR_FORMAT) as tar:
            for i, (img, cap) in enumerate(pool[s * per_shard: (s + 1) * per_shard]):
                key = f"{s:05d}{i:04d}"
                add(tar, f"{key}.jpg", img)
                add(tar, f"{key}.json", json.dumps({"key": key}).encode())
                add(tar, f"{key}.txt", cap.encode())
        (out / f"{s:05d}_stats.json").write_text(json.dumps({"count": per_shard, "successes": per_shard,
                                                              "failed_to_download": 0}))
    done.write_text("")
    return out


# --- model config on both sides ---------------------------------------------------------------------
def model_setup(args) -> dict:
    """openwit's config (vocabulary from CLIP's BPE), its FLOPs and parameters, and the equivalent
    open_clip config JSON written to a folder the worker registers."""
    import dataclasses

    from openwit.loader.tokenizer import load_tokenizer
    from openwit.trainer.config import forward_flops, model_config
    from openwit.trainer.model import CLIP, count_parameters

    cfg = model_config(args.model)
    if args.image_size != cfg.vision.image_size:
        cfg = dataclasses.replace(cfg, vision=dataclasses.replace(cfg.vision, image_size=args.image_size),
                                  name=f"{cfg.name}-{args.image_size}px")
    tok = load_tokenizer(str(BPE), None, cfg.text.context_length)
    cfg = cfg.with_vocab(tok.vocab_size)
    cfg_dir = WORK / "configs"
    cfg_dir.mkdir(parents=True, exist_ok=True)
    ow_json = cfg_dir / f"openwit-{cfg.name}.json"
    ow_json.write_text(json.dumps(cfg.to_dict(), indent=2))
    v, t = cfg.vision, cfg.text
    vision = {"image_size": v.image_size, "layers": list(v.layers) if isinstance(v.layers, tuple) else v.layers,
              "width": v.width, "mlp_ratio": v.mlp_ratio}
    if v.is_resnet:
        vision["head_width"] = v.head_width
    else:
        vision.update(patch_size=v.patch_size, head_width=v.head_width)
    oc = {"embed_dim": cfg.embed_dim, "quick_gelu": cfg.quick_gelu, "vision_cfg": vision,
          "text_cfg": {"context_length": t.context_length, "vocab_size": t.vocab_size, "width": t.width,
                       "heads": t.heads, "layers": t.layers, "mlp_ratio": t.mlp_ratio}}
    oc_name = OC_MODEL_PREFIX + cfg.name
    oc_dir = cfg_dir / "open_clip"
    oc_dir.mkdir(exist_ok=True)
    (oc_dir / f"{oc_name}.json").write_text(json.dumps(oc, indent=2))
    model = CLIP(cfg)
    image, text = forward_flops(cfg)
    import torch

    counted = subprocess.run([str(OPENCLIP_PY), __file__, "openclip-worker", str(oc_dir), "count", oc_name],
                             capture_output=True, text=True, env=_env(args))
    if counted.returncode != 0:
        raise SystemExit(f"open_clip parameter count failed:\n{counted.stderr[-3000:]}")
    oc_info = json.loads(counted.stdout.strip().splitlines()[-1])
    return {"cfg": cfg, "openwit_json": ow_json, "oc_dir": oc_dir, "oc_name": oc_name, "oc_config": oc,
            "params_openwit": count_parameters(model), "params_open_clip": oc_info["parameters"],
            "torch_openwit": torch.__version__, "torch_open_clip": oc_info["torch"],
            "open_clip_version": oc_info["open_clip"],
            "flops_image": image, "flops_text": text, "train_flops": 3 * (image + text)}


# --- running the two trainers --------------------------------------------------------------------------
def _env(args) -> dict:
    env = dict(os.environ)
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def _timed(cmd: list[str], args) -> tuple[subprocess.CompletedProcess, float, float]:
    """Run; wall seconds and CPU seconds (user + sys of the command and its waited-for children)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_env(args))
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return proc, wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def run_openwit(args, setup: dict, shards: str, out: Path) -> dict:
    cmd = [str(OPENWIT_TRAIN), "--train-data", shards, "--model-config", str(setup["openwit_json"]),
           "--out", str(out), "--batch-size", str(args.batch_size), "--epochs", "1",
           "--train-num-samples", str(args.steps * args.batch_size), "--dataset-resampled",
           "--workers", str(args.workers), "--precision", args.precision, "--tokenizer", str(BPE),
           "--log-every", str(args.log_every), "--warmup", str(args.warmup), "--lr", str(args.lr),
           "--wd", str(args.wd), "--seed", "0", "--keep-last", "1"]
    if args.device:
        cmd += ["--device", args.device]
    proc, wall, cpu = _timed(cmd, args)
    (out / "stdout.txt").write_text(proc.stdout)
    (out / "stderr.txt").write_text(proc.stderr)
    if proc.returncode != 0:
        raise SystemExit(f"openwit-train failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-3000:]}")
    recs = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines() if x.strip()]
    recs = [r for r in recs if r.get("kind") == "train"]
    steps = recs[-1]["step"]
    # steady part: from the first record at or after --skip-steps to the last one, by the records' clocks
    first = next(r for r in recs if r["step"] >= args.skip_steps)
    later = [r for r in recs if r["step"] > first["step"]]
    seconds = later[-1]["time"] - first["time"]
    samples = (later[-1]["step"] - first["step"]) * args.batch_size
    # data wait over the same windows, weighted by each window's duration (samples / rate)
    prev, wait_s, win_s = first["step"], 0.0, 0.0
    for r in later:
        dur = (r["step"] - prev) * args.batch_size / r["samples_per_s"]
        wait_s += r["data_wait"] * dur
        win_s += dur
        prev = r["step"]
    windows = [(b["step"] - a["step"]) * args.batch_size / (b["time"] - a["time"]) for a, b in zip(recs, recs[1:])]
    return {"tool": "openwit", "cmd": cmd, "steps": steps, "wall_s": wall, "cpu_s": cpu,
            "whole_sps": steps * args.batch_size / wall, "steady_sps": samples / seconds,
            "best_window_sps": max(w for r, w in zip(recs[1:], windows) if r["step"] > first["step"]),
            "steady_steps": later[-1]["step"] - first["step"], "data_wait": wait_s / win_s,
            "window_sps": [round(r["samples_per_s"], 1) for r in recs]}


OC_LINE = re.compile(r"Train Epoch: (\d+) \[\s*(\d+)/(\d+) .*?Data \(t\): ([\d.]+) Batch \(t\): ([\d.]+)")


def run_open_clip(args, setup: dict, shards: str, out: Path) -> dict:
    precision = {"fp32": "fp32", "bf16": "amp_bf16", "fp16": "amp"}[args.precision]
    oc_args = ["--train-data", shards, "--dataset-type", "webdataset",
               "--train-num-samples", str(args.steps * args.batch_size), "--dataset-resampled",
               "--model", setup["oc_name"], "--batch-size", str(args.batch_size), "--epochs", "1",
               "--workers", str(args.workers), "--precision", precision, "--lr", str(args.lr), "--wd", str(args.wd),
               "--beta1", "0.9", "--beta2", "0.98", "--eps", "1e-6", "--warmup", str(args.warmup),
               "--seed", "0", "--logs", str(out), "--name", "run", "--log-every-n-steps", str(args.log_every),
               "--save-frequency", "1", "--report-to", ""]
    if args.device == "cpu":
        oc_args += ["--device", "cpu"]
    cmd = [str(OPENCLIP_PY), __file__, "openclip-worker", str(setup["oc_dir"])] + oc_args
    proc, wall, cpu = _timed(cmd, args)
    (out / "stdout.txt").write_text(proc.stdout)
    (out / "stderr.txt").write_text(proc.stderr)
    log_text = (out / "run" / "out.log").read_text() if (out / "run" / "out.log").exists() else proc.stderr
    if proc.returncode != 0 or not list((out / "run" / "checkpoints").glob("epoch_*.pt")):
        raise SystemExit(f"open_clip_train failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-3000:]}")
    # (steps done, cumulative batch seconds, cumulative data seconds) per log line: open_clip resets its
    # Batch (t) / Data (t) meters after each log line, so each line averages the steps since the last
    points, prev = [(0, 0.0, 0.0)], 0
    for m in OC_LINE.finditer(log_text):
        count = int(m.group(2)) // args.batch_size
        n = count - prev
        points.append((count, points[-1][1] + float(m.group(5)) * n, points[-1][2] + float(m.group(4)) * n))
        prev = count
    steps = points[-1][0]
    first = next(p for p in points if p[0] >= args.skip_steps)
    last = points[-1]
    seconds = last[1] - first[1]
    windows = [(a[0], (b[0] - a[0]) * args.batch_size / max(b[1] - a[1], 1e-9)) for a, b in zip(points, points[1:])]
    return {"tool": "open_clip", "cmd": cmd, "steps": steps, "wall_s": wall, "cpu_s": cpu,
            "whole_sps": steps * args.batch_size / wall,
            "steady_sps": (last[0] - first[0]) * args.batch_size / seconds,
            "best_window_sps": max(w for start, w in windows if start >= first[0]),
            "steady_steps": last[0] - first[0], "data_wait": (last[2] - first[2]) / seconds,
            "window_sps": [round(w, 1) for _, w in windows]}


# --- report ------------------------------------------------------------------------------------------
def summarize(args, setup: dict, runs: list[dict]) -> dict:
    flops = setup["train_flops"]
    per = {}
    for tool in ("openwit", "open_clip"):
        rs = [r for r in runs if r["tool"] == tool]
        if not rs:
            continue
        steady = statistics.median(r["steady_sps"] for r in rs)
        per[tool] = {"runs": len(rs), "steady_sps": steady,
                     "steady_sps_all": [round(r["steady_sps"], 1) for r in rs],
                     "whole_sps": statistics.median(r["whole_sps"] for r in rs),
                     "whole_sps_all": [round(r["whole_sps"], 1) for r in rs],
                     "best_window_sps": statistics.median(r["best_window_sps"] for r in rs),
                     "wall_s": statistics.median(r["wall_s"] for r in rs),
                     "samples_per_cpu_s": statistics.median(r["steps"] * args.batch_size / r["cpu_s"] for r in rs),
                     "data_wait": statistics.median(r["data_wait"] for r in rs),
                     "gflops_per_s": steady * flops / 1e9,
                     "mfu": steady * flops / (args.peak_tflops * 1e12) if args.peak_tflops else None}
    ratio = {}
    if len(per) == 2:
        ratio = {k: per["openwit"][k] / per["open_clip"][k]
                 for k in ("steady_sps", "whole_sps", "best_window_sps", "samples_per_cpu_s")}
        pairs = [a["steady_sps"] / b["steady_sps"] for a, b in
                 zip([r for r in runs if r["tool"] == "openwit"], [r for r in runs if r["tool"] == "open_clip"])]
        ratio["steady_per_pair"] = [round(x, 3) for x in pairs]
    return {"per_tool": per, "ratio": ratio}


def print_report(args, setup: dict, summary: dict, loads: list) -> None:
    cfg = setup["cfg"]
    print(f"\nmodel {cfg.name}: openwit {setup['params_openwit']:,} parameters, open_clip {setup['params_open_clip']:,}"
          f" ({'equal' if setup['params_openwit'] == setup['params_open_clip'] else 'DIFFERENT'})")
    print(f"forward {setup['flops_image'] / 1e9:.4f} + {setup['flops_text'] / 1e9:.4f} GFLOPs/sample (image + text), "
          f"training ≈ 3× = {setup['train_flops'] / 1e9:.4f} GFLOPs/sample")
    print(f"batch {args.batch_size}, {args.steps} steps/run (steady: from step {args.skip_steps}), precision "
          f"{args.precision}, workers {args.workers}, threads {args.threads or 'torch default'}; torch "
          f"{setup['torch_openwit']} (openwit) / {setup['torch_open_clip']} (open_clip {setup['open_clip_version']})")
    print(f"load average before each run: {loads}")
    hdr = (f"{'':10} {'steady samples/s':>17} {'best window':>12} {'whole-cmd samples/s':>20} {'wall s':>7} "
           f"{'samples/CPU-s':>14} {'data wait':>9} {'GFLOP/s':>8}")
    if args.peak_tflops:
        hdr += f" {'MFU':>6}"
    print(hdr)
    for tool, p in summary["per_tool"].items():
        line = (f"{tool:10} {p['steady_sps']:17.1f} {p['best_window_sps']:12.1f} {p['whole_sps']:20.1f} "
                f"{p['wall_s']:7.1f} {p['samples_per_cpu_s']:14.2f} {p['data_wait']:9.1%} {p['gflops_per_s']:8.1f}")
        if args.peak_tflops:
            line += f" {p['mfu']:6.1%}"
        print(line + f"   steady runs {p['steady_sps_all']}, whole {p['whole_sps_all']}")
    r = summary["ratio"]
    if r:
        print(f"ratio openwit/open_clip (medians): steady {r['steady_sps']:.3f}x, best window "
              f"{r['best_window_sps']:.3f}x, whole command {r['whole_sps']:.3f}x, per CPU-second "
              f"{r['samples_per_cpu_s']:.3f}x; steady per alternating pair {r['steady_per_pair']}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gpu", action="store_true",
                    help="GPU preset: ViT-B-32, bf16 autocast, batch 256, 224 px, 8 workers, 989 TFLOP/s peak, "
                         "100 steps, steady from step 20 (flags given explicitly still win)")
    ap.add_argument("--model", default=None, help="openwit model name (tiny-vit on CPU, ViT-B-32 with --gpu)")
    ap.add_argument("--image-size", type=int, default=None, help="image size (default: the model's)")
    ap.add_argument("--batch-size", type=int, default=None, help="per step (default 64; 256 with --gpu)")
    ap.add_argument("--steps", type=int, default=None, help="steps per run (default 60; 100 with --gpu)")
    ap.add_argument("--skip-steps", type=int, default=None, help="steady state starts here (default 10; 20 with --gpu)")
    ap.add_argument("--log-every", type=int, default=5, help="log window in steps, both trainers (default 5)")
    ap.add_argument("--precision", default=None, help="fp32 (CPU default) / bf16 (--gpu) / fp16")
    ap.add_argument("--workers", type=int, default=None, help="loader workers, each side (default 1; 8 with --gpu)")
    ap.add_argument("--threads", type=int, default=None,
                    help="OMP_NUM_THREADS for both trainers (default: unset = torch's default, one per core)")
    ap.add_argument("--lr", type=float, default=5e-4, help="both trainers (default 5e-4)")
    ap.add_argument("--wd", type=float, default=0.2, help="both trainers (default 0.2)")
    ap.add_argument("--warmup", type=int, default=10, help="warmup steps, both trainers (default 10)")
    ap.add_argument("--peak-tflops", type=float, default=None, help="peak FLOP/s of the device (MFU column)")
    ap.add_argument("--device", default=None, help="cpu / cuda (default: each trainer's auto choice)")
    ap.add_argument("--repeat", type=int, default=1, help="alternating runs of each tool; medians reported")
    ap.add_argument("--only", choices=["openwit", "open_clip"], help="run one tool only")
    ap.add_argument("--json", help="write the results here as JSON")
    ap.add_argument("--dry-run", action="store_true",
                    help="build the shards and configs, check the parameter counts, print the commands, run nothing")
    args = ap.parse_args(argv)
    gpu = args.gpu
    for name, cpu_default, gpu_default in (("model", "tiny-vit", "ViT-B-32"), ("batch_size", 64, 256),
                                           ("steps", 60, 100), ("skip_steps", 10, 20),
                                           ("precision", "fp32", "bf16"), ("workers", 1, min(8, os.cpu_count() or 1)),
                                           ("peak_tflops", None, 989.0)):
        if getattr(args, name) is None:
            setattr(args, name, gpu_default if gpu else cpu_default)
    if args.skip_steps >= args.steps - args.log_every:
        raise SystemExit("--skip-steps must leave at least one log window before --steps")
    from openwit.trainer.config import model_config

    if args.image_size is None:
        args.image_size = model_config(args.model).vision.image_size
    shards_dir = build_shards(args.image_size)
    shards = str(shards_dir / "{00000..00007}.tar")
    setup = model_setup(args)
    print(f"parameters: openwit {setup['params_openwit']:,}, open_clip {setup['params_open_clip']:,}", flush=True)
    if setup["params_openwit"] != setup["params_open_clip"]:
        raise SystemExit("the two models differ in parameter count; not comparing")
    print(f"forward GFLOPs/sample: image {setup['flops_image'] / 1e9:.4f}, text {setup['flops_text'] / 1e9:.4f}; "
          f"torch {setup['torch_openwit']} (openwit) / {setup['torch_open_clip']} (open_clip)", flush=True)
    if args.dry_run:
        print(f"shards: {shards}\nopenwit config: {setup['openwit_json']}\nopen_clip config: "
              f"{setup['oc_dir'] / (setup['oc_name'] + '.json')}\n{json.dumps(setup['oc_config'])}")
        return 0
    stamp = time.strftime("%Y%m%d-%H%M%S")
    runs, loads = [], []
    tools = [args.only] if args.only else ["openwit", "open_clip"]
    for rep in range(args.repeat):
        order = tools if rep % 2 == 0 else tools[::-1]
        for tool in order:
            out = WORK / "runs" / f"{stamp}-{rep}-{tool}"
            out.mkdir(parents=True)
            load = _loadavg()
            loads.append(load)
            r = (run_openwit if tool == "openwit" else run_open_clip)(args, setup, shards, out)
            r["load_before"] = load
            runs.append(r)
            print(f"[{rep}] {tool:9} steady {r['steady_sps']:7.1f} samples/s (best window {r['best_window_sps']:.1f})  "
                  f"whole {r['whole_sps']:7.1f} samples/s  wall {r['wall_s']:6.1f} s  CPU {r['cpu_s']:6.1f} s  "
                  f"data wait {r['data_wait']:.1%}  load before {load}", flush=True)
    summary = summarize(args, setup, runs)
    print_report(args, setup, summary, [l[0] for l in loads])
    if args.json:
        dump = {"args": vars(args), "setup": {k: (str(v) if isinstance(v, Path) else v) for k, v in setup.items()
                                               if k != "cfg"} | {"model_config": setup["cfg"].to_dict()},
                "runs": runs, **summary}
        Path(args.json).write_text(json.dumps(dump, indent=2, default=str))
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "openclip-worker":
        sys.exit(openclip_worker(sys.argv[2:]))
    sys.exit(main())
