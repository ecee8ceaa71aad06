import copy

import pytest
from fhir.resources.R4B.codeableconcept import CodeableConcept
from fhir.resources.R4B.coding import Coding

from cds_hooks import terminology
from cds_hooks.terminology import (
    ATC,
    ICD10CM,
    LOINC,
    RXNORM,
    SNOMED,
    TerminologyDataError,
    NamedDrug,
    classify_medication,
    coded_meaning,
    drugs_named_apart,
    in_value_set,
    ingredient_display,
    ingredients_in_class,
    mentions_class,
    value_set_codes,
    value_sets_of,
    why_not_identified,
)

TDM1 = "ado_trastuzumab_emtansine"
TDXD = "fam_trastuzumab_deruxtecan"


def rx(code, display=None):
    coding = {"system": RXNORM, "code": code}
    if display is not None:
        coding["display"] = display
    return {"coding": [coding]}


def atc(code, system=ATC):
    return {"coding": [{"system": system, "code": code}]}


def text(value):
    return {"text": value}


def ingredients(concept):
    match = classify_medication(concept)
    return match.ingredients if match else None


# --- RxNorm -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rxcui", "ingredient"),
    [
        ("224905", "trastuzumab"),
        ("1371041", TDM1),
        ("1298944", "pertuzumab"),
        ("480167", "lapatinib"),
        ("481474", "lapatinib"),
        ("1940643", "neratinib"),
        ("2361285", "tucatinib"),
        ("72962", "docetaxel"),
        ("56946", "paclitaxel"),
        ("194000", "capecitabine"),
        ("3002", "cyclophosphamide"),
        ("40048", "carboplatin"),
        ("4492", "fluorouracil"),
        ("3639", "doxorubicin"),
        ("3995", "epirubicin"),
        ("3109", "daunorubicin"),
        ("5650", "idarubicin"),
    ],
)
def test_ingredient_rxcui(rxcui, ingredient):
    match = classify_medication(rx(rxcui))
    assert match.ingredients == frozenset({ingredient})
    assert (match.matched_by, match.code, match.product, match.subcutaneous_fixed_dose) == ("rxnorm", rxcui, None, False)


def test_ingredients_without_a_usable_ingredient_rxcui_resolve_by_product_rxcui_or_atc():
    assert ingredients(rx("2267576")) == {TDXD}  # Enhertu, openFDA
    assert ingredients(rx("1792780")) == {"atezolizumab"}  # Tecentriq, openFDA
    assert ingredients(atc("L01FD06")) == {"margetuximab"}
    assert ingredients(atc("L01DB07")) == {"mitoxantrone"}


def test_brand_and_product_rxcuis():
    assert ingredients(rx("101306")) == {"trastuzumab"}  # Herceptin BN
    assert ingredients(rx("1371046")) == {TDM1}  # Kadcyla BN
    assert ingredients(rx("589511")) == {"paclitaxel"}  # Abraxane: nab-paclitaxel counts as paclitaxel
    for rxcui in ("1658084", "1658087", "1658089", "1658091"):
        assert ingredients(rx(rxcui)) == {TDM1}


@pytest.mark.parametrize("rxcui", ["2107053", "2179753", "2280732", "2289227"])
def test_biosimilar_product_rxcui_is_trastuzumab(rxcui):
    assert ingredients(rx(rxcui)) == {"trastuzumab"}


def test_made_up_rxcuis_from_public_repos_match_nothing():
    for rxcui in ("1298065", "1369443", "1859164"):
        assert classify_medication(rx(rxcui)) is None


def test_unverified_code_alone_never_matches():
    assert classify_medication(rx("1792776")) is None  # atezolizumab IN, "LIKELY (weak)"


def test_unverified_code_with_a_name_matches_by_name():
    match = classify_medication(rx("1792776", "atezolizumab"))
    assert (match.ingredients, match.matched_by) == ({"atezolizumab"}, "name")


def test_rxnorm_code_needs_the_rxnorm_system():
    assert classify_medication({"coding": [{"system": "http://example.org/local", "code": "224905"}]}) is None
    assert classify_medication({"coding": [{"code": "1371041"}]}) is None


