"""Commitment, request and buying-signal patterns of the offline analyzer.

All patterns match folded text (see :mod:`wallie.analysis.text`) in English,
Spanish, Portuguese, German and French. A commitment is a first-person
promise ("I'll send", "te llamo", "ich melde mich", "je vous envoie", "te
mando"); a request asks the other party to act or proposes a joint action
("can you", "¿podemos", "können Sie", "pouvez-vous", "me manda").
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .types import ReminderKind, SignalKind

_COMMITMENT = re.compile(
    # English
    r"\b(?:i|we)(?:'ll| will| shall|'m going to| am going to|'re going to| are going to"
    r"| can)\b(?!'t| not|not)"
    r"|\bill (?:send|call|get|email|share|confirm|check)\b"
    r"|\blet me (?!know)\w+"
    r"|\bwill (?:do|send|call|get back|email|share|confirm|follow up)\b"
    r"|\bi promise\b"
    # Spanish
    r"|\b(?:te|le|les|os)(?: lo| la| los| las)? (?:llamo|mando|envio|paso|escribo"
    r"|confirmo"
    r"|aviso|digo|contacto|respondo|mandamos|enviamos|llamamos|confirmamos|escribimos"
    r"|llamare|mandare|enviare|escribire|confirmare|avisare)\b"
    r"|\b(?:voy|vamos) a \w+"
    r"|\b(?:envi|mand|llam|confirm|avis|pas|revis|contact|prepar|busc|habl|cotiz|agend"
    r"|comunic|consult|verific)(?:are|aremos)\b"
    r"|\b(?:respond|volv|tra|escrib|compart)(?:ere|eremos|ire|iremos)\b"
    r"|\b(?:hare|haremos|tendre|tendremos|podre|vere|veremos)\b"
    r"|\bquedo en\b|\bme comprometo\b"
    # Portuguese
    r"|\b(?:te|lhe|lhes|vos)(?: o| a)? (?:mando|envio|ligo|passo|retorno|aviso|confirmo"
    r"|escrevo|respondo|mandamos|enviamos|ligamos|retornamos)\b"
    r"|\b(?:eu )?(?:vou|vamos) (?:te |lhe )?\w+(?:ar|er|ir)\b"
    r"|\b\w{3,}(?:arei|erei|irei|aremos|eremos|iremos)\b"
    # German
    r"|\b(?:ich|wir) (?:werde|werden|melde|melden|schicke|schicken|sende|senden|rufe"
    r"|rufen"
    r"|schreibe|schreiben|gebe|geben|kummere|kummern|liefere|liefern|komme|kommen|kann"
    r"|konnen|bringe|bringen|erledige|erledigen)\b(?! nicht)"
    r"|\b(?:melde|schicke|sende|rufe|schreibe|gebe|liefere|komme|erledige) ich\b"
    r"|\b(?:melden|schicken|senden|rufen|schreiben|geben|liefern|kommen) wir\b"
    # French
    r"|\b(?:je|nous|on) (?:(?:vous|te|lui|leur|le|la|les) )*(?:t'|l')?"
    r"(?:envoie|envoyons|appelle|appelons|rappelle|rappelons|ecris|ecrivons|confirme"
    r"|confirmons|fais|faisons|passe|passons|reviens|revenons|recontacte|contacte"
    r"|vais|allons|va|transmets|transmettons|enverrai|enverrons|appellerai|rappellerai"
    r"|reviendrai|ferai|passerai|confirmerai)\b"
    r"|\bj'(?:envoie|appelle|ecris|enverrai|appellerai)\b"
)

_REQUEST = re.compile(
    # English
    r"\b(?:can|could|would|will) (?:you|we|u)\b"
    r"|\b(?:shall|should) we\b|\blet's\b|\blets (?:do|meet|talk|schedule|have)\b"
    r"|\bplease\b|\bpls\b|\blet me know\b|\b(?:send|call|email) me\b"
    r"|\bare you (?:free|available)\b|\bdo you have time\b|\b(?:i|we) need\b"
    # Spanish
    r"|\b(?:puedes|podrias|puede|podria|pueden|podemos|podriamos|quieres|quiere)\b"
    r"|\bme (?:mandas|envias|pasas|llamas|escribes|confirmas|avisas|mandan|envian)\b"
    r"|\bpor favor\b|\bnecesito\b|\bnecesitamos\b|\b(?:hacemos|agendamos|quedamos)\b"
    # Portuguese
    r"|\b(?:pode|podes|poderia|podem|podemos|consegue|consegues|conseguem)\b"
    r"|\bme (?:manda|envia|passa|liga|confirma|avisa|retorna|mandem|enviem)\b"
    r"|\bpor favor\b|\bpreciso\b|\bprecisamos\b|\b(?:marcamos|agendamos)\b"
    # German
    r"|\b(?:konnen|konnten|wurden) sie\b|\b(?:kannst|konntest|wurdest) du\b"
    r"|\b(?:konnen|sollen|wollen) wir\b|\bbitte\b|\blass(?:t)? uns\b"
    r"|\b(?:schicken|senden|rufen) sie mir\b|\bschick mir\b|\bruf mich\b"
    r"|\b(?:ich|wir) (?:brauche|brauchen|benotige|benotigen)\b"
    # French
    r"|\b(?:pouvez|pourriez|peux|pourrais|pouvons|pourrions|pourrait)[- ](?:vous|tu"
    r"|nous|on)\b"
    r"|\b(?:vous pouvez|tu peux|on peut|est-ce qu'on)\b|\bmerci de\b"
    r"|\bs'il vous plait\b"
    r"|\bsvp\b|\b(?:envoyez|appelez|rappelez)-moi\b|\bj'ai besoin\b|\bon se (?:fait"
    r"|cale)\b"
)

#: Farewells that name a time but promise nothing ("I'll see you tomorrow",
#: "talk tomorrow"). They are blanked before matching because they contain a
#: commitment phrase. Farewells without one ("hasta mañana", "bis Montag")
#: need no blanking, and blanking them would hide deadlines such as "bis
#: Montag" inside a request.
_CLOSING = re.compile(
    r"\b(?:(?:i|we)(?:'ll| will) )?(?:see|talk to|speak to|catch) you\b"
    r"|\b(?:talk|speak) (?:soon|later|tomorrow)\b|\bhave a (?:nice|good|great) \w+\b"
)


@dataclass(frozen=True)
class ActionMatch:
    """A commitment or request phrase found in a sentence.

    Attributes:
      kind: ``"commitment"`` or ``"request"``.
      start: Offset of the phrase in the sentence.
    """

    kind: ReminderKind
    start: int


def blank_closings(folded: str) -> str:
    """Return ``folded`` with farewells replaced by spaces, keeping offsets."""
    return _CLOSING.sub(lambda match: " " * len(match.group()), folded)


def find_action(folded: str) -> ActionMatch | None:
    """Return the first commitment or request phrase of a folded sentence.

    Parameters:
      folded: The folded sentence, with farewells blanked.

    Returns:
      The earliest phrase, or ``None`` when the sentence has none.
    """
    commitment = _COMMITMENT.search(folded)
    request = _REQUEST.search(folded)
    if commitment is None and request is None:
        return None
    if request is None or (
        commitment is not None and commitment.start() <= request.start()
    ):
        assert commitment is not None
        return ActionMatch("commitment", commitment.start())

    return ActionMatch("request", request.start())


@dataclass(frozen=True)
class SignalRule:
    """A buying-signal pattern.

    Attributes:
      kind: The signal kind it finds.
      pattern: The compiled pattern, on folded text.
      strength: From 0 to 1, how strongly a match shows intent.
      words: Words of which at least one must be in the text for a match,
        so that most messages skip the pattern.
    """

    kind: SignalKind
    pattern: re.Pattern[str]
    strength: float
    words: frozenset[str]


def _rule(kind: SignalKind, strength: float, words: str, pattern: str) -> SignalRule:
    return SignalRule(kind, re.compile(pattern), strength, frozenset(words.split()))


#: Buying-signal rules, strongest first within a kind.
SIGNAL_RULES: tuple[SignalRule, ...] = (
    _rule(
        "purchase",
        1.0,
        "buy order purchase take ahead comprar pedido compramos quedamos fechar fechado"
        " faturar bestellen bestelle kaufen nehmen auftrag commande commandons prend"
        " acheter signe sign kaufe nehme prenons achete signer bereit firmar assinar",
        r"\b(?:we|i)(?:'d like| would like| want| wanna)? to (?:buy|order|purchase)\b"
        r"|\b(?:we'll|we will|i'll|i will) (?:take|order|buy)\b|\bplace (?:an"
        r"|the) order\b"
        r"|\bpurchase order\b|\bready to (?:order|buy|sign|go ahead)\b"
        r"|\blet's go ahead\b"
        r"|\b(?:queremos|quiero|vamos a) comprar\b|\bhacemos el pedido\b"
        r"|\blo compramos\b"
        r"|\bnos lo quedamos\b|\b(?:queremos|quero) (?:comprar|fechar)\b"
        r"|\bvamos fechar\b"
        r"|\bpode faturar\b|\bfazer o pedido\b|\b(?:negocio|ta|esta) fechado\b"
        r"|\b(?:wir|ich) (?:bestellen|bestelle|kaufen|kaufe|nehmen|nehme)\b"
        r"|\bauftrag erteilen\b|\b(?:on|nous|je) (?:commande|commandons|prend"
        r"|prenons)\b"
        r"|\bbon de commande\b|\bon (?:signe|achete)\b|\bpret a signer\b"
        r"|\bwir sind bereit\b|\blisto para firmar\b|\bpronto para assinar\b",
    ),
    _rule(
        "contract",
        0.7,
        "contract contracts agreement sign contrato contratos firmar assinar vertrag "
        "unterschreiben"
        " contrat signer",
        r"\bcontracts?\b|\bagreement\b|\bsign\b|\bcontratos?\b|\bfirmar\b|\bassinar\b"
        r"|\bvertrag\b|\bunterschreiben\b|\bcontrat\b|\bsigner\b",
    ),
    _rule(
        "budget",
        0.8,
        "budget presupuesto orcamento verba",
        r"\bbudget\b|\b(?:nuestro|el|tenemos un|mi) presupuesto (?:es|de|maximo)\b"
        r"|\b(?:nosso|o|temos um|meu) orcamento (?:e|de|maximo)\b|\bverba\b",
    ),
    _rule(
        "quote",
        0.6,
        "quote quotation estimate proposal presupuesto cotizacion propuesta orcamento"
        " cotacao proposta angebot kostenvoranschlag devis proposition offre",
        r"\bquot(?:e|ation)\b|\bestimate\b|\bproposal\b|\bpresupuesto\b|\bcotizacion\b"
        r"|\bpropuesta\b|\borcamento\b|\bcotacao\b|\bproposta\b|\bangebot\b"
        r"|\bkostenvoranschlag\b|\bdevis\b|\bproposition commerciale\b|\boffre\b",
    ),
    _rule(
        "price",
        0.6,
        "price prices pricing much cost costs precio precios cuanto cuesta sale vale "
        "coste"
        " costo cuanto preco precos quanto custa valor custo preis preise kostet "
        "kosten prix"
        " combien tarif tarifs cout",
        r"\bpric(?:e|es|ing)\b|\bhow much\b|\bcosts?\b|\bprecios?\b"
        r"|\bcuanto (?:cuesta|cuestan|costaria|costarian|sale|vale|seria)\b"
        r"|\bcoste\b|\bcosto\b|\bprecos?\b|\bquanto (?:custa|custam|custaria|sai|fica"
        r"|seria)\b"
        r"|\bvalor\b|\bcusto\b"
        r"|\bpreise?\b|\bwas kostet\b|\bwie ?viel kostet\b|\bkosten\b|\bprix\b"
        r"|\bcombien\b"
        r"|\btarifs?\b|\bcout\b",
    ),
    _rule(
        "quantity",
        0.5,
        "units unit pieces pcs boxes pallets licenses licences seats many unidades "
        "piezas"
        " cajas pecas caixas stuck einheiten lizenzen unites cartons kg ton tons "
        "cuantas"
        " quantas wieviele combien",
        r"\b\d+\s*(?:units?|pieces|pcs|boxes|pallets|licen[cs]es|seats|unidades|piezas"
        r"|cajas"
        r"|pecas|caixas|stuck|einheiten|lizenzen|unites|cartons|kg|tons?)\b"
        r"|\bhow many\b|\bcuantas unidades\b|\bquantas unidades\b|\bwie ?viele stuck\b",
    ),
    _rule(
        "delivery_date",
        0.5,
        "delivery deliver delivered ship shipping lead entrega entregas entregar envio "
        "plazo prazo lieferung"
        " liefern lieferzeit liefertermin livraison livrer delai",
        r"\bdeliver(?:y|ed)?\b|\bship(?:ping)?\b|\blead time\b|\bentregas?\b"
        r"|\bentregar\b"
        r"|\bplazo de entrega\b|\bprazo\b|\blieferung\b|\bliefern\b|\blieferzeit\b"
        r"|\bliefertermin\b|\blivraison\b|\blivrer\b|\bdelai\b",
    ),
    _rule(
        "demo",
        0.6,
        "demo demos demonstration trial demostracion prueba demonstracao teste "
        "vorfuhrung",
        r"\bdemos?\b|\bdemonstration\b|\bfree trial\b|\bdemostracion\b|\bdemonstracao\b"
        r"|\bvorfuhrung\b|\bperiodo de prueba\b|\bperiodo de teste\b",
    ),
    _rule(
        "meeting",
        0.4,
        "meeting meet call reunion llamada reuniao ligacao termin treffen besprechung"
        " rendez vous appel visio",
        r"\bmeeting\b|\bmeet\b|\bcall\b|\breunion\b|\bllamada\b|\breuniao\b|\bligacao\b"
        r"|\btermin\b|\btreffen\b|\bbesprechung\b|\brendez-vous\b|\bappel\b|\bvisio\b",
    ),
)

#: Every word that can start a signal rule's match.
SIGNAL_WORDS = frozenset().union(*(rule.words for rule in SIGNAL_RULES))
