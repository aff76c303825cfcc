"""SSSSegment engine: intracranial hemorrhage segmentation on head CT.

Plain Python: importing this package never imports slicer, qt or vtk, and does no work.
"""

__version__ = "0.1.0"
