"""Measure the offline analyzer's throughput on generated chat messages.

The messages are generated from templates in English, Spanish, Portuguese,
German and French: about 90% small talk, and a few percent each of buying
signals, promises or requests with a time, and contact details or amounts.
They are grouped in conversations of 20 messages, as WhatsApp exports and
mail threads are analyzed, and the rate is measured on one core.

Run: ``python benchmarks/analysis_offline.py [--messages 100000] [--seed 7]``
"""

from __future__ import annotations

import argparse
import platform
import random
import subprocess
import time
from datetime import UTC, datetime, timedelta

from wallie.analysis import Conversation, Message, OfflineAnalyzer

#: Messages per generated conversation.
CONVERSATION_SIZE = 20

#: Share of messages drawn from each template group.
MIX = (("chat", 0.90), ("signal", 0.04), ("promise", 0.04), ("detail", 0.02))

TEMPLATES: dict[str, dict[str, list[str]]] = {
    "en": {
        "chat": [
            "Hi {name}, how are you?",
            "ok thanks",
            "Sounds good 👍",
            "Haha yes",
            "Thanks a lot!",
            "Good morning",
            "Sure, no problem",
            "Have a nice weekend",
            "I'm in a meeting, will read later",
            "Got it",
            "Great news!",
            "How was the trip to {city}?",
            "The weather in {city} is terrible today",
            "We met at the fair last Tuesday, nice to reconnect",
            "lol",
            "See you!",
        ],
        "signal": [
            "How much is the {product}?",
            "Can you send me a quote for {n} units?",
            "Our budget is around €{n}00",
            "What's the delivery time to {city}?",
            "We'd like to order {n} boxes",
            "Is the contract ready to sign?",
        ],
        "promise": [
            "I'll send the quote tomorrow by {hour}pm",
            "Can we do a demo next {weekday}?",
            "I will call you on {weekday} at {hour}:30",
            "Let me check and get back to you in 2 hours",
        ],
        "detail": [
            "My email is {name}@example.com",
            "Call me on +44 20 7946 0{n}",
            "Total is $1,{n}.50",
            "Details at https://example.com/{product}",
        ],
    },
    "es": {
        "chat": [
            "Hola {name}, ¿qué tal?",
            "vale gracias",
            "Jajaja sí",
            "Buenos días",
            "Perfecto, sin problema",
            "¡Buen fin de semana!",
            "Estoy en una reunión",
            "¿Qué tal el viaje a {city}?",
            "Ayer hablamos con tu compañero",
            "Genial",
        ],
        "signal": [
            "¿Cuánto cuesta el {product}?",
            "¿Me mandas un presupuesto para {n} unidades?",
            "Queremos comprar {n} cajas",
            "¿Cuál es el plazo de entrega?",
        ],
        "promise": [
            "Te llamo el lunes",
            "Te envío la cotización mañana a las {hour}",
            "¿Podemos hacer una llamada el jueves?",
        ],
        "detail": ["Son 1.{n},50 € en total", "Mi correo es {name}@ejemplo.es"],
    },
    "pt": {
        "chat": [
            "Oi {name}, tudo bem?",
            "Valeu!",
            "Bom dia",
            "Kkkk verdade",
            "Abraço",
            "Beleza, obrigado",
            "Como foi a viagem para {city}?",
            "Estou numa reunião",
        ],
        "signal": [
            "Qual o preço do {product}?",
            "Pode me enviar o orçamento?",
            "Precisamos de {n} unidades",
            "Qual o prazo de entrega?",
        ],
        "promise": [
            "Te mando a proposta amanhã às {hour}h",
            "Vou te ligar na sexta-feira",
            "Consegue fazer a entrega em 3 dias?",
        ],
        "detail": ["O total é R$ {n}0,00", "Meu telefone é (11) 91234-5{n}"],
    },
    "de": {
        "chat": [
            "Hallo {name}, wie geht's?",
            "Alles klar, danke",
            "Guten Morgen!",
            "Schönes Wochenende!",
            "Super",
            "Ich bin gerade im Termin",
            "Bis dann",
            "Wie war die Reise nach {city}?",
        ],
        "signal": [
            "Was kostet der {product}?",
            "Können Sie mir ein Angebot schicken?",
            "Wir bestellen {n} Stück",
            "Wie lang ist die Lieferzeit?",
        ],
        "promise": [
            "Ich melde mich nächste Woche",
            "Ich rufe Sie morgen um {hour} Uhr an",
            "Können Sie mir bis Freitag das Angebot schicken?",
        ],
        "detail": ["Der Preis liegt bei 1.{n},00 €", "Meine Nummer: +49 30 1234{n}"],
    },
    "fr": {
        "chat": [
            "Bonjour {name}, ça va ?",
            "Merci beaucoup",
            "Bonne journée",
            "Super !",
            "D'accord, pas de souci",
            "Je suis en réunion",
            "À bientôt",
            "Comment s'est passé le voyage à {city} ?",
        ],
        "signal": [
            "Quel est le prix du {product} ?",
            "Pouvez-vous m'envoyer un devis ?",
            "On commande {n} cartons",
            "Quels sont vos délais de livraison ?",
        ],
        "promise": [
            "Je vous envoie le devis demain",
            "On peut faire une démo lundi prochain à {hour}h ?",
            "Je vous rappelle dans 2 heures",
        ],
        "detail": ["Le total est de {n} €", "Mon mail : {name}@exemple.fr"],
    },
}

