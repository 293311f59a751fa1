"""Distribution "rnnpipe": the engine package plus components/, models/, pipelines/ as its subpackages."""

from pathlib import Path

from setuptools import setup

# Every package under pipelines/ is an application, registered under its folder's name.
APPLICATIONS = sorted(p.parent.name for p in Path(__file__).parent.glob("pipelines/*/__init__.py"))
SUBPACKAGES = {
    "rnnpipe.components": "components",
    "rnnpipe.models": "models",
    "rnnpipe.pipelines": "pipelines",
    **{f"rnnpipe.pipelines.{app}": f"pipelines/{app}" for app in APPLICATIONS},
}

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
    # Scheduled runs on Airflow (rnnpipe/airflow_dag.py); requirements-airflow.lock pins it with the whole stack.
    extras_require={"airflow": ["apache-airflow>=3.3,<3.4"]},
    entry_points={
        "console_scripts": ["rnnpipe = rnnpipe.cli:console_main"],
        "rnnpipe.pipelines": [f"{app} = rnnpipe.pipelines.{app}:APPLICATION" for app in APPLICATIONS],
    },
)
