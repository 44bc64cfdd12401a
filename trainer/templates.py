"""Prompt templates for zero-shot classification: CLIP's single prompt and its 80-prompt ImageNet
ensemble (the prompts published with CLIP, in their order), or one template a line from a file."""
from __future__ import annotations

from openwit.common.errors import UserError

CLIP1 = ["a photo of a {}."]

_CLIP80 = """\
a bad photo of a {}.|a photo of many {}.|a sculpture of a {}.|a photo of the hard to see {}.
a low resolution photo of the {}.|a rendering of a {}.|graffiti of a {}.|a bad photo of the {}.
a cropped photo of the {}.|a tattoo of a {}.|the embroidered {}.|a photo of a hard to see {}.
a bright photo of a {}.|a photo of a clean {}.|a photo of a dirty {}.|a dark photo of the {}.
a drawing of a {}.|a photo of my {}.|the plastic {}.|a photo of the cool {}.
a close-up photo of a {}.|a black and white photo of the {}.|a painting of the {}.|a painting of a {}.
a pixelated photo of the {}.|a sculpture of the {}.|a bright photo of the {}.|a cropped photo of a {}.
a plastic {}.|a photo of the dirty {}.|a jpeg corrupted photo of a {}.|a blurry photo of the {}.
a photo of the {}.|a good photo of the {}.|a rendering of the {}.|a {} in a video game.
a photo of one {}.|a doodle of a {}.|a close-up photo of the {}.|a photo of a {}.
the origami {}.|the {} in a video game.|a sketch of a {}.|a doodle of the {}.
a origami {}.|a low resolution photo of a {}.|the toy {}.|a rendition of the {}.
a photo of the clean {}.|a photo of a large {}.|a rendition of a {}.|a photo of a nice {}.
a photo of a weird {}.|a blurry photo of a {}.|a cartoon {}.|art of a {}.
a sketch of the {}.|a embroidered {}.|a pixelated photo of a {}.|itap of the {}.
a jpeg corrupted photo of the {}.|a good photo of a {}.|a plushie {}.|a photo of the nice {}.
a photo of the small {}.|a photo of the weird {}.|the cartoon {}.|art of the {}.
a drawing of the {}.|a photo of the large {}.|a black and white photo of a {}.|the plushie {}.
a dark photo of a {}.|itap of a {}.|graffiti of the {}.|a toy {}.
itap of my {}.|a photo of a cool {}.|a photo of a small {}.|a tattoo of the {}."""
CLIP80 = [t for line in _CLIP80.splitlines() for t in line.split("|")]

BUILTIN = {"clip1": CLIP1, "clip80": CLIP80}


def load_templates(spec: str = "clip80") -> list[str]:
    """`clip1`, `clip80`, or a file with one template a line, each holding `{}` for the class name."""
    if spec in BUILTIN:
        return list(BUILTIN[spec])
    try:
        with open(spec, encoding="utf-8") as f:
            lines = [line.strip() for line in f if line.strip() and not line.startswith("#")]
    except OSError as e:
        raise UserError(f"--templates {spec}: not clip1/clip80 and not a readable file ({e.strerror})") from e
    bad = [t for t in lines if t.count("{}") != 1]
    if not lines or bad:
        raise UserError(f"--templates {spec}: every line needs exactly one {{}} for the class name"
                        + (f" (e.g. {bad[0]!r})" if bad else " (the file is empty)"))
    return lines
