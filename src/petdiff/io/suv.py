"""SUVbw from the tags of a PET series: SUV = activity [Bq/mL] × body weight [g] / decay-corrected dose [Bq].

The injected dose D (RadionuclideTotalDose, Bq) is decayed to the time the image values refer to, set by
DecayCorrection (0054,1102):
  START  images are decay-corrected to the series start: D · 2^(−Δt / T½), Δt = the reference time minus
         the injection time. The reference time is, in this order: DecayCorrectionDateTime (0018,9701)
         (Enhanced PET), the GE private scan datetime (0009,100D, creator GEMS_PETD_01: GE rewrites
         SeriesTime when a series is reprocessed), SeriesDate/SeriesTime, or the earliest
         AcquisitionDate/AcquisitionTime when SeriesTime is missing or later (Siemens writes the first
         frame's start there); the injection time is RadiopharmaceuticalStartDateTime, else
         RadiopharmaceuticalStartTime on the series date (an injection "after" the scan by less than a
         day is taken on the day before);
  ADMIN  images are decay-corrected to the injection: D itself (no half-life or times needed);
  NONE   images are not decay-corrected: each slice uses its own AcquisitionDate/AcquisitionTime.
Enhanced PET objects without DecayCorrection say DecayCorrected (0018,9758) YES/NO instead: YES is START (to
DecayCorrectionDateTime), NO is NONE.
Every quantity may instead come from an option (which overrides the tag); `SUVInfo.sources` records which.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import numpy as np

from petdiff.io.scan import SUVInfo

OPTIONS = {
    "weight": "--patient-weight KG",
    "dose": "--injected-dose MBQ",
    "half_life": "--half-life SECONDS",
    "injection_time": "--injection-time HH:MM:SS",
    "decay_correction": "--decay-correction START|ADMIN|NONE",
}
DECAY_MODES = ("START", "ADMIN", "NONE")


def _missing(where: str, what: str, tag: str, option: str) -> ValueError:
    """The refusal for a tag that SUV needs."""
    return ValueError(f"{where}: SUV needs {what}: tag {tag} is missing or empty; pass {option} to supply it")


def _given_or_tag(given: Any, tag_value: Any, key: str, tag: str, what: str, where: str, sources: dict[str, str],
                  missing_tag: str | None = None) -> float:
    """The option's value when given (positive), else the tag's; records which in `sources[key]`, refuses neither."""
    value = _positive(given)
    if value is not None:
        sources[key] = OPTIONS[key].split()[0]
        return value
    value = _positive(tag_value)
    if value is None:
        raise _missing(where, what, missing_tag or tag, OPTIONS[key])
    sources[key] = tag
    return value


def _date(value: Any) -> dt.date | None:
    """A DICOM DA value (YYYYMMDD) as a date, None when empty."""
    text = str(value or "").strip()
    return dt.datetime.strptime(text[:8], "%Y%m%d").date() if len(text) >= 8 else None


def _time(value: Any) -> dt.time | None:
    """A DICOM TM value (HH[MM[SS[.F]]], colons tolerated) as a time, None when empty."""
    text = str(value or "").strip().replace(":", "")
    if not text:
        return None
    whole, _, frac = text.partition(".")
    whole = whole.ljust(6, "0")
    micro = int((frac + "000000")[:6]) if frac else 0
    return dt.time(int(whole[:2]), int(whole[2:4]), int(whole[4:6]), micro)


def _datetime(value: Any) -> dt.datetime | None:
    """A DICOM DT value (YYYYMMDDHHMMSS.F, offset ignored) as a naive datetime, None when empty."""
    text = str(value or "").strip()
    if len(text) < 8:
        return None
    text = text.split("+")[0].split("-")[0]
    day = _date(text[:8])
    time = _time(text[8:]) or dt.time(0)
    return dt.datetime.combine(day, time)


def _combined(ds: Any, date_kw: str, time_kw: str, fallback_date: dt.date | None) -> dt.datetime | None:
    """Date and time keywords of a dataset as one datetime (the fallback date when the date is absent)."""
    time = _time(getattr(ds, time_kw, None))
    day = _date(getattr(ds, date_kw, None)) or fallback_date
    return None if time is None or day is None else dt.datetime.combine(day, time)


def _injection_time(option: dt.datetime | str | None, item: Any, series_date: dt.date | None,
                    where: str) -> tuple[dt.datetime, str, bool]:
    """(injection datetime, its source, whether only a time of day was known)."""
    if isinstance(option, dt.datetime):
        return option, "--injection-time", False
    if option is not None:
        if series_date is None:
            raise ValueError(f"{where}: --injection-time {option!r} needs a date; SeriesDate (0008,0021) is missing")
        return dt.datetime.combine(series_date, _time(option)), "--injection-time", True
    start = _datetime(getattr(item, "RadiopharmaceuticalStartDateTime", None))
    if start is not None:
        return start, "RadiopharmaceuticalStartDateTime (0018,1078)", False
    time = _time(getattr(item, "RadiopharmaceuticalStartTime", None))
    if time is None or series_date is None:
        raise _missing(where, "the injection time", "RadiopharmaceuticalStartDateTime (0018,1078) / "
                       "RadiopharmaceuticalStartTime (0018,1072)", OPTIONS["injection_time"])
    return dt.datetime.combine(series_date, time), "RadiopharmaceuticalStartTime (0018,1072)", True


def _ge_scan_datetime(ds: Any) -> dt.datetime | None:
    """GE's private scan start (0009,100D) of creator GEMS_PETD_01, None when absent or unreadable."""
    try:
        return _datetime(ds.get_private_item(0x0009, 0x0D, "GEMS_PETD_01").value)
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


