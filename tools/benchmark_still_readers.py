r"""One pass over ImageNet DET's training images for a VID source: decoding every image against
decoding only the images with a VID object (open problem 3, session 12).

    PYTHONPATH=. python tools/benchmark_still_readers.py --max_images=400
    PYTHONPATH=. python tools/benchmark_still_readers.py --root=data/ILSVRC2015 \
        --max_images=2000

Both passes read the XML of the first `--max_images` images of the train split
(`imagenet_det.still`) and keep those with an object of VID's 30 classes
(`training.sources`' own rule, `DataSource._map_still_labels`): "decode all" decodes every JPEG,
as the readers did before session 12; "decode kept" decodes only the kept ones, as the sources
do now. After one untimed pass (so that both read the files from the page cache), `--rounds`
rounds alternate the two; prints the median seconds per pass, their ratio, the share of images
kept and the CPU model.

Without `--root` a synthetic copy is written to a temporary folder: `--max_images` JPEGs of
`--image_size` pixels (a smooth random picture), a share `--vid_share` of them with one VID
object (an airplane), the others one object of another DET class (an apple). The share of DET's
training positives that show a VID object is not known here (no copy): a real `--root`
measures it.
"""
import json
import os
import tempfile
import time

from absl import app
from absl import flags

from machine import cpu_model  # tools/machine.py
import numpy as np
from PIL import Image

from patchwork_tf.data import imagenet_det
from patchwork_tf.training import sources

_ROOT = flags.DEFINE_string("root", None, "An ILSVRC2015 folder (imagenet_det.LAYOUT); "
                            "without, a synthetic copy.")
_MAX_IMAGES = flags.DEFINE_integer("max_images", 400, "Images per pass (the first of the list).")
_IMAGE_SIZE = flags.DEFINE_list("image_size", ["375", "500"],
                                "Height,width of the synthetic images in pixels.")
_VID_SHARE = flags.DEFINE_float("vid_share", 0.2,
                                "Share of the synthetic images with a VID object.")
_ROUNDS = flags.DEFINE_integer("rounds", 3, "Timed rounds, each pass once per round.")
_OUTPUT_JSON = flags.DEFINE_string("output_json", None, "Also write the results here.")

_AIRPLANE, _APPLE = "n02691156", "n07739125"


def write_synthetic_copy(root, num_images, size, vid_share, seed=0):
    """A DET train split in `imagenet_det.LAYOUT`: `num_images` positives of class 1, the first
    `round(vid_share * num_images)` (in list order, spread evenly) with an airplane."""
    rng = np.random.default_rng(seed)
    height, width = size
    num_vid = int(round(vid_share * num_images))
    vid = set(np.linspace(0, num_images - 1, num_vid).round().astype(int)) if num_vid else set()
    lines = []
    for i in range(num_images):
        image_id = f"ILSVRC2014_train_0000/ILSVRC2014_train_{i:08d}"
        coarse = rng.integers(0, 256, (max(height // 16, 1), max(width // 16, 1), 3), np.uint8)
        picture = Image.fromarray(coarse).resize((width, height), Image.BILINEAR)
        path = os.path.join(root, "Data", "DET", "train", image_id + ".JPEG")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        picture.save(path, "JPEG", quality=90)
        wnid = _AIRPLANE if i in vid else _APPLE
        xml = os.path.join(root, "Annotations", "DET", "train", image_id + ".xml")
        os.makedirs(os.path.dirname(xml), exist_ok=True)
        with open(xml, "w") as f:
            f.write(f"<annotation><size><width>{width}</width><height>{height}</height></size>"
                    f"<object><name>{wnid}</name><bndbox><xmin>{width // 4}</xmin><ymin>"
                    f"{height // 4}</ymin><xmax>{width // 2}</xmax><ymax>{height // 2}</ymax>"
                    "</bndbox></object></annotation>")
        lines.append(f"{image_id} 1\n")
    os.makedirs(os.path.join(root, "ImageSets", "DET"), exist_ok=True)
    with open(os.path.join(root, "ImageSets", "DET", "train_1.txt"), "w") as f:
        f.writelines(lines)
    return root


def one_pass(root, image_ids, decode_all):
    """(images kept, images decoded) of one pass; see the module docstring."""
    kept = decoded = 0
    for image_id in image_ids:
        image = imagenet_det.still(root, "train", image_id)
        keep = sources.DataSource._map_still_labels(  # pylint: disable=protected-access
            image.labels, imagenet_det.to_vid_classes, "detection") is not None
        if keep or decode_all:
            image.read_image()
            decoded += 1
        kept += keep
    return kept, decoded


def measure(root, max_images, rounds):
    """Median seconds per pass of each kind, images kept and decoded (module docstring)."""
    image_ids = imagenet_det.list_images(root, "train")[:max_images]
    one_pass(root, image_ids, decode_all=True)
    seconds = {"all": [], "kept": []}
    counts = {}
    for _ in range(rounds):
        for name in seconds:
            start = time.perf_counter()
            counts[name] = one_pass(root, image_ids, decode_all=name == "all")
            seconds[name].append(time.perf_counter() - start)
    median = {name: float(np.median(values)) for name, values in seconds.items()}
    return {"images": len(image_ids), "kept": counts["kept"][0],
            "decoded": {name: count[1] for name, count in counts.items()},
            "seconds": median, "ratio": median["kept"] / median["all"], "cpu": cpu_model()}


def main(argv):
    del argv
    with tempfile.TemporaryDirectory() as scratch:
        root = label = _ROOT.value
        if root is None:
            size = tuple(int(side) for side in _IMAGE_SIZE.value)
            root = write_synthetic_copy(scratch, _MAX_IMAGES.value, size, _VID_SHARE.value)
            label = f"a synthetic copy ({size[0]}x{size[1]}, vid_share {_VID_SHARE.value})"
        result = measure(root, _MAX_IMAGES.value, _ROUNDS.value)
        result["root"] = label
    print(f"{result['images']} images of {result['root']}: {result['kept']} with a VID object "
          f"({result['kept'] / max(result['images'], 1):.1%})")
    for name in ("all", "kept"):
        print(f"decode {name:4s}: {result['decoded'][name]:6d} decodes, "
              f"{result['seconds'][name]:.3f} s per pass (median of {_ROUNDS.value})")
    print(f"decode kept / decode all: {result['ratio']:.3f} on {result['cpu']}")
    if _OUTPUT_JSON.value:
        with open(_OUTPUT_JSON.value, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    app.run(main)
