"""ImageNet DET (ILSVRC 2015) as a source of still images for fake videos (paper Sec. 4.1).

The paper's single-frame detector is trained on "data sampled from ImageNet VID, ImageNet DET
and COCO"; the VID classes are 30 of DET's 200 (devkit readme, Sec. 4.1). This reader yields
still records like `coco.CocoStills.records` and `pascal_voc.voc_records` (see
`patchwork_tf.data.fake_video`): `image` uint8 [H, W, 3], `boxes` float32 [K, 4] normalized
`(ymin, xmin, ymax, xmax)` pixel edges, `classes` int32 [K] indices into `WNIDS`, `image_id`.

Decoding. `det_stills` reads each image's XML only and yields a `fake_video.Still`, whose
`read_image` decodes the JPEG and checks its size against the XML's `<size>`; `det_records`
and `read_image` decode every image. A source that keeps VID's classes only
(`training.sources`) decodes just the images with an object of those 30 of the 200 classes.

Classes. `WNIDS` holds the 200 DET WordNet ids (the synsets of the devkit's
`data/meta_det.mat`, not in its ILSVRC2015_DET_ID order): first the 30 of ImageNet VID in
VID's order (`imagenet_vid.CLASS_WNIDS`), so that class i < 30 is VID class i, then the other
170 sorted.
Objects of all 200 classes are kept; `to_vid_classes` maps them onto VID (-1 for the 170
others, which a source drops). An object whose `<name>` is none of the 200 is dropped with a
logged count.

Boxes. As ImageNet VID (same devkit, same convention): `<xmin> <ymin> <xmax> <ymax>` are
inclusive 0-based pixel indices, read as edges `(xmin, xmax + 1)`, clipped to the image;
boxes left without area are dropped, and each file with dropped or clipped boxes logs one line
(`imagenet_vid.inclusive_to_edges`). An image without objects, or without an annotation file
(the readme allows this for images with no annotated object), has K = 0.

Splits (devkit readme, Sec. 2.2). `val` is every image of `ImageSets/DET/val.txt`, annotated
for all 200 classes. `train` reads `ImageSets/DET/train_<c>.txt`, which label an image 1
(positive: every instance of class c boxed), 0 (partial positive: not every instance of c
boxed) or -1 (negative: verified to show no instance of c). The train split here is the images
positive for at least one class and partial for none: an unboxed instance would train as
background. Images that are only ever negatives (e.g. the `ILSVRC2013_train_extra*` folders)
carry no boxes and are left out. Note (readme Sec. 1.3): only the images added in 2014
(`ILSVRC2014_train_*`) have every instance of all 200 classes boxed; an `ILSVRC2013_train`
image has complete boxes for the classes it is a positive of, and may show unboxed instances
of others.
"""
import collections
import os

from absl import logging
import numpy as np

from patchwork_tf.data import fake_video
from patchwork_tf.data import imagenet_vid
from patchwork_tf.data import layout as layout_lib