LANGUAGES = {
    "en": "Europe/London",
    "es": "Europe/Madrid",
    "pt": "America/Sao_Paulo",
    "de": "Europe/Berlin",
    "fr": "Europe/Paris",
}
NAMES = ["ana", "tom", "lucia", "jan", "claire", "rafa", "mike", "sofia"]
CITIES = ["Madrid", "Lisbon", "Berlin", "Lyon", "Boston", "Porto"]
PRODUCTS = ["starter plan", "pro plan", "printer", "license", "sensor"]
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"]


def _text(rng: random.Random, language: str) -> str:
    roll = rng.random()
    group = MIX[-1][0]
    for name, share in MIX:
        if roll < share:
            group = name
            break
        roll -= share

    template = rng.choice(TEMPLATES[language][group])
    return template.format(
        name=rng.choice(NAMES),
        city=rng.choice(CITIES),
        product=rng.choice(PRODUCTS),
        weekday=rng.choice(WEEKDAYS),
        n=rng.randint(10, 99),
        hour=rng.randint(2, 5),
    )


def generate(count: int, seed: int) -> list[Conversation]:
    """Generate ``count`` messages grouped in conversations of CONVERSATION_SIZE."""
    rng = random.Random(seed)
    start = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
    conversations = []
    message_id = 0
    while message_id < count:
        language = rng.choice(list(LANGUAGES))
        sent_at = start + timedelta(minutes=rng.randint(0, 60 * 24 * 30))
        messages = []
        for _ in range(min(CONVERSATION_SIZE, count - message_id)):
            message_id += 1
            sent_at += timedelta(minutes=rng.randint(1, 600))
            direction = rng.choice(("inbound", "outbound"))
            sender = "Contact" if direction == "inbound" else "Me"
            text = _text(rng, language)
            messages.append(Message(message_id, sent_at, direction, sender, text))

        conversations.append(
            Conversation(tuple(messages), LANGUAGES[language], language)
        )

    return conversations


def cpu_model() -> str:
    """Return the CPU model name from lscpu, or the platform's processor string."""
    try:
        output = subprocess.run(
            ["lscpu"], capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return platform.processor() or "unknown"

    for line in output.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()

    return platform.processor() or "unknown"


def main() -> None:
    """Generate the messages, analyze them and print the rate."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--messages", type=int, default=100_000, help="Messages to generate."
    )
    parser.add_argument("--seed", type=int, default=7, help="Seed of the generator.")
    arguments = parser.parse_args()

    conversations = generate(arguments.messages, arguments.seed)
    analyzer = OfflineAnalyzer()
    # One small conversation first, so that imports and lazy dateparser data
    # are loaded outside the measured time.
    analyzer.analyze(conversations[0])

    started = time.perf_counter()
    reminders = entities = signals = 0
    for conversation in conversations:
        result = analyzer.analyze(conversation)
        reminders += len(result.reminders)
        entities += len(result.entities)
        signals += len(result.signals)
    elapsed = time.perf_counter() - started

    print(f"Messages: {arguments.messages} in {len(conversations)} conversations")
    print(f"Elapsed: {elapsed:.2f} s")
    print(f"Rate: {arguments.messages / elapsed:,.0f} messages/s")
    print(f"Reminders: {reminders}, entities: {entities}, signals: {signals}")
    print(f"Machine: {cpu_model()}, Python {platform.python_version()}")


if __name__ == "__main__":
    main()
