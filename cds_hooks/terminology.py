"""Which drug a medication code or name is, and which value set an Observation or Condition code is in.
The codes live in `data/medications.yaml` and `data/clinical_codes.yaml`, checked and indexed once at import.
Concepts and codings are read as FHIR JSON or as `fhir.resources` models alike.
"""
from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any, Literal

import yaml
from fhir.resources.R4B.codeableconcept import CodeableConcept

from cds_hooks import fhir_views

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
ATC = "http://www.whocc.no/atc"
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"

# EHRs send ATC under more than one identifier; all three mean the WHO ATC classification.
_ATC_SYSTEMS = frozenset({ATC, "http://www.whocc.no/atc/", "urn:oid:2.16.840.1.113883.6.73"})
_RXNORM_SYSTEMS = frozenset({RXNORM})
_CLINICAL_SYSTEMS = frozenset({LOINC, SNOMED, ICD10CM})
_STATUSES = frozenset({"verified", "secondary", "unverified"})
# An unverified code is kept in the data for reviewers but must never identify anything by itself.
_MATCHABLE = frozenset({"verified", "secondary"})
_TTYS = frozenset({"IN", "PIN", "MIN", "BN", "SCD", "SBD", "SCD/SBD", "unknown"})
_ATC_LEVEL_5 = re.compile(r"[A-Z]\d\d[A-Z][A-Z]\d\d")
_RXCUI = re.compile(r"\d+")
_NUMBER_AND_UNIT = re.compile(r"\d+(?:\.\d+)?(.*)")
# A bracketed part: RxNorm's brand ("... Injection [Herzuma]") or a name in parentheses ("trastuzumab (Herceptin)").
_BRACKETED = re.compile(r"\(([^()\[\]]*)\)|\[([^()\[\]]*)\]")
# A whole word is a run of letters and digits: any other character inside a token ends it ("herceptin.", "(kadcyla").
_NOT_A_WORD = re.compile(r"[\W_]+")
# Every dash look-alike counts as a hyphen; the soft hyphen is invisible, so it is dropped.
_DASHES = {**dict.fromkeys(map(ord, "\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63\uff0d"), "-"), 0xAD: None}


class TerminologyDataError(ValueError):
    """The terminology data files are inconsistent; the service must not start with them."""


@dataclass(frozen=True)
class MedicationMatch:
    ingredients: frozenset[str]  # ingredient keys of medications.yaml
    product: str | None  # a key under `products:` (Phesgo, Herceptin Hylecta), else None
    matched_by: str  # "rxnorm" | "atc" | "name"
    code: str | None  # the code, or the normalised known name, that matched
    subcutaneous_fixed_dose: bool


@dataclass(frozen=True)
class NotIdentified:
    """Why classify_medication names no drug for a concept. It never says which drug the concept may be."""

    conflict: Literal["codes", "names"] | None  # codes, or names (a bracketed name too), that mean different drugs
    unknown_codes: tuple[str, ...]  # each code that identifies no drug alone, as "RxNorm 99999999"
    unread_names: tuple[str, ...]  # each text or display that is no known name, strength and dose form

    @property
    def names_nothing(self) -> bool:
        """No code and no name at all: nothing to identify a drug by."""
        return self.conflict is None and not self.unknown_codes and not self.unread_names


@dataclass(frozen=True)
class NamedDrug:
    """A drug one code, display or text of a concept names when read alone (drugs_named_apart)."""

    kind: Literal["code", "display", "text"]
    # The code or the name as written.
    written: str
    ingredients: frozenset[str]


@dataclass(frozen=True)
class _Target:
    """What a code or a name identifies: one ingredient, or a special product."""

    ingredients: frozenset[str]
    product: str | None
    subcutaneous_fixed_dose: bool


