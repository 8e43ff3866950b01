"""Installs patchwork_tf: Patchwork (Chai, ICCV 2019) in TensorFlow / tf_keras."""
import setuptools

setuptools.setup(
    name="patchwork_tf",
    version="0.1.0",
    description=(
        "Patchwork: a patch-wise attention network for efficient object detection and "
        "segmentation in video streams (Chai, ICCV 2019), in TensorFlow / tf_keras."
    ),
    packages=setuptools.find_packages(include=["patchwork_tf", "patchwork_tf.*"]),
    python_requires=">=3.11,<3.12",
    install_requires=[
        "tensorflow==2.21.*",
        "tf-keras==2.21.*",
        "tf-agents==0.19.0",
        "tensorflow-probability==0.23.*",
        "tensorboard==2.21.*",
        "tensorflow-datasets",
        "numpy",
        "pycocotools",
        "absl-py",
        "matplotlib",
        "pillow",
    ],
    extras_require={"test": ["pytest", "pytest-xdist"]},
)
