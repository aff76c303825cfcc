"""The hemorrhage classes: label values (BHSD), names, colours and SNOMED CT terminology.

One source of truth for every writer (segmentation files, Slicer nodes), the QC montage and the
evaluation tables.
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
    property_type: CodedTerm  # SNOMED CT morphologic abnormality


# SNOMED CT concepts for the hemorrhage types (CodingSchemeDesignator "SCT"). Codes cross-checked
# against two public code tables only; verify in a SNOMED CT browser before a clinical release.
_CATEGORY = CodedTerm("SCT", "49755003", "Morphologically Altered Structure")
_HEAD_REGION = CodedTerm("SCT", "1101003", "Intracranial structure")

HEMORRHAGE_CLASSES: tuple[HemorrhageClass, ...] = (
    HemorrhageClass(1, "EDH", "Epidural hemorrhage", (230, 159, 0),
                    CodedTerm("SCT", "62414007", "Epidural hemorrhage")),
    HemorrhageClass(2, "IPH", "Intraparenchymal hemorrhage", (213, 94, 0),
                    CodedTerm("SCT", "274100004", "Cerebral hemorrhage")),
    HemorrhageClass(3, "IVH", "Intraventricular hemorrhage", (0, 114, 178),
                    CodedTerm("SCT", "71186008", "Intraventricular hemorrhage")),
    HemorrhageClass(4, "SAH", "Subarachnoid hemorrhage", (0, 158, 115),
                    CodedTerm("SCT", "21454007", "Subarachnoid hemorrhage")),
    HemorrhageClass(5, "SDH", "Subdural hemorrhage", (204, 121, 167),
                    CodedTerm("SCT", "35486000", "Subdural hemorrhage")),
)
BACKGROUND_LABEL = 0
NUM_LABELS = 1 + len(HEMORRHAGE_CLASSES)  # background + 5
CLASS_BY_KEY = {c.key: c for c in HEMORRHAGE_CLASSES}
CLASS_BY_LABEL = {c.label: c for c in HEMORRHAGE_CLASSES}
TERMINOLOGY_CATEGORY = _CATEGORY
ANATOMIC_REGION = _HEAD_REGION