@dataclass(frozen=True)
class _MedicationIndex:
    by_rxcui: Mapping[str, _Target]
    by_atc: Mapping[str, _Target]
    by_name: Mapping[tuple[str, ...], tuple[_Target, str]]
    by_components: Mapping[frozenset[tuple[str, ...]], tuple[_Target, str]]
    names: frozenset[tuple[str, ...]]  # every name the text reader knows: by_name's and the components'
    longest_name: int
    dose_words: frozenset[str]
    units: frozenset[str]
    joiners: frozenset[str]
    classes: Mapping[str, frozenset[str]]
    # The words of the names of each class's drugs (products count for their ingredients' classes) that name a drug
    # alone: not strength, dose form, salt or joiner words, nor `generic_name_words`.
    class_words: Mapping[str, frozenset[str]]
    displays: Mapping[str, str]


@dataclass(frozen=True)
class _ValueSet:
    meanings: Mapping[tuple[str, str], str | None]  # (system, code as compared) -> `meaning`, matchable codes only
    icd10cm_prefixes: tuple[str, ...]
    codes: tuple[tuple[str, str], ...]


# --- medications ----------------------------------------------------------------------------------


def classify_medication(concept: dict[str, Any] | None) -> MedicationMatch | None:
    """The ingredient(s) a CodeableConcept names: by RxNorm, else by ATC level 5, else by exact name.

    Two codes (or two names) at the same level that point to different drugs give None: the order
    is contradictory and guessing could swap T-DM1 and trastuzumab.
    """
    if not isinstance(concept, dict):
        return None
    return _classify(*_coded(concept))


def why_not_identified(concept: dict[str, Any] | None) -> NotIdentified | None:
    """Why classify_medication names no drug for a concept; None when it does name one."""
    return _not_identified(*(_coded(concept) if isinstance(concept, dict) else ((), None)))


def mentions_class(concept: dict[str, Any] | None, classes: Iterable[str]) -> bool:
    """Whether the concept's text or a display holds, as a whole word, a word of a name of a drug in these classes,
    or one of its codes alone identifies such a drug. For concepts that classify_medication cannot identify: a
    mention is no identification, and "antitrastuzumabody" mentions nothing."""
    return isinstance(concept, dict) and _mentions(*_coded(concept), tuple(classes))


def drugs_named_apart(concept: dict[str, Any] | None) -> tuple[NamedDrug, ...]:
    """Each code, each display and the text of a concept classified alone, those that name a drug: a concept whose
    codes agree can still say another drug in its text, which classify_medication (codes before names) passes over."""
    return _named_apart(*_coded(concept)) if isinstance(concept, dict) else ()


@functools.lru_cache(maxsize=4096)
def _named_apart(codings: _Coded, text: str | None) -> tuple[NamedDrug, ...]:
    found = []
    for system, code, display in codings:
        if code is not None and (match := _classify(((system, code, None),), None)) is not None:
            found.append(NamedDrug("code", code, match.ingredients))
        if display and (match := _classify((), display)) is not None:
            found.append(NamedDrug("display", display, match.ingredients))
    if text and (match := _classify((), text)) is not None:
        found.append(NamedDrug("text", text, match.ingredients))
    return tuple(found)


# Both run on every draft that classify_medication cannot identify, each ~15-30 us, and a formulary repeats the same
# few concepts: like _classify, each distinct concept is read once per process.
@functools.lru_cache(maxsize=4096)
def _not_identified(codings: _Coded, text: str | None) -> NotIdentified | None:
    if _classify(codings, text) is not None:
        return None
    names = [name for name in _names_of(codings, text) if name.strip()]
    # classify_medication stops at the first level with hits; with no drug named, those hits disagree.
    level = next((matched_by for matched_by, find in _MEDICATION_MATCHERS if find(codings, text)), None)
    conflict: Literal["codes", "names"] | None = "names" if level == "name" else "codes" if level else None
    parts = {name: _drugs_in_parts(name) for name in names}
    if conflict is None and any(None not in drugs and len({target for target, _ in drugs}) > 1 for drugs in parts.values()):
        conflict = "names"
    return NotIdentified(
        conflict=conflict,
        unknown_codes=tuple(_code_label(system, code) for system, code, _ in codings
                            if code is not None and code.strip() and _classify(((system, code, None),), None) is None),
        unread_names=tuple(name for name, drugs in parts.items() if not drugs or None in drugs),
    )


