"""Published Japanese statistics the synthetic population is drawn from, embedded as data with their sources.

Every table names its source and reference date. Figures are rounded transcriptions (3 significant figures or
0.1 percentage point) of the cited tables, good for a synthetic population and for validation tolerances;
they must never be quoted as official statistics. Nothing in this module draws random numbers.
"""

from __future__ import annotations

from typing import Final

# --- Age and sex -----------------------------------------------------------------------------------------
# 総務省統計局「人口推計」令和5年(2023年)10月1日現在, 第1表 年齢(5歳階級), 男女別人口 (総人口, 千人, rounded).
# Rows: (lower age of the 5-year group, male, female); the last group is 100歳以上.
POPULATION_SOURCE: Final = "総務省統計局 人口推計 令和5年10月1日現在 第1表 (年齢5歳階級・男女別 総人口, 千人, 概数)"
POPULATION_BY_AGE_SEX: Final[tuple[tuple[int, int, int], ...]] = (
    (0, 2135, 2034),
    (5, 2496, 2376),
    (10, 2700, 2571),
    (15, 2782, 2641),
    (20, 3150, 3054),
    (25, 3210, 3124),
    (30, 3260, 3192),
    (35, 3615, 3571),
    (40, 4050, 4005),
    (45, 4700, 4650),
    (50, 4740, 4724),
    (55, 4030, 4078),
    (60, 3705, 3786),
    (65, 3689, 3879),
    (70, 4100, 4560),
    (75, 3550, 4250),
    (80, 2530, 3420),
    (85, 1460, 2520),
    (90, 540, 1390),
    (95, 110, 440),
    (100, 12, 78),
)
MAX_AGE: Final = 104  # 100歳以上 is spread over 100..104 with a falling weight

# --- Households ------------------------------------------------------------------------------------------
# 総務省統計局「令和2年国勢調査」人口等基本集計: 一般世帯の家族類型別割合 (%), and 世帯人員別一般世帯数の割合 (%).
HOUSEHOLD_SOURCE: Final = "総務省統計局 令和2年国勢調査 人口等基本集計 (一般世帯の家族類型・世帯人員, 概数)"
HOUSEHOLD_TYPE_SHARES: Final[dict[str, float]] = {
    "single": 38.0,  # 単独世帯
    "couple": 20.1,  # 夫婦のみの世帯
    "couple_children": 25.0,  # 夫婦と子供から成る世帯
    "single_parent": 9.0,  # ひとり親と子供から成る世帯
    "extended": 6.8,  # 核家族以外の世帯 (三世代世帯 4.2 を含む)
    "non_relative": 0.9,  # 非親族を含む世帯
}
HOUSEHOLD_SIZE_SHARES: Final[dict[int, float]] = {1: 38.0, 2: 28.1, 3: 16.1, 4: 12.1, 5: 4.0, 6: 1.3, 7: 0.4}
AVERAGE_HOUSEHOLD_SIZE: Final = 2.21  # 令和2年国勢調査 一般世帯の1世帯当たり人員

# --- Foreign residents -----------------------------------------------------------------------------------
# 出入国在留管理庁「在留外国人統計」令和5年(2023年)末: 総数 3,410,992 人 (総人口の2.74%).
FOREIGN_SOURCE: Final = "出入国在留管理庁 在留外国人統計 令和5年末 (国籍・地域別, 在留資格別)"
FOREIGN_NATIONAL_SHARE: Final = 0.0274
# 国籍・地域別 (人): the top ten, then the rest as その他.
NATIONALITY_COUNTS: Final[dict[str, int]] = {
    "中国": 821_838,
    "ベトナム": 565_026,
    "韓国": 410_156,
    "フィリピン": 322_046,
    "ブラジル": 211_840,
    "ネパール": 176_336,
    "インドネシア": 149_101,
    "ミャンマー": 86_546,
    "台湾": 64_663,
    "米国": 63_408,
    "その他": 540_032,
}
# 在留資格別 (人): the five largest are from the same release; the smaller ones are rounded (概数).
RESIDENCE_STATUS_COUNTS: Final[dict[str, int]] = {
    "永住者": 891_569,
    "技能実習": 404_556,
    "技術・人文知識・国際業務": 362_346,
    "留学": 340_883,
    "特別永住者": 281_218,
    "家族滞在": 266_000,
    "定住者": 217_000,
    "特定技能": 208_000,
    "日本人の配偶者等": 150_000,
    "永住者の配偶者等": 50_000,
    "特定活動": 70_000,
}

# --- 個人番号カード ------------------------------------------------------------------------------------------
# 総務省「マイナンバーカード交付状況について」令和6年12月末時点: 人口に対する保有枚数率 約75.7%.
CARD_SOURCE: Final = "総務省 マイナンバーカード交付状況 令和6年12月末 (人口に対する保有枚数率 約75.7%)"
CARD_HOLDING_RATE: Final = 0.757

