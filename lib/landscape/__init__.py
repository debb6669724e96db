"""landscape: loss-landscape maps of neural networks (Li et al., NeurIPS 2018) at cluster scale."""

__version__ = "0.1.0"
