"""Request and response bodies of the API (pydantic), with Indonesian examples for /docs.

Requests reject unknown fields (`extra="forbid"`), so a misspelt field is an
error instead of being silently ignored. Text checks here are the ones that do
not depend on settings (control characters, emptiness); the length limit
(`ADUAN_MAX_TEXT_CHARS`) and the batch limit (`ADUAN_MAX_BATCH`) are checked by
the endpoints.
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    StrictBool,
    model_serializer,
    model_validator,
)
from pydantic_core import PydanticCustomError

from data.text import BLANK_CHARACTERS
from serving.errors import MAX_DETAILS
from serving.settings import MAX_TOP_K

# Control characters (Unicode Cc) except tab, line feed and carriage return.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
# The same plus line breaks: short fields (location, labels) are one line.
_LINE_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f]")
# Lone surrogates: JSON can escape them ("\\ud800") but they are not Unicode text.
_SURROGATE = re.compile("[\ud800-\udfff]")

ID_PATTERN = r"^[A-Za-z0-9._:\-]{1,128}$"

EXAMPLE_TEXT = (
    "Lampu PJU di Jl. Ketintang Baru mati sudah seminggu, mohon segera diperbaiki. "
    "Kalau malam gelap sekali dan rawan jambret."
)
EXAMPLE_TEXT_2 = (
    "Jalan di depan SDN Wonokromo 3 berlubang besar, sudah ada pengendara motor yang jatuh. "
    "Tolong ditambal sebelum musim hujan pak."
)
EXAMPLE_TEXT_3 = (
    "Saya sudah 3 bulan tidak menerima bantuan PKH padahal terdaftar di DTKS. "
    "Mohon dicek kelurahan Jemur Wonosari."
)


# A text needs at least one character `normalize_text` keeps: the API's notion of
# "empty" is the model's.
_BLANK = BLANK_CHARACTERS
_VISIBLE = re.compile(f"[^{_BLANK}]")
# The text rules as a JSON Schema pattern (for clients and test generators): no control
# characters but \t \n \r, and at least one visible character.
_ALLOWED = "[^\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f-\\x9f]"
TEXT_PATTERN = f"^{_ALLOWED}*{_VISIBLE.pattern}{_ALLOWED}*$"


def check_text(value: str) -> str:
    """Reject control characters (except \\n, \\r, \\t) and texts that are empty once cleaned."""
    if _CONTROL.search(value):
        raise PydanticCustomError(
            "control_characters",
            "text holds control characters; only \\n, \\r and \\t are allowed",
        )
    if _SURROGATE.search(value):
        raise PydanticCustomError(
            "invalid_unicode", "text holds a lone surrogate escape, which is not valid Unicode"
        )
    if not _VISIBLE.search(value):
        raise PydanticCustomError("empty_text", "text is empty or only whitespace")
    return value


def check_plain(value: str | None) -> str | None:
    """Short fields (location, labels): no control characters at all."""
    if value is not None and _LINE_CONTROL.search(value):
        raise PydanticCustomError("control_characters", "field holds control characters")
    if value is not None and _SURROGATE.search(value):
        raise PydanticCustomError(
            "invalid_unicode", "field holds a lone surrogate escape, which is not valid Unicode"
        )
    return value


ComplaintText = Annotated[
    str,
    Field(
        description="The complaint as the citizen wrote it (at most ADUAN_MAX_TEXT_CHARS "
        "characters; no control characters except \\n, \\r, \\t).",
        examples=[EXAMPLE_TEXT],
        json_schema_extra={"pattern": TEXT_PATTERN},
    ),
    AfterValidator(check_text),
]


def iso_string(value: object) -> object:
    """Times must be ISO 8601 strings (pydantic alone would also take numbers as epochs)."""
    if isinstance(value, str | datetime):
        return value
    raise PydanticCustomError("datetime_type", "a time must be an ISO 8601 string")


def plausible_year(value: datetime) -> datetime:
    """Complaints are filed between 1970 and 2099; other years are typos (and break windows)."""
    if not 1970 <= value.year <= 2099:
        raise PydanticCustomError("datetime_range", "a time must be between 1970 and 2099")
    return value


IsoTime = Annotated[
    datetime,
    Field(json_schema_extra={"pattern": "^(19[7-9][0-9]|20[0-9][0-9])-"}),
    BeforeValidator(iso_string),
    AfterValidator(plausible_year),
]


def json_number(value: object) -> object:
    """Integers as JSON numbers only (3 or 3.0, as JSON Schema says; not "3", not true)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PydanticCustomError("int_type", "must be an integer")
    return value


TopK = Annotated[int, Field(ge=1, le=MAX_TOP_K), BeforeValidator(json_number)]

