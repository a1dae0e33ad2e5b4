"""Survey estimates: AAPOR response rates, raking to the frame's margins, proportions with CIs.

Definitions (written once here; services/visits/README.md repeats them for readers):

- AAPOR Standard Definitions (10th ed.) with I completed, P partial, R refused, NC non-contact,
  O other (none recorded here), U unknown eligibility (UH + UO) and NE not eligible:
  RR1 = I / ((I + P) + (R + NC + O) + U)
  RR3 = I / ((I + P) + (R + NC + O) + e·U), with e = (I + P + R + NC + O) / (I + P + R +
  NC + O + NE), the eligibility rate among cases whose eligibility was resolved. A sampled
  unit never attempted is U; a unit whose person opted out is R.
- Weights: each station's respondents (completed and partial interviews) are raked
  (iterative proportional fitting) to the station frame's counts by age band, sex and
  residence, so they sum to the frame size. A dimension with a category that has people in
  the frame but no respondent cannot be matched and is left out (reported as such); with
  one dimension raking is post-stratification.
- Proportions: p̂ = Σ wᵢyᵢ / Σ wᵢ over respondents who answered the item. Variance by Taylor
  linearisation of the calibrated ratio, stations as strata, with-replacement (no finite
  population correction, so slightly conservative): zᵢ = wᵢeᵢ with eᵢ the residual of yᵢ
  from the weighted least-squares fit on the station's raking dummies (intercept only
  when unweighted), v(p̂) = Σₕ nₕ/(nₕ − 1) Σᵢ∈ₕ (zᵢ − z̄ₕ)² / (Σ wᵢ)². For one station
  unweighted this is p̂(1 − p̂)/(n − 1); post-stratified it is n/(n − 1)·Σₕ Nₕ²p̂ₕ(1 −
  p̂ₕ)/nₕ / N². Interval: p̂ ± z·√v, clipped to [0, 1].
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from jingmin_visits.domain.survey import (
    INTERVIEWS,
    STRATA,
    Outcome,
    SampledUnit,
    SurveyWave,
    z_value,
)

Vector = npt.NDArray[np.float64]

# The two headline figures (DOMAIN §4): which answers count as "yes".
FIGURES: dict[str, tuple[str, frozenset[str]]] = {
    "satisfaction": ("satisfaction", frozenset({"satisfied", "basically_satisfied"})),
    "security": ("security", frozenset({"safe", "basically_safe"})),
}
SMALL_CELL = 5  # DOMAIN §5: fewer respondents are flagged (suppressed outside the bureau)
WEIGHTING = "raking"


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
    def of(cls, outcomes: Iterable[Outcome]) -> Dispositions:
        counts = Counter(Outcome(o).value for o in outcomes)
        return cls(**{k: counts.get(k, 0) for k in cls.__dataclass_fields__ if k != "other"})

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


# ---- the wave's estimates -----------------------------------------------------------------


def _groups(
    units: Sequence[SampledUnit], weights: Weights, figure: str, weighted: bool
) -> Group | None:
    item, yes = FIGURES[figure]
    keep = [i for i, u in enumerate(units) if item in u.answers]
    if not keep:
        return None
    y = np.array([units[i].answers[item] in yes for i in keep], dtype=float)
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
    figures = {}
    for figure in FIGURES:
        figures[figure] = {
            "unweighted": proportion(groups["unweighted"][figure], confidence).as_dict(),
            "weighted": proportion(groups["weighted"][figure], confidence).as_dict(),
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


def wave_estimates(wave: SurveyWave) -> dict[str, Any]:
    """Per station and for the county: dispositions, RR1/RR3, both figures with CIs."""
    stations = []
    county_disp = Dispositions()
    county: dict[str, dict[str, list[Group]]] = {
        "weighted": {f: [] for f in FIGURES},
        "unweighted": {f: [] for f in FIGURES},
    }
    county_respondents = 0
    for station in sorted(wave.draws):
        units = [u for u in wave.units.values() if u.station == station]
        disp = Dispositions.of(u.disposition for u in units)
        respondents = [u for u in units if u.disposition in INTERVIEWS]
        weights = rake([u.strata for u in respondents], wave.frame_margins[station])
        groups: dict[str, dict[str, list[Group]]] = {"weighted": {}, "unweighted": {}}
        for kind in groups:
            for figure in FIGURES:
                g = _groups(respondents, weights, figure, kind == "weighted")
                groups[kind][figure] = [g] if g is not None else []
                county[kind][figure] += groups[kind][figure]
        draw = wave.draws[station]
        stations.append(
            _block(
                station,
                "station",
                disp,
                groups,
                len(respondents),
                wave.confidence,
                {
                    "frame_size": draw.frame_size,
                    "sample_size": draw.sample_size,
                    "weighting": {
                        "method": WEIGHTING,
                        "dimensions": list(weights.dimensions),
                        "dropped": list(weights.dropped),
                        "converged": weights.converged,
                    },
                },
            )
        )
        county_disp += disp
        county_respondents += len(respondents)
    # Unweighted county figures pool the respondents as one sample (descriptive only).
    pooled = {
        f: [
            Group(
                np.concatenate([g.y for g in gs]),
                np.ones(sum(len(g.y) for g in gs)),
                np.ones((sum(len(g.y) for g in gs), 1)),
            )
        ]
        if gs
        else []
        for f, gs in county["unweighted"].items()
    }
    county["unweighted"] = pooled
    return {
        "wave_id": wave.wave_id,
        "bureau": wave.bureau,
        "confidence": wave.confidence,
        "weighting": WEIGHTING,
        "strata": list(STRATA),
        "stations": stations,
        "county": _block(
            wave.bureau,
            "county",
            county_disp,
            county,
            county_respondents,
            wave.confidence,
            {
                "frame_size": sum(d.frame_size for d in wave.draws.values()),
                "sample_size": sum(d.sample_size for d in wave.draws.values()),
            },
        ),
    }
