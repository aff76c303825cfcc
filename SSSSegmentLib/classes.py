"""The hemorrhage classes: label values (BHSD), names, colours and DICOM / SNOMED CT terminology.

One source of truth for every writer (segmentation files, Slicer nodes), the QC montage and the
evaluation tables.

Terminology follows the convention of 3D Slicer's "General Anatomy" list and of DICOM segmentations
(PS3.16): every class is category *Morphologically Altered Structure* (SCT 49755003), type
*Hemorrhage* (SCT 50960005), and the compartment the blood lies in is the *anatomic region*. EDH and
SDH share the region *Dura mater*: neither DICOM's code tables nor Slicer's anatomic list hold an
epidural or subdural space, so those two are told apart by segment name and ID.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CodedTerm:
    """A DICOM coded concept (CodingSchemeDesignator, CodeValue, CodeMeaning)."""

    scheme: str
    value: str
    meaning: str

    def as_slicer(self) -> str:
        """Slicer's terminology triplet form: ``scheme^value^meaning``."""
        return f"{self.scheme}^{self.value}^{self.meaning}"


@dataclass(frozen=True)
class HemorrhageClass:
    """One output class. ``label`` is the voxel value in label maps (BHSD convention)."""

    label: int
    key: str  # short name used in files and tables, e.g. "IPH"
    name: str  # segment name shown to the radiologist
    color_rgb: tuple[int, int, int]  # 0..255
    anatomic_region: CodedTerm  # where the blood lies (DICOM anatomic region, SNOMED CT body structure)


# Meanings as Slicer's terminology lists spell them (the category is "Morphologically Abnormal
# Structure" in DICOM's own tables; Slicer matches terms by code, not by meaning).
TERMINOLOGY_CATEGORY = CodedTerm("SCT", "49755003", "Morphologically Altered Structure")
TERMINOLOGY_TYPE = CodedTerm("SCT", "50960005", "Hemorrhage")
# The same category code with DICOM's own meaning (PS3.16 CID 7150): what a DICOM Segmentation carries.
DICOM_TERMINOLOGY_CATEGORY = CodedTerm(TERMINOLOGY_CATEGORY.scheme, TERMINOLOGY_CATEGORY.value,
                                       "Morphologically Abnormal Structure")
_DURA_MATER = CodedTerm("SCT", "18545000", "Dura mater")

HEMORRHAGE_CLASSES: tuple[HemorrhageClass, ...] = (
    HemorrhageClass(1, "EDH", "Epidural hemorrhage", (230, 159, 0), _DURA_MATER),
    HemorrhageClass(2, "IPH", "Intraparenchymal hemorrhage", (213, 94, 0), CodedTerm("SCT", "12738006", "Brain")),
    HemorrhageClass(3, "IVH", "Intraventricular hemorrhage", (0, 114, 178),
                    CodedTerm("SCT", "35764002", "Brain ventricle")),
    HemorrhageClass(4, "SAH", "Subarachnoid hemorrhage", (0, 158, 115),
                    CodedTerm("SCT", "35951006", "Subarachnoid space")),
    HemorrhageClass(5, "SDH", "Subdural hemorrhage", (204, 121, 167), _DURA_MATER),
)
BACKGROUND_LABEL = 0
NUM_LABELS = 1 + len(HEMORRHAGE_CLASSES)  # background + 5
CLASS_BY_KEY = {c.key: c for c in HEMORRHAGE_CLASSES}
CLASS_BY_LABEL = {c.label: c for c in HEMORRHAGE_CLASSES}
# SNOMED CT disorder codes that segmentation files written before 2026-12 carried as their type
# (one per class). Read only, so such files still map to our classes; never written.
LEGACY_TYPE_CODES = {"62414007": 1, "274100004": 2, "71186008": 3, "21454007": 4, "35486000": 5}
