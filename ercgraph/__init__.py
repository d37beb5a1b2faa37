"""ercgraph: multimodal emotion recognition in conversation with graph neural networks.

Importing this package has no side effects: nothing is downloaded, no logging is configured and
no device is chosen. Heavy modules (torch, transformers) are imported by the submodules that
need them.
"""

__version__ = "0.1.0"

from ercgraph.errors import ErcgraphError

__all__ = ["ErcgraphError", "__version__"]
