"""Shim: ``python train.py -c configs/meld_text.yaml`` is ``ercgraph train -c ...``."""

import sys

from ercgraph.cli import main

main(["train", *sys.argv[1:]])