def test_code_beats_name_when_they_disagree():
    match = classify_medication({"coding": [{"system": RXNORM, "code": "1371041", "display": "trastuzumab"}], "text": "Herceptin"})
    assert (match.ingredients, match.matched_by) == ({TDM1}, "rxnorm")


def test_unknown_rxcui_falls_back_to_atc_then_name():
    assert classify_medication({"coding": [{"system": RXNORM, "code": "999999999"}, {"system": ATC, "code": "L01FD03"}]}).matched_by == "atc"
    assert classify_medication({"coding": [{"system": RXNORM, "code": "999999999", "display": "Kadcyla"}]}).ingredients == {TDM1}


def test_conflicting_codes_at_the_same_level_give_none():
    concept = {"coding": [{"system": RXNORM, "code": "224905"}, {"system": RXNORM, "code": "1371041"}]}
    assert classify_medication(concept) is None


def test_agreeing_codes_are_fine():
    concept = {"coding": [{"system": RXNORM, "code": "224905"}, {"system": RXNORM, "code": "2107053"}]}
    assert ingredients(concept) == {"trastuzumab"}


def test_drugs_named_apart_reads_each_code_display_and_text_alone():
    concept = {"coding": [{"system": RXNORM, "code": "1371041", "display": "trastuzumab"}], "text": "Kadcyla 160 mg"}
    assert drugs_named_apart(concept) == (
        NamedDrug("code", "1371041", frozenset({TDM1})),
        NamedDrug("display", "trastuzumab", frozenset({"trastuzumab"})),
        NamedDrug("text", "Kadcyla 160 mg", frozenset({TDM1})),
    )


@pytest.mark.parametrize("concept", [None, "1371041", {"coding": "1371041"}, {"coding": [{"system": RXNORM, "code": 1371041}]},
                                     {"coding": [{"system": RXNORM, "code": "999999999"}], "text": "saline"}])
def test_drugs_named_apart_of_a_malformed_or_unknown_concept_is_nothing(concept):
    # A Medication resource of the prefetch or draft bundle is raw JSON, not validated as a draft order is.
    assert drugs_named_apart(concept) == ()


# --- ATC ----------------------------------------------------------------------------------------


def test_atc_level_5_tells_the_trastuzumab_drugs_apart():
    assert ingredients(atc("L01FD01")) == {"trastuzumab"}
    assert ingredients(atc("L01FD03")) == {TDM1}
    assert ingredients(atc("L01FD04")) == {TDXD}
    assert ingredients(atc("L01FD02")) == {"pertuzumab"}


def test_atc_accepts_the_alternative_system_uris_and_case():
    assert ingredients(atc("L01FD03", "http://www.whocc.no/atc/")) == {TDM1}
    assert ingredients(atc("l01fd03", "urn:oid:2.16.840.1.113883.6.73")) == {TDM1}


def test_atc_group_codes_and_unlisted_substances_match_nothing():
    assert classify_medication(atc("L01FD")) is None  # class level, not a drug
    assert classify_medication(atc("L01FD05")) is None  # trastuzumab duocarmazine is not trastuzumab


@pytest.mark.parametrize("code", ["L01DB01", "L01DB02", "L01DB03", "L01DB06", "L01DB07"])
def test_l01db_codes_are_anthracyclines(code):
    assert ingredients(atc(code)) <= ingredients_in_class("anthracycline")


def test_phesgo_by_atc_is_pertuzumab_and_trastuzumab_subcutaneous():
    match = classify_medication(atc("L01FY01"))
    assert match.ingredients == {"pertuzumab", "trastuzumab"}
    assert (match.product, match.subcutaneous_fixed_dose) == ("phesgo", True)


def test_hylecta_by_rxnorm_is_a_subcutaneous_trastuzumab_product():
    match = classify_medication(rx("2119714"))
    assert (match.ingredients, match.product, match.subcutaneous_fixed_dose) == ({"trastuzumab"}, "herceptin_hylecta", True)