ComplaintId = Annotated[
    str,
    Field(
        pattern=ID_PATTERN,
        description="The intake system's id: 1-128 characters from A-Z a-z 0-9 . _ : -",
        examples=["SBY-2024-000123"],
    ),
]
_PLAIN = {"pattern": "^[^\\x00-\\x08\\x0a-\\x1f\\x7f-\\x9f]*$"}  # no control characters but \t
ShortText = Annotated[
    str, Field(max_length=500, json_schema_extra=_PLAIN), AfterValidator(check_plain)
]


def check_label(value: str) -> str:
    """A label as training reads it: surrounding whitespace dropped, never blank."""
    value = value.strip()
    if not value:
        raise PydanticCustomError("empty_label", "a label must not be empty or only whitespace")
    return value


Label = Annotated[
    str,
    Field(min_length=1, max_length=300, json_schema_extra=_PLAIN),
    AfterValidator(check_plain),
    AfterValidator(check_label),
]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Location(Strict):
    """Where the complaint is about; used by duplicate detection and stored with feedback."""

    region_code: ShortText | None = Field(None, examples=["35.78.22.1004"])
    city: ShortText | None = Field(None, examples=["Kota Surabaya"])
    kecamatan: ShortText | None = Field(None, examples=["Gayungan"])
    kelurahan: ShortText | None = Field(None, examples=["Ketintang"])
    address: ShortText | None = Field(None, examples=["Jl. Ketintang Baru III depan musala"])


class RouteRequest(Strict):
    """One complaint to classify (category, agency), check for duplicates, and maybe register."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            # register: true needs an id
            "if": {"properties": {"register": {"const": True}}, "required": ["register"]},
            "then": {"required": ["id"], "properties": {"id": {"type": "string"}}},
            "examples": [
                {
                    "id": "SBY-2024-000123",
                    "text": EXAMPLE_TEXT,
                    "created_at": "2024-03-05T08:15:00+07:00",
                    "location": {
                        "city": "Kota Surabaya",
                        "kecamatan": "Gayungan",
                        "kelurahan": "Ketintang",
                        "address": "Jl. Ketintang Baru III",
                    },
                    "top_k": 3,
                    "register": True,
                }
            ],
        },
    )

    id: ComplaintId | None = Field(None, description="Required when register is true.")
    text: ComplaintText
    created_at: IsoTime | None = Field(
        None,
        description="When it was filed (ISO 8601; without a zone it is WIB, UTC+7). "
        "Default: now. Duplicates are searched within the bundle's time window around it.",
    )
    location: Location | None = None
    top_k: TopK | None = Field(None, description="Labels per head (default ADUAN_TOP_K).")
    # "register" would shadow ABCMeta.register on the model class: stored as register_.
    register_: StrictBool = Field(
        False,
        alias="register",
        description="Also add the complaint to the duplicate index (needs id).",
    )

    @model_validator(mode="after")
    def _register_needs_id(self) -> RouteRequest:
        if self.register_ and not self.id:
            raise PydanticCustomError("id_required", "register: true needs an id")
        return self


class BatchRequest(Strict):
    """Up to ADUAN_MAX_BATCH complaints; answered in the same order."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "items": [
                        {"id": "SBY-2024-000124", "text": EXAMPLE_TEXT_2},
                        {"id": "SBY-2024-000125", "text": EXAMPLE_TEXT_3, "register": True},
                    ]
                }
            ]
        },
    )

    items: list[RouteRequest] = Field(min_length=1, description="The complaints, at least one.")


class ReviewReason(StrEnum):
    """Why a human must look at a complaint (a closed list)."""

    topic_uncertain = "topic_uncertain"  # the topic head abstained: top score under its threshold
    agency_uncertain = "agency_uncertain"  # the agency head abstained
    topic_untrained = "topic_untrained"  # the bundle's topic head was never trained
    agency_untrained = "agency_untrained"  # the bundle's agency head was never trained
    topic_missing = "topic_missing"  # the bundle has no topic head
    agency_missing = "agency_missing"  # the bundle has no agency head
    duplicate_found = "duplicate_found"  # an earlier complaint is judged the same problem


