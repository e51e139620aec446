"""The message bus: topology names, messages, and the RabbitMQ and in-process implementations."""