# --- names --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "ingredient"),
    [
        ("ado-trastuzumab emtansine", TDM1),
        ("Ado-Trastuzumab Emtansine 100 MG Injection", TDM1),
        ("ado trastuzumab emtansine", TDM1),
        ("ado\u2011trastuzumab  emtansine", TDM1),  # non-breaking hyphen, double space
        ("trastuzumab emtansine", TDM1),
        ("Kadcyla 160 mg", TDM1),
        ("Kadcyla 160mg", TDM1),
        ("fam-trastuzumab deruxtecan-nxki", TDXD),
        ("trastuzumab deruxtecan", TDXD),
        ("trastuzumab deruxtecan-nxki", TDXD),  # the INN with the FDA suffix, without the "fam-" prefix
        ("Trastuzumab Deruxtecan-NXKI 100 mg powder for solution", TDXD),
        ("ENHERTU", TDXD),
        ("Enhertu (fam-trastuzumab deruxtecan-nxki)", TDXD),
        ("Kadcyla (ado-trastuzumab emtansine) 160 mg", TDM1),
        ("5 ML ado-trastuzumab emtansine 20 MG/ML Injection", TDM1),
        ("Trastuzumab-pkrb", "trastuzumab"),
        ("HERZUMA", "trastuzumab"),
        ("Trastuzumab-pkrb 150 MG Injection [Herzuma]", "trastuzumab"),
        ("150 MG Injection [Ogivri]", "trastuzumab"),
        ("trastuzumab", "trastuzumab"),
        ("Trastuzumab 440 mg powder for concentrate for solution for infusion", "trastuzumab"),
        ("Herceptin", "trastuzumab"),
        ("trastuzumab (Herceptin)", "trastuzumab"),
        ("Herzuma (trastuzumab-pkrb)", "trastuzumab"),
        ("14 ML pertuzumab 30 MG/ML Injection [Perjeta]", "pertuzumab"),
        ("10 ML doxorubicin hydrochloride 2 MG/ML Injection", "doxorubicin"),  # the reference's SCD 1790099
        ("Doxil", "doxorubicin"),
        ("doxorubicin hydrochloride 2 mg/ml injection", "doxorubicin"),
        ("nab-paclitaxel", "paclitaxel"),
        ("lapatinib ditosylate 250 mg oral tablet", "lapatinib"),
    ],
)
def test_name_fallback(name, ingredient):
    match = classify_medication(text(name))
    assert (match.ingredients, match.matched_by) == ({ingredient}, "name")


@pytest.mark.parametrize(
    "name",
    [
        "not trastuzumab-like",
        "anti-trastuzumab antibody",
        "trastuzumabX",
        "trastuzumab-like",
        "doxorubicinol",
        "",
        "   ",
        "trastuzumab duocarmazine",
        "trastuzumab-xyzw",  # an unlisted biosimilar suffix is not assumed to be trastuzumab
        "ado-trastuzumab",  # incomplete name
        "trastuzumab + pertuzumab",
        "trastuzumab 100 MG Injection [Kadcyla]",  # name and bracketed brand disagree
        "trastuzumab 150 MG Injection [Unknownbrand]",
        "history of trastuzumab",
        # The three trastuzumab drugs: a suffix, a prefix or a bracketed name never carries one over to another.
        "trastuzumab deruxtecan-abcd",  # an unlisted suffix
        "trastuzumab emtansine-nxki",  # T-DXd's suffix on T-DM1's name
        "fam-trastuzumab",
        "deruxtecan",
        "trastuzumab (Kadcyla)",
        "trastuzumab (Enhertu)",
        "Enhertu (trastuzumab)",
        "ado-trastuzumab emtansine (Herceptin)",
        "Kadcyla [Enhertu]",
        "trastuzumab 150 mg/pertuzumab",  # a ratio holds strengths, never a name
        "trastuzumab (biosimilar)",
        "trastuzumab (Herceptin",
        "trastuzumab ()",
        # Several names are one product only when they are exactly its components.
        "pertuzumab / trastuzumab",  # two IV drugs, not Phesgo
        "pertuzumab-trastuzumab",
        "hyaluronidase-zzxf / trastuzumab",  # Phesgo's enzyme without pertuzumab
        "hyaluronidase-oysk / pertuzumab / trastuzumab",  # Hylecta's enzyme with pertuzumab
        "pertuzumab / trastuzumab / hyaluronidase-zzxf / docetaxel",
        "hyaluronidase-oysk 2000 UNT/ML",
        "trastuzumab emtansine / hyaluronidase-oysk",  # T-DM1 is no component of Hylecta
        "ado-trastuzumab emtansine / trastuzumab",
        "trastuzumab / trastuzumab",
        "14 ML pertuzumab 30 MG/ML Injection [Phesgo]",  # one ingredient under the combination's brand
        "5 ML trastuzumab 120 MG/ML Injection [Herceptin Hylecta]",  # IV trastuzumab under the subcutaneous brand
        "5 ML hyaluronidase-oysk 2000 UNT/ML / trastuzumab 120 MG/ML Injection [Herceptin]",
        "hyaluronidase-zzxf 2000 UNT/ML / pertuzumab 80 MG/ML / trastuzumab 40 MG/ML Injection [Herceptin Hylecta]",
        # A joiner stands between two words.
        "trastuzumab and",
        "/ trastuzumab",
    ],
)
def test_near_misses_match_nothing(name):
    assert classify_medication(text(name)) is None