class OmitAbsent(BaseModel):
    """Leaves out fields that are None: heads that are not routed have no office details."""

    @model_serializer(mode="wrap")
    def _omit_absent(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return {k: v for k, v in handler(self).items() if v is not None}


class LabelScore(BaseModel):
    label: str = Field(examples=["Penerangan Jalan Umum"])
    score: float = Field(description="Calibrated probability.", examples=[0.87])


class OfficeScore(LabelScore, OmitAbsent):
    """A label; for a routed agency head, a concrete office with where and why."""

    label: str = Field(examples=["Dinas Perhubungan Kota Surabaya"])
    id: str | None = Field(None, description="Office id in the agency directory.")
    type: str | None = Field(None, description="Office type.", examples=["Dinas Perhubungan"])
    level: str | None = Field(
        None,
        description="national, province, city, kecamatan, kelurahan or branch.",
        examples=["city"],
    )
    region_code: str | None = Field(None, description="The office's region code.")
    region: str | None = Field(None, description="The office's region, by name.")
    type_score: float | None = Field(None, description="The type's probability.")
    why: str | None = Field(
        None,
        description="How the office was chosen for the complaint's region.",
        examples=["office of the complaint's city"],
    )


class TypeScore(BaseModel):
    label: str = Field(examples=["Dinas Perhubungan"])
    score: float


class RegionOut(BaseModel):
    code: str | None = Field(examples=["35.78.10.1002"])
    level: str | None = Field(examples=["kelurahan"])
    name: str | None = Field(None, examples=["Ploso, Kecamatan Tambaksari, Kota Surabaya"])
    source: str = Field(
        description="Which evidence decided: region_code, location, text, scope or none."
    )
    evidence: list[str]
    confidence: float
    candidates: list[str] = Field(default_factory=list)


class HeadOut(OmitAbsent):
    top: list[OfficeScore]
    abstain: bool = Field(description="True when the head is unsure (or untrained).")
    margin: float = Field(description="Top-1 minus top-2 probability.")
    types: list[TypeScore] | None = Field(
        None, description="Routed agency head only: the predicted office types."
    )
    region: RegionOut | None = Field(
        None, description="Routed agency head only: the region the offices were chosen for."
    )


class DuplicateOut(BaseModel):
    id: str = Field(examples=["SBY-2024-000098"])
    score: float = Field(description="Calibrated duplicate probability.", examples=[0.93])
    similarity: float = Field(description="Cosine of the duplicate embeddings.")
    created_at: str | None = Field(None, examples=["2024-03-01T19:02:00+07:00"])
    snippet: str = Field(
        description="The earlier complaint's text, redacted ([NIK], [TELEPON], ...) and cut.",
        examples=["Lampu PJU Jl. Ketintang Baru mati total, hp saya [TELEPON]"],
    )
    exact: bool = Field(
        description="An exact re-submission: the same text, and no location evidence "
        "(house number, RT/RW, kelurahan) that it is about another spot."
    )


class RouteResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "SBY-2024-000123",
                    "model_version": "3f2a9c1d0b7e",
                    "categories": [
                        {"label": "Penerangan Jalan Umum", "score": 0.91},
                        {"label": "Jalan Rusak", "score": 0.04},
                    ],
                    "agencies": [
                        {
                            "label": "Dinas Perhubungan Kota Surabaya",
                            "score": 0.87,
                            "id": "dinas-perhubungan-kota-surabaya",
                            "type": "Dinas Perhubungan",
                            "level": "city",
                            "region_code": "35.78",
                            "region": "Kota Surabaya",
                            "type_score": 0.87,
                            "why": "the city's office for the complaint's kelurahan",
                        },
                        {
                            "label": "Kelurahan Ketintang",
                            "score": 0.06,
                            "id": "kelurahan-ketintang",
                            "type": "Kelurahan/Desa",
                            "level": "kelurahan",
                            "region_code": "35.78.22.1004",
                            "region": "Ketintang, Kecamatan Gayungan, Kota Surabaya",
                            "type_score": 0.06,
                            "why": "office of the complaint's kelurahan",
                        },
                    ],
                    "needs_review": True,
                    "review_reasons": ["duplicate_found"],
                    "duplicates": [
                        {
                            "id": "SBY-2024-000098",
                            "score": 0.93,
                            "similarity": 0.97,
                            "created_at": "2024-03-01T19:02:00+07:00",
                            "snippet": "Lampu PJU Jl. Ketintang Baru mati, hub [TELEPON]",
                            "exact": False,
                        }
                    ],
                    "heads": {},
                    "registered": True,
                    "timing_ms": {"queue": 1.2, "classify": 18.5, "total": 24.0},
                }
            ]
        }
    )

    id: str | None
    model_version: str
    categories: list[LabelScore] = Field(description="The topic head's top labels.")
    agencies: list[OfficeScore] = Field(
        description="The agency head's top labels: concrete offices of the complaint's region "
        "(with type, level, region and why) when the bundle routes its agency head."
    )
    needs_review: bool
    review_reasons: list[ReviewReason]
    duplicates: list[DuplicateOut] = Field(description="Earlier complaints judged duplicates.")
    heads: dict[str, HeadOut] = Field(description="Every head of the bundle, as `aduan predict`.")
    registered: bool | None = Field(
        None,
        description="With register: true, whether the complaint was new to the index "
        "(false: that id was already there, and its stored record was kept). Null when not asked.",
    )
    timing_ms: dict[str, float] = Field(
        description="queue (waiting for the model), classify (encoder + heads), dedup_embed "
        "(a second encoder pass when the bundle needs one), duplicates (index search and "
        "scoring), register (index write), batch_size (complaints in the model call), "
        "total. Model steps are per micro-batch."
    )


