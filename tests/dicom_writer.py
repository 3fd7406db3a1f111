"""Real DICOM files for the tests, written by pydicom and its encoders (not a test module).

Each carries identifying tags (a name, a birth date, an institution, a physician, an
accession number) whose values are listed in :data:`IDENTIFYING`, so a test can show that
none of them reaches a record, a message, a store or a report.
"""

from __future__ import annotations

import io

import numpy as np
import pydicom
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    UID,
    DigitalXRayImageStorageForPresentation,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLSLossless,
    RLELossless,
    generate_uid,
)

__all__ = ["IDENTIFYING", "SYNTAXES", "dicom_bytes"]

IDENTIFYING = {
    "PatientName": "Doe^Jane^Quincy",
    "PatientBirthDate": "19470312",
    "InstitutionName": "Saint Example Hospital",
    "ReferringPhysicianName": "House^Gregory",
    "AccessionNumber": "ACC99887766",
    "PatientAddress": "42 Wallaby Way Sydney",
    "OtherPatientIDs": "MRN-5551234",
}
"""Identifying tags every file carries, and their values (none may ever leave the file)."""

SYNTAXES = {
    "explicit": ExplicitVRLittleEndian,
    "implicit": ImplicitVRLittleEndian,
    "rle": RLELossless,
    "jpeg-ls": JPEGLSLossless,
    "jpeg2000": JPEG2000Lossless,
    "jpeg-baseline": JPEGBaseline8Bit,
}
"""The transfer syntaxes the tests write, by short name."""


def dicom_bytes(
    stored: np.ndarray | None,
    *,
    syntax: str = "explicit",
    bits_stored: int = 16,
    photometric: str = "MONOCHROME2",
    slope: float | None = None,
    intercept: float | None = None,
    window: tuple[float, float] | None = None,
    voi_lut: tuple[int, int, list[int]] | None = None,
    frames: int = 1,
    sop_class: UID = DigitalXRayImageStorageForPresentation,
    tags: dict[str, str] | None = None,
) -> bytes:
    """A DICOM Part 10 file's bytes holding ``stored`` (None: no pixel data at all).

    ``voi_lut`` is (first mapped value, bits per entry, entries).
    """
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = "1.2.826.0.1.3680043.8.498.1"
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientID = "patient042"
    ds.PatientSex = "F"
    ds.PatientAge = "067Y"
    ds.ViewPosition = "PA"
    ds.Manufacturer = "ACME Radiography"
    ds.Modality = "DX"
    for keyword, value in IDENTIFYING.items():
        setattr(ds, keyword, value)
    for keyword, value in (tags or {}).items():
        setattr(ds, keyword, value)
    if stored is not None:
        bits_allocated = 8 if bits_stored <= 8 else 16
        ds.Rows, ds.Columns = stored.shape[-2:]
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = photometric
        ds.BitsAllocated = bits_allocated
        ds.BitsStored = bits_stored
        ds.HighBit = bits_stored - 1
        ds.PixelRepresentation = 0
        if frames > 1:
            ds.NumberOfFrames = frames
        if slope is not None:
            ds.RescaleSlope = slope
            ds.RescaleIntercept = intercept or 0
            ds.RescaleType = "US"
        if window is not None:
            ds.WindowCenter, ds.WindowWidth = window
        if voi_lut is not None:
            first, depth, entries = voi_lut
            item = Dataset()
            item.LUTDescriptor = [len(entries), first, depth]
            item.LUTData = entries
            item["LUTData"].VR = "US"
            ds.VOILUTSequence = [item]
        ds.PixelData = stored.astype(f"uint{bits_allocated}").tobytes()
        ds["PixelData"].VR = "OB" if bits_allocated == 8 else "OW"
        if syntax == "jpeg-baseline":
            if bits_allocated != 8:
                raise ValueError("JPEG baseline holds 8-bit samples")
            out = io.BytesIO()
            Image.fromarray(stored.astype(np.uint8)).save(out, "JPEG", quality=95)
            ds.PixelData = encapsulate([out.getvalue()])
            ds["PixelData"].VR = "OB"
            ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
            ds.LossyImageCompression = "01"
        elif syntax in ("rle", "jpeg-ls", "jpeg2000"):
            ds.compress(SYNTAXES[syntax])
        elif syntax == "implicit":
            ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
        elif syntax != "explicit":  # any other syntax, as given: its frame as one fragment
            ds.PixelData = encapsulate([ds.PixelData])
            ds["PixelData"].VR = "OB"
            ds.file_meta.TransferSyntaxUID = UID(syntax)
    out = io.BytesIO()
    pydicom.dcmwrite(out, ds, enforce_file_format=True)
    return out.getvalue()
