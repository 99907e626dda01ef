"""pinrig: boot real kernels with pmem and soft-RoCE and test long-term GUP pins of file pages."""
__version__ = "0.1.0"