def test_coding_display_counts_for_the_name_fallback():
    concept = {"coding": [{"system": "http://example.org/local-formulary", "code": "X1", "display": "Kadcyla 100 mg"}]}
    assert ingredients(concept) == {TDM1}


def test_names_that_disagree_give_none():
    concept = {"coding": [{"system": "http://example.org/local", "code": "X1", "display": "Kadcyla"}], "text": "trastuzumab"}
    assert classify_medication(concept) is None


PHESGO = ({"pertuzumab", "trastuzumab"}, "phesgo", True)
HYLECTA = ({"trastuzumab"}, "herceptin_hylecta", True)


@pytest.mark.parametrize(
    ("name", "product"),
    [
        ("PHESGO", PHESGO),
        ("Phesgo 1200 mg/600 mg", PHESGO),
        # RxNorm's clinical drug name lists the ingredients alphabetically; the strengths do not matter here.
        ("hyaluronidase-zzxf 2000 UNT/ML / pertuzumab 80 MG/ML / trastuzumab 40 MG/ML Injection [Phesgo]", PHESGO),
        ("pertuzumab, trastuzumab, and hyaluronidase-zzxf", PHESGO),
        ("pertuzumab / trastuzumab / hyaluronidase-zzxf", PHESGO),
        ("pertuzumab-trastuzumab-hyaluronidase-zzxf (Phesgo)", PHESGO),
        ("Herceptin Hylecta 600 mg", HYLECTA),
        ("5 ML hyaluronidase-oysk 2000 UNT/ML / trastuzumab 120 MG/ML Injection", HYLECTA),  # the reference's SCD 2119714
        ("5 ML hyaluronidase-oysk 2000 UNT/ML / trastuzumab 120 MG/ML Injection [Herceptin Hylecta]", HYLECTA),
        ("Trastuzumab-hyaluronidase-oysk", HYLECTA),
        ("trastuzumab and hyaluronidase-oysk", HYLECTA),
    ],
)
def test_subcutaneous_combinations_by_name(name, product):
    match = classify_medication(text(name))
    assert (match.ingredients, match.product, match.subcutaneous_fixed_dose, match.matched_by) == (*product, "name")


@pytest.mark.parametrize("concept", [None, {}, {"text": None}, {"coding": None}, {"coding": "224905"}, "224905",
                                     {"coding": [{"system": RXNORM, "code": ["224905"]}], "text": {"x": 1}}])
def test_empty_or_malformed_concepts(concept):
    assert classify_medication(concept) is None


@pytest.mark.parametrize("concept", [
    {"system": RXNORM, "code": "224905"},  # a Coding where the CodeableConcept belongs is read as its one coding
    {"coding": [{"system": RXNORM, "code": "224905", "display": 5}], "text": 7},
    {"coding": ["224905", None, {"system": RXNORM, "code": "224905"}]},
])
def test_a_concept_is_read_from_its_codings_as_json_whatever_else_is_malformed(concept):
    assert classify_medication(concept).ingredients == {"trastuzumab"}


def test_a_concept_classified_again_gives_the_same_answer():
    # Classifications are memoised per distinct concept: a repeat must not differ, whatever came in between.
    first = classify_medication(text("Kadcyla 160 mg"))
    classify_medication(rx("224905"))
    assert classify_medication(text("Kadcyla 160 mg")) == first
    assert classify_medication(atc("L01FD01")).ingredients == {"trastuzumab"}


# --- orders that are not identified ------------------------------------------------------------

HER2_OR_ANTHRACYCLINE = ("her2_directed", "anthracycline")


