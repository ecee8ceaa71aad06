"""Disease setting and course: early vs metastatic, residual disease after neoadjuvant therapy, progression,
metastatic lines of HER2-directed therapy, recurrence interval and brain metastases."""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Literal

from cds_hooks import terminology
from cds_hooks.fhir_views import Condition, Observation
from cds_hooks.facts import Facts
from cds_hooks.dates import add_months, first_day
from cds_hooks.facts.observations import coded_value, effective_day, observations_in, results_in
from cds_hooks.facts.therapy import Exposure, LastDose, dosed_until, last_dose_of

Setting = Literal["metastatic", "early", "unknown"]
ResidualStatus = Literal["residual", "pcr", "unknown"]
_INACTIVE = frozenset({"inactive", "resolved", "remission"})

HER2_DIRECTED = terminology.ingredients_in_class("her2_directed")
TAXANES = terminology.ingredients_in_class("taxane")
# Every trastuzumab product (biosimilars, Hylecta, Phesgo); not T-DM1 or T-DXd.
TRASTUZUMAB_PRODUCTS = terminology.ingredients_in_class("trastuzumab_product")
# (Neo)adjuvant HER2-directed therapy, whose end rule 42 measures from: trastuzumab, and T-DM1 after it for residual
# disease (KATHERINE). T-DXd is not among them: the reference names it for metastatic disease only.
ADJUVANT_HER2_THERAPY = TRASTUZUMAB_PRODUCTS | {"ado_trastuzumab_emtansine"}

# Drugs of one regimen start together; 30 days allows for a delayed first dose of one partner drug. It also allows
# for metastatic therapy started before the metastases were confirmed and dated (a biopsy after the first cycle).
REGIMEN_START_WINDOW = timedelta(days=30)
# Exposures to the same HER2-directed drug separated by up to 90 days belong to one course (a delayed cycle, or
# surgery between the neoadjuvant and adjuvant parts); a longer gap starts a new course.
COURSE_GAP = timedelta(days=90)
# Neoadjuvant therapy takes about six months; exposures started more than a year before surgery belong to
# something else (an earlier cancer or regimen) and are not counted.
NEOADJUVANT_WINDOW = timedelta(days=365)
# Taxanes are given weekly or every 3 weeks: no dose for longer than a 3-week cycle means the taxane has finished,
# while a dose due on day 21 is the next cycle.
TAXANE_CYCLE = timedelta(days=21)
AVERAGE_MONTH_DAYS = 365.25 / 12

