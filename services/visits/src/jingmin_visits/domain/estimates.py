"""Survey estimates: AAPOR response rates, raking to the frame's margins, proportions with CIs.

The arithmetic is `eventkit.surveystats`, shared with the metrics service so that both state
the same numbers for a wave; this module turns a wave into its inputs. Definitions
(services/visits/README.md repeats them for readers):

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

from typing import Any

from eventkit.surveystats import (
    SMALL_CELL,
    WEIGHTING,
    Dispositions,
    Group,
    Proportion,
    Respondent,
    ResponseRates,
    StationSample,
    Weights,
    aapor,
    estimates,
    proportion,
    rake,
    residuals,
)

from jingmin_visits.domain.survey import INTERVIEWS, STRATA, SurveyWave

__all__ = [
    "FIGURES",
    "SMALL_CELL",
    "WEIGHTING",
    "Dispositions",
    "Group",
    "Proportion",
    "ResponseRates",
    "Weights",
    "aapor",
    "proportion",
    "rake",
    "residuals",
    "wave_estimates",
]

# The two headline figures (DOMAIN §4): which answers count as "yes".
FIGURES: dict[str, tuple[str, frozenset[str]]] = {
    "satisfaction": ("satisfaction", frozenset({"satisfied", "basically_satisfied"})),
    "security": ("security", frozenset({"safe", "basically_safe"})),
}


def wave_estimates(wave: SurveyWave) -> dict[str, Any]:
    """Per station and for the county: dispositions, RR1/RR3, both figures with CIs.

    The arithmetic is `eventkit.surveystats.estimates`, which the metrics service applies to
    the published events' cells: both state the same numbers for the same wave.
    """
    stations = []
    for station in sorted(wave.draws):
        units = [u for u in wave.units.values() if u.station == station]
        draw = wave.draws[station]
        stations.append(
            StationSample(
                station,
                Dispositions.of(u.disposition for u in units),
                [Respondent(u.strata, u.answers) for u in units if u.disposition in INTERVIEWS],
                wave.frame_margins[station],
                {"frame_size": draw.frame_size, "sample_size": draw.sample_size},
            )
        )
    result = estimates(
        stations,
        FIGURES,
        list(STRATA),
        unit=wave.bureau,
        level="county",
        confidence=wave.confidence,
        extra={
            "frame_size": sum(d.frame_size for d in wave.draws.values()),
            "sample_size": sum(d.sample_size for d in wave.draws.values()),
        },
    )
    return {
        "wave_id": wave.wave_id,
        "bureau": wave.bureau,
        "confidence": wave.confidence,
        "weighting": WEIGHTING,
        "strata": list(STRATA),
        "stations": result["stations"],
        "county": result["pooled"],
    }