@pytest.mark.parametrize(
    "name",
    [
        "trastuzumab-xyzz 150 mg",  # an unlisted biosimilar suffix
        "Herceptin IV bag",
        "trastuzumab (Kadcyla)",
        "Kadcyla.",
        "trastuzumab+pertuzumab",
        "T-DXd weekly",  # "dxd": the T of T-DM1 and T-DXd alone is no drug word
        "Phesgo SC 1200 mg",  # a product name counts for its ingredients' classes
        "tucatinib (Tukysa",  # HER2 tyrosine kinase inhibitors are HER2 agents
        "EPIRUBICIN 50 mg/m2 in 100 mL bag",
        "Caelyx liposomal",
    ],
)
def test_a_whole_word_of_a_her2_agent_or_anthracycline_name_is_a_mention(name):
    assert classify_medication(text(name)) is None
    assert mentions_class(text(name), HER2_OR_ANTHRACYCLINE)


@pytest.mark.parametrize(
    "name",
    [
        "antitrastuzumabody",  # a drug name inside a longer word is no mention
        "doxorubicinol",
        "ondansetron 8 mg",
        "metformin",
        "liposomal irinotecan",  # words of a name that name no drug alone: formulation, FDA prefix, salt
        "ado xyz",
        "fam-xyz",
        "T-cell engager",
        "bendamustine hydrochloride injection",
        "docetaxel 75 mg/m2 bag",  # a taxane: a drug the service knows, but not of these classes
    ],
)
def test_other_words_are_no_mention(name):
    assert not mentions_class(text(name), HER2_OR_ANTHRACYCLINE)


def test_mention_words_come_from_the_names_of_the_classes_asked_for():
    assert mentions_class(text("docetaxel 75 mg/m2 bag"), ["taxane"])
    assert not mentions_class(text("Herceptin IV bag"), ["anthracycline"])
    with pytest.raises(KeyError):
        mentions_class(text("Herceptin IV bag"), ["her2"])


def test_a_coding_display_or_a_code_alone_can_be_the_mention():
    local = {"coding": [{"system": "http://example.org/formulary", "code": "X1", "display": "Herzuma biosimilar 150 mg"}]}
    assert mentions_class(local, HER2_OR_ANTHRACYCLINE)
    # Doxorubicin and epirubicin codes in one concept: identified as neither, but each names an anthracycline.
    two_anthracyclines = {"coding": [{"system": RXNORM, "code": "3639"}, {"system": RXNORM, "code": "3995"}]}
    assert classify_medication(two_anthracyclines) is None
    assert mentions_class(two_anthracyclines, HER2_OR_ANTHRACYCLINE)
    assert not mentions_class({"coding": [{"system": RXNORM, "code": "56946"}, {"system": RXNORM, "code": "72962"}]},
                              HER2_OR_ANTHRACYCLINE)


def test_why_an_order_is_not_identified():
    assert why_not_identified(text("Herceptin IV")) is None
    unknown = why_not_identified({"coding": [{"system": RXNORM, "code": "99999999"}, {"code": "X1"}], "text": "trastuzumab-xyzz 150 mg"})
    assert (unknown.conflict, unknown.unknown_codes, unknown.unread_names) == (
        None, ("RxNorm 99999999", "X1 (no code system)"), ("trastuzumab-xyzz 150 mg",))
    assert why_not_identified({"coding": [{"system": RXNORM, "code": "224905"}, {"system": RXNORM, "code": "1371041"}],
                               "text": "Herceptin"}).conflict == "codes"
    assert why_not_identified({"coding": [{"system": "http://example.org/local", "code": "X1", "display": "Kadcyla"}],
                               "text": "trastuzumab"}).conflict == "names"
    bracketed = why_not_identified(text("trastuzumab (Kadcyla)"))
    assert (bracketed.conflict, bracketed.unread_names) == ("names", ())
    assert not bracketed.names_nothing


@pytest.mark.parametrize("concept", [None, {}, {"text": "  "}, {"coding": [{"system": RXNORM}]}])
def test_a_concept_with_no_code_and_no_name_names_nothing(concept):
    assert why_not_identified(concept).names_nothing
    assert not mentions_class(concept, HER2_OR_ANTHRACYCLINE)


