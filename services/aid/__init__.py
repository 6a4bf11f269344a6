"""The aid service: the rescue service net (抗疫救援服务网), requests to door-to-door deliveries."""
