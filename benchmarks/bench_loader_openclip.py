"""open_clip's WebDataset loader (`open_clip_train.data.get_wds_dataset`) on given shards, one core.

Runs in benchmarks/.venv-openclip (open-clip-torch 3.3 + webdataset 0.2.86 + torchvision); called by
bench_loader.py, prints one JSON line: {"images": N, "seconds": S}.
"""
import argparse
import json
import sys
import time

import open_clip
import torch
from open_clip_train.data import get_wds_dataset


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--urls", required=True)
    p.add_argument("--num-samples", type=int, required=True)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--image-size", type=int, default=224)
    a = p.parse_args()
    torch.set_num_threads(1)
    args = argparse.Namespace(train_data=a.urls, val_data=None, train_num_samples=a.num_samples,
                              dataset_resampled=False, train_data_upsampling_factors=None, seed=0,
                              batch_size=a.batch_size, workers=0, world_size=1)
    preprocess = open_clip.image_transform(a.image_size, is_train=True)
    info = get_wds_dataset(args, preprocess, is_train=True, tokenizer=open_clip.get_tokenizer("ViT-B-32"))
    start, cpu, images = time.perf_counter(), time.process_time(), 0
    for batch_images, batch_texts in info.dataloader:
        assert batch_texts.shape[1] == 77
        images += batch_images.shape[0]
    print(json.dumps({"images": images, "seconds": time.perf_counter() - start,
                      "cpu_seconds": time.process_time() - cpu}))


if __name__ == "__main__":
    sys.exit(main())
