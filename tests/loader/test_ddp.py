"""Two real processes (torch.distributed, gloo on 127.0.0.1): epoch mode gives both ranks the same
batch count and disjoint shards; resampled mode differs per rank."""
import json
import socket
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from openwit.loader import make_loader
from shard_helpers import all_captions, caption_of, write_dataset

SIZES = [23, 9, 14, 5, 2]  # 5 shards over 2 ranks, 53 samples: uneven in both


def _rank_main(rank: int, port: int, shards: str, bpe: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2,
                            timeout=timedelta(seconds=20))
    try:
        from openwit.loader.tokenizer import CaptionTokenizer

        tok, result = CaptionTokenizer.from_clip_bpe(bpe), {}
        for mode in ("epoch", "resampled"):
            loader = make_loader(f"{shards}/{{00000..00004}}.tar", 4, tokenizer=tok, image_size=32,
                                 shuffle_buffer=8, resampled=mode == "resampled", num_workers=0)
            rows, steps = [], torch.zeros(1)
            for _, tokens in loader:
                rows += tokens.tolist()
                steps += 1
                dist.all_reduce(torch.ones(1))  # a DDP step: hangs (times out) if ranks disagree
            dist.barrier()
            result[mode] = {"rows": rows, "batches": int(steps.item()), "len": len(loader),
                            "padded": loader.faults.get("padded", 0),
                            "own": sorted(loader.dataset.epoch_order()[rank::2])}
        Path(out, f"rank{rank}.json").write_text(json.dumps(result))
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_ranks_epoch_and_resampled(shared_data, tmp_path):
    shards = tmp_path / "shards"
    write_dataset(shards, shared_data, SIZES)
    bpe = str(shared_data / "clip" / "bpe_simple_vocab_16e6.txt.gz")
    mp.spawn(_rank_main, args=(_free_port(), str(shards), bpe, str(tmp_path)), nprocs=2, join=True)
    res = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]

    from openwit.loader.tokenizer import CaptionTokenizer
    lookup = caption_of(CaptionTokenizer.from_clip_bpe(bpe), all_captions(shared_data, SIZES))
    shard_of = lambda row: int(lookup(torch.tensor(row)).rsplit(" ", 1)[1])  # noqa: E731

    epoch = [r["epoch"] for r in res]
    assert epoch[0]["batches"] == epoch[1]["batches"] == epoch[0]["len"] == 7  # ceil(53 / (2 × 4))
    own = [{int(Path(u).stem) for u in e["own"]} for e in epoch]
    assert own[0].isdisjoint(own[1]) and own[0] | own[1] == set(range(5))
    for e, mine in zip(epoch, own):
        unpadded = e["rows"][: len(e["rows"]) - e["padded"]]  # own shards first, top-up after
        assert {shard_of(r) for r in unpadded} <= mine
    resampled = [r["resampled"] for r in res]
    assert resampled[0]["batches"] == resampled[1]["batches"] == 7
    assert resampled[0]["rows"] != resampled[1]["rows"]


def _rank_corrects(rank: int, port: int, shards: str, bpe: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2,
                            timeout=timedelta(seconds=20))
    try:
        from openwit.loader.tokenizer import CaptionTokenizer

        loader = make_loader(f"{shards}/{{00000..00004}}.tar", 4, tokenizer=CaptionTokenizer.from_clip_bpe(bpe),
                             image_size=32, shuffle_buffer=8)
        epochs = []
        for _ in range(2):
            steps = 0
            for _ in loader:
                dist.all_reduce(torch.ones(1))  # hangs (times out) if the ranks' batch counts differ
                steps += 1
            epochs.append({"batches": steps, "len": len(loader), "num_samples": loader.num_samples})
        Path(out, f"corrects{rank}.json").write_text(json.dumps(epochs))
    finally:
        dist.destroy_process_group()


def test_two_ranks_agree_on_a_corrected_sidecar_count(shared_data, tmp_path):
    """Shard 0's sidecar says 40 (it holds 23): only the rank that reads it learns that, yet both
    ranks switch to the real epoch size together at the next epoch."""
    shards = tmp_path / "shards"
    write_dataset(shards, shared_data, SIZES)
    stats = shards / "00000_stats.json"
    stats.write_text(json.dumps({**json.loads(stats.read_text()), "successes": 40}))
    (shards / "00000.parquet").unlink()
    bpe = str(shared_data / "clip" / "bpe_simple_vocab_16e6.txt.gz")
    mp.spawn(_rank_corrects, args=(_free_port(), str(shards), bpe, str(tmp_path)), nprocs=2, join=True)
    res = [json.loads((tmp_path / f"corrects{r}.json").read_text()) for r in range(2)]
    assert res[0] == res[1]
    assert res[0][0]["batches"] == 9 and res[0][1] == {"batches": 7, "len": 7, "num_samples": 53}  # 70, then 53