# AJCC TNM category notation as EHRs and pathology systems write it ("ypT1c", "ypN0(i+)", "cM1"), or as SNOMED CT's
# display of it ("American Joint Committee on Cancer ypT1c (qualifier value)", the mCODE value form), read only as a
# whole value: the prefix letters (y = post-therapy, p = pathologic, c = clinical, r = recurrence, a = autopsy).
_CATEGORY = re.compile(
    r"(?:(?:american joint committee on cancer|ajcc) )?(?P<prefix>yp|yc|rp|rc|p|c|a)?(?P<axis>[tnm])(?P<value>.+?)(?: \(qualifier value\))?"
)
# AJCC suffixes ((m) after T; (sn), (f) after N) say how the category was found, not a different category.
_T_RESIDUAL = re.compile(r"(?:1mi|1[abc]?|2|3|4[a-d]?)(?: ?\(m\))?")
_T_NONE = re.compile(r"0|is(?:\s*\((?:dcis|paget)\))?")
_N_RESIDUAL = re.compile(r"(?:1mi|[123][abc]?)(?: ?\((?:sn|f)\))?")
# ypN0 with isolated tumour cells (i+) or molecular findings (mol+) is not named by A3.4 as either pCR or
# residual invasive disease, so it stays unknown and the clinician is asked.
_N_NONE = re.compile(r"0(?:\((?:sn|f|i-|mol-)\))?")
_M_METASTATIC = re.compile(r"1[a-d]?(?:\(.*\))?")
# Only M1 matters for the setting; M0 is not read as "no metastases" because later conditions may say otherwise.
_NOTHING = re.compile(r"(?!)")
_M_CATEGORIES = frozenset({"m_category", "clinical_m", "pathologic_m"})
_STAGE_GROUPS = frozenset({"clinical_stage_group", "pathologic_stage_group", "yp_stage_group"})
# AJCC stage group IV (IVA-IVC in other cancers), read only as a whole value: "IV", "Stage IVB", "ypIV", "4" (the
# AJCC code system's code, as in mCODE's "AJCC#3C"), or SNOMED's display "American Joint Committee on Cancer stage
# IV (qualifier value)". Any other stage group is not read as "no metastases", like M0.
_STAGE_IV = re.compile(
    r"(?:(?:american joint committee on cancer|ajcc) )?(?:(?:yp|yc|p|c|r) ?)?(?:stage ?)?(?:iv|4)[a-c]?(?: \(qualifier value\))?"
)
# Residual Cancer Burden class (NAACCR item 1179: 0 = RCB-0/pCR, 1, 2, 3), written as "RCB-II", "RCB 2", "Residual
# cancer burden class II", "RCB II (moderate)": the class decides; words after it are read only to refuse a value
# they contradict (a residual burden named beside class 0, or pCR beside a class above 0).
_RCB = re.compile(
    r"(?:rcb|residual cancer burden)[\s-]*(?:class[\s-]*)?(?P<value>0|1|2|3|i|ii|iii)"
    r"(?: ?\((?P<words>pcr|minimal|moderate|extensive)\))?"
)
_RCB_CLASS = {"0": 0, "1": 1, "2": 2, "3": 3, "i": 1, "ii": 2, "iii": 3}
# mCODE codes post-neoadjuvant staging as a T or N category or stage group (cT/pT, ...) and puts the yp hierarchy in
# the value (A3.4); the yp codes themselves, as Observation codes, say so whatever the value.
_POST_NEOADJUVANT = frozenset({"yp_t", "yp_n", "yp_stage_group", "neoadjuvant_response"})
_YP_OF_CATEGORY = {
    **dict.fromkeys(("t_category", "clinical_t", "pathologic_t"), "yp_t"),
    **dict.fromkeys(("n_category", "clinical_n", "pathologic_n"), "yp_n"),
    **dict.fromkeys(("clinical_stage_group", "pathologic_stage_group"), "yp_stage_group"),
}
# A yp stage group, read only as a whole value: "ypIIA", "yp Stage IIIC", or SNOMED CT's display form.
_YP_STAGE_GROUP = re.compile(
    r"(?:(?:american joint committee on cancer|ajcc) )?yp ?(?:stage ?)?(?:0|i{1,3}|iv)[a-c]?(?: \(qualifier value\))?"
)
# The group of a yp stage group value, with or without the yp (the Observation's code may say it), or as the AJCC
# code system's code ("2A"). By AJCC's breast definitions stage 0 is Tis N0 and every group from I to III needs a T of
# at least T1mi or an N of at least N1mi: residual invasive disease by A3.4. Group IV is the metastatic setting's.
_STAGE_GROUP_VALUE = re.compile(
    r"(?:(?:american joint committee on cancer|ajcc) )?(?:yp ?)?(?:stage ?)?(?P<group>0|(?:i{1,3}|[1-3])[a-c]?)(?: \(qualifier value\))?"
)

_Reading = Literal["residual", "none", "unknown"]


def active_conditions(facts: Facts, value_set: str) -> tuple[Condition, ...]:
    """Conditions in the value set that are not recorded as inactive, resolved or in remission, nor as refuted (the
    record drops those entered in error)."""
    return tuple(
        c for c in facts.record.conditions
        if is_active(c) and verification_status(c) != "refuted" and terminology.in_value_set(c.code, value_set)
    )


def is_active(condition: Condition) -> bool:
    """Not recorded as inactive, resolved or in remission (a condition with no clinical status counts as active)."""
    return is_active_status(clinical_status(condition))


def is_active_status(status: str | None) -> bool:
    """Whether a clinicalStatus code (None when not recorded) leaves the condition active."""
    return status not in _INACTIVE


def verification_status(condition: Condition) -> str | None:
    """The verificationStatus code as recorded ("confirmed", "refuted", ...); None when there is none."""
    status = condition.verificationStatus
    return status.coding[0].code if status is not None and status.coding else None