# --- 支援措置 (DV・ストーカー・児童虐待等) -----------------------------------------------------------------------
# 総務省 住民基本台帳事務における支援措置の実施状況: 申出は全国で十数万件規模, i.e. about 0.1% of residents
# once accompanying family members are counted. A modelling share, not a transcription.
PROTECTIVE_SOURCE: Final = "総務省 住民基本台帳事務における支援措置 実施状況 (全国で十数万件規模; 人口の約0.1%として設定)"
PROTECTIVE_MEASURE_SHARE: Final = 0.0012
PROTECTIVE_REASONS: Final[dict[str, float]] = {"DV": 0.75, "ストーカー": 0.12, "児童虐待": 0.08, "その他": 0.05}

# --- 介護保険 -----------------------------------------------------------------------------------------------
# 厚生労働省「介護保険事業状況報告」令和4年度 年報: 要介護(要支援)認定者数の要介護状態区分別割合 (%, 概数),
# 第1号被保険者に対する認定率 約19%. Age-specific certification rates are rounded from the same report's
# 年齢階級別 認定率 so that the overall rate lands near 19%.
LTC_SOURCE: Final = "厚生労働省 介護保険事業状況報告 令和4年度年報 (要介護状態区分別 認定者割合, 認定率 約19%)"
CARE_LEVEL_SHARES: Final[dict[str, float]] = {
    "要支援1": 14.1,
    "要支援2": 13.7,
    "要介護1": 20.8,
    "要介護2": 16.7,
    "要介護3": 13.3,
    "要介護4": 12.6,
    "要介護5": 8.6,
}
CERTIFICATION_RATE_BY_AGE: Final[tuple[tuple[int, float], ...]] = (
    (65, 0.025),
    (70, 0.055),
    (75, 0.11),
    (80, 0.24),
    (85, 0.50),
    (90, 0.75),
)
LTC_OVERALL_CERTIFICATION_RATE: Final = 0.19

# --- 個人住民税 ---------------------------------------------------------------------------------------------
# 地方税法: 所得割 標準税率 10% (市町村民税6% + 道府県民税4%); 均等割 市町村民税3,000円 + 道府県民税1,000円;
# 森林環境税及び森林環境譲与税に関する法律: 国税 森林環境税 1,000円 (令和6年度から, 均等割と併せて賦課徴収);
# 租税特別措置 令和6年度 個人住民税の定額減税 (本人・同一生計配偶者・扶養親族1人につき1万円).
TAX_SOURCE: Final = "地方税法 (所得割10%, 均等割), 森林環境税法, 令和6年度 定額減税; 給与所得控除・公的年金等控除は令和2年分以降"
INCOME_LEVY_RATE: Final = 0.10
PER_CAPITA_LEVY_MUNICIPAL: Final = 3000
PER_CAPITA_LEVY_PREFECTURAL: Final = 1000
FOREST_ENVIRONMENT_TAX: Final = 1000
FLAT_REDUCTION_PER_PERSON: Final = 10_000
BASIC_DEDUCTION: Final = 430_000  # 住民税の基礎控除 (合計所得2,400万円以下)
# Income levels: 国税庁「民間給与実態統計調査」令和5年分 (平均給与 460万円; 男性 569万円, 女性 316万円) and
# 厚生労働省「厚生年金保険・国民年金事業の概況」令和4年度 (平均年金月額: 厚生年金 約14.4万円, 国民年金 約5.7万円).
INCOME_SOURCE: Final = "国税庁 民間給与実態統計調査 令和5年分; 厚生労働省 厚生年金保険・国民年金事業の概況 令和4年度"
# (lower age, employment rate male, female, median annual salary male, female) — 総務省 労働力調査 2023 就業率
# (rounded) and medians set below the survey means because the distribution is right-skewed.
EMPLOYMENT_BY_AGE: Final[tuple[tuple[int, float, float, int, int], ...]] = (
    (16, 0.15, 0.18, 600_000, 600_000),
    (20, 0.70, 0.72, 2_600_000, 2_300_000),
    (25, 0.90, 0.82, 3_700_000, 3_000_000),
    (30, 0.93, 0.78, 4_300_000, 2_700_000),
    (35, 0.94, 0.76, 4_800_000, 2_500_000),
    (40, 0.94, 0.79, 5_200_000, 2_500_000),
    (45, 0.94, 0.80, 5_500_000, 2_500_000),
    (50, 0.93, 0.78, 5_800_000, 2_400_000),
    (55, 0.92, 0.74, 5_600_000, 2_200_000),
    (60, 0.84, 0.63, 3_900_000, 1_700_000),
    (65, 0.61, 0.43, 2_500_000, 1_200_000),
    (70, 0.42, 0.26, 1_800_000, 1_000_000),
    (75, 0.17, 0.08, 1_500_000, 900_000),
)
PENSION_MEDIAN: Final[dict[str, int]] = {"M": 1_900_000, "F": 950_000}

