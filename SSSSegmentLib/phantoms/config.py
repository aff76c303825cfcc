"""Configuration and result records of the synthetic head-CT phantom generator.

Frames: the phantom lives in the DICOM/ITK patient frame LPS (mm). The head has its own
"head-local" frame (u, v, w) in mm: u towards the patient's left, v posterior, w superior, centred on
the cranial ellipsoid; it is the LPS frame rotated by the head pose (yaw/pitch/roll) and shifted.
Arrays are indexed ``[k, j, i]`` = (z, y, x) like everywhere in the engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from ..errors import InputError
from ..volumes.geometry import CTVolume, Geometry


class Tissue(IntEnum):
    """Tissue codes of ``Phantom.tissue_zyx`` (what a voxel is, apart from blood)."""

    AIR = 0
    SCALP = 1  # skin, fat, muscle, and the soft tissue below the skull base
    BONE_CORTICAL = 2  # inner and outer table, skull base
    BONE_DIPLOE = 3  # cancellous bone between the tables
    SUTURE = 4  # thin fibrous gap between skull plates
    GREY_MATTER = 5  # cortex and deep grey nuclei
    WHITE_MATTER = 6
    CSF_VENTRICLE = 7  # lateral, third and fourth ventricles
    CSF_SULCI = 8  # sulci, fissures, convexity subarachnoid space and basal cisterns
    FALX = 9
    EDEMA = 10  # perihaematomal oedema around an IPH (hypodense, not labelled)
    DURA = 11  # dura under the inner table, tentorium, superior sagittal sinus (blood-dense, not blood)
    CALC_PINEAL = 12  # physiological calcifications (not blood, never labelled)
    CALC_CHOROID = 13
    CALC_FALX = 14
    CALC_BASAL = 15  # globus pallidus
    ORBIT_FAT = 16
    GLOBE = 17
    CALC_RIM = 18  # partly calcified tissue around a calcification (blood-dense, never labelled)


PARENCHYMA = (Tissue.GREY_MATTER, Tissue.WHITE_MATTER, Tissue.EDEMA)
INTRACRANIAL = (*PARENCHYMA, Tissue.CSF_VENTRICLE, Tissue.CSF_SULCI, Tissue.FALX)

# Nominal HU range of each tissue (before noise, blur and partial volume). Per-case means are drawn
# inside these ranges; the texture added on top stays inside them too.
TISSUE_HU_RANGE: dict[Tissue, tuple[float, float]] = {
    Tissue.AIR: (-1000.0, -1000.0),
    Tissue.SCALP: (20.0, 60.0),
    Tissue.BONE_CORTICAL: (1200.0, 1500.0),
    Tissue.BONE_DIPLOE: (700.0, 900.0),
    Tissue.SUTURE: (40.0, 120.0),
    Tissue.GREY_MATTER: (35.0, 45.0),
    Tissue.WHITE_MATTER: (22.0, 32.0),
    Tissue.CSF_VENTRICLE: (0.0, 15.0),
    Tissue.CSF_SULCI: (0.0, 15.0),
    Tissue.FALX: (60.0, 110.0),
    Tissue.EDEMA: (15.0, 25.0),
    Tissue.DURA: (45.0, 80.0),
    Tissue.CALC_PINEAL: (100.0, 600.0),
    Tissue.CALC_CHOROID: (80.0, 400.0),
    Tissue.CALC_FALX: (150.0, 800.0),
    Tissue.CALC_BASAL: (80.0, 300.0),
    Tissue.ORBIT_FAT: (-100.0, -60.0),
    Tissue.GLOBE: (0.0, 20.0),
    Tissue.CALC_RIM: (55.0, 95.0),
}
BLOOD_HU_RANGE = (45.0, 90.0)  # acute blood, every class (50-90); only the rim of a large IPH goes below 50


@dataclass(frozen=True)
class ScannerProfile:
    """How a scanner/protocol renders the ideal phantom.

    ``noise_std_hu``: std of the (slightly correlated) image noise; ``hu_offset``: calibration shift
    added to every voxel; ``slice_thickness_mm``: reconstructed slice thickness = spacing along k;
    ``inplane_blur_mm``: gaussian sigma of the in-plane point spread; ``padding_hu``: value outside
    the circular reconstruction field of view. ``artefact_scale`` multiplies the per-case artefact
    strength (``PhantomConfig.artefact_strength``); 0 turns the scanner artefacts off.
    """

    name: str = "standard"
    noise_std_hu: float = 5.0
    hu_offset: float = 0.0
    slice_thickness_mm: float = 5.0
    inplane_blur_mm: float = 0.35
    padding_hu: float = -1024.0
    artefact_scale: float = 1.0


SCANNER_PROFILES: dict[str, ScannerProfile] = {
    p.name: p
    for p in (
        ScannerProfile("standard"),
        ScannerProfile("low_dose", noise_std_hu=8.0, inplane_blur_mm=0.45),
        ScannerProfile("sharp_kernel", noise_std_hu=7.0, inplane_blur_mm=0.2, hu_offset=-3.0),
        ScannerProfile("smooth_kernel", noise_std_hu=3.0, inplane_blur_mm=0.6, hu_offset=4.0),
        ScannerProfile("thin_slice", noise_std_hu=6.0, slice_thickness_mm=1.0, inplane_blur_mm=0.3),
        ScannerProfile("ideal", noise_std_hu=0.0, inplane_blur_mm=0.0, padding_hu=-1000.0, artefact_scale=0.0),
    )
}
LESION_KEYS = ("EDH", "IPH", "IVH", "SAH", "SDH")
GEOMETRY_VARIANT_NAMES = ("none", "fov_front", "fov_back", "fov_side", "fov_vertex", "head_holder", "craniectomy",
                          "burr_holes", "matrix_256", "matrix_384", "rectangular", "thin_slices", "thick_slices",
                          "small_head")


@dataclass(frozen=True)
class PhantomConfig:
    """What to generate.

    ``matrix``: in-plane size (I = J); the pixel spacing is drawn from ``pixel_spacing_mm`` (given for
    a 512 matrix, scaled by 512/matrix so the field of view stays the same) and widened when the head
    would not fit. ``num_slices``: None covers skull base to vertex plus a seeded margin (about 28-36
    slices of 5 mm); a number gives that many slices centred on the head.
    ``slice_thickness_mm``: None takes the scanner's. ``sub_slice_mm``: thickness of the sub-slices
    rendered and averaged per slice (partial volume); their count is made odd.
    ``lesion_keys``: None draws 0..``max_lesions`` random lesions (none with ``p_no_lesion``);
    a tuple of class keys generates exactly those lesions. ``lesion_size_quantiles``: the part of
    each class's size distribution (0 = speck, 1 = largest) to draw from.
    ``artefact_strength``: range of the per-case scanner-artefact strength (0 = clean, thin-slice-like;
    1 = stronger than a typical thick-slice scanner), drawn uniformly per case; see
    ``acquisition.draw_artefacts`` for what it scales.
    ``geometry_variants``: real-geometry variants (``geometry_variants.GEOMETRY_VARIANTS``: a field of
    view cut at the image edge, a head holder, a missing bone flap, 256 / rectangular matrices, thin
    slices, ...), one drawn uniformly per case; empty (the default) or ``("none",)`` keeps every case plain.
    """

    matrix: int = 512
    pixel_spacing_mm: tuple[float, float] = (0.4, 0.6)
    num_slices: int | None = None
    slice_thickness_mm: float | None = None
    sub_slice_mm: float = 1.0
    p_no_lesion: float = 0.2
    max_lesions: int = 4
    lesion_keys: tuple[str, ...] | None = None
    lesion_size_quantiles: tuple[float, float] = (0.0, 1.0)
    artefact_strength: tuple[float, float] = (0.0, 1.0)
    geometry_variants: tuple[str, ...] = ()

    def validate(self) -> None:
        """Raise InputError on a configuration that cannot be generated."""
        lo, hi = self.lesion_size_quantiles
        checks = {
            "matrix must be 32..2048": 32 <= self.matrix <= 2048,
            "pixel_spacing_mm must be positive and ordered": 0 < self.pixel_spacing_mm[0] <= self.pixel_spacing_mm[1],
            "num_slices must be >= 1": self.num_slices is None or self.num_slices >= 1,
            "slice_thickness_mm must be 0.3..10": self.slice_thickness_mm is None
            or 0.3 <= self.slice_thickness_mm <= 10,
            "sub_slice_mm must be positive": self.sub_slice_mm > 0,
            "p_no_lesion must be in [0, 1]": 0.0 <= self.p_no_lesion <= 1.0,
            "max_lesions must be >= 0": self.max_lesions >= 0,
            "lesion_size_quantiles must satisfy 0 <= lo <= hi <= 1": 0.0 <= lo <= hi <= 1.0,
            "artefact_strength must satisfy 0 <= lo <= hi <= 1": 0.0
            <= self.artefact_strength[0]
            <= self.artefact_strength[1]
            <= 1.0,
            f"lesion_keys must be among {LESION_KEYS}": self.lesion_keys is None
            or all(k in LESION_KEYS for k in self.lesion_keys),
            f"geometry_variants must be among {GEOMETRY_VARIANT_NAMES}": all(
                v in GEOMETRY_VARIANT_NAMES for v in self.geometry_variants),
        }
        for message, ok in checks.items():
            if not ok:
                raise InputError(f"invalid PhantomConfig: {message}")


@dataclass(frozen=True)
class LesionRecord:
    """Metadata of one generated hemorrhage: class key, centre (LPS mm), labelled volume (mL)."""

    key: str
    centre_lps: tuple[float, float, float]
    volume_ml: float


@dataclass(frozen=True)
class Phantom:
    """One synthetic head CT with ground truth.

    ``hu_zyx``: float32 (K, J, I), HU as the scanner reconstructs it (noise, blur, partial volume).
    ``labels_zyx``: uint8 (K, J, I), BHSD values (0 background, 1 EDH, 2 IPH, 3 IVH, 4 SAH, 5 SDH);
    a thick voxel is labelled when the lesion fills more than half of it and its centre.
    ``tissue_zyx``: uint8 (K, J, I), ``Tissue`` code at the voxel centre; a blood voxel keeps the
    code of the tissue it replaced (so IVH sits on CSF_VENTRICLE, IPH on parenchyma, ...).
    ``geometry``: the grid (LPS, identity direction, centred origin, axial slices, k = superior).
    ``anatomy``: the drawn head (pose, sizes, sutures) for checks in the head-local frame.
    ``variant``: the real-geometry variant applied (``geometry_variants``), "none" for a plain case.
    """

    hu_zyx: np.ndarray
    labels_zyx: np.ndarray
    tissue_zyx: np.ndarray
    geometry: Geometry
    lesions: tuple[LesionRecord, ...]
    seed: int
    scanner: ScannerProfile
    anatomy: object  # anatomy.HeadAnatomy (typed loosely to keep this module import-light)
    variant: str = "none"  # the real-geometry variant (``PhantomConfig.geometry_variants``)

    def to_ct_volume(self) -> CTVolume:
        """The image as a CTVolume (shares the HU array)."""
        return CTVolume(self.hu_zyx, self.geometry, source=f"phantom seed {self.seed} ({self.scanner.name})")
