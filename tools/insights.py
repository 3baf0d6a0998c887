"""Insight tools (additions to the Public API): what an audience's size did over time, how audiences
overlap, and what its members and its filters are made of, read from what runs keep."""

from typing import Annotated, Any, Literal, Optional

from pydantic import AwareDatetime, BaseModel, Field

from backend.clock import iso_ms
from store.db.errors import InputValidation
from store.db.store import Store
from store.insights import backtest, breakdown, overlap, size_history
from tools.models import AudienceDefinitionInput, AudienceType, Output, SpaceId, resource_id
from tools.registry import read

Granularity = Annotated[Literal["HOUR", "DAY"], Field(description="Bucket width, in UTC.")]
Moment = Annotated[AwareDatetime, Field(description="ISO-8601 with a time zone, e.g. 2026-11-01T00:00:00Z.")]


class SizeBucket(Output):
    startTime: str
    size: int = Field(description="Members (or, for a computed trait, profiles with a value) at the bucket's end.")
    entered: int
    exited: int


class RunMark(Output):
    id: str
    reason: str = Field(description="initial, cadence, sweep, schedule, forced or realtime.")
    status: str
    startedAt: str
    size: int
    entered: int
    exited: int


class DefinitionChangeMark(Output):
    changedAt: str
    query: str = Field(description="The definition from then on (the first one when the audience was created).")


class SizeHistory(Output):
    id: str
    granularity: str
    startTime: str
    endTime: str
    buckets: list[SizeBucket]
    definitionChanges: list[DefinitionChangeMark]
    runs: list[RunMark] = Field(description="Runs started in the range, oldest first (the newest 200).")
    runsTruncated: bool


class SizeHistoryOutput(BaseModel):
    sizeHistory: SizeHistory


class OverlapAudience(Output):
    id: str
    name: str
    size: int


class OverlapPair(Output):
    audienceIds: list[str]
    intersection: int
    shareOfFirst: float = Field(description="The intersection over the first audience's size (0 when empty).")
    shareOfSecond: float


class ShareInOther(Output):
    audienceId: str
    members: int
    share: float


class BaseShares(Output):
    audienceId: str
    shares: list[ShareInOther] = Field(description="Of this audience's members, how many (and what share) are "
                                                   "in each other audience.")


class Overlap(Output):
    audiences: list[OverlapAudience]
    pairs: list[OverlapPair]
    unionSize: int
    base: BaseShares


class OverlapOutput(BaseModel):
    overlap: Overlap


class ValueCount(Output):
    value: Any
    count: int


class ValueBin(Output):
    low: float
    high: float
    count: int


class BlockSize(Output):
    query: str
    size: int


class Breakdown(Output):
    id: str
    members: int
    withValue: int = Field(description="Members with the trait, or with an identifier of the type.")
    values: list[ValueCount] = Field(description="At most 20, most frequent first.")
    bins: list[ValueBin] = Field(description="Instead, for over 20 distinct numbers: 10 equal bins.")
    operator: Optional[str] = Field(None, description="AND or OR joining the definition's top-level blocks.")
    blocks: list[BlockSize]


class BreakdownOutput(BaseModel):
    breakdown: Breakdown


class BacktestDay(Output):
    day: str = Field(description="yyyy-mm-dd (UTC).")
    asOf: str = Field(description="The moment computed: the day's last millisecond, or endTime on its day.")
    size: int


class BacktestMember(Output):
    id: str
    externalIds: list[dict[str, str]]


class Backtest(Output):
    days: list[BacktestDay]
    members: list[BacktestMember] = Field(description="Up to 100 members on the last day.")


class BacktestOutput(BaseModel):
    backtest: Backtest


def get_audience_size_history(
    store: Store,
    spaceId: SpaceId,
    id: Annotated[str, resource_id("Audience id (aud_…) or computed trait id (tra_…).")],
    startTime: Moment,
    endTime: Moment,
    granularity: Granularity = "DAY",
    splitGroup: Annotated[Optional[str], Field(None, description="Only this group of the audience's split.")] = None,
) -> SizeHistoryOutput:
    """(Not in the Public API.) An audience's or computed trait's size over time: per HOUR or DAY
    bucket (UTC, at most 2,000), the size at its end and how many entered and exited, with the
    definitions set and the runs started in the range. A computed trait's size counts profiles with a
    value; a changed value is one exit and one entry."""
    found = size_history.size_history(store, spaceId, id, startTime, endTime, granularity, splitGroup)
    return SizeHistoryOutput(sizeHistory=SizeHistory(
        id=id, granularity=found.granularity, startTime=iso_ms(found.start_ms), endTime=iso_ms(found.end_ms),
        buckets=[SizeBucket(startTime=iso_ms(b.start_ms), size=b.size, entered=b.entered, exited=b.exited)
                 for b in found.buckets],
        definitionChanges=[DefinitionChangeMark(changedAt=iso_ms(c.changed_at_ms), query=c.query)
                           for c in found.changes],
        runs=[RunMark(id=r.id, reason=r.reason, status=r.status, startedAt=iso_ms(r.started_at_ms), size=r.size,
                      entered=r.entered, exited=r.exited) for r in found.runs],
        runsTruncated=found.runs_truncated))