def clinical_status(condition: Condition) -> str | None:
    """The clinicalStatus code as recorded ("active", "resolved", ...); None when there is none."""
    status = condition.clinicalStatus
    if status is None or not status.coding:
        return None
    return status.coding[0].code


def setting(facts: Facts) -> Setting:
    """Metastatic when the record shows it in any of the ways the reference names: a secondary cancer condition, a
    history of metastatic cancer, or M1 or stage group IV staging (mCODE); early when breast cancer is recorded
    without any of these; unknown when the record names no breast cancer."""
    if (
        facts.get(_metastatic_conditions) or facts.get(active_conditions, "brain_metastasis")
        or facts.get(_metastatic_staging) or facts.get(_metastatic_history_conditions)
        or facts.get(_metastatic_history_observations)
    ):
        return "metastatic"
    if any(facts.get(active_conditions, vs) for vs in ("breast_cancer", "her2_positive_breast_cancer", "her2_negative_breast_cancer")):
        return "early"
    return "unknown"


# --- metastatic disease ---------------------------------------------------------------------------


def brain_metastases(facts: Facts) -> tuple[Condition, ...]:
    """Active brain metastasis conditions (HER2CLIMB rule)."""
    return facts.get(active_conditions, "brain_metastasis")


def metastatic_since(facts: Facts) -> date | None:
    """The earliest day of metastatic disease: a secondary cancer condition's onset (else recorded day), a history
    of metastatic cancer's onset, or the day of M1 or stage IV staging. A history of metastatic cancer is not dated
    by the day it was recorded, as an Observation or a Condition: that is when the history was noted, which can be
    years after the metastases, and would make a recurrence look later than it was."""
    conditions = facts.get(_metastatic_conditions) + brain_metastases(facts)
    days = [day for condition in conditions if (day := condition_day(condition)) is not None]
    days += [day for condition in facts.get(_metastatic_history_conditions) if (day := condition_onset(condition)) is not None]
    days += [day for observation in facts.get(_metastatic_staging) if (day := effective_day(observation)) is not None]
    return min(days, default=None)


def condition_day(condition: Condition) -> date | None:
    """When the condition began: onset, else the day it was recorded."""
    return condition_onset(condition) or first_day(condition.recordedDate)


def condition_onset(condition: Condition) -> date | None:
    """The condition's recorded onset day; None when only its recording is dated."""
    return first_day(condition.onsetDateTime or (condition.onsetPeriod.start if condition.onsetPeriod else None))


def _metastatic_staging(facts: Facts) -> tuple[Observation, ...]:
    """Staging that says distant metastases: an M1 category or a stage group IV (clinical, pathologic or yp)."""
    m1 = [
        o for o in _staging_with_meaning(facts, _M_CATEGORIES)
        if _category_value(o, "m", _M_METASTATIC, _NOTHING) == "residual"
    ]
    stage_iv = [o for o in _staging_with_meaning(facts, _STAGE_GROUPS) if any(map(_STAGE_IV.fullmatch, _value_texts(o)))]
    return tuple(m1 + stage_iv)


def _metastatic_conditions(facts: Facts) -> tuple[Condition, ...]:
    """Secondary cancer conditions: in remission, inactive or resolved, metastases still make the disease
    metastatic (a history of metastatic cancer)."""
    return recorded_unless_refuted(facts, "metastatic")


def _metastatic_history_conditions(facts: Facts) -> tuple[Condition, ...]:
    """History of metastatic cancer recorded as a Condition: the history stays true when the metastases are in
    remission (mCODE's own example records it as "remission")."""
    return recorded_unless_refuted(facts, "history_of_metastatic_cancer")


def recorded_unless_refuted(facts: Facts, value_set: str) -> tuple[Condition, ...]:
    """Conditions in the value set whatever their clinical status, unless refuted (the record drops those entered
    in error): a diagnosis in remission or resolved still says what the disease was."""
    return tuple(
        c for c in facts.record.conditions
        if verification_status(c) != "refuted" and terminology.in_value_set(c.code, value_set)
    )