_OTHER_WNIDS = (
    "n00007846", "n01443537", "n01495701", "n01639765", "n01770393", "n01776313", "n01784675",
    "n01882714", "n01910747", "n01944390", "n01982650", "n01990800", "n02076196", "n02165456",
    "n02206856", "n02219486", "n02268443", "n02274259", "n02317335", "n02346627", "n02395003",
    "n02398521", "n02437136", "n02444819", "n02445715", "n02454379", "n02672831", "n02764044",
    "n02766320", "n02769748", "n02777292", "n02786058", "n02787622", "n02799071", "n02802426",
    "n02807133", "n02815834", "n02828884", "n02840245", "n02870880", "n02879718", "n02880940",
    "n02883205", "n02892767", "n02951585", "n02970849", "n02992211", "n03000684", "n03001627",
    "n03017168", "n03062245", "n03063338", "n03085013", "n03109150", "n03110669", "n03124170",
    "n03128519", "n03134739", "n03141823", "n03188531", "n03196217", "n03207941", "n03211117",
    "n03249569", "n03255030", "n03271574", "n03314780", "n03337140", "n03372029", "n03394916",
    "n03400231", "n03445777", "n03445924", "n03467517", "n03476991", "n03481172", "n03483316",
    "n03494278", "n03495258", "n03513137", "n03535780", "n03584254", "n03633091", "n03636649",
    "n03642806", "n03676483", "n03710721", "n03720891", "n03759954", "n03761084", "n03764736",
    "n03770439", "n03793489", "n03797390", "n03804744", "n03814639", "n03838899", "n03908618",
    "n03908714", "n03916031", "n03928116", "n03942813", "n03950228", "n03958227", "n03961711",
    "n03991062", "n03995372", "n04004767", "n04019541", "n04023962", "n04026417", "n04039381",
    "n04070727", "n04074963", "n04116512", "n04118538", "n04118776", "n04131690", "n04141076",
    "n04154565", "n04228054", "n04252077", "n04252225", "n04254120", "n04254680", "n04256520",
    "n04270147", "n04317175", "n04330267", "n04332243", "n04336792", "n04356056", "n04371430",
    "n04376876", "n04379243", "n04392985", "n04409515", "n04442312", "n04487394", "n04509417",
    "n04517823", "n04536866", "n04540053", "n04542943", "n04554684", "n04557648", "n04591157",
    "n04591713", "n06874185", "n07583066", "n07615774", "n07693725", "n07695742", "n07697100",
    "n07697537", "n07714571", "n07718472", "n07718747", "n07720875", "n07734744", "n07739125",
    "n07745940", "n07747607", "n07749582", "n07753113", "n07753275", "n07753592", "n07768694",
    "n07873807", "n07880968")
WNIDS = imagenet_vid.CLASS_WNIDS + _OTHER_WNIDS
NUM_VID_CLASSES = len(imagenet_vid.CLASS_WNIDS)
SPLITS = ("train", "val")
_CLASS_INDEX = {wnid: i for i, wnid in enumerate(WNIDS)}

LAYOUT = """<root>/  (the ILSVRC2015 folder of ImageNet DET 2015, ILSVRC2015_DET.tar.gz)
  Data/DET/train/<image_id>.JPEG   <image_id> e.g. ILSVRC2013_train/n01443537/n01443537_10007,
      ILSVRC2014_train_0000/ILSVRC2014_train_00000663,
      ILSVRC2013_train_extra0/ILSVRC2013_train_00000001
  Data/DET/val/<image_id>.JPEG
  Annotations/DET/{train,val}/<image_id>.xml   VOC-style: <size><width/><height/></size>, zero
      or more <object><name>WordNet id</name><bndbox><xmin/><ymin/><xmax/><ymax/></bndbox>
      </object>; corners are inclusive 0-based pixel indices; may be absent for an image
      without annotated objects
  ImageSets/DET/train_<1..200>.txt   lines '<image_id> <label>'; label 1: all instances of
      class <c> boxed, 0: some, -1: none present
  ImageSets/DET/val.txt              lines '<image_id> <index>'"""


def to_vid_classes(classes):
    """ImageNet VID class ids of DET class ids (indices into `WNIDS`): int32, -1 where the
    DET class is not one of VID's 30."""
    classes = np.asarray(classes, np.int32)
    return np.where(classes < NUM_VID_CLASSES, classes, -1).astype(np.int32)


