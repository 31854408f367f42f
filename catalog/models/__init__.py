from .algorithms import Algorithm, Category, Tag
from .builds import Build, SourceBundle
from .versions import AlgorithmVersion

__all__ = ["Algorithm", "AlgorithmVersion", "Build", "Category", "SourceBundle", "Tag"]
