"""Names with consistent readings: Japanese names from Faker ja_JP pairs, foreign residents' names from small lists.

Japanese names come only from Faker's kanji/kana pairs (`last_name_pair`, `first_name_male_pair`,
`first_name_female_pair`), so the 氏名 and its ふりがな always belong together. Foreign residents are registered
under the name on their 在留カード (alphabet, or kanji for Chinese, Taiwanese and Korean names) with a katakana
reading; 特別永住者 often also register a Japanese 通称. This module must never combine a kanji name with a
reading that was not made for it.
"""

from __future__ import annotations

import random

from faker import Faker

__all__ = ["OTHER_NATIONALITIES", "ForeignName", "JapaneseNames", "concrete_nationality", "foreign_family", "foreign_name"]

Pair = tuple[str, str]
ForeignName = tuple[str, str, str, str]  # family, given, family kana, given kana


class JapaneseNames:
    """Faker ja_JP seeded once per run; every call goes through Faker's own pair methods."""

    def __init__(self, seed: int) -> None:
        self._faker = Faker("ja_JP")
        self._faker.seed_instance(seed)
        # Bound once: the Faker proxy's attribute lookup costs more than the call itself at a million people.
        self._last = self._faker.last_name_pair
        self._male = self._faker.first_name_male_pair
        self._female = self._faker.first_name_female_pair

    def surname(self) -> Pair:
        kanji, kana, _romaji = self._last()
        return kanji, kana

    def given(self, sex: str) -> Pair:
        pair = self._male() if sex == "M" else self._female()
        return pair[0], pair[1]


# Romanised or kanji names as they appear on a 在留カード, with the katakana reading a 市区町村 records.
_VIETNAMESE_FAMILY = (("NGUYEN", "グエン"), ("TRAN", "チャン"), ("LE", "レ"), ("PHAM", "ファム"), ("HOANG", "ホアン"),
                      ("VU", "ヴー"), ("DANG", "ダン"), ("BUI", "ブイ"), ("DO", "ドー"), ("NGO", "ゴー"))
_VIETNAMESE_GIVEN_M = (("VAN NAM", "ヴァン ナム"), ("DUC ANH", "ドゥック アイン"), ("MINH TUAN", "ミン トゥアン"),
                       ("QUANG HUY", "クアン フイ"), ("VAN HUNG", "ヴァン フン"), ("THANH LONG", "タイン ロン"))
_VIETNAMESE_GIVEN_F = (("THI LAN", "ティ ラン"), ("THI HUONG", "ティ フオン"), ("THU TRANG", "トゥー チャン"),
                       ("NGOC ANH", "ゴック アイン"), ("THI MAI", "ティ マイ"), ("THANH HA", "タイン ハー"))
_CHINESE_FAMILY = (("王", "ワン"), ("李", "リ"), ("張", "チャン"), ("劉", "リュウ"), ("陳", "チン"), ("楊", "ヤン"),
                   ("黄", "ホアン"), ("趙", "チョウ"), ("周", "シュウ"), ("呉", "ゴ"))
_CHINESE_GIVEN_M = (("偉", "ウェイ"), ("強", "チャン"), ("磊", "レイ"), ("軍", "ジュン"), ("洋", "ヤン"), ("勇", "ヨン"))
_CHINESE_GIVEN_F = (("芳", "ファン"), ("娜", "ナー"), ("静", "ジン"), ("麗", "リー"), ("敏", "ミン"), ("艶", "イェン"))
_KOREAN_FAMILY = (("金", "キム"), ("李", "イ"), ("朴", "パク"), ("崔", "チェ"), ("鄭", "チョン"), ("姜", "カン"),
                  ("趙", "チョ"), ("尹", "ユン"))
_KOREAN_GIVEN_M = (("民俊", "ミンジュン"), ("成浩", "ソンホ"), ("英洙", "ヨンス"), ("東勲", "ドンフン"), ("在賢", "ジェヒョン"))
_KOREAN_GIVEN_F = (("美英", "ミヨン"), ("恩珠", "ウンジュ"), ("智恩", "ジウン"), ("秀賢", "スヒョン"), ("英姫", "ヨンヒ"))
_FILIPINO_FAMILY = (("SANTOS", "サントス"), ("REYES", "レイエス"), ("CRUZ", "クルス"), ("BAUTISTA", "バウティスタ"),
                    ("GARCIA", "ガルシア"), ("MENDOZA", "メンドーサ"))
