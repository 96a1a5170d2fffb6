"""Knowledge imports: WhatsApp exports, documents and contact lists."""