# --- Life events ------------------------------------------------------------------------------------------
# 厚生労働省「人口動態統計」令和5年(2023) 確定数: 出生数 727,288 (粗出生率 6.0‰), 死亡数 1,575,936 (12.9‰),
# 性・年齢(5歳階級)別死亡率 (人口10万対, rounded) and 母の年齢(5歳階級)別出生率 (rounded); monthly shares of
# births and deaths (%, rounded) from the same 月別 table.
VITAL_SOURCE: Final = "厚生労働省 人口動態統計 令和5年確定数 (出生・死亡, 月別, 性・年齢別死亡率, 母の年齢別出生率)"
CRUDE_BIRTH_RATE: Final = 0.0060
CRUDE_DEATH_RATE: Final = 0.0129
DEATH_RATE_PER_100K: Final[tuple[tuple[int, int, int], ...]] = (
    (0, 45, 38),
    (5, 7, 6),
    (10, 9, 7),
    (15, 27, 15),
    (20, 45, 22),
    (25, 50, 25),
    (30, 60, 32),
    (35, 80, 45),
    (40, 120, 70),
    (45, 200, 110),
    (50, 320, 170),
    (55, 520, 250),
    (60, 820, 370),
    (65, 1350, 580),
    (70, 2150, 1000),
    (75, 3500, 1750),
    (80, 6000, 3300),
    (85, 11000, 6800),
    (90, 19000, 13500),
    (95, 31000, 25000),
    (100, 47000, 42000),
)
FERTILITY_BY_MOTHER_AGE: Final[tuple[tuple[int, float], ...]] = (
    (15, 0.002),
    (20, 0.021),
    (25, 0.066),
    (30, 0.093),
    (35, 0.058),
    (40, 0.014),
    (45, 0.0005),
)
BIRTH_MONTH_SHARES: Final = (8.2, 7.5, 8.2, 8.0, 8.4, 8.2, 8.7, 8.8, 8.6, 8.7, 8.3, 8.4)
DEATH_MONTH_SHARES: Final = (10.4, 8.6, 8.6, 8.0, 7.8, 7.3, 7.8, 8.3, 7.6, 8.0, 8.3, 9.3)
# 総務省統計局「住民基本台帳人口移動報告」2023年(令和5年)結果: 市区町村間移動者数 約525万人 (人口の約4.2%),
# 月別移動者数の割合 (%, rounded): the March–April peak of school and job starts.
MIGRATION_SOURCE: Final = "総務省統計局 住民基本台帳人口移動報告 2023年結果 (市区町村間移動者 約525万人, 月別)"
NATIONAL_MIGRATION_RATE: Final = 0.042
MOVE_MONTH_SHARES: Final = (6.6, 6.9, 14.2, 11.5, 7.2, 7.0, 7.3, 7.1, 7.6, 8.0, 7.0, 6.6)

# --- Housing ----------------------------------------------------------------------------------------------
# 総務省統計局「平成30年住宅・土地統計調査」: 共同住宅に住む世帯の割合 全国 43.6% (profiles adjust it).
HOUSING_SOURCE: Final = "総務省統計局 平成30年住宅・土地統計調査 (共同住宅 43.6%)"
NATIONAL_APARTMENT_SHARE: Final = 0.436


def single_year_weights(groups: tuple[tuple[int, int, int], ...]) -> tuple[list[float], list[float]]:
    """Spread a 5-year table evenly over single years (0..MAX_AGE); 100歳以上 falls by half each year."""
    male = [0.0] * (MAX_AGE + 1)
    female = [0.0] * (MAX_AGE + 1)
    for lower, m, f in groups:
        if lower >= 100:
            parts = [0.5**k for k in range(MAX_AGE - 99)]
            total = sum(parts)
            for k, p in enumerate(parts):
                male[100 + k] = m * p / total
                female[100 + k] = f * p / total
        else:
            for a in range(lower, lower + 5):
                male[a] = m / 5
                female[a] = f / 5
    return male, female


def lookup_by_lower(table: tuple[tuple[int, ...], ...], age: int) -> tuple[int, ...]:
    """The row of a (lower-bound, …) table that covers ``age`` (the last row covers everything above)."""
    row = table[0]
    for candidate in table:
        if age >= candidate[0]:
            row = candidate
        else:
            break
    return row