# --- classes ------------------------------------------------------------------------------------


def test_classes():
    assert "mitoxantrone" in ingredients_in_class("anthracycline")
    assert ingredients_in_class("anthracycline") == {"doxorubicin", "epirubicin", "daunorubicin", "idarubicin", "mitoxantrone"}
    assert ingredients_in_class("trastuzumab_product") == {"trastuzumab"}
    assert ingredients_in_class("her2_antibody") == {"trastuzumab", TDM1, TDXD, "pertuzumab", "margetuximab"}
    assert ingredients_in_class("her2_directed") == ingredients_in_class("her2_antibody") | {"lapatinib", "neratinib", "tucatinib"}
    assert ingredients_in_class("antibody_drug_conjugate") == {TDM1, TDXD}
    assert ingredients_in_class("taxane") == {"docetaxel", "paclitaxel"}
    assert ingredients_in_class("her2_tki") == {"lapatinib", "neratinib", "tucatinib"}
    with pytest.raises(KeyError):
        ingredients_in_class("her2")


def test_display():
    assert ingredient_display(TDM1) == "ado-trastuzumab emtansine (T-DM1)"
    with pytest.raises(KeyError):
        ingredient_display("kadcyla")


# --- value sets ---------------------------------------------------------------------------------


def test_hcg_matches_only_with_the_loinc_system():
    assert in_value_set({"system": LOINC, "code": "2106-3"}, "hcg")
    assert not in_value_set({"system": "urn:oid:2.16.840.1.113883.6.238", "code": "2106-3"}, "hcg")  # race "White"
    assert not in_value_set({"code": "2106-3"}, "hcg")


def test_in_value_set_accepts_a_coding_or_a_concept():
    concept = {"coding": [{"system": "urn:oid:2.16.840.1.113883.6.238", "code": "2106-3"}, {"system": LOINC, "code": "2118-8"}]}
    assert in_value_set(concept, "hcg")
    assert not in_value_set({"text": "pregnancy test"}, "hcg")
    assert not in_value_set(None, "hcg")


def test_models_read_like_their_json():
    concept = {"coding": [{"system": ICD10CM, "code": "C50.911"}, {"system": LOINC, "code": "8812-0"}], "text": "x"}
    model = CodeableConcept.model_validate(concept)
    for value_set in ("breast_cancer", "lvef", "hcg"):
        assert in_value_set(model, value_set) == in_value_set(concept, value_set)
        assert coded_meaning(model, value_set) == coded_meaning(concept, value_set)
    assert coded_meaning(Coding(system=LOINC, code="8812-0"), "lvef") == "muga"
    assert not in_value_set(CodeableConcept(text="no codes"), "lvef")


def test_value_sets_of_is_in_value_set_for_every_value_set():
    names = list(terminology._VALUE_SETS)
    codings = [{"system": system, "code": code} for name in names for system, code in value_set_codes(name)]
    codings += [{"system": ICD10CM, "code": code} for code in ("C50.911", "c50911", "C79.31", "I50.32", "J84.10", "Z33.1", "C5")]
    codings += [{"system": SNOMED, "code": "145501000119108"}, {"code": "2106-3"}, {"system": LOINC, "code": " 8812-0 "}]
    for coding in codings:
        assert value_sets_of(coding) == {name for name in names if in_value_set(coding, name)}, coding
    assert value_sets_of({"coding": codings[:2]}) == value_sets_of(codings[0]) | value_sets_of(codings[1])
    assert value_sets_of(None) == frozenset()


def test_serum_her2_is_not_tumour_her2():
    for code in ("32996-1", "42914-2", "51981-9"):
        coding = {"system": LOINC, "code": code}
        assert in_value_set(coding, "her2_serum")
        for value_set in ("her2_ihc", "her2_ish", "her2_ish_ratio", "her2_copy_number", "her2_interpretation", "her2_tissue_other"):
            assert not in_value_set(coding, value_set)


def test_icd10cm_prefixes():
    assert in_value_set({"system": ICD10CM, "code": "C79.31"}, "metastatic")
    assert in_value_set({"system": ICD10CM, "code": "C50.911"}, "breast_cancer")
    assert in_value_set({"system": ICD10CM, "code": "c50911"}, "breast_cancer")
    assert not in_value_set({"system": ICD10CM, "code": "C5"}, "breast_cancer")
    assert in_value_set({"system": ICD10CM, "code": "I50.32"}, "heart_failure")