def _metastatic_history_observations(facts: Facts) -> tuple[Observation, ...]:
    """mCODE HistoryOfMetastaticCancer Observations that assert the history: a value of false asserts its absence."""
    return tuple(o for o in observations_in(facts.record, "history_of_metastatic_cancer") if o.valueBoolean is not False)


# --- residual disease after neoadjuvant therapy (A3.4) ---------------------------------------------


@dataclass(frozen=True)
class ResidualDisease:
    status: ResidualStatus
    # Day of the post-neoadjuvant (yp) staging; it stands in for the day of surgery.
    day: date | None
    # What the record says, e.g. "ypT1c, ypN0" or "RCB-II", for the card.
    described: str
    references: tuple[str, ...] = ()


@dataclass(frozen=True)
class NeoadjuvantTherapy:
    """HER2-directed and taxane exposures that started in the year before surgery."""

    taxanes: tuple[Exposure, ...]
    trastuzumab: tuple[Exposure, ...]
    pertuzumab: tuple[Exposure, ...]

    @property
    def taxane_and_trastuzumab(self) -> bool:
        return bool(self.taxanes and self.trastuzumab)


def residual_disease_findings(facts: Facts) -> ResidualDisease:
    """Residual invasive disease (ypT >= T1mi and/or ypN >= N1mi, a yp stage group from I to III, or RCB >= 1) vs pCR
    (ypT0/Tis ypN0, yp stage 0, RCB-0, or 'no evidence of malignant neoplasm'), from the newest yp staging; unknown
    when staging is missing or partial."""
    found = facts.get(_post_neoadjuvant_staging)
    if not found:
        return ResidualDisease("unknown", None, "no post-neoadjuvant (yp) staging recorded")
    t = _category_value(found["yp_t"], "t", _T_RESIDUAL, _T_NONE) if "yp_t" in found else "unknown"
    n = _category_value(found["yp_n"], "n", _N_RESIDUAL, _N_NONE) if "yp_n" in found else "unknown"
    rcb = _rcb_value(found["neoadjuvant_response"]) if "neoadjuvant_response" in found else "unknown"
    group = _stage_group_value(found["yp_stage_group"]) if "yp_stage_group" in found else "unknown"
    if "residual" in (t, n, rcb, group):
        status: ResidualStatus = "residual"
    elif (t == "none" and n == "none") or rcb == "none" or group == "none":
        status = "pcr"
    else:
        status = "unknown"
    days = [day for o in found.values() if (day := effective_day(o)) is not None]
    return ResidualDisease(
        status=status,
        day=max(days, default=None),
        described=", ".join(_describe_value(o) for o in found.values()),
        references=tuple(f"Observation/{o.id}" for o in found.values()),
    )


def residual_disease(facts: Facts) -> ResidualStatus:
    """"residual", "pcr" or "unknown" (no or incomplete yp staging: the card asks rather than assumes)."""
    return facts.get(residual_disease_findings).status


def neoadjuvant_therapy(facts: Facts) -> NeoadjuvantTherapy | None:
    """Taxane, trastuzumab and pertuzumab exposures started in the year before surgery (the yp staging day);
    None when no yp staging dates the surgery."""
    surgery = facts.get(residual_disease_findings).day
    if surgery is None:
        return None
    return facts.get(therapy_before, surgery)


def therapy_before(facts: Facts, day: date) -> NeoadjuvantTherapy:
    """Taxane, trastuzumab-product and pertuzumab exposures that started in the year before `day`."""
    before = [e for e in facts.exposures if e.start is not None and day - NEOADJUVANT_WINDOW <= e.start < day]
    return NeoadjuvantTherapy(
        taxanes=tuple(e for e in before if e.ingredients & TAXANES),
        trastuzumab=tuple(e for e in before if e.ingredients & TRASTUZUMAB_PRODUCTS),
        pertuzumab=tuple(e for e in before if "pertuzumab" in e.ingredients),
    )


def taxane_finished_before(facts: Facts, day: date) -> bool:
    """Whether the taxane started in the year before `day` had finished by then: its last dose (given, or a recorded
    end) more than one 3-week cycle before `day`, and none recorded as continuing since. False with no taxane."""
    reached = dosed_until(facts.get(therapy_before, day).taxanes, day)
    return reached is not None and day - reached > TAXANE_CYCLE


