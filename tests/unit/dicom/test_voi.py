"""The grayscale pipeline: stored values -> [0, 1], dense tissue bright."""

import numpy as np
import pytest
from pydicom.dataset import Dataset

from mammotriage.dicom.voi import VOILUTFunction, VoiParams, mask_bits, to_display, voi_params
from mammotriage.errors import DicomReadError


def _ds(**attrs):
    ds = Dataset()
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.PixelRepresentation = 0
    for k, v in attrs.items():
        setattr(ds, k, v)
    return ds


def test_linear_window_maps_center_to_half_and_edges_to_0_and_1():
    p = VoiParams(bits_stored=12, signed=False, window_center=2000, window_width=1001)
    out = to_display(np.array([[1499, 2000, 2501]], dtype=np.uint16), p)
    assert out[0, 0] == pytest.approx(0.0, abs=1e-3)
    assert out[0, 1] == pytest.approx(0.5, abs=1e-3)
    assert out[0, 2] == pytest.approx(1.0, abs=1e-3)


def test_linear_exact_differs_from_linear_by_the_half_pixel_offset():
    values = np.array([[2000]], dtype=np.uint16)
    exact = to_display(values, VoiParams(12, False, window_center=2000.5, window_width=10,
                                         function=VOILUTFunction.LINEAR_EXACT))
    assert exact[0, 0] == pytest.approx(0.45, abs=1e-4)


def test_sigmoid_window_is_half_at_center_and_monotonic():
    p = VoiParams(12, False, window_center=1000, window_width=400, function=VOILUTFunction.SIGMOID)
    out = to_display(np.array([[600, 1000, 1400]], dtype=np.uint16), p)
    assert out[0, 1] == pytest.approx(0.5, abs=1e-4)
    assert out[0, 0] < 0.05 < 0.95 < out[0, 2]


def test_first_of_several_windows_is_used():
    ds = _ds(WindowCenter=[1000, 3000], WindowWidth=[200, 400])
    p = voi_params(ds)
    assert (p.window_center, p.window_width) == (1000, 200)


def test_voi_lut_sequence_takes_precedence_over_window():
    item = Dataset()
    item.LUTDescriptor = [4, 100, 12]
    item.LUTData = [0, 1000, 3000, 4095]
    ds = _ds(WindowCenter=50, WindowWidth=10)
    ds.VOILUTSequence = [item]
    p = voi_params(ds)
    assert p.lut_data is not None
    out = to_display(np.array([[0, 100, 101, 102, 103, 4000]], dtype=np.uint16), p)
    np.testing.assert_allclose(out[0], [0, 0, 1000 / 4095, 3000 / 4095, 1, 1], atol=1e-6)


def test_monochrome1_is_inverted_so_dense_tissue_is_bright():
    mono2 = voi_params(_ds(WindowCenter=2048, WindowWidth=4096))
    mono1 = voi_params(
        _ds(PhotometricInterpretation="MONOCHROME1", WindowCenter=2048, WindowWidth=4096)
    )
    values = np.array([[500, 3500]], dtype=np.uint16)
    np.testing.assert_allclose(to_display(values, mono1), 1 - to_display(values, mono2), atol=1e-6)


def test_presentation_lut_shape_inverse_inverts_monochrome2():
    p = voi_params(_ds(PresentationLUTShape="INVERSE", WindowCenter=2048, WindowWidth=4096))
    assert p.invert
    out = to_display(np.array([[100]], dtype=np.uint16), p)
    assert out[0, 0] > 0.9


def test_monochrome1_with_inverse_shape_is_inverted_once_not_twice():
    p = voi_params(_ds(PhotometricInterpretation="MONOCHROME1", PresentationLUTShape="INVERSE"))
    assert p.invert


def test_rescale_slope_and_intercept_apply_before_the_window():
    p = voi_params(_ds(RescaleSlope=2, RescaleIntercept=-100, WindowCenter=1900, WindowWidth=1000))
    out = to_display(np.array([[1000]], dtype=np.uint16), p)  # 2*1000-100 = 1900: the centre
    assert out[0, 0] == pytest.approx(0.5, abs=1e-3)


def test_values_above_bits_stored_are_masked():
    stored = np.array([[0xF000 | 1000]], dtype=np.uint16)  # overlay bits above bit 11
    assert mask_bits(stored, 12, signed=False)[0, 0] == 1000


def test_signed_pixels_are_sign_extended_from_bits_stored():
    stored = np.array([[0x0FFF, 0x0800, 0x07FF]], dtype=np.uint16)
    np.testing.assert_array_equal(mask_bits(stored, 12, signed=True)[0], [-1, -2048, 2047])


@pytest.mark.parametrize("bits", [10, 12, 14, 15, 16])
def test_any_bits_stored_from_10_to_16_spans_0_to_1_without_a_window(bits):
    p = voi_params(_ds(BitsStored=bits))
    ramp = np.linspace(0, (1 << bits) - 1, 1000).astype(np.uint16).reshape(20, 50)
    out = to_display(ramp, p)
    assert out.dtype == np.float32
    assert out.min() == pytest.approx(0.0, abs=0.01) and out.max() == pytest.approx(1.0, abs=0.01)


def test_colour_images_are_refused_with_a_reason():
    with pytest.raises(DicomReadError, match="not a greyscale"):
        voi_params(_ds(PhotometricInterpretation="RGB"))


def test_for_processing_ignores_window_and_uses_the_robust_range():
    p = voi_params(_ds(WindowCenter=10, WindowWidth=2), use_voi=False)
    assert p.window_center is None
    values = np.arange(1000, 3000, 2, dtype=np.uint16).reshape(20, 50)
    out = to_display(values, p)
    assert 0.4 < float(out.mean()) < 0.6
