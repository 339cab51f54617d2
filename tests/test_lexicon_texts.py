"""Small in-test corpora shared by the lexicon tests (no dependency on the demo corpus).

Imported by the other tests/test_lexicon*.py modules; its one test checks the texts.
"""

EN = [
    "The night was dark and the wind was cold. She walked to the edge of the forest, "
    "and the trees were silent. In the morning the sun rose over the hills.",
    "He said that the king of the north would come in the spring. The people of the "
    "village did not believe him, but they prepared for the war all the same.",
    "A cat sat on the mat. The cats were sleeping in the warm light of the fire. "
    "Nights in the mountains are long, and the stars are bright.",
    "I don't know what the future holds, but I know who holds the future. "
    "We can't stop the river; we can only build a better boat.",
]
RU = [
    "Ночью было темно и холодно. Она шла к краю леса, и деревья молчали. "
    "Утром солнце поднялось над холмами.",
    "Он сказал, что король севера придёт весной. Люди деревни не поверили ему, "
    "но всё равно готовились к войне.",
    "Кошка сидела на коврике. Кошки спали в тёплом свете огня. "
    "Ночи в горах длинные, а звёзды яркие.",
    "Я не знаю, что будет завтра, но знаю, кто держит будущее. "
    "Мы не можем остановить реку; мы можем только построить лучшую лодку.",
]


def corpus(repeat: int = 8) -> list[str]:
    return (EN + RU) * repeat


def test_sample_texts_are_bilingual():
    from dualmind.lexicon.script import detect_language

    assert {detect_language(t) for t in EN} == {"en"}
    assert {detect_language(t) for t in RU} == {"ru"}
