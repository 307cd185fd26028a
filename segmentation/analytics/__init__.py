"""Pure-Python analytics core of the segmentation app (RFM, BG/NBD + Gamma-Gamma CLV, lifecycle).

Nothing in this package imports Django: the functions take and return pandas objects so they can be
unit-tested and benchmarked on their own.
"""