def _post_neoadjuvant_staging(facts: Facts) -> dict[str, Observation]:
    """The newest Observation of each kind of post-neoadjuvant staging (yp_t, yp_n, yp_stage_group,
    neoadjuvant_response)."""
    newest: dict[str, Observation] = {}
    for observation in observations_in(facts.record, "staging"):
        kind = _post_neoadjuvant_kind(observation)
        if kind is not None:
            newest.setdefault(kind, observation)
    return newest


def _post_neoadjuvant_kind(observation: Observation) -> str | None:
    """Which post-neoadjuvant staging the Observation is: by a yp (or RCB) code, or, for a T, N or stage group code,
    by a yp value (yp notation or its SNOMED CT display, or a yp hierarchy code); None when it is not one."""
    meaning = terminology.coded_meaning(observation.code, "staging")
    if meaning in _POST_NEOADJUVANT:
        return meaning
    yp = _YP_OF_CATEGORY.get(meaning)
    if yp is None:
        return None
    if terminology.coded_meaning(observation.valueCodeableConcept, "staging") == yp:
        return yp
    texts = _value_texts(observation)
    if yp == "yp_stage_group":
        return yp if any(map(_YP_STAGE_GROUP.fullmatch, texts)) else None
    axis = yp[-1]
    return yp if any((m := _CATEGORY.fullmatch(text)) and m["prefix"] == "yp" and m["axis"] == axis for text in texts) else None


def _staging_with_meaning(facts: Facts, meanings: set[str]) -> tuple[Observation, ...]:
    return tuple(
        o for o in observations_in(facts.record, "staging")
        if terminology.coded_meaning(o.code, "staging") in meanings
    )


def _category_value(observation: Observation, axis: str, residual: re.Pattern[str], none: re.Pattern[str]) -> _Reading:
    """Whether a T/N/M category value means disease ("residual"), none, or cannot be read."""
    if _is_pcr_value(observation):
        return "none"
    for text in _value_texts(observation):
        match = _CATEGORY.fullmatch(text)
        if match is None or match["axis"] != axis:
            continue
        if residual.fullmatch(match["value"]):
            return "residual"
        if none.fullmatch(match["value"]):
            return "none"
    return "unknown"


def _stage_group_value(observation: Observation) -> _Reading:
    if _is_pcr_value(observation):
        return "none"
    for text in _value_texts(observation):
        match = _STAGE_GROUP_VALUE.fullmatch(text)
        if match is not None:
            return "none" if match["group"] == "0" else "residual"
    return "unknown"


def _rcb_value(observation: Observation) -> _Reading:
    if _is_pcr_value(observation):
        return "none"
    for text in _value_texts(observation):
        match = _RCB.fullmatch(text)
        if match is None:
            continue
        residual = _RCB_CLASS[match["value"]] > 0
        if match["words"] is not None and (match["words"] != "pcr") != residual:
            continue
        return "residual" if residual else "none"
    return "unknown"


def _is_pcr_value(observation: Observation) -> bool:
    concept: Any = observation.valueCodeableConcept
    return concept is not None and terminology.in_value_set(concept, "pathologic_complete_response")


def _value_texts(observation: Observation) -> list[str]:
    """The value's codes, displays and text (and a string value), case-folded, spaces collapsed."""
    texts: list[Any] = [observation.valueString]
    concept: Any = observation.valueCodeableConcept
    if concept is not None:
        texts.append(concept.text)
        for coding in concept.coding or []:
            texts += [coding.code, coding.display]
    return [" ".join(text.split()).casefold() for text in texts if isinstance(text, str) and text.strip()]


def _describe_value(observation: Observation) -> str:
    concept: Any = observation.valueCodeableConcept
    if concept is not None:
        value = concept.text or next((c.display or c.code for c in concept.coding or [] if c.display or c.code), None)
    else:
        value = observation.valueString
    day = effective_day(observation)
    return f"{value or 'no value'}{f' ({day.isoformat()})' if day else ''}"


# --- progression, lines of therapy, recurrence -----------------------------------------------------


@dataclass(frozen=True)
class Progression:
    day: date | None
    reference: str


