"""ssdlib: reproduce and compare self-supervised OOD detection (SSD, SSOD) and its baselines."""

__version__ = "0.1.0"
