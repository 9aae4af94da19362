"""Events for downstream systems: the message schema (``model``), the relay that publishes the
outbox to RabbitMQ (``relay``) and the broker connection they share (``broker``)."""