def get_audience_overlap(
    store: Store,
    spaceId: SpaceId,
    audienceIds: Annotated[list[str], Field(min_length=2, max_length=10, description="2 to 10 audience ids (aud_…).")],
    baseAudienceId: Annotated[Optional[str], Field(
        None, description="Whose members' shares in the others to give (default the first).")] = None,
    splitGroups: Annotated[Optional[dict[str, str]], Field(
        None, description="audience id -> one group of its split: count only that group's members.")] = None,
) -> OverlapOutput:
    """(Not in the Public API.) How 2 to 10 audiences' current members overlap: sizes, every pair's
    intersection and its share of either, the union, and one audience's members in each other one."""
    base = baseAudienceId or audienceIds[0]
    if base not in audienceIds:
        raise InputValidation("baseAudienceId must be one of audienceIds.", field="baseAudienceId")
    found = overlap.overlap(store, spaceId, audienceIds, splitGroups)
    between = {frozenset((pair.first, pair.second)): pair.intersection for pair in found.pairs}
    return OverlapOutput(overlap=Overlap(
        audiences=[OverlapAudience(id=a, name=found.names[a], size=size) for a, size in found.sizes.items()],
        pairs=[OverlapPair(audienceIds=[p.first, p.second], intersection=p.intersection,
                           shareOfFirst=_share(p.intersection, found.sizes[p.first]),
                           shareOfSecond=_share(p.intersection, found.sizes[p.second])) for p in found.pairs],
        unionSize=found.union,
        base=BaseShares(audienceId=base, shares=[
            ShareInOther(audienceId=other, members=between[frozenset((base, other))],
                         share=_share(between[frozenset((base, other))], found.sizes[base]))
            for other in audienceIds if other != base])))


def get_audience_breakdown(
    store: Store,
    spaceId: SpaceId,
    id: Annotated[str, resource_id("Audience id (aud_…).")],
    traitKey: Annotated[Optional[str], Field(None, description="A trait whose values to count among members.")] = None,
    identifierType: Annotated[Optional[str], Field(
        None, description="Or an identifier type (email, user_id, …) whose values to count.")] = None,
) -> BreakdownOutput:
    """(Not in the Public API.) An audience's current members broken down by one trait's values (or
    one identifier type's): the most frequent values, or bins for many numbers; and, when the
    definition's top level joins blocks with AND or OR, each block's size alone."""
    found = breakdown.breakdown(store, spaceId, id, trait_key=traitKey, identifier_type=identifierType)
    return BreakdownOutput(breakdown=Breakdown(
        id=id, members=found.members, withValue=found.with_value,
        values=[ValueCount(value=value, count=count) for value, count in found.values],
        bins=[ValueBin(low=b.low, high=b.high, count=b.count) for b in found.bins],
        operator=found.operator, blocks=[BlockSize(query=b.query, size=b.size) for b in found.blocks]))


def backtest_audience(
    store: Store,
    spaceId: SpaceId,
    audienceType: Annotated[AudienceType, Field(description="USERS or ACCOUNTS (entity() conditions have no past).")],
    definition: Annotated[AudienceDefinitionInput, Field(description="As for create_audience; nothing is saved.")],
    startTime: Moment,
    endTime: Moment,
) -> BacktestOutput:
    """(Not in the Public API.) The size a definition, saved nowhere, would have had at the end of
    each UTC day from startTime to endTime (at most 90, none future), over the events timestamped
    until then (windows anchored there), and up to 100 members on the last day. Traits and identity
    merges keep no history: they are read as now."""
    found = backtest.backtest(store, spaceId, audience_type=audienceType, query=definition.query,
                              start=startTime, end=endTime)
    return BacktestOutput(backtest=Backtest(
        days=[BacktestDay(day=d.day, asOf=iso_ms(d.as_of_ms), size=d.size) for d in found.days],
        members=[BacktestMember(**member) for member in found.members]))


def _share(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0


TOOLS = [
    read("get_audience_size_history", "Get audience size history", get_audience_size_history),
    read("get_audience_overlap", "Get audience overlap", get_audience_overlap),
    read("get_audience_breakdown", "Get audience breakdown", get_audience_breakdown),
    read("backtest_audience", "Backtest audience", backtest_audience),
]