class BatchResponse(BaseModel):
    model_version: str
    items: list[RouteResponse]


class RegisterRequest(Strict):
    """A complaint to add to the duplicate index (idempotent by id)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "id": "SBY-2024-000098",
                    "text": "Lampu PJU Jl. Ketintang Baru mati total sejak Senin malam.",
                    "created_at": "2024-03-01T19:02:00+07:00",
                    "location": {"kecamatan": "Gayungan", "kelurahan": "Ketintang"},
                }
            ]
        },
    )

    id: ComplaintId
    text: ComplaintText
    created_at: IsoTime | None = Field(None, description="ISO 8601; default: now.")
    location: Location | None = None


class RegisterResponse(BaseModel):
    id: str
    new: bool = Field(description="False when the id was already in the index (nothing changed).")
    index_size: int


class DeleteResponse(BaseModel):
    id: str
    deleted: Literal[True] = True
    index_size: int


_AT_LEAST_ONE_LABEL: Any = [
    {"required": [f], "properties": {f: {"type": "string"}}}
    for f in ("topic", "agency", "duplicate_of")
] + [{"required": ["labels"], "properties": {"labels": {"minProperties": 1}}}]


class FeedbackRequest(Strict):
    """The operator's final decision on a complaint, stored as a labelled training case."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            # at least one label
            "anyOf": _AT_LEAST_ONE_LABEL,
            "examples": [
                {
                    "id": "SBY-2024-000123",
                    "topic": "Penerangan Jalan Umum",
                    "agency": "Dinas Perhubungan Kota Surabaya",
                    "duplicate_of": "SBY-2024-000098",
                }
            ],
        },
    )

    id: ComplaintId
    topic: Label | None = Field(None, description="Final category.")
    agency: Label | None = Field(None, description="Final responsible agency.")
    duplicate_of: ComplaintId | None = Field(None, description="The earlier complaint it repeats.")
    labels: dict[Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")], Label] | None = (
        Field(None, description="Final labels of other heads, by head name.", max_length=20)
    )
    text: ComplaintText | None = Field(
        None, description="The complaint's text; default: the text stored in the index."
    )
    created_at: IsoTime | None = Field(None, description="Default: from the index.")
    location: Location | None = Field(None, description="Default: from the index.")

    @model_validator(mode="after")
    def _some_label(self) -> FeedbackRequest:
        if not (self.topic or self.agency or self.duplicate_of or self.labels):
            raise PydanticCustomError(
                "no_labels", "give at least one of topic, agency, duplicate_of, labels"
            )
        if self.duplicate_of == self.id:
            raise PydanticCustomError(
                "self_duplicate", "duplicate_of names the complaint itself; give an earlier one"
            )
        return self


class FeedbackResponse(BaseModel):
    id: str
    stored: Literal[True] = True
    text_source: Literal["request", "index"]


class ReloadRequest(Strict):
    model: Annotated[str | None, AfterValidator(check_plain)] = Field(
        None,
        max_length=4096,
        description="Bundle folder to load (default: the one being served, re-read; "
        "no control characters).",
        examples=["/srv/aduan/bundles/2024-06"],
    )


class ReloadResponse(BaseModel):
    model_version: str
    previous_version: str
    path: str
    reindexed: int | None = Field(
        description="Complaints re-embedded because the new bundle's duplicate embedding "
        "differs; null when the index was kept."
    )
    seconds: float


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Ready(BaseModel):
    status: Literal["ready", "loading", "reindexing", "failed"]
    reason: str | None = None
    model_version: str | None = None
    index_size: int | None = None


class ErrorDetail(BaseModel):
    code: str = Field(examples=["empty_text"])
    message: str = Field(examples=["text is empty or only whitespace"])
    field: str | None = Field(None, examples=["text"])
    details: list[dict[str, Any]] | None = Field(
        None, description=f"Every problem found, when more than one (at most {MAX_DETAILS})."
    )
    details_omitted: int | None = Field(
        None, description="How many problems were found beyond those listed in details."
    )


class ErrorResponse(BaseModel):
    error: ErrorDetail
