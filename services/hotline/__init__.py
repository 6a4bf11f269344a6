"""The hotline service: the psychological protection net (抗疫心理防护网), 红棉守护热线."""
