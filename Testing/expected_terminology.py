"""The terminology our segments must carry, written out by hand (not taken from classes.py).

Slicer's "General Anatomy" convention for a lesion (SegmentationCategoryTypeModifier-SlicerGeneralAnatomy.json):
category Morphologically Altered Structure (Slicer's spelling of SCT 49755003), type Hemorrhage
(SCT 50960005), and the compartment as the anatomic region from Slicer's "Anatomic codes - DICOM
master list". ``test_segfile.test_expected_codes_are_dicoms_own`` checks the codes against DICOM
PS3.16 as pydicom tabulates them (``pydicom.sr.codedict.codes.SCT``).
"""

from __future__ import annotations

CATEGORY = "SCT^49755003^Morphologically Altered Structure"
HEMORRHAGE_TYPE = "SCT^50960005^Hemorrhage"
REGION_BY_LABEL = {1: ("18545000", "Dura mater"), 2: ("12738006", "Brain"), 3: ("35764002", "Brain ventricle"),
                   4: ("35951006", "Subarachnoid space"), 5: ("18545000", "Dura mater")}
PYDICOM_REGION_NAMES = {1: "DuraMater", 2: "Brain", 3: "BrainVentricle", 4: "SubarachnoidSpace", 5: "DuraMater"}
KEY_NAME_RGB = {1: ("EDH", "Epidural hemorrhage", (230, 159, 0)),
                2: ("IPH", "Intraparenchymal hemorrhage", (213, 94, 0)),
                3: ("IVH", "Intraventricular hemorrhage", (0, 114, 178)),
                4: ("SAH", "Subarachnoid hemorrhage", (0, 158, 115)),
                5: ("SDH", "Subdural hemorrhage", (204, 121, 167))}


def expected_tag(label: int) -> str:
    """Slicer's TerminologyEntry value for the class with this label."""
    value, meaning = REGION_BY_LABEL[label]
    return (f"Segmentation category and type - 3D Slicer General Anatomy list~{CATEGORY}~{HEMORRHAGE_TYPE}~^^"
            f"~Anatomic codes - DICOM master list~SCT^{value}^{meaning}~^^")