@functools.lru_cache(maxsize=4096)
def _mentions(codings: _Coded, text: str | None, classes: tuple[str, ...]) -> bool:
    members = frozenset().union(*map(ingredients_in_class, classes))
    words = frozenset().union(*(_MEDS.class_words[name] for name in classes))
    coded = (_classify(((system, code, None),), None) for system, code, _ in codings)
    return any(match is not None and match.ingredients & members for match in coded) or any(
        not words.isdisjoint(_words(name)) for name in _names_of(codings, text)
    )


_Coded = tuple[tuple[str | None, str | None, str | None], ...]  # (system, code, display) of each coding


def _coded(concept: dict[str, Any]) -> tuple[_Coded, str | None]:
    """A concept's codings as (system, code, display), and its text."""
    # The matchers read strings only, so anything else is None here, and the key is always hashable for the memo.
    # _codings of a dict gives dicts only, read with `get` directly: this runs for every medication of the record.
    codings = tuple([
        (_string(c.get("system")), _string(c.get("code")), _string(c.get("display"))) for c in _codings(concept)
    ])
    return codings, _string(concept.get("text"))


def _names_of(codings: _Coded, text: str | None) -> list[str]:
    """The names a concept gives its drug: each coding's display, then its text."""
    return [name for name in [display for _, _, display in codings] + [text] if isinstance(name, str)]


_SYSTEM_NAMES = {RXNORM: "RxNorm", **dict.fromkeys(_ATC_SYSTEMS, "ATC")}


def _code_label(system: str | None, code: str) -> str:
    """A code as a clinician can look it up: "RxNorm 224905", "ATC L01FD01", the system as written, or none."""
    return f"{_SYSTEM_NAMES.get(system, system)} {code}" if system else f"{code} (no code system)"


# A record repeats the same few drug concepts across hundreds of orders and administrations, and name matching
# normalises Unicode: each distinct concept is classified once per process.
@functools.lru_cache(maxsize=4096)
def _classify(codings: _Coded, text: str | None) -> MedicationMatch | None:
    for matched_by, find in _MEDICATION_MATCHERS:
        hits = find(codings, text)
        if hits:
            if len({target for target, _ in hits}) > 1:
                return None
            target, code = hits[0]
            return MedicationMatch(target.ingredients, target.product, matched_by, code, target.subcutaneous_fixed_dose)
    return None


def ingredients_in_class(name: str) -> frozenset[str]:
    try:
        return _MEDS.classes[name]
    except KeyError:
        raise KeyError(f"unknown medication class {name!r}") from None


def ingredient_display(key: str) -> str:
    try:
        return _MEDS.displays[key]
    except KeyError:
        raise KeyError(f"unknown ingredient {key!r}") from None


def _rxnorm_hits(codings: _Coded, text: str | None) -> list[tuple[_Target, str]]:
    return _code_hits(codings, _RXNORM_SYSTEMS, _MEDS.by_rxcui, str.strip)


def _atc_hits(codings: _Coded, text: str | None) -> list[tuple[_Target, str]]:
    return _code_hits(codings, _ATC_SYSTEMS, _MEDS.by_atc, lambda code: code.strip().upper())


def _name_hits(codings: _Coded, text: str | None) -> list[tuple[_Target, str]]:
    return [hit for name in _names_of(codings, text) if (hit := _match_name(name))]


def _code_hits(
    codings: _Coded,
    systems: Iterable[str],
    index: Mapping[str, _Target],
    normalise: Callable[[str], str],
) -> list[tuple[_Target, str]]:
    hits = []
    for system, code, _ in codings:
        if isinstance(system, str) and system in systems and isinstance(code, str):
            code = normalise(code)
            if code in index:
                hits.append((index[code], code))
    return hits


_MEDICATION_MATCHERS = (("rxnorm", _rxnorm_hits), ("atc", _atc_hits), ("name", _name_hits))


