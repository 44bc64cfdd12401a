"""The shard tar: the bytes Python's tarfile writes in stream mode for the same members (real JPEGs,
captions in several scripts, sizes on and off the 512-byte blocks), readable by tarfile and webdataset."""
import io
import tarfile
from types import SimpleNamespace

import webdataset as wds

from openwit.pipeline.images import ImageSettings, process_image
from openwit.pipeline.shards import writer as sw
from openwit.pipeline.shards.sample import make_sample, meta_json


def _samples(shared_data) -> list[dict]:
    paths = sorted((shared_data / "images" / "skimage").glob("*.png"))[:6]  # re-encoded as JPEG
    captions = ["a cat", "", None, "日本語のキャプション – ünïcödé", "x" * 511, "y" * 1024]
    samples = []
    for i, (path, caption) in enumerate(zip(paths, captions)):
        raw = path.read_bytes()
        fetched = SimpleNamespace(ok=True, data=raw, reason=None, error=None, image_format="jpeg")
        image = process_image(raw, ImageSettings(image_size=48 + i))
        cand = {"url": f"http://127.0.0.1/{i}.jpg", "caption": caption, "uid": f"{i:032x}", "query_ids": [i]}
        samples.append(make_sample(f"{5 - i:09d}", cand, fetched, image))  # written in key order, not this one
    failed = SimpleNamespace(ok=False, data=None, reason="http_404", error="404", image_format=None)
    samples.append(make_sample("000000009", {"url": "http://127.0.0.1/404", "caption": "gone", "uid": "f" * 32},
                               failed, None))
    return samples


def _tarfile_bytes(samples: list[dict]) -> bytes:
    """The same members written by tarfile itself (stream mode, USTAR)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w|", format=tarfile.USTAR_FORMAT) as tar:
        for s in sorted(samples, key=lambda s: s["key"]):
            if s["status"] != "success":
                continue
            for name, data in ((f"{s['key']}.{s['ext']}", s["data"]), (f"{s['key']}.json", meta_json(s)),
                               (f"{s['key']}.txt", (s["caption"] or "").encode("utf-8"))):
                info = tarfile.TarInfo(name)
                info.size, info.mtime, info.mode, info.uid, info.gid, info.uname, info.gname = (
                    len(data), 0, 0o644, 0, 0, "", "")
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_tar_is_what_tarfile_writes(shared_data, tmp_path):
    samples = _samples(shared_data)
    assert any(len(s["caption"] or "") % 512 == 0 for s in samples if s["status"] == "success")
    path = tmp_path / "00000.tar"
    sw.write_tar(str(path), samples)
    data = path.read_bytes()
    assert data == _tarfile_bytes(samples)
    assert len(data) % tarfile.RECORDSIZE == 0
    with tarfile.open(path) as tar:
        names = tar.getnames()
    assert names[:3] == ["000000000.jpg", "000000000.json", "000000000.txt"] and len(names) == 18
    by_key = {s["key"]: s for s in samples}
    for sample in wds.WebDataset(str(path), shardshuffle=False):
        assert sample["jpg"] == by_key[sample["__key__"]]["data"]
        assert sample["txt"].decode("utf-8") == (by_key[sample["__key__"]]["caption"] or "")


def test_tar_of_no_successes_is_an_empty_archive(tmp_path):
    path = tmp_path / "00001.tar"
    sw.write_tar(str(path), [])
    assert path.read_bytes() == _tarfile_bytes([]) and tarfile.open(path).getnames() == []
