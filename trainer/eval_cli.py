"""`openwit-eval`: zero-shot accuracy, retrieval recall and per-sample CLIP scores of a checkpoint.

    openwit-eval --checkpoint runs/b32 --zeroshot-folder imagenet/val [--templates clip80] [--json]
    openwit-eval --checkpoint runs/b32 --retrieval-data 'val/{00000..00004}.tar'
    openwit-eval --checkpoint runs/b32 --score-data 'out/{00000..00099}.tar' --score-out scores.parquet
    openwit-eval --checkpoint open_clip_b32.pt [--model ViT-B-32] --tokenizer bpe_simple_vocab_16e6.txt.gz ...
"""
from __future__ import annotations

import argparse
import json
import sys

from openwit.common.errors import UserError, cli_main, setup_logging
from openwit.common.version import add_version_flag


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="openwit-eval", description="Evaluate a CLIP checkpoint (openwit's, or "
                                 "open_clip/OpenAI weights of a known architecture).")
    ap.add_argument("--checkpoint", required=True, help="a run folder (its latest checkpoint), a step-*.pt file, "
                                                        "or an open_clip-format state dict (.pt/.bin)")
    ap.add_argument("--zeroshot-folder", help="image folder with one sub-folder per class")
    ap.add_argument("--zeroshot-shards", help="labelled shards: each sample's .cls (an index into --classnames) "
                                              "or .txt (a class name) is its label")
    ap.add_argument("--classnames", help="class names, one a line: for a folder, in the sorted order of its class "
                                         "folders (default: the folder names with _ as spaces); needed for shards")
    ap.add_argument("--templates", default="clip80", help="clip1 ('a photo of a {}.'), clip80 (CLIP's ImageNet "
                                                          "ensemble) or a file with one template a line (default: clip80)")
    ap.add_argument("--retrieval-data", help="shards for image→text / text→image recall@1/5/10")
    ap.add_argument("--score-data", help="shards to score: image·text cosine per sample")
    ap.add_argument("--score-out", help="Parquet file for --score-data: key, uid, shard, clip_score")
    ap.add_argument("--model", help="architecture of an open_clip checkpoint (default: read from its shapes)")
    ap.add_argument("--quick-gelu", action="store_true", help="open_clip checkpoint with QuickGELU (OpenAI's weights)")
    ap.add_argument("--tokenizer", help="tokenizer for an open_clip checkpoint (default: $OPENWIT_CLIP_BPE or an "
                                        "installed open_clip's CLIP vocabulary); openwit checkpoints carry theirs")
    ap.add_argument("--batch-size", type=int, default=256, help="images per forward pass (default: 256)")
    ap.add_argument("--precision", default="auto", help="bf16, fp32 or auto (bf16 on GPU) (default: auto)")
    ap.add_argument("--device", default="auto", help="auto, cpu or cuda (default: auto)")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    ap.add_argument("--verbose", action="store_true", help="debug logging")
    return add_version_flag(ap)


def run(args) -> dict:
    import torch

    from openwit.trainer.evaluate import Encoder, retrieval, score
    from openwit.trainer.zeroshot import zeroshot_folder, zeroshot_shards
    from openwit.trainer.interop import load_model
    from openwit.trainer.templates import load_templates
    from openwit.trainer.train import resolve_precision

    if not (args.zeroshot_folder or args.zeroshot_shards or args.retrieval_data or args.score_data):
        raise UserError("nothing to evaluate: pass --zeroshot-folder DIR, --zeroshot-shards URLS, "
                        "--retrieval-data URLS and/or --score-data URLS")
    if args.zeroshot_folder and args.zeroshot_shards:
        raise UserError("--zeroshot-folder and --zeroshot-shards: pass one of them")
    if args.zeroshot_shards and not args.classnames:
        raise UserError("--zeroshot-shards needs --classnames FILE (one class name a line; .cls indexes it)")
    if bool(args.score_data) != bool(args.score_out):
        raise UserError("--score-data and --score-out go together")
    device = torch.device("cuda" if (args.device == "auto" and torch.cuda.is_available()) or args.device == "cuda" else "cpu")
    templates = load_templates(args.templates) if args.zeroshot_folder or args.zeroshot_shards else []
    model, tok, info = load_model(args.checkpoint, args.model, args.tokenizer, args.quick_gelu, device)
    enc = Encoder(model, tok, device, resolve_precision(args.precision, device), args.batch_size)
    results = dict(info)
    if args.zeroshot_folder:
        results.update(zeroshot_folder(enc, args.zeroshot_folder, templates, args.classnames))
    if args.zeroshot_shards:
        results.update(zeroshot_shards(enc, args.zeroshot_shards, templates, args.classnames))
    if args.retrieval_data:
        results.update(retrieval(enc, args.retrieval_data))
    if args.score_data:
        results.update(score(enc, args.score_data, args.score_out))
    return results


def table(results: dict) -> str:
    rows = []
    if "zeroshot_top1" in results:
        rows.append(("zero-shot top-1", f"{results['zeroshot_top1']:.1%}",
                     f"chance {results['zeroshot_chance_top1']:.1%}, {results['zeroshot_images']} images, "
                     f"{results['zeroshot_classes']} classes, {results['zeroshot_templates']} templates"))
        rows.append(("zero-shot top-5", f"{results['zeroshot_top5']:.1%}", ""))
    for d in ("image_to_text", "text_to_image"):
        if f"{d}_R@1" in results:
            rows.append((d.replace("_", " ") + " R@1/5/10",
                         " / ".join(f"{results[f'{d}_R@{k}']:.1%}" for k in (1, 5, 10)),
                         f"{results['retrieval_samples']} samples"))
    if "scored" in results:
        rows.append(("CLIP scores", f"{results['scored']} samples",
                     f"mean {results['clip_score_mean']:.3f} → {results['score_out']}"))
    width = max(len(r[0]) for r in rows)
    head = f"{results.get('model')} from {results.get('checkpoint')}"
    return "\n".join([head] + [f"  {a:<{width}}  {b:>20}  {c}" for a, b, c in rows])


@cli_main
def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    results = run(args)
    print(json.dumps(results, default=str) if args.json else table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
