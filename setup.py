"""Distribution "rnnpipe": the engine package plus components/, models/, pipelines/ as its subpackages."""

from setuptools import setup

SUBPACKAGES = {
    "rnnpipe.components": "components",
    "rnnpipe.models": "models",
    "rnnpipe.pipelines": "pipelines",
    "rnnpipe.pipelines.sentiment": "pipelines/sentiment",
    "rnnpipe.pipelines.forecasting": "pipelines/forecasting",
    "rnnpipe.pipelines.textgen": "pipelines/textgen",
    "rnnpipe.pipelines.tagging": "pipelines/tagging",
}
APPLICATIONS = ["sentiment", "forecasting", "textgen", "tagging"]

setup(
    name="rnnpipe",
    version="0.1.0",
    description="Production pipelines for recurrent neural networks: TFX-style stages, Keras 3, Beam, MLflow.",
    python_requires=">=3.11,<3.12",
    packages=["rnnpipe", *SUBPACKAGES],
    package_dir={"rnnpipe": "rnnpipe", **SUBPACKAGES},
    package_data={
        "rnnpipe": ["*.yaml"],
        "rnnpipe.models": ["kernels/*.cc"],
        **{f"rnnpipe.pipelines.{app}": ["*.yaml", "*.pbtxt"] for app in APPLICATIONS},
    },
    include_package_data=True,
    entry_points={
        "console_scripts": ["rnnpipe = rnnpipe.cli:main"],
        "rnnpipe.pipelines": [f"{app} = rnnpipe.pipelines.{app}:APPLICATION" for app in APPLICATIONS],
    },
)
