from .algorithms import Algorithm, Category, Tag
from .builds import Build, SourceBundle
from .secrets import AlgorithmSecret
from .versions import AlgorithmVersion

__all__ = ["Algorithm", "AlgorithmSecret", "AlgorithmVersion", "Build", "Category", "SourceBundle", "Tag"]
