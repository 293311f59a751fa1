"""The pipeline stages, one module each: contract (a Component subclass) + executor function."""

from .evaluator import Evaluator
from .example_gen import ExampleGen
from .example_validator import ExampleValidator
from .infra_validator import InfraValidator
from .pusher import Pusher
from .schema_gen import SchemaGen
from .standard_pipeline import standard_pipeline
from .statistics_gen import StatisticsGen
from .trainer import Trainer
from .transform import Transform

__all__ = ["Evaluator", "ExampleGen", "ExampleValidator", "InfraValidator", "Pusher", "SchemaGen", "StatisticsGen",
           "Trainer", "Transform", "standard_pipeline"]
