"""Task models: SSDLite detector, DeepLabv3-lite segmenter and SSD anchors, on MobileNetV2."""
from patchwork_tf.models.anchors import anchors_for_model
from patchwork_tf.models.deeplab import deeplabv3_mobilenet_v2
from patchwork_tf.models.ssdlite import ssdlite_mobilenet_v2
