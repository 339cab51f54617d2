"""Function words the ``semantic`` level drops (the decoder restores them later).

Hand-written lists (articles, pronouns, auxiliaries, prepositions, conjunctions,
particles; Russian also lists the modal and quantifier words that the English list has
in its own way: мочь/можно/должный ~ can/may/must, другой/каждый/любой ~ other/each/any).
The English list also has the Early Modern function words of the demo corpus
(Shakespeare, the King James Bible): unto, ere, whence, dost, canst, ... ("art" stays:
it is also a noun). Negations ("not", "no", "nay", "never", "не", "нет", "ни",
"никогда") are kept on purpose: dropping them would flip the meaning of a hyperphrase.
Words are matched after lower-casing, both as surface form and as lemma.
"""

from __future__ import annotations

_EN = """
a an the this that these those some any each every either neither such
i me my mine myself we us our ours ourselves you your yours yourself yourselves
he him his himself she her hers herself it its itself they them their theirs themselves
thou thee thy thine ye
who whom whose which what whatever whoever whichever
am is are was were be been being
have has had having do does did doing done
will would shall should can could may might must ought
'll 'd 've 're 'm 's
and or but nor so yet for if then else than as because although though while whereas
unless until whether since
of in on at by to from with within without into onto upon about above below over under
between among through throughout during before after against towards toward across
along around behind beside besides beyond off out up down near via per
there here where when why how
all both few many more most much other another own same
just only also too very quite rather really even still ever again already almost
is't 'tis o oh ah
unto ere whilst thereof therein thereto whereof wherein whereby hither thither whence
thyself twas wast wert dost wilt canst couldst wouldst shouldst mayst
""".split()

_RU = """
и а но или либо да же ли бы б то что чтобы как так также тоже если когда пока хотя
потому поэтому ибо зато однако причём причем
в во на с со к ко о об обо от до по за из изо у при про для без над под перед между
через сквозь вокруг около возле среди после ради из-за из-под
я меня мне мной мною мы нас нам нами ты тебя тебе тобой тобою вы вас вам вами
он его него ему нему им ним нём нем она её ее неё нее ей ней ею нею оно они их них
ими ними себя себе собой собою
мой моя моё мое мои моего моей моему моим моих твой твоя твоё твое твои наш наша наше
наши ваш ваша ваше ваши свой своя своё свое свои
этот эта это эти этого этой этому этим этих тот та те того той тому тем тех
такой такая такое такие весь вся всё все всего всей всем всех
кто кого кому кем ком какой какая какое какие который которая которое которые
чей чья чьё чье чьи где куда откуда зачем почему
быть есть был была было были будет будут буду будем будешь будете
вот вон ведь уж уже ещё еще лишь только даже именно разве неужели
тут там здесь сюда туда оттуда потом тогда теперь сейчас
очень более менее самый самая самое самые сам сама само сами
ну ах ох эх
другой другая другое другие каждый каждая каждое каждые любой некоторый иной
какой-то какой-нибудь кто-то кто-нибудь что-то что-нибудь где-то как-то когда-то
мочь можно должный должен должна должно должны
""".split()

STOPWORDS: dict[str, frozenset[str]] = {
    "en": frozenset(_EN),
    "ru": frozenset(_RU),
}


def default_stopwords(langs: tuple[str, ...]) -> dict[str, frozenset[str]]:
    """Built-in lists for ``langs`` (an unknown language gets an empty list)."""
    return {lang: STOPWORDS.get(lang, frozenset()) for lang in langs}


def no_stopwords(langs: tuple[str, ...]) -> dict[str, list[str]]:
    """Empty lists for ``langs``: the semantic level keeps its function words as lemmas
    (`dualmind lexicon build --keep-function-words`, and the demo's lexicon)."""
    return {lang: [] for lang in langs}