def test_prefixes_apply_to_icd10cm_only():
    assert not in_value_set({"system": SNOMED, "code": "C50.911"}, "breast_cancer")
    assert not in_value_set({"system": "http://hl7.org/fhir/sid/icd-10", "code": "C50.911"}, "breast_cancer")


def test_metastatic_excludes_the_wrong_codes():
    assert in_value_set({"system": SNOMED, "code": "128462008"}, "metastatic")
    # History of metastatic cancer is its own value set: read as an Observation too, and in any clinical status.
    assert not in_value_set({"system": SNOMED, "code": "1287652008"}, "metastatic")
    assert in_value_set({"system": SNOMED, "code": "1287652008"}, "history_of_metastatic_cancer")
    assert not in_value_set({"system": SNOMED, "code": "145501000119108"}, "metastatic")  # spread TO the breast
    assert not in_value_set({"system": SNOMED, "code": "408643008"}, "metastatic")


def test_heart_failure_holds_the_vsac_heart_failure_disorders_but_not_its_other_members():
    # SNOMED CT codes are not expanded by is-a; these are listed from VSAC Heart Failure 2.16.840.1.113883.3.526.3.376.
    for code in ("42343007", "698594003", "703272007", "417996009", "84114007", "426263006"):
        assert in_value_set({"system": SNOMED, "code": code}, "heart_failure"), code
    for code in ("15964701000119109", "410431009", "44088000", "90727007", "206586007"):
        assert not in_value_set({"system": SNOMED, "code": code}, "heart_failure"), code


def test_unverified_clinical_codes_never_match():
    assert not in_value_set({"system": ICD10CM, "code": "Z33.1"}, "pregnancy")
    assert not in_value_set({"system": ICD10CM, "code": "J84.10"}, "ild")
    assert not in_value_set({"system": ICD10CM, "code": "C79.31"}, "brain_metastasis")  # still metastatic (C79)
    assert ("http://hl7.org/fhir/sid/icd-10-cm", "Z33.1") not in value_set_codes("pregnancy")


def test_value_set_codes_for_prefetch():
    assert value_set_codes("her2_ihc") == ((LOINC, "85319-2"), (LOINC, "18474-7"))
    assert (LOINC, "8812-0") in value_set_codes("lvef")
    assert value_set_codes("brain_metastasis") == ((SNOMED, "94225005"),)
    with pytest.raises(KeyError):
        value_set_codes("her2")


def test_meanings():
    assert coded_meaning({"system": LOINC, "code": "8812-0"}, "lvef") == "muga"
    assert coded_meaning({"system": LOINC, "code": "8808-8"}, "lvef") == "angiography"
    assert coded_meaning({"coding": [{"system": LOINC, "code": "LA11842-4"}]}, "her2_answers") == "ihc_2plus"
    assert coded_meaning({"system": SNOMED, "code": "271299001"}, "disease_status_values") == "worsened"
    contradictory = {"coding": [{"system": LOINC, "code": "LA6576-8"}, {"system": SNOMED, "code": "260385009"}]}
    assert coded_meaning(contradictory, "her2_answers") is None
    assert coded_meaning({"system": LOINC, "code": "29463-7"}, "body_weight") is None


def test_every_value_set_the_service_names_exists():
    for name in (
        "her2_ihc", "her2_ish", "her2_ish_ratio", "her2_copy_number", "her2_interpretation", "her2_tissue_other",
        "her2_serum", "her2_answers", "lvef", "body_weight", "body_height", "bsa", "platelets", "neutrophils", "ast", "alt",
        "bilirubin_total", "hcg", "disease_status", "disease_status_values", "staging", "breast_cancer",
        "her2_positive_breast_cancer", "her2_negative_breast_cancer", "metastatic", "history_of_metastatic_cancer",
        "brain_metastasis", "heart_failure", "lv_systolic_dysfunction", "pregnancy", "ild", "peripheral_neuropathy", "anaphylaxis",
        "angioedema", "ards",
    ):
        assert value_set_codes(name)


# --- data checks at load ------------------------------------------------------------------------


@pytest.fixture
def medications():
    return copy.deepcopy(terminology._read("medications.yaml"))