def _match_name(text: str) -> tuple[_Target, str] | None:
    """Read `text` as known names among strength, dose form and joiner words, with every word accounted for.

    Names are read longest first where they start and never searched for inside a word, so
    "anti-trastuzumab antibody" and "doxorubicinol" match nothing, and "ado-trastuzumab emtansine"
    can only ever be T-DM1. Several names are one product only when they are exactly its components
    ("5 ML hyaluronidase-oysk 2000 UNT/ML / trastuzumab 120 MG/ML Injection" is Herceptin Hylecta, never
    trastuzumab). A bracketed part ("... Injection [Herzuma]", "trastuzumab (Herceptin)") must name the
    same drug as the rest.
    """
    hits = _drugs_in_parts(text)
    if not hits or None in hits or len({target for target, _ in hits}) > 1:
        return None
    return hits[0]


def _drugs_in_parts(text: str) -> list[tuple[_Target, str] | None]:
    """The drug each part of the text names: the part outside brackets, when it holds a name, then each bracketed part.

    None for a part that names no drug; a text whose brackets do not pair, or whose outside is not only names,
    strengths and dose forms, is one such part. No parts: only strengths and dose forms.
    """
    normalised = _normalise(text)
    outside = _BRACKETED.sub(" ", normalised)
    if any(bracket in outside for bracket in "()[]"):
        return [None]
    outside_names = _names_in(_tokens(outside))
    if outside_names is None:
        return [None]
    bracketed = [match.group(1) or match.group(2) or "" for match in _BRACKETED.finditer(normalised)]
    # Without a name outside the brackets, the rest is only a strength and dose form ("150 MG Injection [Ogivri]").
    hits = [_drug_named(outside_names)] if outside_names else []
    return hits + [_drug_named(_names_in(_tokens(part))) for part in bracketed]


def _drug_named(names: tuple[tuple[str, ...], ...] | None) -> tuple[_Target, str] | None:
    """The drug one name means, or the product whose components the names are, each once."""
    if not names:
        return None
    if len(names) == 1:
        return _MEDS.by_name.get(names[0])
    return _MEDS.by_components.get(frozenset(names)) if len(set(names)) == len(names) else None


def _names_in(tokens: tuple[str, ...]) -> tuple[tuple[str, ...], ...] | None:
    """The known names the tokens spell, in order; None if a token is in no name and not a dose or joiner word."""
    names = []
    start = 0
    while start < len(tokens):
        length = _name_length_at(tokens, start)
        if length:
            names.append(tokens[start : start + length])
            start += length
        # A joiner at either end means a cut-off text: "trastuzumab and" may have been Herceptin Hylecta.
        elif _is_dose_token(tokens[start]) or (tokens[start] in _MEDS.joiners and 0 < start < len(tokens) - 1):
            start += 1
        else:
            return None
    return tuple(names)


def _name_length_at(tokens: tuple[str, ...], start: int) -> int:
    """The length in tokens of the longest known name starting at `start`; 0 if none does."""
    for length in range(min(_MEDS.longest_name, len(tokens) - start), 0, -1):
        if tokens[start : start + length] in _MEDS.names:
            return length
    return 0


def _is_dose_token(token: str) -> bool:
    """A strength or dose form word, or a ratio of them ("mg/ml", the "mg/600" of "1200 mg/600 mg")."""
    return all(_is_dose_word(part) for part in token.split("/"))


def _is_dose_word(word: str) -> bool:
    if word in _MEDS.dose_words or word in _MEDS.units:
        return True
    number = _NUMBER_AND_UNIT.fullmatch(word)
    return number is not None and (not number.group(1) or number.group(1) in _MEDS.units)


def _normalise(text: str) -> str:
    """Case-folded, one kind of hyphen with no space around it, commas as spaces, single spaces."""
    text = unicodedata.normalize("NFKC", text).translate(_DASHES).casefold()
    return " ".join(re.sub(r"\s*-\s*", "-", text).replace(",", " ").split())


def _tokens(normalised: str) -> tuple[str, ...]:
    # A hyphen separates words like a space does: "ado-trastuzumab" and "ado trastuzumab" are the same name.
    return tuple(normalised.replace("-", " ").split())