_FILIPINO_GIVEN_M = (("JOSE", "ホセ"), ("MARK ANTHONY", "マーク アンソニー"), ("JOHN PAUL", "ジョン ポール"),
                     ("RAMON", "ラモン"))
_FILIPINO_GIVEN_F = (("MARIA CRISTINA", "マリア クリスティーナ"), ("JOCELYN", "ジョセリン"), ("MARICEL", "マリセル"),
                     ("ROSALIE", "ロザリー"))
_BRAZILIAN_FAMILY = (("SILVA", "シルバ"), ("SANTOS", "サントス"), ("OLIVEIRA", "オリベイラ"), ("SOUZA", "ソウザ"),
                     ("NAKAMURA", "ナカムラ"), ("HIGA", "ヒガ"))
_BRAZILIAN_GIVEN_M = (("LUCAS", "ルーカス"), ("RAFAEL", "ハファエル"), ("CARLOS EDUARDO", "カルロス エドゥアルド"),
                      ("MARCOS", "マルコス"))
_BRAZILIAN_GIVEN_F = (("ANA PAULA", "アナ パウラ"), ("JULIANA", "ジュリアナ"), ("FERNANDA", "フェルナンダ"),
                      ("MARIANA", "マリアナ"))
_NEPALI_FAMILY = (("SHRESTHA", "シュレスタ"), ("GURUNG", "グルン"), ("TAMANG", "タマン"), ("RAI", "ライ"),
                  ("THAPA", "タパ"), ("MAGAR", "マガル"))
_NEPALI_GIVEN_M = (("RAM", "ラム"), ("BIKASH", "ビカシュ"), ("SANJAY", "サンジャイ"), ("PRAKASH", "プラカシュ"))
_NEPALI_GIVEN_F = (("SITA", "シタ"), ("SABITA", "サビタ"), ("ANITA", "アニタ"), ("PUJA", "プジャ"))
_INDONESIAN_FAMILY = (("", ""),)  # many Indonesians have a single name; the 在留カード then shows it alone
_INDONESIAN_GIVEN_M = (("AHMAD FAUZI", "アフマド ファウジ"), ("BUDI SANTOSO", "ブディ サントソ"),
                       ("RIZKY PRATAMA", "リズキー プラタマ"), ("AGUS SETIAWAN", "アグス セティアワン"))
_INDONESIAN_GIVEN_F = (("SITI NURHALIZA", "シティ ヌルハリザ"), ("DEWI LESTARI", "デウィ レスタリ"),
                       ("RINA WATI", "リナ ワティ"), ("PUTRI AYU", "プトゥリ アユ"))
_MYANMAR_FAMILY = (("", ""),)  # Myanmar names have no family name
_MYANMAR_GIVEN_M = (("AUNG KYAW", "アウン チョー"), ("KYAW ZIN", "チョー ジン"), ("MIN THU", "ミン トゥ"))
_MYANMAR_GIVEN_F = (("THIN THIN", "ティン ティン"), ("SU MYAT", "ス ミャッ"), ("AYE AYE", "エー エー"))
_TAIWANESE_FAMILY = (("陳", "チン"), ("林", "リン"), ("黄", "コウ"), ("張", "チョウ"), ("李", "リ"))
_TAIWANESE_GIVEN_M = (("志明", "シメイ"), ("家豪", "カゴウ"), ("冠宇", "カンウ"))
_TAIWANESE_GIVEN_F = (("淑芬", "シュクフン"), ("雅婷", "ガテイ"), ("怡君", "イクン"))
_AMERICAN_FAMILY = (("SMITH", "スミス"), ("JOHNSON", "ジョンソン"), ("WILLIAMS", "ウィリアムズ"), ("BROWN", "ブラウン"),
                    ("MILLER", "ミラー"))
