"""Volume I/O and geometry (DICOM, NIfTI, NRRD, .seg.nrrd)."""
