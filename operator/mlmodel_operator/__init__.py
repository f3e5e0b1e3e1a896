"""mlmodel-operator: reconciles MLModel resources into served, verified, canaried models."""

__version__ = "0.1.0"
