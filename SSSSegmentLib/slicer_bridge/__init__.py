"""MRML <-> engine conversions for the Slicer module (volume nodes, segmentation nodes, jobs).

Importing this package never imports slicer or vtk: each function imports them when called.
Headless, the MRML classes come from the PyPI package ``slicer-core``; inside Slicer from Slicer.
"""