@pytest.fixture
def clinical_codes():
    return copy.deepcopy(terminology._read("clinical_codes.yaml"))


def test_shipped_data_loads(medications, clinical_codes):
    terminology._index_medications(medications)
    terminology._index_value_sets(clinical_codes)


def rxnorm_entry(code):
    return {"code": code, "tty": "IN", "status": "secondary", "source": "x"}


@pytest.mark.parametrize(
    ("edit", "error"),
    [
        pytest.param(lambda m: m["ingredients"]["trastuzumab"]["rxnorm"].append(rxnorm_entry("1371041")), "1371041", id="T-DM1 IN under trastuzumab"),
        pytest.param(lambda m: m["ingredients"]["trastuzumab"]["names"].append("Ado Trastuzumab-Emtansine"), "name", id="T-DM1 name under trastuzumab"),
        pytest.param(lambda m: m["ingredients"]["trastuzumab"]["classes"].append("her2_drug"), "her2_drug", id="unknown class"),
        pytest.param(lambda m: m["ingredients"]["mitoxantrone"]["classes"].remove("anthracycline"), "anthracycline", id="class disagrees with ATC"),
        pytest.param(lambda m: m["ingredients"][TDM1]["classes"].append("trastuzumab_product"), "trastuzumab_product", id="T-DM1 as trastuzumab product"),
        pytest.param(lambda m: m["ingredients"][TDXD]["classes"].append("trastuzumab_product"), "trastuzumab_product", id="T-DXd as trastuzumab product"),
        pytest.param(lambda m: m["ingredients"]["pertuzumab"]["rxnorm"].append(rxnorm_entry("1298065")), "rejected", id="made-up RxCUI"),
        pytest.param(lambda m: m["ingredients"]["pertuzumab"]["rxnorm"][0].update(code=1298944), "quoted", id="unquoted RxCUI"),
        pytest.param(lambda m: m["products"]["phesgo"]["ingredients"].append("hyaluronidase"), "ingredients", id="unknown product ingredient"),
        pytest.param(lambda m: m["products"]["phesgo"]["components"].remove("pertuzumab"), "components", id="component missing"),
        pytest.param(lambda m: m["products"]["phesgo"]["components"].append("docetaxel"), "components", id="component not an ingredient"),
        pytest.param(lambda m: m["products"]["herceptin_hylecta"]["components"].append("ado-trastuzumab emtansine"), "components",
                     id="T-DM1 as a Hylecta component"),
        pytest.param(lambda m: m["products"]["herceptin_hylecta"].update(components=["trastuzumab"]), "two or more", id="one component"),
        pytest.param(lambda m: m["ingredients"]["trastuzumab"]["names"].append("trastuzumab (IV)"), "invalid name", id="bracket in a name"),
        pytest.param(lambda m: m["name_matching"]["generic_name_words"].append("onco"), "onco", id="generic word of no name"),
    ],
)
def test_wrong_medication_data_is_refused(medications, edit, error):
    edit(medications)
    with pytest.raises(TerminologyDataError, match=error):
        terminology._index_medications(medications)


@pytest.mark.parametrize(
    ("value_set", "part", "system", "code", "status", "error"),
    [
        # 408643008 was once claimed to be "metastatic breast cancer"; even listed as unverified it is refused.
        ("metastatic", "codes", SNOMED, "408643008", "unverified", "408643008"),
        ("her2_ihc", "codes", LOINC, "32996-1", "verified", "32996-1"),  # serum HER2 is not tumour HER2
        ("breast_cancer", "prefixes", SNOMED, "2548", "verified", "ICD-10-CM only"),
    ],
)
def test_wrong_value_set_entries_are_refused(clinical_codes, value_set, part, system, code, status, error):
    clinical_codes["value_sets"][value_set][part].append({"system": system, "code": code, "display": "x", "status": status, "source": "x"})
    with pytest.raises(TerminologyDataError, match=error):
        terminology._index_value_sets(clinical_codes)


def test_a_misspelt_field_is_refused(clinical_codes):
    clinical_codes["value_sets"]["lvef"]["codes"][0]["stauts"] = "verified"
    with pytest.raises(TerminologyDataError, match="stauts"):
        terminology._index_value_sets(clinical_codes)
