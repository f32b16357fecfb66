"""rewire: change what a trained agent or network knows after training."""

__version__ = "0.1.0"