def _words(text: str) -> frozenset[str]:
    """The whole words of a text: its name-reader tokens, cut again at brackets, "/", "+" and other punctuation.

    A name's word inside a longer word is never found ("antitrastuzumabody"); one between punctuation is
    ("trastuzumab+pertuzumab", "Herceptin.").
    """
    return frozenset(word for token in _tokens(_normalise(text)) for word in _NOT_A_WORD.split(token) if word)


# --- value sets -----------------------------------------------------------------------------------


def in_value_set(coding_or_concept: Any, value_set: str) -> bool:
    """True if any coding matches a code of the value set by system and code, or an ICD-10-CM category prefix."""
    entries = _value_set(value_set)
    return any(_in(entries, coding) for coding in _codings(coding_or_concept))


def coded_meaning(coding_or_concept: Any, value_set: str) -> str | None:
    """The `meaning` of the matching code (LVEF method, HER2 result, disease trend); None if none or if codings disagree."""
    entries = _value_set(value_set)
    meanings = {entries.meanings.get(key) for key in map(_coding_key, _codings(coding_or_concept)) if key in entries.meanings}
    return meanings.pop() if len(meanings) == 1 else None


def value_sets_of(coding_or_concept: Any) -> frozenset[str]:
    """Every value set the codes are in: the value sets for which in_value_set is true, by index lookups."""
    found: set[str] = set()
    for coding in _codings(coding_or_concept):
        key = _coding_key(coding)
        if key is None:
            continue
        found.update(_VALUE_SETS_BY_KEY.get(key, ()))
        if key[0] == ICD10CM:
            found.update(name for name, prefixes in _ICD10CM_PREFIXES if key[1].startswith(prefixes))
    return frozenset(found)


def value_set_codes(value_set: str) -> tuple[tuple[str, str], ...]:
    """(system, code) pairs as written, for FHIR searches; ICD-10-CM prefixes are not included."""
    return _value_set(value_set).codes


def _value_set(name: str) -> _ValueSet:
    try:
        return _VALUE_SETS[name]
    except KeyError:
        raise KeyError(f"unknown value set {name!r}") from None


def _in(entries: _ValueSet, coding: Mapping[str, Any]) -> bool:
    key = _coding_key(coding)
    if key is None:
        return False
    return key in entries.meanings or (key[0] == ICD10CM and key[1].startswith(entries.icd10cm_prefixes))


def _coding_key(coding: Any) -> tuple[str, str] | None:
    system, code = _field(coding, "system"), _field(coding, "code")
    if not isinstance(system, str) or not isinstance(code, str):
        return None
    return system, _clinical_code(system, code)


def _clinical_code(system: str, code: str) -> str:
    # ICD-10-CM codes arrive with and without the dot ("C50.911", "C50911").
    code = code.strip()
    return code.upper().replace(".", "") if system == ICD10CM else code


# JSON objects are tested as `dict`, not as the `Mapping` ABC: the ABC check costs five times more, and these run
# for every coding of every record (classifying a large record's medications took twice as long).
def _codings(value: Any) -> list[Any]:
    """The codings of a CodeableConcept, or a Coding itself, as JSON, as models or as record views."""
    if isinstance(value, dict):
        if "coding" not in value:
            return [value]
        codings = value["coding"]
        return [coding for coding in codings if isinstance(coding, dict)] if isinstance(codings, list) else []
    if value is None:
        return []
    if isinstance(value, (CodeableConcept, fhir_views.CodeableConcept)):
        return list(value.coding or [])
    return [value]