def list_images(root, split):
    """Image ids (paths relative to `Data/DET/<split>`, without `.JPEG`) of a split.

    See the module docstring for which training images are kept. Order: `val.txt` order; for
    train, first appearance in the lists read in name order.
    """
    if split not in SPLITS:
        raise ValueError(f"ImageNet DET split must be one of {SPLITS}, got {split!r}.")
    labels = collections.defaultdict(set)
    for name, line in imagenet_vid.image_set_lines(root, "DET", split, LAYOUT):
        fields = line.split()
        if len(fields) != 2 or not fields[1].lstrip("-").isdigit() or (
                split == "train" and fields[1] not in ("1", "0", "-1")):
            raise layout_lib.DataLayoutError(
                f"cannot read line {line!r} of ImageSets/DET/{name}. Expected this "
                f"layout:\n{LAYOUT}")
        labels[fields[0].strip("/")].add(fields[1])
    if split == "val":
        return list(labels)
    return [image_id for image_id, seen in labels.items() if "1" in seen and "0" not in seen]


def parse_annotation(path):
    """One image's XML, or no objects if `path` does not exist.

    Returns:
        ((height, width) from the XML's `<size>`, or None without a file; boxes float32
        [K, 4] normalized `(ymin, xmin, ymax, xmax)` pixel edges, clipped to that size;
        classes int32 [K] indices into `WNIDS`).
    """
    if not os.path.exists(path):
        return None, np.zeros((0, 4), np.float32), np.zeros(0, np.int32)
    tree = imagenet_vid.parse_xml(path, LAYOUT)
    size = imagenet_vid.frame_size(tree, path, LAYOUT)
    corners, classes, unknown = [], [], 0
    for node in tree.findall("object"):
        wnid = (node.findtext("name") or "").strip()
        if wnid not in _CLASS_INDEX:
            unknown += 1
            continue
        box = node.find("bndbox")
        if box is None:
            raise layout_lib.DataLayoutError(f"{path!r}: an object has no <bndbox>.")
        try:
            corners.append([float(box.findtext(name)) for name in ("xmin", "ymin", "xmax",
                                                                  "ymax")])
        except (TypeError, ValueError):
            raise layout_lib.DataLayoutError(
                f"{path!r}: a <bndbox> lacks a numeric xmin, ymin, xmax or ymax. Expected this "
                f"layout:\n{LAYOUT}") from None
        classes.append(_CLASS_INDEX[wnid])
    if unknown:
        logging.warning("%s: dropped %d objects whose <name> is not one of the 200 DET "
                        "WordNet ids", path, unknown)
    boxes, keep = imagenet_vid.inclusive_to_edges(corners, size, path)
    return size, boxes, np.array(classes, np.int32).reshape(-1)[keep]


def still(root, split, image_id):
    """One image as a `fake_video.Still`: its labels from the XML, its JPEG decoded only by
    `read_image`, which checks the image's size against the XML's `<size>`."""
    xml = os.path.join(root, "Annotations", "DET", split, image_id + ".xml")
    size, boxes, classes = parse_annotation(xml)

    def read_image():
        image = layout_lib.read_image(
            os.path.join(root, "Data", "DET", split, image_id + ".JPEG"), LAYOUT)
        if size is not None and image.shape[:2] != size:
            raise layout_lib.DataLayoutError(
                f"{xml!r} says size {size}, the image is {image.shape[:2]}.")
        return image

    return fake_video.Still({"boxes": boxes, "classes": classes,
                             "image_id": f"imagenet_det/{split}/{image_id}"}, read_image)


def read_image(root, split, image_id):
    """The still record of one image (module docstring), its JPEG decoded."""
    return still(root, split, image_id).record()


def det_stills(root, split="train", max_images=None):
    """Yields the images of a split as `fake_video.Still`s, in `list_images` order: the XML is
    read, the JPEG is not decoded.

    Args:
        root: the local ILSVRC2015 folder (see LAYOUT).
        split: "train" or "val".
        max_images: at most this many images.
    """
    layout_lib.require(os.path.join(root, "Annotations", "DET", split),
                       f"Annotations/DET/{split}", LAYOUT)
    for image_id in list_images(root, split)[:max_images]:
        yield still(root, split, image_id)


def det_records(root, split="train", max_images=None):
    """Yields the still records of a split, every image decoded (`det_stills`' arguments)."""
    for image in det_stills(root, split, max_images):
        yield image.record()