def progression(facts: Facts) -> Progression | None:
    """The newest cancer disease status (97509-4), when it says 'worsened' (progression); None otherwise."""
    for observation in results_in(facts.record, "disease_status", newest=facts.as_of):
        if coded_value(observation, "disease_status_values") == "worsened":
            return Progression(effective_day(observation), f"Observation/{observation.id}")
        return None
    return None


@dataclass(frozen=True)
class TherapyLine:
    number: int
    start: date
    # Last day of exposure; None while any drug of the line continues.
    end: date | None
    her2_ingredients: frozenset[str]
    # Every drug of the regimen (HER2-directed and partners starting within REGIMEN_START_WINDOW).
    ingredients: frozenset[str]
    texts: tuple[str, ...]
    sources: tuple[str, ...]

    @property
    def trastuzumab_based(self) -> bool:
        return bool(self.her2_ingredients & TRASTUZUMAB_PRODUCTS)


def metastatic_lines(facts: Facts) -> tuple[TherapyLine, ...]:
    """HER2-directed regimens started on or after metastatic_therapy_from, oldest first; empty when that day is
    unknown.

    Estimate, which cards ask the clinician to confirm: a HER2-directed exposure starting within 30 days of the
    current line's start joins it; a later one opens a new line only if it brings a HER2-directed drug the current
    line does not have (a switch), so maintenance after chemotherapy (THP -> HP) stays in the same line. Other
    drugs (taxane, capecitabine) starting within 30 days of a line's start are shown as part of its regimen.
    """
    since = facts.get(metastatic_therapy_from)
    if since is None:
        return ()
    dated = [e for e in facts.exposures if e.start is not None and e.start >= since]
    groups: list[list[Exposure]] = []
    # The current line's HER2-directed drugs, kept as it grows: a line of maintenance is a hundred administrations.
    current_her2: frozenset[str] = frozenset()
    for exposure in (e for e in dated if e.ingredients & HER2_DIRECTED):
        her2 = exposure.ingredients & HER2_DIRECTED
        if groups and (_start(exposure) - _start(groups[-1][0]) <= REGIMEN_START_WINDOW or her2 <= current_her2):
            groups[-1].append(exposure)
            current_her2 |= her2
        else:
            groups.append([exposure])
            current_her2 = her2
    return tuple(_line(number, group, dated) for number, group in enumerate(groups, start=1))


def metastatic_therapy_from(facts: Facts) -> date | None:
    """The day therapy for metastatic disease counts from: metastatic_since, or the start of a HER2-directed regimen
    begun within REGIMEN_START_WINDOW before it, unless that regimen continues a course of the same drug (the last
    doses of (neo)adjuvant therapy). None when metastatic_since is unknown. Therapy started before this day is
    (neo)adjuvant (recurrence)."""
    since = facts.get(metastatic_since)
    if since is None:
        return None
    window_start = since - REGIMEN_START_WINDOW
    started = [(e, e.start) for e in facts.exposures if e.start is not None and e.start < since and e.ingredients & HER2_DIRECTED]
    earlier = [e for e, start in started if start < window_start]
    # A course of the same drug within COURSE_GAP also means a recurrence within months of it: reading the regimen
    # as its continuation keeps rule 42's second-line advice.
    new_regimens = [
        start for e, start in started
        if start >= window_start and not any(_continues(before, e.ingredients, start) for before in earlier)
    ]
    return min(new_regimens, default=since)


def _continues(before: Exposure, ingredients: frozenset[str], start: date) -> bool:
    """Whether an exposure to `ingredients` starting on `start` continues the course of an earlier one: a
    HER2-directed drug in common, and at most COURSE_GAP after it ended."""
    return bool(ingredients & before.ingredients & HER2_DIRECTED) and (before.end is None or start - before.end <= COURSE_GAP)


def line_of_therapy(facts: Facts) -> int | None:
    """How many metastatic HER2-directed lines have started (0 = none yet). None when not metastatic, or when
    HER2-directed therapy is recorded but the start of metastatic disease is not, so lines cannot be told."""
    if facts.get(setting) != "metastatic":
        return None
    if facts.get(metastatic_since) is None:
        return 0 if not any(e.ingredients & HER2_DIRECTED for e in facts.exposures) else None
    return len(facts.get(metastatic_lines))


