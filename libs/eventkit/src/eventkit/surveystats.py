"""Survey statistics shared by the service that runs a survey and the one that reports it.

Written once so that both state the same numbers from the same data: AAPOR response rates,
raking (iterative proportional fitting) to a frame's margins, and proportions with a
Taylor-linearised variance, stations as strata. The definitions, in full:

- AAPOR Standard Definitions (10th ed.) with I completed, P partial, R refused, NC non-contact,
  O other, U unknown eligibility (UH + UO) and NE not eligible:
  RR1 = I / ((I + P) + (R + NC + O) + U)
  RR3 = I / ((I + P) + (R + NC + O) + e·U), with e = (I + P + R + NC + O) / (I + P + R +
  NC + O + NE), the eligibility rate among cases whose eligibility was resolved.
- Weights: each station's respondents are raked to the station frame's counts per category
  of each dimension, so they sum to the frame size. A dimension with a category that has
  people in the frame but no respondent cannot be matched and is left out (reported as
  such); with one dimension raking is post-stratification.
- Proportions: p̂ = Σ wᵢyᵢ / Σ wᵢ over respondents who answered the item. Variance by Taylor
  linearisation of the calibrated ratio, stations as strata, with-replacement (no finite
  population correction, so slightly conservative): zᵢ = wᵢeᵢ with eᵢ the residual of yᵢ
  from the weighted least-squares fit on the station's raking dummies (intercept only
  when unweighted), v(p̂) = Σₕ nₕ/(nₕ − 1) Σᵢ∈ₕ (zᵢ − z̄ₕ)² / (Σ wᵢ)². Interval:
  p̂ ± z·√v, clipped to [0, 1].

Respondents are put in a canonical order (by stratum, then answers) before any arithmetic:
the weights do not depend on the order mathematically, and this way not in the last bit
either, whether the rows come from sampled units or from counts per cell.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from statistics import NormalDist
from typing import Any

import numpy as np
import numpy.typing as npt

Vector = npt.NDArray[np.float64]
# Which answers of which item count as "yes", per figure: {figure: (item, answers)}.
Figures = Mapping[str, tuple[str, frozenset[str]]]

SMALL_CELL = 5  # fewer respondents are flagged (suppressed outside the bureau)
WEIGHTING = "raking"
# The dispositions that make a respondent (answers are counted and weighted).
INTERVIEWS = frozenset({"completed", "partial"})


def z_value(confidence: float) -> float:
    """The two-sided normal quantile: 1.959964 for 95 %."""
    return NormalDist().inv_cdf(1 - (1 - confidence) / 2)


# ---- AAPOR response rates -----------------------------------------------------------------


@dataclass(frozen=True)
class Dispositions:
    completed: int = 0  # I
    partial: int = 0  # P
    refused: int = 0  # R
    non_contact: int = 0  # NC
    other: int = 0  # O
    unknown_eligibility: int = 0  # UH + UO
    ineligible: int = 0  # NE

    @classmethod
    def of(cls, outcomes: Iterable[str]) -> Dispositions:
        """Counts of final dispositions (each a field name other than `other`)."""
        counts = Counter(str(o) for o in outcomes)
        unknown = set(counts) - set(cls.__dataclass_fields__) | ({"other"} & set(counts))
        if unknown:
            raise ValueError(f"not a disposition: {sorted(unknown)}")
        return cls(**counts)

    def __add__(self, other: Dispositions) -> Dispositions:
        return Dispositions(**{k: getattr(self, k) + getattr(other, k) for k in asdict(self)})


@dataclass(frozen=True)
class ResponseRates:
    rr1: float | None
    rr3: float | None
    e: float | None


def aapor(d: Dispositions) -> ResponseRates:
    """AAPOR RR1 and RR3, with e the eligibility rate among resolved cases."""
    eligible = d.completed + d.partial + d.refused + d.non_contact + d.other
    resolved = eligible + d.ineligible
    e = eligible / resolved if resolved else None
    rr1_base = eligible + d.unknown_eligibility
    rr1 = d.completed / rr1_base if rr1_base else None
    rr3 = None
    if e is not None:
        rr3_base = eligible + e * d.unknown_eligibility
        rr3 = d.completed / rr3_base if rr3_base else None
    return ResponseRates(rr1, rr3, e)


# ---- weights ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Weights:
    w: Vector
    design: Vector  # the calibration dummies (intercept first), for the variance
    dimensions: tuple[str, ...]
    dropped: tuple[str, ...]
    converged: bool


def _dummies(rows: Sequence[Mapping[str, str]], dims: Sequence[str]) -> Vector:
    columns = [np.ones(len(rows))]
    for dim in dims:
        categories = sorted({r[dim] for r in rows})
        columns += [np.array([r[dim] == c for r in rows], dtype=float) for c in categories[1:]]
    return np.column_stack(columns)


def rake(
    rows: Sequence[Mapping[str, str]],
    population: Mapping[str, Mapping[str, int]],
    *,
    tolerance: float = 1e-10,
    max_iterations: int = 500,
) -> Weights:
    """Weights for `rows` (respondents' strata) whose sums match the population margins."""
    n = len(rows)
    total = sum(next(iter(population.values())).values()) if population else n
    usable: list[str] = []
    dropped: list[str] = []
    for dim, counts in population.items():
        seen = {r[dim] for r in rows}
        # Every category with people in it needs a respondent to carry its weight.
        (usable if all(c in seen for c, k in counts.items() if k > 0) else dropped).append(dim)
    w = np.full(n, total / n if n else 0.0)
    converged = True
    if n and usable:
        masks = {
            (dim, c): np.array([r[dim] == c for r in rows])
            for dim in usable
            for c in population[dim]
        }
        converged = False
        for _ in range(max_iterations):
            for dim in usable:
                for c, target in population[dim].items():
                    mask = masks[(dim, c)]
                    current = w[mask].sum()
                    if current > 0:
                        w[mask] *= target / current
            gap = max(
                abs(w[masks[(dim, c)]].sum() - target)
                for dim in usable
                for c, target in population[dim].items()
            )
            if gap <= tolerance * total:
                converged = True
                break
    return Weights(w, _dummies(rows, usable), tuple(usable), tuple(dropped), converged)


# ---- proportions --------------------------------------------------------------------------


@dataclass(frozen=True)
class Group:
    """One station's respondents to an item: 1/0 answers, weights, calibration dummies."""

    y: Vector
    w: Vector
    design: Vector


@dataclass(frozen=True)
class Proportion:
    p: float | None
    se: float | None
    low: float | None
    high: float | None
    n: int

    def as_dict(self) -> dict[str, Any]:
        return {
            k: (round(v, 6) if isinstance(v, float) else v) for k, v in asdict(self).items()
        } | {"small_cell": self.n < SMALL_CELL}


def residuals(y: Vector, w: Vector, design: Vector) -> Vector:
    """y minus its weighted least-squares fit on the calibration dummies."""
    root = np.sqrt(w)
    beta, *_ = np.linalg.lstsq(design * root[:, None], y * root, rcond=None)
    fitted: Vector = design @ beta
    return y - fitted


def proportion(groups: Sequence[Group], confidence: float = 0.95) -> Proportion:
    """The weighted proportion over all groups with its linearised variance and interval."""
    groups = [g for g in groups if len(g.y)]
    n = sum(len(g.y) for g in groups)
    if n == 0:
        return Proportion(None, None, None, None, 0)
    total = float(sum(g.w.sum() for g in groups))
    p = float(sum((g.w * g.y).sum() for g in groups)) / total
    variance = 0.0
    for g in groups:
        size = len(g.y)
        if size < 2:
            continue  # one respondent says nothing about the spread
        z = g.w * residuals(g.y, g.w, g.design)
        variance += size / (size - 1) * float(((z - z.mean()) ** 2).sum())
    se = (variance**0.5) / total
    half = z_value(confidence) * se
    return Proportion(p, se, max(0.0, p - half), min(1.0, p + half), n)


# ---- a wave's estimates -------------------------------------------------------------------


@dataclass(frozen=True)
class Respondent:
    """One interviewed unit: its weighting cell and its coded answers (no identity)."""

    strata: Mapping[str, str]
    answers: Mapping[str, str]


@dataclass(frozen=True)
class StationSample:
    """What one station's estimates need: its final dispositions, its respondents and its
    frame's margins ({dimension: {category: people}})."""

    station: str
    dispositions: Dispositions
    respondents: Sequence[Respondent]
    margins: Mapping[str, Mapping[str, int]]
    extra: Mapping[str, Any] = field(default_factory=dict)


def canonical(respondents: Iterable[Respondent], items: Sequence[str]) -> list[Respondent]:
    """Respondents in an order that depends on their cells alone (stratum, then the answers
    to `items`; see the module's note): rows equal in both are interchangeable."""
    return sorted(
        respondents,
        key=lambda r: (sorted(r.strata.items()), [r.answers.get(i, "") for i in items]),
    )


def _margins(
    margins: Mapping[str, Mapping[str, int]], strata: Sequence[str]
) -> dict[str, dict[str, int]]:
    """The dimensions in the order of `strata`, categories sorted: raking visits them in
    this order, and a margin read back from a JSON column (jsonb reorders keys) must rake
    exactly the same."""
    return {dim: dict(sorted(margins[dim].items())) for dim in strata if dim in margins}


def _group(
    rows: Sequence[Respondent], weights: Weights, figure: tuple[str, frozenset[str]], weighted: bool
) -> Group | None:
    item, yes = figure
    keep = [i for i, r in enumerate(rows) if item in r.answers]
    if not keep:
        return None
    y = np.array([rows[i].answers[item] in yes for i in keep], dtype=float)
    if weighted:
        return Group(y, weights.w[keep], weights.design[keep])
    return Group(y, np.ones(len(keep)), np.ones((len(keep), 1)))


def _block(
    unit: str,
    level: str,
    dispositions: Dispositions,
    groups: Mapping[str, Mapping[str, list[Group]]],
    respondents: int,
    confidence: float,
    extra: Mapping[str, Any],
) -> dict[str, Any]:
    rates = aapor(dispositions)
    figures = {
        figure: {
            "unweighted": proportion(groups["unweighted"][figure], confidence).as_dict(),
            "weighted": proportion(groups["weighted"][figure], confidence).as_dict(),
        }
        for figure in groups["weighted"]
    }
    return {
        "unit": unit,
        "level": level,
        "respondents": respondents,
        "dispositions": asdict(dispositions),
        "response_rates": {k: None if v is None else round(v, 6) for k, v in asdict(rates).items()},
        **figures,
        **extra,
    }


def estimates(
    stations: Sequence[StationSample],
    figures: Figures,
    strata: Sequence[str],
    *,
    unit: str,
    level: str,
    confidence: float = 0.95,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Per station and pooled (stations as strata, `unit` at `level`): dispositions,
    RR1/RR3, each figure unweighted and weighted with its interval and n. `strata`: the
    weighting dimensions, in the order they are raked and reported."""
    blocks = []
    pooled_disp = Dispositions()
    pooled: dict[str, dict[str, list[Group]]] = {
        "weighted": {f: [] for f in figures},
        "unweighted": {f: [] for f in figures},
    }
    pooled_respondents = 0
    for s in sorted(stations, key=lambda s: s.station):
        rows = canonical(s.respondents, [item for item, _yes in figures.values()])
        weights = rake([r.strata for r in rows], _margins(s.margins, strata))
        groups: dict[str, dict[str, list[Group]]] = {"weighted": {}, "unweighted": {}}
        for kind in groups:
            for name, figure in figures.items():
                g = _group(rows, weights, figure, kind == "weighted")
                groups[kind][name] = [g] if g is not None else []
                pooled[kind][name] += groups[kind][name]
        weighting = {
            "method": WEIGHTING,
            "dimensions": list(weights.dimensions),
            "dropped": list(weights.dropped),
            "converged": weights.converged,
        }
        blocks.append(
            _block(
                s.station,
                "station",
                s.dispositions,
                groups,
                len(rows),
                confidence,
                {**s.extra, "weighting": weighting},
            )
        )
        pooled_disp += s.dispositions
        pooled_respondents += len(rows)
    # Unweighted pooled figures take the respondents as one sample (descriptive only).
    one: dict[str, list[Group]] = {}
    for name, gs in pooled["unweighted"].items():
        size = sum(len(g.y) for g in gs)
        one[name] = (
            [Group(np.concatenate([g.y for g in gs]), np.ones(size), np.ones((size, 1)))]
            if gs
            else []
        )
    pooled["unweighted"] = one
    return {
        "stations": blocks,
        "pooled": _block(
            unit, level, pooled_disp, pooled, pooled_respondents, confidence, extra or {}
        ),
    }
