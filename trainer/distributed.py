"""One process, or one of many under torchrun (env:// rendezvous): NCCL on GPUs, gloo on CPUs."""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist


@dataclass
class Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def setup(device: str = "auto", timeout_s: int = 1800) -> Dist:
    """Read torchrun's RANK / WORLD_SIZE / LOCAL_RANK, pick the device, start the process group."""
    world = int(os.environ.get("WORLD_SIZE", 1))
    rank, local = int(os.environ.get("RANK", 0)), int(os.environ.get("LOCAL_RANK", 0))
    use_cuda = torch.cuda.is_available() if device == "auto" else device.startswith("cuda")
    if use_cuda:
        dev = torch.device("cuda", local % max(1, torch.cuda.device_count()))
        torch.cuda.set_device(dev)
    else:
        dev = torch.device("cpu")
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", world))
        if local_world > 1 and "OMP_NUM_THREADS" not in os.environ:
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // local_world))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo", init_method="env://", rank=rank,
                                world_size=world, timeout=timedelta(seconds=timeout_s),
                                **({"device_id": dev} if use_cuda else {}))
    return Dist(rank, world, local, dev)


def all_true_many(flags: list[bool], d: Dist) -> list[bool]:
    """For each flag, True only if it holds on every rank (so all ranks take the same branch); one
    all-reduce for all of them."""
    if not d.enabled:
        return list(flags)
    t = torch.tensor([1.0 if f else 0.0 for f in flags], device=d.device)
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return [bool(v > 0) for v in t.tolist()]


def barrier(d: Dist) -> None:
    if d.enabled:
        dist.barrier()


def cleanup() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