@dataclass(frozen=True)
class Recurrence:
    metastatic_since: date
    # The last dose of the trastuzumab or T-DM1 given before metastatic disease (therapy.last_dose_of: an
    # administration's or single-date statement's day, else a recorded end); None when it continued to the diagnosis.
    last_dose: LastDose | None
    # The (neo)adjuvant HER2 therapy given last (ADJUVANT_HER2_THERAPY ingredients): that of the last dose, and any
    # recorded as continuing to the diagnosis. T-DM1 after trastuzumab for residual disease is not trastuzumab.
    last_given: frozenset[str]
    # The day the interval runs from: the last dose (the earliest it can have been, when the record leaves it open),
    # or metastatic_since for a recurrence during (neo)adjuvant therapy.
    measured_from: date
    months: float
    with_pertuzumab: bool
    sources: tuple[str, ...]

    @property
    def last_dose_undated(self) -> bool:
        """Whether the record leaves the last dose open: the interval is at most `months`, maybe less."""
        return self.last_dose is not None and self.last_dose.day is None


def recurrence(facts: Facts) -> Recurrence | None:
    """The interval from finishing the HER2-directed therapy given before metastatic disease ((neo)adjuvant
    trastuzumab, and adjuvant T-DM1 after it), i.e. its last dose, to the metastatic diagnosis; None when either is
    unknown or none preceded it. Not from the end of the last dose's cycle (therapy.DOSE_COVERAGE): that would put
    the recurrence three weeks closer to the therapy."""
    since = facts.get(metastatic_since)
    therapy_from = facts.get(metastatic_therapy_from)
    if since is None or therapy_from is None:
        return None
    earlier = [e for e in facts.exposures if e.start is not None and e.start < therapy_from]
    adjuvant = [e for e in earlier if e.ingredients & ADJUVANT_HER2_THERAPY]
    last = last_dose_of(adjuvant)
    if last is None:
        return None
    continuing = [e for e in adjuvant if e.ongoing]
    # Recurrence during the therapy (continuing, or dosed up to or after the diagnosis) is an interval of zero.
    during = bool(continuing) or last.at_least >= since
    measured_from = since if during else last.at_least
    return Recurrence(
        metastatic_since=since,
        last_dose=None if during else last,
        last_given=frozenset().union(last.ingredients, *(e.ingredients for e in continuing)) & ADJUVANT_HER2_THERAPY,
        measured_from=measured_from,
        months=round((since - measured_from).days / AVERAGE_MONTH_DAYS, 1),
        with_pertuzumab=any("pertuzumab" in e.ingredients for e in earlier),
        sources=tuple(e.source for e in adjuvant),
    )


def recurrence_interval_months(facts: Facts) -> float | None:
    """Months from the last dose of (neo)adjuvant HER2 therapy to the metastatic diagnosis (0 = recurrence during it)."""
    found = facts.get(recurrence)
    return found.months if found is not None else None


def within_months(earlier: date, later: date, months: int) -> bool:
    """Whether `later` falls no more than `months` calendar months after `earlier` (31 Jan + 1 month = end of Feb)."""
    return later <= add_months(earlier, months)


def _line(number: int, group: list[Exposure], dated: list[Exposure]) -> TherapyLine:
    start = _start(group[0])
    # A line's own exposures are all HER2-directed, so its partners are the others that start with it.
    partners = [e for e in dated if not e.ingredients & HER2_DIRECTED and abs((_start(e) - start).days) <= REGIMEN_START_WINDOW.days]
    members = group + partners
    ends = [e.end for e in members]
    return TherapyLine(
        number=number,
        start=start,
        end=None if any(end is None for end in ends) else max(end for end in ends if end is not None),
        her2_ingredients=_her2_of(group),
        ingredients=frozenset().union(*(e.ingredients for e in members)),
        texts=tuple(dict.fromkeys(e.text for e in members)),
        sources=tuple(e.source for e in members),
    )


def _her2_of(group: list[Exposure]) -> frozenset[str]:
    return frozenset().union(*(e.ingredients & HER2_DIRECTED for e in group))


def _start(exposure: Exposure) -> date:
    assert exposure.start is not None  # only dated exposures are grouped
    return exposure.start