_AMERICAN_GIVEN_M = (("MICHAEL", "マイケル"), ("DAVID", "デイビッド"), ("JAMES", "ジェームズ"), ("DANIEL", "ダニエル"))
_AMERICAN_GIVEN_F = (("JENNIFER", "ジェニファー"), ("SARAH", "サラ"), ("EMILY", "エミリー"), ("JESSICA", "ジェシカ"))
# 在留外国人統計's その他 is many countries; each gets its own coherent names.
_OTHER_COUNTRIES: dict[str, tuple[tuple[Pair, ...], tuple[Pair, ...], tuple[Pair, ...]]] = {
    "タイ": ((("SRISUK", "シースック"), ("WONGSA", "ウォンサ")), (("SOMCHAI", "ソムチャイ"),), (("SUDA", "スダー"),)),
    "インド": ((("SINGH", "シン"), ("SHARMA", "シャルマ")), (("ARJUN", "アルジュン"),), (("PRIYA", "プリヤ"),)),
    "スリランカ": ((("PERERA", "ペレラ"), ("FERNANDO", "フェルナンド")), (("NUWAN", "ヌワン"),), (("DILANI", "ディラニ"),)),
    "カンボジア": ((("SOK", "ソク"), ("CHAN", "チャン")), (("DARA", "ダラ"),), (("SOPHEAP", "ソピアップ"),)),
    "パキスタン": ((("KHAN", "カーン"), ("AHMED", "アハメド")), (("IMRAN", "イムラン"),), (("FATIMA", "ファティマ"),)),
    "ペルー": ((("GARCIA", "ガルシア"), ("HIGA", "ヒガ")), (("JOSE LUIS", "ホセ ルイス"),), (("ROSA", "ロサ"),)),
    "ウズベキスタン": ((("KARIMOV", "カリモフ"),), (("RUSTAM", "ルスタム"),), (("DILNOZA", "ディルノザ"),)),
    "英国": ((("TAYLOR", "テイラー"), ("JONES", "ジョーンズ")), (("THOMAS", "トーマス"),), (("EMMA", "エマ"),)),
}
OTHER_NATIONALITIES = tuple(_OTHER_COUNTRIES)


def concrete_nationality(rng: random.Random, nationality: str) -> str:
    """A real country for the statistics' その他, so a 住民票 never says "その他"."""
    return rng.choice(OTHER_NATIONALITIES) if nationality == "その他" else nationality


_BY_NATIONALITY: dict[str, tuple[tuple[Pair, ...], tuple[Pair, ...], tuple[Pair, ...]]] = {
    "ベトナム": (_VIETNAMESE_FAMILY, _VIETNAMESE_GIVEN_M, _VIETNAMESE_GIVEN_F),
    "中国": (_CHINESE_FAMILY, _CHINESE_GIVEN_M, _CHINESE_GIVEN_F),
    "韓国": (_KOREAN_FAMILY, _KOREAN_GIVEN_M, _KOREAN_GIVEN_F),
    "フィリピン": (_FILIPINO_FAMILY, _FILIPINO_GIVEN_M, _FILIPINO_GIVEN_F),
    "ブラジル": (_BRAZILIAN_FAMILY, _BRAZILIAN_GIVEN_M, _BRAZILIAN_GIVEN_F),
    "ネパール": (_NEPALI_FAMILY, _NEPALI_GIVEN_M, _NEPALI_GIVEN_F),
    "インドネシア": (_INDONESIAN_FAMILY, _INDONESIAN_GIVEN_M, _INDONESIAN_GIVEN_F),
    "ミャンマー": (_MYANMAR_FAMILY, _MYANMAR_GIVEN_M, _MYANMAR_GIVEN_F),
    "台湾": (_TAIWANESE_FAMILY, _TAIWANESE_GIVEN_M, _TAIWANESE_GIVEN_F),
    "米国": (_AMERICAN_FAMILY, _AMERICAN_GIVEN_M, _AMERICAN_GIVEN_F),
    **_OTHER_COUNTRIES,
}


def foreign_family(rng: random.Random, nationality: str) -> Pair:
    return rng.choice(_BY_NATIONALITY[nationality][0])


def foreign_name(rng: random.Random, nationality: str, sex: str, family: Pair | None = None) -> ForeignName:
    """A foreign resident's registered name; pass ``family`` to share a family name within a household."""
    families, male, female = _BY_NATIONALITY[nationality]
    fam = family if family is not None else rng.choice(families)
    given = rng.choice(male if sex == "M" else female)
    return fam[0], given[0], fam[1], given[1]