def _string(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _field(element: Any, name: str) -> Any:
    """An element's field, from FHIR JSON or from a model."""
    return element.get(name) if isinstance(element, dict) else getattr(element, name, None)


# --- loading and checking the data ----------------------------------------------------------------


def _read(name: str) -> Any:
    return yaml.safe_load(resources.files(__package__).joinpath("data").joinpath(name).read_text(encoding="utf-8"))


def _check_keys(entry: Any, where: str, required: set[str], optional: frozenset[str] = frozenset()) -> None:
    if not isinstance(entry, Mapping):
        raise TerminologyDataError(f"{where}: expected a mapping, got {entry!r}")
    missing, unknown = required - entry.keys(), entry.keys() - required - optional
    if missing or unknown:
        raise TerminologyDataError(f"{where}: missing {sorted(missing)}, unknown {sorted(unknown)}")


def _index_medications(data: Mapping[str, Any]) -> _MedicationIndex:
    _check_keys(data, "medications", {"classes", "rejected_rxcuis", "name_matching", "ingredients", "products"})
    ingredients, products, rejected = data["ingredients"], data["products"], data["rejected_rxcuis"]
    owners: dict[str, dict[Any, _Target]] = {"RxNorm code": {}, "ATC code": {}, "name": {}, "components": {}}
    by_rxcui: dict[str, _Target] = {}
    by_name: dict[tuple[str, ...], tuple[_Target, str]] = {}
    by_components: dict[frozenset[tuple[str, ...]], tuple[_Target, str]] = {}
    members: dict[str, set[str]] = {name: set() for name in data["classes"]}
    # Each target's names, for the words that mention its classes.
    target_names: dict[_Target, list[str]] = {}

    def claim(kind: str, key: Any, target: _Target, where: str) -> None:
        if owners[kind].setdefault(key, target) != target:
            raise TerminologyDataError(f"{where}: {kind} {key!r} already belongs to another drug")

    def index_entry(key: str, entry: Mapping[str, Any], target: _Target, where: str) -> None:
        if not isinstance(entry["display"], str) or not entry["display"]:
            raise TerminologyDataError(f"{where}: display must be a non-empty string")
        for i, rx in enumerate(entry["rxnorm"]):
            _check_keys(rx, f"{where}.rxnorm[{i}]", {"code", "tty", "status", "source"})
            code = rx["code"]
            if not isinstance(code, str) or not _RXCUI.fullmatch(code):
                raise TerminologyDataError(f"{where}: RxCUI {code!r} must be a quoted string of digits")
            if code in rejected:
                raise TerminologyDataError(f"{where}: RxCUI {code} is rejected: {rejected[code]}")
            if rx["tty"] not in _TTYS or rx["status"] not in _STATUSES:
                raise TerminologyDataError(f"{where}: RxCUI {code}: unknown tty {rx['tty']!r} or status {rx['status']!r}")
            claim("RxNorm code", code, target, where)
            if rx["status"] in _MATCHABLE:
                by_rxcui[code] = target
        for code in entry["atc"]:
            if not isinstance(code, str) or not _ATC_LEVEL_5.fullmatch(code):
                raise TerminologyDataError(f"{where}: {code!r} is not an ATC level-5 code")
            claim("ATC code", code, target, where)
        if not entry["names"]:
            raise TerminologyDataError(f"{where}: at least one name is needed")
        for name in entry["names"]:
            tokens = _name_tokens(name, where)
            claim("name", tokens, target, where)
            by_name[tokens] = (target, _normalise(name))
            target_names.setdefault(target, []).append(name)

    for key, entry in ingredients.items():
        where = f"ingredients.{key}"
        _check_keys(entry, where, {"display", "classes", "rxnorm", "atc", "names"})
        for name in entry["classes"]:
            if name not in members:
                raise TerminologyDataError(f"{where}: unknown class {name!r}")
            members[name].add(key)
        index_entry(key, entry, _Target(frozenset({key}), None, False), where)
    combinations = []
    for key, entry in products.items():
        where = f"products.{key}"
        required = {"display", "ingredients", "subcutaneous_fixed_dose", "rxnorm", "atc", "names", "components"}
        _check_keys(entry, where, required)
        if key in ingredients or not entry["ingredients"] or not set(entry["ingredients"]) <= ingredients.keys():
            raise TerminologyDataError(f"{where}: key clashes with an ingredient, or unknown/empty ingredients")
        if not isinstance(entry["subcutaneous_fixed_dose"], bool):
            raise TerminologyDataError(f"{where}: subcutaneous_fixed_dose must be true or false")
        target = _Target(frozenset(entry["ingredients"]), key, entry["subcutaneous_fixed_dose"])
        index_entry(key, entry, target, where)
        combinations.append((entry["components"], target, where))
    # Checked once every name is known: a component that names a drug must name one of the product's ingredients.
    for components, target, where in combinations:
        key, name = _components_key(components, target, by_name, where)
        claim("components", key, target, where)
        by_components[key] = (target, name)

    _check_classes(data["classes"], members, ingredients)
    matching = data["name_matching"]
    _check_keys(matching, "name_matching", {"units", "joiners", "dose_form_words", "salt_words", "generic_name_words"})
    names = frozenset(by_name).union(*by_components)
    return _MedicationIndex(
        by_rxcui=by_rxcui,
        by_atc=dict(owners["ATC code"]),
        by_name=by_name,
        by_components=by_components,
        names=names,
        longest_name=max(map(len, names)),
        dose_words=frozenset(matching["dose_form_words"]) | frozenset(matching["salt_words"]),
        units=frozenset(matching["units"]),
        joiners=frozenset(matching["joiners"]),
        classes={name: frozenset(keys) for name, keys in members.items()},
        class_words=_class_words(target_names, members, matching),
        displays={key: entry["display"] for key, entry in ingredients.items()},
    )


def _class_words(
    target_names: Mapping[_Target, list[str]], members: Mapping[str, set[str]], matching: Mapping[str, Any]
) -> dict[str, frozenset[str]]:
    """The words that mention a drug of each class: words of its drugs' names that name a drug alone."""
    generic = frozenset(matching["generic_name_words"])
    words_of = {target: frozenset().union(*map(_words, names)) for target, names in target_names.items()}
    unused = generic - frozenset().union(*words_of.values())
    if unused:
        raise TerminologyDataError(f"name_matching.generic_name_words: {sorted(unused)} are words of no name")
    not_names = generic.union(*(matching[kind] for kind in ("units", "joiners", "dose_form_words", "salt_words")))
    return {
        name: frozenset().union(*(words for target, words in words_of.items() if target.ingredients & keys)) - not_names
        for name, keys in members.items()
    }


def _name_tokens(name: Any, where: str) -> tuple[str, ...]:
    tokens = _tokens(_normalise(name)) if isinstance(name, str) else ()
    if not tokens or any(bracket in token for token in tokens for bracket in "()[]"):
        raise TerminologyDataError(f"{where}: invalid name {name!r}")
    return tokens


def _components_key(
    components: Any, target: _Target, by_name: Mapping[tuple[str, ...], tuple[_Target, str]], where: str
) -> tuple[frozenset[tuple[str, ...]], str]:
    """A product's component names as the text reader finds them, and as written; they must name its ingredients."""
    names = [_name_tokens(name, where) for name in components] if isinstance(components, list) else []
    if len(set(names)) < 2:
        raise TerminologyDataError(f"{where}: components must be two or more different names")
    drugs = [by_name[name][0] for name in names if name in by_name]
    named = frozenset().union(*(drug.ingredients for drug in drugs))
    if any(drug.product is not None for drug in drugs) or named != target.ingredients:
        raise TerminologyDataError(f"{where}: the components that name drugs must name exactly its ingredients")
    return frozenset(names), " / ".join(map(_normalise, components))


def _check_classes(spec: Mapping[str, Any], members: Mapping[str, set[str]], ingredients: Mapping[str, Any]) -> None:
    """Class membership must agree with the parent class, the classes it excludes and the ATC group that defines it."""
    for name, rule in spec.items():
        _check_keys(rule, f"classes.{name}", {"description"}, frozenset({"within", "disjoint_from", "atc_prefixes"}))
        parent = rule.get("within")
        if parent is not None and (parent not in members or not members[name] <= members[parent]):
            raise TerminologyDataError(f"classes.{name}: not all members are in {parent!r}")
        for other in rule.get("disjoint_from", ()):
            if other not in members or members[name] & members[other]:
                raise TerminologyDataError(f"classes.{name}: unknown class {other!r} or members shared with it")
        prefixes = tuple(rule.get("atc_prefixes", ()))
        if prefixes:
            by_atc = {key for key, entry in ingredients.items() if any(code.startswith(prefixes) for code in entry["atc"])}
            if by_atc != members[name]:
                raise TerminologyDataError(f"classes.{name}: members {sorted(members[name])} differ from ATC {prefixes}: {sorted(by_atc)}")


def _index_value_sets(data: Mapping[str, Any]) -> dict[str, _ValueSet]:
    _check_keys(data, "clinical codes", {"value_sets"})
    return {name: _index_value_set(entry, f"value_sets.{name}") for name, entry in data["value_sets"].items()}


def _index_value_set(entry: Mapping[str, Any], where: str) -> _ValueSet:
    _check_keys(entry, where, {"description", "codes"}, frozenset({"prefixes", "must_not_contain"}))
    meanings: dict[tuple[str, str], str | None] = {}
    codes = []
    listed = set()
    for i, code in enumerate(entry["codes"]):
        here = f"{where}.codes[{i}]"
        key = _checked_clinical_code(code, here, frozenset({"meaning"}))
        if key in listed:
            raise TerminologyDataError(f"{here}: {key} is listed twice")
        listed.add(key)
        if code["status"] in _MATCHABLE:
            meanings[key] = code.get("meaning")
            codes.append((code["system"], code["code"]))
    prefixes, all_prefixes = [], []
    for i, prefix in enumerate(entry.get("prefixes", ())):
        here = f"{where}.prefixes[{i}]"
        system, code = _checked_clinical_code(prefix, here)
        if system != ICD10CM:
            raise TerminologyDataError(f"{here}: prefixes are a code-hierarchy rule for ICD-10-CM only")
        all_prefixes.append(code)
        if prefix["status"] in _MATCHABLE:
            prefixes.append(code)
    # Checked against every listed code, unverified ones included: a wrong code must not be listed at all.
    everything = _ValueSet(dict.fromkeys(listed), tuple(all_prefixes), ())
    for i, forbidden in enumerate(entry.get("must_not_contain", ())):
        _check_keys(forbidden, f"{where}.must_not_contain[{i}]", {"system", "code", "reason"})
        if _in(everything, forbidden):
            raise TerminologyDataError(f"{where}: must not contain {forbidden['code']}: {forbidden['reason']}")
    if not meanings and not prefixes:
        raise TerminologyDataError(f"{where}: no code that can match")
    return _ValueSet(meanings, tuple(prefixes), tuple(codes))


def _checked_clinical_code(entry: Any, where: str, optional: frozenset[str] = frozenset()) -> tuple[str, str]:
    _check_keys(entry, where, {"system", "code", "display", "status", "source"}, optional)
    system, code = entry["system"], entry["code"]
    if system not in _CLINICAL_SYSTEMS or not isinstance(code, str) or not code.strip():
        raise TerminologyDataError(f"{where}: unknown system {system!r} or code {code!r} not a quoted string")
    if entry["status"] not in _STATUSES:
        raise TerminologyDataError(f"{where}: unknown status {entry['status']!r}")
    return system, _clinical_code(system, code)


def _value_sets_by_key(value_sets: Mapping[str, _ValueSet]) -> dict[tuple[str, str], frozenset[str]]:
    names: dict[tuple[str, str], set[str]] = {}
    for name, entries in value_sets.items():
        for key in entries.meanings:
            names.setdefault(key, set()).add(name)
    return {key: frozenset(found) for key, found in names.items()}


_MEDS = _index_medications(_read("medications.yaml"))
_VALUE_SETS = _index_value_sets(_read("clinical_codes.yaml"))
_VALUE_SETS_BY_KEY = _value_sets_by_key(_VALUE_SETS)
_ICD10CM_PREFIXES = tuple((name, entries.icd10cm_prefixes) for name, entries in _VALUE_SETS.items() if entries.icd10cm_prefixes)