def _positive(value: Any) -> float | None:
    """A positive float, or None for a missing / empty / non-positive value."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if np.isfinite(v) and v > 0 else None


def suv_info(datasets: Sequence[Any], where: str = "DICOM series", patient_weight: float | None = None,
             injected_dose: float | None = None, half_life: float | None = None,
             injection_time: dt.datetime | str | None = None, decay_correction: str | None = None) -> SUVInfo:
    """Per-slice SUVbw factors (mL/Bq → SUV) from the tags of `datasets` (slice order) and the overriding options.

    `patient_weight` in kg, `injected_dose` in MBq, `half_life` in s, `injection_time` a datetime or "HH:MM:SS"
    on the series date, `decay_correction` START | ADMIN | NONE.
    """
    first = datasets[0]
    sources: dict[str, str] = {}
    weight = _given_or_tag(patient_weight, getattr(first, "PatientWeight", None), "weight", "PatientWeight (0010,1030)",
                           "the patient's weight", where, sources)
    seq = getattr(first, "RadiopharmaceuticalInformationSequence", None)
    item = seq[0] if seq else None
    mbq = _positive(injected_dose)
    given_dose = None if mbq is None else mbq * 1e6  # the option is in MBq, the tag in Bq
    dose = _given_or_tag(given_dose, getattr(item, "RadionuclideTotalDose", None), "dose",
                         "RadionuclideTotalDose (0018,1074)", "the injected dose", where, sources,
                         missing_tag="RadionuclideTotalDose (0018,1074) in RadiopharmaceuticalInformationSequence "
                                     "(0054,0016)")
    mode = str(decay_correction or getattr(first, "DecayCorrection", "") or "").strip().upper()
    tag = "DecayCorrection (0054,1102)"
    if not mode and str(getattr(first, "DecayCorrected", "") or "").strip().upper() in ("YES", "NO"):
        mode = "START" if first.DecayCorrected.strip().upper() == "YES" else "NONE"
        tag = "DecayCorrected (0018,9758)"
    if not mode:
        raise _missing(where, "the decay correction", "DecayCorrection (0054,1102)", OPTIONS["decay_correction"])
    if mode not in DECAY_MODES:
        raise ValueError(f"{where}: DecayCorrection: expected START, ADMIN or NONE, found {mode!r}")
    sources["decay_correction"] = "--decay-correction" if decay_correction else tag
    n = len(datasets)
    if mode == "ADMIN":
        decay = np.zeros(n)
        t_half = _positive(half_life) or _positive(getattr(item, "RadionuclideHalfLife", None)) or float("nan")
    else:
        t_half = _given_or_tag(half_life, getattr(item, "RadionuclideHalfLife", None), "half_life",
                               "RadionuclideHalfLife (0018,1075)", "the half-life", where, sources)
        decay = _decay_seconds(datasets, mode, item, injection_time, where, sources)
    dose_at_ref = dose * np.exp2(-decay / t_half) if mode != "ADMIN" else np.full(n, dose)
    factors = weight * 1000.0 / dose_at_ref
    return SUVInfo(factors=factors.astype(np.float64), weight_g=weight * 1000.0, injected_dose_bq=dose,
                   half_life_s=t_half, decay_correction=mode, decay_s=decay, sources=sources)


def _decay_seconds(datasets: Sequence[Any], mode: str, item: Any, injection_time: Any, where: str,
                   sources: dict[str, str]) -> np.ndarray:
    """Seconds from injection to each slice's reference time (START: the series start; NONE: each acquisition)."""
    first = datasets[0]
    series_date = _date(getattr(first, "SeriesDate", None)) or _date(getattr(first, "AcquisitionDate", None)) \
        or _date(getattr(first, "StudyDate", None))
    injected, sources["injection_time"], time_only = _injection_time(injection_time, item, series_date, where)
    acquisitions = [_combined(ds, "AcquisitionDate", "AcquisitionTime", series_date) for ds in datasets]
    if mode == "START":
        series = _combined(first, "SeriesDate", "SeriesTime", series_date)
        known = [a for a in acquisitions if a is not None]
        corrected, ge_scan = _datetime(getattr(first, "DecayCorrectionDateTime", None)), _ge_scan_datetime(first)
        if corrected is not None:
            refs, sources["reference_time"] = [corrected], "DecayCorrectionDateTime (0018,9701)"
        elif ge_scan is not None:
            refs, sources["reference_time"] = [ge_scan], "GE private scan datetime (0009,100D)"
        elif series is not None and not (known and series > min(known)):
            refs, sources["reference_time"] = [series], "SeriesTime (0008,0031)"
        elif known:
            refs, sources["reference_time"] = [min(known)], "AcquisitionTime (0008,0032), earliest"
        else:
            raise _missing(where, "the series start time", "SeriesTime (0008,0031) / AcquisitionTime (0008,0032)",
                           "the tags (no option)")
        refs = refs * len(datasets)
    else:
        if any(a is None for a in acquisitions):
            raise _missing(where, "each slice's acquisition time (DecayCorrection NONE)",
                           "AcquisitionTime (0008,0032)", "the tags (no option)")
        refs, sources["reference_time"] = acquisitions, "AcquisitionTime (0008,0032), per slice"
    decay = np.array([(r - injected).total_seconds() for r in refs], dtype=np.float64)
    if time_only and decay.min() < 0 and decay.min() > -86400:  # injected before midnight, scanned after
        decay += 86400.0
        sources["injection_time"] += ", on the day before the series"
    if decay.min() < 0:
        raise ValueError(f"{where}: the injection ({injected.isoformat()}, from {sources['injection_time']}) is "
                         f"after the image reference time ({min(refs).isoformat()}); check the dates/times")
    return decay
