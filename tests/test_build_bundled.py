"""The bundled-data builder: DICOM rendering (windows, VOI LUT, MONOCHROME1, frames, colour), facts, split."""

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

from medix_r1.data.build_bundled import (
    DICOM_SPECS,
    Item,
    assign_splits,
    dicom_facts,
    dicom_to_image,
    imaging_plane,
    modality_tag,
    pydicom_test_dir,
    shrink,
)
from medix_r1.modalities import MODALITY_TAGS


def _grey(values, photometric="MONOCHROME2", modality="OT", **elements) -> Dataset:
    """A minimal uncompressed DICOM dataset holding ``values`` (2-D, or 3-D for multi-frame)."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.Modality = modality
    arr = np.asarray(values, dtype=np.uint16)
    ds.set_pixel_data(arr, photometric_interpretation="MONOCHROME2", bits_stored=12)
    ds.PhotometricInterpretation = photometric
    for k, v in elements.items():
        setattr(ds, k, v)
    return ds


RAMP = [[0, 1000, 2000, 3000, 4000]]


def test_window_from_the_header_is_the_dicom_linear_function():
    img, info = dicom_to_image(_grey(RAMP, WindowCenter=2000, WindowWidth=4001))
    assert img.mode == "L"
    assert list(img.getdata()) == [0, 64, 128, 191, 255]
    assert info["window"] == "from the file (C2000/W4001)"
    # several suggested windows: the first one is used
    img, _ = dicom_to_image(_grey(RAMP, WindowCenter=[1000, 3000], WindowWidth=[2, 2]))
    assert list(img.getdata()) == [0, 255, 255, 255, 255]


def test_monochrome1_is_inverted():
    m2, _ = dicom_to_image(_grey(RAMP, WindowCenter=2000, WindowWidth=4001))
    m1, info = dicom_to_image(_grey(RAMP, "MONOCHROME1", WindowCenter=2000, WindowWidth=4001))
    assert list(m2.getdata()) == [0, 64, 128, 191, 255]
    assert list(m1.getdata()) == [255 - v for v in m2.getdata()]
    assert info["photometric"] == "MONOCHROME1"


def test_voi_lut_sequence_wins_over_percentiles():
    ds = _grey([[0, 1, 2, 3]])
    item = Dataset()
    item.LUTDescriptor = [4, 0, 8]   # 4 entries, first input value 0, 8-bit output
    item.LUTData = [0, 200, 100, 50]  # deliberately non-monotonic: only a LUT can produce it
    ds.VOILUTSequence = [item]
    img, info = dicom_to_image(ds)
    assert info["window"] == "VOI LUT from the file"
    assert list(img.getdata()) == [0, 255, 128, 64]


def test_rescale_to_hounsfield_and_ct_default_window():
    # stored 0..2048 with intercept -1024: -1024 HU (air) to 1024 HU (bone)
    ds = _grey([[0, 1024, 1064, 1424, 2048]], modality="CT", RescaleIntercept=-1024, RescaleSlope=1)
    img, info = dicom_to_image(ds)
    assert info["window"] == "soft-tissue (C40/W400)"
    assert list(img.getdata()) == [0, 102, 128, 255, 255]  # water (0 HU) sits just below mid-grey
    img, info = dicom_to_image(ds, window="bone")
    assert info["window"] == "bone (C400/W1800)"
    assert list(img.getdata()) == [0, 71, 77, 128, 216]  # centre 400 HU is mid-grey; 1024 HU is not yet white


def test_percentile_window_and_counts_window():
    rng = np.random.default_rng(0)
    values = rng.integers(100, 200, size=(20, 20))
    values[0, 0] = 4000  # one hot pixel must not flatten the rest
    img, info = dicom_to_image(_grey(values, modality="MR"))
    assert info["window"] == "percentiles 0.5-99.5"
    assert np.asarray(img)[1:, 1:].std() > 40
    img, info = dicom_to_image(_grey(values, modality="NM"), invert=True)
    assert info["inverted"] and "counts" in info["window"]


def test_multi_frame_takes_the_middle_frame():
    frames = [np.full((4, 4), v) for v in (0, 1000, 2000, 3000, 4000)]
    ds = _grey(frames, NumberOfFrames=5, WindowCenter=2000, WindowWidth=2001)
    img, info = dicom_to_image(ds)
    assert info["frame"] == "3 of 5" and set(img.getdata()) == {128}
    img, info = dicom_to_image(ds, frame=0)
    assert set(img.getdata()) == {0}


def test_colour_files_from_pydicom():
    img, info = dicom_to_image(pydicom.dcmread(get_testdata_file("examples_palette.dcm")))
    assert img.mode == "RGB" and info["photometric"] == "PALETTE COLOR"
    img, info = dicom_to_image(pydicom.dcmread(get_testdata_file("examples_ybr_color.dcm")))
    assert img.mode == "RGB" and info["frame"] == "16 of 30"
    r, g, _b = (np.asarray(img)[..., i].astype(int) for i in range(3))
    assert abs(r - g).mean() < 10  # grey-scale echo: YBR was converted, not shown as raw chroma


@pytest.mark.parametrize("iop, plane", [
    ([1, 0, 0, 0, 1, 0], "axial"),
    ([1, 0, 0, 0, 0.9272, -0.3746], "axial"),  # 22 degree gantry tilt (J2K_pixelrep_mismatch.dcm)
    ([0, 1, 0, 0, 0, -1], "sagittal"),
    ([1, 0, 0, 0, 0, -1], "coronal"),
    ([0.7071, 0.7071, 0, 0, 0.7071, -0.7071], None),  # strongly oblique
    (None, None),
    ([1, 0, 0], None),
])
def test_imaging_plane(iop, plane):
    assert imaging_plane(iop) == plane


def test_modality_tags_are_valid():
    assert modality_tag("CT") == "<CT_SCAN>" and modality_tag("MR") == "<MRI_SCAN>"
    assert modality_tag("US") == "<ULTRASOUND>" and modality_tag("NM") == "<SPECT>"
    assert modality_tag("PT") == "<PET_SCAN>" and modality_tag("CR") == "<X_RAY>"
    assert modality_tag("SEG") == "<OTHER>"
    from medix_r1.data.build_bundled import MODALITY_INFO

    assert all(v["tag"] in MODALITY_TAGS for v in MODALITY_INFO.values())


def test_facts_come_from_the_header():
    facts = dicom_facts(pydicom.dcmread(get_testdata_file("CT_small.dcm")))
    assert facts["technique"] == ("Computed tomography", "Modality")
    assert facts["plane"][0] == "Axial"
    assert facts["contrast"][0] == "Yes" and "ISOVUE300" in facts["contrast"][1]
    facts = dicom_facts(pydicom.dcmread(get_testdata_file("examples_palette.dcm")))
    assert facts["us_exam"] == ("Obstetric ultrasound", "ImageType 'OBSTETRICAL'")
    assert "curved" in facts["transducer"][0].lower()
    facts = dicom_facts(pydicom.dcmread(get_testdata_file("693_J2KI.dcm")))
    assert facts["contrast"][0] == "No"  # series "5/5mm Plain"


def test_every_curated_file_ships_with_pydicom():
    root = pydicom_test_dir()
    assert all((root / s.file).is_file() for s in DICOM_SPECS)
    assert len({s.group for s in DICOM_SPECS}) == len(DICOM_SPECS)


def test_shrink_keeps_aspect_and_never_enlarges():
    from PIL import Image

    assert shrink(Image.new("L", (64, 64))).size == (64, 64)
    assert shrink(Image.new("L", (512, 512))).size == (256, 256)
    assert shrink(Image.new("L", (256, 1024))).size == (128, 512)
    assert shrink(Image.new("L", (2000, 100))).size == (512, 26)


def test_split_is_deterministic_by_group_and_stratified():
    items = [Item(id=f"i{g}-{k}", question="q", answer="a", group=f"img{g}", family="image", source="s",
                  modality="<CT_SCAN>" if g < 5 else "<MRI_SCAN>") for g in range(8) for k in range(3)]
    items += [Item(id=f"t{i}", question="q", answer="a", group=f"t{i}", family="text", source="s")
              for i in range(50)]
    split = assign_splits(items)
    assert split == assign_splits(list(reversed(items)))  # order does not matter
    ct = [g for g in split if g.startswith("img") and int(g[3:]) < 5]
    mr = [g for g in split if g.startswith("img") and int(g[3:]) >= 5]
    assert sum(split[g] == "test" for g in ct) == 1 and sum(split[g] == "test" for g in mr) == 1
    assert sum(split[f"t{i}"] == "test" for i in range(50)) == 11  # round(0.22 * 50)
    one = assign_splits([Item(id="x", question="q", answer="a", group="solo", family="image", source="s",
                              modality="<SPECT>")])
    assert one == {"solo": "train"}  # a lone group is never held out
